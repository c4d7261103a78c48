//! The store's writer thread: the one owner of the daemon's connection. It batches the
//! pipeline's operations into transactions (an incident is committed within about 50 ms
//! of opening), maps the pipeline's incident keys to row ids, and runs retention once a
//! day on the same connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustc_hash::FxHashMap;

use super::Store;
use crate::error::Result;
use crate::incident::{IncidentOp, Touch, Usage};
use crate::metrics::Metrics;
use crate::policy::Verdict;

/// What reaches the writer.
#[derive(Debug)]
pub enum StoreOp {
    /// An incident opened or touched.
    Incident(IncidentOp),
    /// One attempt of a service on a day.
    Usage(Usage),
    /// The pipeline closed incident `key`: its row id is no longer needed.
    Forget(u64),
}

/// How the writer runs.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Days incidents are kept.
    pub retention_days: u32,
    /// How often retention runs.
    pub purge_every: Duration,
}

/// Now, in unix microseconds (the writer is a shell; the core never reads the clock).
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The cutoff of a retention of `days` at `now` (unix microseconds).
pub fn retention_cutoff(now: i64, days: u32) -> i64 {
    now - i64::from(days) * 86_400 * 1_000_000
}

/// Runs retention now; logs what it did.
pub fn purge(store: &mut Store, days: u32) -> Result<u64> {
    let n = store.purge_before(retention_cutoff(now_micros(), days))?;
    if n > 0 {
        tracing::info!(rows = n, "retention purge");
    }
    Ok(n)
}

/// Writes until every sender is gone, then flushes what is queued and returns. `beat` is
/// stamped (unix microseconds) while the thread is alive, for health and the watchdog.
pub fn run(
    mut store: Store,
    rx: Receiver<StoreOp>,
    cfg: &WriterConfig,
    metrics: &Metrics,
    beat: &AtomicU64,
) {
    let mut ids: FxHashMap<u64, i64> = FxHashMap::default();
    let mut pending: Vec<StoreOp> = Vec::new();
    let mut open = true;
    let mut last_purge = Instant::now();
    let stamp = || beat.store(now_micros().max(0) as u64, Ordering::Relaxed);
    stamp();
    while open || !pending.is_empty() {
        // Collect a batch: wait for the first op, then take what else is queued for up to
        // 50 ms (at most 1,000 ops), and write it in one transaction.
        if open && pending.is_empty() {
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(op) => pending.push(op),
                Err(RecvTimeoutError::Timeout) => {
                    stamp();
                    maybe_purge(&mut store, cfg, &mut last_purge, metrics);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
        }
        let deadline = Instant::now() + Duration::from_millis(50);
        while open && pending.len() < 1_000 {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(op) => pending.push(op),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
        }
        stamp();
        match write_batch(&mut store, &pending, &mut ids) {
            Ok(()) => pending.clear(),
            Err(e) => {
                metrics.store_errors.inc();
                tracing::error!(error = %e, ops = pending.len(), "store write failed; retrying");
                std::thread::sleep(Duration::from_millis(500));
                if !open && pending.len() > 100_000 {
                    return;
                }
            }
        }
        maybe_purge(&mut store, cfg, &mut last_purge, metrics);
    }
}

fn maybe_purge(store: &mut Store, cfg: &WriterConfig, last: &mut Instant, metrics: &Metrics) {
    if last.elapsed() < cfg.purge_every {
        return;
    }
    *last = Instant::now();
    if let Err(e) = purge(store, cfg.retention_days) {
        metrics.store_errors.inc();
        tracing::warn!(error = %e, "retention purge");
    }
}

/// Writes one batch: new incidents first (so touches in the same batch find their rows),
/// then touches, usage, and forgotten keys.
fn write_batch(store: &mut Store, ops: &[StoreOp], ids: &mut FxHashMap<u64, i64>) -> Result<()> {
    let mut opened = Vec::new();
    let mut keys = Vec::new();
    for op in ops {
        if let StoreOp::Incident(IncidentOp::Open { key, record }) = op {
            if !ids.contains_key(key) {
                opened.push((**record).clone());
                keys.push(*key);
            }
        }
    }
    if !opened.is_empty() {
        let new_ids = store.append_incidents(&opened)?;
        for (k, id) in keys.into_iter().zip(new_ids) {
            ids.insert(k, id);
        }
    }
    let mut touches: Vec<(i64, Touch)> = Vec::new();
    let mut usage: FxHashMap<(&str, &str, Verdict), u64> = FxHashMap::default();
    for op in ops {
        match op {
            StoreOp::Incident(IncidentOp::Touch { key, touch }) => {
                if let Some(id) = ids.get(key) {
                    touches.push((*id, touch.clone()));
                }
            }
            StoreOp::Usage(u) => {
                *usage
                    .entry((u.day.as_str(), u.service.as_str(), u.verdict))
                    .or_insert(0) += 1;
            }
            StoreOp::Incident(IncidentOp::Open { .. }) | StoreOp::Forget(_) => {}
        }
    }
    if !touches.is_empty() {
        store.touch_batch(&touches)?;
    }
    if !usage.is_empty() {
        let rows: Vec<(String, String, Verdict, u64)> = usage
            .into_iter()
            .map(|((d, s, v), n)| (d.to_string(), s.to_string(), v, n))
            .collect();
        store.add_usage_batch(&rows)?;
    }
    for op in ops {
        if let StoreOp::Forget(key) = op {
            ids.remove(key);
        }
    }
    Ok(())
}

/// A writer running on its own thread.
#[derive(Debug)]
pub struct Writer {
    /// Where operations go. Dropping every clone lets the writer flush and stop.
    pub tx: std::sync::mpsc::SyncSender<StoreOp>,
    /// The thread, to join after the senders are gone.
    pub thread: std::thread::JoinHandle<()>,
}

/// Starts the writer thread with a queue of `queue` operations.
pub fn spawn(
    store: Store,
    queue: usize,
    cfg: WriterConfig,
    metrics: Arc<Metrics>,
    beat: Arc<AtomicU64>,
) -> std::io::Result<Writer> {
    let (tx, rx) = std::sync::mpsc::sync_channel(queue);
    let thread = std::thread::Builder::new()
        .name("aiwarden-store".into())
        .spawn(move || run(store, rx, &cfg, &metrics, &beat))?;
    Ok(Writer { tx, thread })
}
