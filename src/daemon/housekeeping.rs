//! The daemon's housekeeping thread: rules reloads (on SIGHUP and when a file under the
//! rules directories changes), device identity refreshes (every `refresh_secs`, and at
//! once, at most once a second, when detection meets an address nobody knows) and the
//! unblocks in force, read from the store every [`UNBLOCKS_EVERY`] and on SIGHUP. All read
//! files or run `ip`; they live here so neither the async runtime nor the detection thread
//! ever waits on them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;

use crate::devices::{self, DeviceMap};
use crate::error::{Error, Result};
use crate::limit::Throttle;
use crate::metrics::Metrics;
use crate::policy::unblock::Unblocks;
use crate::policy::{Live, RuleDirs};
use crate::store::writer::now_micros;
use crate::store::Store;

/// How often the unblocks in force are read from the store: what `aiwarden unblock` waits
/// for at most before the daemon lets the device through.
pub(super) const UNBLOCKS_EVERY: Duration = Duration::from_secs(2);

/// How long after a failed write of the rules' version it is tried again.
const RECORD_RETRY: Duration = Duration::from_secs(5);

/// Work for the housekeeping thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chore {
    /// Reload the rules (SIGHUP).
    Reload,
    /// Re-read the neighbour table and leases: detection met an unknown address.
    RefreshDevices,
}

/// What the thread looks after.
pub(super) struct Housekeeping {
    /// The rules in force.
    pub live: Arc<Live>,
    /// The device map in force.
    pub devices: Arc<ArcSwap<DeviceMap>>,
    /// Where device identity comes from.
    pub sources: devices::Sources,
    /// Seconds between device refreshes.
    pub refresh_every: Duration,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The unblocks in force, for the enforcement paths.
    pub unblocks: Arc<ArcSwap<Unblocks>>,
    /// The store unblocks are read from; rules loads are recorded in it too (the writer
    /// thread owns the incident writes).
    pub store: PathBuf,
    /// One log line per interval for unblock reads that fail.
    pub unblocks_log: Throttle,
}

/// Publishes the rule set in force to the metrics.
pub(super) fn publish_rules(metrics: &Metrics, live: &Live) {
    let rules = live.current();
    metrics.rules_version.set(live.version() as i64);
    metrics
        .rules_loaded
        .with_label_values(&["services"])
        .set(rules.services().count() as i64);
    metrics
        .rules_loaded
        .with_label_values(&["patterns"])
        .set(rules.pattern_count() as i64);
}

fn reload(live: &Live, metrics: &Metrics) {
    match live.reload() {
        Ok(r) => {
            for w in &r.warnings {
                tracing::warn!(%w, "rules");
            }
            tracing::info!(
                version = r.version,
                services = r.services,
                patterns = r.patterns,
                "rules reloaded"
            );
            metrics.rules_reloads.with_label_values(&["ok"]).inc();
            metrics.rules_last_reload_ok.set(1);
            publish_rules(metrics, live);
        }
        Err(e) => {
            tracing::error!(error = %e, "rules reload failed; the previous rules stay in force");
            metrics.rules_reloads.with_label_values(&["error"]).inc();
            metrics.rules_last_reload_ok.set(0);
        }
    }
}

/// Names, sizes and modification times of every file in the rules directories.
fn rules_stamp(dirs: &RuleDirs) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut out = Vec::new();
    for dir in [&dirs.catalog, &dirs.site] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if let Ok(m) = e.metadata() {
                    out.push((e.path(), m.len(), m.modified().ok()));
                }
            }
        }
    }
    out.sort();
    out
}

/// The unblocks in force at `now` in the store at `path`, opened read-only.
fn read_unblocks(path: &Path, now: i64) -> Result<Unblocks> {
    Ok(Unblocks::new(
        Store::open_read_only(path)?.active_unblocks(now)?,
    ))
}

impl Housekeeping {
    fn refresh_devices(&self) {
        match devices::load(&self.sources, SystemTime::now()) {
            Ok(m) => self.devices.store(Arc::new(m)),
            Err(e) => tracing::warn!(error = %e, "devices: keeping the previous map"),
        }
    }

    /// Replaces the unblock table with the store's unblocks in force now. A store not
    /// created yet has none; one that cannot be read keeps the previous table (its entries
    /// still end on time), counted in `store_errors{kind="unblocks"}`.
    fn refresh_unblocks(&self) {
        let now = now_micros();
        let read = if self.store.exists() {
            read_unblocks(&self.store, now)
        } else {
            Ok(Unblocks::default())
        };
        match read {
            Ok(table) => {
                let old = self.unblocks.load();
                let ids = |t: &Unblocks| t.iter().map(|u| u.id).collect::<Vec<_>>();
                if ids(&old) != ids(&table) {
                    for u in table.iter().filter(|u| !old.iter().any(|o| o.id == u.id)) {
                        tracing::info!(id = u.id, device = %u.device, host = %u.host_text(),
                            by = %u.by, until = u.until, "unblock in force");
                    }
                    tracing::info!(active = table.len(), "unblocks");
                    self.unblocks.store(Arc::new(table));
                }
            }
            Err(e) => {
                self.metrics
                    .store_errors
                    .with_label_values(&["unblocks"])
                    .inc();
                if let Some(quiet) = self.unblocks_log.ready(Instant::now()) {
                    tracing::warn!(error = %e, not_logged = quiet,
                        "unblocks: cannot read the store; the previous ones stay in force until they end");
                }
            }
        }
    }

