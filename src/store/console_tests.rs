//! What schema 4 added for the web console: event rows chained and verified, accounts whose
//! every change is an event, keyset pages and a period's figures, and a version 3 store
//! migrated with every hash unchanged.

use super::tests::{filled, incident, store, tamper, S};
use super::*;
use crate::policy::unblock::Device;

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

#[test]
fn events_chain_and_read_back() {
    let (dir, mut store) = filled(2);
    let a = store
        .record_event(10 * S, "login", "ada", "127.0.0.1")
        .expect("event");
    store.ack(1, 11 * S, "ada", "trained").expect("ack");
    let b = store
        .record_event(12 * S, "report_download", "ada", "2026-W48.pdf")
        .expect("event");
    let c = store
        .record_event(13 * S, "rules_loaded", "aiwarden", "")
        .expect("an empty detail is a value");
    assert_eq!((a, b, c), (3, 5, 6));
    let report = store.verify().expect("verify");
    assert!(report.is_intact() && report.rows == 6, "{report:?}");

    let events = store.events(0, 100 * S).expect("events");
    assert_eq!(events.len(), 3);
    assert_eq!(
        (
            events[0].id,
            events[0].ts,
            events[0].event.as_str(),
            events[0].actor.as_str(),
            events[0].detail.as_str()
        ),
        (3, 10 * S, "login", "ada", "127.0.0.1")
    );
    assert_eq!(
        store
            .events(12 * S, 13 * S)
            .expect("events")
            .iter()
            .map(|e| e.id)
            .collect::<Vec<_>>(),
        [5],
        "since inclusive, until exclusive"
    );
    // Events are neither incidents nor acks.
    assert_eq!(store.list(&ListFilter::default()).expect("list").len(), 2);
    assert_eq!(store.get(3).expect("get"), None);
    let counts = store.row_counts().expect("counts");
    assert_eq!(
        counts.kinds,
        [
            ("ack".to_string(), 1),
            ("event".into(), 3),
            ("incident".into(), 2)
        ]
    );
    assert_eq!(counts.events.len(), 3);
    assert_eq!(counts.acks_by, [("ada".to_string(), 1)]);

    drop(store);
    let mut store = Store::open(&dir.path().join("incidents.db")).expect("reopen");
    store
        .record_event(20 * S, "logout", "ada", "")
        .expect("the chain goes on");
    assert!(store.verify().expect("verify").is_intact());
}

#[test]
fn malformed_events_are_refused() {
    let (_dir, mut store) = store();
    let long = "x".repeat(MAX_EVENT_DETAIL + 1);
    for (event, actor, detail) in [
        ("", "ada", ""),
        ("Login", "ada", ""),
        ("log in", "ada", ""),
        ("login", " ", ""),
        ("login", "ada", long.as_str()),
    ] {
        match store.record_event(S, event, actor, detail) {
            Err(e @ Error::Usage(_)) => assert_eq!(e.exit_code(), 2),
            other => panic!("{event:?} {actor:?}: expected a usage error, got {other:?}"),
        }
    }
    // The table refuses an event without its columns, and an incident with event columns.
    for sql in [
        "INSERT INTO log (id, kind, ts, event, actor, prev_hash, hash)
         VALUES (1, 'event', 1, 'login', 'ada', zeroblob(32), zeroblob(32))",
        "INSERT INTO log (id, kind, ts, event, actor, detail, host, prev_hash, hash)
         VALUES (1, 'event', 1, 'login', 'ada', '', 'x', zeroblob(32), zeroblob(32))",
        "INSERT INTO log (id, kind, ts, client_ip, service, service_name, verdict, mode, how,
                          host, rule, event, prev_hash, hash)
         VALUES (1, 'incident', 1, '10.0.0.5', 's', 'S', 'block', 'enforce', 'dns', 'h', 'r',
                 'login', zeroblob(32), zeroblob(32))",
    ] {
        let err = store.conn.execute_batch(sql).expect_err(sql);
        assert!(err.to_string().contains("CHECK"), "{sql}: {err}");
    }
    assert!(store.events(0, i64::MAX).expect("events").is_empty());
}

