//! The report as one self-contained HTML file: inline CSS and inline SVG charts, no
//! scripts, nothing fetched (no fonts, images or style sheets by URL), readable on a
//! laptop and printing cleanly on A4 or Letter. [`email_html`] is the same page with
//! `<img src="cid:...">` where the SVG charts were, for an email body whose PNG parts
//! [`charts::png`](super::charts::png) makes.
//!
//! The template is `templates/report.html` (askama, HTML escaping on for every value).
//! The only unescaped insertion is each chart's SVG, which `charts.rs` builds escaping
//! every string it takes from the report.

use askama::Template;

use super::charts::Charts;
use super::model::{HeatDay, Report};
use super::view::{self, BypassRow, Figure};

/// The page's values: the report and what `view` words from it.
#[derive(Template)]
#[template(path = "report.html")]
struct Page<'a> {
    r: &'a Report,
    period_line: String,
    figures: Vec<Figure>,
    bypass: Vec<BypassRow>,
    baa: &'static [(&'static str, &'static str)],
    statuses: &'static [&'static str],
    charts: Charts,
    email: bool,
    sign_off: &'static str,
    sign_off_why: &'static str,
    metadata_only: &'static str,
}

/// The report as a self-contained HTML page with inline SVG charts.
pub fn render(report: &Report) -> String {
    page(report, false)
}

/// The report as an email body: the page of [`render`] with each chart an
/// `<img src="cid:...">` naming the PNG part [`charts::png`](super::charts::png) returns
/// under that Content-ID.
pub fn email_html(report: &Report) -> String {
    page(report, true)
}

fn page(report: &Report, email: bool) -> String {
    let page = Page {
        r: report,
        period_line: view::period_line(report),
        figures: view::figures(report),
        bypass: view::bypass(report),
        baa: &view::BAA_MEANINGS,
        statuses: &view::CONTINUITY_STATUSES,
        charts: Charts::of(report),
        email,
        sign_off: view::SIGN_OFF,
        sign_off_why: view::SIGN_OFF_WHY,
        metadata_only: view::METADATA_ONLY,
    };
    // Rendering to a String fails only if a value's Display fails, which none of these
    // does; an empty page would be noticed at once.
    page.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "report page not rendered");
        String::new()
    })
}

// The template calls these with references to the report's values.

/// A count with thousands separators.
fn num(n: &u64) -> String {
    view::num(*n)
}

/// A device's follow-up status.
fn status(open: &u64, acknowledged: &u64) -> &'static str {
    view::followup_status(*open, *acknowledged)
}

/// `and N more`.
fn more(n: &u64) -> Option<String> {
    view::more(*n)
}

/// A day's busiest hour.
fn busiest(day: &HeatDay) -> String {
    view::busiest(day)
}

/// A day with its weekday.
fn day(d: &str) -> String {
    view::day_label(d)
}

/// What a continuity status means.
fn continuity(status: &str) -> &'static str {
    view::continuity_meaning(status)
}
