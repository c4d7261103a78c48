//! The incident store: one SQLite file that keeps the clinic's record of flagged and blocked
//! AI use, the acknowledgements that staff were trained, and daily usage counts of every AI
//! service seen. It is the documentation a HIPAA risk analysis asks for, so it holds metadata
//! only: who (address, MAC, DHCP host name, inventory label), what service, when, how it was
//! seen, which host name and which rule. Never payloads, never URLs or paths.
//!
//! This is a shell: it owns the file (and the files beside it) and makes no policy
//! decisions. The daemon decides what an incident is and hands finished values in; times
//! are passed in, never read from the clock.
//!
//! # Tables
//!
//! | table | holds | changes |
//! |---|---|---|
//! | `log` | incidents, acknowledgements, unblocks, breaks and events, hash-chained | append-only (retention purges a prefix) |
//! | `activity` | per incident: last seen, observation count | updated while the incident goes on |
//! | `activity_seen` | per incident: every host name and every `how` seen (at most [`MAX_SEEN_PER_INCIDENT`] of each) | grows while the incident goes on |
//! | `usage` | per UTC day, service and verdict: observation count | upserted |
//! | `anchor` | the id and hash of the last row retention purged | replaced by each purge |
//! | `spool` | the last operation of the on-disk spool written here (see [`writer`]) | replaced with each spooled batch |
//! | `users` | the web console's local accounts: name, role, argon2id hash (see [`UserRow`]) | each change also appends an `event` row |
//!
//! The schema version is `PRAGMA user_version` ([`SCHEMA_VERSION`]); a file from a newer
//! aiwarden is refused rather than misread, one of version 1, 2 or 3 is migrated when
//! opened for writing (ids and hashes unchanged) and read as it is when opened read-only. `PRAGMA application_id` marks the file as ours.
//!
//! # Files
//!
//! | file | holds |
//! |---|---|
//! | `incidents.db` (and SQLite's `-wal`, `-shm`) | the tables |
//! | `incidents.db.head` | the chain's head, outside the database ([`head`](self#the-chain)) |
//! | `incidents.db.key` | the HMAC key of a keyed store (created when `keyed` is on) |
//! | `incidents.db.spool` | operations waiting while the database cannot be written ([`writer`]) |
//! | `incidents.db.corrupt-<UTC time>` | a store set aside as corrupt or tampered with, with its `-wal`, `-shm` and `.head` |
//! | `incidents.db.deleted-<UTC time>` | the copy saved from the open connection of a store deleted or replaced while open |
//!
//! Every one is created mode 0600 whatever the umask; a store from an older aiwarden is set
//! to 0600 when opened for writing.
//!
//! # The chain
//!
//! Each `log` row stores `prev_hash` (the previous row's `hash`; 32 zero bytes for the first
//! row ever, the anchor's hash after a purge) and
//! `hash = SHA-256(prev_hash || encode(id, kind, ts, client_ip, client_mac, device, label,
//! client_group, service, service_name, category, tier, verdict, mode, how, host, rule,
//! incident_id, ack_by, ack_note))`, where each value is encoded as a tag byte and a
//! length-prefixed payload: NULL `00`; integer `01` + 8 bytes big-endian; text `02` + 8-byte
//! big-endian length + UTF-8; blob `03` + length + bytes; real `04` + 8 bytes big-endian. Every
//! column takes part for every kind of row, so NULL and `""` differ and no two rows encode
//! alike. A `break` row (below) also encodes `break_reason, break_prev_id, break_prev_hash,
//! break_file` after those twenty, and an `unblock` row (an exception `aiwarden unblock`
//! records: device, host pattern or NULL for every AI host, who in `ack_by`, why in
//! `ack_note`) encodes `unblock_until` after them, and an `event` row (schema 4: a console
//! or system action such as `login`, `login_failed`, `logout`, `report_download`,
//! `user_add`, `user_remove`, `password_set`, `rules_loaded`, `report_written`; only `id`,
//! `kind` and `ts` of the twenty set) encodes `event, actor, detail` after them; other rows
//! must leave those NULL, and a CHECK refuses a row that sets another kind's columns. An
//! auditor can recompute it with any SQLite client and a SHA-256 tool.
//!
//! [`Store::verify`] walks the rows in id order and names the first one that is edited,
//! missing or out of place. Triggers refuse `UPDATE` and `DELETE` on `log` (except a purge's
//! prefix), so an accident cannot change history; a deliberate edit needs the triggers
//! dropped first, and the chain then shows it.
//!
//! A chain alone cannot show rows cut off its end, so the head lives outside the database
//! too: after every commit that changes the log, `incidents.db.head` is rewritten with the
//! newest row's id and hash, the row count, the retention anchor and the time (temp file,
//! fsync, rename, directory fsync). [`Store::verify`] compares: a database that no longer
//! holds the row the head file names was cut off ("rows 69 to 120 are missing from the end");
//! one that holds it with another hash was rewritten; a missing head file for a store that
//! was ever written is a failure too, since deleting it is how a truncation would hide. A
//! database ahead of its head file (a crash between a commit and the head's write) passes
//! with a note: nothing is missing. Someone who can write the head file can still rewrite
//! the tail and the head together; with `keyed` on, the head carries an HMAC-SHA256 under a
//! key in `incidents.db.key` (0600), and without the key no forged head verifies. The daemon
//! also remembers the head it wrote last and refuses to append to a chain that no longer
//! holds it.
//!
//! # Faults and breaks
//!
//! Errors carry a [`StoreFault`]: the writer spools and retries on a read-only, full or
//! missing directory, and on a corrupt file (SQLite's `SQLITE_CORRUPT` or `SQLITE_NOTADB`,
//! `PRAGMA quick_check` failing on open, a header overwritten), a file deleted or replaced
//! while open, or a tail that no longer matches its head, it sets the file aside and starts
//! a new chain whose first row is a `break`: why, the newest row of the chain before (id and
//! hash, when known) and the name it was set aside as. `verify` on the new file shows where
//! it began and why; `verify` on the set-aside file shows what was wrong with it.
//!
//! # Why activity is not chained
//!
//! The chain covers the facts of an incident that do not change once it opens: who, what,
//! when it started, how, the first host, the rule, the verdict. The last-seen time, the count
//! and the sets of hosts and protocols grow while the device keeps using the service; chaining
//! them would mean appending a row per observation or re-hashing old rows. They live in
//! `activity` and `activity_seen`, keyed by incident id, and are purged with their incident.

