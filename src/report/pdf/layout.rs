//! The PDF report's layout engine: pages of A4 filled top to bottom with text measured in
//! the base-14 fonts' own widths (Adobe's AFM, below), wrapped paragraphs, term and
//! definition lists, tables with automatic column widths whose header repeats on every
//! page, vector bar charts, the heat strip's shaded cells, the sign-off box and a footer
//! with page numbers. `mod.rs` decides what goes where; this file only draws.

use pdf_writer::{Content, Name, Str};

use super::super::model::Report;
use super::super::view;

/// A4 in points.
pub(super) const PAGE_W: f32 = 595.28;
pub(super) const PAGE_H: f32 = 841.89;
/// Margins.
pub(super) const LEFT: f32 = 42.0;
pub(super) const RIGHT: f32 = PAGE_W - 42.0;
pub(super) const TOP: f32 = PAGE_H - 46.0;
/// Content ends here; the footer sits below.
pub(super) const BOTTOM: f32 = 56.0;
pub(super) const WIDTH: f32 = RIGHT - LEFT;

/// Body text colour and the accent of rules and headings.
pub(super) const INK: (u8, u8, u8) = (0x11, 0x18, 0x27);
pub(super) const MUTED: (u8, u8, u8) = (0x37, 0x41, 0x51);
pub(super) const ACCENT: (u8, u8, u8) = (0x1e, 0x3a, 0x8a);
pub(super) const HEADER_BG: (u8, u8, u8) = (0xf3, 0xf4, 0xf6);
pub(super) const LINE: (u8, u8, u8) = (0xd1, 0xd5, 0xdb);
pub(super) const BLOCKED: (u8, u8, u8) = (0x1e, 0x3a, 0x8a);
pub(super) const FLAGGED: (u8, u8, u8) = (0xf5, 0x9e, 0x0b);
pub(super) const CATEGORY: (u8, u8, u8) = (0x25, 0x63, 0xeb);
pub(super) const GOOD: (u8, u8, u8) = (0x16, 0x65, 0x34);
pub(super) const BAD: (u8, u8, u8) = (0x99, 0x1b, 0x1b);

/// The three fonts, all base-14.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Font {
    /// Helvetica.
    Regular,
    /// Helvetica-Bold.
    Bold,
    /// Courier.
    Mono,
}

impl Font {
    pub(super) fn name(self) -> Name<'static> {
        match self {
            Font::Regular => Name(b"F1"),
            Font::Bold => Name(b"F2"),
            Font::Mono => Name(b"F3"),
        }
    }

    /// Width of one WinAnsi byte in thousandths of the font size.
    pub(super) fn advance(self, byte: u8) -> u16 {
        let table = match self {
            Font::Mono => return 600,
            Font::Regular => &HELVETICA,
            Font::Bold => &HELVETICA_BOLD,
        };
        // Bytes the encoding leaves empty print as nothing; give them a space's width.
        match byte {
            32..=255 if table[usize::from(byte - 32)] > 0 => table[usize::from(byte - 32)],
            _ => 278,
        }
    }
}

/// The WinAnsiEncoding byte of `c`, or `?`: what a base-14 font can show.
pub(super) fn winansi(c: char) -> u8 {
    match c {
        ' '..='~' => c as u8,
        '\u{a0}'..='\u{ff}' => c as u32 as u8,
        '\u{20ac}' => 0x80,
        '\u{201a}' => 0x82,
        '\u{0192}' => 0x83,
        '\u{201e}' => 0x84,
        '\u{2026}' => 0x85,
        '\u{2020}' => 0x86,
        '\u{2021}' => 0x87,
        '\u{02c6}' => 0x88,
        '\u{2030}' => 0x89,
        '\u{0160}' => 0x8a,
        '\u{2039}' => 0x8b,
        '\u{0152}' => 0x8c,
        '\u{017d}' => 0x8e,
        '\u{2018}' => 0x91,
        '\u{2019}' => 0x92,
        '\u{201c}' => 0x93,
        '\u{201d}' => 0x94,
        '\u{2022}' => 0x95,
        '\u{2013}' => 0x96,
        '\u{2014}' => 0x97,
        '\u{02dc}' => 0x98,
        '\u{2122}' => 0x99,
        '\u{0161}' => 0x9a,
        '\u{203a}' => 0x9b,
        '\u{0153}' => 0x9c,
        '\u{017e}' => 0x9e,
        '\u{0178}' => 0x9f,
        '\t' | '\n' | '\r' => b' ',
        _ => b'?',
    }
}

