//! The report's HTML, PDF, PNG and text forms, rendered from reports built by hand with
//! known figures: every figure is where it should be, hostile names stay text, the HTML
//! fetches nothing, the PDF's text extracts (`pdftotext`) and long tables paginate, the
//! charts rasterise with and without fonts, and a real Chromium shows no injected element.
//!
//! Long (about 800 lines) because the expected tables are written out row by row: the
//! figures are checked against literals, not recomputed from the report.

#[path = "support/report_sample.rs"]
mod sample;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use aiwarden::report::charts::{self, Charts};
use aiwarden::report::{html, pdf, text};

const SCRIPT: &str = "<script>alert(1)</script>";
const QUOTES: &str = "\"'><img src=x onerror=alert(1)>";

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&#60;", "<")
        .replace("&gt;", ">")
        .replace("&#62;", ">")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
        .replace("&#38;", "&")
}

/// How often `raw` appears escaped in `html`, by askama (`&#60;`) or by the charts
/// (`&lt;`).
fn escaped_count(html: &str, raw: &str) -> usize {
    let named = raw
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;");
    let numeric = raw
        .replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;");
    html.matches(&named).count() + html.matches(&numeric).count()
}

/// The text of every cell of every row of the tables in section `id`, tags stripped and
/// entities decoded.
fn rows(html: &str, id: &str) -> Vec<Vec<String>> {
    let start = html
        .find(&format!("<section id=\"{id}\""))
        .unwrap_or_else(|| panic!("no section {id}"));
    let end = start + html[start..].find("</section>").expect("section end");
    let section = &html[start..end];
    let mut out = Vec::new();
    for tr in section.split("<tr>").skip(1) {
        let tr = tr.split("</tr>").next().unwrap_or("");
        let mut cells = Vec::new();
        let mut rest = tr;
        while let Some(at) = rest.find("<t") {
            let open_end = at + rest[at..].find('>').expect("tag end") + 1;
            let tag = &rest[at + 1..at + 3];
            let close = format!("</{tag}>");
            let Some(len) = rest[open_end..].find(&close) else {
                break;
            };
            let inner = &rest[open_end..open_end + len];
            cells.push(unescape(&strip_tags(inner)));
            rest = &rest[open_end + len + close.len()..];
        }
        out.push(cells);
    }
    out
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.trim().to_string()
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

#[test]
fn html_has_every_figure_and_table_value() {
    let r = sample::known();
    let html = html::render(&r);
    // Title block.
    assert!(html.contains("Shadow-AI report: Riverside Family Clinic"));
    assert!(html.contains("2026-W48 (2026-11-23 to 2026-11-29, America/New_York)"));
    assert!(html.contains("compared with 2026-W47 (2026-11-16 to 2026-11-22)"));
    assert!(html.contains("2026-11-30 06:00"));

    // Headline figures, value, previous value and change, in order.
    let figures: Vec<(String, String, String)> = html
        .split("<div class=\"figure\">")
        .skip(1)
        .map(|f| {
            let pick = |class: &str| {
                let at = f.find(&format!("class=\"{class}")).expect(class);
                let body = &f[at..];
                let open = body.find('>').expect(">") + 1;
                let close = body.find("</div>").expect("</div>");
                unescape(&strip_tags(&body[open..close]))
            };
            (pick("label"), pick("value"), pick("change"))
        })
        .collect();
    let want = [
        ("Incidents", "12", "\u{25b2} +33% (previous 9)"),
        ("Attempts", "1,234", "\u{25b2} +23% (previous 1,000)"),
        ("Devices", "6", "\u{25b2} +50% (previous 4)"),
        ("Staff", "2", "= no change (previous 2)"),
        ("Services", "3", "\u{25b2} +50% (previous 2)"),
        ("Blocked", "8", "\u{25bc} -11% (previous 9)"),
        ("Flagged only", "4", "\u{25b2} new (previous 0)"),
        ("Bypass attempts", "2", "\u{25b2} new (previous 0)"),
        ("Still open", "9", "\u{25b2} +200% (previous 3)"),
    ];
    assert_eq!(figures.len(), want.len(), "{figures:?}");
    for ((label, value, change), (wl, wv, wc)) in figures.iter().zip(want) {
        assert_eq!(
            (label.as_str(), value.as_str(), change.as_str()),
            (wl, wv, wc)
        );
    }

    let services = rows(&html, "services");
    assert_eq!(
        services,
        vec![
            row(&[
                "Service",
                "Id",
                "Category",
                "Incidents",
                "Attempts",
                "Blocked",
                "Devices"
            ]),
            row(&["ChatGPT", "chatgpt", "chatbot", "7", "1,100", "5", "3"]),
            row(&["Claude", "claude", "chatbot", "3", "120", "3", "2"]),
            row(&[
                "DeepL Translator",
                "deepl",
                "translation",
                "2",
                "14",
                "0",
                "1"
            ]),
            row(&["Category", "Incidents"]),
            row(&["chatbot", "10"]),
            row(&["translation", "2"]),
        ]
    );
    let devices = rows(&html, "devices");
    assert_eq!(
        devices[1..],
        [
            row(&[
                "front-desk-1",
                "Zoë Müller",
                "6",
                "930",
                "ChatGPT, Claude",
                "4",
                "2",
                "partly done"
            ]),
            row(&[
                "exam-room-3",
                "Dr. Ana Patel",
                "4",
                "290",
                "ChatGPT, DeepL Translator",
                "3",
                "1",
                "partly done"
            ]),
            row(&[
                "aa:bb:cc:dd:ee:01",
                "unknown",
                "2",
                "14",
                "Claude",
                "0",
                "2",
                "done"
            ]),
        ]
    );
    assert!(html.contains("and 3 more not listed (devices with the fewest incidents)."));

    let heat = rows(&html, "heat");
    assert_eq!(
        heat[1..],
        [
            row(&["Mon 2026-11-23", "3", "09:00-10:00 (2)"]),
            row(&["Tue 2026-11-24", "3", "14:00-15:00 (3)"]),
            row(&["Wed 2026-11-25", "2", "08:00-09:00 (1)"]),
            row(&["Thu 2026-11-26", "0", "none"]),
            row(&["Fri 2026-11-27", "3", "11:00-12:00 (2)"]),
            row(&["Sat 2026-11-28", "1", "22:00-23:00 (1)"]),
            row(&["Sun 2026-11-29", "0", "none"]),
        ]
    );
    // The strip: 7 days of 24 cells, plus the legend's swatches.
    let heat_svg = &charts::Charts::of(&r).heat.svg;
    assert_eq!(heat_svg.matches(":00-").count(), 7 * 24);
    assert!(heat_svg.contains("Fri 2026-11-27 11:00-12:00: 2"));

    let bypass = rows(&html, "bypass");
    let counts: Vec<(String, String)> = bypass[1..]
        .iter()
        .map(|r| (r[0].clone(), r[2].clone()))
        .collect();
    assert_eq!(
        counts,
        [
            ("Encrypted DNS (DoH/DoT)", "1"),
            ("Encrypted Client Hello (ECH)", "0"),
            ("Unexplained connections", "1"),
            ("Proxies", "0"),
            ("QUIC (HTTP/3)", "1"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );

    let inventory = rows(&html, "inventory");
    assert_eq!(
        inventory[1],
        row(&[
            "Azure OpenAI (clinic tenant)",
            "Microsoft",
            "chatbot",
            "available",
            "no",
            "US (customer-chosen region)",
            "480",
            "0",
            "0"
        ])
    );
    assert_eq!(
        inventory[2],
        row(&[
            "ChatGPT",
            "OpenAI",
            "chatbot",
            "enterprise_only",
            "opt_out",
            "US",
            "0",
            "300",
            "800"
        ])
    );
    assert_eq!(inventory.len(), 5);
    assert!(html.contains("<dt>enterprise_only</dt><dd>a BAA only on enterprise or business plans"));

    let open = rows(&html, "open");
    assert_eq!(
        open[1..],
        [
            row(&[
                "front-desk-1",
                "Zoë Müller",
                "ChatGPT",
                "3",
                "2026-11-23 09:12",
                "2026-11-27 11:40",
                "#4101"
            ]),
            row(&[
                "exam-room-3",
                "Dr. Ana Patel",
                "DeepL Translator",
                "2",
                "2026-11-24 14:05",
                "2026-11-24 14:31",
                "#4107"
            ]),
        ]
    );
    assert!(html.contains("and 4 more not listed."));
    let acked = rows(&html, "acknowledged");
    assert_eq!(
        acked[1],
        row(&[
            "#4090",
            "aa:bb:cc:dd:ee:01",
            "Claude",
            "compliance-jane",
            "2026-11-25 10:02",
            "Spoke with the locum; personal device, removed from the clinic Wi-Fi."
        ])
    );
    assert_eq!(acked.len(), 3);

    let rules = unescape(&html);
    for s in [
        "<code>3f9c2a1b4d5e6f70</code>",
        "<dt>Catalog services</dt><dd>142</dd>",
        "<dd>3 entries</dd>",
        "<dd>2 entries</dd>",
        "<dt>Mode</dt><dd>enforce</dd>",
        "<li>dns: blocked names answered 0.0.0.0 and ::</li>",
        "<td>2026-11-25 14:02 rules 3f9c2a1b4d5e6f70</td>",
        // Evidence.
        "verified</span>: chain intact: 5021 rows",
        "<dd>5,021</dd>",
        "signed (keyed store)",
        "row 5020, hash",
        "row 4012, hash",
        "(from 2026-W47.json)",
        ">present</strong>, last period's head is still in the chain",
        "Reviewed by ____",
        "Date ____",
        "Signature ____",
        "45 CFR 164.308(a)(1)(ii)(D)",
        "Metadata only",
    ] {
        assert!(rules.contains(s), "missing {s:?}");
    }
    assert!(html.contains(sample::HEAD_HASH));
    assert!(html.contains(sample::PREVIOUS_HASH));

    // Sections in the order.
    let order = [
        "headline",
        "services",
        "devices",
        "heat",
        "bypass",
        "inventory",
        "open",
        "acknowledged",
        "rules",
        "evidence",
    ];
    let at: Vec<usize> = order
        .iter()
        .map(|id| html.find(&format!("<section id=\"{id}\"")).expect(id))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
}

#[test]
fn html_is_self_contained() {
    let html = html::render(&sample::at_caps());
    let lower = html.to_lowercase();
    for bad in [
        "<script", "http://", "https://", "<link", "@import", "url(", "<iframe", "<object",
        "<embed", " on",
    ] {
        if bad == " on" {
            // No event handler attributes anywhere (` onload=`, ` onerror=`).
            assert!(
                !lower.split('<').any(|tag| {
                    let tag = tag.split('>').next().unwrap_or("");
                    tag.split_whitespace().skip(1).any(|a| a.starts_with("on"))
                }),
                "event handler attribute"
            );
            continue;
        }
        assert!(!lower.contains(bad), "{bad} in the report");
    }
    // The only links are to the page's own sections, and nothing is loaded by src.
    for attr in ["href=\"", "src=\""] {
        for part in html.split(attr).skip(1) {
            assert!(
                part.starts_with('#'),
                "{attr}{}",
                &part[..part.len().min(40)]
            );
        }
    }
    assert!(lower.contains("@media print"));
    assert!(lower.contains("break-before: page"));
    assert!(lower.contains("display: table-header-group"));
    // Charts are inline SVG with an accessible name.
    assert_eq!(html.matches("<svg ").count(), 3);
    assert_eq!(html.matches("role=\"img\" aria-label=").count(), 3);
}

fn hostile() -> aiwarden::report::Report {
    let mut r = sample::known();
    r.site = format!("Clinic {SCRIPT}");
    r.services[0].name = SCRIPT.into();
    r.services[0].service = QUOTES.into();
    r.services[1].name = QUOTES.into();
    r.categories[0].name = SCRIPT.into();
    r.devices[0].device = SCRIPT.into();
    r.devices[1].device = QUOTES.into();
    r.devices[1].staff = Some(SCRIPT.into());
    r.devices[0].services = vec![QUOTES.into()];
    r.inventory[1].name = QUOTES.into();
    r.inventory[1].residency = SCRIPT.into();
    r.open_followups[0].device = QUOTES.into();
    r.acknowledged[0].note = SCRIPT.into();
    r.acknowledged[1].by = QUOTES.into();
    r.rules.enforcement.push(SCRIPT.into());
    r.evidence.summary = QUOTES.into();
    r
}

#[test]
fn hostile_names_appear_only_escaped() {
    let r = hostile();
    for (form, html) in [("page", html::render(&r)), ("email", html::email_html(&r))] {
        assert!(!html.contains(SCRIPT), "{form}: raw script tag");
        assert!(!html.contains("<img src=x"), "{form}: raw img tag");
        assert!(!html.contains(QUOTES), "{form}: raw quotes");
        assert!(!html.contains("<script"), "{form}");
        // In the title, the tables (service, category, device, staff, inventory, note,
        // enforcement) and, for the page, the SVG.
        assert!(
            escaped_count(&html, SCRIPT) >= 8,
            "{form}: {}",
            escaped_count(&html, SCRIPT)
        );
        assert!(
            escaped_count(&html, QUOTES) >= 5,
            "{form}: {}",
            escaped_count(&html, QUOTES)
        );
        let devices = rows(&html, "devices");
        assert_eq!(devices[1][0], SCRIPT);
        assert_eq!(devices[2][0], QUOTES);
        assert_eq!(devices[2][1], SCRIPT);
        assert_eq!(rows(&html, "open")[1][0], QUOTES);
        assert_eq!(rows(&html, "acknowledged")[1][5], SCRIPT);
    }
    let charts = Charts::of(&r);
    let svg = &charts.services.svg;
    assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(svg.contains("&quot;&#39;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(!svg.contains(SCRIPT) && !svg.contains("<img"));
    assert!(charts
        .categories
        .svg
        .contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    // And the page carries that SVG as it is.
    let page = html::render(&r);
    assert!(page.contains(svg.as_str()));
    // The PDF and the text form take any name.
    assert!(pdf::render(&r).expect("pdf").starts_with(b"%PDF-"));
    assert!(text::render(&r).contains(SCRIPT));
}

/// Headless Chromium opens the hostile report: the DOM it builds has no element the names
/// tried to inject, and the names show as text.
#[test]
fn chromium_builds_no_injected_element() {
    let Some(chromium) = chromium() else {
        eprintln!("skipped: chromium is not installed (scripts/setup-debian.sh installs it)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("hostile.html");
    std::fs::write(&file, html::render(&hostile())).expect("write");
    let out = Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("file://{}", file.display()))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("Riverside") || dom.contains("Clinic"),
        "no DOM: {dom:.200}"
    );
    assert!(!dom.contains("<script"), "a script element was built");
    assert!(!dom.contains("<img"), "an img element was built");
    assert!(dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
}

fn chromium() -> Option<&'static str> {
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
}

fn tool(name: &str) -> bool {
    Command::new(name).arg("-v").output().is_ok()
}

fn pdf_text(pdf: &[u8], layout: bool) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("report.pdf");
    std::fs::write(&path, pdf).expect("write");
    let mut cmd = Command::new("pdftotext");
    if layout {
        cmd.arg("-layout");
    }
    let out = cmd.arg(&path).arg("-").output().expect("pdftotext");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn pdf_pages(pdf: &[u8]) -> u32 {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("report.pdf");
    std::fs::write(&path, pdf).expect("write");
    let out = Command::new("pdfinfo")
        .arg(&path)
        .output()
        .expect("pdfinfo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = String::from_utf8_lossy(&out.stdout);
    let pages = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .expect("Pages line");
    pages.trim().parse().expect("page count")
}

/// A line of `text` holding every one of `words`, in order, each with whitespace or the
/// line's end on both sides.
fn has_line(text: &str, words: &[&str]) -> bool {
    text.lines().any(|line| {
        let mut from = 0;
        words.iter().all(|w| {
            let mut at = from;
            while let Some(i) = line[at..].find(w) {
                let start = at + i;
                let end = start + w.len();
                let before = line[..start]
                    .chars()
                    .next_back()
                    .is_none_or(char::is_whitespace);
                let after = line[end..].chars().next().is_none_or(char::is_whitespace);
                if before && after {
                    from = end;
                    return true;
                }
                at = start + line[start..].chars().next().map_or(1, char::len_utf8);
            }
            false
        })
    })
}

#[test]
fn pdf_has_the_same_figures() {
    if !tool("pdftotext") {
        eprintln!("skipped: pdftotext is not installed (poppler-utils; scripts/setup-debian.sh)");
        return;
    }
    let r = sample::known();
    let bytes = pdf::render(&r).expect("pdf");
    assert!(bytes.starts_with(b"%PDF-"));
    let t = pdf_text(&bytes, true);
    assert!(
        t.contains("Shadow-AI report: Riverside Family Clinic"),
        "{t}"
    );
    assert!(t.contains("2026-W48 (2026-11-23 to 2026-11-29, America/New_York)"));
    for (label, value, previous, change) in [
        ("Incidents", "12", "9", "+33%"),
        ("Attempts", "1,234", "1,000", "+23%"),
        ("Devices", "6", "4", "+50%"),
        ("Staff", "2", "2", "no change"),
        ("Services", "3", "2", "+50%"),
        ("Blocked", "8", "9", "-11%"),
        ("Flagged only", "4", "0", "new"),
        ("Bypass attempts", "2", "0", "new"),
        ("Still open", "9", "3", "+200%"),
    ] {
        assert!(
            has_line(&t, &[label, value, previous, change]),
            "headline {label}:\n{t}"
        );
    }
    assert!(has_line(
        &t,
        &["ChatGPT", "chatgpt", "chatbot", "7", "1,100", "5", "3"]
    ));
    assert!(has_line(
        &t,
        &[
            "DeepL Translator",
            "deepl",
            "translation",
            "2",
            "14",
            "0",
            "1"
        ]
    ));
    assert!(has_line(&t, &["front-desk-1", "Zoë Müller", "6", "930"]));
    assert!(has_line(
        &t,
        &[
            "aa:bb:cc:dd:ee:01",
            "unknown",
            "2",
            "14",
            "Claude",
            "0",
            "2",
            "done"
        ]
    ));
    assert!(has_line(
        &t,
        &[
            "Azure OpenAI",
            "Microsoft",
            "chatbot",
            "available",
            "no",
            "480",
            "0",
            "0"
        ]
    ));
    assert!(has_line(&t, &["Encrypted DNS (DoH/DoT)"]) && has_line(&t, &["QUIC (HTTP/3)"]));
    assert!(has_line(&t, &["Mon 2026-11-23", "3", "09:00-10:00 (2)"]));
    assert!(t.contains("and 3 more not listed"));
    assert!(t.contains("and 4 more not listed"));
    assert!(t.contains("#4101") && t.contains("#4090"));
    assert!(t.contains("compliance-jane"));
    assert!(t.contains("3f9c2a1b4d5e6f70"));
    assert!(t.contains("chain intact: 5021 rows"));
    assert!(t.contains(sample::HEAD_HASH), "head hash");
    assert!(t.contains(sample::PREVIOUS_HASH), "previous head hash");
    assert!(t.contains("present, last period's head is still in the chain"));
    assert!(t.contains("Reviewed by ____"));
    assert!(t.contains("Signature ____"));
    assert!(t.contains("45 CFR 164.308(a)(1)(ii)(D)"));
    assert!(t.contains("Metadata only"));
    // Sections in the HTML's order.
    let order = [
        "Headline figures",
        "Incidents by service and category",
        "Incidents by device and staff",
        "Incidents by day and hour",
        "Bypass attempts",
        "AI inventory",
        "Open follow-ups",
        "Acknowledged follow-ups",
        "Rules in force",
        "Evidence",
        "Reviewer sign-off",
    ];
    // Each heading after the one before ("Bypass attempts" is a headline figure too).
    let lines: Vec<&str> = t
        .lines()
        .map(|l| l.trim_matches(|c: char| c.is_whitespace() || c == '\x0c'))
        .collect();
    let mut from = 0;
    for heading in order {
        let at = lines[from..]
            .iter()
            .position(|l| *l == heading)
            .unwrap_or_else(|| panic!("{heading} after line {from}"));
        from += at + 1;
    }
}

#[test]
fn pdf_prints_what_its_font_can_and_replaces_the_rest() {
    if !tool("pdftotext") {
        eprintln!("skipped: pdftotext is not installed (poppler-utils; scripts/setup-debian.sh)");
        return;
    }
    let mut r = sample::known();
    r.devices[0].staff = Some("Zoë Müller-Éclair".into());
    r.devices[1].staff = Some("山田太郎".into());
    r.devices[2].device = "tablette-réception-ü".into();
    r.services[0].name = "ΑΙ Βοηθός 🤖".into();
    let t = pdf_text(&pdf::render(&r).expect("pdf renders"), false);
    assert!(t.contains("Zoë Müller-Éclair"));
    assert!(t.contains("tablette-réception-ü"));
    assert!(t.contains("????"), "CJK as ?");
    assert!(!t.contains("山田"));
}

#[test]
fn pdf_paginates_long_tables_with_their_header() {
    if !tool("pdftotext") {
        eprintln!("skipped: pdftotext/pdfinfo are not installed (poppler-utils)");
        return;
    }
    let r = sample::at_caps();
    assert_eq!(r.open_followups.len(), 300);
    let bytes = pdf::render(&r).expect("pdf");
    let pages = pdf_pages(&bytes);
    assert!(pages > 10, "{pages} pages");
    let t = pdf_text(&bytes, true);
    // 300 follow-ups at about 55 a page: the header on each of their pages.
    let headers = t
        .lines()
        .filter(|l| {
            has_line(
                l,
                &["Device", "Staff", "Service", "Incidents", "First seen"],
            )
        })
        .count();
    assert!(headers >= 5, "{headers} follow-up headers");
    for i in [0, 150, 299] {
        assert!(t.contains(&format!("#{}", 100_000 + i)), "follow-up {i}");
    }
    assert!(t.contains(&format!("page {pages} of {pages}")));
    assert!(t.contains("and 1,200 more not listed"));
}

/// Width and height of a PNG from its IHDR chunk, after checking the signature.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&png[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&png[16..20]), be(&png[20..24]))
}

#[test]
fn charts_rasterise_to_png_for_email() {
    let r = sample::known();
    let charts = Charts::of(&r);
    let pngs = charts::png(&r);
    let cids: Vec<&str> = pngs.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        cids,
        [
            "chart-services@aiwarden",
            "chart-categories@aiwarden",
            "chart-heat@aiwarden"
        ]
    );
    for ((cid, png), chart) in pngs.iter().zip(charts.all()) {
        let (w, h) = png_size(png);
        assert_eq!((w, h), (chart.width * 2, chart.height * 2), "{cid}");
        assert!(
            (600..=2000).contains(&w) && (100..=3000).contains(&h),
            "{cid}: {w}x{h}"
        );
    }
    // The email body names exactly those parts and carries no SVG.
    let email = html::email_html(&r);
    assert!(!email.contains("<svg"));
    for cid in &cids {
        assert_eq!(
            email.matches(&format!("src=\"cid:{cid}\"")).count(),
            1,
            "{cid}"
        );
    }
    for part in email.split("src=\"").skip(1) {
        assert!(part.starts_with("cid:"), "{}", &part[..40.min(part.len())]);
    }

    // Without a single font the bars are still drawn, and differ from the ones with text.
    let bare = charts::png_with(&r, Arc::new(resvg::usvg::fontdb::Database::new()));
    assert_eq!(bare.len(), 3);
    for ((_, with_text), (_, without)) in pngs.iter().zip(&bare) {
        assert_eq!(png_size(with_text), png_size(without));
        assert_ne!(with_text, without);
    }
    // With the system's fonts, text was drawn: DejaVu is what setup-debian.sh installs.
    if Path::new("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf").exists() {
        assert!(pngs[0].1.len() > bare[0].1.len(), "text adds ink");
    }
}

#[test]
fn text_summary_has_the_headline() {
    let t = text::render(&sample::known());
    assert!(t.starts_with("Shadow-AI report: Riverside Family Clinic\n"));
    assert!(
        t.contains("  Incidents                  12          9   +33%\n"),
        "{t}"
    );
    assert!(t.contains("  Attempts                1,234      1,000   +23%\n"));
    assert!(t.contains("  Bypass attempts             2          0   new\n"));
    assert!(t.contains("  ChatGPT                               7        5\n"));
    assert!(t.contains("OPEN FOLLOW-UPS: 6\n"));
    assert!(
        t.contains("  front-desk-1 (Zoë Müller): ChatGPT, 3 incidents since 2026-11-23 09:12\n")
    );
    assert!(t.contains("ACKNOWLEDGED IN THE PERIOD: 2\n"));
    assert!(t.contains(sample::HEAD_HASH));
    assert!(t.contains("last period's head, row 4012: present"));
}
