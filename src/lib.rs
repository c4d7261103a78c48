//! aiwarden: sees, decides on, and records attempts to reach AI services from a clinic
//! network.
//!
//! # Layout
//!
//! ```text
//! frame bytes + timestamp ──> detect::packet  (borrowed view: link layers, tunnels, IP/TCP/UDP)
//!                          ──> detect::frag    (bounded IP fragment reassembly)
//!                          ──> detect::flow    (first-flight reassembly, any port, on a byte budget)
//!                          ──> detect::tls / quic / http / dns, detect::neighbours (MACs)
//!                          ──> Observation     (who, what name or connection, how seen)
//!                          ──> incident::judge (rules + device + mode -> decision, how)
//!                          ──> incident::Pipeline (attempts, usage, incident open/touch)
//!                          ──> store (chained SQLite log) / replay output
//! ```
//!
//! Everything flows down that list; no module imports one below it in the flow (`detect`
//! knows nothing of policy, `policy` nothing of incidents, the shells nothing of each
//! other but what `daemon` wires).
//!
//! | module | role |
//! |---|---|
//! | [`detect`] | pure: decoding (tunnels opened), IP fragment and TCP reassembly, TLS, QUIC, HTTP, DNS, passive neighbour table, observations |
//! | [`policy`] | pure: catalog and site files, client groups, host/address/signal matching, verdicts, lints, list import, `Live` (atomic reload), docs/catalog.md |
//! | [`devices`] | who is behind a client address (neighbour table → DHCP leases → the admin's `devices.toml`); `devices::load` reads the sources |
//! | [`incident`] | pure: the pipeline step written once: judge an observation, count attempts and usage, open and touch incidents |
//! | [`fleet`] | signed rule bundles for MSP fleets: the format and its minisign signature (pure), the HTTPS updater that swaps a verified catalog in through `Live` (shell) |
//! | [`capture`] | shell: capture files and live interfaces (libpcap), its threads and restarts |
//! | [`resolver`] | shell: the filtering DNS resolver (UDP, TCP; upstreams plain or TLS; cache; ECH stripping) |
//! | [`firewall`] | shell: enforcement beyond DNS: the nftables table and NFQUEUE verdicts on a router, TCP resets on a sensor |
//! | [`store`] | shell: the SQLite incident store (hash-chained incidents, acks, unblocks, breaks and events, the console's accounts, keyset pages, a head file outside the database, activity, daily usage, retention) and its writer thread (spool, retries, setting a bad file aside) |
//! | [`health`] | each part's state (resolver, detection, store, capture) and the daemon's grade for `/healthz` and the watchdog |
//! | [`metrics`] | Prometheus metrics and the `/metrics` + `/healthz` listener |
//! | [`report`] | the weekly report: a period in the clinic's time zone read from the store as a stream into figures ([`report::Report`]), rendered to HTML (askama), PDF (pdf-writer), chart PNGs (resvg), text, JSON and CSV |
//! | [`deliver`] | shell: sends a rendered report by email (SMTP, STARTTLS) and to a webhook (JSON POST), retried; run by `aiwarden report --deliver`, never by the daemon |
//! | [`fleet`] | shell: the MSP roll-up: incidents as OCSF events by RFC 5424 syslog over TLS to a SIEM, after a cursor, at least once |
//! | [`console`] | shell: the compliance web console (HTTPS, local accounts, sessions, CSRF, login limits): dashboard, incidents to acknowledge, report archive, rules |
//! | [`provision`] | pure: first-boot provisioning: `provision.toml` validated, and the files it becomes (networkd, dnsmasq, nftables, aiwarden's configuration) or the safe state |
//! | [`daemon`] | `aiwarden run`: wiring, detection and housekeeping threads, one shutdown, systemd |
//! | [`cli`] | the command line: one file per command group |
//! | [`config`] | the daemon's configuration file |
//! | [`paths`] | every default path, the compiled-in rules location among them |
//! | [`tls`] | TLS client pieces the shells that dial out share: CA roots, certificate refusals, an error's causes on one line |
//! | [`error`] | the one error enum |
//! | [`limit`] | bounds the shells share: one log line per interval for failures that repeat, connection slots that evict the longest idle when full |

pub mod capture;
pub mod cli;
pub mod config;
pub mod console;
pub mod daemon;
pub mod deliver;
pub mod detect;
pub mod devices;
pub mod error;
pub mod firewall;
pub mod fleet;
pub mod health;
pub mod incident;
pub mod limit;
pub mod metrics;
pub mod paths;
pub mod policy;
pub mod provision;
pub mod report;
pub mod resolver;
pub mod store;
pub mod tls;

pub use error::{Error, Result};
