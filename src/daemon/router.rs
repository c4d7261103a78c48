//! Router placement, wired: the firewall (table, sets, the TCP path the kernel allows) and
//! the NFQUEUE thread, whose blocks reach the detection thread as incidents. A firewall
//! that cannot start costs enforcement, never DNS: the daemon goes on and `/healthz` says
//! "degraded".

use std::net::IpAddr;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::detection::Input;
use crate::config::Config;
use crate::detect::Host;
use crate::devices::DeviceMap;
use crate::firewall::queue::QueueJudge;
use crate::firewall::{Nft, Router, TcpPath};
use crate::health::{Health, State};
use crate::metrics::Metrics;
use crate::policy::unblock::Unblocks;
use crate::policy::Live;

/// The router's parts the daemon keeps.
pub(super) struct Started {
    /// The firewall, removed on a clean stop.
    pub router: Router,
    /// DNS answers for the queue thread's detector, when it runs.
    pub answers: Option<SyncSender<(IpAddr, IpAddr, Host)>>,
    /// The queue thread's way into detection. Emptied on stop: that thread blocks on the
    /// queue until the process ends, and detection ends only when every sender is gone.
    reports: Arc<Mutex<Option<SyncSender<Input>>>>,
}

impl Started {
    /// Removes the firewall and lets detection end.
    pub(super) fn stop(self) {
        self.router.stop();
        if let Ok(mut r) = self.reports.lock() {
            r.take();
        }
    }
}

/// Installs the firewall and starts the queue thread; `None` (logged, health degraded)
/// when the firewall cannot be installed.
pub(super) fn start(
    cfg: &Config,
    live: &Arc<Live>,
    devices: &Arc<ArcSwap<DeviceMap>>,
    metrics: &Arc<Metrics>,
    input: &SyncSender<Input>,
    health: &Health,
    unblocks: &Arc<ArcSwap<Unblocks>>,
) -> Option<Started> {
    let rules = live.current();
    let mut router = match Router::start(
        cfg,
        &rules,
        Box::new(Nft),
        metrics.clone(),
        Some(live.clone()),
    ) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "the firewall could not be installed: only DNS is enforced");
            health.set("firewall", State::Down(e.to_string()));
            return None;
        }
    };
    health.set("firewall", State::Ok);
    let mut answers = None;
    let reports = Arc::new(Mutex::new(Some(input.clone())));
    if let Some(queue) = router.queue.take() {
        let (tx, rx) = std::sync::mpsc::sync_channel(4096);
        answers = Some(tx);
        let report = {
            let reports = reports.clone();
            let metrics = metrics.clone();
            Box::new(move |obs, action| {
                let sent = reports.lock().ok().and_then(|r| {
                    r.as_ref()
                        .map(|tx| tx.try_send(Input::Blocked(Box::new((obs, action)))).is_ok())
                });
                if sent == Some(false) {
                    metrics.events_dropped.inc();
                }
            })
        };
        let judge = QueueJudge {
            num: cfg.enforcement.queue,
            max_len: cfg.enforcement.queue_max_len,
            repeat: router.repeat,
            mode: cfg.mode,
            live: live.clone(),
            devices: devices.clone(),
            answers: rx,
            firewall: router.tx.clone(),
            report,
            metrics: metrics.clone(),
            unblocks: unblocks.clone(),
        };
        // Not joined: it blocks reading the queue until the process ends; the firewall's
        // removal on stop is what ends its work.
        if let Err(e) = std::thread::Builder::new()
            .name("aiwarden-nfqueue".into())
            .spawn(move || judge.run(queue))
        {
            tracing::error!(error = %e, "could not start the NFQUEUE thread: queued packets pass unjudged (bypass)");
            health.set("firewall", State::Down(e.to_string()));
        }
    }
    let tcp = router.tcp;
    tracing::info!(
        tcp = tcp.as_str(),
        queue = cfg.enforcement.queue,
        lan = ?cfg.enforcement.lan_interfaces(&cfg.capture),
        "firewall installed (table inet aiwarden)"
    );
    if tcp == TcpPath::Reactive && cfg.capture.interfaces.is_empty() {
        tracing::warn!(
            "reactive TCP blocking needs a capture interface: none is set, so TLS is not blocked"
        );
    }
    Some(Started {
        router,
        answers,
        reports,
    })
}
