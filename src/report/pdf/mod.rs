//! The report as PDF: the same sections, order and figures as the HTML form, the bar
//! charts as vector bars, the heat strip as shaded cells, long tables paginated with
//! their header repeated, the reviewer sign-off block, a footer with page numbers. A4.
//!
//! Why `pdf-writer`: it is the low-level writer under typst and krilla, kept by the typst
//! project, without unsafe code, and its own dependencies (bitflags, itoa, memchr, ryu)
//! were already in the build; content streams are compressed with miniz_oxide, which the
//! PNG charts already bring. Text uses the PDF base-14 fonts Helvetica, Helvetica-Bold
//! and Courier, which every reader carries, so no font is embedded. printpdf 0.12 brings
//! a font-shaping and PDF-parsing stack and needs a newer Rust than this crate's 1.85;
//! krilla needs Rust 1.92 and a font to embed (hundreds of kilobytes per PDF, megabytes
//! for CJK); both solve shaping, which this report's text does not need. Base-14 text in
//! WinAnsiEncoding extracts with `pdftotext`; a character outside that encoding (CJK,
//! Greek, emoji) prints as `?` rather than failing, and the HTML form shows the name
//! whole. The page is A4; `layout.rs` fills it.

mod layout;

use pdf_writer::{Filter, Finish, Name, Pdf, Rect, Ref, TextStr};

use super::model::Report;
use super::view;
use crate::Result;
use layout::{
    col, head, mono, num, wrap, Doc, Font, BAD, CATEGORY, FLAGGED, GOOD, INK, LEFT, MUTED, PAGE_H,
    PAGE_W, WIDTH,
};

fn staff(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "unknown".into())
}

