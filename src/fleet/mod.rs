//! Fleet features for an MSP that looks after many clinics: signed rule bundles pushed to
//! every box, and the roll-up of each box's incidents to engines the MSP already runs.
//!
//! | file | concern |
//! |---|---|
//! | `bundle.rs` | pure: the bundle format (tar + manifest), minisign signing and verification, every refusal |
//! | `update.rs` | shell: fetch over HTTPS, verify, unpack into the state directory, swap the catalog in through [`crate::policy::Live`], record the outcome |
//! | `enrol.rs` | pure: an enrolment document made into `fleet.toml` and its secret files |
//! | `ocsf.rs` | pure: one incident as one OCSF Detection Finding (the SIEM's JSON) |
//! | `syslog.rs` | pure: RFC 5424 messages and RFC 5425 octet-counting frames |
//! | `rollup.rs` | pure: the central PostgreSQL schema, the walk that verifies a site's copied chain, the fleet report's figures |
//! | `rollup_pg.rs` | shell: copies a box's rows, activity, usage and health to PostgreSQL; verifies the copy; reads the fleet report |
//! | `syslog_send.rs` | shell: sends the incidents after a cursor to a syslog-over-TLS receiver, moving the cursor once a batch is confirmed |

pub mod bundle;
pub mod enrol;
pub mod ocsf;
pub mod rollup;
pub mod rollup_pg;
pub mod syslog;
pub mod syslog_send;
pub mod update;

pub use syslog_send::{send_pending, Confirm, SendReport, Source, Target};
