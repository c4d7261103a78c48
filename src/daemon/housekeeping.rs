//! The daemon's housekeeping thread: rules reloads (on SIGHUP and when a file under the
//! rules directories changes) and device identity refreshes (every `refresh_secs`, and at
//! once, at most once a second, when detection meets an address nobody knows). Both read
//! files and run `ip`; they live here so neither the async runtime nor the detection
//! thread ever waits on them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;

use crate::devices::{self, DeviceMap};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::policy::{Live, RuleDirs};

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

impl Housekeeping {
    fn refresh_devices(&self) {
        match devices::load(&self.sources, SystemTime::now()) {
            Ok(m) => self.devices.store(Arc::new(m)),
            Err(e) => tracing::warn!(error = %e, "devices: keeping the previous map"),
        }
    }

    /// Runs until `stop` is set.
    pub(super) fn run(self, rx: Receiver<Chore>, stop: &AtomicBool) {
        let dirs = self.live.dirs().clone();
        let mut stamp = rules_stamp(&dirs);
        let mut last_devices = Instant::now();
        let mut last_on_demand = Instant::now() - Duration::from_secs(1);
        while !stop.load(Ordering::Relaxed) {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(Chore::Reload) => {
                    tracing::info!("SIGHUP: reloading rules");
                    reload(&self.live, &self.metrics);
                    stamp = rules_stamp(&dirs);
                }
                Ok(Chore::RefreshDevices) => {
                    if last_on_demand.elapsed() >= Duration::from_secs(1) {
                        last_on_demand = Instant::now();
                        last_devices = Instant::now();
                        self.refresh_devices();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let now = rules_stamp(&dirs);
                    if now != stamp {
                        tracing::info!("rules changed on disk: reloading");
                        reload(&self.live, &self.metrics);
                        stamp = now;
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
