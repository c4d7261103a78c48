//! `aiwarden report`: the weekly shadow-AI report, read-only on the store, in one form to
//! a file or standard output, or every form into the archive (`reports/` in the state
//! directory) and out by email and webhook as the configuration says.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{write_atomic, CmdResult};
use crate::config::Config;
use crate::devices::Inventory;
use crate::error::{Error, Result};
use crate::policy::RuleSet;
use crate::report::model::{Count, HeadRef};
use crate::report::{self, Context, Period, Report, Setting, Which};
use crate::store::{now_micros, Store};

/// The forms a report comes in.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Format {
    /// One self-contained HTML page.
    Html,
    /// PDF, the same content.
    Pdf,
    /// The period's incidents, one row each.
    Csv,
    /// Every figure, for tools.
    Json,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Pdf => "pdf",
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }
}

/// The period a report covers: `aiwarden report`'s and `aiwarden fleet report`'s.
#[derive(clap::Args)]
pub(super) struct PeriodArgs {
    /// An ISO week (2026-W48), `this` or `last` (the default), in the report's time zone.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    week: Option<String>,
    /// First local date of a range (YYYY-MM-DD); needs --to.
    #[arg(long, requires = "to")]
    from: Option<String>,
    /// Last local date of a range, inclusive.
    #[arg(long, requires = "from")]
    to: Option<String>,
}

impl PeriodArgs {
    /// The period asked for: a range, a week, or last week.
    pub(super) fn which(&self) -> Which {
        match (&self.week, &self.from, &self.to) {
            (_, Some(from), Some(to)) => Which::Range {
                from: from.clone(),
                to: to.clone(),
            },
            (Some(w), _, _) => Which::Week(w.clone()),
            _ => Which::Week("last".into()),
        }
    }
}

/// `aiwarden report ...`.
#[derive(clap::Args)]
pub(super) struct Args {
    /// The configuration file (store, rules, devices, time zone, site name, delivery).
    #[arg(long, default_value = crate::paths::CONFIG)]
    config: PathBuf,
    /// Read this store file instead of the configuration's.
    #[arg(long)]
    store: Option<PathBuf>,
    #[command(flatten)]
    period: PeriodArgs,
    /// The form to write.
    #[arg(long, value_enum, default_value = "html")]
    format: Format,
    /// Write to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write every form into the reports directory as <period>.<form>.
    #[arg(long)]
    archive: bool,
    /// Send the report by email and webhook as the configuration's [report] says.
    #[arg(long)]
    deliver: bool,
}

/// Runs `aiwarden report`.
pub(super) fn run(a: Args) -> CmdResult {
    let cfg = Config::load(&a.config)?;
    let tz = report::period::zone(&cfg.timezone).map_err(Error::Usage)?;
    let rules = RuleSet::load(&cfg.rule_dirs())?;
    let inventory = match &cfg.devices.inventory {
        Some(p) => Inventory::load(p)?,
        None => Inventory::default(),
    };
    let store_path = a.store.clone().unwrap_or_else(|| cfg.store.path.clone());
    let store = Store::open_read_only(&store_path)?;
    store.for_scans()?;
    let now = now_micros();
    let period = Period::resolve(&a.period.which(), &tz, now).map_err(Error::Usage)?;
    let ctx = Context {
        site: &cfg.site_name,
        tz: &tz,
        rules: &rules,
        inventory: &inventory,
    };
    let dir = cfg.report.dir.clone();
    let previous_head = period
        .previous(&tz)
        .ok()
        .and_then(|p| archived_head(&dir, &p.label));
    let setting = Setting {
        mode: cfg.mode.as_str().to_string(),
        enforcement: vec![crate::daemon::enforcement(&cfg)],
        previous_head,
        rule_changes: rule_changes(&store, &period, &tz)?,
    };
    // The CSV form alone lists incidents and needs no figures.
    let report = if a.archive || a.deliver || a.format != Format::Csv {
        let progress = Progress::new(&store, &period)?;
        let r = report::collect_with(&store, &ctx, period.clone(), setting, now, &mut |n| {
            progress.at(n)
        })?;
        progress.done();
        Some(r)
    } else {
        None
    };

    if a.archive {
        for f in [Format::Json, Format::Csv, Format::Html, Format::Pdf] {
            let path = dir.join(format!("{}.{}", period.label, f.extension()));
            write_atomic(&path, |w| {
                write_form(f, report.as_ref(), &store, &ctx, &period, w)
            })?;
            eprintln!("wrote {}", path.display());
        }
    }
    if a.deliver {
        if let Some(r) = &report {
            deliver(&cfg, r, &store, &ctx)?;
        }
    }
    if !a.archive || a.out.is_some() {
        match &a.out {
            Some(path) => write_atomic(path, |w| {
                write_form(a.format, report.as_ref(), &store, &ctx, &period, w)
            })?,
            None => {
                let stdout = std::io::stdout();
                let mut lock = stdout.lock();
                write_form(a.format, report.as_ref(), &store, &ctx, &period, &mut lock)?;
                lock.flush().map_err(Error::Output)?;
            }
        }
    }
    Ok(())
}

