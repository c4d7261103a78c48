//! `aiwarden run`: wires the shells together and owns shutdown.
//!
//! ```text
//! capture threads (one per interface, pcap) ──┐ try_send: never block, count drops
//! DNS resolver tasks (tokio, UDP + TCP) ───────┤
//!                                              ▼
//!                        detection thread: Detector, RuleSet::judge, incident Tracker
//!                                              │ StoreOp
//!                                              ▼
//!                        store thread: batches into SQLite transactions (chained log)
//! metrics task: /metrics, /healthz      signals: SIGHUP reload, SIGTERM/SIGINT stop
//! ```
//!
//! Rules reload on SIGHUP and when a file under the rules directory changes; a bad file
//! keeps the old rules (logged, and `aiwarden_rules_last_reload_success` drops to 0).
//! SIGTERM stops capture and the resolver, drains detection, and flushes the store before
//! the process exits. With systemd, readiness and watchdog pings go to `NOTIFY_SOCKET`;
//! the watchdog is fed only while the detection and store threads are alive.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::detect::{Detector, DetectorConfig, LinkType, Observation, Timestamp};
use crate::devices::{self, DeviceMap};
use crate::dns_server::{self, now_ts, DnsEvent, Identify, Resolver};
use crate::error::{Error, Result};
use crate::incident::{Tracked, Tracker};
use crate::metrics::Metrics;
use crate::policy::{Client, Live, Mode};
use crate::store::{NewIncident, Store, Touch};

/// Default capture filter: DNS, TCP to the usual TLS ports (ClientHellos), SYNs (so any
/// flow's start is seen), and QUIC long-header packets (Initials) on any UDP port.
/// libpcap cannot index TCP and UDP headers over IPv6, so IPv6 is filtered by port only.
pub const DEFAULT_FILTER: &str = "port 53 \
or (ip and tcp and (dst port 443 or dst port 853 or dst port 8443 or tcp[tcpflags] & tcp-syn != 0)) \
or (ip and udp and udp[8] & 0x80 != 0) \
or (ip6 and (tcp dst port 443 or tcp dst port 853 or tcp dst port 8443 or udp port 443))";

/// What reaches the detection thread.
enum Input {
    Frame {
        ts: Timestamp,
        link: LinkType,
        data: Vec<u8>,
    },
    /// Boxed: std's bounded channel allocates every slot up front, so the queue's memory is
    /// capacity × the largest variant.
    Dns(Box<DnsEvent>),
}

/// What reaches the store thread.
#[derive(Debug)]
enum StoreOp {
    Open {
        key: u64,
        incident: Box<NewIncident>,
    },
    Touch {
        key: u64,
        ts: i64,
        host: String,
        how: String,
    },
    Usage {
        day: String,
        service: String,
        verdict: &'static str,
    },
    Forget {
        key: u64,
    },
}

fn micros(ts: Timestamp) -> i64 {
    let d = ts
        .to_system_time()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    d.as_micros() as i64
}

/// Liveness of the worker threads, for `/healthz` and the systemd watchdog.
#[derive(Debug, Default)]
struct Beats {
    detection: AtomicU64,
    store: AtomicU64,
}

fn beat(slot: &AtomicU64) {
    slot.store(micros(now_ts()) as u64, Ordering::Relaxed);
}

/// Validates the configuration and the rules it names (`aiwarden check`).
pub fn check(path: &Path) -> Result<(Config, crate::policy::RuleSet)> {
    let cfg = Config::load(path)?;
    let rules = crate::policy::RuleSet::load_dir(&cfg.rules)?;
    if let Some(inv) = &cfg.devices.inventory {
        devices::Inventory::load(inv)?;
    }
    Ok((cfg, rules))
}

