//! What the HTML, PDF, PNG and text forms of a report say the same way: the change of
//! each headline figure against the previous period, the plain-English meaning of a BAA
//! value and of the continuity status, the bypass rows, the heat strip's shading levels.
//! Every number here is read from the [`Report`]; this file only words and groups them,
//! so the forms cannot drift apart.

use super::model::{Headline, HeatDay, Report};

/// One headline figure with its change against the previous period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figure {
    /// What it counts.
    pub label: &'static str,
    /// This period.
    pub value: u64,
    /// The previous period.
    pub previous: u64,
    /// The change in words any form can print: `+25%`, `-10%`, `new`, `no change`.
    pub change: String,
    /// Which way it moved.
    pub trend: Trend,
}

/// Which way a figure moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trend {
    /// More than before.
    Up,
    /// Fewer than before.
    Down,
    /// The same.
    Same,
    /// None before, some now.
    New,
}

impl Trend {
    /// An arrow for forms with Unicode fonts (decoration: the change text says it too).
    pub fn arrow(self) -> &'static str {
        match self {
            Trend::Up | Trend::New => "\u{25b2}",
            Trend::Down => "\u{25bc}",
            Trend::Same => "=",
        }
    }

    /// A CSS class name.
    pub fn class(self) -> &'static str {
        match self {
            Trend::Up => "up",
            Trend::Down => "down",
            Trend::Same => "same",
            Trend::New => "new",
        }
    }
}

/// The change from `previous` to `value`, in words.
pub fn change(value: u64, previous: u64) -> (String, Trend) {
    if value == previous {
        return ("no change".into(), Trend::Same);
    }
    if previous == 0 {
        return ("new".into(), Trend::New);
    }
    let trend = if value > previous {
        Trend::Up
    } else {
        Trend::Down
    };
    let diff = value.abs_diff(previous) as f64;
    let pct = diff * 100.0 / previous as f64;
    let sign = if trend == Trend::Up { '+' } else { '-' };
    let text = if pct < 1.0 {
        format!("{sign}<1%")
    } else {
        format!("{sign}{}%", pct.round() as u64)
    };
    (text, trend)
}

/// The headline figures in the order every form shows them.
pub fn figures(report: &Report) -> Vec<Figure> {
    let (now, before) = (&report.headline, &report.previous);
    type Pick = fn(&Headline) -> u64;
    let pick: [(&'static str, Pick); 9] = [
        ("Incidents", |h| h.incidents),
        ("Attempts", |h| h.attempts),
        ("Devices", |h| h.devices),
        ("Staff", |h| h.staff),
        ("Services", |h| h.services),
        ("Blocked", |h| h.blocked),
        ("Flagged only", |h| h.flagged),
        ("Bypass attempts", |h| h.bypass),
        ("Still open", |h| h.open),
    ];
    pick.iter()
        .map(|(label, f)| {
            let (value, previous) = (f(now), f(before));
            let (change, trend) = change(value, previous);
            Figure {
                label,
                value,
                previous,
                change,
                trend,
            }
        })
        .collect()
}

/// One kind of bypass attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BypassRow {
    /// Its name.
    pub kind: &'static str,
    /// What it is, for a reader who is not a network engineer.
    pub means: &'static str,
    /// Incidents showing it.
    pub incidents: u64,
}

/// The bypass attempts, one row per kind.
pub fn bypass(report: &Report) -> Vec<BypassRow> {
    let b = &report.bypass;
    vec![
        BypassRow {
            kind: "Encrypted DNS (DoH/DoT)",
            means: "a device asked an outside resolver over an encrypted channel instead of the clinic's",
            incidents: b.doh_dot,
        },
        BypassRow {
            kind: "Encrypted Client Hello (ECH)",
            means: "the connection hid the name of the site it went to",
            incidents: b.ech,
        },
        BypassRow {
            kind: "Unexplained connections",
            means: "a connection to an address no DNS answer gave, or known only by its address",
            incidents: b.unexplained,
        },
        BypassRow {
            kind: "Proxies",
            means: "the connection went through a web proxy (HTTP CONNECT)",
            incidents: b.proxy,
        },
        BypassRow {
            kind: "QUIC (HTTP/3)",
            means: "the service was reached over QUIC rather than TLS over TCP",
            incidents: b.quic,
        },
    ]
}