/// Writes `report` in form `f`; CSV reads the period's incidents again, row by row.
fn write_form(
    f: Format,
    report: Option<&Report>,
    store: &Store,
    ctx: &Context<'_>,
    period: &Period,
    w: &mut dyn Write,
) -> Result<()> {
    let report = || report.ok_or_else(|| Error::Usage("no report was collected".into()));
    match f {
        Format::Json => {
            let report = report()?;
            w.write_all(report::to_json(report).as_bytes())
                .and_then(|()| w.write_all(b"\n"))
                .map_err(Error::Output)?;
        }
        Format::Csv => {
            report::write_csv(store, ctx, period, w)?;
        }
        Format::Html => {
            w.write_all(report::html::render(report()?).as_bytes())
                .map_err(Error::Output)?;
        }
        Format::Pdf => {
            w.write_all(&report::pdf::render(report()?)?)
                .map_err(Error::Output)?;
        }
    }
    Ok(())
}

/// The rules loaded during `period` (the daemon's `rules_loaded` events): one row per
/// version, with when it was first loaded and how many times.
fn rule_changes(store: &Store, period: &Period, tz: &jiff::tz::TimeZone) -> Result<Vec<Count>> {
    let mut out: Vec<Count> = Vec::new();
    for e in store.events(period.from, period.to)? {
        if e.event != "rules_loaded" {
            continue;
        }
        match out.iter_mut().find(|c| c.name.ends_with(&e.detail)) {
            Some(c) => c.count += 1,
            None => out.push(Count {
                name: format!("{}: {}", report::period::local(tz, e.ts), e.detail),
                count: 1,
            }),
        }
    }
    Ok(out)
}

/// The chain head the archived report of period `label` printed, if it was archived.
fn archived_head(dir: &Path, label: &str) -> Option<(HeadRef, String)> {
    let name = format!("{label}.json");
    let text = std::fs::read_to_string(dir.join(&name)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let head = v.get("evidence")?.get("head")?;
    Some((
        HeadRef {
            id: head.get("id")?.as_i64()?,
            hash: head.get("hash")?.as_str()?.to_string(),
        },
        name,
    ))
}

/// A progress bar on a terminal while a long period is read.
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new(store: &Store, period: &Period) -> Result<Progress> {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return Ok(Progress(None));
        }
        let total = store.count_incidents(period.from, period.to)?;
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "reading {pos}/{len} incidents {wide_bar} {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Ok(Progress(Some(bar)))
    }

    fn at(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.set_position(n);
        }
    }

    fn done(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// Sends `report` by every channel the configuration names. Each channel is tried on its
/// own and retried; every outcome is logged; the command fails when any channel failed
/// in the end, so the timer's unit shows it.
fn deliver(cfg: &Config, r: &Report, store: &Store, ctx: &Context<'_>) -> Result<()> {
    use crate::deliver::{send, Inline, Outgoing};
    let d = &cfg.report.delivery;
    if d.email.is_none() && d.webhook.is_none() {
        return Err(Error::Usage(
            "--deliver: neither [report.email] nor [report.webhook] is configured".into(),
        ));
    }
    let mut pdf = Vec::new();
    write_form(Format::Pdf, Some(r), store, ctx, &r.period, &mut pdf)?;
    let out = Outgoing {
        subject: format!(
            "{} shadow-AI report {} ({} incidents, {} open)",
            r.site, r.period.label, r.headline.incidents, r.headline.open
        ),
        html: report::html::email_html(r),
        text: report::text::render(r),
        pdf: Some((format!("aiwarden-{}.pdf", r.period.label), pdf)),
        images: report::charts::png(r)
            .into_iter()
            .map(|(cid, png)| Inline { cid, png })
            .collect(),
        json: serde_json::to_value(r).unwrap_or_default(),
    };
    let mut failed = Vec::new();
    for sent in send(d, &out) {
        match &sent.result {
            Ok(()) => {
                tracing::info!(
                    channel = sent.channel.as_str(),
                    attempts = sent.attempts,
                    "report sent"
                );
                eprintln!(
                    "sent by {} ({} attempts)",
                    sent.channel.as_str(),
                    sent.attempts
                );
            }
            Err(e) => {
                tracing::error!(channel = sent.channel.as_str(), attempts = sent.attempts, error = %e, "report not sent");
                eprintln!("not sent by {}: {e}", sent.channel.as_str());
                failed.push(sent.channel.as_str());
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "the report was not sent by {}",
            failed.join(" and ")
        )))
    }
}
