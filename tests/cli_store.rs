//! `aiwarden incidents` and `aiwarden verify` as a user runs them against a store: listing,
//! acknowledging, and the exit codes of `verify` for every way the evidence can break.

use std::path::Path;
use std::process::Command;

fn aiwarden() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aiwarden"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn incident(ts: i64, ip: &str, service: &str) -> aiwarden::incident::IncidentRecord {
    aiwarden::incident::IncidentRecord {
        ts,
        client_ip: ip.parse().expect("ip"),
        client_mac: Some("52:54:00:12:34:56".parse().expect("mac")),
        device: Some("reception-1".into()),
        label: Some("Front desk PC 1".into()),
        group: None,
        service: service.into(),
        service_name: service.to_uppercase(),
        category: None,
        tier: None,
        verdict: aiwarden::policy::Verdict::Block,
        mode: aiwarden::policy::Mode::Enforce,
        how: "dns".parse().expect("how"),
        host: format!("{service}.example"),
        rule: "site/deny.list:1".into(),
    }
}

#[test]
fn incidents_list_ack_and_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("incidents.db");
    {
        let mut store = aiwarden::store::Store::open(&db).expect("store");
        store
            .append_incidents(&[
                incident(1_763_888_400_000_000, "10.0.0.21", "chatgpt"),
                incident(1_763_888_500_000_000, "10.0.0.22", "claude"),
                incident(1_763_888_600_000_000, "10.0.0.21", "gemini"),
            ])
            .expect("append");
    }
    let cmd = |args: &[&str]| {
        aiwarden()
            .args(args)
            .arg("--store")
            .arg(&db)
            .output()
            .expect("runs")
    };
    let out = cmd(&["incidents", "list", "--device", "10.0.0.21", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let services: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|i| i["service"].as_str().expect("service"))
        .collect();
    assert_eq!(services, ["gemini", "chatgpt"], "newest first, one device");

    let out = cmd(&[
        "incidents",
        "ack",
        "2",
        "--by",
        "Dr Rivera",
        "--note",
        "HIPAA refresher done",
    ]);
    assert!(out.status.success(), "{out:?}");
    let out = cmd(&["incidents", "list", "--unacked"]);
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(
        text.contains("Front desk PC 1") && !text.contains("CLAUDE"),
        "{text}"
    );
    assert_eq!(
        cmd(&["incidents", "ack", "99", "--by", "x", "--note", "y"])
            .status
            .code(),
        Some(2)
    );

    let out = cmd(&["verify"]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("intact (4 rows)"), "{said}");
    assert!(
        said.contains("rows by kind: ack 1, incident 3") && said.contains("acks by: Dr Rivera 1"),
        "{said}"
    );

    // Someone edits row 3 by hand (dropping the guard trigger first, as the sqlite3 shell
    // would have to): verify fails and names the row.
    let conn = rusqlite::Connection::open(&db).expect("open");
    conn.execute_batch(
        "DROP TRIGGER log_no_update; UPDATE log SET host = 'intranet.example' WHERE id = 3;",
    )
    .expect("tamper");
    drop(conn);
    let out = cmd(&["verify"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chain broken at row 3"), "{err}");
}

/// `verify` exits 3 for rows cut off the end of the chain (what `sqlite3` does after
/// dropping the guard trigger), for a corrupt file, for a missing head file and for a
/// deleted store whose head file stayed; a head file behind the database passes with a note.
#[test]
fn verify_exits_3_for_a_cut_off_tail_and_a_corrupt_file() {
    let fresh = |n: i64| {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("incidents.db");
        let mut store = aiwarden::store::Store::open(&db).expect("store");
        let incs: Vec<_> = (0..n)
            .map(|i| incident(1_763_888_400_000_000 + i, "10.0.0.21", "chatgpt"))
            .collect();
        store.append_incidents(&incs).expect("append");
        (dir, db)
    };
    let verify = |db: &Path| {
        aiwarden()
            .args(["verify", "--store"])
            .arg(db)
            .output()
            .expect("runs")
    };
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();

    let (_dir, db) = fresh(10);
    let out = verify(&db);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("intact (10 rows)") && said.contains("head: row 10 ("),
        "{said}"
    );
    rusqlite::Connection::open(&db)
        .and_then(|c| {
            c.execute_batch(
                "PRAGMA foreign_keys = OFF; DROP TRIGGER log_no_delete; DELETE FROM log WHERE id > 7;",
            )
        })
        .expect("cut the tail");
    let out = verify(&db);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        stderr(&out).contains("chain broken at row 8: rows 8 to 10 are missing from the end"),
        "{}",
        stderr(&out)
    );

    let (_dir, db) = fresh(3);
    let mut bytes = std::fs::read(&db).expect("read");
    bytes[..100].fill(0);
    std::fs::write(&db, &bytes).expect("clobber");
    let out = verify(&db);
    assert_eq!(out.status.code(), Some(3), "a corrupt file: {out:?}");
    assert!(stderr(&out).contains("corrupt"), "{}", stderr(&out));

    let (_dir, db) = fresh(3);
    std::fs::remove_file(db.with_file_name("incidents.db.head")).expect("rm head");
    let out = verify(&db);
    assert_eq!(out.status.code(), Some(3), "no head file: {out:?}");
    assert!(stderr(&out).contains("head file:"), "{}", stderr(&out));

    let (_dir, db) = fresh(3);
    std::fs::remove_file(&db).expect("rm");
    let out = verify(&db);
    assert_eq!(out.status.code(), Some(3), "a deleted store: {out:?}");
    assert!(
        stderr(&out).contains("the store file is missing"),
        "{}",
        stderr(&out)
    );

    let (_dir, db) = fresh(3);
    let head = db.with_file_name("incidents.db.head");
    let old = std::fs::read(&head).expect("head");
    aiwarden::store::Store::open(&db)
        .and_then(|mut s| {
            s.append_incidents(&[incident(1_763_888_500_000_000, "10.0.0.22", "claude")])
        })
        .expect("append");
    std::fs::write(&head, old).expect("an older head");
    let out = verify(&db);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 newer rows follow it"),
        "{out:?}"
    );
    let out = aiwarden()
        .args(["verify", "--keyed", "--store"])
        .arg(&db)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(3), "--keyed without a key: {out:?}");
}
