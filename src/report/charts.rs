//! The report's charts as SVG, and the same charts as PNG for email bodies (mail clients
//! drop inline SVG): incidents by service and by category as horizontal bars with their
//! numbers as text, and the heat strip (one row per local day, 24 hourly cells shaded by
//! count, with a legend).
//!
//! Names in the charts come off the wire (service ids from deny rules, host names) and
//! are hostile: every string from the report passes through [`esc`] before it enters the
//! SVG, so the HTML form may insert these strings as they are. The SVG carries no
//! `xmlns` (HTML's parser puts `<svg>` in the SVG namespace itself, and a report must not
//! contain a single URL); [`png`] adds it for the rasteriser.
//!
//! PNGs are drawn with resvg from the same SVG, with the system's fonts (Debian's
//! `fonts-dejavu-core`); on a machine without fonts the bars are drawn without text rather
//! than not at all.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use resvg::{tiny_skia, usvg};

use super::model::Report;
use super::view;

/// Font families for chart text: the browser's own UI font first, DejaVu Sans (what a
/// Debian appliance has for the PNGs) before the generic fallback.
const FONTS: &str = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, 'DejaVu Sans', \
                     'Liberation Sans', sans-serif";
/// Chart width in CSS pixels (the PNG is twice as many for sharp text on modern screens).
const WIDTH: u32 = 640;
/// PNG pixels per SVG pixel.
const PNG_SCALE: f32 = 2.0;
/// Colour of blocked incidents' bars.
const BLOCKED: &str = "#1e3a8a";
/// Colour of flagged-only incidents' bars (they got through).
const FLAGGED: &str = "#f59e0b";
/// Colour of category bars.
const CATEGORY: &str = "#2563eb";
/// Text colour (contrast above 15:1 on white).
const INK: &str = "#111827";
/// Longest label shown beside a bar, in characters; the whole name is in the bar's
/// `<title>` and in the table below the chart.
const LABEL_CHARS: usize = 28;

/// One chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    /// The email body's name for its PNG: `<img src="cid:...">` and the part's
    /// `Content-ID`.
    pub cid: &'static str,
    /// What it shows, for headings and `alt` text.
    pub title: &'static str,
    /// The SVG element, every report string in it escaped.
    pub svg: String,
    /// Width in CSS pixels.
    pub width: u32,
    /// Height in CSS pixels.
    pub height: u32,
}

/// The report's three charts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charts {
    /// Incidents by service, blocked and flagged-only parts.
    pub services: Chart,
    /// Incidents by category.
    pub categories: Chart,
    /// Incidents by local day and hour.
    pub heat: Chart,
}

impl Charts {
    /// The charts of `report`, with text.
    pub fn of(report: &Report) -> Charts {
        Charts::drawn(report, true)
    }

    /// The charts, with or without text (without: no font to draw it with).
    fn drawn(report: &Report, text: bool) -> Charts {
        Charts {
            services: services(report, text),
            categories: categories(report, text),
            heat: heat(report, text),
        }
    }

    /// All three, in the order the report shows them.
    pub fn all(&self) -> [&Chart; 3] {
        [&self.services, &self.categories, &self.heat]
    }
}

/// `s` safe as SVG or HTML text and as a quoted attribute value.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML; the rasteriser would refuse
            // the whole chart for one odd host name.
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// `s` cut to `n` characters with an ellipsis.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('\u{2026}');
    out
}

/// One bar: a label, the whole value and the part of it drawn dark.
struct Bar<'a> {
    label: &'a str,
    value: u64,
    dark: u64,
}

/// The opening tag of a chart's SVG with its accessible name.
fn open(svg: &mut String, width: u32, height: u32, label: &str) {
    let _ = write!(
        svg,
        "<svg viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" \
         role=\"img\" aria-label=\"{l}\" font-family=\"{FONTS}\" font-size=\"12\">\
         <title>{l}</title><rect width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>",
        l = esc(label),
    );
}

