//! `aiwarden fleet ...`: the MSP roll-up from the command line. `fleet syslog-send` sends
//! the store's incidents that the SIEM has not confirmed yet, one pass, and exits; a
//! systemd timer (or cron) can run it until the daemon does it on its own.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::CmdResult;
use crate::config::Config;
use crate::error::Error;
use crate::fleet::{send_pending, Confirm, Source, Target};
use crate::policy::{Baa, RuleDirs, RuleSet};

/// `aiwarden fleet ...`.
#[derive(clap::Subcommand)]
pub(super) enum Command {
    /// Send the incidents the SIEM has not confirmed yet by RFC 5424 syslog over TLS, each
    /// an OCSF Detection Finding (docs/fleet.md), and move the cursor after each confirmed
    /// batch; prints what was sent.
    SyslogSend(SyslogArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ConfirmArg {
    /// The receiver closes cleanly after the sender's TLS close_notify (a reset resends).
    Close,
    /// The receiver answers the sender's close_notify with its own.
    CloseNotify,
    /// Written and flushed is enough (for receivers that never answer close_notify).
    Flush,
}

/// `aiwarden fleet syslog-send`.
#[derive(clap::Args)]
pub(super) struct SyslogArgs {
    /// The receiver's host name or address (its certificate must name it).
    #[arg(long)]
    host: String,
    /// The receiver's port.
    #[arg(long, default_value_t = 6514)]
    port: u16,
    /// CA certificates (PEM) to check the receiver's certificate against. Default: the
    /// system's bundle.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// A client certificate chain (PEM), for receivers that ask for one.
    #[arg(long, requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, requires = "client_cert")]
    client_key: Option<PathBuf>,
    /// Syslog facility number, 0 to 23 (16 to 23: local0 to local7).
    #[arg(long, default_value_t = crate::fleet::syslog::DEFAULT_FACILITY,
          value_parser = clap::value_parser!(u8).range(0..=23))]
    facility: u8,
    /// Incidents per batch (one TLS connection each).
    #[arg(long, default_value_t = crate::fleet::syslog_send::DEFAULT_BATCH,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::store::MAX_FEED)))]
    batch: u32,
    /// When a batch counts as received.
    #[arg(long, value_enum, default_value = "close")]
    confirm: ConfirmArg,
    /// Seconds to wait for the receiver before a batch attempt fails.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
    /// Attempts at one batch before giving up.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    attempts: u32,
    /// The cursor file. Default: `fleet-syslog.cursor` beside the store.
    #[arg(long)]
    cursor: Option<PathBuf>,
    /// The configuration file (store, site name, rules); not read when --store and --site
    /// are both given.
    #[arg(long, default_value = crate::paths::CONFIG)]
    config: PathBuf,
    /// Read this store instead of the configuration's.
    #[arg(long)]
    store: Option<PathBuf>,
    /// The site name in place of the configuration's `site_name`.
    #[arg(long)]
    site: Option<String>,
    /// The HOSTNAME in the messages. Default: this machine's host name.
    #[arg(long)]
    hostname: Option<String>,
}

pub(super) fn run(command: Command) -> CmdResult {
    match command {
        Command::SyslogSend(a) => syslog_send(a),
    }
}

fn syslog_send(a: SyslogArgs) -> CmdResult {
    let cfg = match (&a.store, &a.site) {
        (Some(_), Some(_)) => None,
        _ => Some(Config::load(&a.config)?),
    };
    let (store, site, dirs) = match &cfg {
        Some(c) => (
            a.store.clone().unwrap_or_else(|| c.store.path.clone()),
            a.site.clone().unwrap_or_else(|| c.site_name.clone()),
            c.rule_dirs(),
        ),
        None => (
            a.store.clone().unwrap_or_default(),
            a.site.clone().unwrap_or_default(),
            RuleDirs::with_site(&crate::paths::rules(), None),
        ),
    };
    if site.trim().is_empty() {
        return Err(Error::Usage(
            "the site name is empty: set site_name or --site".into(),
        ));
    }
    // The BAA column comes from the catalog; without it the events leave `baa` out.
    let baas: HashMap<String, Baa> = match RuleSet::load(&dirs) {
        Ok(rules) => rules
            .services()
            .filter_map(|s| s.baa.map(|b| (s.id.to_string(), b)))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "fleet: rules not loaded; events carry no baa");
            HashMap::new()
        }
    };
    let baa = |service: &str| baas.get(service).copied();
    let cursor = a.cursor.clone().unwrap_or_else(|| {
        store
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("fleet-syslog.cursor")
    });
    let hostname = a
        .hostname
        .clone()
        .unwrap_or_else(crate::fleet::syslog_send::host_name);
    let mut target = Target::new(&a.host, a.port);
    target.ca_file = a.ca_file.clone();
    target.client_cert = a.client_cert.clone().zip(a.client_key.clone());
    target.facility = a.facility;
    target.batch = a.batch;
    target.confirm = match a.confirm {
        ConfirmArg::Close => Confirm::Close,
        ConfirmArg::CloseNotify => Confirm::CloseNotify,
        ConfirmArg::Flush => Confirm::Flush,
    };
    target.timeout = Duration::from_secs(a.timeout_secs.max(1));
    target.attempts = a.attempts;
    let src = Source {
        store: &store,
        cursor: &cursor,
        site: &site,
        hostname: &hostname,
        baa: &baa,
    };
    let r = send_pending(&src, &target, &AtomicBool::new(false))?;
    println!(
        "sent {} incidents in {} batches ({} connections); cursor {}",
        r.sent, r.batches, r.connections, r.cursor
    );
    Ok(())
}
