//! `aiwarden console`: the compliance web console served alone (the daemon serves it too
//! when `[console] enabled = true`): handy beside a daemon on another machine's store copy,
//! and for tests.

use std::path::PathBuf;

use super::CmdResult;
use crate::config::Config;
use crate::error::Error;

/// `aiwarden console`.
#[derive(clap::Args)]
pub(super) struct Args {
    /// The configuration file (`[console]`, the store, the rules).
    #[arg(long, default_value = crate::paths::CONFIG)]
    config: PathBuf,
    /// The clinic's time zone (IANA name, e.g. America/Chicago) for days and weeks, in
    /// place of the configuration's `timezone`.
    #[arg(long)]
    timezone: Option<String>,
}

pub(super) fn run(a: Args) -> CmdResult {
    let cfg = Config::load(&a.config)?;
    let tz = match &a.timezone {
        Some(name) => jiff::tz::TimeZone::get(name)
            .map_err(|e| Error::Usage(format!("time zone {name:?}: {e}")))?,
        None => crate::report::period::zone(&cfg.timezone).map_err(Error::Usage)?,
    };
    crate::console::run(&cfg, tz)
}
