//! A short plain-text summary of a report, for the text/plain part of the report email
//! and for a terminal: the headline figures with their change, the top services, the
//! bypass attempts, the open follow-ups and the evidence. The HTML and PDF forms carry
//! the rest; every number here is theirs.

use std::fmt::Write as _;

use super::model::Report;
use super::view;

/// How many services and open follow-ups the summary names.
const TOP: usize = 5;

/// The report summarised as plain text.
pub fn render(report: &Report) -> String {
    let r = report;
    let mut s = String::with_capacity(2048);
    let _ = writeln!(s, "Shadow-AI report: {}", r.site);
    let _ = writeln!(s, "{}", view::period_line(r));
    let _ = writeln!(
        s,
        "Generated {} by aiwarden {} (times are {})",
        r.generated, r.version, r.period.timezone
    );

    let _ = writeln!(s, "\nHEADLINE            this period   previous   change");
    for f in view::figures(r) {
        let _ = writeln!(
            s,
            "  {:<18}{:>11}{:>11}   {}",
            f.label,
            view::num(f.value),
            view::num(f.previous),
            f.change
        );
    }

    let _ = writeln!(s, "\nTOP SERVICES (incidents, blocked)");
    if r.services.is_empty() {
        let _ = writeln!(s, "  none");
    }
    for x in r.services.iter().take(TOP) {
        let _ = writeln!(
            s,
            "  {:<30}{:>9}{:>9}",
            x.name,
            view::num(x.incidents),
            view::num(x.blocked)
        );
    }
    if r.services.len() > TOP {
        let _ = writeln!(s, "  and {} more services", r.services.len() - TOP);
    }

    let _ = writeln!(s, "\nBYPASS ATTEMPTS (incidents)");
    for b in view::bypass(r) {
        let _ = writeln!(s, "  {:<30}{:>9}", b.kind, view::num(b.incidents));
    }

    let open = r.open_followups.len() as u64 + r.truncated.open_followups;
    let _ = writeln!(s, "\nOPEN FOLLOW-UPS: {}", view::num(open));
    for o in r.open_followups.iter().take(TOP) {
        let staff = o.staff.as_deref().unwrap_or("unknown");
        let _ = writeln!(
            s,
            "  {} ({}): {}, {} incidents since {}",
            o.device,
            staff,
            o.service,
            view::num(o.incidents),
            o.first_seen
        );
    }
    if open > TOP as u64 {
        let _ = writeln!(s, "  and {} more", view::num(open - TOP as u64));
    }
    let acked = r.acknowledged.len() as u64 + r.truncated.acknowledged;
    let _ = writeln!(s, "ACKNOWLEDGED IN THE PERIOD: {}", view::num(acked));

    let e = &r.evidence;
    let _ = writeln!(
        s,
        "\nEVIDENCE: chain {}: {}",
        if e.verified {
            "verified"
        } else {
            "NOT VERIFIED"
        },
        e.summary
    );
    match &e.head {
        Some(h) => {
            let _ = writeln!(s, "  head at the period's end: row {} {}", h.id, h.hash);
        }
        None => {
            let _ = writeln!(s, "  head at the period's end: none");
        }
    }
    if let Some(c) = &e.previous_head {
        let _ = writeln!(s, "  last period's head, row {}: {}", c.head.id, c.status);
    }
    let _ = writeln!(
        s,
        "\nThe full report has the charts, the AI inventory, every follow-up and the \
         reviewer sign-off."
    );
    let _ = writeln!(s, "{}", view::METADATA_ONLY);
    s
}
