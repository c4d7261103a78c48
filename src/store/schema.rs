//! The store's schema: the tables as this build creates them, the version check, and the
//! migrations of a version 1 file (before `break` rows), a version 2 file (before `unblock`
//! rows) and a version 3 file (before `event` rows and the `users` table) to version 4.

use std::path::Path;

use rusqlite::Connection;

use super::{store_error, Context};
use crate::error::StoreFault;
use crate::{Error, Result};

/// The schema this build reads and writes (`PRAGMA user_version`). Version 1 had no `break`
/// rows and no `spool` table, version 2 no `unblock` rows, version 3 no `event` rows and no
/// `users` table; each is migrated when opened for writing and read as it is.
pub const SCHEMA_VERSION: i32 = 4;

/// `PRAGMA application_id`: "AIWD", so `file(1)` and this module can tell the store from
/// another SQLite file.
pub(super) const APPLICATION_ID: i32 = 0x4149_5744;

/// The `log` table, named `name` (the migration builds it under another name first).
/// Incident, ack, break, unblock and event rows each have their own columns; the CHECK keeps
/// the others NULL, so no row can carry a value the hash of its kind does not cover. An
/// unblock names its device by exactly one of `client_ip`, `client_mac`, `device`, its host
/// pattern in `host` (NULL: every blocked host), who in `ack_by`, why in `ack_note`. An event
/// (a console or system action) has only `ts` and its own `event`, `actor`, `detail`.
fn log_table(name: &str) -> String {
    format!(
        "CREATE TABLE {name} (
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
    break_reason TEXT,
    break_prev_id INTEGER,
    break_prev_hash BLOB CHECK (break_prev_hash IS NULL OR length(break_prev_hash) = 32),
    break_file TEXT,
    unblock_until INTEGER,
    event TEXT,
    actor TEXT,
    detail TEXT,
    prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),
    hash BLOB NOT NULL CHECK (length(hash) = 32),
    CHECK (
        (kind = 'incident'
            AND client_ip IS NOT NULL AND service IS NOT NULL AND service_name IS NOT NULL
            AND verdict IN ('flag', 'block') AND mode IN ('monitor', 'enforce')
            AND how IS NOT NULL AND host IS NOT NULL AND rule IS NOT NULL
            AND incident_id IS NULL AND ack_by IS NULL AND ack_note IS NULL
            AND coalesce(break_reason, break_prev_id, break_prev_hash, break_file,
                         unblock_until, event, actor, detail) IS NULL)
        OR
        (kind = 'ack'
            AND incident_id IS NOT NULL AND ack_by IS NOT NULL AND ack_note IS NOT NULL
            AND coalesce(client_ip, client_mac, device, label, client_group, service,
                         service_name, category, tier, verdict, mode, how, host, rule,
                         break_reason, break_prev_id, break_prev_hash, break_file,
                         unblock_until, event, actor, detail) IS NULL)
        OR
        (kind = 'break'
            AND break_reason IS NOT NULL
            AND coalesce(client_ip, client_mac, device, label, client_group, service,
                         service_name, category, tier, verdict, mode, how, host, rule,
                         incident_id, ack_by, ack_note, unblock_until, event, actor,
                         detail) IS NULL)
        OR
        (kind = 'unblock'
            AND ack_by IS NOT NULL AND ack_note IS NOT NULL AND unblock_until IS NOT NULL
            AND (client_ip IS NOT NULL) + (client_mac IS NOT NULL) + (device IS NOT NULL) = 1
            AND coalesce(label, client_group, service, service_name, category, tier, verdict,
                         mode, how, rule, incident_id, break_reason, break_prev_id,
                         break_prev_hash, break_file, event, actor, detail) IS NULL)
        OR
        (kind = 'event'
            AND event IS NOT NULL AND actor IS NOT NULL AND detail IS NOT NULL
            AND coalesce(client_ip, client_mac, device, label, client_group, service,
                         service_name, category, tier, verdict, mode, how, host, rule,
                         incident_id, ack_by, ack_note, break_reason, break_prev_id,
                         break_prev_hash, break_file, unblock_until) IS NULL)
    )
) STRICT;"
    )
}

/// Indexes and triggers of `log`, created again after the migration rebuilds it.
/// `log_kind_ts` (with the rowid, so `(kind, ts, id)`) serves the console's keyset pages
/// and the event listing: a page of incidents newest first is a seek and a short walk.
const LOG_EXTRAS: &str = "
CREATE INDEX log_ts ON log(ts);
CREATE INDEX log_kind_ts ON log(kind, ts);
CREATE INDEX log_incident ON log(incident_id) WHERE incident_id IS NOT NULL;
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

/// Tables new in version 2.
const V2_TABLES: &str = "
CREATE TABLE spool (
    only INTEGER PRIMARY KEY CHECK (only = 1),
    file TEXT NOT NULL,
    seq INTEGER NOT NULL
) STRICT;
";

