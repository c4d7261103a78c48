//! The one error type of aiwarden. Each variant says what failed and carries what an
//! operator needs to find it (a path and line, a capture file, an interface).

use std::path::PathBuf;

/// Everything that can stop a command. Malformed packets are never errors: the detector
/// counts and skips them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule or site file (catalog, allow and deny lists, `groups.toml`, the device
    /// inventory `devices.toml`) could not be parsed or failed validation.
    #[error("{}:{line}: {message}", path.display())]
    Rule {
        /// The file that holds the bad rule.
        path: PathBuf,
        /// 1-based line of the problem (0 when the whole file is at fault).
        line: usize,
        /// What is wrong, in lowercase.
        message: String,
    },
    /// Several rule files are bad; every problem is listed so an admin fixes them in one go.
    #[error("{} rule errors:\n{}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Rules(Vec<Error>),
    /// The daemon's configuration file is invalid.
    #[error("{}:{line}: {message}", path.display())]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// 1-based line of the problem (0 when the whole file is at fault).
        line: usize,
        /// What is wrong, in lowercase.
        message: String,
    },
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A capture file could not be opened or read.
    #[error("capture {}: {message}", path.display())]
    Capture {
        /// The capture file.
        path: PathBuf,
        /// What libpcap said.
        message: String,
    },
    /// The incident store could not be opened, read or written.
    #[error("store {}: {message}", path.display())]
    Store {
        /// The SQLite file.
        path: PathBuf,
        /// What failed and SQLite's reason, in lowercase.
        message: String,
    },
    /// The incident store was written by a newer aiwarden whose schema this one does not know.
    #[error(
        "store {}: schema version {found} is newer than this aiwarden understands ({supported}); \
         run the newer aiwarden or restore a backup of the store",
        path.display()
    )]
    StoreVersion {
        /// The SQLite file.
        path: PathBuf,
        /// `PRAGMA user_version` in the file.
        found: i32,
        /// The newest version this build reads and writes.
        supported: i32,
    },
    /// An acknowledgement or update names an incident that is not in the store.
    #[error("no incident {0} in the store")]
    NoSuchIncident(i64),
    /// `aiwarden verify` found a row that does not chain.
    #[error("store {}: chain broken at row {id}: {reason}", path.display())]
    Tampered {
        /// The store.
        path: PathBuf,
        /// The first broken row.
        id: i64,
        /// Why.
        reason: String,
    },
    /// A socket the daemon serves on could not be bound (the address is in use, or not
    /// this machine's, or the port needs a capability the process lacks).
    #[error("{what}: cannot listen on {addr}: {source}")]
    Listen {
        /// What was to listen there (`dns`, `metrics`).
        what: &'static str,
        /// The address.
        addr: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A thread, the async runtime or a signal handler could not be set up.
    #[error("cannot start {name}: {source}")]
    Thread {
        /// What was being started.
        name: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// `aiwarden check` found things that would stop part of the daemon (a listen address
    /// this host does not have, a capture interface missing or not openable, a store that
    /// is corrupt or cannot be written, a device source that does not load); all listed.
    #[error("{} problems:\n{}", .0.len(), .0.join("\n"))]
    Check(Vec<String>),
    /// TLS settings for DNS-over-TLS upstreams are unusable.
    #[error("dns upstream tls: {0}")]
    Tls(String),
    /// A command-line value is invalid.
    #[error("invalid argument: {0}")]
    Usage(String),
    /// Writing output failed (a closed pipe is not an error; see `main`).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl Error {
    /// The process exit code for this error: 2 for bad input, 3 when `verify` finds a broken
    /// chain, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Rule { .. }
            | Error::Rules(_)
            | Error::Config { .. }
            | Error::Io { .. }
            | Error::Capture { .. }
            | Error::Usage(_)
            | Error::Listen { .. }
            | Error::Tls(_)
            | Error::Check(_)
            | Error::NoSuchIncident(_) => 2,
            Error::Output(_)
            | Error::Thread { .. }
            | Error::Store { .. }
            | Error::StoreVersion { .. } => 1,
            Error::Tampered { .. } => 3,
        }
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
