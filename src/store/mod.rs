//! The incident store: one SQLite file that keeps the clinic's record of flagged and blocked
//! AI use, the acknowledgements that staff were trained, and daily usage counts of every AI
//! service seen. It is the documentation a HIPAA risk analysis asks for, so it holds metadata
//! only: who (address, MAC, DHCP host name, inventory label), what service, when, how it was
//! seen, which host name and which rule. Never payloads, never URLs or paths.
//!
//! This is a shell: it owns the file and makes no policy decisions. The daemon decides what an
//! incident is and hands finished values in; times are passed in, never read from the clock.
//!
//! # Tables
//!
//! | table | holds | changes |
//! |---|---|---|
//! | `log` | incidents and acknowledgements, hash-chained | append-only (retention purges a prefix) |
//! | `activity` | per incident: last seen, observation count | updated while the incident goes on |
//! | `activity_seen` | per incident: every host name and every `how` seen (at most [`MAX_SEEN_PER_INCIDENT`] of each) | grows while the incident goes on |
//! | `usage` | per UTC day, service and verdict: observation count | upserted |
//! | `anchor` | the id and hash of the last row retention purged | replaced by each purge |
//!
//! The schema version is `PRAGMA user_version` ([`SCHEMA_VERSION`]); a file from a newer
//! aiwarden is refused rather than misread. `PRAGMA application_id` marks the file as ours.
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
//! column takes part for both kinds of row, so NULL and `""` differ and no two rows encode
//! alike. An auditor can recompute it with any SQLite client and a SHA-256 tool.
//!
//! [`Store::verify`] walks the rows in id order and names the first one that is edited, missing
//! or out of place. Triggers refuse `UPDATE` and `DELETE` on `log` (except a purge's prefix), so
//! an accident cannot change history; a deliberate edit needs the triggers dropped first, and
//! the chain then shows it. What a chain without a secret cannot show is a rewrite of every
//! row after the edit, or rows cut off the end: [`Store::head`] gives the newest id and hash
//! for a report to print, and a printed head pins everything before it.
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

mod chain;
mod read;
mod retention;
pub mod writer;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use crate::incident::{IncidentRecord, IncidentSummary, Touch, MAX_SEEN_PER_INCIDENT};
use crate::policy::Verdict;
use crate::{Error, Result};
use chain::{ack_values, chain_head, check_chain, incident_values, insert_log};
pub use chain::{Broken, Head, VerifyReport};

/// The schema this build reads and writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i32 = 1;

/// `PRAGMA application_id`: "AIWD", so `file(1)` and this module can tell the store from
/// another SQLite file.
const APPLICATION_ID: i32 = 0x4149_5744;

/// Default retention: HIPAA (45 CFR 164.316(b)(2)(i)) asks that documentation be kept six years
/// from its creation. 366-day years keep at least six calendar years whatever the leap days.
pub const DEFAULT_RETENTION_DAYS: u32 = 6 * 366;

/// How long a write waits for another process (an `aiwarden ack` beside the daemon).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE log (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    ts INTEGER NOT NULL,
    client_ip TEXT,
    client_mac TEXT,
    device TEXT,
    label TEXT,
    client_group TEXT,
    service TEXT,
    service_name TEXT,
    category TEXT,
    tier TEXT,
    verdict TEXT,
    mode TEXT,
    how TEXT,
    host TEXT,
    rule TEXT,
    incident_id INTEGER REFERENCES log(id),
    ack_by TEXT,
    ack_note TEXT,
    prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),
    hash BLOB NOT NULL CHECK (length(hash) = 32),
    CHECK (
        (kind = 'incident'
            AND client_ip IS NOT NULL AND service IS NOT NULL AND service_name IS NOT NULL
            AND verdict IN ('flag', 'block') AND mode IN ('monitor', 'enforce')
            AND how IS NOT NULL AND host IS NOT NULL AND rule IS NOT NULL
            AND incident_id IS NULL AND ack_by IS NULL AND ack_note IS NULL)
        OR
        (kind = 'ack'
            AND incident_id IS NOT NULL AND ack_by IS NOT NULL AND ack_note IS NOT NULL
            AND coalesce(client_ip, client_mac, device, label, client_group, service,
                         service_name, category, tier, verdict, mode, how, host, rule) IS NULL)
    )
) STRICT;
CREATE INDEX log_ts ON log(ts);
CREATE INDEX log_incident ON log(incident_id) WHERE incident_id IS NOT NULL;

CREATE TABLE activity (
    incident_id INTEGER PRIMARY KEY REFERENCES log(id),
    last_seen INTEGER NOT NULL,
    count INTEGER NOT NULL CHECK (count >= 0)
) STRICT;