#[test]
fn a_tampered_event_row_is_named() {
    for sql in [
        "UPDATE log SET actor = 'mallory' WHERE id = 2",
        "UPDATE log SET detail = '' WHERE id = 2",
        "UPDATE log SET event = 'logout' WHERE id = 2",
        "UPDATE log SET ts = ts + 1 WHERE id = 2",
    ] {
        let (_dir, mut store) = filled(1);
        store
            .record_event(2 * S, "report_download", "ada", "week.pdf")
            .expect("event");
        store.ack(1, 3 * S, "ada", "trained").expect("ack");
        tamper(&store, sql);
        let b = store
            .verify()
            .expect("verify")
            .first_broken
            .expect("broken");
        assert_eq!(b.id, 2, "{sql}: {b:?}");
        assert!(b.reason.contains("hash does not match"), "{sql}: {b:?}");
    }
    // Event columns on another kind of row are named too (the CHECK dropped with a rebuilt
    // table, the walk still looks).
    let (_dir, store) = filled(2);
    store
        .conn
        .execute_batch(
            "PRAGMA foreign_keys = OFF;
             CREATE TABLE copy AS SELECT * FROM log;
             DROP TABLE log;
             ALTER TABLE copy RENAME TO log;
             UPDATE log SET actor = 'ada' WHERE id = 2;",
        )
        .expect("rebuild without the check");
    let b = store
        .verify()
        .expect("verify")
        .first_broken
        .expect("broken");
    assert_eq!(b.id, 2);
    assert!(b.reason.contains("event columns"), "{b:?}");
}

#[test]
fn accounts_change_with_an_event_each() {
    let (dir, mut store) = store();
    store
        .add_user(S, "ada", Role::Reviewer, HASH, "cli:root")
        .expect("add");
    store
        .add_user(2 * S, "bob.v@clinic", Role::Viewer, HASH, "cli:root")
        .expect("add");
    match store.add_user(3 * S, "ada", Role::Admin, HASH, "cli:root") {
        Err(Error::Usage(m)) => assert!(m.contains("already exists"), "{m}"),
        other => panic!("a duplicate: {other:?}"),
    }
    let long = "a".repeat(65);
    for bad in ["", "a b", "ada\n", "ádá", long.as_str()] {
        assert!(
            store
                .add_user(3 * S, bad, Role::Viewer, HASH, "cli:root")
                .is_err(),
            "{bad:?}"
        );
    }
    assert!(
        store
            .add_user(3 * S, "eve", Role::Viewer, "plaintext", "cli:root")
            .is_err(),
        "only an argon2id hash is stored"
    );
    let users = store.users().expect("users");
    assert_eq!(
        users
            .iter()
            .map(|u| (u.name.as_str(), u.role, u.created, u.disabled))
            .collect::<Vec<_>>(),
        [
            ("ada", Role::Reviewer, S, false),
            ("bob.v@clinic", Role::Viewer, 2 * S, false)
        ]
    );
    assert!(
        !format!("{:?}", users[0]).contains("argon2"),
        "no hash in Debug"
    );
    let new_hash = HASH.replace("c2FsdHNhbHQ", "b3RoZXJzYWx0");
    store
        .set_password(4 * S, "ada", &new_hash, "cli:root")
        .expect("passwd");
    assert_eq!(
        store.user("ada").expect("user").map(|u| u.password_hash),
        Some(new_hash)
    );
    store
        .remove_user(5 * S, "bob.v@clinic", "cli:root")
        .expect("remove");
    assert!(store
        .remove_user(6 * S, "bob.v@clinic", "cli:root")
        .is_err());
    assert!(store
        .set_password(6 * S, "nobody", HASH, "cli:root")
        .is_err());
    assert_eq!(store.user("bob.v@clinic").expect("user"), None);
    let events: Vec<_> = store
        .events(0, 10 * S)
        .expect("events")
        .into_iter()
        .map(|e| (e.event, e.actor, e.detail))
        .collect();
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        events,
        [
            s("user_add", "cli:root", "ada (reviewer)"),
            s("user_add", "cli:root", "bob.v@clinic (viewer)"),
            s("password_set", "cli:root", "ada"),
            s("user_remove", "cli:root", "bob.v@clinic"),
        ],
        "refused changes wrote nothing"
    );
    assert!(store.verify().expect("verify").is_intact());
    let ro = Store::open_read_only(&dir.path().join("incidents.db")).expect("ro");
    assert_eq!(ro.users().expect("users").len(), 1);
    // The table itself refuses a role that does not exist.
    let err = store
        .conn
        .execute(
            "INSERT INTO users (name, role, password, created) VALUES ('x', 'root', 'h', 1)",
            [],
        )
        .expect_err("bad role");
    assert!(err.to_string().contains("CHECK"), "{err}");
}