/// Where device identity comes from, per the configuration.
fn sources(cfg: &Config) -> devices::Sources {
    devices::Sources {
        arp: cfg.devices.neighbours.clone(),
        ip6_neigh: true,
        leases: cfg
            .devices
            .leases
            .iter()
            .filter_map(|l| l.format.parse().ok().map(|f| (f, l.path.clone())))
            .collect(),
        inventory: cfg.devices.inventory.clone(),
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(cfg: Config) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("aiwarden-io")
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(run_async(cfg))
}

async fn run_async(cfg: Config) -> Result<()> {
    let metrics = Arc::new(Metrics::new());
    let live = Arc::new(Live::load(&cfg.rules)?);
    publish_rules(&metrics, &live);
    let mut store = Store::open(&cfg.store.path)?;
    let purged = store.purge_before(retention_cutoff(cfg.store.retention_days))?;
    if purged > 0 {
        tracing::info!(rows = purged, "retention purge");
    }
    let sources = Arc::new(sources(&cfg));
    let device_map = Arc::new(ArcSwap::from_pointee(devices::load(
        &sources,
        SystemTime::now(),
    )?));
    let identify: Identify = {
        let map = device_map.clone();
        Arc::new(move |ip: IpAddr| {
            let id = map.load().identify(ip);
            (id.mac, id.hostname)
        })
    };

    let (input_tx, input_rx) = std::sync::mpsc::sync_channel::<Input>(cfg.capture.queue);
    let (store_tx, store_rx) = std::sync::mpsc::sync_channel::<StoreOp>(16_384);
    let stop = Arc::new(AtomicBool::new(false));
    let beats = Arc::new(Beats::default());
    let healthy = Arc::new(AtomicBool::new(true));
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);

    // Store thread.
    let store_thread = {
        let metrics = metrics.clone();
        let beats = beats.clone();
        std::thread::Builder::new()
            .name("aiwarden-store".into())
            .spawn(move || store_loop(store, store_rx, &metrics, &beats))
            .map_err(|e| Error::Usage(format!("cannot start the store thread: {e}")))?
    };

    // Detection thread.
    let detection_thread = {
        let live = live.clone();
        let metrics = metrics.clone();
        let beats = beats.clone();
        let device_map = device_map.clone();
        let sources = sources.clone();
        let store_tx = store_tx.clone();
        let dns_listen = cfg.dns.listen.clone();
        let mode = cfg.mode;
        let window = cfg.incident_window_secs.saturating_mul(1_000_000);
        std::thread::Builder::new()
            .name("aiwarden-detect".into())
            .spawn(move || {
                detection_loop(
                    input_rx,
                    store_tx,
                    &live,
                    &device_map,
                    &sources,
                    &dns_listen,
                    mode,
                    window,
                    &metrics,
                    &beats,
                )
            })
            .map_err(|e| Error::Usage(format!("cannot start the detection thread: {e}")))?
    };
    drop(store_tx);

    // Capture threads.
    let mut captures = Vec::new();
    let mut breakers = Vec::new();
    for iface in &cfg.capture.interfaces {
        let mut cap = open_live(iface, &cfg)?;
        breakers.push(cap.breakloop_handle());
        let tx = input_tx.clone();
        let stop = stop.clone();
        let metrics = metrics.clone();
        let name = iface.clone();
        captures.push(
            std::thread::Builder::new()
                .name(format!("aiwarden-cap-{iface}"))
                .spawn(move || capture_loop(cap, &name, tx, &stop, &metrics))
                .map_err(|e| Error::Usage(format!("cannot start capture on {iface}: {e}")))?,
        );
    }

    // Resolver.
    let mut tasks = Vec::new();
    let mut udp_threads = Vec::new();
    if !cfg.dns.listen.is_empty() {
        let sockets = dns_server::bind(&cfg.dns.listen).await.map_err(|e| {
            Error::Usage(format!("dns: cannot listen on {:?}: {e}", cfg.dns.listen))
        })?;
        let (ev_tx, ev_rx) = std::sync::mpsc::sync_channel::<DnsEvent>(8_192);
        let resolver = Arc::new(Resolver::new(
            cfg.dns.clone(),
            cfg.mode,
            live.clone(),
            identify,
            Some(ev_tx),
            !cfg.capture.interfaces.is_empty(),
            metrics.clone(),
        )?);
        // Relay resolver events into the detection queue (same bounded queue as frames).
        let tx = input_tx.clone();
        let m = metrics.clone();
        std::thread::Builder::new()
            .name("aiwarden-dns-events".into())
            .spawn(move || {
                for ev in ev_rx {
                    if let Err(TrySendError::Full(_)) = tx.try_send(Input::Dns(Box::new(ev))) {
                        m.events_dropped.inc();
                    }
                }
            })
            .map_err(|e| Error::Usage(format!("cannot start a thread: {e}")))?;
        for (udp, tcp) in sockets {
            tracing::info!(addr = %udp.local_addr().map(|a| a.to_string()).unwrap_or_default(), "dns listening");
            let (me, rt, stop) = (
                resolver.clone(),
                tokio::runtime::Handle::current(),
                stop.clone(),
            );
            udp_threads.push(
                std::thread::Builder::new()
                    .name("aiwarden-dns-udp".into())
                    .spawn(move || me.serve_udp(udp, rt, stop))
                    .map_err(|e| Error::Usage(format!("cannot start a thread: {e}")))?,
            );
            tasks.push(tokio::spawn(
                resolver.clone().serve_tcp(tcp, shutdown_rx.clone()),
            ));
        }
    }
    drop(input_tx);

    // Metrics.
    if let Some(addr) = cfg.metrics.listen {
        let listener = crate::metrics::bind(addr)
            .await
            .map_err(|e| Error::Usage(format!("metrics: cannot listen on {addr}: {e}")))?;
        tracing::info!(%addr, "metrics listening");
        tasks.push(tokio::spawn(crate::metrics::serve(
            listener,
            metrics.clone(),
            healthy.clone(),
            shutdown_rx.clone(),
        )));
    }

    notify("READY=1\nSTATUS=watching");
    tracing::info!(mode = ?cfg.mode, interfaces = ?cfg.capture.interfaces, "aiwarden running");

    let watchdog = watchdog_interval();
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| Error::Usage(format!("signals: {e}")))?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::Usage(format!("signals: {e}")))?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| Error::Usage(format!("signals: {e}")))?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut stamp = rules_stamp(&cfg.rules);
    let mut last_devices = Instant::now();
    let mut last_purge = Instant::now();
    let mut last_watchdog = Instant::now();
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading rules");
                reload(&live, &metrics);
                stamp = rules_stamp(&cfg.rules);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => {
                let now = rules_stamp(&cfg.rules);
                if now != stamp {
                    tracing::info!("rules directory changed: reloading");
                    reload(&live, &metrics);
                    stamp = now;
                }
                if last_devices.elapsed() >= Duration::from_secs(cfg.devices.refresh_secs.max(1)) {
                    last_devices = Instant::now();
                    match devices::load(&sources, SystemTime::now()) {
                        Ok(m) => device_map.store(Arc::new(m)),
                        Err(e) => tracing::warn!(error = %e, "devices: keeping the previous map"),
                    }
                }
                if last_purge.elapsed() >= Duration::from_secs(86_400) {
                    last_purge = Instant::now();
                    // The store thread owns the connection; a purge runs on its own handle.
                    match Store::open(&cfg.store.path).and_then(|mut s| s.purge_before(retention_cutoff(cfg.store.retention_days))) {
                        Ok(n) if n > 0 => tracing::info!(rows = n, "retention purge"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "retention purge"),
                    }
                }
                let now_us = micros(now_ts()) as u64;
                let fresh = |b: &AtomicU64| now_us.saturating_sub(b.load(Ordering::Relaxed)) < 10_000_000;
                let alive = fresh(&beats.detection) && fresh(&beats.store)
                    && !detection_thread.is_finished() && !store_thread.is_finished();
                healthy.store(alive, Ordering::Relaxed);
                if let Some(every) = watchdog {
                    if alive && last_watchdog.elapsed() >= every {
                        notify("WATCHDOG=1");
                        last_watchdog = Instant::now();
                    }
                }
            }
        }
    }

    tracing::info!("stopping: flushing incidents");
    notify("STOPPING=1");
    let _ = shutdown_tx.send(true);
    stop.store(true, Ordering::Relaxed);
    // libpcap may wait in poll() for a packet that never comes; breakloop wakes it.
    for b in &breakers {
        b.breakloop();
    }
    for t in tasks {
        let _ = t.await;
    }
    let _ = tokio::task::spawn_blocking(move || {
        for t in udp_threads {
            let _ = t.join();
        }
    })
    .await;
    // The resolver's sender is gone with its tasks; capture threads see `stop`. When every
    // sender is gone, detection drains its queue and returns, then the store flushes.
    for c in captures {
        let _ = c.join();
    }
    drop(device_map);
    let _ = tokio::task::spawn_blocking(move || {
        let _ = detection_thread.join();
        let _ = store_thread.join();
    })
    .await;
    tracing::info!("stopped");
    Ok(())
}

