//! The one error type of aiwarden. Each variant says what failed and carries what an
//! operator needs to find it (a path and line, a capture file, an interface).

use std::path::PathBuf;

/// Everything that can stop a command. Malformed packets are never errors: the detector
/// counts and skips them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule or site file (catalog, allow and deny lists, `groups.toml`, the device
    /// inventory `devices.toml`) could not be parsed or failed validation.
    #[error("{}:{line}: {}", path.display(), excerpt(message))]
    Rule {
        /// The file that holds the bad rule.
        path: PathBuf,
        /// 1-based line of the problem (0 when the whole file is at fault).
        line: usize,
        /// What is wrong, in lowercase.
        message: String,
    },
    /// Several rule files are bad; every problem is listed so an admin fixes them in one go.
    #[error("{} rule errors:\n{}", .0.len(), list(.0))]
    Rules(Vec<Error>),
    /// The daemon's configuration file is invalid.
    #[error("{}:{line}: {}", path.display(), excerpt(message))]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// 1-based line of the problem (0 when the whole file is at fault).
        line: usize,
        /// What is wrong, in lowercase.
        message: String,
    },
    /// A provisioning file (`provision.toml`) is invalid: every problem, each an
    /// [`Error::Config`] naming the file, line and key, so the MSP fixes them in one go.
    #[error("{}", list(.0))]
    Provision(Vec<Error>),
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
        /// What kind of fault: it decides the exit code, the writer's response and the
        /// metric label.
        fault: StoreFault,
        /// What failed and the reason (SQLite's or the operating system's), in lowercase.
        message: String,
    },
    /// The store's head file (the chain's newest row, kept outside the database) is missing,
    /// unreadable or not authentic, so rows cut off the end could not be seen.
    #[error("store {}: head file: {reason}", path.display())]
    StoreHead {
        /// The SQLite file.
        path: PathBuf,
        /// What is wrong with the head file.
        reason: String,
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
    /// `aiwarden verify` found a row that does not chain, or rows missing from the end of
    /// the chain (the head file names a row the database no longer has).
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
    /// The web console could not start: its certificate or key is unusable, or its state
    /// directory cannot be written.
    #[error("console: {0}")]
    Console(String),
    /// A command-line value is invalid.
    #[error("invalid argument: {0}")]
    Usage(String),
    /// Enforcement could not change traffic: `nft` or `iptables` refused a batch, the
    /// NFQUEUE could not be bound, a raw socket could not be opened. Says which command.
    #[error("firewall: {what}: {message}")]
    Firewall {
        /// What was being done (`nft -j -f -`, `iptables -t mangle ...`, `nfqueue 0`).
        what: String,
        /// What it said.
        message: String,
    },
    /// A report could not be delivered (email or webhook): after the retries, or at once
    /// when retrying cannot help (a 4xx answer, a permanent SMTP refusal, a secret file
    /// that is missing or readable by others).
    #[error("deliver {channel} to {to}: {message}")]
    Deliver {
        /// `email` or `webhook`.
        channel: &'static str,
        /// Where to: the SMTP server and port, or the webhook's scheme, host and port (never
        /// its path, which often holds a secret).
        to: String,
        /// What failed, in lowercase.
        message: String,
    },
    /// A rule bundle's signature file is unreadable, or the bundle is not a well-formed
    /// bundle (not a tar archive, no manifest, a file missing, extra or outside `catalog/`,
    /// an unknown format): the rules in force stay.
    #[error("bundle {bundle}: {message}")]
    BundleMalformed {
        /// Where the bundle came from (a file or a URL).
        bundle: String,
        /// What is wrong, in lowercase.
        message: String,
    },
    /// A rule bundle is signed by a key that is not pinned: the rules in force stay.
    #[error(
        "bundle {bundle}: signed by key {key_id}, which is not one of the pinned keys ({pinned})"
    )]
    BundleUnknownKey {
        /// Where the bundle came from.
        bundle: String,
        /// The signing key's id, as minisign prints it.
        key_id: String,
        /// The pinned keys' ids, comma-separated.
        pinned: String,
    },
    /// A rule bundle's signature does not match its bytes or its trusted comment: it was
    /// changed after signing (or damaged on the way). The rules in force stay.
    #[error("bundle {bundle}: signature by key {key_id} does not match: the bundle was altered or damaged ({message})")]
    BundleBadSignature {
        /// Where the bundle came from.
        bundle: String,
        /// The key the signature names.
        key_id: String,
        /// What the verifier said.
        message: String,
    },
    /// A signed bundle holds a file whose SHA-256 differs from its manifest's.
    #[error("bundle {bundle}: {file} does not match the sha-256 in its manifest")]
    BundleHash {
        /// Where the bundle came from.
        bundle: String,
        /// The file inside the bundle.
        file: String,
    },
    /// A signed bundle is older than the one in force: a rollback, refused.
    #[error("bundle {bundle}: version {version} is older than version {in_force} in force; rollback refused")]
    BundleRollback {
        /// Where the bundle came from.
        bundle: String,
        /// The bundle's version.
        version: u64,
        /// The version in force.
        in_force: u64,
    },
    /// A signed bundle's rules do not load (alone, or with the site's own files): every
    /// problem is in `source`. The rules in force stay.
    #[error("bundle {bundle}: version {version}: its rules do not load: {source}")]
    BundleRules {
        /// Where the bundle came from.
        bundle: String,
        /// The bundle's version.
        version: u64,
        /// Every bad file and line.
        source: Box<Error>,
    },
    /// A bundle or its signature could not be fetched (network, TLS, HTTP status, size).
    #[error("bundle {url}: cannot fetch: {message}")]
    BundleFetch {
        /// The URL (scheme, host, port and path).
        url: String,
        /// What failed, in lowercase.
        message: String,
    },
    /// Incidents could not be sent to a SIEM by syslog over TLS: the receiver's certificate
    /// refused, the receiver unreachable or not confirming a batch after the retries, the
    /// TLS files unusable.
    #[error("syslog to {to}: {message}")]
    Syslog {
        /// The receiver, `host:port`.
        to: String,
        /// What failed, in lowercase.
        message: String,
    },
    /// The central PostgreSQL of the fleet roll-up refused or could not be reached: TLS,
    /// authentication, a statement, the TLS or password files.
    #[error("postgresql {to}: {message}")]
    Postgres {
        /// The server, `host:port/dbname`.
        to: String,
        /// What failed, in lowercase.
        message: String,
    },
    /// Enrolment failed: the enrolment server unreachable, refusing the token, its
    /// certificate not trusted, or its document unusable.
    #[error("enrolment {url}: {message}")]
    Enrol {
        /// The enrolment URL, redacted.
        url: String,
        /// What failed, in lowercase.
        message: String,
    },
    /// A central copy's chain does not verify for a site (`aiwarden fleet verify`).
    #[error("fleet copy of site {site}: {message}")]
    FleetTampered {
        /// The site.
        site: String,
        /// Where and how the chain breaks.
        message: String,
    },
    /// Writing output failed (a closed pipe is not an error; see `main`).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl Error {
    /// The process exit code for this error: 2 for bad input, 3 when the store's evidence is
    /// broken (a row that does not chain, a cut-off tail, a head file missing or forged, a
    /// corrupt file), 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Rule { .. }
            | Error::Rules(_)
            | Error::Config { .. }
            | Error::Provision(_)
            | Error::Io { .. }
            | Error::Capture { .. }
            | Error::Usage(_)
            | Error::Listen { .. }
            | Error::Tls(_)
            | Error::Check(_)
            | Error::NoSuchIncident(_)
            | Error::BundleMalformed { .. }
            | Error::BundleUnknownKey { .. }
            | Error::BundleBadSignature { .. }
            | Error::BundleHash { .. }
            | Error::BundleRollback { .. }
            | Error::BundleRules { .. } => 2,
            Error::Output(_)
            | Error::Thread { .. }
            | Error::StoreVersion { .. }
            | Error::Firewall { .. }
            | Error::Console(_)
            | Error::Deliver { .. }
            | Error::BundleFetch { .. }
            | Error::Syslog { .. }
            | Error::Postgres { .. }
            | Error::Enrol { .. } => 1,
            Error::FleetTampered { .. } => 3,
            Error::Store { fault, .. } if *fault != StoreFault::Corrupt => 1,
            Error::Store { .. } | Error::Tampered { .. } | Error::StoreHead { .. } => 3,
        }
    }
}

