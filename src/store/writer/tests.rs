//! The writer's tests: batches planned from operations (touches paired with their opens,
//! across batches and across a break), the spool (bounds, summed usage, its file across a
//! restart), and the writer thread under faults: a missing directory, a corrupt file, a
//! file deleted while open, shutdown while the store is down.

use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;
use std::time::SystemTime;

use super::*;
use crate::incident::{IncidentOp, Usage};
use crate::store::files::sibling;
use crate::store::spool::Limits;
use crate::store::tests::{filled, incident, touch, S};
use crate::store::write::Target;
use crate::store::{ListFilter, Tail};

/// Now, in seconds: retention keeps what the writer tests write.
fn now_s() -> i64 {
    now_micros() / S
}

fn open(key: u64, ip: &str) -> StoreOp {
    StoreOp::Incident(IncidentOp::Open {
        key,
        record: Box::new(incident(now_s(), ip, "chatgpt")),
    })
}

fn touched(key: u64, host: &str) -> StoreOp {
    StoreOp::Incident(IncidentOp::Touch {
        key,
        touch: touch(now_micros() + S, true, host, "dns"),
    })
}

fn usage(service: &str) -> StoreOp {
    StoreOp::Usage(Usage {
        day: humantime::format_rfc3339(SystemTime::now()).to_string()[..10].to_string(),
        service: service.into(),
        verdict: Verdict::Flag,
    })
}

#[test]
fn plan_pairs_touches_with_their_opens() {
    let mut ids: FxHashMap<(u64, u64), Known> = FxHashMap::default();
    let ops = vec![
        (1, open(7, "10.0.0.7")),
        (1, touched(7, "a.example")),
        (1, touched(3, "b.example")),
        (1, usage("chatgpt")),
        (1, usage("chatgpt")),
        (1, open(7, "10.0.0.7")),
    ];
    let (batch, keys, orphans) = plan(&ops, &ids);
    assert_eq!(keys, [(1, 7)], "one incident per key");
    assert_eq!(batch.touches.len(), 1);
    assert_eq!(batch.touches[0].0, Target::New(0));
    assert_eq!(orphans, 1, "key 3 was never opened");
    assert_eq!(batch.usage.len(), 1);
    assert_eq!(batch.usage[0].3, 2);

    // A later batch touches the row; after a break (no row in this chain) the touch opens
    // the incident again from its record.
    ids.insert(
        (1, 7),
        Known {
            id: Some(41),
            record: Box::new(incident(1, "10.0.0.7", "chatgpt")),
        },
    );
    let later = vec![(1, touched(7, "c.example")), (2, touched(7, "d.example"))];
    let (batch, keys, orphans) = plan(&later, &ids);
    assert_eq!(
        (keys.len(), orphans),
        (0, 1),
        "epoch 2's key 7 is another incident"
    );
    assert_eq!(batch.touches[0].0, Target::Row(41));
    if let Some(k) = ids.get_mut(&(1, 7)) {
        k.id = None;
    }
    let (batch, keys, _) = plan(&later[..1], &ids);
    assert_eq!(keys, [(1, 7)]);
    assert_eq!(
        batch.incidents[0],
        incident(1, "10.0.0.7", "chatgpt"),
        "its record"
    );
    assert_eq!(batch.touches[0].0, Target::New(0));
}

#[test]
fn spool_is_bounded_by_count_and_bytes_and_sums_usage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("incidents.db");
    let mut spool = Spool::new(
        &path,
        Limits {
            ops: 3,
            bytes: 1 << 20,
        },
    );
    for i in 0..3 {
        assert!(spool.push(1, open(i, "10.0.0.1")).is_ok());
    }
    assert!(spool.push(1, open(9, "10.0.0.1")).is_err(), "count bound");
    assert_eq!((spool.len(), spool.incidents()), (3, 3));

    let mut spool = Spool::new(
        &path,
        Limits {
            ops: 1000,
            bytes: 2_000,
        },
    );
    let mut n = 0;
    while spool.push(1, open(n, "10.0.0.1")).is_ok() {
        n += 1;
    }
    assert!(n > 0 && n < 10, "byte bound after {n}");
    let mut spool = Spool::new(
        &path,
        Limits {
            ops: 10,
            bytes: 1 << 20,
        },
    );
    for _ in 0..1000 {
        assert!(spool.push(1, usage("chatgpt")).is_ok());
    }
    assert_eq!(spool.len(), 1, "usage is summed, not queued");
    assert_eq!(spool.take_usage()[0].3, 1000);
}