/// What each BAA value of the inventory means, in the order the note lists them.
pub const BAA_MEANINGS: [(&str, &str); 4] = [
    (
        "available",
        "the vendor signs a Business Associate Agreement; patient data may go only to an account the signed BAA covers",
    ),
    (
        "enterprise_only",
        "a BAA only on enterprise or business plans; personal and free accounts are not covered",
    ),
    (
        "none",
        "the vendor signs no BAA: no patient data may be entered",
    ),
    (
        "unknown",
        "not known: treat it as no BAA until the vendor confirms one",
    ),
];

/// What a continuity status means.
pub fn continuity_meaning(status: &str) -> &'static str {
    match status {
        "present" => "last period's head is still in the chain with the same hash: nothing recorded up to it was changed or removed since that report",
        "changed" => "the row is there but its hash differs: history was rewritten after that report was made; investigate",
        "purged" => "the row is older than the retention limit and was removed by retention, as configured; expected once reports are older than the retention period",
        "missing" => "the row is not in the chain: rows were removed after that report was made; investigate",
        _ => "unknown status",
    }
}

/// Every continuity status and its meaning, for the evidence block's legend.
pub const CONTINUITY_STATUSES: [&str; 4] = ["present", "changed", "purged", "missing"];

/// The heat strip's darkest shading level; 0 is an empty hour.
pub const HEAT_LEVELS: u64 = 4;

/// The busiest hour of the strip.
pub fn heat_max(heat: &[HeatDay]) -> u64 {
    heat.iter()
        .flat_map(|d| d.hours.iter().copied())
        .max()
        .unwrap_or(0)
}

/// The shading level, 0 to [`HEAT_LEVELS`], of `value` when the busiest hour has `max`.
pub fn heat_level(value: u64, max: u64) -> u64 {
    if value == 0 || max == 0 {
        return 0;
    }
    (value * HEAT_LEVELS).div_ceil(max).clamp(1, HEAT_LEVELS)
}

/// The legend of the heat strip: each level and the counts it covers (`0`, `1-3`,
/// `4`), levels no count falls into left out.
pub fn heat_legend(max: u64) -> Vec<(u64, String)> {
    let mut out = vec![(0, "0".to_string())];
    for level in 1..=HEAT_LEVELS {
        let low = (level - 1) * max / HEAT_LEVELS + 1;
        let high = level * max / HEAT_LEVELS;
        if max == 0 || low > high {
            continue;
        }
        let text = if low == high {
            low.to_string()
        } else {
            format!("{low}-{high}")
        };
        out.push((level, text));
    }
    out
}

/// Shading colours of the heat strip by level (light grey to dark blue); the darkest
/// two carry white text where a form prints numbers on them.
pub const HEAT_COLOURS: [(u8, u8, u8); 5] = [
    (0xf1, 0xf3, 0xf5),
    (0xc6, 0xdb, 0xef),
    (0x6b, 0xae, 0xd6),
    (0x21, 0x71, 0xb5),
    (0x08, 0x30, 0x6b),
];

/// `#rrggbb` of a colour.
pub fn hex((r, g, b): (u8, u8, u8)) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// A local day `YYYY-MM-DD` with its weekday: `Mon 2026-11-23`.
pub fn day_label(day: &str) -> String {
    match day.parse::<jiff::civil::Date>() {
        Ok(d) => {
            let wd = match d.weekday() {
                jiff::civil::Weekday::Monday => "Mon",
                jiff::civil::Weekday::Tuesday => "Tue",
                jiff::civil::Weekday::Wednesday => "Wed",
                jiff::civil::Weekday::Thursday => "Thu",
                jiff::civil::Weekday::Friday => "Fri",
                jiff::civil::Weekday::Saturday => "Sat",
                jiff::civil::Weekday::Sunday => "Sun",
            };
            format!("{wd} {day}")
        }
        Err(_) => day.to_string(),
    }
}

