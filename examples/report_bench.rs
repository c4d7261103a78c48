//! The report benchmark: a store with a week of N incidents (default 1,000,000) across 50
//! devices and 40 services, 0.1% acknowledged, then `aiwarden report` timed on it in every
//! form, as the binary runs it (`cargo run --release --example report_bench -- [N]
//! [aiwarden binary] [store to keep]`). Prints one line per form with seconds and peak resident memory.
//! Target (issue 11): a period with 1,000,000 incidents renders in under 5 s.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use aiwarden::incident::{IncidentRecord, Touch};
use aiwarden::policy::{Mode, RuleSet, Tier, Verdict};
use aiwarden::store::Store;

/// Monday 2026-11-23 00:00 in New York, unix microseconds.
const WEEK_START: i64 = 1_795_410_000_000_000;
const WEEK: i64 = 7 * 86_400 * 1_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(Ok(1_000_000), |s| s.parse())?;
    let bin = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/aiwarden").into());
    let dir = tempfile::tempdir()?;
    // A third argument keeps the store there and reuses it when it exists.
    let db = args
        .get(3)
        .map_or_else(|| dir.path().join("incidents.db"), std::path::PathBuf::from);
    let t = Instant::now();
    if !db.exists() {
        generate(&db, n)?;
    }
    let size = std::fs::metadata(&db)?.len();
    println!(
        "generated {n} incidents in {:.1} s ({} MB store)",
        t.elapsed().as_secs_f64(),
        size >> 20
    );
    let config = dir.path().join("aiwarden.toml");
    std::fs::write(
        &config,
        format!(
            "site_name = \"Bench Clinic\"\ntimezone = \"America/New_York\"\n[store]\npath = \"{}\"\n",
            db.display()
        ),
    )?;
    for form in ["json", "csv", "html", "pdf"] {
        let out = dir.path().join(format!("report.{form}"));
        let t = Instant::now();
        let status = Command::new("/usr/bin/time")
            .args(["-f", "%M"])
            .arg(&bin)
            .args(["report", "--config"])
            .arg(&config)
            .args(["--week", "2026-W48", "--format", form, "--out"])
            .arg(&out)
            .output()?;
        let secs = t.elapsed().as_secs_f64();
        if !status.status.success() {
            println!(
                "{form}: failed: {}",
                String::from_utf8_lossy(&status.stderr).trim()
            );
            continue;
        }
        let rss_kb: u64 = String::from_utf8_lossy(&status.stderr)
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        println!(
            "{form}: {secs:.2} s, {} KB out, peak RSS {} MB",
            std::fs::metadata(&out)?.len() >> 10,
            rss_kb >> 10
        );
    }
    Ok(())
}

/// A week of `n` incidents, written through the store's own API (the real chain).
fn generate(db: &Path, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let rules = RuleSet::load_dir(&aiwarden::paths::rules())?;
    let services: Vec<_> = rules.services().take(40).cloned().collect();
    let mut store = Store::open(db)?;
    let step = WEEK / n.max(1) as i64;
    let mut next = 0usize;
    while next < n {
        let batch: Vec<IncidentRecord> = (next..(next + 10_000).min(n))
            .map(|i| {
                let s = &services[i % services.len()];
                let dev = i % 50;
                IncidentRecord {
                    ts: WEEK_START + step * i as i64,
                    client_ip: format!("10.0.{}.{}", dev / 200, 10 + dev % 200)
                        .parse()
                        .expect("ip"),
                    client_mac: Some(format!("52:54:00:00:00:{dev:02x}").parse().expect("mac")),
                    device: Some(format!("ws-{dev:02}")),
                    label: Some(format!("Workstation {dev:02}")),
                    group: None,
                    service: s.id.to_string(),
                    service_name: s.name.to_string(),
                    category: Some(s.category.clone()),
                    tier: Some(Tier::Consumer),
                    verdict: if i % 3 == 0 {
                        Verdict::Block
                    } else {
                        Verdict::Flag
                    },
                    mode: Mode::Enforce,
                    how: if i % 7 == 0 { "quic" } else { "tls" }
                        .parse()
                        .expect("how"),
                    host: format!("host{}.{}.example", i % 5, s.id),
                    rule: format!("catalog/bench.toml:{}", s.id),
                }
            })
            .collect();
        let ids = store.append_incidents(&batch)?;
        let touches: Vec<(i64, Touch)> = ids
            .iter()
            .zip(&batch)
            .filter(|(id, _)| *id % 4 == 0)
            .map(|(id, r)| {
                (
                    *id,
                    Touch {
                        ts: r.ts + 1_000_000,
                        host: r.host.clone(),
                        how: "tls,ech".parse().expect("how"),
                        attempt: true,
                        mac: None,
                    },
                )
            })
            .collect();
        store.touch_batch(&touches)?;
        for id in ids.iter().filter(|id| *id % 1000 == 0) {
            store.ack(*id, WEEK_START + WEEK - 1_000_000, "Pat", "trained")?;
        }
        next += batch.len();
    }
    Ok(())
}
