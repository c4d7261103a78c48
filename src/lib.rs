//! aiwarden: sees, decides on, and records attempts to reach AI services from a clinic
//! network.
//!
//! # Layout
//!
//! ```text
//! frame bytes + timestamp ──> detect::packet  (borrowed view: link layers, tunnels, IP/TCP/UDP)
//!                          ──> detect::frag    (bounded IP fragment reassembly)
//!                          ──> detect::flow    (bounded TCP first-flight reassembly)
//!                          ──> detect::tls / detect::quic / detect::dns
//!                          ──> Observation     (who, what host, how seen)
//!                          ──> policy::RuleSet::judge (rules + client group + mode -> Decision)
//!                          ──> incident::Grouper (per client+service within a window)
//! ```
//!
//! | module | role |
//! |---|---|
//! | [`detect`] | pure: decoding (tunnels opened), IP fragment and TCP reassembly, TLS, QUIC, DNS, observations |
//! | [`policy`] | pure: catalog and site files, client groups, host matching, verdicts, lints, list import, `Live` (atomic reload), docs/catalog.md |
//! | [`devices`] | who is behind a client address (neighbour table → DHCP leases → the admin's `devices.toml`) so reports name a device and its owner; `devices::load` reads the sources |
//! | [`incident`] | pure: groups flagged/blocked observations per client and service |
//! | [`capture`] | shell: reads pcap/pcapng files with libpcap |
//! | [`store`] | shell: the SQLite incident store: hash-chained incidents and acks, activity, daily usage, retention |
//! | [`replay`] | `aiwarden replay`: capture files through the pipeline to JSON lines or a table |
//! | [`rules_import`] | `aiwarden rules import`: appends block lists to site/deny.list, atomically |
//! | [`config`] | the daemon's configuration file |
//! | [`daemon`] | `aiwarden run`: capture threads, detection thread, store thread, resolver, metrics, signals |
//! | [`dns_server`] | shell: the filtering DNS resolver (UDP, TCP; upstreams plain or TLS; cache; ECH stripping) |
//! | [`metrics`] | Prometheus metrics and the `/metrics` + `/healthz` listener |
//! | [`error`] | the one error enum |

pub mod capture;
pub mod config;
pub mod daemon;
pub mod detect;
pub mod devices;
pub mod dns_server;
pub mod error;
pub mod incident;
pub mod metrics;
pub mod policy;
pub mod replay;
pub mod rules_import;
pub mod store;

pub use error::{Error, Result};