/// What kind of fault stopped the store: the writer's response (spool and retry, or set the
/// file aside and start a new chain), the exit code and the `kind` label of
/// `aiwarden_store_errors_total` follow from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreFault {
    /// SQLite says the file is corrupt or not a database, or `quick_check` failed.
    Corrupt,
    /// The file was deleted or replaced while open.
    Vanished,
    /// The directory (or the file) is read-only.
    ReadOnly,
    /// No space left on the store's filesystem.
    Full,
    /// The store's directory does not exist.
    NoDirectory,
    /// The operating system refused access.
    Denied,
    /// Another process holds the database locked past the busy timeout.
    Busy,
    /// An I/O error.
    Io,
    /// Anything else (a bad value, a SQLite error that fits no kind above).
    Other,
}

impl StoreFault {
    /// The metric label: `corrupt`, `vanished`, `readonly`, `full`, `no_directory`,
    /// `denied`, `busy`, `io`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreFault::Corrupt => "corrupt",
            StoreFault::Vanished => "vanished",
            StoreFault::ReadOnly => "readonly",
            StoreFault::Full => "full",
            StoreFault::NoDirectory => "no_directory",
            StoreFault::Denied => "denied",
            StoreFault::Busy => "busy",
            StoreFault::Io => "io",
            StoreFault::Other => "other",
        }
    }
}