    /// Records the rules in force in the chained log as a `rules_loaded` event when their
    /// version differs from the last one recorded (so a restart with the same rules adds
    /// nothing): the report's "rules in force, changes during the period". Written
    /// through a connection of its own, as `aiwarden incidents ack` writes beside the
    /// daemon. Returns false when the version in force is not recorded yet: the writer has
    /// not made the store (never made here: a new chain begins with the writer's break row,
    /// and a second writer racing it would make an unkeyed schema), or the write failed
    /// (logged); the caller tries again.
    fn record_rules(&self, recorded: &mut Option<String>) -> bool {
        let rules = self.live.current();
        let version: String = rules.digest().chars().take(16).collect();
        if recorded.as_deref() == Some(version.as_str()) {
            return true;
        }
        if !crate::store::made(&self.store) {
            return false;
        }
        let (allow, deny) = rules.site_entries();
        let detail = format!(
            "version {version}: {} services, {allow} allow and {deny} deny entries",
            rules.services().count()
        );
        let result = crate::store::Store::open(&self.store).and_then(|mut store| {
            let same = store
                .last_event("rules_loaded")?
                .is_some_and(|e| e.detail.starts_with(&format!("version {version}:")));
            if !same {
                store.record_event(
                    crate::store::now_micros(),
                    "rules_loaded",
                    "aiwarden",
                    &detail,
                )?;
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                *recorded = Some(version);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not record the rules' version in the store; trying again in {} s", RECORD_RETRY.as_secs());
                false
            }
        }
    }

    /// Runs until `stop` is set.
    pub(super) fn run(self, rx: Receiver<Chore>, stop: &AtomicBool) {
        let mut recorded = None;
        // Until the rules in force are in the store (a first start has no store until the
        // writer's first row; a write can fail): when to try again.
        let mut record_at = Some(Instant::now());
        let mut dirs = self.live.dirs();
        let mut stamp = rules_stamp(&dirs);
        let mut last_devices = Instant::now();
        let mut last_on_demand = Instant::now() - Duration::from_secs(1);
        self.refresh_unblocks();
        let mut last_unblocks = Instant::now();
        let mut last_stat = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            // Whatever woke the thread: a stream of device chores must not starve these.
            if last_unblocks.elapsed() >= UNBLOCKS_EVERY {
                last_unblocks = Instant::now();
                self.refresh_unblocks();
            }
            if record_at.is_some_and(|at| Instant::now() >= at) {
                let made = crate::store::made(&self.store);
                record_at = match self.record_rules(&mut recorded) {
                    true => None,
                    false if made => Some(Instant::now() + RECORD_RETRY),
                    false => Some(Instant::now() + Duration::from_millis(200)),
                };
            }
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(Chore::Reload) => {
                    tracing::info!("SIGHUP: reloading rules");
                    reload(&self.live, &self.metrics);
                    record_at = Some(Instant::now());
                    stamp = rules_stamp(&dirs);
                    last_unblocks = Instant::now();
                    self.refresh_unblocks();
                }
                Ok(Chore::RefreshDevices) => {
                    if last_on_demand.elapsed() >= Duration::from_secs(1) {
                        last_on_demand = Instant::now();
                        last_devices = Instant::now();
                        self.refresh_devices();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    // A signed bundle moved the catalog (and put it in force): watch the
                    // new directory, and record the rules it brought.
                    let current = self.live.dirs();
                    if current != dirs {
                        dirs = current;
                        stamp = rules_stamp(&dirs);
                        record_at = Some(Instant::now());
                    }
                    if last_stat.elapsed() >= Duration::from_secs(1) {
                        last_stat = Instant::now();
                        let now = rules_stamp(&dirs);
                        if now != stamp {
                            tracing::info!("rules changed on disk: reloading");
                            reload(&self.live, &self.metrics);
                            record_at = Some(Instant::now());
                            stamp = now;
                        }
                    }
                    if last_devices.elapsed() >= self.refresh_every {
                        last_devices = Instant::now();
                        self.refresh_devices();
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Starts the thread.
    pub(super) fn spawn(
        self,
        rx: Receiver<Chore>,
        stop: Arc<AtomicBool>,
    ) -> Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("aiwarden-housekeeping".into())
            .spawn(move || self.run(rx, &stop))
            .map_err(|e| Error::Thread {
                name: "the housekeeping thread".into(),
                source: e,
            })
    }
}
