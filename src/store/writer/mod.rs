//! The store's writer thread: the one owner of the daemon's connection, and of the store's
//! whole life, so the store never stops the daemon. It opens the store itself and, while it
//! cannot (a read-only, full or missing directory, a lock held too long, a file from a newer
//! aiwarden), keeps what arrives in a bounded spool (memory and `<store>.spool`) and
//! retries with backoff (0.25 s doubling to [`WriterConfig::retry_max`]); when the store
//! comes back it writes the spool first, in order. A corrupt file, one deleted or replaced while open, or a tail
//! that no longer matches its head is set aside and a new chain begins with a `break` row;
//! what was pending goes to the new file.
//!
//! It batches the pipeline's operations into transactions (an incident is committed within
//! about 50 ms of opening), maps the pipeline's incident keys to row ids (keeping each open
//! incident's record, so a touch after a break opens it again in the new chain), and runs
//! retention after opening and once a day. It reports `store` in [`Health`] and its metrics:
//! `aiwarden_store_up`, `aiwarden_store_spooled_ops`, `aiwarden_store_dropped_ops_total`,
//! `aiwarden_store_errors_total{kind}`, `aiwarden_store_reopen_attempts_total`. Failed
//! writes and dropped operations are logged once per [`LOG_EVERY`] with a count.
//!
//! At shutdown it keeps trying for [`WriterConfig::shutdown_grace`], then leaves what it
//! could not write in the spool file (written by the next start) or, when even that cannot
//! be written, counts and logs it as lost.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use super::spool::{Limits, Spool, Spooled};
use super::{store_error, Store, StoreOptions};
use crate::error::{Error, Result, StoreFault};
use crate::health::{Health, State};
use crate::incident::IncidentRecord;
use crate::metrics::Metrics;
use crate::policy::Verdict;

pub use super::{now_micros, StoreOp};
use aside::breaks;
use plan::{clone_op, plan};

mod aside;
mod plan;

/// How often a failure that repeats is logged (with the count since the last line).
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// How the writer runs.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Days incidents are kept.
    pub retention_days: u32,
    /// How often retention runs.
    pub purge_every: Duration,
    /// Sign the head file with an HMAC key (`<store>.key`, created on first run).
    pub keyed: bool,
    /// The spool's bound in operations.
    pub spool_ops: usize,
    /// The spool's bound in bytes of memory.
    pub spool_bytes: usize,
    /// The longest wait between two attempts to open the store.
    pub retry_max: Duration,
    /// How long shutdown keeps trying to write what waits before leaving it in the spool file.
    pub shutdown_grace: Duration,
}

impl WriterConfig {
    /// The daemon's settings: retention of `retention_days`, daily purge, 50,000 operations
    /// or 16 MiB of spool, retries at most 5 s apart, 5 s of grace at shutdown.
    pub fn new(retention_days: u32, keyed: bool) -> WriterConfig {
        WriterConfig {
            retention_days,
            purge_every: Duration::from_secs(86_400),
            keyed,
            spool_ops: 50_000,
            spool_bytes: 16 << 20,
            retry_max: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(5),
        }
    }
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

/// A writer running on its own thread.
#[derive(Debug)]
pub struct Writer {
    /// Where operations go. Dropping every clone lets the writer flush and stop.
    pub tx: std::sync::mpsc::SyncSender<StoreOp>,
    /// The thread, to join after the senders are gone.
    pub thread: std::thread::JoinHandle<()>,
}

/// Starts the writer thread for the store at `path` with a queue of `queue` operations.
/// `beat` is stamped (unix microseconds) while the thread is alive.
pub fn spawn(
    path: PathBuf,
    queue: usize,
    cfg: WriterConfig,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    beat: Arc<AtomicU64>,
) -> std::io::Result<Writer> {
    let (tx, rx) = std::sync::mpsc::sync_channel(queue);
    let thread = std::thread::Builder::new()
        .name("aiwarden-store".into())
        .spawn(move || run(&path, rx, &cfg, &metrics, &health, &beat))?;
    Ok(Writer { tx, thread })
}

/// Writes until every sender is gone, then flushes what waits (for at most the shutdown
/// grace) and returns.
pub fn run(
    path: &Path,
    rx: Receiver<StoreOp>,
    cfg: &WriterConfig,
    metrics: &Metrics,
    health: &Health,
    beat: &AtomicU64,
) {
    let stamp = || beat.store(now_micros().max(0) as u64, Ordering::Relaxed);
    stamp();
    let mut w = Shell::new(path, cfg, metrics, health);
    w.load_spool();
    w.open(Instant::now());
    w.publish();
    let mut open = true;
    while open {
        let mut ops = Vec::new();
        match rx.recv_timeout(w.wait(Instant::now())) {
            Ok(op) => ops.push(op),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => open = false,
        }
        // Collect a batch: what else is queued for up to 50 ms (at most 1,000 ops).
        if !ops.is_empty() {
            let deadline = Instant::now() + Duration::from_millis(50);
            while open && ops.len() < 1_000 {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(op) => ops.push(op),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => open = false,
                }
            }
        }
        stamp();
        w.tick(ops, Instant::now());
    }
    w.shutdown(Instant::now() + cfg.shutdown_grace, &stamp);
}