/// The report as an A4 PDF.
pub fn render(report: &Report) -> Result<Vec<u8>> {
    let mut d = Doc::new();
    let r = report;

    // Title.
    let title = format!("Shadow-AI report: {}", r.site);
    for line in wrap(Font::Bold, 20.0, &title, WIDTH) {
        d.text(LEFT, d.y - 20.0, Font::Bold, 20.0, &line, INK);
        d.y -= 25.0;
    }
    d.y -= 2.0;
    d.facts(
        &[
            ("Period", view::period_line(r)),
            (
                "Time zone",
                format!(
                    "{} (all days and hours in this report are local)",
                    r.period.timezone
                ),
            ),
            (
                "Generated",
                format!("{} by aiwarden {}", r.generated, r.version),
            ),
        ],
        70.0,
    );

    // Headline figures.
    d.heading("Headline figures", 60.0);
    let rows: Vec<Vec<String>> = view::figures(r)
        .into_iter()
        .map(|f| {
            vec![
                f.label.to_string(),
                view::num(f.value),
                view::num(f.previous),
                f.change,
            ]
        })
        .collect();
    d.table(
        &[
            head("Figure"),
            num("This period"),
            num("Previous period"),
            num("Change"),
        ],
        &rows,
    );

    // Services and categories.
    d.heading("Incidents by service and category", 80.0);
    d.subheading("Incidents by service");
    let bars: Vec<(String, u64, u64)> = r
        .services
        .iter()
        .map(|s| (s.name.clone(), s.incidents, s.blocked))
        .collect();
    d.bars(&bars, FLAGGED, true);
    let rows: Vec<Vec<String>> = r
        .services
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.service.clone(),
                s.category.clone(),
                view::num(s.incidents),
                view::num(s.attempts),
                view::num(s.blocked),
                view::num(s.devices),
            ]
        })
        .collect();
    d.table(
        &[
            head("Service"),
            mono("Id"),
            col("Category"),
            num("Incidents"),
            num("Attempts"),
            num("Blocked"),
            num("Devices"),
        ],
        &rows,
    );
    d.subheading("Incidents by category");
    let bars: Vec<(String, u64, u64)> = r
        .categories
        .iter()
        .map(|c| (c.name.clone(), c.count, 0))
        .collect();
    d.bars(&bars, CATEGORY, false);

    // Devices.
    d.page_break();
    d.heading("Incidents by device and staff", 60.0);
    let rows: Vec<Vec<String>> = r
        .devices
        .iter()
        .map(|x| {
            vec![
                x.device.clone(),
                staff(&x.staff),
                view::num(x.incidents),
                view::num(x.attempts),
                x.services.join(", "),
                view::num(x.open),
                view::num(x.acknowledged),
                view::followup_status(x.open, x.acknowledged).to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        d.para("No incidents in this period.", Font::Regular, 9.0, MUTED);
    } else {
        d.table(
            &[
                head("Device"),
                col("Staff"),
                num("Incidents"),
                num("Attempts"),
                col("Services"),
                num("Open"),
                num("Acked"),
                col("Follow-up"),
            ],
            &rows,
        );
    }
    if let Some(m) = view::more(r.truncated.devices) {
        d.para(
            &format!("{m} (devices with the fewest incidents)."),
            Font::Regular,
            9.0,
            MUTED,
        );
    }

    // Day and hour.
    d.page_break();
    d.heading("Incidents by day and hour", 80.0);
    d.para(
        "One row per local day, one cell per hour (00 to 23); darker cells had more incidents.",
        Font::Regular,
        9.0,
        MUTED,
    );
    d.heat(r);
    let rows: Vec<Vec<String>> = r
        .heat
        .iter()
        .map(|h| {
            vec![
                view::day_label(&h.day),
                view::num(h.total),
                view::busiest(h),
            ]
        })
        .collect();
    d.table(&[head("Day"), num("Incidents"), col("Busiest hour")], &rows);

    // Bypass.
    d.heading("Bypass attempts", 60.0);
    d.para(
        "Incidents whose traffic tried to get around the clinic's DNS or hide what it \
         reached. One incident may show several kinds.",
        Font::Regular,
        9.0,
        MUTED,
    );
    let rows: Vec<Vec<String>> = view::bypass(r)
        .into_iter()
        .map(|b| {
            vec![
                b.kind.to_string(),
                b.means.to_string(),
                view::num(b.incidents),
            ]
        })
        .collect();
    d.table(
        &[head("Kind"), col("What it means"), num("Incidents")],
        &rows,
    );

    // Inventory.
    d.page_break();
    d.heading("AI inventory", 60.0);
    d.para(
        "Every AI service any device reached in the period, allowed enterprise use \
         included, with the catalog's facts: the asset inventory a HIPAA risk analysis \
         needs. Allowed, flagged and blocked count attempts, not incidents.",
        Font::Regular,
        9.0,
        MUTED,
    );
    let rows: Vec<Vec<String>> = r
        .inventory
        .iter()
        .map(|i| {
            vec![
                i.name.clone(),
                i.vendor.clone(),
                i.category.clone(),
                i.baa.clone(),
                i.trains_on_data.clone(),
                i.residency.clone(),
                view::num(i.allowed),
                view::num(i.flagged),
                view::num(i.blocked),
            ]
        })
        .collect();
    if rows.is_empty() {
        d.para(
            "No AI service was reached in this period.",
            Font::Regular,
            9.0,
            MUTED,
        );
    } else {
        d.table(
            &[
                head("Service"),
                col("Vendor"),
                col("Category"),
                col("BAA"),
                col("Trains on data"),
                col("Residency"),
                num("Allowed"),
                num("Flagged"),
                num("Blocked"),
            ],
            &rows,
        );
    }
    d.subheading("What the BAA column means");
    let baa: Vec<(&str, String)> = view::BAA_MEANINGS
        .iter()
        .map(|(k, v)| (*k, v.to_string()))
        .collect();
    d.facts(&baa, 95.0);

    // Follow-ups.
    d.page_break();
    d.heading("Open follow-ups", 60.0);
    d.para(
        "A device and service with incidents nobody has acknowledged yet. Talk to the \
         staff member, then acknowledge the incident (aiwarden incidents ack, or the \
         console).",
        Font::Regular,
        9.0,
        MUTED,
    );
    let rows: Vec<Vec<String>> = r
        .open_followups
        .iter()
        .map(|o| {
            vec![
                o.device.clone(),
                staff(&o.staff),
                o.service.clone(),
                view::num(o.incidents),
                o.first_seen.clone(),
                o.last_seen.clone(),
                format!("#{}", o.incident),
            ]
        })
        .collect();
    if rows.is_empty() {
        d.para(
            "None: every incident has been acknowledged.",
            Font::Regular,
            9.0,
            MUTED,
        );
    } else {
        d.table(
            &[
                head("Device"),
                col("Staff"),
                col("Service"),
                num("Incidents"),
                col("First seen"),
                col("Last seen"),
                num("Oldest"),
            ],
            &rows,
        );
    }
    if let Some(m) = view::more(r.truncated.open_followups) {
        d.para(&format!("{m}."), Font::Regular, 9.0, MUTED);
    }

    d.heading("Acknowledged follow-ups", 60.0);
    let rows: Vec<Vec<String>> = r
        .acknowledged
        .iter()
        .map(|a| {
            vec![
                format!("#{}", a.incident),
                a.device.clone(),
                a.service.clone(),
                a.by.clone(),
                a.at.clone(),
                a.note.clone(),
            ]
        })
        .collect();
    if rows.is_empty() {
        d.para(
            "No acknowledgements were made in this period.",
            Font::Regular,
            9.0,
            MUTED,
        );
    } else {
        d.table(
            &[
                num("Incident"),
                head("Device"),
                col("Service"),
                col("By"),
                col("When"),
                col("Note"),
            ],
            &rows,
        );
    }
    if let Some(m) = view::more(r.truncated.acknowledged) {
        d.para(&format!("{m}."), Font::Regular, 9.0, MUTED);
    }

    // Rules.
    d.page_break();
    d.heading("Rules in force", 60.0);
    let enforcement = if r.rules.enforcement.is_empty() {
        "none active (monitor only)".to_string()
    } else {
        r.rules.enforcement.join("; ")
    };
    d.facts(
        &[
            ("Rules version", r.rules.version.clone()),
            ("Catalog services", view::num(r.rules.services)),
            (
                "Site allow list",
                format!("{} entries", view::num(r.rules.allow)),
            ),
            (
                "Site deny list",
                format!("{} entries", view::num(r.rules.deny)),
            ),
            ("Mode", r.rules.mode.clone()),
            ("Enforcement paths", enforcement),
        ],
        110.0,
    );
    d.subheading("Rule changes in the period");
    if r.rules.changes.is_empty() {
        d.para(
            "None: the same rules were in force all period.",
            Font::Regular,
            9.0,
            INK,
        );
    } else {
        let rows: Vec<Vec<String>> = r
            .rules
            .changes
            .iter()
            .map(|c| vec![c.name.clone(), view::num(c.count)])
            .collect();
        d.table(&[col("Change"), num("Times")], &rows);
    }

    // Evidence and sign-off.
    d.heading("Evidence", 120.0);
    let e = &r.evidence;
    let (word, colour) = if e.verified {
        ("verified", GOOD)
    } else {
        ("NOT verified", BAD)
    };
    d.need(12.0);
    d.text(LEFT, d.y - 9.0, Font::Bold, 9.0, "Chain verification", INK);
    d.text(LEFT + 150.0, d.y - 9.0, Font::Bold, 9.0, word, colour);
    d.y -= 12.0;
    let head_text = match &e.head {
        Some(h) => format!("row {}", h.id),
        None => "no row recorded before the period's end".into(),
    };
    let prev = match &e.previous_head {
        Some(c) => format!(
            "row {} (from {}): {}, {}",
            c.head.id,
            c.source,
            c.status,
            view::continuity_meaning(&c.status)
        ),
        None => "none: no earlier report or row to compare with".into(),
    };
    d.facts(
        &[
            ("Verification says", e.summary.clone()),
            ("Rows in the chain", view::num(e.rows)),
            (
                "Head file",
                if e.keyed {
                    "signed (keyed store)".into()
                } else {
                    "not signed (unkeyed store)".into()
                },
            ),
            ("Chain head at the period's end", head_text),
        ],
        150.0,
    );
    if let Some(h) = &e.head {
        d.need(12.0);
        d.text(LEFT + 150.0, d.y - 8.0, Font::Mono, 7.5, &h.hash, INK);
        d.y -= 14.0;
    }
    d.facts(&[("Last period's head", prev)], 150.0);
    if let Some(c) = &e.previous_head {
        d.need(12.0);
        d.text(LEFT + 150.0, d.y - 8.0, Font::Mono, 7.5, &c.head.hash, INK);
        d.y -= 14.0;
    }
    d.para(
        "Print this head with every report: next period's report checks that it is still \
         in the chain. What its status can be:",
        Font::Regular,
        9.0,
        MUTED,
    );
    let statuses: Vec<(&str, String)> = view::CONTINUITY_STATUSES
        .iter()
        .map(|s| (*s, view::continuity_meaning(s).to_string()))
        .collect();
    d.facts(&statuses, 70.0);
    d.sign_off();

    let footer = format!("aiwarden {} - {} - {}", r.version, r.site, r.period.label);
    let pages = d.finish(&footer);
    Ok(assemble(r, pages))
}

/// The PDF objects: catalog, page tree, fonts, pages and their compressed contents.
fn assemble(r: &Report, pages: Vec<Vec<u8>>) -> Vec<u8> {
    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let info = Ref::new(3);
    let fonts = [
        (Font::Regular, Ref::new(4), "Helvetica"),
        (Font::Bold, Ref::new(5), "Helvetica-Bold"),
        (Font::Mono, Ref::new(6), "Courier"),
    ];
    let first = 7;
    let ids: Vec<(Ref, Ref)> = (0..pages.len() as i32)
        .map(|i| (Ref::new(first + 2 * i), Ref::new(first + 2 * i + 1)))
        .collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(ids.iter().map(|(p, _)| *p))
        .count(ids.len() as i32);
    let title = format!("Shadow-AI report {} - {}", r.period.label, r.site);
    let producer = format!("aiwarden {}", r.version);
    pdf.document_info(info)
        .title(TextStr(&title))
        .producer(TextStr(&producer))
        .creator(TextStr(&producer));
    for (_, id, base) in fonts {
        pdf.type1_font(id)
            .base_font(Name(base.as_bytes()))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    for ((page_id, content_id), body) in ids.iter().zip(pages) {
        let mut page = pdf.page(*page_id);
        page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H))
            .parent(tree)
            .contents(*content_id);
        let mut res = page.resources();
        let mut f = res.fonts();
        for (font, id, _) in fonts {
            f.pair(font.name(), id);
        }
        f.finish();
        res.finish();
        page.finish();
        let packed = miniz_oxide::deflate::compress_to_vec_zlib(&body, 6);
        pdf.stream(*content_id, &packed).filter(Filter::FlateDecode);
    }
    pdf.finish()
}