#[test]
fn spool_file_survives_a_restart_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("incidents.db");
    let limits = Limits {
        ops: 100,
        bytes: 1 << 20,
    };
    let mut spool = Spool::new(&path, limits);
    for op in [
        open(1, "10.0.0.1"),
        touched(1, "x.example"),
        StoreOp::Forget(1),
        open(2, "10.0.0.2"),
    ] {
        spool.push(77, op).expect("push");
    }
    spool.push(77, usage("claude")).expect("usage");
    assert!(spool.persist());
    let file = sibling(&path, ".spool");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&file).expect("file").permissions()
        ) & 0o777,
        0o600
    );
    spool.save_all().expect("save");
    let id = spool.file_id().map(str::to_string);

    let mut again = Spool::new(&path, limits);
    assert_eq!(again.load().expect("load"), 4);
    assert_eq!(again.file_id().map(str::to_string), id);
    let seen: Vec<(u64, i64, String)> = again
        .front(10)
        .map(|s| {
            (
                s.epoch,
                s.seq,
                format!("{:?}", s.op).chars().take(20).collect(),
            )
        })
        .collect();
    assert_eq!(seen.iter().map(|s| s.1).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert!(seen.iter().all(|s| s.0 == 77));
    assert!(seen[1].2.starts_with("Incident(Touch"), "{seen:?}");
    let usage = again.take_usage();
    assert_eq!((usage[0].1.as_str(), usage[0].3), ("claude", 1));
    // New operations go on in the same file and order.
    again.push(78, open(1, "10.0.0.3")).expect("push");
    assert_eq!(again.front(10).last().map(|s| s.seq), Some(5));
    assert_eq!(again.drop_through(2), 2);
    again.pop(3);
    assert!(again.is_empty());
    assert!(!file.exists(), "an empty spool leaves no file");
}

struct Running {
    tx: Option<SyncSender<StoreOp>>,
    thread: Option<JoinHandle<()>>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

fn cfg() -> WriterConfig {
    WriterConfig {
        retry_max: Duration::from_millis(200),
        shutdown_grace: Duration::from_millis(300),
        ..WriterConfig::new(crate::store::DEFAULT_RETENTION_DAYS, false)
    }
}

fn start(path: &Path, cfg: WriterConfig) -> Running {
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::new());
    let w = spawn(
        path.to_path_buf(),
        64,
        cfg,
        metrics.clone(),
        health.clone(),
        Arc::new(AtomicU64::new(0)),
    )
    .expect("spawn");
    Running {
        tx: Some(w.tx),
        thread: Some(w.thread),
        metrics,
        health,
    }
}

impl Running {
    fn send(&self, op: StoreOp) {
        self.tx.as_ref().expect("running").send(op).expect("send");
    }

    fn store_state(&self) -> State {
        self.health
            .report()
            .parts
            .into_iter()
            .find(|(p, _)| p == "store")
            .map_or(State::Ok, |(_, s)| s)
    }

    /// Stops the writer; returns how long it took.
    fn stop(&mut self) -> Duration {
        let t = Instant::now();
        drop(self.tx.take());
        if let Some(th) = self.thread.take() {
            th.join().expect("writer thread");
        }
        t.elapsed()
    }
}

/// Waits (at most 10 s) for `cond`.
fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn incidents(path: &Path) -> Vec<crate::store::IncidentRow> {
    Store::open_read_only(path)
        .and_then(|s| s.list(&ListFilter::default()))
        .unwrap_or_default()
}