use std::path::{Path, PathBuf};
use std::time::Duration;

mod bulk;
mod chain;
mod events;
mod export;
mod feed;
mod files;
mod head;
mod open;
mod page;
mod period;
mod read;
mod retention;
mod schema;
mod spool;
mod verify;
mod write;
pub mod writer;

use rusqlite::{params, Connection, ErrorCode, OptionalExtension};
use serde::Serialize;

use crate::error::StoreFault;
use crate::incident::{IncidentOp, IncidentRecord, IncidentSummary, Usage, MAX_SEEN_PER_INCIDENT};
use crate::policy::Verdict;
use crate::{Error, Result};
pub use chain::{BreakRow, Broken, Head};
pub use events::{check_user_name, EventRow, Role, RowCounts, UserRow, MAX_EVENT_DETAIL};
pub use export::{export_columns, ActivityRow, LogRow, INTEGER_COLUMNS, MAX_EXPORT};
pub use feed::{Chained, MAX_FEED};
use files::{Gone, Watch};
use head::Key;
pub use head::Tail;
pub use page::{AckStatus, DeviceCount, Page, PageFilter, ServiceCount, Tally, MAX_PAGE};
pub use period::RowStatus;
pub use schema::SCHEMA_VERSION;
pub use verify::{check, deleted, StoreCheck, VerifyReport};

/// Default retention: HIPAA (45 CFR 164.316(b)(2)(i)) asks that documentation be kept six years
/// from its creation. 366-day years keep at least six calendar years whatever the leap days.
pub const DEFAULT_RETENTION_DAYS: u32 = 6 * 366;

/// How long a write waits for another process (an `aiwarden ack` beside the daemon).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// An acknowledgement: a named person recorded that the staff member was trained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AckRow {
    /// The ack's own row id in the log.
    pub id: i64,
    /// The incident acknowledged.
    pub incident_id: i64,
    /// When, unix microseconds.
    pub ts: i64,
    /// Who acknowledged.
    pub by: String,
    /// What was done (that the staff member was trained).
    pub note: String,
}

/// An incident with its activity and acknowledgements, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncidentRow {
    /// Row id in the log.
    pub id: i64,
    /// The chained facts and the activity since.
    #[serde(flatten)]
    pub summary: IncidentSummary,
    /// Acknowledgements, oldest first.
    pub acks: Vec<AckRow>,
}

