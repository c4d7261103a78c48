//! Time and memory to load and validate the shipped catalog plus a 100,000-entry deny list
//! from disk, as `aiwarden rules check` and a reload do: read the files, parse, validate,
//! build the suffix map, then lint. Targets: under 200 ms and under 30 MB. Then the same
//! with 20,000 client groups (under 400 ms; it took 20 s before groups were indexed) and
//! the cost of one judgement that classifies a client among them.
//!
//! `cargo bench --bench rules_load` prints the figures and exits 1 when a target is
//! missed. Memory is the growth of this process's peak resident set (VmHWM) over its
//! resident set before the first load, so it counts every transient allocation of
//! loading, not only what the rule set keeps. Under `cargo test` (no `--bench` argument)
//! it runs once on 10,000 entries to prove it still works.

use std::path::Path;
use std::time::{Duration, Instant};

use aiwarden::policy::{Client, Mode, RuleSet, Verdict};

const TIME_TARGET: Duration = Duration::from_millis(200);
const MEMORY_TARGET_KB: u64 = 30 * 1024;

/// A field of /proc/self/status in kB.
fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A block list shaped like real ones: tracker and ad hosts two to four labels deep over
/// a few hundred registrable domains and a dozen TLDs.
fn deny_list(n: usize) -> String {
    const TLDS: [&str; 12] = [
        "com", "net", "org", "io", "co", "info", "biz", "xyz", "app", "ai", "de", "co.uk",
    ];
    const WORDS: [&str; 16] = [
        "ads", "track", "pixel", "metrics", "cdn", "stats", "beacon", "tag", "sync", "img", "log",
        "events", "collect", "px", "assets", "api",
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = String::with_capacity(n * 36);
    out.push_str("# generated block list\n");
    for i in 0..n {
        let r = next();
        let word = WORDS[(r % 16) as usize];
        let domain = (r >> 8) % 5_000;
        let tld = TLDS[((r >> 24) % 12) as usize];
        match (r >> 32) % 3 {
            0 => out.push_str(&format!("{word}{i}.site{domain}.{tld}\n")),
            1 => out.push_str(&format!("{word}-{i}.eu.site{domain}.{tld}\n")),
            _ => out.push_str(&format!("*.{word}{i}.x{}.site{domain}.{tld}\n", r % 97)),
        }
    }
    out
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this without it.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n = if quick { 10_000 } else { 100_000 };
    let runs = if quick { 1 } else { 15 };

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("catalog")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("site")).expect("mkdir");
    for e in std::fs::read_dir(root.join("catalog")).expect("catalog") {
        let p = e.expect("entry").path();
        std::fs::copy(
            &p,
            dir.path()
                .join("catalog")
                .join(p.file_name().expect("name")),
        )
        .expect("copy");
    }
    for f in ["allow.list", "groups.toml"] {
        std::fs::copy(root.join("site").join(f), dir.path().join("site").join(f)).expect("copy");
    }
    std::fs::write(dir.path().join("site/deny.list"), deny_list(n)).expect("write");

    // Memory: the first load, in a process that has not loaded rules before.
    let rss_before = status_kb("VmRSS:");
    let t = Instant::now();
    let rules = RuleSet::load_dir(dir.path()).expect("loads");
    let first_load = t.elapsed();
    let warnings = rules.lint();
    let peak = status_kb("VmHWM:");
    let kept = status_kb("VmRSS:").saturating_sub(rss_before);
    let grown = peak.saturating_sub(rss_before);
    assert!(rules.pattern_count() > n, "every entry loaded");
    assert_eq!(
        rules
            .judge("a.ads0.site1.com", &Client::NONE, Mode::Enforce)
            .verdict,
        rules
            .judge("a.ads0.site1.com", &Client::NONE, Mode::Enforce)
            .verdict
    );
    assert_eq!(
        rules
            .judge("chatgpt.com", &Client::NONE, Mode::Enforce)
            .verdict,
        Verdict::Block
    );
    drop(rules);

    let mut load = Vec::with_capacity(runs);
    let mut with_lint = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let rules = RuleSet::load_dir(dir.path()).expect("loads");
        load.push(t.elapsed());
        std::hint::black_box(rules.lint());
        with_lint.push(t.elapsed());
    }
    load.sort();
    with_lint.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "rules_load: catalog + {n} deny entries ({} warnings)",
        warnings.len()
    );
    println!(
        "  load+validate: first {:.1} ms, median {:.1} ms, min {:.1} ms ({runs} runs)",
        ms(first_load),
        ms(load[runs / 2]),
        ms(load[0])
    );
    println!(
        "  load+validate+lint (rules check): median {:.1} ms",
        ms(with_lint[runs / 2])
    );
    println!(
        "  memory: peak growth {:.1} MB while loading and linting, {:.1} MB kept by the rule set; process peak {:.1} MB",
        grown as f64 / 1024.0,
        kept as f64 / 1024.0,
        peak as f64 / 1024.0
    );

    // A site with 20,000 client groups (an MSP's generated file): load, lint, classify.
    let groups = 20_000;
    let mut text = String::new();
    for i in 0..groups {
        text.push_str(&format!(
            "[[group]]\nname = \"g{i}\"\ncidrs = [\"10.{}.{}.0/24\"]\nmacs = [\"02:00:00:{:02x}:{:02x}:{:02x}\"]\nconsumer = \"block\"\n\n",
            i / 256,
            i % 256,
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        ));
    }
    std::fs::write(dir.path().join("site/groups.toml"), text).expect("write");
    let mut group_load = Vec::with_capacity(runs);
    let mut rules = None;
    for _ in 0..runs {
        let t = Instant::now();
        let r = RuleSet::load_dir(dir.path()).expect("loads");
        std::hint::black_box(r.lint());
        group_load.push(t.elapsed());
        rules = Some(r);
    }
    group_load.sort();
    let rules = rules.expect("loaded");
    let client = Client::new(Some("10.77.12.9".parse().expect("ip")), None, None);
    let t = Instant::now();
    let judged = 100_000;
    for _ in 0..judged {
        std::hint::black_box(rules.judge("chatgpt.com", &client, Mode::Enforce));
    }
    let per_judge = t.elapsed() / judged;
    assert_eq!(
        rules
            .judge("chatgpt.com", &client, Mode::Enforce)
            .group
            .as_deref(),
        Some("g19724")
    );
    println!(
        "  {groups} client groups + the deny list: load+validate+lint median {:.1} ms; a judgement with groups {:.0} ns",
        ms(group_load[runs / 2]),
        per_judge.as_nanos()
    );
    if quick {
        return;
    }
    let mut ok = true;
    if group_load[runs / 2] > 2 * TIME_TARGET {
        println!(
            "  MISSED: loading {groups} groups above {} ms",
            2 * TIME_TARGET.as_millis()
        );
        ok = false;
    }
    if load[runs / 2] > TIME_TARGET {
        println!("  MISSED: load median above {} ms", TIME_TARGET.as_millis());
        ok = false;
    }
    if grown > MEMORY_TARGET_KB {
        println!("  MISSED: memory above {} MB", MEMORY_TARGET_KB / 1024);
        ok = false;
    }
    if !ok {
        std::process::exit(1);
    }
    println!("  targets met (< 200 ms, < 30 MB)");
}
