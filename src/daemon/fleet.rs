//! The daemon's side of signed rule bundles: the rules to start from (the bundle in force,
//! when `[fleet] bundle_url` is set) and the polling task on the one shutdown signal, whose
//! every applied or refused bundle becomes a `bundle_applied` or `bundle_refused` row in
//! the store's chained log and refreshes the rules metrics.

use std::path::Path;
use std::sync::Arc;

use super::housekeeping::publish_rules;
use crate::config::Config;
use crate::error::Result;
use crate::fleet::update::{self, Source};
use crate::metrics::Metrics;
use crate::policy::{Live, RuleDirs};

/// The rules at start: with `[fleet] bundle_url` set, the catalog of the bundle in force
/// (if one was applied and it still loads with the site's files; else the configured
/// catalog, and the log says why); without it, the configured catalog (removing the URL
/// takes a box back to the shipped catalog). `aiwarden_bundle_version` says which.
pub(super) fn load_rules(cfg: &Config, metrics: &Metrics) -> Result<Live> {
    let dirs = cfg.rule_dirs();
    metrics.bundle_version.set(0);
    if cfg.fleet.bundle_url.is_none() {
        return Live::load(&dirs);
    }
    match update::in_force(&cfg.fleet.state_dir) {
        Ok(None) => {}
        Ok(Some(f)) => {
            let bundle = RuleDirs {
                catalog: f.catalog.clone(),
                site: dirs.site.clone(),
            };
            match Live::load(&bundle) {
                Ok(live) => {
                    tracing::info!(version = f.version, catalog = %f.catalog.display(),
                        "rules: the signed bundle in force");
                    metrics.bundle_version.set(f.version as i64);
                    return Ok(live);
                }
                Err(e) => tracing::error!(version = f.version, error = %e,
                    "the bundle in force does not load; starting on the configured catalog"),
            }
        }
        Err(e) => tracing::error!(error = %e,
            "cannot read the bundle in force; starting on the configured catalog"),
    }
    Live::load(&dirs)
}

/// The polling task, when `[fleet] bundle_url` is set.
pub(super) fn spawn(
    cfg: &Config,
    live: Arc<Live>,
    metrics: Arc<Metrics>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let f = &cfg.fleet;
    let url = f.bundle_url.clone()?;
    let source = Source {
        url,
        ca_file: f.ca_file.clone(),
        timeout: f.timeout,
    };
    let store = cfg.store.path.clone();
    let published = live.clone();
    let on_result = move |r: &Result<update::Outcome>| {
        let result = match r {
            Ok(update::Outcome::Applied(a)) => {
                publish_rules(&metrics, &published);
                metrics.bundle_version.set(a.version as i64);
                "applied"
            }
            Ok(update::Outcome::Current { .. }) => "current",
            Err(crate::Error::BundleFetch { .. }) => "unreachable",
            Err(_) => "refused",
        };
        metrics.bundle_polls.with_label_values(&[result]).inc();
        if let Some((event, detail)) = update::event_of(r) {
            record(&store, event, &detail);
        }
    };
    tracing::info!(url = %update::redact_url(&source.url), every = ?f.poll_interval, keys = f.bundle_keys.len(),
        "polling for signed rule bundles");
    Some(tokio::spawn(update::run(
        source,
        f.keys(),
        f.state_dir.clone(),
        live,
        f.poll_interval,
        stop,
        on_result,
    )))
}

/// Appends an event row through a connection of its own (as `record_rules` does); never
/// creates the store (see [`crate::store::made`]): that is the writer's, which opens it as the daemon starts, so the
/// first poll (at once) waits a little for it. A failure is logged: the update stands.
fn record(store: &Path, event: &str, detail: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !crate::store::made(store) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if !crate::store::made(store) {
        tracing::warn!(event, "no store yet: the bundle update is only in the log");
        return;
    }
    let detail: String = detail
        .chars()
        .take(crate::store::MAX_EVENT_DETAIL)
        .collect();
    let result = crate::store::Store::open(store)
        .and_then(|mut s| s.record_event(crate::store::now_micros(), event, "aiwarden", &detail));
    if let Err(e) = result {
        tracing::warn!(event, error = %e, "could not record the bundle update in the store");
    }
}