/// `s` in WinAnsiEncoding, unknown characters as `?`.
pub(super) fn encode(s: &str) -> Vec<u8> {
    s.chars().map(winansi).collect()
}

/// Width of `s` in points.
pub(super) fn width(font: Font, size: f32, s: &str) -> f32 {
    let units: u32 = s.chars().map(|c| u32::from(font.advance(winansi(c)))).sum();
    units as f32 * size / 1000.0
}

/// `s` broken into lines no wider than `max`: at spaces, and inside a word longer than a
/// line (host names have no spaces).
pub(super) fn wrap(font: Font, size: f32, s: &str, max: f32) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in s.split(' ') {
        let candidate = if line.is_empty() {
            word.to_string()
        } else {
            format!("{line} {word}")
        };
        if width(font, size, &candidate) <= max {
            line = candidate;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        for c in word.chars() {
            line.push(c);
            if width(font, size, &line) > max && line.chars().count() > 1 {
                line.pop();
                lines.push(std::mem::take(&mut line));
                line.push(c);
            }
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// A table column: title, numbers right-aligned, font.
pub(super) struct Col {
    title: &'static str,
    right: bool,
    font: Font,
}

pub(super) const fn col(title: &'static str) -> Col {
    Col {
        title,
        right: false,
        font: Font::Regular,
    }
}

pub(super) const fn num(title: &'static str) -> Col {
    Col {
        title,
        right: true,
        font: Font::Regular,
    }
}

pub(super) const fn mono(title: &'static str) -> Col {
    Col {
        title,
        right: false,
        font: Font::Mono,
    }
}

pub(super) const fn head(title: &'static str) -> Col {
    Col {
        title,
        right: false,
        font: Font::Bold,
    }
}

/// Table text size, line height and cell padding.
pub(super) const CELL_SIZE: f32 = 8.0;
pub(super) const CELL_LH: f32 = 10.0;
pub(super) const PAD: f32 = 4.0;
/// Cells narrower than this are kept on one line when the table can afford it.
pub(super) const UNBROKEN: f32 = 72.0;

/// Column widths for `rows`, as a browser lays out an automatic table: each column as
/// wide as its widest cell when all fit; otherwise at least its longest word or short
/// cell (dates, names: [`UNBROKEN`]), so words break only when one is wider than 30% of
/// the page, and the rest of the width shared in proportion to what each column would
/// still like.
fn column_widths(cols: &[Col], rows: &[Vec<String>]) -> Vec<f32> {
    let longest_word = |font: Font, s: &str| {
        let whole = width(font, CELL_SIZE, s);
        if whole <= UNBROKEN {
            return whole;
        }
        s.split(' ')
            .map(|w| width(font, CELL_SIZE, w))
            .fold(0.0f32, f32::max)
    };
    let mut want = Vec::with_capacity(cols.len());
    let mut least = Vec::with_capacity(cols.len());
    for (i, c) in cols.iter().enumerate() {
        let mut w = width(Font::Bold, CELL_SIZE, c.title);
        let mut l = longest_word(Font::Bold, c.title);
        for row in rows {
            let cell = row.get(i).map_or("", String::as_str);
            w = w.max(width(c.font, CELL_SIZE, cell));
            l = l.max(longest_word(c.font, cell));
        }
        let l = (l + 2.0 * PAD).min(WIDTH * 0.3);
        least.push(l);
        want.push((w + 2.0 * PAD).max(l));
    }
    let sum_want: f32 = want.iter().sum();
    let sum_least: f32 = least.iter().sum();
    if sum_want <= WIDTH {
        want.iter().map(|w| w * WIDTH / sum_want).collect()
    } else if sum_least >= WIDTH {
        least.iter().map(|l| l * WIDTH / sum_least).collect()
    } else {
        let spare = WIDTH - sum_least;
        want.iter()
            .zip(&least)
            .map(|(w, l)| l + spare * (w - l) / (sum_want - sum_least))
            .collect()
    }
}

/// The document being laid out: finished pages and the one being filled, top down.
pub(super) struct Doc {
    pages: Vec<Vec<u8>>,
    /// The page being filled.
    pub(super) page: Content,
    /// Where the next item starts, from the page's bottom.
    pub(super) y: f32,
}

impl Doc {
    pub(super) fn new() -> Doc {
        Doc {
            pages: Vec::new(),
            page: Content::new(),
            y: TOP,
        }
    }

    pub(super) fn new_page(&mut self) {
        let page = std::mem::replace(&mut self.page, Content::new());
        self.pages.push(page.finish().into_vec());
        self.y = TOP;
    }

    /// A new page unless `h` points still fit on this one.
    pub(super) fn need(&mut self, h: f32) {
        if self.y - h < BOTTOM {
            self.new_page();
        }
    }

    /// A new page unless this one is still empty.
    pub(super) fn page_break(&mut self) {
        if self.y < TOP {
            self.new_page();
        }
    }

    pub(super) fn fill(&mut self, (r, g, b): (u8, u8, u8)) {
        self.page.set_fill_rgb(
            f32::from(r) / 255.0,
            f32::from(g) / 255.0,
            f32::from(b) / 255.0,
        );
    }

    pub(super) fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, colour: (u8, u8, u8)) {
        self.fill(colour);
        self.page.rect(x, y, w, h).fill_nonzero();
    }

    /// One line of text with its baseline at `y`.
    pub(super) fn text(
        &mut self,
        x: f32,
        y: f32,
        font: Font,
        size: f32,
        s: &str,
        colour: (u8, u8, u8),
    ) {
        self.fill(colour);
        self.page
            .begin_text()
            .set_font(font.name(), size)
            .next_line(x, y)
            .show(Str(&encode(s)))
            .end_text();
    }

    /// A section heading, kept with at least `keep` points of what follows.
    pub(super) fn heading(&mut self, s: &str, keep: f32) {
        self.need(40.0 + keep);
        if self.y < TOP {
            self.y -= 14.0;
        }
        self.text(LEFT, self.y - 13.0, Font::Bold, 14.0, s, ACCENT);
        self.y -= 19.0;
        self.rect(LEFT, self.y, WIDTH, 1.2, ACCENT);
        self.y -= 10.0;
    }

    pub(super) fn subheading(&mut self, s: &str) {
        self.need(40.0);
        self.y -= 4.0;
        self.text(LEFT, self.y - 10.0, Font::Bold, 10.5, s, INK);
        self.y -= 16.0;
    }

    /// A wrapped paragraph.
    pub(super) fn para(&mut self, s: &str, font: Font, size: f32, colour: (u8, u8, u8)) {
        let lh = size * 1.3;
        for line in wrap(font, size, s, WIDTH) {
            self.need(lh);
            self.text(LEFT, self.y - size, font, size, &line, colour);
            self.y -= lh;
        }
        self.y -= 4.0;
    }

    /// Term and definition pairs, the term bold in a column of its own.
    pub(super) fn facts(&mut self, pairs: &[(&str, String)], term_w: f32) {
        const SIZE: f32 = 9.0;
        const LH: f32 = 11.5;
        for (term, value) in pairs {
            let lines = wrap(Font::Regular, SIZE, value, WIDTH - term_w);
            let h = lines.len() as f32 * LH + 3.0;
            self.need(h);
            self.text(LEFT, self.y - SIZE, Font::Bold, SIZE, term, INK);
            for (i, line) in lines.iter().enumerate() {
                let y = self.y - SIZE - i as f32 * LH;
                self.text(LEFT + term_w, y, Font::Regular, SIZE, line, INK);
            }
            self.y -= h;
        }
        self.y -= 4.0;
    }

    pub(super) fn table_header(&mut self, cols: &[Col], xs: &[(f32, f32)]) {
        let titles: Vec<Vec<String>> = cols
            .iter()
            .zip(xs)
            .map(|(c, (_, w))| wrap(Font::Bold, CELL_SIZE, c.title, w - 2.0 * PAD))
            .collect();
        let lines = titles.iter().map(Vec::len).max().unwrap_or(1);
        let h = lines as f32 * CELL_LH + 2.0 * PAD;
        self.rect(LEFT, self.y - h, WIDTH, h, HEADER_BG);
        for ((c, (x, w)), title) in cols.iter().zip(xs).zip(&titles) {
            for (i, line) in title.iter().enumerate() {
                let tx = if c.right {
                    x + w - PAD - width(Font::Bold, CELL_SIZE, line)
                } else {
                    x + PAD
                };
                let y = self.y - PAD - CELL_SIZE - i as f32 * CELL_LH + 1.0;
                self.text(tx, y, Font::Bold, CELL_SIZE, line, INK);
            }
        }
        self.y -= h;
        self.rect(LEFT, self.y, WIDTH, 0.6, MUTED);
    }

    /// A table; rows wrap within their cells and the header repeats on every page.
    pub(super) fn table(&mut self, cols: &[Col], rows: &[Vec<String>]) {
        let mut xs = Vec::with_capacity(cols.len());
        let mut x = LEFT;
        for w in column_widths(cols, rows) {
            xs.push((x, w));
            x += w;
        }
        self.need(2.0 * (CELL_LH + 2.0 * PAD));
        self.table_header(cols, &xs);
        for row in rows {
            let cells: Vec<Vec<String>> = cols
                .iter()
                .zip(&xs)
                .zip(row)
                .map(|((c, (_, w)), cell)| wrap(c.font, CELL_SIZE, cell, w - 2.0 * PAD))
                .collect();
            let lines = cells.iter().map(Vec::len).max().unwrap_or(1).max(1);
            let h = lines as f32 * CELL_LH + 2.0 * PAD;
            if self.y - h < BOTTOM {
                self.new_page();
                self.table_header(cols, &xs);
            }
            for ((c, (x, w)), cell) in cols.iter().zip(&xs).zip(&cells) {
                for (i, line) in cell.iter().enumerate() {
                    let y = self.y - PAD - CELL_SIZE - i as f32 * CELL_LH + 1.0;
                    let tx = if c.right {
                        x + w - PAD - width(c.font, CELL_SIZE, line)
                    } else {
                        x + PAD
                    };
                    self.text(tx, y, c.font, CELL_SIZE, line, INK);
                }
            }
            self.y -= h;
            self.rect(LEFT, self.y, WIDTH, 0.4, LINE);
        }
        self.y -= 8.0;
    }

    /// A horizontal bar chart: label, bar (dark part first), value.
    pub(super) fn bars(&mut self, bars: &[(String, u64, u64)], light: (u8, u8, u8), legend: bool) {
        const ROW: f32 = 14.0;
        const BAR: f32 = 9.0;
        const LABEL_W: f32 = 150.0;
        const SIZE: f32 = 8.0;
        let area = WIDTH - LABEL_W - 60.0;
        let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f32;
        if legend {
            self.need(16.0 + ROW);
            self.rect(LEFT, self.y - 9.0, 8.0, 8.0, BLOCKED);
            self.text(
                LEFT + 12.0,
                self.y - 8.0,
                Font::Regular,
                SIZE,
                "blocked",
                INK,
            );
            self.rect(LEFT + 80.0, self.y - 9.0, 8.0, 8.0, FLAGGED);
            let x = LEFT + 92.0;
            self.text(x, self.y - 8.0, Font::Regular, SIZE, "flagged only", INK);
            self.y -= 16.0;
        }
        if bars.is_empty() {
            self.para("No incidents in this period.", Font::Regular, 9.0, MUTED);
            return;
        }
        for (label, value, dark) in bars {
            self.need(ROW);
            let lines = wrap(Font::Regular, SIZE, label, LABEL_W - 8.0);
            let mut shown = lines.first().cloned().unwrap_or_default();
            if lines.len() > 1 {
                shown.push('\u{2026}');
            }
            let tx = LEFT + LABEL_W - 6.0 - width(Font::Regular, SIZE, &shown);
            self.text(tx, self.y - 10.0, Font::Regular, SIZE, &shown, INK);
            let full = (*value as f32 / max * area).max(if *value > 0 { 1.5 } else { 0.0 });
            let d = if *value == 0 {
                0.0
            } else {
                full * (*dark).min(*value) as f32 / *value as f32
            };
            let x0 = LEFT + LABEL_W;
            if d > 0.0 {
                self.rect(x0, self.y - 11.5, d, BAR, BLOCKED);
            }
            if full - d > 0.0 {
                self.rect(x0 + d, self.y - 11.5, full - d, BAR, light);
            }
            let v = view::num(*value);
            self.text(x0 + full + 4.0, self.y - 10.0, Font::Regular, SIZE, &v, INK);
            self.y -= ROW;
        }
        self.y -= 8.0;
    }

    /// The heat strip: a row per day, a shaded cell per hour, the day's total, a legend.
    pub(super) fn heat(&mut self, report: &Report) {
        const LABEL_W: f32 = 86.0;
        const TOTAL_W: f32 = 44.0;
        const ROW: f32 = 12.0;
        const SIZE: f32 = 7.5;
        let cell = (WIDTH - LABEL_W - TOTAL_W) / 24.0;
        let max = view::heat_max(&report.heat);
        let hours = |doc: &mut Doc| {
            for h in (0..24).step_by(3) {
                let x = LEFT + LABEL_W + h as f32 * cell + 1.0;
                doc.text(
                    x,
                    doc.y - 8.0,
                    Font::Regular,
                    SIZE,
                    &format!("{h:02}"),
                    MUTED,
                );
            }
            let tw = width(Font::Regular, SIZE, "total");
            doc.text(RIGHT - tw, doc.y - 8.0, Font::Regular, SIZE, "total", MUTED);
            doc.y -= 11.0;
        };
        self.need(11.0 + ROW * 2.0);
        hours(self);
        for d in &report.heat {
            if self.y - ROW < BOTTOM {
                self.new_page();
                hours(self);
            }
            let label = view::day_label(&d.day);
            self.text(LEFT, self.y - 9.0, Font::Regular, SIZE, &label, INK);
            for (h, n) in d.hours.iter().enumerate() {
                let colour = view::HEAT_COLOURS[view::heat_level(*n, max) as usize];
                let x = LEFT + LABEL_W + h as f32 * cell;
                self.rect(x, self.y - ROW + 1.0, cell - 1.0, ROW - 1.0, colour);
            }
            let t = view::num(d.total);
            let tw = width(Font::Regular, SIZE, &t);
            self.text(RIGHT - tw, self.y - 9.0, Font::Regular, SIZE, &t, INK);
            self.y -= ROW;
        }
        self.need(ROW + 6.0);
        self.y -= 6.0;
        self.text(LEFT, self.y - 9.0, Font::Regular, SIZE, "per hour:", MUTED);
        let mut x = LEFT + LABEL_W;
        for (level, range) in view::heat_legend(max) {
            let colour = view::HEAT_COLOURS[level as usize];
            self.rect(x, self.y - ROW + 1.0, cell - 1.0, ROW - 1.0, colour);
            self.text(
                x + cell + 3.0,
                self.y - 9.0,
                Font::Regular,
                SIZE,
                &range,
                INK,
            );
            x += cell + 50.0;
        }
        self.y -= ROW + 8.0;
    }

    /// The reviewer sign-off box.
    pub(super) fn sign_off(&mut self) {
        let why = wrap(Font::Regular, 9.0, view::SIGN_OFF_WHY, WIDTH - 20.0);
        let h = 30.0 + why.len() as f32 * 11.5 + 34.0;
        self.need(h + 10.0);
        self.y -= 6.0;
        let top = self.y;
        self.page.set_line_width(1.5);
        self.page.set_stroke_rgb(0.07, 0.09, 0.15);
        self.page.rect(LEFT, top - h, WIDTH, h).stroke();
        self.text(
            LEFT + 10.0,
            top - 18.0,
            Font::Bold,
            11.0,
            "Reviewer sign-off",
            INK,
        );
        let mut y = top - 34.0;
        for line in &why {
            self.text(LEFT + 10.0, y, Font::Regular, 9.0, line, INK);
            y -= 11.5;
        }
        self.text(
            LEFT + 10.0,
            y - 14.0,
            Font::Regular,
            10.5,
            view::SIGN_OFF,
            INK,
        );
        self.y = top - h - 10.0;
    }

    /// Finishes the last page and writes every page's footer.
    pub(super) fn finish(mut self, footer: &str) -> Vec<Vec<u8>> {
        self.new_page();
        let n = self.pages.len();
        let mut out = Vec::with_capacity(n);
        for (i, body) in self.pages.into_iter().enumerate() {
            let mut f = Doc::new();
            f.rect(LEFT, BOTTOM - 14.0, WIDTH, 0.5, LINE);
            f.text(LEFT, BOTTOM - 26.0, Font::Regular, 7.5, footer, MUTED);
            let page = format!("page {} of {n}", i + 1);
            let pw = width(Font::Regular, 7.5, &page);
            f.text(RIGHT - pw, BOTTOM - 26.0, Font::Regular, 7.5, &page, MUTED);
            let meta = wrap(Font::Regular, 7.0, view::METADATA_ONLY, WIDTH);
            for (j, line) in meta.iter().enumerate() {
                let y = BOTTOM - 36.0 - j as f32 * 8.5;
                f.text(LEFT, y, Font::Regular, 7.0, line, MUTED);
            }
            let mut bytes = body;
            bytes.push(b'\n');
            bytes.extend_from_slice(&f.page.finish().into_vec());
            out.push(bytes);
        }
        out
    }
}

/// Widths of WinAnsiEncoding bytes 32 to 255 in Helvetica, thousandths of the font
/// size, from Adobe's AFM (0 where the encoding has no character).
#[rustfmt::skip]
pub(super) const HELVETICA: [u16; 224] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, 0,
    556, 0, 222, 556, 333, 1000, 556, 556, 333, 1000, 667, 333, 1000, 0, 611, 0,
    0, 222, 222, 333, 333, 350, 556, 1000, 333, 1000, 500, 333, 944, 0, 500, 667,
    278, 333, 556, 556, 556, 556, 260, 556, 333, 737, 370, 556, 584, 333, 737, 333,
    400, 584, 333, 333, 333, 578, 537, 278, 333, 333, 365, 556, 834, 834, 834, 611,
    667, 667, 667, 667, 667, 667, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278,
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611,
    556, 556, 556, 556, 556, 556, 889, 500, 556, 556, 556, 556, 278, 278, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 584, 611, 556, 556, 556, 556, 500, 556, 500,
];

/// The same for Helvetica-Bold.
#[rustfmt::skip]
pub(super) const HELVETICA_BOLD: [u16; 224] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611,
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556,
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611,
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584, 0,
    556, 0, 278, 556, 500, 1000, 556, 556, 333, 1000, 667, 333, 1000, 0, 611, 0,
    0, 278, 278, 500, 500, 350, 556, 1000, 333, 1000, 556, 333, 944, 0, 500, 667,
    278, 333, 556, 556, 556, 556, 280, 556, 333, 737, 370, 556, 584, 333, 737, 333,
    400, 584, 333, 333, 333, 611, 556, 278, 333, 333, 365, 556, 834, 834, 834, 611,
    722, 722, 722, 722, 722, 722, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278,
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611,
    556, 556, 556, 556, 556, 556, 889, 556, 556, 556, 556, 556, 278, 278, 278, 278,
    611, 611, 611, 611, 611, 611, 611, 584, 611, 611, 611, 611, 611, 556, 611, 556,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn winansi_maps_latin_and_replaces_the_rest() {
        assert_eq!(encode("Zoë Müller-Élan"), b"Zo\xeb M\xfcller-\xc9lan");
        assert_eq!(encode("\u{6771}\u{4eac} \u{20ac}"), b"?? \x80");
        assert_eq!(encode("a\u{0}b"), b"a?b");
    }

    #[test]
    pub(super) fn widths_match_helvetica() {
        // "Helvetica" in Helvetica at 1000 units: H722 e556 l222 v500 e556 t278 i222 c500 a556.
        assert!((width(Font::Regular, 1000.0, "Helvetica") - 4112.0 * 1000.0 / 1000.0).abs() < 0.5);
        assert!((width(Font::Mono, 10.0, "abc") - 18.0).abs() < 0.01);
    }

    #[test]
    pub(super) fn wrap_breaks_words_and_long_names() {
        let lines = wrap(Font::Regular, 10.0, "one two three four five six", 60.0);
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| width(Font::Regular, 10.0, l) <= 60.0));
        assert_eq!(lines.join(" "), "one two three four five six");
        let host = "a-very-long-host-name-without-any-spaces.example.com";
        let lines = wrap(Font::Regular, 10.0, host, 50.0);
        assert!(lines.len() > 2);
        assert_eq!(lines.concat(), host);
        assert_eq!(wrap(Font::Regular, 10.0, "", 50.0), vec![String::new()]);
    }
}