/// Which incidents [`Store::list`] returns. The default lists everything, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// First seen at or after, unix microseconds.
    pub since: Option<i64>,
    /// First seen before, unix microseconds.
    pub until: Option<i64>,
    /// Equal (ASCII case-insensitive) to the client IP, MAC, DHCP host name or label.
    pub device: Option<String>,
    /// Catalog service id.
    pub service: Option<String>,
    /// Only incidents nobody acknowledged.
    pub unacked_only: bool,
    /// At most this many (the newest).
    pub limit: Option<u32>,
}

/// Attempts of one service on one UTC day with one verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    /// Catalog service id.
    pub service: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Attempts.
    pub count: u64,
}

/// What reaches the writer.
#[derive(Debug)]
pub enum StoreOp {
    /// An incident opened or touched.
    Incident(IncidentOp),
    /// One attempt of a service on a day.
    Usage(Usage),
    /// The pipeline closed incident `key`: its row id is no longer needed.
    Forget(u64),
}

/// Now, in unix microseconds (the writer is a shell; the core never reads the clock).
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// True once the writer has made the store at `path`: the file and its head file. The file
/// itself appears (empty) before the schema and, in a keyed store, before the key; the head
/// file is written after the key and before the schema commits (a reader then waits on the
/// writer's lock). A second writer that opened the file earlier would create an unkeyed
/// schema of its own, and the writer would later find a head it did not sign.
pub fn made(path: &Path) -> bool {
    path.exists() && head::head_path(path).exists()
}

/// How a store is opened for writing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// Sign the head file with an HMAC key (`<store>.key`), creating the key when there is
    /// none. A key that exists is always used, whatever this says: turning `keyed` off must
    /// not silently drop the MAC a verifier expects.
    pub keyed: bool,
}

/// The open store. One per process that writes; readers may open their own.
#[derive(Debug)]
pub struct Store {
    // Dropped first: the connection closes before `watch` closes its descriptor.
    conn: Connection,
    path: PathBuf,
    version: i32,
    key: Option<Key>,
    /// The chain's newest row as this process last wrote or checked it.
    known: Option<(i64, [u8; 32])>,
    /// Why the head file could not be written after the last commit.
    head_error: Option<Error>,
    watch: Option<Watch>,
}

impl Store {
    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The spool position recorded with the last spooled batch written from `file`.
    fn spool_position(&self, file: &str) -> Result<Option<i64>> {
        self.conn
            .query_row("SELECT seq FROM spool WHERE file = ?1", [file], |r| {
                r.get(0)
            })
            .optional()
            .ctx(&self.path, "read the spool position")
    }

    /// Why the head file could not be written after the last commit (taken: it is reported
    /// once; the next commit tries again).
    fn take_head_error(&mut self) -> Option<Error> {
        self.head_error.take()
    }

    /// The chain's newest row as this process last wrote or checked it.
    fn known_head(&self) -> Option<(i64, [u8; 32])> {
        self.known
    }

    /// Whether the path still names the open file and its header is intact: a `stat` and a
    /// 16-byte read.
    fn check_file(&self) -> Result<()> {
        match self.watch.as_ref().map(|w| w.check(&self.path)) {
            Some(Err(Gone::Vanished(m))) => Err(store_error(&self.path, StoreFault::Vanished, m)),
            Some(Err(Gone::Header(m))) => Err(store_error(&self.path, StoreFault::Corrupt, m)),
            _ => Ok(()),
        }
    }

    /// Saves what the open connection sees into a new file at `to` (`VACUUM INTO`): the
    /// rescue of a store deleted while open.
    fn salvage(&self, to: &Path) -> Result<()> {
        let target = to.to_str().ok_or_else(|| {
            store_error(&self.path, StoreFault::Other, "path is not UTF-8".into())
        })?;
        self.conn
            .execute("VACUUM INTO ?1", [target])
            .ctx(&self.path, "save a copy")?;
        if let Err(e) = files::make_private(to) {
            tracing::warn!(error = %e, file = %to.display(), "store: cannot set mode 0600");
        }
        Ok(())
    }

    /// Closes the connection without checkpointing, so a file about to be set aside keeps
    /// its WAL as it was (a checkpoint would write into a file found corrupt).
    fn close_as_is(self) {
        let _ = self.conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        );
        let Store { conn, watch, .. } = self;
        drop(conn);
        drop(watch);
    }
}