/// Incidents over ten seconds from three devices and two services, ts ties included.
fn paged_store() -> (tempfile::TempDir, Store) {
    let (dir, mut store) = store();
    let mut incs = Vec::new();
    for i in 0..30i64 {
        let ip = format!("10.0.0.{}", 1 + i % 3);
        let service = if i % 2 == 0 { "chatgpt" } else { "claude" };
        let mut inc = incident(1 + i / 3, &ip, service);
        inc.label = (i % 3 == 0).then(|| "Front desk".to_string());
        if i % 5 == 0 {
            inc.verdict = Verdict::Block;
        }
        incs.push(inc);
    }
    store.append_incidents(&incs).expect("append");
    (dir, store)
}

#[test]
fn pages_walk_every_incident_once_newest_first() {
    let (_dir, mut store) = paged_store();
    store
        .ack_many(&[30, 29], 50 * S, "ada", "trained")
        .expect("ack");
    store.ack(30, 51 * S, "bob", "again").expect("ack");
    let all = store.list(&ListFilter::default()).expect("list");
    assert_eq!(all.len(), 30);
    for limit in [1, 4, 7, 30, 1000] {
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = store
                .page(&PageFilter::default(), before, limit)
                .expect("page");
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= limit as usize);
            before = page.last().map(|r| (r.summary.record.ts, r.id));
            seen.extend(page);
        }
        assert_eq!(
            seen, all,
            "limit {limit}: the same rows as list, in its order"
        );
    }
    let first = store.page(&PageFilter::default(), None, 2).expect("page");
    assert_eq!(first[0].id, 30);
    assert_eq!(
        first[0]
            .acks
            .iter()
            .map(|a| (a.by.as_str(), a.note.as_str()))
            .collect::<Vec<_>>(),
        [("ada", "trained"), ("bob", "again")]
    );
    assert_eq!(first[1].acks.len(), 1);
}

#[test]
fn page_filters() {
    let (_dir, mut store) = paged_store();
    store
        .ack_many(&[1, 2, 4], 50 * S, "ada", "ok")
        .expect("ack");
    let ids = |f: &PageFilter| -> Vec<i64> {
        store
            .page(f, None, MAX_PAGE)
            .expect("page")
            .iter()
            .map(|r| r.id)
            .collect()
    };
    let front = PageFilter {
        device: Some("front DESK".into()),
        ..PageFilter::default()
    };
    assert_eq!(ids(&front), [28, 25, 22, 19, 16, 13, 10, 7, 4, 1]);
    let by_ip = PageFilter {
        device: Some("10.0.0.2".into()),
        ..PageFilter::default()
    };
    assert_eq!(ids(&by_ip).len(), 10);
    assert!(
        ids(&PageFilter {
            names_only: true,
            ..by_ip.clone()
        })
        .is_empty(),
        "names only: an address finds nothing"
    );
    let by_name = PageFilter {
        device: Some("host-10.0.0.2".into()),
        names_only: true,
        ..PageFilter::default()
    };
    assert_eq!(ids(&by_name), ids(&by_ip));
    let claude = PageFilter {
        service: Some("claude".into()),
        ..PageFilter::default()
    };
    assert!(ids(&claude).iter().all(|id| id % 2 == 0) && ids(&claude).len() == 15);
    let open = PageFilter {
        status: Some(AckStatus::Open),
        ..front.clone()
    };
    assert_eq!(ids(&open), [28, 25, 22, 19, 16, 13, 10, 7]);
    let acked = PageFilter {
        status: Some(AckStatus::Acknowledged),
        ..PageFilter::default()
    };
    assert_eq!(ids(&acked), [4, 2, 1]);
    let dates = PageFilter {
        since: Some(2 * S),
        until: Some(3 * S),
        ..PageFilter::default()
    };
    assert_eq!(ids(&dates), [6, 5, 4]);
    assert_eq!(store.count(&front).expect("count"), 10);
    assert_eq!(store.count(&open).expect("count"), 8);
    // Paging a filtered list: the second page starts after the first.
    let p1 = store.page(&front, None, 4).expect("page");
    let last = p1.last().map(|r| (r.summary.record.ts, r.id));
    let p2 = store.page(&front, last, 4).expect("page");
    assert_eq!(p2.iter().map(|r| r.id).collect::<Vec<_>>(), [16, 13, 10, 7]);
}