/// Tables new in version 4: the console's local accounts. Not chained (a password change
/// rewrites its row); every change also appends an `event` row, which is.
const V4_TABLES: &str = "
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'reviewer', 'admin')),
    password TEXT NOT NULL,
    created INTEGER NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
) STRICT;
";

/// Per incident, every host, `how` and MAC seen (the MAC when it was learned after the
/// incident was opened by address), named `name`.
fn activity_seen_table(name: &str) -> String {
    format!(
        "CREATE TABLE {name} (
    incident_id INTEGER NOT NULL REFERENCES activity(incident_id),
    what TEXT NOT NULL CHECK (what IN ('host', 'how', 'mac')),
    value TEXT NOT NULL,
    PRIMARY KEY (incident_id, what, value)
) STRICT, WITHOUT ROWID;"
    )
}

const OTHER_TABLES: &str = "
CREATE TABLE activity (
    incident_id INTEGER PRIMARY KEY REFERENCES log(id),
    last_seen INTEGER NOT NULL,
    count INTEGER NOT NULL CHECK (count >= 0)
) STRICT;


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
";

/// Creates every table of the current version in `conn` (inside the caller's transaction).
pub(super) fn create(path: &Path, conn: &Connection) -> Result<()> {
    conn.execute_batch(&format!(
        "{}\n{OTHER_TABLES}\n{}\n{LOG_EXTRAS}\n{V2_TABLES}\n{V4_TABLES}",
        log_table("log"),
        activity_seen_table("activity_seen")
    ))
    .ctx(path, "create schema")?;
    conn.pragma_update(None, "application_id", APPLICATION_ID)
        .ctx(path, "set application_id")?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
        .ctx(path, "set user_version")
}

/// Rebuilds an older `log` with this version's columns and CHECK (SQLite cannot change a
/// CHECK in place: this is the procedure of <https://www.sqlite.org/lang_altertable.html>,
/// section 7) and adds the tables the old version lacks: `spool` (version 1) and `users`.
/// Ids, hashes and every value stay as they were: the columns new since `from` are NULL on
/// every old row and are hashed only for the kinds that own them, so the chain and a head
/// file written before the migration still hold. Foreign keys must be off (outside any
/// transaction) while it runs; the caller commits.
pub(super) fn migrate(path: &Path, conn: &Connection, from: i32) -> Result<()> {
    let mut cols = String::from(
        "id, kind, ts, client_ip, client_mac, device, label, client_group, service, \
         service_name, category, tier, verdict, mode, how, host, rule, incident_id, ack_by, \
         ack_note",
    );
    if from >= 2 {
        cols.push_str(", break_reason, break_prev_id, break_prev_hash, break_file");
    }
    if from >= 3 {
        cols.push_str(", unblock_until");
    }
    cols.push_str(", prev_hash, hash");
    // Version 1's activity_seen is rebuilt with this version's CHECK, as it always was.
    let seen = if from < 2 {
        format!(
            "{}
             INSERT INTO activity_seen_new SELECT incident_id, what, value FROM activity_seen;
             DROP TABLE activity_seen;
             ALTER TABLE activity_seen_new RENAME TO activity_seen;
             {V2_TABLES}",
            activity_seen_table("activity_seen_new")
        )
    } else {
        String::new()
    };
    conn.execute_batch(&format!(
        "{}
         INSERT INTO log_new ({cols}) SELECT {cols} FROM log;
         DROP TABLE log;
         ALTER TABLE log_new RENAME TO log;
         {seen}
         {LOG_EXTRAS}
         {V4_TABLES}",
        log_table("log_new"),
    ))
    .ctx(path, &format!("migrate schema {from} to {SCHEMA_VERSION}"))?;
    check_foreign_keys(path, conn)?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
        .ctx(path, "set user_version")
}

/// After a migration: every foreign key still points at a row.
fn check_foreign_keys(path: &Path, conn: &Connection) -> Result<()> {
    let bad: Option<String> = conn
        .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
        .ctx(path, "check foreign keys after the migration")?;
    match bad {
        Some(table) => Err(store_error(
            path,
            StoreFault::Corrupt,
            format!("migration: a foreign key in {table} points nowhere"),
        )),
        None => Ok(()),
    }
}

/// The schema version of an aiwarden store, `None` for an empty file, an error for a newer
/// schema or a SQLite file that is something else.
pub(super) fn check_version(path: &Path, conn: &Connection) -> Result<Option<i32>> {
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
                StoreFault::Other,
                "not an aiwarden store (it has tables but no aiwarden schema)".into(),
            ));
        }
        return Ok(None);
    }
    if app != APPLICATION_ID {
        return Err(store_error(
            path,
            StoreFault::Other,
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
