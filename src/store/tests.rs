//! The store's tests: the chain, retention, concurrency, activity and usage.

use std::net::IpAddr;

use rusqlite::types::{Value, ValueRef};

use super::chain::{row_hash, GENESIS};
use super::*;
use crate::incident::{How, Touch};
use crate::policy::{Mac, Mode, Tier};

pub(super) const S: i64 = 1_000_000;

pub(super) fn incident(ts_s: i64, ip: &str, service: &str) -> IncidentRecord {
    let ip: IpAddr = ip.parse().expect("ip");
    let last = match ip {
        IpAddr::V4(v4) => v4.octets()[3],
        IpAddr::V6(v6) => v6.octets()[15],
    };
    IncidentRecord {
        ts: ts_s * S,
        client_ip: ip,
        client_mac: Some(Mac([0xaa, 0xbb, 0xcc, 0, 0, last])),
        device: Some(format!("host-{ip}")),
        label: None,
        group: Some("staff".into()),
        service: service.into(),
        service_name: format!("{service} name"),
        category: Some("chat".into()),
        tier: Some(Tier::Consumer),
        verdict: Verdict::Flag,
        mode: Mode::Monitor,
        how: How::of(crate::detect::Proto::Tls),
        host: format!("{service}.example"),
        rule: format!("catalog/test.toml:{service}"),
    }
}

pub(super) fn touch(ts: i64, attempt: bool, host: &str, how: &str) -> Touch {
    Touch {
        ts,
        host: host.into(),
        how: how.parse().expect("how"),
        attempt,
        mac: None,
    }
}

pub(super) fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("incidents.db")).expect("open");
    (dir, store)
}

/// A store with incidents 1..=n at ts 1..=n seconds.
pub(super) fn filled(n: i64) -> (tempfile::TempDir, Store) {
    let (dir, mut store) = store();
    let incs: Vec<_> = (1..=n)
        .map(|i| incident(i, "10.0.0.5", "chatgpt"))
        .collect();
    store.append_incidents(&incs).expect("append");
    (dir, store)
}