#[test]
fn a_page_is_an_index_seek_not_a_scan() {
    let (_dir, store) = paged_store();
    let mut args = Vec::new();
    let cond = super::page::conditions(&PageFilter::default(), &mut args);
    let plan: Vec<String> = store
        .conn
        .prepare(&format!(
            "EXPLAIN QUERY PLAN SELECT l.id FROM log l WHERE {cond}
             AND l.ts <= 5 AND (l.ts < 5 OR l.id < 9) ORDER BY l.ts DESC, l.id DESC LIMIT 50"
        ))
        .expect("plan")
        .query_map([], |r| r.get::<_, String>(3))
        .expect("plan")
        .collect::<rusqlite::Result<_>>()
        .expect("plan");
    let plan = plan.join("; ");
    assert!(
        plan.contains("USING COVERING INDEX log_kind_ts")
            || plan.contains("USING INDEX log_kind_ts"),
        "{plan}"
    );
    assert!(!plan.contains("TEMP B-TREE"), "no sort: {plan}");
}

#[test]
fn acks_of_many_are_all_or_nothing() {
    let (_dir, mut store) = filled(3);
    match store.ack_many(&[1, 99, 2], 5 * S, "ada", "x") {
        Err(Error::NoSuchIncident(99)) => {}
        other => panic!("{other:?}"),
    }
    assert!(store
        .list(&ListFilter::default())
        .expect("list")
        .iter()
        .all(|r| r.acks.is_empty()));
    assert_eq!(
        store.ack_many(&[3, 1], 5 * S, "ada", "x").expect("ack"),
        [4, 5]
    );
    assert!(store.verify().expect("verify").is_intact());
}

#[test]
fn a_period_tallies() {
    let (_dir, mut store) = paged_store();
    store.ack_many(&[1, 2], 50 * S, "ada", "ok").expect("ack");
    let t = store.tally(0, 100 * S, 10).expect("tally");
    assert_eq!(
        (
            t.incidents,
            t.blocked,
            t.flagged,
            t.attempts,
            t.devices,
            t.services,
            t.open
        ),
        (30, 6, 24, 30, 3, 2, 28)
    );
    assert_eq!(
        t.top_services
            .iter()
            .map(|s| (s.service.as_str(), s.incidents, s.blocked))
            .collect::<Vec<_>>(),
        [("chatgpt", 15, 3), ("claude", 15, 3)]
    );
    assert_eq!(t.top_devices.len(), 3);
    assert_eq!(t.top_devices[0].incidents, 10);
    let front = t
        .top_devices
        .iter()
        .find(|d| d.label.as_deref() == Some("Front desk"))
        .expect("front desk");
    assert_eq!((front.incidents, front.open), (10, 9));
    let narrow = store.tally(S, 2 * S, 1).expect("tally");
    assert_eq!((narrow.incidents, narrow.top_services.len()), (3, 1));
    assert_eq!(
        store.tally(90 * S, 100 * S, 5).expect("tally"),
        Tally::default()
    );
    assert_eq!(
        store
            .counts_between(&[0, S, 2 * S, 11 * S])
            .expect("counts"),
        [0, 3, 27]
    );
}

