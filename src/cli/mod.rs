//! The `aiwarden` command line: argument parsing and one file per command group. Each
//! command is a function that returns `Result`; [`main`] maps errors to exit codes.
//!
//! | file | commands |
//! |---|---|
//! | `daemon.rs` | `run`, `check` |
//! | `firewall.rs` | `firewall plan/down/failopen`, `status` |
//! | `fleet.rs` | `fleet syslog-send` (the SIEM roll-up, one pass) |
//! | `incidents.rs` | `incidents list`, `incidents ack`, `verify` |
//! | `replay.rs` (and `replay_run.rs`, the replay itself) | `replay` |
//! | `rules.rs` (and `import.rs`, the list import) | `rules check/list/explain/import/docs` |
//! | `unblock.rs` | `unblock` (and `unblock --list`) |
//! | `users.rs` | `user add/list/remove/passwd/hash` (the web console's accounts) |
//! | `console.rs` | `console` (the web console served alone) |
//! | `bundle.rs` | `bundle keygen/build/verify` (signed rule bundles for MSP fleets) |
//! | `provision.rs` | `provision --check/--apply` (first-boot provisioning from `provision.toml`) |
//! | `docs.rs` | `generate-docs` (hidden: man pages and completions for the package) |
//! | `logging.rs` | the log subscriber |

mod bundle;
mod console;
mod daemon;
mod docs;
mod firewall;
mod fleet;
mod import;
mod incidents;
mod logging;
mod provision;
mod replay;
pub mod replay_run;
mod report;
mod rules;
mod unblock;
mod users;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::error::{Error, Result};
use crate::policy::{Mode, RuleDirs};

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
    Replay(replay::Args),
    /// Run the daemon: live capture, filtering DNS, incident store, metrics.
    Run(daemon::RunArgs),
    /// Validate the configuration and the rules it names, and try this host: listen
    /// addresses, capture interfaces, device sources, the incident store (exit 2 naming
    /// every problem).
    Check(daemon::CheckArgs),
    /// Check the incident store: the file, the hash chain and its tail against the head
    /// file; exits 3 naming the first fault.
    Verify(incidents::VerifyArgs),
    /// The weekly shadow-AI report (HTML, PDF, CSV or JSON), in the clinic's time zone;
    /// `--archive` keeps every form in the reports directory, `--deliver` sends it.
    Report(report::Args),
    /// List and acknowledge incidents (staff-training follow-up).
    Incidents {
        #[command(subcommand)]
        command: incidents::Command,
    },
    /// Let one device reach one AI host (or every blocked one) for a while, recorded in the
    /// chained log with who and why; `--list` shows unblocks in force and lately ended.
    Unblock(unblock::Args),
    /// Validate, list, explain and import rule files.
    Rules {
        #[command(subcommand)]
        command: rules::Command,
    },
    /// Add, list, remove the web console's accounts and set their passwords (each change
    /// is a chained event row).
    User {
        #[command(subcommand)]
        command: users::Command,
    },
    /// Serve the compliance web console alone (HTTPS on `[console] listen`) until SIGTERM.
    Console(console::Args),
    /// What the running daemon enforces: placement, mode, enforcement paths, set sizes,
    /// queue counters, health (read from its /metrics and /healthz).
    Status(firewall::StatusArgs),
    /// The router's firewall: print the table, remove it, or leave DNS fail-open.
    Firewall {
        #[command(subcommand)]
        command: firewall::Command,
    },
    /// The MSP fleet: incidents to a SIEM (syslog over TLS), the central PostgreSQL copy and
    /// its report and verification, enrolment.
    Fleet {
        #[command(subcommand)]
        command: fleet::Command,
    },
    /// First-boot provisioning from a `provision.toml` (docs/provisioning.md): `--check`
    /// validates it anywhere, `--apply` configures the appliance (or its safe state).
    Provision(provision::Args),
    /// Signed rule bundles for a fleet of boxes: make keys, build and verify bundles.
    Bundle {
        #[command(subcommand)]
        command: bundle::Command,
    },
    /// Write the man pages and shell completions (for the Debian package's build).
    #[command(hide = true)]
    GenerateDocs(docs::Args),
}

/// Where the rules come from: the shipped catalog (compiled-in location, `AIWARDEN_RULES`,
/// or `--rules`) and the site files (its `site/`, or `--site`).
#[derive(clap::Args, Clone)]
struct RulesArgs {
    /// The rules directory (catalog/ and site/). Default: the shipped rules.
    #[arg(long, env = "AIWARDEN_RULES", default_value_os_t = crate::paths::rules())]
    rules: PathBuf,
    /// The site files (groups.toml, allow.list, deny.list). Default: the installed site
    /// directory with the shipped rules, else the rules directory's site/.
    #[arg(long)]
    site: Option<PathBuf>,
}

impl RulesArgs {
    fn dirs(&self) -> RuleDirs {
        RuleDirs::with_site(&self.rules, self.site.as_deref())
    }
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

/// Parses the command line, runs the command, and maps an error to its exit code after
/// printing it with its causes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = logging::Logging::init(match cli.command {
        Command::Run(_) | Command::Console(_) => "info",
        _ => "warn",
    });
    let result = match cli.command {
        Command::Replay(a) => replay::run(a),
        Command::Run(a) => daemon::run(a, &log),
        Command::Check(a) => daemon::check(a),
        Command::Verify(a) => incidents::verify(a),
        Command::Incidents { command } => incidents::run(command),
        Command::Report(a) => report::run(a),
        Command::Unblock(a) => unblock::run(a),
        Command::Rules { command } => rules::run(command),
        Command::User { command } => users::run(command),
        Command::Console(a) => console::run(a),
        Command::Status(a) => firewall::status(a),
        Command::Firewall { command } => firewall::run(command),
        Command::Fleet { command } => fleet::run(command),
        Command::Provision(a) => provision::run(a),
        Command::Bundle { command } => bundle::run(command),
        Command::GenerateDocs(a) => docs::run(a, Cli::command()),
    };
    match result {
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

/// Shorthand for the commands' result.
type CmdResult = Result<()>;

/// Writes `path` through a hidden temporary file beside it (its directory created), synced
/// and renamed into place, so a reader never sees half a file: a replaced rule file, an
/// archived report.
fn write_atomic(path: &Path, f: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
    f(&mut w)?;
    let file = w.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
