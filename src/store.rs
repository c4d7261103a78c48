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

use rusqlite::types::{ToSql, Value, ValueRef};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The schema this build reads and writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i32 = 1;

/// `PRAGMA application_id`: "AIWD", so `file(1)` and this module can tell the store from
/// another SQLite file.
const APPLICATION_ID: i32 = 0x4149_5744;

/// Default retention: HIPAA (45 CFR 164.316(b)(2)(i)) asks that documentation be kept six years
/// from its creation. 366-day years keep at least six calendar years whatever the leap days.
pub const DEFAULT_RETENTION_DAYS: u32 = 6 * 366;

/// Host names and `how` values kept per incident, each. Keeps a wildcard rule that matches
/// endless random subdomains from growing one incident without bound; the count stays exact.
pub const MAX_SEEN_PER_INCIDENT: i64 = 64;

/// How long a write waits for another process (an `aiwarden ack` beside the daemon).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The `prev_hash` of the first row when nothing was ever purged.
const GENESIS: [u8; 32] = [0; 32];

/// The chained columns of `log`, in hashing order. `prev_hash` and `hash` follow them.
const LOG_COLUMNS: [&str; 20] = [
    "id",
    "kind",
    "ts",
    "client_ip",
    "client_mac",
    "device",
    "label",
    "client_group",
    "service",
    "service_name",
    "category",
    "tier",
    "verdict",
    "mode",
    "how",
    "host",
    "rule",
    "incident_id",
    "ack_by",
    "ack_note",
];

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

/// An incident as the daemon records it when it opens. Every field is chained: none may
/// change later. Times are unix microseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NewIncident {
    /// First seen.
    pub ts: i64,
    /// The device's IP address.
    pub client_ip: String,
    /// The device's MAC address, when it is on the appliance's segment.
    pub client_mac: Option<String>,
    /// The host name the device gave DHCP.
    pub device: Option<String>,
    /// The staff member or device label from the admin's inventory.
    pub label: Option<String>,
    /// The client group the policy placed the device in.
    pub group: Option<String>,
    /// Catalog service id (or the deny rule when the host is only on a list).
    pub service: String,
    /// The service's display name.
    pub service_name: String,
    /// Catalog category.
    pub category: Option<String>,
    /// Product tier: `consumer`, `enterprise` or `shared`.
    pub tier: Option<String>,
    /// `flag` or `block`.
    pub verdict: String,
    /// `monitor` or `enforce`.
    pub mode: String,
    /// How it was seen: `dns`, `tls`, `quic`, `tls,unresolved`, ...
    pub how: String,
    /// The first host name seen. A host name only: never a URL or a path.
    pub host: String,
    /// The rule that decided, e.g. `catalog/openai.toml:chatgpt`.
    pub rule: String,
}

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
    /// The chained facts.
    #[serde(flatten)]
    pub incident: NewIncident,
    /// Last observation, unix microseconds.
    pub last_seen: i64,
    /// Observations grouped into the incident.
    pub count: u64,
    /// Every host name seen, sorted (at most [`MAX_SEEN_PER_INCIDENT`]).
    pub hosts: Vec<String>,
    /// Every `how` seen, sorted (at most [`MAX_SEEN_PER_INCIDENT`]).
    pub hows: Vec<String>,
    /// Acknowledgements, oldest first.
    pub acks: Vec<AckRow>,
}

/// A later observation of an open incident, for [`Store::touch_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touch {
    /// The incident.
    pub id: i64,
    /// Observation time, unix microseconds; `last_seen` only moves forward.
    pub last_seen: i64,
    /// Observations to add to the count.
    pub count_delta: u64,
    /// The host name seen.
    pub host: String,
    /// How it was seen.
    pub how: String,
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

/// Observations of one service on one UTC day with one verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    /// Catalog service id.
    pub service: String,
    /// `allow`, `flag` or `block`.
    pub verdict: String,
    /// Observations.
    pub count: u64,
}

/// What [`Store::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Rows checked and found intact before the first broken one (all of them when intact).
    pub rows: u64,
    /// The last row retention purged; the check starts from its hash.
    pub anchor: Option<i64>,
    /// The first row where the chain breaks.
    pub first_broken: Option<Broken>,
}

