//! Every default path aiwarden uses, in one place. The rules' locations are compiled in:
//! a package build sets `AIWARDEN_RULES_DIR` (the vendor catalog, `/usr/share/aiwarden/rules`,
//! replaced on upgrade) and `AIWARDEN_SITE_DIR` (the admin's files, `/etc/aiwarden/site`,
//! kept on upgrade); a cargo build from a checkout uses the checkout's `rules/` and
//! `rules/site/`, so `aiwarden replay` and `aiwarden rules` work from any directory.
//! `--rules DIR`, `--site DIR` or the `AIWARDEN_RULES` environment variable override them
//! at run time.

use std::path::PathBuf;

/// The daemon's configuration file.
pub const CONFIG: &str = "/etc/aiwarden/aiwarden.toml";

/// The fleet settings `aiwarden fleet enrol` writes beside the configuration (read with it).
pub const FLEET_FILE: &str = "fleet.toml";

/// The incident store.
pub const STORE: &str = "/var/lib/aiwarden/incidents.db";

/// The kernel's IPv4 neighbour table.
pub const ARP: &str = "/proc/net/arp";

/// The CA certificates DNS-over-TLS upstreams are verified against.
pub const CA_CERTIFICATES: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The shipped rules directory (its `catalog/`, and in a checkout also `site/`).
pub fn rules() -> PathBuf {
    match option_env!("AIWARDEN_RULES_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/rules")),
    }
}

/// The admin's site files (`groups.toml`, `allow.list`, `deny.list`) read with the shipped
/// rules: `/etc/aiwarden/site` in a package, the checkout's `rules/site` otherwise.
pub fn site() -> PathBuf {
    match option_env!("AIWARDEN_SITE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => rules().join("site"),
    }
}
