//! The weekly shadow-AI report a compliance officer reads, acts on and files: what AI
//! services the clinic's devices used, who needs a follow-up, what was done, and evidence
//! that the record behind it is whole.
//!
//! [`collect`] reads a period from the store (read-only, one stream, so a million
//! incidents fit) into a [`Report`]; the forms render that value and add nothing: JSON is
//! it serialised, [`write_csv`] lists the incidents themselves for spreadsheets, [`html`]
//! and [`pdf`] are the pages a compliance officer reads and files ([`charts`] draws their
//! charts, as PNG too for email; [`text`] is the short plain-text summary).
//! Days and hours are the clinic's ([`period`]); the store stays UTC.
//!
//! Metadata only, as the store: devices, staff labels, services, hosts. Never URLs or
//! payloads, which the store never had.

use std::io::Write;

use jiff::tz::TimeZone;

pub mod build;
pub mod charts;
pub mod html;
pub mod model;
pub mod pdf;
pub mod period;
pub mod text;
pub mod view;

pub use build::{Context, Tally};
pub use model::Report;
pub use period::{Period, Which};

use crate::store::{RowStatus, Store};
use crate::{Error, Result};
use model::{Continuity, Count, Evidence, HeadRef, RulesInForce};

/// What besides the store a report needs from the running configuration.
pub struct Setting {
    /// Monitor or enforce.
    pub mode: String,
    /// What each enforcement path blocks.
    pub enforcement: Vec<String>,
    /// The head printed by the previous period's report, from its archived JSON, and the
    /// file's name.
    pub previous_head: Option<(HeadRef, String)>,
    /// Rule loads recorded in the period: local time and rules version.
    pub rule_changes: Vec<Count>,
}

/// Reads `period` and the one before it from `store` into a report.
pub fn collect(
    store: &Store,
    ctx: &Context<'_>,
    period: Period,
    setting: Setting,
    now: i64,
) -> Result<Report> {
    collect_with(store, ctx, period, setting, now, &mut |_| {})
}

/// [`collect`], telling `progress` how many of the period's incidents were read (every
/// 10,000, and at the end).
pub fn collect_with(
    store: &Store,
    ctx: &Context<'_>,
    period: Period,
    setting: Setting,
    now: i64,
    progress: &mut dyn FnMut(u64),
) -> Result<Report> {
    let previous = period
        .previous(ctx.tz)
        .map_err(|m| Error::Usage(format!("the period before {}: {m}", period.label)))?;
    let mut this = Tally::new(ctx, period);
    let mut before = Tally::new(ctx, previous);
    let (from, to) = (this.period().from, this.period().to);
    let (pfrom, pto) = (before.period().from, before.period().to);
    // The chain is verified, the period before tallied, and the first half of this
    // period's incidents tallied, each on a connection of its own beside the second
    // half's scan: on a store of millions of rows each takes seconds, together they take
    // what the machine's cores allow.
    let path = store.path().to_path_buf();
    let path = path.as_path();
    let ids = store.period_ids(from, to)?;
    let mut first_half = Tally::new(ctx, this.period().clone());
    let (verify, earlier, half, scanned) = std::thread::scope(|s| {
        let own = |p: &std::path::Path| -> Result<Store> {
            let st = Store::open_read_only(p)?;
            st.for_scans()?;
            Ok(st)
        };
        let verifier = s.spawn(move || own(path)?.verify());
        let before = &mut before;
        let earlier = s.spawn(move || own(path)?.scan_period(pfrom, pto, |row| before.add(&row)));
        let first = &mut first_half;
        let (split, half) = match ids {
            Some((lo, hi)) if hi - lo > 100_000 => {
                let mid = lo + (hi - lo) / 2;
                let half =
                    s.spawn(move || own(path)?.scan_ids(from, to, lo, mid, |row| first.add(&row)));
                (Some((mid + 1, hi)), Some(half))
            }
            other => (other, None),
        };
        let scanned = (|| -> Result<()> {
            let mut n = 0u64;
            if let Some((lo, hi)) = split {
                store.scan_ids(from, to, lo, hi, |row| {
                    this.add(&row);
                    n += 1;
                    if n % 10_000 == 0 {
                        progress(n * 2);
                    }
                })?;
            }
            store.acks_between(from, to, |row, ack| this.ack(row, ack))
        })();
        let lost = || Error::Usage("a report thread panicked".into());
        let verify = verifier.join().unwrap_or_else(|_| Err(lost()));
        let earlier = earlier.join().unwrap_or_else(|_| Err(lost()));
        let half = half.map_or(Ok(()), |h| h.join().unwrap_or_else(|_| Err(lost())));
        (verify, earlier, half, scanned)
    });
    half?;
    this.merge(first_half);
    progress(this.headline().incidents);
    scanned?;
    earlier?;
    let verify = verify?;
    let (d0, d1) = this.period().utc_days();
    let usage = store.usage(&d0, &d1)?;

    let head = store.head_before(to)?;
    let previous_head = match setting.previous_head {
        Some(printed) => Some(printed),
        None => store.head_before(pto)?.map(|h| (h, String::from("store"))),
    };
    let previous_head = match previous_head {
        Some((h, source)) => {
            let status = store.row_status(&h)?;
            Some(Continuity {
                head: h,
                source,
                status: match status {
                    RowStatus::Present => "present",
                    RowStatus::Changed => "changed",
                    RowStatus::Purged => "purged",
                    RowStatus::Missing => "missing",
                }
                .to_string(),
            })
        }
        None => None,
    };
    let summary = match &verify.first_broken {
        None => format!("chain intact: {} rows", verify.rows),
        Some(b) => format!("chain broken at row {}: {}", b.id, b.reason),
    };
    let evidence = Evidence {
        verified: verify.is_intact(),
        summary,
        rows: verify.rows,
        keyed: store.keyed(),
        head,
        previous_head,
    };
    let (allow, deny) = ctx.rules.site_entries();
    let rules = RulesInForce {
        version: ctx.rules.digest().chars().take(16).collect(),
        services: ctx.rules.services().count() as u64,
        allow: allow as u64,
        deny: deny as u64,
        mode: setting.mode,
        enforcement: setting.enforcement,
        changes: setting.rule_changes,
    };
    Ok(this.finish(&before, &usage, rules, evidence, now))
}