/// Why the store is not being written.
#[derive(Debug)]
struct Down {
    /// The error, for health and the log.
    message: String,
}

/// An incident the writer knows: its row in the current chain (none after a break, until
/// a touch opens it again) and its record.
#[derive(Debug)]
struct Known {
    id: Option<i64>,
    record: Box<IncidentRecord>,
}

/// Logs a repeating failure once per [`LOG_EVERY`] with a count.
#[derive(Debug, Default)]
struct Every {
    last: Option<Instant>,
    held: u64,
}

impl Every {
    /// Counts `n`; `Some(total since the last line)` when a line is due.
    fn hit(&mut self, now: Instant, n: u64) -> Option<u64> {
        self.held += n;
        if self.last.is_some_and(|l| now.duration_since(l) < LOG_EVERY) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held))
    }
}

/// The writer's state.
struct Shell<'a> {
    path: PathBuf,
    cfg: &'a WriterConfig,
    metrics: &'a Metrics,
    health: &'a Health,
    /// This process's pipeline keys are `(epoch, key)`: a spool file from an earlier
    /// process carries its own.
    epoch: u64,
    store: Option<Store>,
    down: Option<Down>,
    retry_at: Instant,
    backoff: Duration,
    spool: Spool,
    ids: FxHashMap<(u64, u64), Known>,
    last_purge: Option<Instant>,
    last_watch: Instant,
    /// A break happened in this process: said in health until it restarts.
    broke: Option<String>,
    /// Breaks since the last successful write.
    breaks_in_row: u32,
    /// The spool positions already skipped for the open store.
    skipped: bool,
    write_errors: Every,
    drops: Every,
}

const FIRST_RETRY: Duration = Duration::from_millis(250);

impl<'a> Shell<'a> {
    fn new(path: &Path, cfg: &'a WriterConfig, metrics: &'a Metrics, health: &'a Health) -> Self {
        Shell {
            path: path.to_path_buf(),
            cfg,
            metrics,
            health,
            epoch: now_micros().max(0) as u64,
            store: None,
            down: None,
            retry_at: Instant::now(),
            backoff: FIRST_RETRY,
            spool: Spool::new(
                path,
                Limits {
                    ops: cfg.spool_ops,
                    bytes: cfg.spool_bytes,
                },
            ),
            ids: FxHashMap::default(),
            last_purge: None,
            last_watch: Instant::now(),
            broke: None,
            breaks_in_row: 0,
            skipped: false,
            write_errors: Every::default(),
            drops: Every::default(),
        }
    }

    /// How long to wait for operations before the next chore.
    fn wait(&self, now: Instant) -> Duration {
        let idle = Duration::from_millis(500);
        match &self.store {
            Some(_) if !self.spool.is_empty() => Duration::ZERO,
            Some(_) => idle,
            None => self.retry_at.saturating_duration_since(now).min(idle),
        }
    }