/// The `log` table of schema version 3, as that build created it.
const LOG_V3: &str = "
CREATE TABLE log_v3 (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, ts INTEGER NOT NULL, client_ip TEXT,
    client_mac TEXT, device TEXT, label TEXT, client_group TEXT, service TEXT,
    service_name TEXT, category TEXT, tier TEXT, verdict TEXT, mode TEXT, how TEXT, host TEXT,
    rule TEXT, incident_id INTEGER REFERENCES log(id), ack_by TEXT, ack_note TEXT,
    break_reason TEXT, break_prev_id INTEGER,
    break_prev_hash BLOB CHECK (break_prev_hash IS NULL OR length(break_prev_hash) = 32),
    break_file TEXT, unblock_until INTEGER,
    prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),
    hash BLOB NOT NULL CHECK (length(hash) = 32),
    CHECK (
        (kind = 'incident'
            AND client_ip IS NOT NULL AND service IS NOT NULL AND service_name IS NOT NULL
            AND verdict IN ('flag', 'block') AND mode IN ('monitor', 'enforce')
            AND how IS NOT NULL AND host IS NOT NULL AND rule IS NOT NULL
            AND incident_id IS NULL AND ack_by IS NULL AND ack_note IS NULL
            AND coalesce(break_reason, break_prev_id, break_prev_hash, break_file,
                         unblock_until) IS NULL)
        OR
        (kind = 'ack'
            AND incident_id IS NOT NULL AND ack_by IS NOT NULL AND ack_note IS NOT NULL
            AND coalesce(client_ip, client_mac, device, label, client_group, service,
                         service_name, category, tier, verdict, mode, how, host, rule,
                         break_reason, break_prev_id, break_prev_hash, break_file,
                         unblock_until) IS NULL)
        OR
        (kind = 'break'
            AND break_reason IS NOT NULL
            AND coalesce(client_ip, client_mac, device, label, client_group, service,
                         service_name, category, tier, verdict, mode, how, host, rule,
                         incident_id, ack_by, ack_note, unblock_until) IS NULL)
        OR
        (kind = 'unblock'
            AND ack_by IS NOT NULL AND ack_note IS NOT NULL AND unblock_until IS NOT NULL
            AND (client_ip IS NOT NULL) + (client_mac IS NOT NULL) + (device IS NOT NULL) = 1
            AND coalesce(label, client_group, service, service_name, category, tier, verdict,
                         mode, how, rule, incident_id, break_reason, break_prev_id,
                         break_prev_hash, break_file) IS NULL)
    )
) STRICT;
";

#[test]
fn a_version_3_store_is_migrated_keeping_every_hash() {
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
        .unblock(
            5 * S,
            &Device::parse("10.0.0.5").expect("device"),
            None,
            "IT",
            "trial",
            6 * S,
        )
        .expect("unblock");
    // Made a version 3 file: its log rebuilt without the event columns, no users table.
    store
        .conn
        .execute_batch(&format!(
            "PRAGMA foreign_keys = OFF;
             BEGIN;
             {LOG_V3}
             INSERT INTO log_v3 SELECT id, kind, ts, client_ip, client_mac, device, label,
                 client_group, service, service_name, category, tier, verdict, mode, how,
                 host, rule, incident_id, ack_by, ack_note, break_reason, break_prev_id,
                 break_prev_hash, break_file, unblock_until, prev_hash, hash FROM log;
             DROP TABLE log;
             ALTER TABLE log_v3 RENAME TO log;
             CREATE INDEX log_ts ON log(ts);
             DROP TABLE users;
             PRAGMA user_version = 3;
             COMMIT;"
        ))
        .expect("make a version 3 file");
    let before = store.head().expect("head");
    drop(store);

    let ro = Store::open_read_only(&path).expect("v3 reads");
    assert_eq!(ro.version, 3);
    let report = ro.verify().expect("verify");
    assert!(report.is_intact() && report.rows == 5, "{report:?}");
    assert!(ro.events(0, i64::MAX).expect("events").is_empty());
    assert!(ro.users().expect("users").is_empty());
    assert_eq!(ro.unblocks(0).expect("unblocks").len(), 1);
    assert_eq!(
        ro.page(&PageFilter::default(), None, 10)
            .expect("page")
            .len(),
        2
    );
    assert_eq!(ro.row_counts().expect("counts").kinds.len(), 4);
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
    store
        .record_event(7 * S, "login", "ada", "127.0.0.1")
        .expect("event rows now fit");
    store
        .add_user(8 * S, "ada", Role::Admin, HASH, "cli:root")
        .expect("users now fit");
    assert!(store.verify().expect("verify").is_intact());
    let indexes: i64 = store
        .conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'log_kind_ts'",
            [],
            |r| r.get(0),
        )
        .expect("indexes");
    assert_eq!(indexes, 1);
    assert!(
        store
            .conn
            .execute("DELETE FROM log WHERE id = 6", [])
            .is_err(),
        "still append-only"
    );
}

