//! `aiwarden run` and `aiwarden check`.

use std::path::PathBuf;

use super::logging::Logging;
use super::CmdResult;
use crate::config::Config;
use crate::daemon;

/// The configuration file argument.
#[derive(clap::Args)]
pub(super) struct ConfigArg {
    /// The configuration file.
    #[arg(long, default_value = crate::paths::CONFIG)]
    pub(super) config: PathBuf,
}

/// `aiwarden check`.
#[derive(clap::Args)]
pub(super) struct CheckArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Validate the files only, not this host (its addresses, interfaces, store): for a
    /// configuration written for another machine.
    #[arg(long)]
    files_only: bool,
}

/// `aiwarden run`.
#[derive(clap::Args)]
pub(super) struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Read frames from these capture files instead of the interfaces (the resolver does
    /// not start); stop when they are read. For testing a configuration on a capture.
    #[arg(long)]
    read: Vec<PathBuf>,
}

pub(super) fn run(a: RunArgs, log: &Logging) -> CmdResult {
    let cfg = Config::load(&a.config.config)?;
    log.configure(&cfg.log);
    daemon::run(cfg, a.read)
}

pub(super) fn check(a: CheckArgs) -> CmdResult {
    let c = daemon::check(&a.config.config, !a.files_only)?;
    for w in &c.warnings {
        println!("{w}");
    }
    let cfg = &c.config;
    println!(
        "{}: ok (mode {}, {} interfaces, dns on {:?}, {} services, {} patterns, {} warnings)",
        a.config.config.display(),
        cfg.mode.as_str(),
        cfg.capture.interfaces.len(),
        cfg.dns.listen,
        c.rules.services().count(),
        c.rules.pattern_count(),
        c.warnings.len()
    );
    println!("enforcement: {}", daemon::enforcement(cfg));
    Ok(())
}