/// The report as pretty JSON.
pub fn to_json(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_default()
}

/// The CSV header of [`write_csv`].
pub const CSV_COLUMNS: [&str; 22] = [
    "incident",
    "first_seen",
    "last_seen",
    "device",
    "staff",
    "client_ip",
    "client_mac",
    "dhcp_name",
    "group",
    "service",
    "service_name",
    "category",
    "tier",
    "verdict",
    "mode",
    "how",
    "host",
    "hosts",
    "attempts",
    "status",
    "acknowledged_by",
    "acknowledged_at",
];

/// Every incident opened in `period`, one CSV row each (local times), to `out`. A cell
/// a spreadsheet would run as a formula (starting `=`, `+`, `-`, `@`) is prefixed with
/// `'`: host and device names come off the wire. Returns the rows written.
pub fn write_csv(
    store: &Store,
    ctx: &Context<'_>,
    period: &Period,
    out: impl Write,
) -> Result<u64> {
    let mut w = csv::Writer::from_writer(out);
    let csv_err = |e: csv::Error| Error::Usage(format!("writing CSV: {e}"));
    w.write_record(CSV_COLUMNS).map_err(csv_err)?;
    let mut n = 0u64;
    let mut failed = None;
    let tz: &TimeZone = ctx.tz;
    store.scan_period(period.from, period.to, |row| {
        if failed.is_some() {
            return;
        }
        let r = &row.summary.record;
        let staff = ctx
            .inventory
            .find(r.client_mac, r.device.as_deref(), r.client_ip)
            .and_then(|d| d.owner.clone());
        let ack = row.acks.first();
        let opt = |s: &Option<String>| s.clone().unwrap_or_default();
        let cells = [
            row.id.to_string(),
            period::local(tz, r.ts),
            period::local(tz, row.summary.last_seen),
            build::device_name(&row, ctx.inventory),
            staff.unwrap_or_default(),
            r.client_ip.to_string(),
            r.client_mac.map(|m| m.to_string()).unwrap_or_default(),
            opt(&r.device),
            opt(&r.group),
            r.service.clone(),
            r.service_name.clone(),
            opt(&r.category),
            r.tier.map(|t| t.as_str().to_string()).unwrap_or_default(),
            r.verdict.as_str().to_string(),
            r.mode.as_str().to_string(),
            row.summary.hows.join(" "),
            r.host.clone(),
            row.summary.hosts.join(" "),
            row.summary.count.to_string(),
            if ack.is_some() {
                "acknowledged"
            } else {
                "open"
            }
            .to_string(),
            ack.map(|a| a.by.clone()).unwrap_or_default(),
            ack.map(|a| period::local(tz, a.ts)).unwrap_or_default(),
        ];
        match w.write_record(cells.iter().map(|c| defuse(c).into_owned())) {
            Ok(()) => n += 1,
            Err(e) => failed = Some(e),
        }
    })?;
    if let Some(e) = failed {
        return Err(csv_err(e));
    }
    w.flush()
        .map_err(|e| Error::Usage(format!("writing CSV: {e}")))?;
    Ok(n)
}

/// A cell that cannot start a spreadsheet formula.
pub fn defuse(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}