/// A tail that does not match its head file as an error: [`Error::Tampered`] naming the
/// first row at fault, or [`Error::StoreHead`] when no row is (the head file is missing or
/// forged).
fn tail_error(path: &Path, id: Option<i64>, reason: String) -> Error {
    match id {
        Some(id) => Error::Tampered {
            path: path.to_path_buf(),
            id,
            reason,
        },
        None => Error::StoreHead {
            path: path.to_path_buf(),
            reason,
        },
    }
}

/// Now, RFC 3339 with microseconds (the head file's `time`).
fn now_rfc3339() -> String {
    humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()
}

/// Maps a SQLite error to [`Error::Store`], saying what was being done.
trait Context<T> {
    fn ctx(self, path: &Path, what: &str) -> Result<T>;
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn ctx(self, path: &Path, what: &str) -> Result<T> {
        self.map_err(|e| sqlite_error(path, what, &e))
    }
}

/// A SQLite error as a [`StoreFault`]; a write refused for a reason the directory explains
/// (read-only, full, missing) names the directory's fault.
fn sqlite_error(path: &Path, what: &str, e: &rusqlite::Error) -> Error {
    let fault = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreFault::Corrupt,
        Some(ErrorCode::ReadOnly) => StoreFault::ReadOnly,
        Some(ErrorCode::DiskFull) => StoreFault::Full,
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreFault::Busy,
        Some(ErrorCode::PermissionDenied) => StoreFault::Denied,
        Some(ErrorCode::SystemIoFailure | ErrorCode::CannotOpen) => StoreFault::Io,
        _ => StoreFault::Other,
    };
    match fault {
        StoreFault::Corrupt => store_error(path, fault, format!("corrupt: {what}: {e}")),
        StoreFault::ReadOnly | StoreFault::Full | StoreFault::Denied | StoreFault::Io => {
            match files::probe_dir(&files::dir_of(path)) {
                Some((f, why)) => store_error(path, f, format!("{why}: {what}: {e}")),
                None => store_error(path, fault, format!("{what}: {e}")),
            }
        }
        _ => store_error(path, fault, format!("{what}: {e}")),
    }
}

/// An operating system error on the store's files, named by the directory's fault when it
/// has one.
fn io_error(path: &Path, what: &str, e: &std::io::Error) -> Error {
    match files::probe_dir(&files::dir_of(path)) {
        Some((f, why)) => store_error(path, f, format!("{why}: {what}: {e}")),
        None => store_error(path, files::io_fault(e), format!("{what}: {e}")),
    }
}

fn store_error(path: &Path, fault: StoreFault, message: String) -> Error {
    Error::Store {
        path: path.to_path_buf(),
        fault,
        message,
    }
}

fn check_incident(inc: &IncidentRecord) -> Result<()> {
    if inc.verdict == Verdict::Allow {
        return Err(Error::Usage(
            "an allowed observation is not an incident".into(),
        ));
    }
    Ok(())
}

/// Accepts `YYYY-MM-DD` with a plausible month and day; SQLite compares days as text.
fn check_day(day: &str) -> Result<()> {
    let b = day.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && digits(0..4)
        && digits(5..7)
        && digits(8..10)
        && (b"01".as_slice()..=b"12".as_slice()).contains(&&b[5..7])
        && (b"01".as_slice()..=b"31".as_slice()).contains(&&b[8..10]);
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!("day {day:?} is not YYYY-MM-DD")))
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn unclamp(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Adds a host or `how` to an incident's sets, up to [`MAX_SEEN_PER_INCIDENT`] of each.
fn add_seen(conn: &Connection, id: i64, what: &str, value: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO activity_seen (incident_id, what, value)
         SELECT ?1, ?2, ?3
         WHERE (SELECT count(*) FROM activity_seen WHERE incident_id = ?1 AND what = ?2) < ?4",
    )?
    .execute(params![id, what, value, MAX_SEEN_PER_INCIDENT as i64])?;
    Ok(())
}

fn is_incident(conn: &Connection, id: i64) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT 1 FROM log WHERE id = ?1 AND kind = 'incident'",
        [id],
        |_| Ok(()),
    )
    .optional()
    .map(|r| r.is_some())
}

#[cfg(test)]
mod console_tests;
#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod unblock_tests;
