//! The `aiwarden` command: parse arguments, set up logging, run, map errors to exit codes.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use aiwarden::config::Config;
use aiwarden::policy::import::ListFormat;
use aiwarden::policy::{Client, Mac, Mode, RuleSet};
use aiwarden::replay::{self, Format};
use aiwarden::rules_import;
use aiwarden::store::{ListFilter, Store};
use aiwarden::Error;

/// Sees, decides on and records attempts to reach AI services from a clinic network.
#[derive(Parser)]
#[command(name = "aiwarden", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run capture files (pcap or pcapng) through detection and the rules.
    Replay {
        /// Capture files, read in the order given.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The rules directory (catalog/ and site/).
        #[arg(long, default_value = "rules")]
        rules: PathBuf,
        /// `monitor` flags what `enforce` would block.
        #[arg(long, value_enum, default_value = "enforce")]
        mode: ModeArg,
        /// Output format.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: Format,
        /// Print every DNS name and SNI seen, not only those a rule matches.
        #[arg(long)]
        all: bool,
        /// Print incidents (per client and service, grouped within --window) instead.
        #[arg(long)]
        incidents: bool,
        /// Incident grouping window in seconds.
        #[arg(long, default_value_t = 600)]
        window: u64,
        /// Do not draw a progress bar.
        #[arg(long)]
        no_progress: bool,
    },
    /// Run the daemon: live capture, filtering DNS, incident store, metrics.
    Run {
        /// The configuration file.
        #[arg(long, default_value = "/etc/aiwarden/aiwarden.toml")]
        config: PathBuf,
    },
    /// Validate the configuration and the rules it names (for ExecStartPre=).
    Check {
        /// The configuration file.
        #[arg(long, default_value = "/etc/aiwarden/aiwarden.toml")]
        config: PathBuf,
    },
    /// Check the incident store's hash chain; names the first broken row.
    Verify {
        /// The configuration file (for the store path).
        #[arg(long, default_value = "/etc/aiwarden/aiwarden.toml")]
        config: PathBuf,
        /// The store file itself, instead of --config.
        #[arg(long)]
        store: Option<PathBuf>,
    },
    /// List and acknowledge incidents (staff-training follow-up).
    Incidents {
        #[command(subcommand)]
        command: IncidentsCommand,
    },
    /// Validate and explain rule files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

#[derive(Subcommand)]
enum IncidentsCommand {
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
        /// The configuration file (for the store path).
        #[arg(long, default_value = "/etc/aiwarden/aiwarden.toml")]
        config: PathBuf,
        /// The store file itself, instead of --config.
        #[arg(long)]
        store: Option<PathBuf>,
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
        /// The configuration file (for the store path).
        #[arg(long, default_value = "/etc/aiwarden/aiwarden.toml")]
        config: PathBuf,
        /// The store file itself, instead of --config.
        #[arg(long)]
        store: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Check every rule file: errors and warnings name file and line.
    Check {
        /// The rules directory.
        #[arg(default_value = "rules")]
        dir: PathBuf,
        /// Exit with status 2 on warnings too (for CI of an MSP's rule repository).
        #[arg(long)]
        strict: bool,
    },
    /// List the catalog's services with their healthcare attributes.
    List {
        /// The rules directory.
        #[arg(default_value = "rules")]
        dir: PathBuf,
        /// One JSON array, for reports and MSP tooling.
        #[arg(long)]
        json: bool,
    },
    /// Append hosts files, plain domain lists or AdGuard/ABP lists to site/deny.list.
    Import {
        /// The lists to import.
        #[arg(required = true)]
        lists: Vec<PathBuf>,
        /// The lists' format.
        #[arg(long, value_enum, default_value = "auto")]
        format: ListFormat,
        /// The rules directory whose site/deny.list receives the entries.
        #[arg(long, default_value = "rules")]
        rules: PathBuf,
        /// Scope every imported entry to this client group (`@group`).
        #[arg(long)]
        group: Option<String>,
        /// Print the lines that would be appended; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// List every skipped line, not just the first ten per list.
        #[arg(long)]
        show_skipped: bool,
    },
    /// Print the catalog as Markdown (docs/catalog.md is this output).
    Docs {
        /// The rules directory.
        #[arg(default_value = "rules")]
        dir: PathBuf,
    },
    /// Show which rule decides a host and why.
    Explain {
        /// Host name to look up.
        host: String,
        /// The client's address (picks its group by CIDR).
        #[arg(long)]
        client: Option<IpAddr>,
        /// The client's MAC address (picks its group by MAC).
        #[arg(long)]
        mac: Option<Mac>,
        /// The client's device name (picks its group by name).
        #[arg(long)]
        device: Option<String>,
        /// The rules directory.
        #[arg(long, default_value = "rules")]
        rules: PathBuf,
        /// Mode to decide in.
        #[arg(long, value_enum, default_value = "enforce")]
        mode: ModeArg,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ModeArg {
    Monitor,
    Enforce,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Monitor => Mode::Monitor,
            ModeArg::Enforce => Mode::Enforce,
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AIWARDEN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aiwarden: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::from(e.exit_code())
        }
    }
}