#[test]
fn a_missing_directory_spools_until_it_appears_then_writes_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let path = state.join("incidents.db");
    let mut w = start(&path, cfg());
    w.send(open(1, "10.0.0.1"));
    w.send(touched(1, "chat.openai.com"));
    w.send(open(2, "10.0.0.2"));
    w.send(usage("chatgpt"));
    until("store down with 2 incidents spooled", || {
        matches!(w.store_state(), State::Down(ref m)
            if m.contains(&format!("directory {} does not exist", state.display()))
                && m.ends_with("(2 incidents spooled)"))
    });
    assert_eq!(w.metrics.store_spooled.get(), 4);
    assert_eq!(w.metrics.store_up.get(), 0);
    assert!(
        w.metrics
            .store_errors
            .with_label_values(&["no_directory"])
            .get()
            >= 1
    );
    std::fs::create_dir(&state).expect("mkdir");
    until("the spool written", || incidents(&path).len() == 2);
    until("store ok", || w.store_state() == State::Ok);
    assert!(w.metrics.store_reopen_attempts.get() >= 1);
    assert_eq!(w.metrics.store_spooled.get(), 0);
    let rows = incidents(&path);
    let first = rows
        .iter()
        .find(|r| r.summary.record.client_ip.to_string() == "10.0.0.1")
        .expect("incident 1");
    assert_eq!(
        first.summary.count, 2,
        "the spooled touch found its spooled open"
    );
    assert!(first.summary.hosts.contains(&"chat.openai.com".to_string()));
    let store = Store::open_read_only(&path).expect("store");
    let today = humantime::format_rfc3339(SystemTime::now()).to_string()[..10].to_string();
    assert_eq!(store.usage(&today, &today).expect("usage")[0].count, 1);
    assert!(store.verify().expect("verify").is_intact());
    w.stop();
}

#[test]
fn a_corrupt_store_is_set_aside_and_a_new_chain_records_the_break() {
    let (dir, store) = filled(2);
    let head = store.head().expect("head").expect("rows");
    drop(store);
    let path = dir.path().join("incidents.db");
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[..100].fill(0x5a);
    std::fs::write(&path, &bytes).expect("clobber");
    let mut w = start(&path, cfg());
    w.send(open(1, "10.0.0.9"));
    until("the incident in the new chain", || {
        incidents(&path).len() == 1
    });
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("incidents.db.corrupt-"))
        .collect();
    let db = aside
        .iter()
        .find(|n| !n.contains(".head") && !n.ends_with("-wal") && !n.ends_with("-shm"))
        .expect("set aside");
    assert!(aside.contains(&format!("{db}.head")), "{aside:?}");
    let report = Store::open_read_only(&path)
        .expect("new")
        .verify()
        .expect("verify");
    assert!(report.is_intact(), "{report:?}");
    let b = &report.breaks[0];
    assert_eq!(b.id, 1);
    assert!(
        b.reason.starts_with("corrupt: ") && b.reason.ends_with(&format!("set aside as {db}")),
        "{b:?}"
    );
    assert_eq!(
        b.prev.as_ref(),
        Some(&head),
        "the old head, from its head file"
    );
    assert_eq!(b.file.as_deref(), Some(db.as_str()));
    assert!(w.metrics.store_errors.with_label_values(&["corrupt"]).get() >= 1);
    assert!(matches!(w.store_state(), State::Degraded(ref m) if m.contains("a new chain began")));
    w.stop();
}

