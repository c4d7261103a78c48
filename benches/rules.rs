//! Host matching against 100,000 patterns (the shipped catalog plus a 100,000-line deny
//! list), and loading such a rule set.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};

use aiwarden::policy::{Client, Mode, RuleSet};

fn sources(n: usize) -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let mut files: Vec<(PathBuf, String)> = std::fs::read_dir(root.join("catalog"))
        .expect("catalog")
        .map(|e| e.expect("entry").path())
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read");
            (p, text)
        })
        .collect();
    let mut deny = String::with_capacity(n * 32);
    for i in 0..n {
        deny.push_str(&format!("tracker{i}.ads{}.example\n", i % 1_000));
    }
    files.push((root.join("site/deny.list"), deny));
    files
}

fn matching(c: &mut Criterion) {
    let rules = RuleSet::from_sources(&sources(100_000)).expect("loads");
    assert!(rules.pattern_count() > 100_000);
    let mut g = c.benchmark_group("match_100k");
    for (name, host) in [
        ("hit_deep_subdomain", "a.b.c.tracker99999.ads999.example"),
        ("hit_catalog", "sunrise-clinic.openai.azure.com"),
        ("miss", "www.nih.gov"),
        ("lookalike", "chatgpt.com.example.net"),
    ] {
        let d = rules.judge(host, &Client::NONE, Mode::Enforce);
        assert_eq!(d.rule.is_some(), name.starts_with("hit"), "{host}");
        g.bench_function(name, |b| {
            b.iter(|| black_box(rules.judge(black_box(host), &Client::NONE, Mode::Enforce)))
        });
    }
    g.finish();
    let src = sources(100_000);
    let mut g = c.benchmark_group("load");
    g.sample_size(10);
    g.bench_function("catalog_plus_100k_deny", |b| {
        b.iter(|| black_box(RuleSet::from_sources(&src).expect("loads")))
    });
    g.finish();
}

criterion_group!(benches, matching);
criterion_main!(benches);
