//! A writer killed with SIGKILL in the middle of a stream of transactions loses nothing it
//! committed, and the chain still verifies. The test runs its own binary again as the writer
//! (told so by an environment variable) and learns what was committed from its stdout.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use aiwarden::detect::Proto;
use aiwarden::incident::{How, IncidentRecord};
use aiwarden::policy::{Mode, Verdict};
use aiwarden::store::Store;

/// Set in the child: the store it writes to.
const WRITER_DB: &str = "AIWARDEN_TEST_STORE_WRITER_DB";
/// Marks the child's lines among libtest's own output.
const MARK: &str = "committed:";
/// Batches the parent waits for before it kills the writer.
const BATCHES_BEFORE_KILL: usize = 5;

#[test]
fn sigkill_mid_stream_keeps_every_committed_row() {
    if let Some(db) = std::env::var_os(WRITER_DB) {
        write_until_killed(Path::new(&db));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("incidents.db");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "sigkill_mid_stream_keeps_every_committed_row",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WRITER_DB, &db)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the writer");
    let stdout = child.stdout.take().expect("child stdout");

    let mut committed: Vec<i64> = Vec::new();
    let mut batches = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read the writer");
        let Some((_, ids)) = line.split_once(MARK) else {
            continue;
        };
        committed.extend(
            ids.split_whitespace()
                .map(|id| id.parse::<i64>().expect("an id")),
        );
        batches += 1;
        if batches == BATCHES_BEFORE_KILL {
            break;
        }
    }
    assert_eq!(batches, BATCHES_BEFORE_KILL, "the writer stopped early");
    child.kill().expect("SIGKILL the writer");
    let status = child.wait().expect("reap the writer");
    assert!(!status.success(), "the writer was killed: {status:?}");

    let mut store = Store::open(&db).expect("open after the kill");
    let report = store.verify().expect("verify");
    assert!(report.is_intact(), "{report:?}");
    assert!(report.rows >= committed.len() as u64);
    let listed = store.list(&Default::default()).expect("list");
    let present: HashSet<i64> = listed
        .iter()
        .flat_map(|r| std::iter::once(r.id).chain(r.acks.iter().map(|a| a.id)))
        .collect();
    for id in &committed {
        assert!(present.contains(id), "committed row {id} is gone");
    }
    // The store takes new writes where the chain left off.
    let head = store.head().expect("head").expect("rows");
    let next = store
        .append_incidents(&[incident(head.id + 1)])
        .expect("append after the kill");
    assert_eq!(next, vec![head.id + 1]);
    assert!(store.verify().expect("verify").is_intact());
}

/// The child: appends batches of incidents and an ack each, printing the committed ids,
/// until it is killed (or its reader goes away).
fn write_until_killed(db: &Path) {
    let mut store = Store::open(db).expect("writer opens the store");
    let mut out = std::io::stdout().lock();
    for batch in 0..100_000_i64 {
        let incidents: Vec<_> = (0..25).map(|i| incident(batch * 100 + i)).collect();
        let mut ids = store.append_incidents(&incidents).expect("append");
        ids.push(
            store
                .ack(ids[0], batch * 100 + 50, "Dr. Ada", "trained")
                .expect("ack"),
        );
        let line = ids
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        if writeln!(out, "{MARK} {line}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return;
        }
    }
}

fn incident(ts: i64) -> IncidentRecord {
    IncidentRecord {
        ts,
        client_ip: [10, 0, 0, 5].into(),
        client_mac: None,
        device: None,
        label: None,
        group: None,
        service: "chatgpt".into(),
        service_name: "ChatGPT".into(),
        category: None,
        tier: None,
        verdict: Verdict::Flag,
        mode: Mode::Monitor,
        how: How::of(Proto::Tls),
        host: "chatgpt.com".into(),
        rule: "catalog/openai.toml:chatgpt".into(),
    }
}