impl VerifyReport {
    /// True when the whole chain checks out.
    pub fn is_intact(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// Where and why the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broken {
    /// The row at fault (for a gap: the first row after it).
    pub id: i64,
    /// What is wrong, for the operator.
    pub reason: String,
}

/// The newest row of the chain, for a report to print: a printed head shows later if rows
/// were cut off the end or the chain was rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Head {
    /// Its id.
    pub id: i64,
    /// Its hash, lowercase hex.
    pub hash: String,
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
    pub fn append_incidents(&mut self, incidents: &[NewIncident]) -> Result<Vec<i64>> {
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
            add_seen(&tx, next, "how", &inc.how).ctx(&self.path, "append activity")?;
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

    /// Records a later observation of incident `id`: moves `last_seen` forward, adds
    /// `count_delta`, and adds `host` and `how` to the sets seen.
    pub fn touch_incident(
        &mut self,
        id: i64,
        last_seen: i64,
        count_delta: u64,
        host: &str,
        how: &str,
    ) -> Result<()> {
        self.touch_batch(&[Touch {
            id,
            last_seen,
            count_delta,
            host: host.into(),
            how: how.into(),
        }])
    }

    /// [`Store::touch_incident`] for many incidents in one transaction. Fails whole, with
    /// [`Error::NoSuchIncident`], if one of them is not in the store.
    pub fn touch_batch(&mut self, touches: &[Touch]) -> Result<()> {
        if touches.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(&self.path, "begin")?;
        for t in touches {
            let changed = tx
                .prepare_cached(
                    "UPDATE activity SET last_seen = max(last_seen, ?2), count = count + ?3
                     WHERE incident_id = ?1",
                )
                .and_then(|mut st| st.execute(params![t.id, t.last_seen, clamp(t.count_delta)]))
                .ctx(&self.path, "update activity")?;
            if changed == 0 {
                return Err(Error::NoSuchIncident(t.id));
            }
            add_seen(&tx, t.id, "host", &t.host).ctx(&self.path, "update activity")?;
            add_seen(&tx, t.id, "how", &t.how).ctx(&self.path, "update activity")?;
        }
        tx.commit().ctx(&self.path, "commit activity")
    }

    /// Adds `n` observations of `service` with `verdict` on UTC `day` (`YYYY-MM-DD`).
    pub fn add_usage(&mut self, day: &str, service: &str, verdict: &str, n: u64) -> Result<()> {
        self.add_usage_batch(&[(day.into(), service.into(), verdict.into(), n)])
    }

    /// [`Store::add_usage`] for many `(day, service, verdict, n)` in one transaction.
    pub fn add_usage_batch(&mut self, rows: &[(String, String, String, u64)]) -> Result<()> {
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
                st.execute(params![day, service, verdict, clamp(*n)])
                    .ctx(&self.path, "add usage")?;
            }
        }
        tx.commit().ctx(&self.path, "commit usage")
    }

    /// Usage from `from_day` to `to_day` (both `YYYY-MM-DD`, inclusive), by day, service and
    /// verdict.
    pub fn usage(&self, from_day: &str, to_day: &str) -> Result<Vec<UsageRow>> {
        check_day(from_day)?;
        check_day(to_day)?;
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT day, service, verdict, count FROM usage WHERE day BETWEEN ?1 AND ?2
                 ORDER BY day, service, verdict",
            )
            .ctx(&self.path, "read usage")?;
        let rows = st
            .query_map(params![from_day, to_day], |r| {
                Ok(UsageRow {
                    day: r.get(0)?,
                    service: r.get(1)?,
                    verdict: r.get(2)?,
                    count: unclamp(r.get(3)?),
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .ctx(&self.path, "read usage")?;
        Ok(rows)
    }

    /// Incidents that pass `filter`, newest first, with their activity and acks.
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<IncidentRow>> {
        let mut sql = String::from("SELECT id FROM log WHERE kind = 'incident'");
        let mut args: Vec<Value> = Vec::new();
        if let Some(since) = filter.since {
            args.push(Value::Integer(since));
            sql.push_str(&format!(" AND ts >= ?{}", args.len()));
        }
        if let Some(until) = filter.until {
            args.push(Value::Integer(until));
            sql.push_str(&format!(" AND ts < ?{}", args.len()));
        }
        if let Some(device) = &filter.device {
            args.push(Value::Text(device.clone()));
            let n = args.len();
            sql.push_str(&format!(
                " AND (client_ip = ?{n} COLLATE NOCASE OR client_mac = ?{n} COLLATE NOCASE
                       OR device = ?{n} COLLATE NOCASE OR label = ?{n} COLLATE NOCASE)"
            ));
        }
        if let Some(service) = &filter.service {
            args.push(Value::Text(service.clone()));
            sql.push_str(&format!(" AND service = ?{}", args.len()));
        }
        if filter.unacked_only {
            sql.push_str(
                " AND NOT EXISTS (SELECT 1 FROM log a WHERE a.kind = 'ack' AND a.incident_id = log.id)",
            );
        }
        args.push(Value::Integer(filter.limit.map_or(-1, i64::from)));
        sql.push_str(&format!(" ORDER BY ts DESC, id DESC LIMIT ?{}", args.len()));

        // One snapshot, so a purge or an append between the queries cannot tear the answer.
        let tx = self.conn.unchecked_transaction().ctx(&self.path, "begin")?;
        let ids = tx
            .prepare(&sql)
            .and_then(|mut st| {
                st.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, i64>(0))?
                    .collect::<rusqlite::Result<Vec<i64>>>()
            })
            .ctx(&self.path, "list incidents")?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(row) = read_incident(&tx, id).ctx(&self.path, "read incident")? {
                out.push(row);
            }
        }
        Ok(out)
    }

    /// The incident with row id `id`, or `None` when there is none (or `id` is an ack).
    pub fn get(&self, id: i64) -> Result<Option<IncidentRow>> {
        let tx = self.conn.unchecked_transaction().ctx(&self.path, "begin")?;
        read_incident(&tx, id).ctx(&self.path, "read incident")
    }

    /// The newest row of the chain, or `None` when the log is empty.
    pub fn head(&self) -> Result<Option<Head>> {
        self.conn
            .query_row(
                "SELECT id, hash FROM log ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok(Head {
                        id: r.get(0)?,
                        hash: hex(&r.get::<_, Vec<u8>>(1)?),
                    })
                },
            )
            .optional()
            .ctx(&self.path, "read the chain head")
    }

    /// Recomputes the chain in id order, from the retention anchor if there is one, and
    /// reports the first row that is edited, missing or out of place.
    pub fn verify(&self) -> Result<VerifyReport> {
        let tx = self.conn.unchecked_transaction().ctx(&self.path, "begin")?;
        check_chain(&tx, None).ctx(&self.path, "verify")
    }

    /// Retention: deletes the oldest rows of the log, the longest prefix in which every row is
    /// older than `cutoff` (unix microseconds), with their activity, and usage days before the
    /// cutoff's day. Records the last purged row's id and hash as the anchor [`Store::verify`]
    /// starts from. The prefix stops before an incident whose acknowledgement is kept, so no
    /// kept ack loses its incident. Refuses to purge rows whose chain is broken, so retention
    /// never erases the evidence of an edit. Returns the log rows deleted.
    pub fn purge_before(&mut self, cutoff: i64) -> Result<u64> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(&self.path, "begin")?;
        let anchor_id = read_anchor(&tx)
            .ctx(&self.path, "read anchor")?
            .map_or(0, |(id, _)| id);
        let last = purge_end(&tx, cutoff).ctx(&self.path, "find rows to purge")?;
        let mut deleted = 0;
        if let Some(last) = last.filter(|&l| l > anchor_id) {
            let report = check_chain(&tx, Some(last)).ctx(&self.path, "verify before purge")?;
            let reason = match report.first_broken {
                Some(b) => Some(format!("row {}: {}", b.id, b.reason)),
                // The walk stops at `last`, so a gap just before it shows only as a short count.
                None if report.rows != (last - anchor_id) as u64 => Some(format!(
                    "rows {} to {last} are not all there (deleted?)",
                    anchor_id + 1
                )),
                None => None,
            };
            if let Some(reason) = reason {
                return Err(store_error(
                    &self.path,
                    format!("purge refused: {reason}; the rows are kept as evidence"),
                ));
            }
            let hash: [u8; 32] = tx
                .query_row("SELECT hash FROM log WHERE id = ?1", [last], |r| r.get(0))
                .ctx(&self.path, "read the last purged row")?;
            // The anchor first: the delete trigger allows deleting only rows at or before it.
            tx.execute(
                "INSERT INTO anchor (only, last_id, last_hash, cutoff) VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT (only) DO UPDATE SET last_id = excluded.last_id,
                     last_hash = excluded.last_hash, cutoff = excluded.cutoff",
                params![last, hash, cutoff],
            )
            .ctx(&self.path, "record anchor")?;
            tx.execute("DELETE FROM activity_seen WHERE incident_id <= ?1", [last])
                .ctx(&self.path, "purge activity")?;
            tx.execute("DELETE FROM activity WHERE incident_id <= ?1", [last])
                .ctx(&self.path, "purge activity")?;
            deleted += tx
                .execute("DELETE FROM log WHERE id <= ?1 AND kind = 'ack'", [last])
                .ctx(&self.path, "purge acks")?;
            deleted += tx
                .execute("DELETE FROM log WHERE id <= ?1", [last])
                .ctx(&self.path, "purge incidents")?;
        }
        tx.execute(
            "DELETE FROM usage WHERE day < date(?1, 'unixepoch')",
            [cutoff.div_euclid(1_000_000)],
        )
        .ctx(&self.path, "purge usage")?;
        tx.commit().ctx(&self.path, "commit purge")?;
        Ok(deleted as u64)
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