/// A horizontal bar chart: label, bar (dark part first), value.
fn bar_chart(
    cid: &'static str,
    title: &'static str,
    bars: &[Bar<'_>],
    legend: Option<[(&str, &str); 2]>,
    light: &str,
    text: bool,
) -> Chart {
    const ROW: u32 = 22;
    const BAR: u32 = 14;
    const LABEL_W: u32 = 200;
    const VALUE_W: u32 = 70;
    let top = if legend.is_some() { 28 } else { 8 };
    let rows = bars.len().max(1) as u32;
    let height = top + rows * ROW + 8;
    let area = (WIDTH - LABEL_W - VALUE_W - 16) as f64;
    let max = bars.iter().map(|b| b.value).max().unwrap_or(0).max(1) as f64;
    let mut svg = String::with_capacity(256 + bars.len() * 400);
    open(&mut svg, WIDTH, height, title);
    if let (Some(items), true) = (legend, text) {
        let mut x = 8;
        for (colour, name) in items {
            let _ = write!(
                svg,
                "<rect x=\"{x}\" y=\"8\" width=\"12\" height=\"12\" fill=\"{colour}\"/>\
                 <text x=\"{}\" y=\"18\" fill=\"{INK}\">{}</text>",
                x + 16,
                esc(name)
            );
            x += 120;
        }
    }
    if bars.is_empty() && text {
        let _ = write!(
            svg,
            "<text x=\"8\" y=\"{}\" fill=\"{INK}\">No incidents in this period</text>",
            top + 15
        );
    }
    for (i, b) in bars.iter().enumerate() {
        let y = top + i as u32 * ROW;
        let full = (b.value as f64 / max * area).max(if b.value > 0 { 2.0 } else { 0.0 });
        let dark = if b.value == 0 {
            0.0
        } else {
            full * b.dark.min(b.value) as f64 / b.value as f64
        };
        let x0 = (LABEL_W + 8) as f64;
        let name = esc(b.label);
        let _ = write!(svg, "<g><title>{name}: {}</title>", b.value);
        if text {
            let _ = write!(
                svg,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"{INK}\">{}</text>",
                LABEL_W,
                y + 15,
                esc(&clip(b.label, LABEL_CHARS))
            );
        }
        if dark > 0.0 {
            let _ = write!(
                svg,
                "<rect x=\"{x0:.1}\" y=\"{}\" width=\"{dark:.1}\" height=\"{BAR}\" fill=\"{BLOCKED}\"/>",
                y + 4
            );
        }
        if full - dark > 0.0 {
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{}\" width=\"{:.1}\" height=\"{BAR}\" fill=\"{light}\"/>",
                x0 + dark,
                y + 4,
                full - dark
            );
        }
        if text {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" fill=\"{INK}\">{}</text>",
                x0 + full + 6.0,
                y + 15,
                view::num(b.value)
            );
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    Chart {
        cid,
        title,
        svg,
        width: WIDTH,
        height,
    }
}

/// Incidents by service: blocked part dark, flagged-only part amber.
fn services(report: &Report, text: bool) -> Chart {
    let bars: Vec<Bar<'_>> = report
        .services
        .iter()
        .map(|s| Bar {
            label: &s.name,
            value: s.incidents,
            dark: s.blocked,
        })
        .collect();
    bar_chart(
        "chart-services@aiwarden",
        "Incidents by service",
        &bars,
        Some([(BLOCKED, "blocked"), (FLAGGED, "flagged only")]),
        FLAGGED,
        text,
    )
}

/// Incidents by category.
fn categories(report: &Report, text: bool) -> Chart {
    let bars: Vec<Bar<'_>> = report
        .categories
        .iter()
        .map(|c| Bar {
            label: &c.name,
            value: c.count,
            dark: 0,
        })
        .collect();
    bar_chart(
        "chart-categories@aiwarden",
        "Incidents by category",
        &bars,
        None,
        CATEGORY,
        text,
    )
}

/// The heat strip: a row per local day, a cell per hour, a total per day, a legend.
fn heat(report: &Report, text: bool) -> Chart {
    const LABEL_W: u32 = 112;
    const CELL: u32 = 19;
    const GAP: u32 = 1;
    const ROW: u32 = 18;
    const TOP: u32 = 22;
    let days = &report.heat;
    let max = view::heat_max(days);
    let legend_y = TOP + days.len() as u32 * ROW + 10;
    let height = legend_y + 26;
    let mut svg = String::with_capacity(512 + days.len() * 24 * 120);
    open(
        &mut svg,
        WIDTH,
        height,
        "Incidents by local day and hour (heat strip)",
    );
    if text {
        for h in (0..24).step_by(3) {
            let _ = write!(
                svg,
                "<text x=\"{}\" y=\"{}\" fill=\"{INK}\" font-size=\"11\">{h:02}</text>",
                LABEL_W + h * (CELL + GAP) + 2,
                TOP - 6
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" fill=\"{INK}\" font-size=\"11\" text-anchor=\"end\">total</text>",
            WIDTH - 8,
            TOP - 6
        );
    }
    for (i, d) in days.iter().enumerate() {
        let y = TOP + i as u32 * ROW;
        let label = view::day_label(&d.day);
        if text {
            let _ = write!(
                svg,
                "<text x=\"0\" y=\"{}\" fill=\"{INK}\" font-size=\"11\">{}</text>",
                y + 12,
                esc(&label)
            );
        }
        for (h, n) in d.hours.iter().enumerate() {
            let colour = view::hex(view::HEAT_COLOURS[view::heat_level(*n, max) as usize]);
            let _ = write!(
                svg,
                "<rect x=\"{}\" y=\"{y}\" width=\"{CELL}\" height=\"{}\" fill=\"{colour}\">\
                 <title>{} {h:02}:00-{:02}:00: {n}</title></rect>",
                LABEL_W + h as u32 * (CELL + GAP),
                ROW - GAP,
                esc(&label),
                h + 1
            );
        }
        if text {
            let _ = write!(
                svg,
                "<text x=\"{}\" y=\"{}\" fill=\"{INK}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
                WIDTH - 8,
                y + 12,
                view::num(d.total)
            );
        }
    }
    let mut x = LABEL_W;
    if text {
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" fill=\"{INK}\" font-size=\"11\">per hour:</text>",
            legend_y + 12
        );
    }
    for (level, range) in view::heat_legend(max) {
        let colour = view::hex(view::HEAT_COLOURS[level as usize]);
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"{legend_y}\" width=\"{CELL}\" height=\"{}\" fill=\"{colour}\" \
             stroke=\"#9ca3af\" stroke-width=\"0.5\"/>",
            ROW - GAP
        );
        if text {
            let _ = write!(
                svg,
                "<text x=\"{}\" y=\"{}\" fill=\"{INK}\" font-size=\"11\">{range}</text>",
                x + CELL + 4,
                legend_y + 12
            );
        }
        x += CELL + 64;
    }
    svg.push_str("</svg>");
    Chart {
        cid: "chart-heat@aiwarden",
        title: "Incidents by day and hour",
        svg,
        width: WIDTH,
        height,
    }
}

