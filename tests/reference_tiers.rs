//! The shipped catalog agrees with the project's AI endpoint reference: for every host the
//! reference names, `aiwarden rules explain` reports the reference's tier, and the hosts it
//! says are not AI (shared infrastructure, lookalikes) match no service. The reference lives
//! outside the repository; `tests/fixtures/reference-hosts.tsv` is its transcription.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::thread;

const FIXTURE: &str = "tests/fixtures/reference-hosts.tsv";

/// Rows transcribed into the fixture. The test fails below 80% of this, so a truncated or
/// emptied file cannot pass by checking nothing.
const TRANSCRIBED: usize = 336;

const EXPECTED: [&str; 5] = ["consumer", "enterprise", "shared", "bypass", "none"];

struct Row {
    line: usize,
    host: String,
    expected: String,
    note: String,
}

/// What explain said about one host, in the fixture's terms.
struct Answer {
    got: String,
    service: Option<String>,
    rule: Option<String>,
}

fn aiwarden_json(args: &[&str]) -> serde_json::Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_aiwarden"))
        .current_dir(root)
        .args(args)
        .output()
        .expect("aiwarden runs");
    assert!(
        out.status.success(),
        "aiwarden {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("aiwarden prints JSON")
}

fn rules_dir() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("rules")
        .display()
        .to_string()
}

/// Parses the fixture; every malformed line is reported, not just the first.
fn rows() -> Vec<Row> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    let text = std::fs::read_to_string(&path).expect("fixture readable");
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = raw.split('\t').collect();
        let [host, expected, note] = fields[..] else {
            errors.push(format!(
                "line {line}: want host<TAB>expected<TAB>note, got {raw:?}"
            ));
            continue;
        };
        if !EXPECTED.contains(&expected) {
            errors.push(format!(
                "line {line}: expected {expected:?} is not one of {EXPECTED:?}"
            ));
        }
        if host != host.trim().to_ascii_lowercase() || host.is_empty() {
            errors.push(format!(
                "line {line}: host {host:?} is not a lowercase name"
            ));
        }
        if note.trim().is_empty() {
            errors.push(format!("line {line}: {host} has no note"));
        }
        if !seen.insert(host.to_string()) {
            errors.push(format!("line {line}: {host} is listed twice"));
        }
        rows.push(Row {
            line,
            host: host.to_string(),
            expected: expected.to_string(),
            note: note.to_string(),
        });
    }
    assert!(errors.is_empty(), "{FIXTURE}:\n{}", errors.join("\n"));
    rows
}

fn explain(host: &str, rules: &str, categories: &HashMap<String, String>) -> Answer {
    let e = aiwarden_json(&["rules", "explain", host, "--json", "--rules", rules]);
    let service = e["service"].as_str().map(str::to_string);
    let got = match &service {
        None => "none".to_string(),
        Some(id) if categories.get(id).map(String::as_str) == Some("bypass") => {
            "bypass".to_string()
        }
        Some(_) => e["tier"].as_str().unwrap_or("(no tier)").to_string(),
    };
    Answer {
        got,
        service,
        rule: e["rule"].as_str().map(str::to_string),
    }
}

#[test]
fn explain_agrees_with_the_reference_for_every_host_it_names() {
    let rows = rows();
    assert!(
        rows.len() * 10 >= TRANSCRIBED * 8,
        "{FIXTURE} has {} rows, fewer than 80% of the {TRANSCRIBED} transcribed",
        rows.len()
    );

    let rules = rules_dir();
    let list = aiwarden_json(&["rules", "list", &rules, "--json"]);
    let categories: HashMap<String, String> = list["services"]
        .as_array()
        .expect("rules list --json lists the services")
        .iter()
        .filter_map(|s| Some((s["id"].as_str()?.into(), s["category"].as_str()?.into())))
        .collect();

    // One process per host; a few threads keep the whole run to about a second.
    let threads = thread::available_parallelism().map_or(4, |n| n.get().min(8));
    let chunk = rows.len().div_ceil(threads).max(1);
    let answers: Vec<Answer> = thread::scope(|s| {
        let handles: Vec<_> = rows
            .chunks(chunk)
            .map(|part| {
                let (rules, categories) = (&rules, &categories);
                s.spawn(move || {
                    part.iter()
                        .map(|r| explain(&r.host, rules, categories))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("explain thread"))
            .collect()
    });

    let disagreements: Vec<String> = rows
        .iter()
        .zip(&answers)
        .filter(|(row, answer)| row.expected != answer.got)
        .map(|(row, a)| {
            format!(
                "  {}:{} {}: expected {}, got {}{} -- {}",
                FIXTURE,
                row.line,
                row.host,
                row.expected,
                a.got,
                match (&a.service, &a.rule) {
                    (Some(s), Some(r)) => format!(" (service {s}, {r})"),
                    (Some(s), None) => format!(" (service {s})"),
                    _ => String::new(),
                },
                row.note
            )
        })
        .collect();
    assert!(
        disagreements.is_empty(),
        "{} of {} hosts disagree with the reference:\n{}",
        disagreements.len(),
        rows.len(),
        disagreements.join("\n")
    );
}
