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
    /// Also record the incidents and daily usage in this store file, as the daemon would
    /// (a sample store for `aiwarden report`, a drill).
    #[arg(long)]
    store: Option<PathBuf>,
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
        record: a.store.is_some(),
        ..replay_run::Options::default()
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let summary = replay_run::run(&a.files, &rules, &opts, &mut out)?;
    let _ = summary.write_to(&mut std::io::stderr().lock());
    if let Some(path) = &a.store {
        record(path, &summary)?;
    }
    Ok(())
}

/// Writes what the replay's pipeline did into the store at `path`: opened incidents, their
/// later observations, and the daily usage, as the daemon's writer does.
fn record(path: &std::path::Path, summary: &replay_run::Summary) -> CmdResult {
    use crate::incident::IncidentOp;
    use std::collections::HashMap;
    let mut store = crate::store::Store::open(path)?;
    let mut ids: HashMap<u64, i64> = HashMap::new();
    for op in &summary.ops {
        match op {
            IncidentOp::Open { key, record } => {
                let id = store.append_incidents(std::slice::from_ref(record))?;
                ids.insert(*key, id[0]);
            }
            IncidentOp::Touch { key, touch } => {
                if let Some(id) = ids.get(key) {
                    store.touch_incident(*id, touch)?;
                }
            }
        }
    }
    let mut days: std::collections::BTreeMap<(String, String, crate::policy::Verdict), u64> =
        std::collections::BTreeMap::new();
    for u in &summary.usage {
        *days
            .entry((u.day.clone(), u.service.clone(), u.verdict))
            .or_default() += 1;
    }
    let rows: Vec<_> = days
        .into_iter()
        .map(|((d, s, v), n)| (d, s, v, n))
        .collect();
    store.add_usage_batch(&rows)?;
    eprintln!("recorded {} incidents in {}", ids.len(), path.display());
    Ok(())
}