fn check_incident(inc: &NewIncident) -> Result<()> {
    if !matches!(inc.verdict.as_str(), "flag" | "block") {
        return Err(Error::Usage(format!(
            "incident verdict {:?} is not flag or block",
            inc.verdict
        )));
    }
    if !matches!(inc.mode.as_str(), "monitor" | "enforce") {
        return Err(Error::Usage(format!(
            "incident mode {:?} is not monitor or enforce",
            inc.mode
        )));
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The values of an incident row, in [`LOG_COLUMNS`] order.
fn incident_values(id: i64, inc: &NewIncident) -> Vec<Value> {
    let text = |s: &str| Value::Text(s.to_string());
    let opt = |s: &Option<String>| s.as_deref().map_or(Value::Null, text);
    vec![
        Value::Integer(id),
        text("incident"),
        Value::Integer(inc.ts),
        text(&inc.client_ip),
        opt(&inc.client_mac),
        opt(&inc.device),
        opt(&inc.label),
        opt(&inc.group),
        text(&inc.service),
        text(&inc.service_name),
        opt(&inc.category),
        opt(&inc.tier),
        text(&inc.verdict),
        text(&inc.mode),
        text(&inc.how),
        text(&inc.host),
        text(&inc.rule),
        Value::Null,
        Value::Null,
        Value::Null,
    ]
}

/// The values of an ack row, in [`LOG_COLUMNS`] order.
fn ack_values(id: i64, incident_id: i64, ts: i64, by: &str, note: &str) -> Vec<Value> {
    let mut row = vec![
        Value::Integer(id),
        Value::Text("ack".into()),
        Value::Integer(ts),
    ];
    row.resize(LOG_COLUMNS.len() - 3, Value::Null);
    row.extend([
        Value::Integer(incident_id),
        Value::Text(by.into()),
        Value::Text(note.into()),
    ]);
    row
}

/// The next id and the hash it chains to: after the newest row, else after the anchor, else
/// the start.
fn chain_head(conn: &Connection) -> rusqlite::Result<(i64, [u8; 32])> {
    let last = conn
        .query_row(
            "SELECT id, hash FROM log ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, [u8; 32]>(1)?)),
        )
        .optional()?;
    Ok(match last.or(read_anchor(conn)?) {
        Some((id, hash)) => (id + 1, hash),
        None => (1, GENESIS),
    })
}

fn read_anchor(conn: &Connection) -> rusqlite::Result<Option<(i64, [u8; 32])>> {
    conn.query_row("SELECT last_id, last_hash FROM anchor", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .optional()
}

/// Inserts one log row chained to `prev` and returns its hash.
fn insert_log(conn: &Connection, row: &[Value], prev: &[u8; 32]) -> rusqlite::Result<[u8; 32]> {
    let hash = row_hash(prev, row.iter().map(ValueRef::from));
    let sql = format!(
        "INSERT INTO log ({}, prev_hash, hash) VALUES ({})",
        LOG_COLUMNS.join(", "),
        (1..=LOG_COLUMNS.len() + 2)
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut st = conn.prepare_cached(&sql)?;
    let mut args: Vec<&dyn ToSql> = row.iter().map(|v| v as &dyn ToSql).collect();
    args.push(prev);
    args.push(&hash);
    st.execute(args.as_slice())?;
    Ok(hash)
}

/// SHA-256 of `prev` and the canonical encoding of a row (see the module docs).
fn row_hash<'a>(prev: &[u8; 32], values: impl Iterator<Item = ValueRef<'a>>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    for v in values {
        match v {
            ValueRef::Null => h.update([0]),
            ValueRef::Integer(i) => {
                h.update([1]);
                h.update(i.to_be_bytes());
            }
            ValueRef::Text(t) => {
                h.update([2]);
                h.update((t.len() as u64).to_be_bytes());
                h.update(t);
            }
            ValueRef::Blob(b) => {
                h.update([3]);
                h.update((b.len() as u64).to_be_bytes());
                h.update(b);
            }
            ValueRef::Real(f) => {
                h.update([4]);
                h.update(f.to_bits().to_be_bytes());
            }
        }
    }
    h.finalize().into()
}

/// Adds a host or `how` to an incident's sets, up to [`MAX_SEEN_PER_INCIDENT`] of each.
fn add_seen(conn: &Connection, id: i64, what: &str, value: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO activity_seen (incident_id, what, value)
         SELECT ?1, ?2, ?3
         WHERE (SELECT count(*) FROM activity_seen WHERE incident_id = ?1 AND what = ?2) < ?4",
    )?
    .execute(params![id, what, value, MAX_SEEN_PER_INCIDENT])?;
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

fn read_incident(conn: &Connection, id: i64) -> rusqlite::Result<Option<IncidentRow>> {
    let row = conn
        .prepare_cached(
            "SELECT l.ts, l.client_ip, l.client_mac, l.device, l.label, l.client_group,
                    l.service, l.service_name, l.category, l.tier, l.verdict, l.mode, l.how,
                    l.host, l.rule, a.last_seen, a.count
             FROM log l LEFT JOIN activity a ON a.incident_id = l.id
             WHERE l.id = ?1 AND l.kind = 'incident'",
        )?
        .query_row([id], |r| {
            let incident = NewIncident {
                ts: r.get(0)?,
                client_ip: r.get(1)?,
                client_mac: r.get(2)?,
                device: r.get(3)?,
                label: r.get(4)?,
                group: r.get(5)?,
                service: r.get(6)?,
                service_name: r.get(7)?,
                category: r.get(8)?,
                tier: r.get(9)?,
                verdict: r.get(10)?,
                mode: r.get(11)?,
                how: r.get(12)?,
                host: r.get(13)?,
                rule: r.get(14)?,
            };
            let last_seen = r.get::<_, Option<i64>>(15)?.unwrap_or(incident.ts);
            let count = unclamp(r.get::<_, Option<i64>>(16)?.unwrap_or(1));
            Ok((incident, last_seen, count))
        })
        .optional()?;
    let Some((incident, last_seen, count)) = row else {
        return Ok(None);
    };
    let mut hosts = Vec::new();
    let mut hows = Vec::new();
    let mut st = conn.prepare_cached(
        "SELECT what, value FROM activity_seen WHERE incident_id = ?1 ORDER BY what, value",
    )?;
    let mut rows = st.query([id])?;
    while let Some(r) = rows.next()? {
        let value: String = r.get(1)?;
        match r.get_ref(0)?.as_str()? {
            "host" => hosts.push(value),
            _ => hows.push(value),
        }
    }
    let acks = conn
        .prepare_cached(
            "SELECT id, ts, ack_by, ack_note FROM log
             WHERE kind = 'ack' AND incident_id = ?1 ORDER BY id",
        )?
        .query_map([id], |r| {
            Ok(AckRow {
                id: r.get(0)?,
                incident_id: id,
                ts: r.get(1)?,
                by: r.get(2)?,
                note: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(IncidentRow {
        id,
        incident,
        last_seen,
        count,
        hosts,
        hows,
        acks,
    }))
}

/// The last id retention may purge at `cutoff`: the end of the prefix of rows older than the
/// cutoff, pulled back before any incident in it whose ack lies beyond it.
fn purge_end(conn: &Connection, cutoff: i64) -> rusqlite::Result<Option<i64>> {
    let first_kept: Option<i64> =
        conn.query_row("SELECT min(id) FROM log WHERE ts >= ?1", [cutoff], |r| {
            r.get(0)
        })?;
    let mut last: Option<i64> = match first_kept {
        Some(id) => Some(id - 1),
        None => conn.query_row("SELECT max(id) FROM log", [], |r| r.get(0))?,
    };
    if let Some(l) = last {
        let acked_later: Option<i64> = conn.query_row(
            "SELECT min(incident_id) FROM log WHERE kind = 'ack' AND id > ?1 AND incident_id <= ?1",
            [l],
            |r| r.get(0),
        )?;
        if let Some(inc) = acked_later {
            last = Some(inc - 1);
        }
    }
    Ok(last.filter(|&l| l > 0))
}

/// Walks the chain from the anchor (or the start) up to `upto` (or the end).
fn check_chain(conn: &Connection, upto: Option<i64>) -> rusqlite::Result<VerifyReport> {
    let anchor = read_anchor(conn)?;
    let (mut expect, mut prev) = match anchor {
        Some((id, hash)) => (id + 1, hash),
        None => (1, GENESIS),
    };
    let mut prev_name = match anchor {
        Some((id, _)) => format!("the retention anchor's hash (row {id})"),
        None => "the chain's start (32 zero bytes)".to_string(),
    };
    let sql = format!(
        "SELECT {}, prev_hash, hash FROM log WHERE id <= ?1 ORDER BY id",
        LOG_COLUMNS.join(", ")
    );
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query([upto.unwrap_or(i64::MAX)])?;
    let n = LOG_COLUMNS.len();
    let mut report = VerifyReport {
        rows: 0,
        anchor: anchor.map(|(id, _)| id),
        first_broken: None,
    };
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let broken = |reason: String| Some(Broken { id, reason });
        if id < expect {
            report.first_broken = broken(format!(
                "row is at or before the retention anchor (row {}): purge undone or anchor edited?",
                expect - 1
            ));
            break;
        }
        if id > expect {
            let missing = if id == expect + 1 {
                expect.to_string()
            } else {
                format!("{expect} to {}", id - 1)
            };
            report.first_broken =
                broken(format!("ids not consecutive: {missing} missing (deleted?)"));
            break;
        }
        let stored_prev = r.get_ref(n)?;
        if stored_prev.as_blob().ok() != Some(prev.as_slice()) {
            report.first_broken = broken(format!(
                "prev_hash does not match {prev_name} (row deleted or reordered?)"
            ));
            break;
        }
        let values = (0..n)
            .map(|i| r.get_ref(i))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let computed = row_hash(&prev, values.into_iter());
        let stored: Option<[u8; 32]> = r
            .get_ref(n + 1)?
            .as_blob()
            .ok()
            .and_then(|b| b.try_into().ok());
        if stored != Some(computed) {
            report.first_broken =
                broken("hash does not match the row's contents (edited?)".to_string());
            break;
        }
        prev = computed;
        prev_name = format!("row {id}'s hash");
        expect = id + 1;
        report.rows += 1;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn incident(ts_s: i64, ip: &str, service: &str) -> NewIncident {
        NewIncident {
            ts: ts_s * S,
            client_ip: ip.into(),
            client_mac: ip
                .rsplit('.')
                .next()
                .map(|last| format!("AA:BB:CC:00:00:{last:0>2}")),
            device: Some(format!("host-{ip}")),
            label: None,
            group: Some("staff".into()),
            service: service.into(),
            service_name: format!("{service} name"),
            category: Some("chat".into()),
            tier: Some("consumer".into()),
            verdict: "flag".into(),
            mode: "monitor".into(),
            how: "tls".into(),
            host: format!("{service}.example"),
            rule: format!("catalog/test.toml:{service}"),
        }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("incidents.db")).expect("open");
        (dir, store)
    }

    /// A store with incidents 1..=n at ts 1..=n seconds.
    fn filled(n: i64) -> (tempfile::TempDir, Store) {
        let (dir, mut store) = store();
        let incs: Vec<_> = (1..=n)
            .map(|i| incident(i, "10.0.0.5", "chatgpt"))
            .collect();
        store.append_incidents(&incs).expect("append");
        (dir, store)
    }

    /// What someone with the sqlite3 shell would do: the triggers go first.
    fn tamper(store: &Store, sql: &str) {
        store
            .conn
            .execute_batch(&format!(
                "PRAGMA foreign_keys = OFF;
                 DROP TRIGGER IF EXISTS log_no_update;
                 DROP TRIGGER IF EXISTS log_no_delete;
                 {sql};
                 PRAGMA foreign_keys = ON;"
            ))
            .expect("tamper");
    }

    fn broken(store: &Store) -> Broken {
        store
            .verify()
            .expect("verify")
            .first_broken
            .expect("a broken row")
    }

    #[test]
    fn chain_verifies_after_appends_and_acks() {
        let (_dir, mut store) = store();
        assert_eq!(
            store.verify().expect("verify"),
            VerifyReport {
                rows: 0,
                anchor: None,
                first_broken: None
            }
        );
        assert_eq!(store.head().expect("head"), None);
        let a = store
            .append_incidents(&[
                incident(1, "10.0.0.5", "chatgpt"),
                incident(2, "10.0.0.6", "claude"),
            ])
            .expect("append");
        assert_eq!(a, vec![1, 2]);
        assert_eq!(
            store
                .ack(1, 3 * S, "Dr. Ada", "trained on the policy")
                .expect("ack"),
            3
        );
        let b = store
            .append_incidents(&[incident(4, "10.0.0.7", "gemini")])
            .expect("append");
        assert_eq!(b, vec![4]);
        assert_eq!(store.ack(1, 5 * S, "Dr. Ada", "again").expect("ack"), 5);
        let report = store.verify().expect("verify");
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.rows, 5);
        let head = store.head().expect("head").expect("a head");
        assert_eq!(head.id, 5);
        assert_eq!(head.hash.len(), 64);

        let inc = store.get(1).expect("get").expect("incident 1");
        assert_eq!(inc.incident, incident(1, "10.0.0.5", "chatgpt"));
        assert_eq!(inc.acks.len(), 2);
        assert_eq!(inc.acks[0].by, "Dr. Ada");
        assert_eq!(inc.acks[1].note, "again");
        assert_eq!(store.get(3).expect("get"), None, "3 is an ack");
        assert_eq!(store.get(99).expect("get"), None);
    }

    #[test]
    fn reopened_store_keeps_chaining() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("incidents.db");
        let mut store = Store::open(&path).expect("open");
        store
            .append_incidents(&[incident(1, "10.0.0.5", "chatgpt")])
            .expect("append");
        drop(store);
        let mut store = Store::open(&path).expect("reopen");
        assert_eq!(
            store
                .append_incidents(&[incident(2, "10.0.0.5", "chatgpt")])
                .expect("append"),
            vec![2]
        );
        assert!(store.verify().expect("verify").is_intact());
        let ro = Store::open_read_only(&path).expect("read only");
        assert_eq!(ro.verify().expect("verify").rows, 2);
        assert_eq!(ro.list(&ListFilter::default()).expect("list").len(), 2);
        let mut ro = ro;
        assert!(matches!(
            ro.append_incidents(&[incident(3, "10.0.0.5", "chatgpt")]),
            Err(Error::Store { .. })
        ));
    }

    #[test]
    fn log_refuses_plain_update_and_delete() {
        let (_dir, store) = filled(3);
        let update = store
            .conn
            .execute("UPDATE log SET host = 'x' WHERE id = 2", []);
        assert!(format!("{update:?}").contains("append-only"), "{update:?}");
        let delete = store.conn.execute("DELETE FROM log WHERE id = 3", []);
        assert!(format!("{delete:?}").contains("append-only"), "{delete:?}");
        assert!(store.verify().expect("verify").is_intact());
    }

    #[test]
    fn edited_field_names_the_row() {
        let (_dir, store) = filled(5);
        tamper(&store, "UPDATE log SET host = 'x' WHERE id = 3");
        let b = broken(&store);
        assert_eq!(b.id, 3);
        assert_eq!(b.reason, "hash does not match the row's contents (edited?)");
        assert_eq!(store.verify().expect("verify").rows, 2);
    }

    #[test]
    fn null_and_empty_text_hash_apart() {
        let (_dir, store) = filled(3);
        tamper(&store, "UPDATE log SET label = '' WHERE id = 2");
        assert_eq!(broken(&store).id, 2);
        let h = |v: &[Value]| row_hash(&GENESIS, v.iter().map(ValueRef::from));
        let t = |s: &str| Value::Text(s.into());
        assert_ne!(h(&[t("ab"), t("c")]), h(&[t("a"), t("bc")]));
        assert_ne!(h(&[Value::Null]), h(&[t("")]));
        assert_ne!(h(&[Value::Integer(1)]), h(&[t("1")]));
    }

    #[test]
    fn deleted_middle_row_names_the_gap() {
        let (_dir, store) = filled(5);
        tamper(&store, "DELETE FROM log WHERE id = 3");
        let b = broken(&store);
        assert_eq!(b.id, 4);
        assert_eq!(b.reason, "ids not consecutive: 3 missing (deleted?)");

        let (_dir, store) = filled(6);
        tamper(&store, "DELETE FROM log WHERE id IN (2, 3, 4)");
        assert_eq!(
            broken(&store),
            Broken {
                id: 5,
                reason: "ids not consecutive: 2 to 4 missing (deleted?)".into()
            }
        );

        let (_dir, store) = filled(3);
        tamper(&store, "DELETE FROM log WHERE id = 1");
        assert_eq!(broken(&store).id, 2);
    }

    #[test]
    fn deleted_and_renumbered_rows_break_the_link() {
        let (_dir, store) = filled(5);
        tamper(
            &store,
            "DELETE FROM log WHERE id = 3; UPDATE log SET id = id - 1 WHERE id > 3",
        );
        assert_eq!(
            broken(&store),
            Broken {
                id: 3,
                reason: "prev_hash does not match row 2's hash (row deleted or reordered?)".into()
            }
        );
    }

    #[test]
    fn swapped_hashes_are_caught() {
        let (_dir, store) = filled(5);
        tamper(
            &store,
            "UPDATE log SET hash = CASE id WHEN 2 THEN (SELECT hash FROM log WHERE id = 3)
                                          ELSE (SELECT hash FROM log WHERE id = 2) END
             WHERE id IN (2, 3)",
        );
        let b = broken(&store);
        assert_eq!(b.id, 2);
        assert!(b.reason.contains("edited?"), "{b:?}");
    }

    #[test]
    fn purge_keeps_verify_passing_and_catches_later_edits() {
        let (_dir, mut store) = filled(10);
        store
            .touch_incident(4, 9 * S, 3, "api.chatgpt.example", "quic")
            .expect("touch");
        assert_eq!(store.purge_before(6 * S).expect("purge"), 5);
        let report = store.verify().expect("verify");
        assert_eq!(
            report,
            VerifyReport {
                rows: 5,
                anchor: Some(5),
                first_broken: None
            }
        );
        assert_eq!(store.get(4).expect("get"), None);
        let left: i64 = store
            .conn
            .query_row(
                "SELECT count(*) FROM activity_seen WHERE incident_id <= 5",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(left, 0);
        assert_eq!(store.list(&ListFilter::default()).expect("list").len(), 5);
        // Purging again changes nothing; appending goes on from the chain.
        assert_eq!(store.purge_before(6 * S).expect("purge"), 0);
        assert_eq!(
            store
                .append_incidents(&[incident(20, "10.0.0.9", "claude")])
                .expect("append"),
            vec![11]
        );
        assert_eq!(store.verify().expect("verify").rows, 6);

        tamper(&store, "UPDATE log SET rule = 'x' WHERE id = 7");
        assert_eq!(broken(&store).id, 7);
    }

    #[test]
    fn purge_keeps_acks_with_their_incidents() {
        // Incident 2's ack (row 11) is newer than the cutoff and stays, so incident 2 stays
        // too: the prefix stops before it.
        let (_dir, mut store) = filled(10);
        store.ack(2, 7 * S, "Dr. Ada", "trained").expect("ack");
        assert_eq!(store.purge_before(6 * S).expect("purge"), 1);
        assert_eq!(store.verify().expect("verify").anchor, Some(1));
        let kept = store.get(2).expect("get").expect("incident 2");
        assert_eq!(kept.acks.len(), 1);

        // An ack inside the prefix goes with it.
        let (_dir, mut store) = filled(3);
        store.ack(2, 3 * S, "Dr. Ada", "trained").expect("ack"); // row 4
        store
            .append_incidents(&[incident(9, "10.0.0.5", "chatgpt")])
            .expect("append"); // row 5
        assert_eq!(store.purge_before(5 * S).expect("purge"), 4);
        let report = store.verify().expect("verify");
        assert_eq!((report.rows, report.anchor), (1, Some(4)));
        assert!(report.is_intact());

        // Everything older: the log empties, the anchor holds the chain's end.
        let (_dir, mut store) = filled(10);
        store.ack(3, 4 * S, "Dr. Ada", "trained").expect("ack");
        assert_eq!(store.purge_before(11 * S).expect("purge"), 11);
        let report = store.verify().expect("verify");
        assert_eq!((report.rows, report.anchor), (0, Some(11)));
        assert_eq!(
            store
                .append_incidents(&[incident(12, "10.0.0.5", "chatgpt")])
                .expect("append"),
            vec![12]
        );
        assert!(store.verify().expect("verify").is_intact());
    }

    #[test]
    fn purge_anchor_still_catches_deletes_and_resurrections() {
        let (_dir, mut store) = filled(10);
        store.purge_before(6 * S).expect("purge");
        tamper(&store, "DELETE FROM log WHERE id = 6");
        assert_eq!(
            broken(&store),
            Broken {
                id: 7,
                reason: "ids not consecutive: 6 missing (deleted?)".into()
            }
        );

        let (_dir, mut store) = filled(10);
        store.purge_before(6 * S).expect("purge");
        tamper(&store, "UPDATE anchor SET last_id = 6");
        assert_eq!(broken(&store).id, 6);
        tamper(&store, "UPDATE anchor SET last_id = 4");
        let b = broken(&store);
        assert_eq!(b.id, 6);
        assert!(b.reason.contains("ids not consecutive: 5 missing"), "{b:?}");
    }

    #[test]
    fn purge_refuses_to_erase_a_broken_chain() {
        let (_dir, mut store) = filled(10);
        tamper(&store, "UPDATE log SET client_ip = '10.9.9.9' WHERE id = 2");
        let err = store.purge_before(6 * S).expect_err("purge of edited rows");
        assert!(err.to_string().contains("purge refused: row 2"), "{err}");
        assert_eq!(broken(&store).id, 2);

        // The newest row the purge would take is gone: nothing after it shows the gap yet.
        let (_dir, mut store) = filled(10);
        tamper(&store, "DELETE FROM log WHERE id = 5");
        let err = store.purge_before(6 * S).expect_err("purge over a gap");
        assert!(
            err.to_string().contains("rows 1 to 5 are not all there"),
            "{err}"
        );
        assert_eq!(broken(&store).id, 6);
    }

    #[test]
    fn purge_drops_old_usage_days() {
        let (_dir, mut store) = store();
        store
            .add_usage("1970-01-01", "chatgpt", "flag", 1)
            .expect("usage");
        store
            .add_usage("1970-01-02", "chatgpt", "flag", 1)
            .expect("usage");
        store
            .add_usage("1970-01-03", "chatgpt", "flag", 1)
            .expect("usage");
        // The cutoff is 1970-01-02 12:00: that day is kept whole.
        store.purge_before(36 * 3600 * S).expect("purge");
        let days: Vec<_> = store
            .usage("1970-01-01", "1970-12-31")
            .expect("usage")
            .into_iter()
            .map(|u| u.day)
            .collect();
        assert_eq!(days, ["1970-01-02", "1970-01-03"]);
    }

    #[test]
    fn list_filters() {
        let (_dir, mut store) = store();
        let mut a = incident(10, "10.0.0.5", "chatgpt");
        a.label = Some("Front Desk".into());
        let b = incident(20, "10.0.0.6", "claude");
        let mut c = incident(30, "10.0.0.5", "claude");
        c.label = Some("Front Desk".into());
        c.verdict = "block".into();
        c.mode = "enforce".into();
        store.append_incidents(&[a, b, c]).expect("append");
        store.ack(2, 40 * S, "Dr. Ada", "trained").expect("ack");

        let ids = |f: ListFilter| -> Vec<i64> {
            store.list(&f).expect("list").iter().map(|r| r.id).collect()
        };
        assert_eq!(ids(ListFilter::default()), [3, 2, 1], "newest first");
        let since = ListFilter {
            since: Some(20 * S),
            ..Default::default()
        };
        assert_eq!(ids(since), [3, 2]);
        let until = ListFilter {
            until: Some(20 * S),
            ..Default::default()
        };
        assert_eq!(ids(until), [1]);
        let window = ListFilter {
            since: Some(15 * S),
            until: Some(25 * S),
            ..Default::default()
        };
        assert_eq!(ids(window), [2]);
        for device in [
            "front desk",
            "10.0.0.5",
            "HOST-10.0.0.5",
            "aa:bb:cc:00:00:05",
        ] {
            let f = ListFilter {
                device: Some(device.into()),
                ..Default::default()
            };
            assert_eq!(ids(f), [3, 1], "device {device}");
        }
        let service = ListFilter {
            service: Some("claude".into()),
            ..Default::default()
        };
        assert_eq!(ids(service), [3, 2]);
        let unacked = ListFilter {
            unacked_only: true,
            ..Default::default()
        };
        assert_eq!(ids(unacked), [3, 1]);
        let limit = ListFilter {
            limit: Some(2),
            ..Default::default()
        };
        assert_eq!(ids(limit), [3, 2]);
        let none = ListFilter {
            device: Some("10.0.0.99".into()),
            ..Default::default()
        };
        assert!(ids(none).is_empty());
        let listed = store.list(&ListFilter::default()).expect("list");
        assert_eq!(listed[1].acks.len(), 1);
        assert_eq!(listed[1].acks[0].incident_id, 2);
    }

    #[test]
    fn touch_updates_activity_only() {
        let (_dir, mut store) = filled(2);
        let fresh = store.get(1).expect("get").expect("incident");
        assert_eq!((fresh.last_seen, fresh.count), (S, 1));
        assert_eq!(fresh.hosts, ["chatgpt.example"]);
        assert_eq!(fresh.hows, ["tls"]);
        store
            .touch_batch(&[
                Touch {
                    id: 1,
                    last_seen: 50 * S,
                    count_delta: 4,
                    host: "cdn.chatgpt.example".into(),
                    how: "tls,unresolved".into(),
                },
                Touch {
                    id: 1,
                    last_seen: 40 * S,
                    count_delta: 1,
                    host: "chatgpt.example".into(),
                    how: "quic".into(),
                },
            ])
            .expect("touch");
        let row = store.get(1).expect("get").expect("incident");
        assert_eq!(
            (row.last_seen, row.count),
            (50 * S, 6),
            "last_seen never goes back"
        );
        assert_eq!(row.hosts, ["cdn.chatgpt.example", "chatgpt.example"]);
        assert_eq!(row.hows, ["quic", "tls", "tls,unresolved"]);
        assert!(store.verify().expect("verify").is_intact());

        for i in 0..MAX_SEEN_PER_INCIDENT + 10 {
            store
                .touch_incident(2, 3 * S, 1, &format!("r{i}.chatgpt.example"), "dns")
                .expect("touch");
        }
        let row = store.get(2).expect("get").expect("incident");
        assert_eq!(row.hosts.len() as i64, MAX_SEEN_PER_INCIDENT);
        assert_eq!(row.count, 1 + MAX_SEEN_PER_INCIDENT as u64 + 10);
    }

    #[test]
    fn missing_incidents_are_refused() {
        let (_dir, mut store) = filled(1);
        assert!(matches!(
            store.ack(7, S, "Dr. Ada", "trained"),
            Err(Error::NoSuchIncident(7))
        ));
        let ack = store.ack(1, S, "Dr. Ada", "trained").expect("ack");
        assert!(matches!(
            store.ack(ack, S, "Dr. Ada", "an ack is not an incident"),
            Err(Error::NoSuchIncident(_))
        ));
        assert!(matches!(
            store.touch_incident(9, S, 1, "x.example", "dns"),
            Err(Error::NoSuchIncident(9))
        ));
        assert_eq!(store.verify().expect("verify").rows, 2);
    }

    #[test]
    fn bad_incident_values_are_refused() {
        let (_dir, mut store) = store();
        let mut inc = incident(1, "10.0.0.5", "chatgpt");
        inc.verdict = "allow".into();
        assert!(matches!(
            store.append_incidents(&[inc]),
            Err(Error::Usage(_))
        ));
        let mut inc = incident(1, "10.0.0.5", "chatgpt");
        inc.mode = "audit".into();
        assert!(matches!(
            store.append_incidents(&[inc]),
            Err(Error::Usage(_))
        ));
        assert_eq!(store.head().expect("head"), None);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("incidents.db");
        let store = Store::open(&path).expect("open");
        store
            .conn
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("bump version");
        drop(store);
        for result in [Store::open(&path), Store::open_read_only(&path)] {
            match result {
                Err(Error::StoreVersion {
                    found, supported, ..
                }) => {
                    assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
                }
                other => panic!("expected StoreVersion, got {other:?}"),
            }
        }
    }

    #[test]
    fn foreign_sqlite_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("other.db");
        Connection::open(&path)
            .and_then(|c| c.execute_batch("CREATE TABLE t (x)"))
            .expect("other db");
        let err = Store::open(&path).expect_err("not a store");
        assert!(err.to_string().contains("not an aiwarden store"), "{err}");
        let missing = Store::open_read_only(&dir.path().join("missing.db"));
        assert!(matches!(missing, Err(Error::Store { .. })));
    }

    #[test]
    fn usage_upserts_add_up() {
        let (_dir, mut store) = store();
        store
            .add_usage("2025-03-01", "chatgpt", "flag", 2)
            .expect("usage");
        store
            .add_usage("2025-03-01", "chatgpt", "flag", 3)
            .expect("usage");
        store
            .add_usage_batch(&[
                (
                    "2025-03-01".into(),
                    "copilot-m365".into(),
                    "allow".into(),
                    40,
                ),
                ("2025-03-01".into(), "chatgpt".into(), "block".into(), 1),
                ("2025-03-02".into(), "chatgpt".into(), "flag".into(), 7),
                ("2025-03-02".into(), "chatgpt".into(), "flag".into(), 1),
                ("2025-04-01".into(), "chatgpt".into(), "flag".into(), 1),
            ])
            .expect("batch");
        let rows = store.usage("2025-03-01", "2025-03-31").expect("usage");
        let got: Vec<_> = rows
            .iter()
            .map(|u| {
                (
                    u.day.as_str(),
                    u.service.as_str(),
                    u.verdict.as_str(),
                    u.count,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("2025-03-01", "chatgpt", "block", 1),
                ("2025-03-01", "chatgpt", "flag", 5),
                ("2025-03-01", "copilot-m365", "allow", 40),
                ("2025-03-02", "chatgpt", "flag", 8),
            ]
        );
        for bad in ["2025-3-01", "2025-13-01", "yesterday", "2025-03-01T00"] {
            assert!(
                matches!(
                    store.add_usage(bad, "chatgpt", "flag", 1),
                    Err(Error::Usage(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn incident_rows_serialize_flat() {
        let (_dir, mut store) = filled(1);
        store.ack(1, 2 * S, "Dr. Ada", "trained").expect("ack");
        let row = store.get(1).expect("get").expect("incident");
        let json = serde_json::to_value(&row).expect("json");
        for key in [
            "id",
            "ts",
            "client_ip",
            "client_mac",
            "device",
            "label",
            "group",
            "service",
            "service_name",
            "category",
            "tier",
            "verdict",
            "mode",
            "how",
            "host",
            "rule",
            "last_seen",
            "count",
            "hosts",
            "hows",
            "acks",
        ] {
            assert!(json.get(key).is_some(), "{key} missing from {json}");
        }
        assert_eq!(json["acks"][0]["by"], "Dr. Ada");
    }
}