/// A day's busiest hour: `09:00-10:00 (5)`, the earliest of equals; `none` for an
/// empty day.
pub fn busiest(day: &HeatDay) -> String {
    let mut best = (0usize, 0u64);
    for (h, n) in day.hours.iter().enumerate() {
        if *n > best.1 {
            best = (h, *n);
        }
    }
    match best {
        (_, 0) => "none".to_string(),
        (h, n) => format!("{h:02}:00-{:02}:00 ({})", h + 1, num(n)),
    }
}

/// A device's follow-up status in words.
pub fn followup_status(open: u64, acknowledged: u64) -> &'static str {
    match (open, acknowledged) {
        (0, _) => "done",
        (_, 0) => "open",
        _ => "partly done",
    }
}

/// A count with thousands separators: `1,234,567`.
pub fn num(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `and N more` when a list lost `n` rows to its cap.
pub fn more(n: u64) -> Option<String> {
    (n > 0).then(|| format!("and {} more not listed", num(n)))
}

/// The line under the title: period, dates and time zone.
pub fn period_line(report: &Report) -> String {
    let p = &report.period;
    format!(
        "{} ({} to {}, {}), compared with {} ({} to {})",
        p.label,
        p.first,
        p.last,
        p.timezone,
        report.previous_period.label,
        report.previous_period.first,
        report.previous_period.last
    )
}

/// The sign-off line of the evidence block.
pub const SIGN_OFF: &str =
    "Reviewed by ____________________  Date ____________  Signature ____________________";

/// Why the sign-off is there.
pub const SIGN_OFF_WHY: &str = "Information-system activity review, documented as 45 CFR 164.308(a)(1)(ii)(D) requires: the reviewer signs and dates this report and files it.";

/// The footer every form carries.
pub const METADATA_ONLY: &str = "Metadata only: devices, staff labels, services and host names. aiwarden never records URLs, page contents or what was typed.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_words() {
        assert_eq!(change(5, 5), ("no change".into(), Trend::Same));
        assert_eq!(change(0, 0), ("no change".into(), Trend::Same));
        assert_eq!(change(3, 0), ("new".into(), Trend::New));
        assert_eq!(change(15, 12), ("+25%".into(), Trend::Up));
        assert_eq!(change(9, 10), ("-10%".into(), Trend::Down));
        assert_eq!(change(0, 4), ("-100%".into(), Trend::Down));
        assert_eq!(change(1001, 1000), ("+<1%".into(), Trend::Up));
    }

    #[test]
    fn heat_levels_cover_every_count_once() {
        for max in [1u64, 2, 3, 4, 5, 7, 10, 97] {
            let legend = heat_legend(max);
            for v in 1..=max {
                let level = heat_level(v, max);
                assert!((1..=HEAT_LEVELS).contains(&level));
                let (_, text) = legend
                    .iter()
                    .find(|(l, _)| *l == level)
                    .unwrap_or_else(|| panic!("level {level} of {v}/{max} not in legend"));
                let (a, b) = text.split_once('-').unwrap_or((text, text));
                let lo: u64 = a.parse().expect("number");
                let hi: u64 = b.parse().expect("number");
                assert!(lo <= v && v <= hi, "{v} of {max} in level {level} ({text})");
            }
            assert_eq!(heat_level(max, max), HEAT_LEVELS);
        }
        assert_eq!(heat_level(0, 9), 0);
        assert_eq!(heat_legend(0), vec![(0, "0".to_string())]);
    }

    #[test]
    fn thousands() {
        assert_eq!(num(0), "0");
        assert_eq!(num(999), "999");
        assert_eq!(num(1000), "1,000");
        assert_eq!(num(1_234_567), "1,234,567");
    }

    #[test]
    fn day_label_has_weekday() {
        assert_eq!(day_label("2026-11-23"), "Mon 2026-11-23");
        assert_eq!(day_label("nonsense"), "nonsense");
    }
}
