//! `aiwarden unblock`: lets one device reach one AI host (or every blocked one) for a while,
//! recorded in the chained log (who, when, why, until when); `--list` shows the unblocks in
//! force and those lately ended. The daemon reads them from the store every few seconds.

use std::io::Write;
use std::time::Duration;

use super::incidents::{fmt_micros, StoreArgs};
use super::CmdResult;
use crate::error::{Error, Result};
use crate::policy::pattern::Pattern;
use crate::policy::unblock::{Device, Unblock};
use crate::store::writer::now_micros;
use crate::store::Store;

/// The longest an unblock may last: a lasting exception belongs in the site files (an
/// allow entry for a group the device is in), where `rules check` and reviews see it.
const MAX_FOR: Duration = Duration::from_secs(31 * 24 * 3600);

/// How long ended unblocks stay in `--list`.
const LIST_ENDED: Duration = Duration::from_secs(7 * 24 * 3600);

/// `aiwarden unblock`.
#[derive(clap::Args)]
pub(super) struct Args {
    /// The device: a MAC address, an IP address, or a DHCP host name or inventory label.
    #[arg(required_unless_present = "list")]
    device: Option<String>,
    /// The host or pattern, as in the site allow list (`chatgpt.com`, `*.openai.azure.com`).
    /// Without it, every blocked AI host.
    host: Option<String>,
    /// How long (`30m`, `1h`, `2days`); at most 31 days.
    #[arg(long = "for", default_value = "1h")]
    duration: String,
    /// Who allows it.
    #[arg(long, required_unless_present = "list")]
    by: Option<String>,
    /// Why.
    #[arg(long, required_unless_present = "list")]
    note: Option<String>,
    /// List the unblocks in force and those ended in the last 7 days instead.
    #[arg(long, conflicts_with_all = ["device", "host", "by", "note"])]
    list: bool,
    /// With --list: one JSON array.
    #[arg(long, requires = "list")]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// Parses `--for`: a humantime duration, more than zero and at most [`MAX_FOR`].
fn parse_for(text: &str) -> Result<Duration> {
    let d = humantime::parse_duration(text)
        .map_err(|e| Error::Usage(format!("--for {text:?}: {e} (use e.g. 30m, 1h, 2days)")))?;
    if d.is_zero() {
        return Err(Error::Usage(format!(
            "--for {text:?}: must be more than zero"
        )));
    }
    if d > MAX_FOR {
        return Err(Error::Usage(format!(
            "--for {text:?}: at most 31 days; a lasting exception belongs in the site allow \
             list, scoped to the device's group"
        )));
    }
    Ok(d)
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn required<'a>(v: &'a Option<String>, flag: &str, what: &str) -> Result<&'a str> {
    match v.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(Error::Usage(format!("{flag} must not be empty: {what}"))),
    }
}

pub(super) fn run(a: Args) -> CmdResult {
    let path = a.store.path()?;
    let now = now_micros();
    if a.list {
        let rows = Store::open_read_only(&path)?.unblocks(now - micros(LIST_ENDED))?;
        return list(&rows, now, a.json);
    }
    let device = Device::parse(a.device.as_deref().unwrap_or_default()).map_err(Error::Usage)?;
    let host = a
        .host
        .as_deref()
        .map(|h| Pattern::parse(h).map_err(Error::Usage))
        .transpose()?;
    let by = required(&a.by, "--by", "who allows the unblock")?;
    let note = required(&a.note, "--note", "why the device may reach it")?;
    let until = now.saturating_add(micros(parse_for(&a.duration)?));
    let id = Store::open(&path)?.unblock(now, &device, host.as_ref(), by, note, until)?;
    println!(
        "unblock {id}: {device} may reach {} until {} (by {by}); the daemon applies it within \
         a few seconds",
        host.as_ref()
            .map_or_else(|| "every blocked AI host".to_string(), Pattern::display),
        fmt_micros(until)
    );
    Ok(())
}

fn list(rows: &[Unblock], now: i64, json: bool) -> CmdResult {
    let mut out = std::io::stdout().lock();
    if json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|u| {
                let mut v = serde_json::to_value(u).unwrap_or_default();
                v["active"] = serde_json::Value::Bool(u.active(now));
                v
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &v).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:>6} {:<24} {:<24} {:<20} {:<7} {:<16} NOTE",
        "ID", "DEVICE", "HOST", "UNTIL", "STATE", "BY"
    )?;
    for u in rows {
        writeln!(
            out,
            "{:>6} {:<24} {:<24} {:<20} {:<7} {:<16} {}",
            u.id,
            u.device.to_string(),
            u.host_text(),
            fmt_micros(u.until),
            if u.active(now) { "active" } else { "ended" },
            u.by,
            u.note
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_for("90m").ok(), Some(Duration::from_secs(5400)));
        assert_eq!(parse_for("1h").ok(), Some(Duration::from_secs(3600)));
        for bad in ["", "soon", "0s", "32days", "-1h"] {
            match parse_for(bad) {
                Err(e @ Error::Usage(_)) => assert_eq!(e.exit_code(), 2, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