#[test]
fn a_bulk_append_chains_as_the_batch_path_does() {
    let incs: Vec<_> = (1..=300)
        .map(|i| incident(i, &format!("10.0.0.{}", i % 7 + 1), "chatgpt"))
        .collect();
    let (_a, mut batch) = store();
    batch.append_incidents(&incs).expect("append");
    let (_b, mut bulk) = store();
    assert_eq!(bulk.append_bulk(incs.clone()).expect("bulk"), 300);
    assert_eq!(
        bulk.head().expect("head"),
        batch.head().expect("head"),
        "the same chain"
    );
    assert_eq!(
        bulk.page(&PageFilter::default(), None, MAX_PAGE)
            .expect("page"),
        batch
            .page(&PageFilter::default(), None, MAX_PAGE)
            .expect("page"),
        "the same activity"
    );
    let report = bulk.verify().expect("verify");
    assert!(report.is_intact() && report.rows == 300, "{report:?}");
    // All or none.
    let mut bad = incs.clone();
    bad[10].verdict = Verdict::Allow;
    assert!(bulk.append_bulk(bad).is_err());
    assert_eq!(bulk.count(&PageFilter::default()).expect("count"), 300);
    bulk.ack(1, 400 * S, "ada", "ok")
        .expect("the chain goes on");
    assert!(bulk.verify().expect("verify").is_intact());
}

#[test]
fn a_bounded_walk_pages_through_every_match_once() {
    let (_dir, mut store) = paged_store();
    store.ack_many(&[1, 4], 50 * S, "ada", "ok").expect("ack");
    let front_open = PageFilter {
        device: Some("Front desk".into()),
        status: Some(AckStatus::Open),
        ..PageFilter::default()
    };
    let everything = store.page(&front_open, None, MAX_PAGE).expect("page");
    for (limit, scan) in [(2, 2), (2, 5), (3, 7), (50, 4), (50, 1000)] {
        let mut seen = Vec::new();
        let mut before = None;
        let mut pages = 0;
        loop {
            let p = store
                .page_within(&front_open, before, limit, scan)
                .expect("page");
            assert!(p.rows.len() <= limit as usize);
            seen.extend(p.rows);
            pages += 1;
            assert!(pages < 100, "ends");
            match p.next {
                Some(n) => before = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, everything, "limit {limit}, scan {scan}");
    }
    // No filter: the window never holds fewer rows than a page.
    let p = store
        .page_within(&PageFilter::default(), None, 10, 3)
        .expect("page");
    assert_eq!(p.rows.len(), 10);
    assert_eq!(p.next, p.rows.last().map(|r| (r.summary.record.ts, r.id)));
    let end = store
        .page_within(&PageFilter::default(), Some((S, 2)), 10, 100)
        .expect("page");
    assert_eq!(
        (end.rows.len(), end.next),
        (1, None),
        "the last page says so"
    );
}