/// The longest message an error about a file's contents prints: a rule line can be
/// megabytes long, and it would be copied whole into every log line that reports it.
pub const MAX_MESSAGE: usize = 400;

/// `message` cut to [`MAX_MESSAGE`] bytes (at a character boundary), saying how much was
/// left out.
pub fn excerpt(message: &str) -> std::borrow::Cow<'_, str> {
    if message.len() <= MAX_MESSAGE {
        return message.into();
    }
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}... ({} more bytes)",
        &message[..end],
        message.len() - end
    )
    .into()
}

/// Errors listed in one message, at most [`MAX_LISTED`]: a file broken on every line
/// makes a message of a screenful, not of the whole file.
pub const MAX_LISTED: usize = 20;

fn list(errors: &[Error]) -> String {
    let mut out: Vec<String> = errors
        .iter()
        .take(MAX_LISTED)
        .map(ToString::to_string)
        .collect();
    if errors.len() > MAX_LISTED {
        out.push(format!("... and {} more", errors.len() - MAX_LISTED));
    }
    out.join("\n")
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_line_is_cut_in_messages() {
        let e = Error::Rule {
            path: "/etc/aiwarden/rules/site/deny.list".into(),
            line: 3,
            message: format!(
                "host pattern longer than 253 characters: {:?}",
                "é".repeat(5_000_000)
            ),
        };
        let text = e.to_string();
        assert!(text.len() < MAX_MESSAGE + 100, "{} bytes", text.len());
        assert!(text.starts_with("/etc/aiwarden/rules/site/deny.list:3: host pattern longer"));
        assert!(text.ends_with("more bytes)"), "{text}");
        let short = Error::Config {
            path: "a.toml".into(),
            line: 1,
            message: "bad".into(),
        };
        assert_eq!(short.to_string(), "a.toml:1: bad");
        let many = Error::Rules(
            (1..=1000)
                .map(|line| Error::Rule {
                    path: "deny.list".into(),
                    line,
                    message: "not a host".into(),
                })
                .collect(),
        );
        let text = many.to_string();
        assert!(text.starts_with("1000 rule errors:\ndeny.list:1: not a host\n"));
        assert!(
            text.ends_with("deny.list:20: not a host\n... and 980 more"),
            "{text}"
        );
    }
}