/// The system's fonts, read once: a directory scan, not worth repeating per report.
fn system_fonts() -> Arc<usvg::fontdb::Database> {
    static FONTS: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let mut db = usvg::fontdb::Database::new();
            db.load_system_fonts();
            Arc::new(db)
        })
        .clone()
}

/// The charts of `report` as PNG, each with its Content-ID, for an email body. Uses the
/// system's fonts; with none, the bars are drawn without text.
pub fn png(report: &Report) -> Vec<(String, Vec<u8>)> {
    png_with(report, system_fonts())
}

/// [`png`] with the fonts given (tests pass an empty database to see the no-font path).
pub fn png_with(report: &Report, fonts: Arc<usvg::fontdb::Database>) -> Vec<(String, Vec<u8>)> {
    let text = !fonts.is_empty();
    let mut opt = usvg::Options {
        fontdb: fonts,
        ..usvg::Options::default()
    };
    // A family the SVG names and the appliance has, for text usvg cannot otherwise place.
    opt.font_family = "DejaVu Sans".into();
    let charts = Charts::drawn(report, text);
    let mut out = Vec::with_capacity(3);
    for chart in charts.all() {
        match rasterise(chart, &opt) {
            Ok(png) => out.push((chart.cid.to_string(), png)),
            Err(reason) => tracing::warn!(chart = chart.cid, %reason, "chart not drawn"),
        }
    }
    out
}

/// One chart's SVG drawn to PNG bytes.
fn rasterise(chart: &Chart, opt: &usvg::Options<'_>) -> Result<Vec<u8>, String> {
    let svg = chart
        .svg
        .replacen("<svg ", "<svg xmlns=\"http://www.w3.org/2000/svg\" ", 1);
    let tree = usvg::Tree::from_str(&svg, opt).map_err(|e| e.to_string())?;
    let (w, h) = (
        (chart.width as f32 * PNG_SCALE).ceil() as u32,
        (chart.height as f32 * PNG_SCALE).ceil() as u32,
    );
    let mut pixmap = tiny_skia::Pixmap::new(w, h).ok_or("empty chart")?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(PNG_SCALE, PNG_SCALE),
        &mut pixmap.as_mut(),
    );
    pixmap.encode_png().map_err(|e| e.to_string())
}
