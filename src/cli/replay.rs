//! `aiwarden replay`.

use std::path::PathBuf;

use super::replay_run::{self, Format};
use super::{CmdResult, ModeArg, RulesArgs};
use crate::policy::RuleSet;

/// `aiwarden replay`.
#[derive(clap::Args)]
pub(super) struct Args {
    /// Capture files, read in the order given.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    rules: RulesArgs,
    /// `monitor` flags what `enforce` would block.
    #[arg(long, value_enum, default_value = "enforce")]
    mode: ModeArg,
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    format: Format,
    /// Print every name seen, not only those a rule matches.
    #[arg(long)]
    all: bool,
    /// Print incidents (per device and service, grouped within --window) instead.
    #[arg(long)]
    incidents: bool,
    /// Incident grouping window in seconds.
    #[arg(long, default_value_t = 600)]
    window: u64,
    /// Do not draw a progress bar.
    #[arg(long)]
    no_progress: bool,
}

pub(super) fn run(a: Args) -> CmdResult {
    let rules = RuleSet::load(&a.rules.dirs())?;
    let opts = replay_run::Options {
        mode: a.mode.into(),
        all: a.all,
        format: a.format,
        incidents: a.incidents,
        window_micros: a.window.saturating_mul(1_000_000),
        progress: !a.no_progress,
        ..replay_run::Options::default()
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let summary = replay_run::run(&a.files, &rules, &opts, &mut out)?;
    let _ = summary.write_to(&mut std::io::stderr().lock());
    Ok(())
}
