//! `aiwarden unblock` as an admin runs it against a store: recorded in the chain, listed,
//! verified, and refused with exit 2 when the duration, `--by` or `--note` is wrong.

use std::path::Path;
use std::process::{Command, Output};

fn aiwarden(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aiwarden"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .arg("--store")
        .arg(db)
        .output()
        .expect("runs")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn incident(ts: i64) -> aiwarden::incident::IncidentRecord {
    aiwarden::incident::IncidentRecord {
        ts,
        client_ip: "10.0.0.21".parse().expect("ip"),
        client_mac: Some("52:54:00:12:34:56".parse().expect("mac")),
        device: Some("reception-1".into()),
        label: Some("Front desk PC 1".into()),
        group: None,
        service: "chatgpt".into(),
        service_name: "ChatGPT".into(),
        category: None,
        tier: None,
        verdict: aiwarden::policy::Verdict::Block,
        mode: aiwarden::policy::Mode::Enforce,
        how: "dns".parse().expect("how"),
        host: "chatgpt.com".into(),
        rule: "catalog/openai.toml:chatgpt".into(),
    }
}

#[test]
fn unblock_records_lists_and_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("incidents.db");
    aiwarden::store::Store::open(&db)
        .expect("store")
        .append_incidents(&[incident(1_763_888_400_000_000)])
        .expect("append");

    let out = aiwarden(
        &db,
        &[
            "unblock",
            "52-54-00-12-34-56",
            "chatgpt.com",
            "--for",
            "90m",
            "--by",
            "Dr Rivera",
            "--note",
            "pilot of the clinic's ChatGPT Enterprise workspace",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out).starts_with("unblock 2: 52:54:00:12:34:56 may reach chatgpt.com until"));
    let out = aiwarden(
        &db,
        &["unblock", "front desk pc 1", "--by", "IT", "--note", "demo"],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out).contains("every blocked AI host"), "{out:?}");

    let out = aiwarden(&db, &["unblock", "--list"]);
    assert!(out.status.success(), "{out:?}");
    let list = text(&out);
    assert!(
        list.contains("52:54:00:12:34:56") && list.contains("chatgpt.com"),
        "{list}"
    );
    assert!(
        list.contains("front desk pc 1") && list.contains("all AI"),
        "{list}"
    );
    assert_eq!(list.matches("active").count(), 2, "{list}");

    let out = aiwarden(&db, &["unblock", "--list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let rows = v.as_array().expect("array");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["by"], "Dr Rivera");
    assert_eq!(rows[1]["host"], serde_json::Value::Null);
    let span = rows[0]["until"].as_i64().expect("until") - rows[0]["ts"].as_i64().expect("ts");
    assert_eq!(span, 90 * 60 * 1_000_000);

    // The chain holds the unblocks; the incidents list as before.
    let out = aiwarden(&db, &["verify"]);
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out).contains("intact (3 rows)"), "{out:?}");
    let out = aiwarden(
        &db,
        &["incidents", "list", "--device", "10.0.0.21", "--json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(1));

    // What the daemon reads.
    let store = aiwarden::store::Store::open_read_only(&db).expect("read only");
    let now = aiwarden::store::writer::now_micros();
    assert_eq!(store.active_unblocks(now).expect("active").len(), 2);
    assert!(store
        .active_unblocks(now + 2 * 3600 * 1_000_000)
        .expect("later")
        .is_empty());
}

#[test]
fn bad_unblocks_exit_2_and_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("incidents.db");
    aiwarden::store::Store::open(&db).expect("store");
    for (args, says) in [
        (
            vec![
                "unblock", "10.0.0.5", "--for", "soon", "--by", "IT", "--note", "x",
            ],
            "--for",
        ),
        (
            vec![
                "unblock", "10.0.0.5", "--for", "0s", "--by", "IT", "--note", "x",
            ],
            "--for",
        ),
        (
            vec![
                "unblock", "10.0.0.5", "--for", "40days", "--by", "IT", "--note", "x",
            ],
            "31 days",
        ),
        (
            vec!["unblock", "10.0.0.5", "--by", " ", "--note", "x"],
            "--by",
        ),
        (
            vec!["unblock", "10.0.0.5", "--by", "IT", "--note", ""],
            "--note",
        ),
        (vec!["unblock", "10.0.0.5", "--note", "x"], "--by"),
        (
            vec![
                "unblock", "10.0.0.5", "bad host", "--by", "IT", "--note", "x",
            ],
            "host pattern",
        ),
        (vec!["unblock", "--by", "IT", "--note", "x"], "DEVICE"),
    ] {
        let out = aiwarden(&db, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let out = aiwarden(&db, &["unblock", "--list"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out).lines().count(), 1, "the header only");
}