/// What someone with the sqlite3 shell would do: the triggers go first.
pub(super) fn tamper(store: &Store, sql: &str) {
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
    let report = store.verify().expect("verify");
    assert_eq!(
        (report.rows, report.anchor, report.first_broken),
        (0, None, None)
    );
    assert!(
        matches!(report.tail, Tail::Matches { ref head, keyed: false } if head.id == 0),
        "a new store has a head file naming no row: {:?}",
        report.tail
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
    assert_eq!(inc.summary.record, incident(1, "10.0.0.5", "chatgpt"));
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
        .touch_incident(4, &touch(9 * S, true, "api.chatgpt.example", "quic"))
        .expect("touch");
    assert_eq!(store.purge_before(6 * S).expect("purge"), 5);
    let report = store.verify().expect("verify");
    assert_eq!(
        (report.rows, report.anchor, report.first_broken),
        (5, Some(5), None)
    );
    assert!(
        matches!(report.tail, Tail::Matches { ref head, .. } if head.id == 10),
        "the purge rewrote the head file: {:?}",
        report.tail
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
        .add_usage("1970-01-01", "chatgpt", Verdict::Flag, 1)
        .expect("usage");
    store
        .add_usage("1970-01-02", "chatgpt", Verdict::Flag, 1)
        .expect("usage");
    store
        .add_usage("1970-01-03", "chatgpt", Verdict::Flag, 1)
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
    c.verdict = Verdict::Block;
    c.mode = Mode::Enforce;
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
fn a_mac_learned_later_is_shown_and_found() {
    // Opened by address (no MAC yet); a later touch brings the device's MAC: the chained
    // row stays as it was, the listing shows the MAC and a filter by it finds the incident.
    let (_dir, mut store) = store();
    let mut first = incident(10, "10.0.0.21", "gemini");
    first.client_mac = None;
    store.append_incidents(&[first]).expect("append");
    let mut t = touch(11 * S, true, "gemini.example", "tls");
    t.mac = Some(Mac([2, 0, 0, 0, 0, 0x21]));
    store.touch_incident(1, &t).expect("touch");
    let got = store.get(1).expect("get").expect("incident").summary;
    assert_eq!(got.record.client_mac, t.mac);
    assert_eq!(got.hows, ["tls"], "the MAC is not a how");
    let f = ListFilter {
        device: Some("02:00:00:00:00:21".into()),
        ..Default::default()
    };
    assert_eq!(store.list(&f).expect("list").len(), 1);
    assert!(store.verify().expect("verify").is_intact());
}

#[test]
fn touch_updates_activity_only() {
    let (_dir, mut store) = filled(2);
    let fresh = store.get(1).expect("get").expect("incident").summary;
    assert_eq!((fresh.last_seen, fresh.count), (S, 1));
    assert_eq!(fresh.hosts, ["chatgpt.example"]);
    assert_eq!(fresh.hows, ["tls"]);
    let touches = [
        touch(50 * S, true, "cdn.chatgpt.example", "tls,unresolved"),
        touch(40 * S, true, "chatgpt.example", "quic"),
        // A retry: activity moves, the attempt count does not.
        touch(45 * S, false, "chatgpt.example", "quic"),
    ];
    store
        .touch_batch(&touches.iter().map(|t| (1, t.clone())).collect::<Vec<_>>())
        .expect("touch");
    let row = store.get(1).expect("get").expect("incident").summary;
    assert_eq!(
        (row.last_seen, row.count),
        (50 * S, 3),
        "last_seen never goes back; retries are not attempts"
    );
    assert_eq!(row.hosts, ["cdn.chatgpt.example", "chatgpt.example"]);
    assert_eq!(row.hows, ["quic", "tls", "tls,unresolved"]);
    assert!(store.verify().expect("verify").is_intact());
    // The store applies a touch exactly as the in-memory summary does (what replay prints).
    let mut mirror = IncidentSummary::opened(incident(1, "10.0.0.5", "chatgpt"));
    for t in &touches {
        mirror.touch(t);
    }
    assert_eq!(mirror, row);

    for i in 0..MAX_SEEN_PER_INCIDENT + 10 {
        store
            .touch_incident(
                2,
                &touch(3 * S, true, &format!("r{i}.chatgpt.example"), "dns"),
            )
            .expect("touch");
    }
    let row = store.get(2).expect("get").expect("incident").summary;
    assert_eq!(row.hosts.len(), MAX_SEEN_PER_INCIDENT);
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
        store.touch_incident(9, &touch(S, true, "x.example", "dns")),
        Err(Error::NoSuchIncident(9))
    ));
    assert_eq!(store.verify().expect("verify").rows, 2);
}

#[test]
fn bad_incident_values_are_refused() {
    let (_dir, mut store) = store();
    let mut inc = incident(1, "10.0.0.5", "chatgpt");
    inc.verdict = Verdict::Allow;
    assert!(matches!(
        store.append_incidents(&[inc]),
        Err(Error::Usage(_))
    ));
    assert_eq!(store.head().expect("head"), None);
    // A value this build cannot read back is an error that names it, never a guess.
    store
        .append_incidents(&[incident(1, "10.0.0.5", "chatgpt")])
        .expect("append");
    tamper(&store, "UPDATE log SET how = 'carrier-pigeon' WHERE id = 1");
    let e = store.get(1).expect_err("unreadable").to_string();
    assert!(e.contains("carrier-pigeon"), "{e}");
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
        .add_usage("2025-03-01", "chatgpt", Verdict::Flag, 2)
        .expect("usage");
    store
        .add_usage("2025-03-01", "chatgpt", Verdict::Flag, 3)
        .expect("usage");
    store
        .add_usage_batch(&[
            (
                "2025-03-01".into(),
                "copilot-m365".into(),
                Verdict::Allow,
                40,
            ),
            ("2025-03-01".into(), "chatgpt".into(), Verdict::Block, 1),
            ("2025-03-02".into(), "chatgpt".into(), Verdict::Flag, 7),
            ("2025-03-02".into(), "chatgpt".into(), Verdict::Flag, 1),
            ("2025-04-01".into(), "chatgpt".into(), Verdict::Flag, 1),
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
                store.add_usage(bad, "chatgpt", Verdict::Flag, 1),
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