fn store_path(config: &Path, store: Option<PathBuf>) -> aiwarden::Result<PathBuf> {
    match store {
        Some(p) => Ok(p),
        None => Ok(Config::load(config)?.store.path),
    }
}

fn parse_time(s: &str) -> aiwarden::Result<i64> {
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

fn fmt_micros(us: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(us.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn run(cli: Cli) -> aiwarden::Result<()> {
    match cli.command {
        Command::Run { config } => aiwarden::daemon::run(Config::load(&config)?),
        Command::Check { config } => {
            let (cfg, rules) = aiwarden::daemon::check(&config)?;
            for w in rules.lint() {
                println!("{w}");
            }
            println!(
                "{}: ok (mode {}, {} interfaces, dns on {:?}, {} services, {} patterns)",
                config.display(),
                if cfg.mode == Mode::Monitor {
                    "monitor"
                } else {
                    "enforce"
                },
                cfg.capture.interfaces.len(),
                cfg.dns.listen,
                rules.services().count(),
                rules.pattern_count()
            );
            Ok(())
        }
        Command::Verify { config, store } => {
            let path = store_path(&config, store)?;
            let report = Store::open_read_only(&path)?.verify()?;
            match &report.first_broken {
                None => {
                    println!(
                        "{}: intact ({} rows{})",
                        path.display(),
                        report.rows,
                        report
                            .anchor
                            .map(|a| format!(", from the retention anchor at row {a}"))
                            .unwrap_or_default()
                    );
                    Ok(())
                }
                Some(b) => Err(Error::Tampered {
                    path,
                    id: b.id,
                    reason: b.reason.clone(),
                }),
            }
        }
        Command::Incidents { command } => match command {
            IncidentsCommand::List {
                since,
                device,
                service,
                unacked,
                limit,
                json,
                config,
                store,
            } => {
                let path = store_path(&config, store)?;
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
                    let i = &r.incident;
                    let device = i
                        .label
                        .clone()
                        .or_else(|| i.device.clone())
                        .unwrap_or_else(|| i.client_ip.clone());
                    writeln!(
                        out,
                        "{:>6} {:<20} {:<28} {:<24} {:<6} {:>5} {:<14} {}",
                        r.id,
                        fmt_micros(i.ts),
                        device,
                        i.service_name,
                        i.verdict,
                        r.count,
                        r.hows.join(" "),
                        r.acks
                            .last()
                            .map(|a| format!("{} ({})", a.by, fmt_micros(a.ts)))
                            .unwrap_or_else(|| "-".into())
                    )?;
                }
                Ok(())
            }
            IncidentsCommand::Ack {
                id,
                by,
                note,
                config,
                store,
            } => {
                let path = store_path(&config, store)?;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_micros() as i64)
                    .unwrap_or(0);
                let ack = Store::open(&path)?.ack(id, now, &by, &note)?;
                println!("incident {id} acknowledged by {by} (log row {ack})");
                Ok(())
            }
        },
        Command::Replay {
            files,
            rules,
            mode,
            format,
            all,
            incidents,
            window,
            no_progress,
        } => {
            let rules = RuleSet::load_dir(&rules)?;
            let opts = replay::Options {
                mode: mode.into(),
                all,
                format,
                incidents,
                window_micros: window.saturating_mul(1_000_000),
                progress: !no_progress,
                ..replay::Options::default()
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
            let summary = replay::run(&files, &rules, &opts, &mut out)?;
            let _ = summary.write_to(&mut std::io::stderr().lock());
            Ok(())
        }
        Command::Rules { command } => match command {
            RulesCommand::Check { dir, strict } => {
                let rules = RuleSet::load_dir(&dir)?;
                let warnings = rules.lint();
                let mut out = std::io::stdout().lock();
                for w in &warnings {
                    writeln!(out, "{w}")?;
                }
                writeln!(
                    out,
                    "{}: ok ({} services, {} patterns, {} client groups, {} warnings)",
                    dir.display(),
                    rules.services().count(),
                    rules.pattern_count(),
                    rules.groups().len(),
                    warnings.len()
                )?;
                if strict && !warnings.is_empty() {
                    return Err(Error::Usage(format!(
                        "{} warnings with --strict",
                        warnings.len()
                    )));
                }
                Ok(())
            }
            RulesCommand::List { dir, json } => {
                let rules = RuleSet::load_dir(&dir)?;
                let mut out = std::io::stdout().lock();
                if json {
                    let services: Vec<_> = rules.services().collect();
                    serde_json::to_writer_pretty(&mut out, &services)
                        .map_err(std::io::Error::from)?;
                    writeln!(out)?;
                    return Ok(());
                }
                writeln!(
                    out,
                    "{:<20} {:<34} {:<14} {:<26} {:<16} TRAINS ON DATA",
                    "ID", "NAME", "CATEGORY", "TIERS", "BAA"
                )?;
                for s in rules.services() {
                    let mut tiers: Vec<&str> = s.hosts.iter().map(|h| h.tier.as_str()).collect();
                    tiers.dedup();
                    let attr = |v: Option<serde_json::Value>| {
                        v.and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_else(|| "-".into())
                    };
                    writeln!(
                        out,
                        "{:<20} {:<34} {:<14} {:<26} {:<16} {}",
                        &*s.id,
                        &*s.name,
                        s.category,
                        tiers.join(","),
                        attr(s.baa.and_then(|b| serde_json::to_value(b).ok())),
                        attr(s.trains_on_data.and_then(|t| serde_json::to_value(t).ok())),
                    )?;
                }
                Ok(())
            }
            RulesCommand::Import {
                lists,
                format,
                rules,
                group,
                dry_run,
                show_skipped,
            } => {
                let now =
                    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
                let opts = rules_import::Options {
                    rules: rules.clone(),
                    format,
                    group,
                    dry_run,
                    show_skipped,
                    date: now.get(..10).unwrap_or(&now).to_string(),
                };
                let s = rules_import::run(
                    &lists,
                    &opts,
                    &mut std::io::stdout().lock(),
                    &mut std::io::stderr().lock(),
                )?;
                eprintln!(
                    "{} {} entries to {}",
                    if dry_run { "would add" } else { "added" },
                    s.added,
                    rules.join("site/deny.list").display()
                );
                Ok(())
            }
            RulesCommand::Docs { dir } => {
                let rules = RuleSet::load_dir(&dir)?;
                let mut out = std::io::stdout().lock();
                out.write_all(aiwarden::policy::docs::catalog_markdown(&rules).as_bytes())?;
                Ok(())
            }
            RulesCommand::Explain {
                host,
                client,
                mac,
                device,
                rules,
                mode,
                json,
            } => {
                let rules = RuleSet::load_dir(&rules)?;
                let who = Client {
                    ip: client,
                    mac,
                    device: device.as_deref(),
                };
                let explanation = rules.explain(&host, &who, mode.into());
                let mut out = std::io::stdout().lock();
                if json {
                    serde_json::to_writer_pretty(&mut out, &explanation)
                        .map_err(std::io::Error::from)?;
                    writeln!(out)?;
                } else {
                    write!(out, "{explanation}")?;
                }
                Ok(())
            }
        },
    }
}