CREATE TABLE activity_seen (
    incident_id INTEGER NOT NULL REFERENCES activity(incident_id),
    what TEXT NOT NULL CHECK (what IN ('host', 'how')),
    value TEXT NOT NULL,
    PRIMARY KEY (incident_id, what, value)
) STRICT, WITHOUT ROWID;

CREATE TABLE usage (
    day TEXT NOT NULL,
    service TEXT NOT NULL,
    verdict TEXT NOT NULL,
    count INTEGER NOT NULL CHECK (count >= 0),
    PRIMARY KEY (day, service, verdict)
) STRICT, WITHOUT ROWID;

CREATE TABLE anchor (
    only INTEGER PRIMARY KEY CHECK (only = 1),
    last_id INTEGER NOT NULL,
    last_hash BLOB NOT NULL CHECK (length(last_hash) = 32),
    cutoff INTEGER NOT NULL
) STRICT;

CREATE TRIGGER log_no_update BEFORE UPDATE ON log
BEGIN
    SELECT RAISE(ABORT, 'the incident log is append-only');
END;
CREATE TRIGGER log_no_delete BEFORE DELETE ON log
WHEN OLD.id > coalesce((SELECT last_id FROM anchor), 0)
BEGIN
    SELECT RAISE(ABORT, 'the incident log is append-only; only retention purges it');
END;
";

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

/// The open store. One per process that writes; readers may open their own.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens the store at `path` for reading and writing, creating the file and the schema
    /// when missing. Refuses a file from a newer aiwarden and a SQLite file that is not a store.
    pub fn open(path: &Path) -> Result<Store> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags).ctx(path, "open")?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .ctx(path, "set busy timeout")?;
        // WAL: readers (reports, the web page) never block the daemon's writes. FULL: a
        // committed incident survives a power cut, not only a crash.
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .ctx(path, "set journal_mode")?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(store_error(
                path,
                format!("journal_mode is {mode}, wanted wal"),
            ));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .ctx(path, "set synchronous")?;
        conn.pragma_update(None, "foreign_keys", true)
            .ctx(path, "enable foreign keys")?;

        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(path, "begin")?;
        match check_version(path, &tx)? {
            Some(SCHEMA_VERSION) => {}
            Some(v) => {
                return Err(store_error(
                    path,
                    format!("schema version {v} has no migration to {SCHEMA_VERSION}"),
                ))
            }
            None => {
                tx.execute_batch(SCHEMA).ctx(path, "create schema")?;
                tx.pragma_update(None, "application_id", APPLICATION_ID)
                    .ctx(path, "set application_id")?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                    .ctx(path, "set user_version")?;
            }
        }
        tx.commit().ctx(path, "commit schema")?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing store for reading only (reports, `aiwarden verify`). The directory
    /// must be writable by the caller or the WAL index must already exist, as SQLite needs it.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).ctx(path, "open")?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .ctx(path, "set busy timeout")?;
        conn.pragma_update(None, "foreign_keys", true)
            .ctx(path, "enable foreign keys")?;
        let tx = conn.unchecked_transaction().ctx(path, "begin")?;
        match check_version(path, &tx)? {
            Some(SCHEMA_VERSION) => {}
            Some(v) => {
                return Err(store_error(
                    path,
                    format!("schema version {v} is older; open it read-write once to upgrade"),
                ))
            }
            None => {
                return Err(store_error(
                    path,
                    "not an aiwarden store (no schema)".into(),
                ))
            }
        }
        drop(tx);
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends incidents in one transaction and returns their ids, in order. Each starts with
    /// an activity of count 1, last seen at `ts`, its host and its `how`.
    pub fn append_incidents(&mut self, incidents: &[IncidentRecord]) -> Result<Vec<i64>> {
        for inc in incidents {
            check_incident(inc)?;
        }
        if incidents.is_empty() {
            return Ok(Vec::new());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(&self.path, "begin")?;
        let (mut next, mut prev) = chain_head(&tx).ctx(&self.path, "read the chain head")?;
        let mut ids = Vec::with_capacity(incidents.len());
        for inc in incidents {
            let row = incident_values(next, inc);
            prev = insert_log(&tx, &row, &prev).ctx(&self.path, "append incident")?;
            tx.prepare_cached(
                "INSERT INTO activity (incident_id, last_seen, count) VALUES (?1, ?2, 1)",
            )
            .and_then(|mut st| st.execute(params![next, inc.ts]))
            .ctx(&self.path, "append activity")?;
            add_seen(&tx, next, "host", &inc.host).ctx(&self.path, "append activity")?;
            add_seen(&tx, next, "how", &inc.how.to_string()).ctx(&self.path, "append activity")?;
            ids.push(next);
            next += 1;
        }
        tx.commit().ctx(&self.path, "commit incidents")?;
        Ok(ids)
    }

    /// Records that `by` acknowledged incident `incident_id` at `ts` (unix microseconds) with
    /// `note`, and returns the ack's id. An incident may be acknowledged more than once.
    pub fn ack(&mut self, incident_id: i64, ts: i64, by: &str, note: &str) -> Result<i64> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(&self.path, "begin")?;
        if !is_incident(&tx, incident_id).ctx(&self.path, "find incident")? {
            return Err(Error::NoSuchIncident(incident_id));
        }
        let (id, prev) = chain_head(&tx).ctx(&self.path, "read the chain head")?;
        let row = ack_values(id, incident_id, ts, by, note);
        insert_log(&tx, &row, &prev).ctx(&self.path, "append ack")?;
        tx.commit().ctx(&self.path, "commit ack")?;
        Ok(id)
    }

    /// Records a later observation of incident `id` as [`IncidentSummary::touch`] does:
    /// moves `last_seen` forward, counts an attempt, adds the host and `how` to the sets
    /// seen.
    pub fn touch_incident(&mut self, id: i64, touch: &Touch) -> Result<()> {
        self.touch_batch(&[(id, touch.clone())])
    }

    /// [`Store::touch_incident`] for many incidents in one transaction. Fails whole, with
    /// [`Error::NoSuchIncident`], if one of them is not in the store.
    pub fn touch_batch(&mut self, touches: &[(i64, Touch)]) -> Result<()> {
        if touches.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(&self.path, "begin")?;
        for (id, t) in touches {
            let changed = tx
                .prepare_cached(
                    "UPDATE activity SET last_seen = max(last_seen, ?2), count = count + ?3
                     WHERE incident_id = ?1",
                )
                .and_then(|mut st| st.execute(params![id, t.ts, i64::from(t.attempt)]))
                .ctx(&self.path, "update activity")?;
            if changed == 0 {
                return Err(Error::NoSuchIncident(*id));
            }
            add_seen(&tx, *id, "host", &t.host).ctx(&self.path, "update activity")?;
            add_seen(&tx, *id, "how", &t.how.to_string()).ctx(&self.path, "update activity")?;
        }
        tx.commit().ctx(&self.path, "commit activity")
    }

    /// Adds `n` attempts of `service` with `verdict` on UTC `day` (`YYYY-MM-DD`).
    pub fn add_usage(&mut self, day: &str, service: &str, verdict: Verdict, n: u64) -> Result<()> {
        self.add_usage_batch(&[(day.into(), service.into(), verdict, n)])
    }

    /// [`Store::add_usage`] for many `(day, service, verdict, n)` in one transaction.
    pub fn add_usage_batch(&mut self, rows: &[(String, String, Verdict, u64)]) -> Result<()> {
        for (day, ..) in rows {
            check_day(day)?;
        }
        if rows.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(&self.path, "begin")?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO usage (day, service, verdict, count) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (day, service, verdict) DO UPDATE SET count = count + excluded.count",
                )
                .ctx(&self.path, "add usage")?;
            for (day, service, verdict, n) in rows {
                st.execute(params![day, service, verdict.as_str(), clamp(*n)])
                    .ctx(&self.path, "add usage")?;
            }
        }
        tx.commit().ctx(&self.path, "commit usage")
    }

    /// Recomputes the chain in id order, from the retention anchor if there is one, and
    /// reports the first row that is edited, missing or out of place.
    pub fn verify(&self) -> Result<VerifyReport> {
        let tx = self.conn.unchecked_transaction().ctx(&self.path, "begin")?;
        check_chain(&tx, None).ctx(&self.path, "verify")
    }
}

