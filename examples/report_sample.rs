//! Writes the hand-built sample report (a small clinic's week) as HTML, PDF, email HTML
//! with its chart PNGs, and text into a directory, for screenshots and for looking at:
//! `cargo run --example report_sample -- DIR`.

use std::path::PathBuf;

use aiwarden::report::{charts, html, pdf, text};

#[path = "../tests/support/report_sample.rs"]
mod sample;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "report-sample".into()),
    );
    std::fs::create_dir_all(&dir)?;
    let report = match std::env::args().nth(2).as_deref() {
        Some("caps") => sample::at_caps(),
        _ => sample::known(),
    };
    std::fs::write(dir.join("report.html"), html::render(&report))?;
    std::fs::write(dir.join("report.pdf"), pdf::render(&report)?)?;
    std::fs::write(dir.join("email.html"), html::email_html(&report))?;
    std::fs::write(dir.join("report.txt"), text::render(&report))?;
    for (cid, png) in charts::png(&report) {
        let name = cid.split('@').next().unwrap_or("chart");
        std::fs::write(dir.join(format!("{name}.png")), png)?;
    }
    println!("{}", dir.display());
    Ok(())
}
