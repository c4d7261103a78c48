//! Host matching against 100,000 patterns (the shipped catalog plus a 100,000-line deny
//! list in which every tenth entry is an exact host, `=name`, and every tenth a label
//! wildcard, `cdn-*.name`), and loading such a rule set.

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
        let line = match i % 10 {
            // Spread over 1,000 names: ten wildcards share a name, as a real list's would
            // at most.
            3 => format!("=exact{i}.x{}.example\n", (i / 10) % 1_000),
            7 => format!("cdn-*-{i}.g{}.example\n", (i / 10) % 1_000),
            _ => format!("tracker{i}.ads{}.example\n", i % 1_000),
        };
        deny.push_str(&line);
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
        ("hit_exact", "exact99993.x999.example"),
        ("hit_label_wildcard", "cdn-eu-west-99997.g999.example"),
        (
            "hit_catalog_label_wildcard",
            "chatgpt-async-webps-prod-eastus-0.webpubsub.azure.com",
        ),
        ("miss", "www.nih.gov"),
        ("miss_under_exact", "www.exact99993.x999.example"),
        ("miss_beside_label_wildcard", "img-eu-99997.g999.example"),
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
