//! Every default path aiwarden uses, in one place. The shipped rules' location is compiled
//! in: a package build sets `AIWARDEN_RULES_DIR` (e.g. `/usr/share/aiwarden/rules`); a
//! cargo build from a checkout uses the checkout's `rules/`, so `aiwarden replay` and
//! `aiwarden rules` work from any directory. `--rules DIR` or the `AIWARDEN_RULES`
//! environment variable override it at run time.

use std::path::PathBuf;

/// The daemon's configuration file.
pub const CONFIG: &str = "/etc/aiwarden/aiwarden.toml";

/// The incident store.
pub const STORE: &str = "/var/lib/aiwarden/incidents.db";

/// The kernel's IPv4 neighbour table.
pub const ARP: &str = "/proc/net/arp";

/// The CA certificates DNS-over-TLS upstreams are verified against.
pub const CA_CERTIFICATES: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The shipped rules directory (its `catalog/` and `site/`).
pub fn rules() -> PathBuf {
    match option_env!("AIWARDEN_RULES_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/rules")),
    }
}
