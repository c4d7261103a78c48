//! `aiwarden fleet ...`: the MSP roll-up from the command line. `fleet syslog-send` sends
//! the store's incidents that the SIEM has not confirmed yet, one pass, and exits; `fleet
//! push` copies what the central PostgreSQL lacks, one pass (the daemon does both on its
//! own when configured); `fleet verify` walks every site's copied chain; `fleet report`
//! writes the weekly figures of every site and their total from the central database.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::CmdResult;
use crate::config::Config;
use crate::error::Error;
use crate::fleet::rollup_pg::{self, Central};
use crate::fleet::{send_pending, Confirm, Source, Target};
use crate::policy::{Baa, RuleDirs, RuleSet};

/// `aiwarden fleet ...`.
#[derive(clap::Subcommand)]
pub(super) enum Command {
    /// Send the incidents the SIEM has not confirmed yet by RFC 5424 syslog over TLS, each
    /// an OCSF Detection Finding (docs/fleet.md), and move the cursor after each confirmed
    /// batch; prints what was sent.
    SyslogSend(SyslogArgs),
    /// Copy what the central PostgreSQL lacks of this box's store (rows, activity, daily
    /// usage, health), one pass; prints what was copied.
    Push(PushArgs),
    /// Walk every site's chain as copied centrally; exits 3 when one does not verify.
    Verify(VerifyArgs),
    /// The weekly report of every site and their total, from the central PostgreSQL.
    Report(FleetReportArgs),
    /// Enrol this box: fetch its site name, bundle URL and keys and roll-up targets from
    /// the MSP's enrolment server (HTTPS, certificate checked, a bearer token), and write
    /// them to fleet.toml beside the configuration, secrets in files of mode 0600.
    Enrol(EnrolArgs),
}

/// `aiwarden fleet enrol`.
#[derive(clap::Args)]
pub(super) struct EnrolArgs {
    /// The enrolment URL the MSP gave for this box (https://).
    url: String,
    /// The enrolment token, sent as a bearer token. --token-file keeps it off the command
    /// line (which other users can see).
    #[arg(
        long,
        conflicts_with = "token_file",
        required_unless_present = "token_file"
    )]
    token: Option<String>,
    /// A file holding the token.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// CA certificates (PEM) for the enrolment server. Default: the system's bundle.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// The configuration; fleet.toml is written beside it.
    #[arg(long, default_value = crate::paths::CONFIG)]
    config: PathBuf,
    /// Where the secret files go. Default: the fleet state directory (beside the store).
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

/// How a server's certificate is checked, and the client certificate if one is asked for.
#[derive(clap::Args)]
pub(super) struct TlsArgs {
    /// CA certificates (PEM) to check the server's certificate against. Default: the
    /// system's bundle.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// A client certificate chain (PEM), for servers that ask for one.
    #[arg(long, requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, requires = "client_cert")]
    client_key: Option<PathBuf>,
}

impl TlsArgs {
    fn client(&self) -> Option<(PathBuf, PathBuf)> {
        self.client_cert.clone().zip(self.client_key.clone())
    }
}

/// How to reach the central PostgreSQL: flags, else the configuration's [fleet.postgres].
#[derive(clap::Args)]
pub(super) struct DbArgs {
    /// libpq connection string or postgresql:// URL, without a password.
    #[arg(long)]
    db: Option<String>,
    /// A file holding the password (mode 0600).
    #[arg(long)]
    password_file: Option<PathBuf>,
    #[command(flatten)]
    tls: TlsArgs,
    /// The configuration file: its [fleet.postgres] when --db is not given.
    #[arg(long, default_value = crate::paths::CONFIG)]
    config: PathBuf,
}

impl DbArgs {
    fn central(&self, cfg: Option<&Config>) -> Result<Central, Error> {
        let from_cfg = cfg.and_then(|c| c.fleet_postgres.as_ref());
        let mut c = match (&self.db, from_cfg) {
            (Some(url), _) => Central {
                url: url.clone(),
                password_file: None,
                ca_file: None,
                client_cert: None,
                timeout: Duration::from_secs(30),
            },
            (None, Some(p)) => Central::from_config(p),
            (None, None) => {
                return Err(Error::Usage(
                    "no database: give --db or set [fleet.postgres] in the configuration".into(),
                ))
            }
        };
        if self.password_file.is_some() {
            c.password_file.clone_from(&self.password_file);
        }
        if self.tls.ca_file.is_some() {
            c.ca_file.clone_from(&self.tls.ca_file);
        }
        if let Some(pair) = self.tls.client() {
            c.client_cert = Some(pair);
        }
        Ok(c)
    }