/// Maps a SQLite error to [`Error::Store`], saying what was being done.
trait Context<T> {
    fn ctx(self, path: &Path, what: &str) -> Result<T>;
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn ctx(self, path: &Path, what: &str) -> Result<T> {
        self.map_err(|e| store_error(path, format!("{what}: {e}")))
    }
}

fn store_error(path: &Path, message: String) -> Error {
    Error::Store {
        path: path.to_path_buf(),
        message,
    }
}

/// The schema version of an aiwarden store, `None` for an empty file, an error for a newer
/// schema or a SQLite file that is something else.
fn check_version(path: &Path, conn: &Connection) -> Result<Option<i32>> {
    let version: i32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .ctx(path, "read user_version")?;
    let app: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .ctx(path, "read application_id")?;
    if version == 0 {
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .ctx(path, "read schema")?;
        if tables > 0 || app != 0 {
            return Err(store_error(
                path,
                "not an aiwarden store (it has tables but no aiwarden schema)".into(),
            ));
        }
        return Ok(None);
    }
    if app != APPLICATION_ID {
        return Err(store_error(
            path,
            format!("not an aiwarden store (application_id {app:#x})"),
        ));
    }
    if version > SCHEMA_VERSION {
        return Err(Error::StoreVersion {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(Some(version))
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
mod tests;
