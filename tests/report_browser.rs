//! The HTML report in real headless Chromium (Debian's chromium and chromium-driver): the
//! sample week's report, as `aiwarden report` writes it, and a report whose device,
//! service and host names are hostile markup, open from a file without a console error
//! (a failed fetch or a script error would log one), build no `<script>`, `<img>` or
//! `<iframe>` element from the names, and show the names as text. Screenshots go to
//! `target/test-artifacts/report/`.

#[path = "support/browser.rs"]
mod browser;
#[path = "support/report_sample.rs"]
mod report_sample;

#[path = "support/sample_store.rs"]
mod sample_store;

use std::process::Command;

use browser::Browser;

const HOSTILE: [&str; 2] = [
    "<script>alert(1)</script>",
    "\"'><img src=x onerror=alert(1)>",
];

/// A report with hostile names where names come off the wire or from a DHCP lease.
fn hostile() -> aiwarden::report::Report {
    let mut r = report_sample::known();
    r.devices[0].device = HOSTILE[0].into();
    r.devices[1].device = HOSTILE[1].into();
    r.services[0].name = HOSTILE[1].into();
    r.open_followups[0].device = HOSTILE[0].into();
    r.inventory[0].name = HOSTILE[0].into();
    r.site = HOSTILE[1].into();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_opens_without_errors_and_hostile_names_stay_text() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let root = env!("CARGO_MANIFEST_DIR");

    // The sample week, recorded by replay and written by the report command.
    let db = dir.path().join("incidents.db");
    sample_store::record_sample(&db);
    let sample = dir.path().join("sample.html");
    let out = Command::new(env!("CARGO_BIN_EXE_aiwarden"))
        .current_dir(root)
        .args([
            "report",
            "--config",
            "samples/aiwarden.toml",
            "--week",
            "2026-W48",
        ])
        .args(["--format", "html", "--store"])
        .arg(&db)
        .arg("--out")
        .arg(&sample)
        .output()
        .expect("report");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let hostile_page = dir.path().join("hostile.html");
    std::fs::write(&hostile_page, aiwarden::report::html::render(&hostile())).expect("write");

    for (name, page) in [("sample", &sample), ("hostile", &hostile_page)] {
        browser.goto(&format!("file://{}", page.display())).await;
        let errors = browser.console_errors().await;
        assert!(errors.is_empty(), "{name}: console errors: {errors:?}");
        for tag in ["script", "img", "iframe", "object", "link"] {
            assert_eq!(
                browser.count(tag).await,
                0,
                "{name}: a <{tag}> element was built"
            );
        }
        assert!(browser.count("svg").await >= 2, "{name}: the charts");
        let shot = browser.screenshot(&format!("report/{name}.png")).await;
        eprintln!("{name}: {}", shot.display());
    }
    // The sample's figures as a reader sees them.
    browser.goto(&format!("file://{}", sample.display())).await;
    let title = browser.text("h1").await;
    assert!(title.contains("Sunrise Clinic"), "{title}");
    // The hostile names are on the page as text, exactly.
    browser
        .goto(&format!("file://{}", hostile_page.display()))
        .await;
    let body = browser.text("body").await;
    for h in HOSTILE {
        assert!(body.contains(h), "{h:?} not shown as text");
    }
    // Had either name run as markup, its alert() would be open and this WebDriver
    // command, like the ones above, would fail with "unexpected alert open".
    assert_eq!(browser.count("h1").await, 1);
    browser.close().await;
}
