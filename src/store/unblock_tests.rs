//! The store's unblock rows: chained and verified like every row, read back as the
//! exceptions in force, refused when malformed, and a version 2 store migrated to version 3
//! with every hash unchanged.

use super::tests::{filled, incident, store, tamper, S};
use super::*;
use crate::policy::pattern::Pattern;
use crate::policy::unblock::{Device, Unblocks};

fn device(s: &str) -> Device {
    Device::parse(s).expect("device")
}

fn pattern(s: &str) -> Pattern {
    Pattern::parse(s).expect("pattern")
}

#[test]
fn unblocks_chain_and_read_back() {
    let (dir, mut store) = filled(2);
    let chatgpt = pattern("chatgpt.com");
    let a = store
        .unblock(
            10 * S,
            &device("52:54:00:AB:CD:EF"),
            Some(&chatgpt),
            "Dr. Ada",
            "pilot",
            3600 * S,
        )
        .expect("unblock");
    let b = store
        .unblock(
            11 * S,
            &device("10.0.0.9"),
            None,
            "IT",
            "vendor demo",
            20 * S,
        )
        .expect("unblock");
    let c = store
        .unblock(
            12 * S,
            &device("Front desk PC"),
            Some(&pattern("*.openai.azure.com")),
            "IT",
            "trial",
            3600 * S,
        )
        .expect("unblock");
    assert_eq!((a, b, c), (3, 4, 5));
    store.ack(1, 13 * S, "Dr. Ada", "trained").expect("ack");
    let report = store.verify().expect("verify");
    assert!(report.is_intact() && report.rows == 6, "{report:?}");

    let all = store.unblocks(0).expect("unblocks");
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].device, device("52:54:00:ab:cd:ef"));
    assert_eq!(
        all[0].host.as_ref().map(Pattern::display),
        Some("chatgpt.com".into())
    );
    assert_eq!(
        (all[0].by.as_str(), all[0].note.as_str()),
        ("Dr. Ada", "pilot")
    );
    assert_eq!((all[0].ts, all[0].until), (10 * S, 3600 * S));
    assert_eq!(all[1].host, None);
    assert_eq!(all[2].device, Device::Name("Front desk PC".into()));
    let active = store.active_unblocks(20 * S).expect("active");
    assert_eq!(
        active.iter().map(|u| u.id).collect::<Vec<_>>(),
        [3, 5],
        "4 ended at 20 s"
    );
    // The incidents are listed as before; unblocks are not incidents.
    assert_eq!(store.list(&ListFilter::default()).expect("list").len(), 2);
    assert_eq!(store.get(3).expect("get"), None);

    let ro = Store::open_read_only(&dir.path().join("incidents.db")).expect("read only");
    assert_eq!(ro.active_unblocks(20 * S).expect("active"), active);
    let table = Unblocks::new(active);
    assert_eq!(table.len(), 2);
    drop(store);
    // Reopened for writing: the tail matches, the chain goes on.
    let mut store = Store::open(&dir.path().join("incidents.db")).expect("reopen");
    store
        .unblock(30 * S, &device("10.0.0.9"), None, "IT", "again", 40 * S)
        .expect("unblock");
    assert!(store.verify().expect("verify").is_intact());
}

#[test]
fn a_tampered_unblock_row_is_named() {
    for sql in [
        "UPDATE log SET unblock_until = unblock_until + 86400000000 WHERE id = 2",
        "UPDATE log SET host = NULL WHERE id = 2",
        "UPDATE log SET ack_by = 'Someone else' WHERE id = 2",
        "UPDATE log SET client_mac = '52:54:00:00:00:02' WHERE id = 2",
    ] {
        let (_dir, mut store) = filled(1);
        store
            .unblock(
                2 * S,
                &device("52:54:00:00:00:01"),
                Some(&pattern("chatgpt.com")),
                "IT",
                "trial",
                3 * S,
            )
            .expect("unblock");
        store.ack(1, 4 * S, "IT", "trained").expect("ack");
        assert!(store.verify().expect("verify").is_intact());
        tamper(&store, sql);
        let report = store.verify().expect("verify");
        let b = report.first_broken.expect("broken");
        assert_eq!(b.id, 2, "{sql}: {b:?}");
        assert!(b.reason.contains("hash does not match"), "{sql}: {b:?}");
    }
    // The column set on another kind of row is named too (the CHECK is gone with the
    // table rebuilt by hand, but the walk looks).
    let (_dir, store) = filled(2);
    store
        .conn
        .execute_batch(
            "PRAGMA foreign_keys = OFF;
             CREATE TABLE copy AS SELECT * FROM log;
             DROP TABLE log;
             ALTER TABLE copy RENAME TO log;
             UPDATE log SET unblock_until = 5 WHERE id = 2;",
        )
        .expect("rebuild without the check");
    let b = store
        .verify()
        .expect("verify")
        .first_broken
        .expect("broken");
    assert_eq!(b.id, 2);
    assert!(b.reason.contains("unblock columns"), "{b:?}");
}