    /// Loads a spool file an earlier writer left.
    fn load_spool(&mut self) {
        match self.spool.load() {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                ops = n,
                file = %self.spool.path().display(),
                "store: spooled operations from the last run will be written first"
            ),
            Err(e) => {
                self.error_metric("spool");
                tracing::error!(error = %e, "store: cannot read the spool file");
            }
        }
    }

    /// One round: write or spool `ops`, retry the store when due, write the spool, check the
    /// file, purge when due, publish health and metrics.
    fn tick(&mut self, ops: Vec<StoreOp>, now: Instant) {
        if !ops.is_empty() {
            if self.store.is_some() && self.spool.is_empty() {
                let tagged: Vec<(u64, StoreOp)> =
                    ops.into_iter().map(|o| (self.epoch, o)).collect();
                if let Err(e) = self.write(&tagged, None, &[]) {
                    self.fail(e, now);
                    self.spool_all(tagged.into_iter().map(|(_, o)| o).collect(), now);
                }
            } else {
                self.spool_all(ops, now);
            }
        }
        if self.store.is_none() && now >= self.retry_at {
            self.open(now);
        }
        if self.store.is_some() && !self.spool.is_empty() {
            self.drain(now);
        }
        if self.last_watch.elapsed() >= Duration::from_secs(1) {
            self.last_watch = Instant::now();
            if let Some(Err(e)) = self.store.as_ref().map(Store::check_file) {
                self.fail(e, now);
            }
        }
        self.maybe_purge();
        self.publish();
    }

    /// Spools `ops` (counting and logging what does not fit).
    fn spool_all(&mut self, ops: Vec<StoreOp>, now: Instant) {
        let mut dropped = 0u64;
        for op in ops {
            if self.spool.push(self.epoch, op).is_err() {
                dropped += 1;
            }
        }
        if !self.spool.persist() {
            self.error_metric("spool");
            tracing::warn!(
                file = %self.spool.path().display(),
                "store: the spool file cannot be written; the spool is in memory only"
            );
        }
        if dropped > 0 {
            self.metrics
                .store_dropped
                .with_label_values(&["spool_full"])
                .inc_by(dropped);
            if let Some(n) = self.drops.hit(now, dropped) {
                tracing::error!(
                    dropped = n,
                    spooled = self.spool.len(),
                    "store: the spool is full; operations dropped"
                );
            }
        }
    }

    /// Writes spooled operations, oldest first, one batch per call.
    fn drain(&mut self, now: Instant) {
        if !self.skipped {
            self.skipped = true;
            let id = self.spool.file_id().map(str::to_string);
            let pos = match (id, self.store.as_ref()) {
                (Some(id), Some(store)) => store.spool_position(&id),
                _ => Ok(None),
            };
            match pos {
                Ok(Some(seq)) => {
                    let n = self.spool.drop_through(seq);
                    if n > 0 {
                        tracing::info!(ops = n, "store: spooled operations already written");
                    }
                }
                Ok(None) => {}
                Err(e) => return self.fail(e, now),
            }
        }
        let tagged: Vec<(u64, StoreOp)> = self
            .spool
            .front(1_000)
            .map(|s: &Spooled| (s.epoch, clone_op(&s.op)))
            .collect();
        let mark = match (self.spool.file_id(), self.spool.front(tagged.len()).last()) {
            (Some(id), Some(last)) => Some((id.to_string(), last.seq)),
            _ => None,
        };
        let usage = self.spool.take_usage();
        match self.write(&tagged, mark, &usage) {
            Ok(()) => {
                self.spool.pop(tagged.len());
                if self.spool.is_empty() {
                    self.forget_old_epochs();
                    tracing::info!("store: every spooled operation is written");
                }
            }
            Err(e) => {
                self.spool.restore_usage(usage);
                self.fail(e, now);
            }
        }
    }

    /// Writes operations in one transaction (with summed `usage` and the spool position
    /// `mark`), then maps the new incidents' keys to their rows and forgets closed keys.
    fn write(
        &mut self,
        tagged: &[(u64, StoreOp)],
        mark: Option<(String, i64)>,
        usage: &[(String, String, Verdict, u64)],
    ) -> Result<()> {
        let (mut batch, keys, orphans) = plan(tagged, &self.ids);
        batch.usage.extend(usage.iter().cloned());
        batch.spool = mark;
        let Some(store) = self.store.as_mut() else {
            return Err(store_error(
                &self.path,
                StoreFault::Other,
                "not open".into(),
            ));
        };
        let written = match store.write(&batch) {
            Ok(w) => w,
            Err(Error::Usage(why)) => {
                // A value the store refuses will be refused again: drop it, never retry.
                self.metrics
                    .store_dropped
                    .with_label_values(&["invalid"])
                    .inc_by(tagged.len() as u64);
                tracing::error!(error = %why, ops = tagged.len(), "store: batch refused");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        self.breaks_in_row = 0;
        let head_error = store.take_head_error();
        self.recovered();
        if let Some(e) = head_error {
            self.error_metric("head_write");
            if let Some(n) = self.write_errors.hit(Instant::now(), 1) {
                tracing::warn!(error = %e, failures = n, "store: head file not updated");
            }
        }
        for ((k, record), id) in keys.into_iter().zip(batch.incidents).zip(written.ids) {
            self.ids.insert(
                k,
                Known {
                    id: Some(id),
                    record: Box::new(record),
                },
            );
        }
        let missing = written.missing.len() + orphans;
        if missing > 0 {
            tracing::debug!(
                touches = missing,
                "store: touches of incidents not in the store"
            );
        }
        for (epoch, op) in tagged {
            if let StoreOp::Forget(key) = op {
                self.ids.remove(&(*epoch, *key));
            }
        }
        Ok(())
    }

    /// Handles a failed open or write: a corrupt, vanished or tampered store is set aside
    /// and a new chain begins; anything else makes the store down until a retry works.
    fn fail(&mut self, e: Error, now: Instant) {
        let kind = kind(&e);
        self.error_metric(kind);
        // A new chain that fails the same way at once would be set aside again and again:
        // at most three breaks before a write succeeds.
        if breaks(&e) && self.breaks_in_row < 3 {
            self.break_chain(e, now);
            return;
        }
        self.store = None;
        self.skipped = false;
        let first = self.down.is_none();
        if first {
            tracing::error!(error = %e, spooled = self.spool.len(), "store: cannot write; spooling");
        } else if let Some(n) = self.write_errors.hit(now, 1) {
            tracing::warn!(error = %e, failures = n, spooled = self.spool.len(), "store: still down");
        }
        self.down = Some(Down {
            message: e.to_string(),
        });
        self.retry_at = now + self.backoff;
        self.backoff = (self.backoff * 2).min(self.cfg.retry_max);
    }

    /// Opens the store (at start and on each retry).
    fn open(&mut self, now: Instant) {
        if self.down.is_some() {
            self.metrics.store_reopen_attempts.inc();
        }
        match Store::open_with(
            &self.path,
            StoreOptions {
                keyed: self.cfg.keyed,
            },
        ) {
            Ok(store) => self.up(store),
            Err(e) => self.fail(e, now),
        }
    }

    /// The store opened. It is back only once a write succeeds (a full disk opens fine and
    /// fails the first write): until then the backoff keeps growing and failures are not
    /// logged as new.
    fn up(&mut self, store: Store) {
        self.store = Some(store);
        self.skipped = false;
        if self.spool.is_empty() {
            self.recovered();
        }
    }

    /// A write succeeded.
    fn recovered(&mut self) {
        self.backoff = FIRST_RETRY;
        if self.down.take().is_some() {
            tracing::info!(spooled = self.spool.len(), "store: writable again");
        }
    }

    fn maybe_purge(&mut self) {
        let Some(store) = self.store.as_mut() else {
            return;
        };
        if self
            .last_purge
            .is_some_and(|t| t.elapsed() < self.cfg.purge_every)
        {
            return;
        }
        self.last_purge = Some(Instant::now());
        if let Err(e) = purge(store, self.cfg.retention_days) {
            self.error_metric(kind(&e));
            tracing::warn!(error = %e, "retention purge");
        }
    }

    /// After the spool drained: keys of earlier processes will not come again.
    fn forget_old_epochs(&mut self) {
        let epoch = self.epoch;
        self.ids.retain(|(e, _), _| *e == epoch);
    }

    fn error_metric(&self, kind: &str) {
        self.metrics.store_errors.with_label_values(&[kind]).inc();
    }

    /// Health and gauges.
    fn publish(&self) {
        let spooled = self.spool.incidents();
        let state = match (&self.down, &self.broke) {
            (Some(d), _) => State::Down(format!("{} ({spooled} incidents spooled)", d.message)),
            (None, _) if !self.spool.is_empty() => State::Degraded(format!(
                "writing {spooled} spooled incidents ({} operations)",
                self.spool.len()
            )),
            (None, Some(b)) => State::Degraded(b.clone()),
            (None, None) => State::Ok,
        };
        self.health.set("store", state);
        self.metrics.store_spooled.set(self.spool.len() as i64);
        self.metrics.store_up.set(i64::from(self.store.is_some()));
    }

    /// The senders are gone: keeps writing what waits until `deadline`, then leaves the rest
    /// in the spool file, or counts it as lost when that cannot be written either.
    fn shutdown(&mut self, deadline: Instant, stamp: &dyn Fn()) {
        while !self.spool.is_empty() && Instant::now() < deadline {
            stamp();
            let now = Instant::now();
            if self.store.is_none() {
                if now < self.retry_at {
                    std::thread::sleep(self.retry_at.min(deadline).saturating_duration_since(now));
                    continue;
                }
                self.open(now);
            }
            if self.store.is_some() {
                self.drain(Instant::now());
            }
            self.publish();
        }
        if self.spool.is_empty() {
            return;
        }
        let (ops, incidents) = (self.spool.len(), self.spool.incidents());
        match self.spool.save_all() {
            Ok(_) => tracing::warn!(
                ops,
                incidents,
                file = %self.spool.path().display(),
                "store: not written before shutdown; kept in the spool file for the next start"
            ),
            Err(e) => {
                self.metrics
                    .store_dropped
                    .with_label_values(&["shutdown"])
                    .inc_by(ops as u64);
                tracing::error!(
                    ops,
                    incidents,
                    error = %e,
                    "store: not written before shutdown and the spool file cannot be written: lost"
                );
            }
        }
    }
}

/// The `kind` label of `aiwarden_store_errors_total` for an error.
fn kind(e: &Error) -> &'static str {
    match e {
        Error::Store { fault, .. } => fault.as_str(),
        Error::Tampered { .. } => "tampered",
        Error::StoreHead { .. } => "head",
        Error::StoreVersion { .. } => "version",
        _ => "other",
    }
}

#[cfg(test)]
mod tests;
