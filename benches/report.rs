//! Rendering a report whose lists are all at their caps (200 devices, 300 open
//! follow-ups, 300 acknowledgements, 60 services, 31 days of heat) to HTML, PDF, email
//! PNGs and text: what `aiwarden report` adds after the store scan.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

use aiwarden::report::{charts, html, pdf, text};

#[path = "../tests/support/report_sample.rs"]
mod sample;

fn render(c: &mut Criterion) {
    let report = sample::at_caps();
    let mut g = c.benchmark_group("report_at_caps");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("html", |b| b.iter(|| html::render(black_box(&report))));
    g.bench_function("pdf", |b| {
        b.iter(|| pdf::render(black_box(&report)).expect("pdf"))
    });
    g.bench_function("email_html", |b| {
        b.iter(|| html::email_html(black_box(&report)))
    });
    g.bench_function("png", |b| b.iter(|| charts::png(black_box(&report))));
    g.bench_function("text", |b| b.iter(|| text::render(black_box(&report))));
    g.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