    /// The configuration, when it is needed (no --db) or there.
    fn config(&self, needed: bool) -> Result<Option<Config>, Error> {
        if needed || self.config.exists() {
            Config::load(&self.config).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// `aiwarden fleet push`.
#[derive(clap::Args)]
pub(super) struct PushArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Read this store instead of the configuration's.
    #[arg(long)]
    store: Option<PathBuf>,
    /// The site name in place of the configuration's `site_name`.
    #[arg(long)]
    site: Option<String>,
    /// Rows per transaction.
    #[arg(long, default_value_t = 5_000,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::store::MAX_EXPORT)))]
    batch: u32,
}

/// `aiwarden fleet verify`.
#[derive(clap::Args)]
pub(super) struct VerifyArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Only this site.
    #[arg(long)]
    site: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `aiwarden fleet report`.
#[derive(clap::Args)]
pub(super) struct FleetReportArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    period: super::report::PeriodArgs,
    /// The time zone weeks and dates are read in (an IANA name). Default: the
    /// configuration's, else UTC.
    #[arg(long)]
    timezone: Option<String>,
    /// Only these sites (repeat).
    #[arg(long = "site")]
    sites: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
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
    #[command(flatten)]
    tls: TlsArgs,
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
        Command::Push(a) => push(a),
        Command::Verify(a) => verify(a),
        Command::Report(a) => fleet_report(a),
        Command::Enrol(a) => enrol(a),
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
    target.ca_file = a.tls.ca_file.clone();
    target.client_cert = a.tls.client();
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

fn push(a: PushArgs) -> CmdResult {
    let cfg =
        a.db.config(a.db.db.is_none() || a.store.is_none() || a.site.is_none())?;
    let central = a.db.central(cfg.as_ref())?;
    let store = match (&a.store, &cfg) {
        (Some(s), _) => s.clone(),
        (None, Some(c)) => c.store.path.clone(),
        (None, None) => return Err(Error::Usage("no store: give --store or --config".into())),
    };
    let site = match (&a.site, &cfg) {
        (Some(s), _) => s.clone(),
        (None, Some(c)) => c.site_name.clone(),
        (None, None) => String::new(),
    };
    if site.trim().is_empty() {
        return Err(Error::Usage(
            "the site name is empty: set site_name or --site".into(),
        ));
    }
    let rules = cfg
        .as_ref()
        .and_then(|c| RuleSet::load(&c.rule_dirs()).ok())
        .map(|r| r.digest().chars().take(16).collect())
        .unwrap_or_default();
    let src = rollup_pg::Source {
        store: &store,
        site: &site,
        batch: a.batch,
        health: serde_json::json!({"from": "aiwarden fleet push"}),
        rules,
    };
    let t = std::time::Instant::now();
    let r = rollup_pg::push(&src, &central, &AtomicBool::new(false))?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "site {site}: copied {} rows in {} batches ({:.0} rows/s), {} activity updates, {} usage rows; chain {} at row {}{}",
        r.rows,
        r.batches,
        r.rows as f64 / secs.max(1e-9),
        r.activity,
        r.usage,
        r.epoch,
        r.head,
        if r.new_epoch { " (a new chain: the box's store began again)" } else { "" }
    );
    Ok(())
}

fn verify(a: VerifyArgs) -> CmdResult {
    let cfg = a.db.config(a.db.db.is_none())?;
    let central = a.db.central(cfg.as_ref())?;
    let checks = rollup_pg::verify(&central, a.site.as_deref())?;
    if a.json {
        let v: Vec<_> = checks
            .iter()
            .map(|(c, head, hash)| serde_json::json!({"check": c, "head_id": head, "head_hash": hash}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    let mut bad = Vec::new();
    for (c, head, hash) in &checks {
        let matches = c
            .last
            .as_ref()
            .map_or(*head == 0, |(id, h)| id == head && h == hash);
        let said = match (&c.broken, matches) {
            (Some((id, why)), _) => {
                bad.push(format!(
                    "site {} chain {}: row {id}: {why}",
                    c.site, c.epoch
                ));
                format!("BROKEN at row {id}: {why}")
            }
            (None, false) => {
                bad.push(format!(
                    "site {} chain {}: the copy ends at row {} but the site's head is row {head}",
                    c.site,
                    c.epoch,
                    c.last.as_ref().map_or(0, |l| l.0)
                ));
                format!("head mismatch: the site says row {head} {hash}")
            }
            (None, true) => "intact".into(),
        };
        if !a.json {
            match (&c.first, &c.last) {
                (Some(first), Some((last, h))) => println!(
                    "site {} chain {}: rows {first} to {last} ({} rows) {said}; head {last} {h}",
                    c.site, c.epoch, c.rows
                ),
                _ => println!("site {} chain {}: no rows {said}", c.site, c.epoch),
            }
        }
    }
    match bad.first() {
        None => Ok(()),
        Some(_) => Err(Error::FleetTampered {
            site: checks
                .iter()
                .find(|(c, ..)| c.broken.is_some())
                .map_or_else(String::new, |(c, ..)| c.site.clone()),
            message: bad.join("; "),
        }),
    }
}

fn fleet_report(a: FleetReportArgs) -> CmdResult {
    let cfg = a.db.config(a.db.db.is_none())?;
    let central = a.db.central(cfg.as_ref())?;
    let zone = a
        .timezone
        .clone()
        .or_else(|| cfg.as_ref().map(|c| c.timezone.clone()))
        .unwrap_or_else(|| "UTC".into());
    let tz = crate::report::period::zone(&zone).map_err(Error::Usage)?;
    let period = crate::report::Period::resolve(&a.period.which(), &tz, crate::store::now_micros())
        .map_err(Error::Usage)?;
    let t = std::time::Instant::now();
    let r = rollup_pg::report(&central, &period.label, (period.from, period.to), &a.sites)?;
    tracing::info!(
        secs = t.elapsed().as_secs_f64(),
        sites = r.sites.len(),
        "fleet report"
    );
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    } else {
        print!("{}", crate::fleet::rollup::render_text(&r));
    }
    Ok(())
}

fn enrol(a: EnrolArgs) -> CmdResult {
    use crate::fleet::update::redact_url;
    let shown = redact_url(&a.url);
    let fail = |message: String| Error::Enrol {
        url: shown.clone(),
        message,
    };
    let token = match (&a.token, &a.token_file) {
        (Some(t), _) => t.trim().to_string(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .map_err(|e| Error::Usage(format!("{}: {e}", f.display())))?
            .trim()
            .to_string(),
        (None, None) => String::new(),
    };
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(Error::Usage(
            "the enrolment token is empty or has spaces in it".into(),
        ));
    }
    if !a.url.starts_with("https://") {
        return Err(Error::Usage(format!("{shown}: only https:// urls")));
    }
    let main_text = std::fs::read_to_string(&a.config).map_err(|source| Error::Io {
        path: a.config.clone(),
        source,
    })?;
    // The configuration alone (without any fleet.toml): where the state goes.
    let base = Config::parse(&a.config, &main_text)?;
    let state_dir = a.state_dir.clone().unwrap_or(base.fleet.state_dir.clone());
    let agent = crate::fleet::update::https_agent(a.ca_file.as_deref(), Duration::from_secs(30))
        .map_err(&fail)?;
    let mut response = agent
        .get(&a.url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .map_err(|e| fail(crate::tls::error_chain(&e).replace(&a.url, &shown)))?;
    let doc = response
        .body_mut()
        .with_config()
        .limit(crate::fleet::enrol::MAX_DOCUMENT)
        .read_to_string()
        .map_err(|e| fail(crate::tls::error_chain(&e)))?;
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let e = crate::fleet::enrol::prepare(&doc, &shown, &state_dir, &now).map_err(&fail)?;
    // The whole configuration with the new fleet.toml must load before anything is
    // written: a document that does not fit leaves the box as it was.
    let fleet_path = Config::enrolled_path(&a.config);
    let cfg = Config::parse_with(&a.config, &main_text, Some((&fleet_path, &e.fleet_toml)))?;
    for s in &e.secrets {
        write_private(&s.path, s.contents.as_bytes(), s.mode)?;
    }
    write_private(&fleet_path, e.fleet_toml.as_bytes(), 0o600)?;
    println!("enrolled from {shown}: {}", fleet_path.display());
    println!("  site      {}", cfg.site_name);
    if let Some(u) = &cfg.fleet.bundle_url {
        println!(
            "  bundles   {} ({} keys pinned, every {})",
            redact_url(u),
            cfg.fleet.bundle_keys.len(),
            humantime::format_duration(cfg.fleet.poll_interval)
        );
    }
    if let Some(p) = &cfg.fleet_postgres {
        println!("  postgres  {}", Central::from_config(p).name());
    }
    if let Some(s) = &cfg.fleet_syslog {
        println!("  siem      {}:{}", s.host, s.port);
    }
    for s in &e.secrets {
        println!("  wrote     {} (mode {:o})", s.path.display(), s.mode);
    }
    println!("restart aiwarden to use them (systemctl restart aiwarden)");
    Ok(())
}

/// Writes `bytes` to `path` with `mode` (the directory made 0700 when missing) through a
/// temporary file beside it, synced and renamed into place.
fn write_private(path: &std::path::Path, bytes: &[u8], mode: u32) -> CmdResult {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
    }
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    // The umask may have taken bits off; set exactly what was asked.
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