#[test]
fn a_store_deleted_while_open_is_rescued_and_its_incidents_go_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("incidents.db");
    let mut w = start(&path, cfg());
    w.send(open(1, "10.0.0.1"));
    until("incident 1", || incidents(&path).len() == 1);
    std::fs::remove_file(&path).expect("rm");
    w.send(open(2, "10.0.0.2"));
    w.send(touched(1, "chatgpt.com"));
    until("the new chain", || incidents(&path).len() == 2);
    let saved: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.to_string_lossy().contains(".deleted-") && p.extension().is_none_or(|x| x != "head")
        })
        .collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    let old = Store::open_read_only(&saved[0]).expect("rescued");
    let old_report = old.verify().expect("verify");
    assert!(
        old_report.is_intact(),
        "the rescued copy matches its head: {old_report:?}"
    );
    assert_eq!(old_report.rows, 1);
    let report = Store::open_read_only(&path)
        .expect("new")
        .verify()
        .expect("verify");
    assert!(
        report.breaks[0].reason.contains("deleted while open"),
        "{:?}",
        report.breaks
    );
    assert_eq!(report.breaks[0].prev.as_ref().map(|h| h.id), Some(1));
    // Incident 1 was touched after the break: it opens again in the new chain.
    let again = incidents(&path)
        .into_iter()
        .find(|r| r.summary.record.client_ip.to_string() == "10.0.0.1")
        .expect("incident 1 carried on");
    assert_eq!(again.summary.count, 2);
    w.stop();
}

#[test]
fn shutdown_while_down_is_bounded_and_the_spool_file_is_written_next_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("incidents.db");
    // Something that is not a database file sits at the path; the directory takes writes.
    std::fs::create_dir(&path).expect("mkdir");
    let mut w = start(&path, cfg());
    for k in 1..=3 {
        w.send(open(k, &format!("10.0.0.{k}")));
    }
    until(
        "3 spooled",
        || matches!(w.store_state(), State::Down(ref m) if m.ends_with("(3 incidents spooled)")),
    );
    let took = w.stop();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    assert!(sibling(&path, ".spool").exists());
    assert_eq!(
        w.metrics
            .store_dropped
            .with_label_values(&["shutdown"])
            .get(),
        0
    );

    std::fs::remove_dir(&path).expect("rmdir");
    let mut w = start(&path, cfg());
    until("the last run's incidents", || incidents(&path).len() == 3);
    until("the spool file gone", || !sibling(&path, ".spool").exists());
    w.stop();
    assert!(Store::open_read_only(&path)
        .expect("store")
        .verify()
        .expect("verify")
        .is_intact());
}

#[test]
fn shutdown_with_nowhere_to_spool_counts_what_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gone/incidents.db");
    let mut w = start(&path, cfg());
    for k in 1..=2 {
        w.send(open(k, "10.0.0.1"));
    }
    until("2 spooled", || w.metrics.store_spooled.get() == 2);
    let took = w.stop();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    assert_eq!(
        w.metrics
            .store_dropped
            .with_label_values(&["shutdown"])
            .get(),
        2
    );
}

#[test]
fn a_tail_cut_while_running_is_set_aside_with_the_head_it_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("incidents.db");
    let mut w = start(&path, cfg());
    for k in 1..=3 {
        w.send(open(k, &format!("10.0.0.{k}")));
    }
    until("3 incidents", || incidents(&path).len() == 3);
    let head = Store::open_read_only(&path)
        .expect("store")
        .head()
        .expect("head")
        .expect("rows");
    let other = rusqlite::Connection::open(&path).expect("open");
    other
        .execute_batch(
            "PRAGMA foreign_keys = OFF; DROP TRIGGER log_no_delete; DELETE FROM log WHERE id > 1;",
        )
        .expect("cut");
    drop(other);
    w.send(open(4, "10.0.0.4"));
    until("the new chain", || {
        Store::open_read_only(&path)
            .and_then(|s| s.verify())
            // The head file is written just after the commit: wait for it too.
            .is_ok_and(|r| {
                r.breaks.len() == 1 && r.rows == 2 && matches!(r.tail, Tail::Matches { .. })
            })
    });
    let report = Store::open_read_only(&path)
        .expect("new")
        .verify()
        .expect("verify");
    assert!(
        report.breaks[0].reason.contains("rows 2 to 3 were cut off"),
        "{:?}",
        report.breaks
    );
    assert_eq!(report.breaks[0].prev.as_ref(), Some(&head));
    assert!(matches!(report.tail, Tail::Matches { .. }));
    assert!(
        w.metrics
            .store_errors
            .with_label_values(&["tampered"])
            .get()
            >= 1
    );
    w.stop();
}