fn retention_cutoff(days: u32) -> i64 {
    micros(now_ts()) - i64::from(days) * 86_400 * 1_000_000
}

fn publish_rules(metrics: &Metrics, live: &Live) {
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

/// Names, sizes and modification times of every file under the rules directory.
fn rules_stamp(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut out = Vec::new();
    for sub in ["catalog", "site"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
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

fn open_live(iface: &str, cfg: &Config) -> Result<pcap::Capture<pcap::Active>> {
    let err = |e: pcap::Error| Error::Capture {
        path: PathBuf::from(iface),
        message: e.to_string(),
    };
    let mut cap = pcap::Capture::from_device(iface)
        .map_err(err)?
        .promisc(true)
        .snaplen(cfg.capture.snaplen as i32)
        .buffer_size((cfg.capture.buffer_mib.saturating_mul(1 << 20)) as i32)
        .immediate_mode(true)
        .timeout(200)
        .open()
        .map_err(err)?;
    cap.filter(&cfg.capture.filter, true).map_err(err)?;
    Ok(cap)
}

fn capture_loop(
    mut cap: pcap::Capture<pcap::Active>,
    iface: &str,
    tx: SyncSender<Input>,
    stop: &AtomicBool,
    metrics: &Metrics,
) {
    let Some(link) = LinkType::from_pcap(cap.get_datalink().0) else {
        tracing::error!(
            iface,
            linktype = cap.get_datalink().0,
            "unsupported link type"
        );
        return;
    };
    let (mut kernel_seen, mut iface_seen) = (0u32, 0u32);
    let mut last_stats = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match cap.next_packet() {
            Ok(p) => {
                let ts = Timestamp::from_secs_micros(p.header.ts.tv_sec, p.header.ts.tv_usec);
                let input = Input::Frame {
                    ts,
                    link,
                    data: p.data.to_vec(),
                };
                match tx.try_send(input) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        metrics.capture_dropped.with_label_values(&["queue"]).inc()
                    }
                    Err(TrySendError::Disconnected(_)) => return,
                }
            }
            Err(pcap::Error::TimeoutExpired) => {}
            Err(pcap::Error::NoMorePackets) => return,
            Err(e) => {
                tracing::error!(iface, error = %e, "capture stopped");
                return;
            }
        }
        if last_stats.elapsed() >= Duration::from_secs(1) {
            last_stats = Instant::now();
            if let Ok(s) = cap.stats() {
                metrics
                    .capture_dropped
                    .with_label_values(&["kernel"])
                    .inc_by(u64::from(s.dropped.wrapping_sub(kernel_seen)));
                metrics
                    .capture_dropped
                    .with_label_values(&["interface"])
                    .inc_by(u64::from(s.if_dropped.wrapping_sub(iface_seen)));
                kernel_seen = s.dropped;
                iface_seen = s.if_dropped;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn detection_loop(
    rx: Receiver<Input>,
    store: SyncSender<StoreOp>,
    live: &Live,
    devices: &ArcSwap<DeviceMap>,
    sources: &devices::Sources,
    dns_listen: &[std::net::SocketAddr],
    mode: Mode,
    window_micros: u64,
    metrics: &Metrics,
    beats: &Beats,
) {
    let mut detector = Detector::new(DetectorConfig::default());
    let mut tracker = Tracker::new(window_micros);
    let mut last_expire = Instant::now();
    let mut last_refresh = Instant::now();
    beat(&beats.detection);
    loop {
        let input = match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(i) => i,
            Err(RecvTimeoutError::Timeout) => {
                beat(&beats.detection);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        beat(&beats.detection);
        let observations = match input {
            Input::Frame { ts, link, data } => {
                metrics.packets.inc();
                metrics.bytes.inc_by(data.len() as u64);
                let mut obs = detector.process(ts, link, &data);
                // Queries to aiwarden's own resolver are reported by the resolver itself
                // (it knows what it answered); the captured copy would count them twice.
                obs.retain(|o| {
                    o.proto != crate::detect::Proto::Dns
                        || !dns_listen.iter().any(|l| {
                            l.port() == o.server.port()
                                && (l.ip().is_unspecified() || l.ip() == o.server.ip())
                        })
                });
                obs
            }
            Input::Dns(ev) => match *ev {
                DnsEvent::Answer {
                    client,
                    host,
                    addrs,
                } => {
                    for a in addrs {
                        detector.learn(client, a, host.clone());
                    }
                    Vec::new()
                }
                DnsEvent::Query(o) => vec![o],
            },
        };
        if observations.is_empty() {
            continue;
        }
        let rules = live.current();
        // A device the map does not know yet (it joined since the last refresh): re-read
        // the neighbour table and leases now, at most once a second.
        if last_refresh.elapsed() >= Duration::from_secs(1)
            && observations
                .iter()
                .any(|o| devices.load().identify(o.client.ip()).mac.is_none())
        {
            last_refresh = Instant::now();
            if let Ok(m) = devices::load(sources, SystemTime::now()) {
                devices.store(Arc::new(m));
            }
        }
        let dev = devices.load();
        for o in &observations {
            if o.proto == crate::detect::Proto::Dns && dns_server::is_canary(o.host.as_str()) {
                continue;
            }
            let id = dev.identify(o.client.ip());
            let who = Client {
                ip: Some(o.client.ip()),
                mac: id.mac,
                device: id.hostname.as_deref(),
            };
            let d = rules.judge(o.host.as_str(), &who, mode);
            if d.service.is_none() && d.rule.is_none() {
                continue;
            }
            let service = Tracker::service_of(&d);
            metrics
                .detections
                .with_label_values(&[&service, d.verdict.as_str(), o.proto.as_str()])
                .inc();
            let day = o.ts.rfc3339().get(..10).unwrap_or("").to_string();
            send(
                &store,
                StoreOp::Usage {
                    day,
                    service: service.clone(),
                    verdict: d.verdict.as_str(),
                },
                metrics,
            );
            let how = how(o);
            match tracker.observe(o, &d) {
                Tracked::Ignored => {}
                Tracked::Opened { key } => {
                    let incident = NewIncident {
                        ts: micros(o.ts),
                        client_ip: o.client.ip().to_string(),
                        client_mac: id.mac.map(|m| m.to_string()),
                        device: id.hostname.clone(),
                        label: id.label.clone(),
                        group: d.group.as_deref().map(str::to_string),
                        service_name: d
                            .service
                            .as_ref()
                            .map_or_else(|| service.clone(), |s| s.name.to_string()),
                        service,
                        category: d.service.as_ref().map(|s| s.category.clone()),
                        tier: d.tier.map(|t| t.as_str().to_string()),
                        verdict: d.verdict.as_str().to_string(),
                        mode: match mode {
                            Mode::Monitor => "monitor",
                            Mode::Enforce => "enforce",
                        }
                        .to_string(),
                        how,
                        host: o.host.to_string(),
                        rule: d.rule.as_ref().map(ToString::to_string).unwrap_or_default(),
                    };
                    tracing::info!(
                        client = %o.client.ip(), service = %incident.service, verdict = %incident.verdict,
                        how = %incident.how, host = %incident.host, "incident"
                    );
                    metrics
                        .incidents
                        .with_label_values(&[d.verdict.as_str()])
                        .inc();
                    send(
                        &store,
                        StoreOp::Open {
                            key,
                            incident: Box::new(incident),
                        },
                        metrics,
                    );
                }
                Tracked::Touched { key } => send(
                    &store,
                    StoreOp::Touch {
                        key,
                        ts: micros(o.ts),
                        host: o.host.to_string(),
                        how,
                    },
                    metrics,
                ),
            }
        }
        if last_expire.elapsed() >= Duration::from_secs(5) {
            last_expire = Instant::now();
            for key in tracker.expire(now_ts()) {
                send(&store, StoreOp::Forget { key }, metrics);
            }
        }
    }
}

fn how(o: &Observation) -> String {
    let mut s = o.proto.as_str().to_string();
    if o.unresolved {
        s.push_str(",unresolved");
    }
    if o.ech {
        s.push_str(",ech");
    }
    s
}

/// Store ops are never dropped: incidents are the point. When the store falls behind,
/// detection waits (capture keeps dropping into its own counter instead).
fn send(tx: &SyncSender<StoreOp>, op: StoreOp, metrics: &Metrics) {
    if tx.send(op).is_err() {
        metrics.store_errors.inc();
    }
}

fn store_loop(mut store: Store, rx: Receiver<StoreOp>, metrics: &Metrics, beats: &Beats) {
    let mut ids: rustc_hash::FxHashMap<u64, i64> = rustc_hash::FxHashMap::default();
    let mut pending: Vec<StoreOp> = Vec::new();
    let mut open = true;
    beat(&beats.store);
    while open || !pending.is_empty() {
        // Collect a batch: wait for the first op, then take what else is queued for up to
        // 50 ms (at most 1,000 ops), and write it in one transaction.
        if open && pending.is_empty() {
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(op) => pending.push(op),
                Err(RecvTimeoutError::Timeout) => {
                    beat(&beats.store);
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
        beat(&beats.store);
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
    }
}

fn write_batch(
    store: &mut Store,
    ops: &[StoreOp],
    ids: &mut rustc_hash::FxHashMap<u64, i64>,
) -> Result<()> {
    let mut opened = Vec::new();
    let mut keys = Vec::new();
    for op in ops {
        if let StoreOp::Open { key, incident } = op {
            if !ids.contains_key(key) {
                opened.push((**incident).clone());
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
    let mut touches = Vec::new();
    let mut usage: rustc_hash::FxHashMap<(String, String, &'static str), u64> =
        rustc_hash::FxHashMap::default();
    for op in ops {
        match op {
            StoreOp::Touch { key, ts, host, how } => {
                if let Some(id) = ids.get(key) {
                    touches.push(Touch {
                        id: *id,
                        last_seen: *ts,
                        count_delta: 1,
                        host: host.clone(),
                        how: how.clone(),
                    });
                }
            }
            StoreOp::Usage {
                day,
                service,
                verdict,
            } => {
                *usage
                    .entry((day.clone(), service.clone(), verdict))
                    .or_insert(0) += 1;
            }
            StoreOp::Open { .. } | StoreOp::Forget { .. } => {}
        }
    }
    if !touches.is_empty() {
        store.touch_batch(&touches)?;
    }
    if !usage.is_empty() {
        let rows: Vec<(String, String, String, u64)> = usage
            .into_iter()
            .map(|((d, s, v), n)| (d, s, v.to_string(), n))
            .collect();
        store.add_usage_batch(&rows)?;
    }
    for op in ops {
        if let StoreOp::Forget { key } = op {
            ids.remove(key);
        }
    }
    Ok(())
}

/// Sends `state` to systemd when started as a notify service (no-op otherwise).
fn notify(state: &str) {
    use std::os::unix::net::UnixDatagram;
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
    } else {
        sock.send_to(state.as_bytes(), Path::new(&path))
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "sd_notify");
    }
}

/// Half the systemd watchdog period, when one is set for this process.
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}