#[test]
fn malformed_unblocks_are_refused() {
    let (_dir, mut store) = store();
    let d = device("10.0.0.5");
    for (by, note, until) in [("", "why", 2 * S), ("IT", " ", 2 * S), ("IT", "why", S)] {
        match store.unblock(S, &d, None, by, note, until) {
            Err(e @ Error::Usage(_)) => assert_eq!(e.exit_code(), 2),
            other => panic!("expected a usage error, got {other:?}"),
        }
    }
    // The table refuses what the API cannot build: two devices, an unblock without an
    // end, an incident with an end.
    for sql in [
        "INSERT INTO log (id, kind, ts, client_ip, client_mac, ack_by, ack_note, unblock_until,
                          prev_hash, hash)
         VALUES (1, 'unblock', 1, '10.0.0.5', '52:54:00:00:00:01', 'a', 'b', 5,
                 zeroblob(32), zeroblob(32))",
        "INSERT INTO log (id, kind, ts, client_ip, ack_by, ack_note, prev_hash, hash)
         VALUES (1, 'unblock', 1, '10.0.0.5', 'a', 'b', zeroblob(32), zeroblob(32))",
        "INSERT INTO log (id, kind, ts, client_ip, service, service_name, verdict, mode, how,
                          host, rule, unblock_until, prev_hash, hash)
         VALUES (1, 'incident', 1, '10.0.0.5', 's', 'S', 'block', 'enforce', 'dns', 'h', 'r',
                 5, zeroblob(32), zeroblob(32))",
    ] {
        let err = store.conn.execute_batch(sql).expect_err(sql);
        assert!(err.to_string().contains("CHECK"), "{sql}: {err}");
    }
    assert!(store.unblocks(0).expect("unblocks").is_empty());
}

/// The `log` table of schema version 2, as that build created it.
const LOG_V2: &str = "
CREATE TABLE log_v2 (
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
    prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),
    hash BLOB NOT NULL CHECK (length(hash) = 32),
    CHECK (
        (kind = 'incident'
            AND client_ip IS NOT NULL AND service IS NOT NULL AND service_name IS NOT NULL
            AND verdict IN ('flag', 'block') AND mode IN ('monitor', 'enforce')
            AND how IS NOT NULL AND host IS NOT NULL AND rule IS NOT NULL
            AND incident_id IS NULL AND ack_by IS NULL AND ack_note IS NULL
            AND coalesce(break_reason, break_prev_id, break_prev_hash, break_file) IS NULL)
        OR
        (kind = 'ack'
            AND incident_id IS NOT NULL AND ack_by IS NOT NULL AND ack_note IS NOT NULL
            AND coalesce(client_ip, client_mac, device, label, client_group, service,
                         service_name, category, tier, verdict, mode, how, host, rule,
                         break_reason, break_prev_id, break_prev_hash, break_file) IS NULL)
        OR
        (kind = 'break'
            AND break_reason IS NOT NULL
            AND coalesce(client_ip, client_mac, device, label, client_group, service,
                         service_name, category, tier, verdict, mode, how, host, rule,
                         incident_id, ack_by, ack_note) IS NULL)
    )
) STRICT;
";

#[test]
fn a_version_2_store_is_migrated_keeping_every_hash() {
    let (dir, mut store) = store();
    let path = dir.path().join("incidents.db");
    store
        .append_incidents(&[
            incident(1, "10.0.0.5", "chatgpt"),
            incident(2, "10.0.0.6", "claude"),
        ])
        .expect("append");
    store.ack(2, 3 * S, "Dr. Ada", "trained").expect("ack");
    store
        .append_break(4 * S, "test", None, None)
        .expect("break");
    store
        .append_incidents(&[incident(5, "10.0.0.5", "gemini")])
        .expect("append");
    // Made a version 2 file: its log rebuilt without the unblock column.
    store
        .conn
        .execute_batch(&format!(
            "PRAGMA foreign_keys = OFF;
             BEGIN;
             {LOG_V2}
             INSERT INTO log_v2 SELECT id, kind, ts, client_ip, client_mac, device, label,
                 client_group, service, service_name, category, tier, verdict, mode, how,
                 host, rule, incident_id, ack_by, ack_note, break_reason, break_prev_id,
                 break_prev_hash, break_file, prev_hash, hash FROM log;
             DROP TABLE log;
             ALTER TABLE log_v2 RENAME TO log;
             DROP TABLE users;
             PRAGMA user_version = 2;
             COMMIT;"
        ))
        .expect("make a version 2 file");
    let before = store.head().expect("head");
    drop(store);

    let ro = Store::open_read_only(&path).expect("v2 reads");
    assert_eq!(ro.version, 2);
    let report = ro.verify().expect("verify");
    assert!(report.is_intact() && report.rows == 5, "{report:?}");
    assert!(ro.unblocks(0).expect("unblocks").is_empty());
    assert_eq!(ro.list(&ListFilter::default()).expect("list").len(), 3);
    drop(ro);
    check(&path, false).expect("check");

    let mut store = Store::open(&path).expect("migrates");
    let version: i32 = store
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(
        store.head().expect("head"),
        before,
        "ids and hashes unchanged"
    );
    let report = store.verify().expect("verify");
    assert!(report.is_intact() && report.rows == 5, "{report:?}");
    assert!(matches!(report.tail, Tail::Matches { ref head, .. } if head.id == 5));
    assert_eq!(report.breaks.len(), 1);
    store
        .unblock(6 * S, &device("10.0.0.5"), None, "IT", "trial", 7 * S)
        .expect("unblock rows now fit");
    store.ack(1, 8 * S, "Dr. Ada", "trained").expect("ack");
    assert!(store.verify().expect("verify").is_intact());
    let rows = store.list(&ListFilter::default()).expect("list");
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows.iter().find(|r| r.id == 2).map(|r| r.acks.len()),
        Some(1)
    );
    let triggers: i64 = store
        .conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'",
            [],
            |r| r.get(0),
        )
        .expect("triggers");
    assert_eq!(triggers, 2, "the guard triggers came back");
    assert!(
        store
            .conn
            .execute("DELETE FROM log WHERE id = 6", [])
            .is_err(),
        "still append-only"
    );
}
