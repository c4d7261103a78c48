//! `aiwarden incidents list`, `aiwarden incidents ack` and `aiwarden verify`: the store,
//! read and acknowledged from a shell.

use std::io::Write;
use std::path::PathBuf;

use super::CmdResult;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::{ListFilter, Store, Tail};

/// Which store: the configuration's, or a file named directly.
#[derive(clap::Args)]
pub(super) struct StoreArgs {
    /// The configuration file (for the store path).
    #[arg(long, default_value = crate::paths::CONFIG)]
    config: PathBuf,
    /// The store file itself, instead of --config.
    #[arg(long)]
    store: Option<PathBuf>,
}

impl StoreArgs {
    pub(super) fn path(&self) -> Result<PathBuf> {
        match &self.store {
            Some(p) => Ok(p.clone()),
            None => Ok(Config::load(&self.config)?.store.path),
        }
    }
}

/// `aiwarden incidents ...`.
#[derive(clap::Subcommand)]
pub(super) enum Command {
    /// List incidents, newest first.
    List {
        /// Only incidents first seen at or after this time (RFC 3339, or a date).
        #[arg(long)]
        since: Option<String>,
        /// Only this device: IP, MAC, DHCP host name or inventory label.
        #[arg(long)]
        device: Option<String>,
        /// Only this service id.
        #[arg(long)]
        service: Option<String>,
        /// Only incidents nobody has acknowledged.
        #[arg(long)]
        unacked: bool,
        /// At most this many.
        #[arg(long)]
        limit: Option<u32>,
        /// One JSON array.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Record that the staff member behind an incident was trained.
    Ack {
        /// The incident id.
        id: i64,
        /// Who followed up.
        #[arg(long)]
        by: String,
        /// What was done.
        #[arg(long)]
        note: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn parse_time(s: &str) -> Result<i64> {
    let t = humantime::parse_rfc3339_weak(s)
        .or_else(|_| humantime::parse_rfc3339_weak(&format!("{s} 00:00:00")))
        .map_err(|e| {
            Error::Usage(format!(
                "time {s:?}: {e} (use e.g. 2026-11-23 or 2026-11-23T09:00:00Z)"
            ))
        })?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0))
}

pub(super) fn fmt_micros(us: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(us.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `aiwarden verify`.
#[derive(clap::Args)]
pub(super) struct VerifyArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Require a head file signed with the store's key (`<store>.key`): without it, a head
    /// file rewritten with the tail is not caught.
    #[arg(long)]
    keyed: bool,
}

/// Checks the file (`PRAGMA quick_check`), the chain, and the tail against the head file;
/// exits 3 naming the first fault.
pub(super) fn verify(a: VerifyArgs) -> CmdResult {
    let path = a.store.path()?;
    if let Some(e) = crate::store::deleted(&path) {
        return Err(e);
    }
    let store = Store::open_read_only(&path)?;
    store.integrity()?;
    let report = store.verify()?;
    if a.keyed && report.first_broken.is_none() && !store.keyed() {
        return Err(Error::StoreHead {
            path,
            reason: "--keyed, but the store has no key: its head file is not signed".into(),
        });
    }
    let report = report.into_result(&path)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: intact ({} rows{})",
        path.display(),
        report.rows,
        report
            .anchor
            .map(|a| format!(", from the retention anchor at row {a}"))
            .unwrap_or_default()
    )?;
    let keyed = |k: bool| if k { ", keyed" } else { "" };
    match &report.tail {
        Tail::Matches { head, keyed: k } => writeln!(
            out,
            "head: row {} ({}), as the head file says{}",
            head.id,
            head.hash,
            keyed(*k)
        )?,
        Tail::Behind {
            head,
            newer,
            keyed: k,
        } => writeln!(
            out,
            "head: the head file names row {} ({}){}; {newer} newer rows follow it, written \
             after its last update (a crash between a commit and the head's write)",
            head.id,
            head.hash,
            keyed(*k)
        )?,
        Tail::Fresh => writeln!(out, "head: none yet (nothing was ever written)")?,
        Tail::Unchecked => writeln!(
            out,
            "head: none (a schema 1 store, from before head files: rows cut off the end \
             cannot be seen until the daemon has opened it once)"
        )?,
        Tail::Broken { .. } => {}
    }
    let counts = store.row_counts()?;
    let list = |pairs: &[(String, u64)]| {
        pairs
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !counts.kinds.is_empty() {
        writeln!(out, "rows by kind: {}", list(&counts.kinds))?;
    }
    if !counts.acks_by.is_empty() {
        writeln!(out, "acks by: {}", list(&counts.acks_by))?;
    }
    if !counts.events.is_empty() {
        writeln!(out, "events: {}", list(&counts.events))?;
    }
    for b in &report.breaks {
        writeln!(
            out,
            "break: the chain began again at row {} on {}: {}{}",
            b.id,
            fmt_micros(b.ts),
            b.reason,
            b.prev
                .as_ref()
                .map(|p| format!(" (the chain before ended at row {}, {})", p.id, p.hash))
                .unwrap_or_default()
        )?;
    }
    Ok(())
}

pub(super) fn run(c: Command) -> CmdResult {
    match c {
        Command::List {
            since,
            device,
            service,
            unacked,
            limit,
            json,
            store,
        } => {
            let path = store.path()?;
            let filter = ListFilter {
                since: since.as_deref().map(parse_time).transpose()?,
                until: None,
                device,
                service,
                unacked_only: unacked,
                limit,
            };
            let rows = Store::open_read_only(&path)?.list(&filter)?;
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &rows).map_err(std::io::Error::from)?;
                writeln!(out)?;
                return Ok(());
            }
            writeln!(
                out,
                "{:>6} {:<20} {:<28} {:<24} {:<6} {:>5} {:<14} ACK",
                "ID", "FIRST SEEN", "DEVICE", "SERVICE", "ACTION", "COUNT", "HOW"
            )?;
            for r in &rows {
                let i = &r.summary.record;
                let device = i
                    .label
                    .clone()
                    .or_else(|| i.device.clone())
                    .or_else(|| i.client_mac.map(|m| m.to_string()))
                    .unwrap_or_else(|| i.client_ip.to_string());
                writeln!(
                    out,
                    "{:>6} {:<20} {:<28} {:<24} {:<6} {:>5} {:<14} {}",
                    r.id,
                    fmt_micros(i.ts),
                    device,
                    i.service_name,
                    i.verdict.as_str(),
                    r.summary.count,
                    r.summary.hows.join(" "),
                    r.acks
                        .last()
                        .map(|a| format!("{} ({})", a.by, fmt_micros(a.ts)))
                        .unwrap_or_else(|| "-".into())
                )?;
            }
            Ok(())
        }
        Command::Ack {
            id,
            by,
            note,
            store,
        } => {
            let path = store.path()?;
            let now = crate::store::writer::now_micros();
            let ack = Store::open(&path)?.ack(id, now, &by, &note)?;
            println!("incident {id} acknowledged by {by} (log row {ack})");
            Ok(())
        }
    }
}
