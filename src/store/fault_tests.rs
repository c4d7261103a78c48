//! The store's tests for the tail and for faults: the head file (written, compared, keyed),
//! truncation and rewrites caught, break rows, the guard against a tail cut off under an
//! open store, a file deleted or overwritten while open, modes, the version 1 migration, and
//! `check`.

use std::os::unix::fs::PermissionsExt;

use super::chain::{incident_values, insert_log, GENESIS};
use super::files::sibling;
use super::head::{head_path, key_path, read_head, HeadFile, HeadRecord};
use super::tests::{filled, incident, store, tamper, S};
use super::*;

fn tail(store: &Store) -> Tail {
    store.verify().expect("verify").tail
}

fn broken_tail(store: &Store) -> (Option<i64>, String) {
    match tail(store) {
        Tail::Broken { id, reason } => (id, reason),
        other => panic!("expected a broken tail, got {other:?}"),
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn head_file_follows_every_commit() {
    let (dir, mut store) = filled(3);
    let head = head_path(&dir.path().join("incidents.db"));
    let HeadFile::Present(h) = read_head(&head) else {
        panic!("no head file")
    };
    let newest = store.head().expect("head").expect("rows");
    assert_eq!((h.id, chain::hex(&h.hash)), (3, newest.hash.clone()));
    assert_eq!((h.rows, h.anchor, h.mac), (3, 0, None));
    let text = std::fs::read_to_string(&head).expect("read");
    assert!(text.starts_with("aiwarden-head 1\nid 3\nhash "), "{text}");
    assert_eq!(HeadRecord::decode(&text).expect("parses"), h);

    store.ack(2, 4 * S, "Dr. Ada", "trained").expect("ack");
    assert!(matches!(tail(&store), Tail::Matches { ref head, keyed: false } if head.id == 4));
    store.purge_before(3 * S).expect("purge");
    let HeadFile::Present(h) = read_head(&head) else {
        panic!("no head file")
    };
    // Row 1 went; row 2 stays with its ack.
    assert_eq!(
        (h.id, h.rows, h.anchor),
        (4, 3, 1),
        "the purge rewrote the head"
    );
    assert!(store.verify().expect("verify").is_intact());
}

#[test]
fn every_file_is_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("incidents.db");
    // A store an older aiwarden left world-readable is made private on open.
    std::fs::write(&path, b"").expect("create");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut store = Store::open_with(&path, StoreOptions { keyed: true }).expect("open");
    store
        .append_incidents(&[incident(1, "10.0.0.5", "chatgpt")])
        .expect("append");
    for f in [
        path.clone(),
        sibling(&path, "-wal"),
        sibling(&path, "-shm"),
        head_path(&path),
        key_path(&path),
    ] {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}

#[test]
fn a_cut_off_tail_is_named_with_both_heads() {
    let (dir, store) = filled(10);
    let h10 = store.head().expect("head").expect("rows").hash;
    let h6 = store
        .conn
        .query_row("SELECT hash FROM log WHERE id = 6", [], |r| {
            r.get::<_, Vec<u8>>(0)
        })
        .expect("row 6");
    tamper(&store, "DELETE FROM log WHERE id > 6");
    // The chain alone still verifies: only the head file shows the cut.
    let report = store.verify().expect("verify");
    assert_eq!((report.rows, report.first_broken.as_ref()), (6, None));
    assert!(!report.is_intact());
    let (id, reason) = broken_tail(&store);
    assert_eq!(id, Some(7));
    assert!(
        reason.contains("rows 7 to 10 are missing from the end")
            && reason.contains(&format!("names row 10 (hash {}…)", &h10[..16]))
            && reason.contains(&format!("ends at row 6 (hash {}…)", &chain::hex(&h6[..8]))),
        "{reason}"
    );
    let err = report.into_result(store.path()).expect_err("broken");
    assert_eq!(err.exit_code(), 3);
    assert!(err.to_string().contains("chain broken at row 7"), "{err}");
    drop(store);
    // The daemon (and `incidents ack`) refuse to write to it: writing would bless the cut.
    match Store::open(&dir.path().join("incidents.db")) {
        Err(Error::Tampered { id: 7, .. }) => {}
        other => panic!("expected Tampered at 7, got {other:?}"),
    }
}

#[test]
fn a_rewritten_tail_shows_by_its_hash_and_without_the_key_by_its_mac() {
    // Unkeyed: the row the head file names holds another hash.
    let (_dir, store) = filled(5);
    tamper(&store, "UPDATE log SET hash = zeroblob(32) WHERE id = 5");
    let (id, reason) = broken_tail(&store);
    assert_eq!(id, Some(5));
    assert!(reason.contains("the tail was rewritten"), "{reason}");

    // Keyed: cutting the tail and writing a matching head file without the key shows.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("incidents.db");
    let mut store = Store::open_with(&path, StoreOptions { keyed: true }).expect("open");
    let incs: Vec<_> = (1..=5)
        .map(|i| incident(i, "10.0.0.5", "chatgpt"))
        .collect();
    store.append_incidents(&incs).expect("append");
    assert!(matches!(tail(&store), Tail::Matches { keyed: true, .. }));
    tamper(&store, "DELETE FROM log WHERE id > 3");
    let forged = head::current(&store.conn, "2026-01-01T00:00:00Z".into()).expect("head");
    std::fs::write(head_path(&path), forged.encode(None)).expect("forge");
    let (id, reason) = broken_tail(&store);
    assert_eq!(id, None);
    assert!(
        reason.contains("carries no MAC although the key"),
        "{reason}"
    );
    // Signed with another key: the MAC does not verify.
    let other = Key::create(&dir.path().join("other.key")).expect("key");
    std::fs::write(head_path(&path), forged.encode(Some(&other))).expect("forge");
    let (_, reason) = broken_tail(&store);
    assert!(reason.contains("does not verify"), "{reason}");
    // The key deleted too: a keyed head with no key.
    std::fs::remove_file(key_path(&path)).expect("rm key");
    let ro = Store::open_read_only(&path).expect("read only");
    let (_, reason) = broken_tail(&ro);
    assert!(reason.contains("is keyed but the key"), "{reason}");
    let err = ro
        .verify()
        .expect("verify")
        .into_result(&path)
        .expect_err("broken");
    assert!(
        matches!(err, Error::StoreHead { .. }) && err.exit_code() == 3,
        "{err}"
    );
}

#[test]
fn a_missing_head_file_fails_unless_nothing_was_written() {
    let (dir, store) = filled(2);
    let path = dir.path().join("incidents.db");
    std::fs::remove_file(head_path(&path)).expect("rm head");
    let (id, reason) = broken_tail(&store);
    assert_eq!(id, None);
    assert!(
        reason.contains("is missing, so rows cut off the end could not be seen"),
        "{reason}"
    );
    drop(store);
    assert!(matches!(Store::open(&path), Err(Error::StoreHead { .. })));

    // A store never written: its head file is rewritten, nothing is lost.
    let (dir, fresh) = super::tests::store();
    drop(fresh);
    let path = dir.path().join("incidents.db");
    std::fs::remove_file(head_path(&path)).expect("rm head");
    let store = Store::open(&path).expect("a fresh store opens");
    assert!(matches!(tail(&store), Tail::Matches { ref head, .. } if head.id == 0));
}

#[test]
fn a_head_behind_the_database_passes_and_is_brought_up_to_date() {
    let (dir, mut store) = filled(3);
    let path = dir.path().join("incidents.db");
    let old = std::fs::read(head_path(&path)).expect("head");
    store
        .append_incidents(&[incident(4, "10.0.0.5", "chatgpt")])
        .expect("append");
    // A crash between the commit and the head's write leaves the old head.
    std::fs::write(head_path(&path), &old).expect("restore");
    assert!(matches!(tail(&store), Tail::Behind { ref head, newer: 1, .. } if head.id == 3));
    assert!(store.verify().expect("verify").is_intact());
    drop(store);
    let store = Store::open(&path).expect("open");
    assert!(matches!(tail(&store), Tail::Matches { ref head, .. } if head.id == 4));
}

#[test]
fn an_anchor_moved_by_hand_shows() {
    let (_dir, mut store) = filled(10);
    store.purge_before(3 * S).expect("purge");
    // Rows 3 and 4 deleted behind a forged anchor: the chain from row 5 checks out.
    let h4: Vec<u8> = store
        .conn
        .query_row("SELECT hash FROM log WHERE id = 4", [], |r| r.get(0))
        .expect("row 4");
    tamper(&store, "DELETE FROM log WHERE id <= 4");
    store
        .conn
        .execute("UPDATE anchor SET last_id = 4, last_hash = ?1", [h4])
        .expect("forge anchor");
    let report = store.verify().expect("verify");
    assert_eq!(report.first_broken, None);
    let (id, reason) = broken_tail(&store);
    assert_eq!(id, Some(3));
    assert!(
        reason.contains("anchor is at row 4 but the head file says 2"),
        "{reason}"
    );
}

#[test]
fn the_open_store_refuses_a_tail_cut_under_it() {
    let (dir, mut store) = filled(5);
    // Another process (the sqlite3 shell) cuts the tail while the daemon has the store.
    let other = Connection::open(dir.path().join("incidents.db")).expect("open");
    other
        .execute_batch("DROP TRIGGER log_no_delete; DELETE FROM activity_seen WHERE incident_id > 3; DELETE FROM activity WHERE incident_id > 3; DELETE FROM log WHERE id > 3;")
        .expect("cut");
    drop(other);
    match store.append_incidents(&[incident(9, "10.0.0.5", "chatgpt")]) {
        Err(Error::Tampered { id: 4, reason, .. }) => {
            assert!(reason.contains("rows 4 to 5 were cut off"), "{reason}");
        }
        other => panic!("expected Tampered, got {other:?}"),
    }
    // Nothing was appended over the cut: the head file still names row 5.
    let HeadFile::Present(h) = read_head(&head_path(store.path())) else {
        panic!("no head")
    };
    assert_eq!(h.id, 5);
}

#[test]
fn break_rows_chain_and_say_where_the_chain_began() {
    let (_dir, mut store) = store();
    let prev = (68, [7u8; 32]);
    let id = store
        .append_break(
            5 * S,
            "corrupt: file is not a database",
            Some(prev),
            Some("incidents.db.corrupt-20260101T000000Z"),
        )
        .expect("break");
    assert_eq!(id, 1);
    store
        .append_incidents(&[incident(6, "10.0.0.5", "chatgpt")])
        .expect("append");
    let report = store.verify().expect("verify");
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.rows, 2);
    assert_eq!(
        report.breaks,
        vec![BreakRow {
            id: 1,
            ts: 5 * S,
            reason: "corrupt: file is not a database".into(),
            prev: Some(Head {
                id: 68,
                hash: chain::hex(&[7u8; 32])
            }),
            file: Some("incidents.db.corrupt-20260101T000000Z".into()),
        }]
    );
    // The break's own columns are chained...
    tamper(&store, "UPDATE log SET break_prev_id = 67 WHERE id = 1");
    assert_eq!(
        store.verify().expect("verify").first_broken.map(|b| b.id),
        Some(1)
    );
    // ...and no other row may carry them.
    let (_dir, store) = filled(2);
    tamper(
        &store,
        "PRAGMA ignore_check_constraints = ON; UPDATE log SET break_reason = 'x' WHERE id = 2",
    );
    let b = store
        .verify()
        .expect("verify")
        .first_broken
        .expect("broken");
    assert_eq!(
        (b.id, b.reason.as_str()),
        (2, "break columns set on a row that is not a break")
    );
    // The schema refuses a break row with incident fields.
    store
        .conn
        .execute_batch("PRAGMA ignore_check_constraints = OFF")
        .expect("checks on");
    let bad = store.conn.execute(
        "INSERT INTO log (id, kind, ts, host, break_reason, prev_hash, hash)
         VALUES (3, 'break', 1, 'x', 'why', zeroblob(32), zeroblob(32))",
        [],
    );
    assert!(
        format!("{bad:?}").contains("CHECK constraint failed"),
        "{bad:?}"
    );
}

#[test]
fn a_deleted_or_overwritten_file_is_noticed_before_the_next_write() {
    let (dir, mut store) = filled(1);
    let path = dir.path().join("incidents.db");
    assert!(store.check_file().is_ok());
    std::fs::remove_file(&path).expect("rm");
    match store.append_incidents(&[incident(2, "10.0.0.5", "chatgpt")]) {
        Err(Error::Store {
            fault: StoreFault::Vanished,
            message,
            ..
        }) => assert!(message.contains("deleted while open"), "{message}"),
        other => panic!("expected Vanished, got {other:?}"),
    }
    // What the connection still sees is saved.
    let saved = dir.path().join("saved.db");
    store.salvage(&saved).expect("salvage");
    store.close_as_is();
    let copy = Store::open_read_only(&saved).expect("copy opens");
    assert_eq!(copy.verify().expect("verify").rows, 1);
    assert_eq!(mode(&saved), 0o600);

    let (dir, store) = filled(1);
    let path = dir.path().join("incidents.db");
    // Checkpoint, so the header is in the file, then clobber it.
    store
        .conn
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[..100].fill(0x5a);
    std::fs::write(&path, &bytes).expect("clobber");
    match store.check_file() {
        Err(
            e @ Error::Store {
                fault: StoreFault::Corrupt,
                ..
            },
        ) => assert_eq!(e.exit_code(), 3),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_corrupt_header_is_refused_on_open_and_exits_3() {
    let (dir, store) = filled(3);
    drop(store);
    let path = dir.path().join("incidents.db");
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[..100].fill(0x5a);
    std::fs::write(&path, &bytes).expect("clobber");
    for result in [Store::open(&path), Store::open_read_only(&path)] {
        match result {
            Err(
                e @ Error::Store {
                    fault: StoreFault::Corrupt,
                    ..
                },
            ) => {
                assert_eq!(e.exit_code(), 3);
                assert!(e.to_string().contains("corrupt"), "{e}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
    let err = check(&path, false).expect_err("corrupt");
    assert!(err.to_string().contains("corrupt"), "{err}");
}

#[test]
fn a_version_1_store_is_migrated_keeping_every_hash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("incidents.db");
    {
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(SCHEMA_V1).expect("v1 schema");
        conn.pragma_update(None, "application_id", schema::APPLICATION_ID)
            .expect("app id");
        let mut prev = GENESIS;
        for id in 1..=3 {
            let row = incident_values(id, &incident(id, "10.0.0.5", "chatgpt"));
            prev = insert_log(&conn, &row, &prev).expect("insert");
            conn.execute(
                "INSERT INTO activity (incident_id, last_seen, count) VALUES (?1, ?1, 1)",
                [id],
            )
            .expect("activity");
            conn.execute(
                "INSERT INTO activity_seen (incident_id, what, value) VALUES (?1, 'how', 'tls')",
                [id],
            )
            .expect("activity seen");
        }
    }
    // Read as it is: intact, its tail unchecked (no head files then).
    let ro = Store::open_read_only(&path).expect("v1 reads");
    let report = ro.verify().expect("verify");
    assert!(report.is_intact() && report.rows == 3, "{report:?}");
    assert_eq!(report.tail, Tail::Unchecked);
    let v1_head = ro.head().expect("head");
    drop(ro);
    assert_eq!(check(&path, false).expect("check").tail, Tail::Unchecked);

    let mut store = Store::open(&path).expect("migrates");
    let version: i32 = store
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(
        store.head().expect("head"),
        v1_head,
        "ids and hashes unchanged"
    );
    assert!(matches!(tail(&store), Tail::Matches { ref head, .. } if head.id == 3));
    store
        .append_break(4 * S, "test", None, None)
        .expect("break rows now fit");
    store.ack(2, 5 * S, "Dr. Ada", "trained").expect("ack");
    let report = store.verify().expect("verify");
    assert!(report.is_intact() && report.rows == 5, "{report:?}");
    // What was seen came along, and a MAC learned later now fits.
    let mut t = crate::store::tests::touch(6 * S, true, "chatgpt.example", "tls");
    t.mac = Some(crate::detect::Mac([2, 0, 0, 0, 0, 5]));
    store.touch_incident(1, &t).expect("touch with a MAC");
    let got = store.get(1).expect("get").expect("incident").summary;
    assert_eq!(got.hows, ["tls"]);
    assert_eq!(
        got.record.client_mac,
        Some(crate::detect::Mac([0xaa, 0xbb, 0xcc, 0, 0, 5]))
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
}

#[test]
fn check_names_the_fault() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A fresh path in a directory that takes writes: fine.
    let fresh = check(&dir.path().join("incidents.db"), true).expect("fresh");
    assert!(fresh.fresh);
    // A missing directory.
    let gone = dir.path().join("nowhere/incidents.db");
    match check(&gone, false) {
        Err(
            e @ Error::Store {
                fault: StoreFault::NoDirectory,
                ..
            },
        ) => assert!(
            e.to_string().contains(&format!(
                "directory {} does not exist",
                dir.path().join("nowhere").display()
            )),
            "{e}"
        ),
        other => panic!("expected NoDirectory, got {other:?}"),
    }
    // A cut-off tail.
    let (dir, store) = filled(4);
    tamper(&store, "DELETE FROM log WHERE id > 2");
    drop(store);
    let err = check(&dir.path().join("incidents.db"), false).expect_err("cut");
    assert!(
        err.to_string()
            .contains("rows 3 to 4 are missing from the end"),
        "{err}"
    );
    // The file deleted while its head file stays: not a fresh store.
    let (dir, store) = filled(2);
    drop(store);
    let path = dir.path().join("incidents.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(sibling(&path, suffix));
    }
    match check(&path, false) {
        Err(e @ Error::StoreHead { .. }) => {
            assert!(
                e.to_string().contains("the store file is missing but"),
                "{e}"
            );
            assert_eq!(e.exit_code(), 3);
        }
        other => panic!("expected StoreHead, got {other:?}"),
    }
    // A good store with keyed on and no key yet: a note, not a failure.
    let (dir, store) = filled(1);
    drop(store);
    let ok = check(&dir.path().join("incidents.db"), true).expect("ok");
    assert_eq!(ok.rows, 1);
    assert!(
        ok.notes.iter().any(|n| n.contains("keyed is on")),
        "{:?}",
        ok.notes
    );
}

/// The version 1 schema, as aiwarden 0.1 created it.
const SCHEMA_V1: &str = "
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
PRAGMA user_version = 1;
";
