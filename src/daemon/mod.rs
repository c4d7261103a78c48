//! `aiwarden run`: wires the shells together and owns the one shutdown. It decides nothing
//! itself.
//!
//! ```text
//! capture threads (capture::spawn_live, one per interface) ─┐ try_send: never block, count drops
//! DNS resolver (dns_server: UDP threads, TCP tasks) ────────┤
//!                                                           ▼
//!            detection thread (detection.rs): Detector → device map → rules → incident::Pipeline
//!                                                           │ StoreOp
//!                                                           ▼
//!            store writer thread (store::writer): batched transactions, retention
//! housekeeping thread (housekeeping.rs): rules reload, device refresh, unblocks in force
//! async tasks: /metrics and /healthz, the web console ([console] enabled), signed rule
//! bundles ([fleet] bundle_url, fleet.rs), signals, health and the systemd watchdog
//! (systemd.rs)
//! ```
//!
//! Rules reload on SIGHUP and when a rule file changes; a bad file keeps the old rules.
//! SIGTERM (or the end of `--read` files) stops capture and the resolver, drains
//! detection, and flushes the store before the process exits.

mod budget;
mod detection;
mod fleet;
mod housekeeping;
mod router;
mod sensor;
mod shutdown;
mod systemd;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;

use crate::capture::{self, LiveOptions};
use crate::config::Config;
use crate::detect::{Detector, DetectorConfig};
use crate::devices;
use crate::error::{Error, Result};
use crate::health::{Grade, Health, State};
use crate::incident::Pipeline;
use crate::metrics::Metrics;
use crate::policy::unblock::Unblocks;
use crate::policy::{Live, Mode, RuleSet};
use crate::resolver::{self, DnsEvent, Resolver};
use crate::store::writer::{self, now_micros, WriterConfig};
use detection::{Detection, Input};
use housekeeping::{publish_rules, Chore, Housekeeping};
use sensor::sensor_enforcer;
pub use shutdown::Shutdown;

/// What `aiwarden check` found: the configuration, the rules it names, and advice.
#[derive(Debug)]
pub struct Checked {
    /// The configuration.
    pub config: Config,
    /// The rules.
    pub rules: RuleSet,
    /// Things that load but will probably not work as meant on a real LAN.
    pub warnings: Vec<String>,
}

/// Validates the configuration and the rules and inventory it names, and with `host`
/// tries what the daemon will need (`aiwarden check`): the listen addresses are this
/// host's, the capture interfaces exist and can be opened, the device sources load, the
/// store's directory takes writes and the store passes its integrity check, its chain
/// verifies and its tail matches the head file ([`crate::store::check`]). Every problem is
/// listed in one [`Error::Check`]; advice that does not stop anything is in `warnings`.
pub fn check(path: &Path, host: bool) -> Result<Checked> {
    let config = Config::load(path)?;
    let rules = RuleSet::load(&config.rule_dirs())?;
    if let Some(inv) = &config.devices.inventory {
        devices::Inventory::load(inv)?;
    }
    let mut problems = Vec::new();
    let mut warnings: Vec<String> = rules.lint().iter().map(ToString::to_string).collect();
    if host {
        match crate::store::check(&config.store.path, config.store.keyed) {
            Ok(c) => warnings.extend(c.notes),
            Err(e) => problems.push(e.to_string()),
        }
    }
    let listen = &config.dns.listen;
    for a in listen.iter().filter(|_| host) {
        if a.ip().is_unspecified() {
            continue;
        }
        // Port 0: the address is checked, not the port (the running daemon holds it).
        if let Err(e) = std::net::UdpSocket::bind(SocketAddr::new(a.ip(), 0)) {
            problems.push(format!(
                "dns.listen {a}: {e} (is {} an address of this host?)",
                a.ip()
            ));
        }
    }
    for iface in config.capture.interfaces.iter().filter(|_| host) {
        if let Err(why) = capture::probe(iface) {
            problems.push(format!("capture.interfaces {iface}: {why}"));
        }
    }
    if host {
        if let Err(e) = devices::load(&sources(&config), SystemTime::now()) {
            problems.push(format!("devices: {e}"));
        }
    }
    if !config.capture.interfaces.is_empty()
        && !listen.is_empty()
        && listen.iter().all(|a| a.ip().is_loopback())
    {
        warnings.push(format!(
            "{}: dns.listen is only on loopback ({}): no device on the LAN can reach the \
             resolver; listen on the gateway's LAN address (e.g. \"192.168.1.1:53\") and give \
             it to DHCP clients as their DNS server",
            path.display(),
            listen
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if listen.is_empty() {
        warnings.push(format!(
            "{}: dns.listen is empty: nothing is blocked, capture only reports",
            path.display()
        ));
    }
    if let Some(a) = listen.iter().find(|a| a.ip().is_unspecified()) {
        warnings.push(format!(
            "{}: dns.listen {a} answers on every address of this host, the WAN's included; \
             listen on the LAN address instead",
            path.display()
        ));
    }
    if host && config.dns.allow_clients.is_none() && !listen.is_empty() {
        for net in resolver::attached_networks(listen) {
            if is_public(net.addr()) {
                warnings.push(format!(
                    "{}: the resolver would answer {net}, a public network (the WAN?): set \
                     dns.allow_clients to the LAN's networks or listen on the LAN address",
                    path.display()
                ));
            }
        }
    }
    problems.extend(check_enforcement(&config, &rules, host, &mut warnings));
    if !problems.is_empty() {
        return Err(Error::Check(problems));
    }
    Ok(Checked {
        config,
        rules,
        warnings,
    })
}

/// A public IPv4 address: none of private, shared (CGNAT), loopback, link-local,
/// documentation. IPv6 LANs use global addresses, so only IPv4 can tell a WAN here.
fn is_public(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_documentation()
                || v4.is_unspecified()
                || (o[0] == 100 && (64..128).contains(&o[1])))
        }
        std::net::IpAddr::V6(_) => false,
    }
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

/// What `check` finds about enforcement: problems (an interface that does not exist, a
/// table the kernel refuses with `nft -c`) and, into `warnings`, what the placement leaves
/// open.
fn check_enforcement(
    config: &Config,
    rules: &RuleSet,
    host: bool,
    warnings: &mut Vec<String>,
) -> Vec<String> {
    use crate::config::Placement;
    let e = &config.enforcement;
    let mut problems = Vec::new();
    let path = config.path.display();
    if config.mode == Mode::Enforce && e.placement == Placement::Resolver {
        warnings.push(format!(
            "{path}: enforce mode with placement \"resolver\": only names asked of aiwarden's \
             resolver are blocked; a hard-coded address, another resolver, DoH, DoT, QUIC or \
             TLS on another port are seen and recorded, not blocked. On the clinic's gateway \
             set [enforcement] placement = \"router\"; beside it, \"sensor\""
        ));
    }
    let ifaces: Vec<&String> = match e.placement {
        Placement::Router => e.lan_interfaces(&config.capture).iter().collect(),
        Placement::Sensor => e.reset_interface.iter().collect(),
        Placement::Resolver => Vec::new(),
    };
    for i in ifaces.iter().filter(|_| host) {
        if !Path::new("/sys/class/net").join(i).exists() {
            problems.push(format!(
                "enforcement: interface {i} does not exist on this host"
            ));
        }
    }
    if e.placement == Placement::Router {
        warnings.extend(
            crate::firewall::router::lint(config, rules)
                .into_iter()
                .map(|w| format!("{path}: {w}")),
        );
        if host {
            let plan = crate::firewall::router::plan(config, rules);
            use crate::firewall::Firewall;
            if let Err(err) = crate::firewall::Nft.check(plan.commands()) {
                problems.push(format!("enforcement: the firewall table: {err}"));
            }
        }
    }
    problems
}

/// What the daemon enforces, in one line for the startup log and `aiwarden check`.
pub fn enforcement(cfg: &Config) -> String {
    use crate::config::Placement;
    let [placement, tcp, quic, dns] = crate::firewall::router::describe(cfg, None);
    let seen = if cfg.capture.interfaces.is_empty() {
        "no capture: only queries to the resolver are seen"
    } else {
        "connections (TLS, QUIC, HTTP, DoT, DoH by address) are detected and recorded"
    };
    let blocks = match (cfg.mode, cfg.enforcement.placement) {
        (Mode::Monitor, _) => "monitor mode: nothing is blocked, what enforce would block is flagged".to_string(),
        (Mode::Enforce, Placement::Resolver) => "blocked names get NXDOMAIN from the resolver; connections around it are not blocked".to_string(),
        (Mode::Enforce, Placement::Sensor) => "blocked names get NXDOMAIN; TCP connections to blocked names are reset from the LAN (best effort); QUIC is not blocked".to_string(),
        (Mode::Enforce, Placement::Router) => format!(
            "blocked names get NXDOMAIN; DNS to other resolvers is redirected to aiwarden's; DoT/DoQ (853) and DoH resolver addresses are refused; TCP connections to blocked names (any port, by SNI, HTTP host or CONNECT) are reset ({tcp}); QUIC to blocked names is refused ({quic})"
        ),
    };
    format!("placement {placement} (tcp {tcp}, quic {quic}, dns {dns}): {blocks}; {seen}")
}

fn thread_err(name: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Thread {
        name: name.to_string(),
        source,
    }
}

/// What the daemon loads before it serves anything: the rules and the device map. Read
/// here, off the async runtime. The store is the writer thread's to open: it never stops
/// the daemon.
struct Loaded {
    metrics: Arc<Metrics>,
    live: Arc<Live>,
    sources: devices::Sources,
    device_map: Arc<ArcSwap<devices::DeviceMap>>,
}

fn load(cfg: &Config) -> Result<Loaded> {
    let metrics = Arc::new(Metrics::new());
    let live = Arc::new(fleet::load_rules(cfg, &metrics)?);
    publish_rules(&metrics, &live);
    let sources = sources(cfg);
    // A broken inventory or leases file costs names in incidents, not DNS: start without
    // them (`aiwarden check` names the fault; the next refresh tries again).
    let map = devices::load(&sources, SystemTime::now()).unwrap_or_else(|e| {
        tracing::error!(error = %e, "device identity unavailable; going on without it");
        devices::DeviceMap::default()
    });
    let device_map = Arc::new(ArcSwap::from_pointee(map));
    Ok(Loaded {
        metrics,
        live,
        sources,
        device_map,
    })
}

/// Runs the daemon until SIGTERM or SIGINT, or, with `read` files, until they are read.
pub fn run(mut cfg: Config, read: Vec<PathBuf>) -> Result<()> {
    if let Some(limit) = budget::open_file_limit() {
        if let Some(said) = budget::fit(&mut cfg, limit) {
            tracing::warn!("{said}");
        }
    }
    let loaded = load(&cfg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("aiwarden-io")
        .build()
        .map_err(thread_err("the async runtime"))?;
    runtime.block_on(serve(cfg, read, loaded))
}

fn fresh(beat: &AtomicU64) -> bool {
    (now_micros().max(0) as u64).saturating_sub(beat.load(Ordering::Relaxed)) < 10_000_000
}

async fn serve(cfg: Config, read: Vec<PathBuf>, loaded: Loaded) -> Result<()> {
    let Loaded {
        metrics,
        live,
        sources,
        device_map,
    } = loaded;
    let shutdown = Shutdown::new();
    let health = Arc::new(Health::new());
    let detection_beat = Arc::new(AtomicU64::new(0));
    let store_beat = Arc::new(AtomicU64::new(0));

    let store_writer = writer::spawn(
        cfg.store.path.clone(),
        16_384,
        WriterConfig::new(cfg.store.retention_days, cfg.store.keyed),
        metrics.clone(),
        health.clone(),
        store_beat.clone(),
    )
    .map_err(thread_err("the store writer"))?;

    let (input_tx, input_rx) = std::sync::mpsc::sync_channel::<Input>(cfg.capture.queue);
    let (chore_tx, chore_rx) = std::sync::mpsc::sync_channel::<Chore>(16);
    // The unblocks in force, read from the store by housekeeping, asked by every path
    // that blocks.
    let unblocks = Arc::new(ArcSwap::from_pointee(Unblocks::default()));
    let housekeeping = Housekeeping {
        live: live.clone(),
        devices: device_map.clone(),
        sources,
        refresh_every: Duration::from_secs(cfg.devices.refresh_secs.max(1)),
        metrics: metrics.clone(),
        unblocks: unblocks.clone(),
        store: cfg.store.path.clone(),
        unblocks_log: crate::limit::Throttle::new(Duration::from_secs(60)),
    }
    .spawn(chore_rx, shutdown.flag())?;

    // Router placement: the firewall before anything is forwarded through it, its blocks
    // into detection's queue.
    let router = (cfg.enforcement.placement == crate::config::Placement::Router)
        .then(|| {
            router::start(
                &cfg,
                &live,
                &device_map,
                &metrics,
                &input_tx,
                &health,
                &unblocks,
            )
        })
        .flatten();
    let tcp_path = router.as_ref().map(|r| r.router.tcp);
    let info = crate::firewall::router::describe(&cfg, tcp_path);
    metrics
        .enforcement_info
        .with_label_values(&[&info[0], &info[1], &info[2], &info[3]])
        .set(1);
    let queue_answers = router.as_ref().and_then(|r| r.answers.clone());
    let mut detection = Detection {
        detector: Detector::new(DetectorConfig::default()),
        pipeline: Pipeline::new(cfg.mode, cfg.incident_window_secs.saturating_mul(1_000_000)),
        mode: cfg.mode,
        live: live.clone(),
        devices: device_map.clone(),
        chores: chore_tx.clone(),
        own_dns: cfg.dns.listen.clone(),
        store: store_writer.tx.clone(),
        metrics: metrics.clone(),
        beat: detection_beat.clone(),
        spoofed: crate::detect::table::map(detection::MAX_SPOOFED),
        flood_log: crate::limit::Throttle::new(Duration::from_secs(10)),
        enforcer: sensor_enforcer(&cfg, &metrics),
        unblocks: unblocks.clone(),
    };
    if let Some(r) = &router {
        if cfg.mode == Mode::Enforce {
            detection.enforcer = Some(Box::new(r.router.enforcer(&cfg)));
        }
    }
    let detection_thread = std::thread::Builder::new()
        .name("aiwarden-detect".into())
        .spawn(move || detection.run(input_rx))
        .map_err(thread_err("the detection thread"))?;
    let writer_thread = store_writer.thread;
    drop(store_writer.tx);

    // Capture: live interfaces, or files with --read.
    let mut captures = Vec::new();
    let mut reader = None;
    if read.is_empty() {
        let opts = LiveOptions {
            snaplen: cfg.capture.snaplen,
            buffer_mib: cfg.capture.buffer_mib,
            filter: cfg.capture.filter.clone(),
            block_timeout_ms: if cfg.enforcement.placement == crate::config::Placement::Sensor
                && cfg.mode == Mode::Enforce
            {
                capture::SENSOR_BLOCK_TIMEOUT_MS
            } else {
                capture::BLOCK_TIMEOUT_MS
            },
        };
        for iface in &cfg.capture.interfaces {
            captures.push(capture::spawn_live(
                iface,
                opts.clone(),
                input_tx.clone(),
                shutdown.flag(),
                metrics.clone(),
                health.clone(),
            )?);
        }
    } else {
        reader = Some(capture::spawn_file(
            read.clone(),
            input_tx.clone(),
            shutdown.flag(),
        )?);
    }

    // Resolver (not when reading files: those are someone else's queries).
    let mut tasks = Vec::new();
    let mut udp_threads = Vec::new();
    let mut resolver_addrs: Vec<SocketAddr> = Vec::new();
    if !cfg.dns.listen.is_empty() && read.is_empty() {
        let sockets = resolver::bind(&cfg.dns.listen).await?;
        let events = {
            let tx = input_tx.clone();
            let m = metrics.clone();
            let queue_answers = queue_answers.clone();
            Box::new(move |ev: DnsEvent| {
                if let (
                    Some(q),
                    DnsEvent::Answer {
                        client,
                        host,
                        addrs,
                    },
                ) = (&queue_answers, &ev)
                {
                    for a in addrs {
                        let _ = q.try_send((*client, *a, host.clone()));
                    }
                }
                if tx.try_send(Input::Resolver(Box::new(ev))).is_err() {
                    m.events_dropped.inc();
                }
            })
        };
        let resolver = Arc::new(
            Resolver::new(
                cfg.dns.clone(),
                cfg.mode,
                live.clone(),
                device_map.clone(),
                Some(events),
                !cfg.capture.interfaces.is_empty(),
                metrics.clone(),
            )?
            .with_unblocks(unblocks.clone()),
        );
        tracing::info!(
            allow_clients = ?resolver.allowed_clients(),
            rate_limit = cfg.dns.rate_limit,
            max_tcp_clients = cfg.dns.max_tcp_clients,
            max_upstream_inflight = cfg.dns.max_upstream_inflight,
            cache_mib = cfg.dns.cache_mib,
            "resolver limits (loopback is always allowed)"
        );
        health.set("resolver", State::Ok);
        for (udp, tcp) in sockets {
            if let Ok(a) = udp.local_addr() {
                resolver_addrs.push(a);
            }
            let (me, rt, stop) = (
                resolver.clone(),
                tokio::runtime::Handle::current(),
                shutdown.flag(),
            );
            udp_threads.push(
                std::thread::Builder::new()
                    .name("aiwarden-dns-udp".into())
                    .spawn(move || me.serve_udp(udp, rt, stop))
                    .map_err(thread_err("a DNS thread"))?,
            );
            tasks.push(tokio::spawn(
                resolver.clone().serve_tcp(tcp, shutdown.subscribe()),
            ));
        }
    }
    drop(input_tx);

    // Metrics and health: without them DNS still works, so a busy port is logged and
    // shown as degraded, not fatal.
    let mut metrics_addr = None;
    if let Some(addr) = cfg.metrics.listen {
        match crate::metrics::bind(addr).await {
            Ok(listener) => {
                metrics_addr = Some(addr);
                tasks.push(tokio::spawn(crate::metrics::serve(
                    listener,
                    metrics.clone(),
                    health.clone(),
                    cfg.metrics.max_connections,
                    shutdown.subscribe(),
                )));
            }
            Err(source) => {
                let e = Error::Listen {
                    what: "metrics",
                    addr: addr.to_string(),
                    source,
                };
                tracing::error!(error = %e, "no /metrics or /healthz; DNS goes on");
                health.set("metrics", State::Down(e.to_string()));
            }
        }
    }

    // Signed rule bundles: a refused or unreachable bundle leaves the rules in force.
    if read.is_empty() {
        tasks.extend(fleet::spawn(
            &cfg,
            live.clone(),
            metrics.clone(),
            shutdown.subscribe(),
        ));
    }

    // The compliance console: like metrics, its failure leaves DNS and detection running.
    if cfg.console.enabled && read.is_empty() {
        let started = match crate::report::period::zone(&cfg.timezone) {
            Ok(tz) => crate::console::spawn(&cfg, tz, metrics.clone(), shutdown.subscribe()).await,
            Err(m) => Err(Error::Usage(m)),
        };
        match started {
            Ok(task) => tasks.push(task),
            Err(e) => {
                tracing::error!(error = %e, "no console; DNS and detection go on");
                health.set("console", State::Down(e.to_string()));
            }
        }
    }

    // The SIEM roll-up: its own thread; a receiver that is down holds up nothing else.
    let siem = match (&cfg.fleet_syslog, read.is_empty()) {
        (Some(s), true) => Some(crate::fleet::syslog_send::spawn(
            s.clone(),
            cfg.store.path.clone(),
            cfg.site_name.clone(),
            live.clone(),
            (metrics.clone(), health.clone()),
            shutdown.flag(),
        )?),
        _ => None,
    };

    // The central PostgreSQL copy: its own thread, like the SIEM's.
    let rollup = match (&cfg.fleet_postgres, read.is_empty()) {
        (Some(p), true) => Some(crate::fleet::rollup_pg::spawn(
            p.clone(),
            cfg.store.path.clone(),
            cfg.site_name.clone(),
            live.clone(),
            (metrics.clone(), health.clone()),
            shutdown.flag(),
        )?),
        _ => None,
    };

    systemd::notify("READY=1\nSTATUS=watching");
    tracing::info!(
        mode = cfg.mode.as_str(),
        dns = ?resolver_addrs,
        capture = ?cfg.capture.interfaces,
        read = ?read,
        metrics = ?metrics_addr,
        rules = %live.dirs().catalog.display(),
        site = %live.dirs().site.display(),
        "aiwarden running"
    );
    tracing::info!(enforcement = %enforcement(&cfg), "enforcement");

    let watchdog = systemd::watchdog_interval();
    let signal = |kind| tokio::signal::unix::signal(kind).map_err(thread_err("signal handling"));
    use tokio::signal::unix::SignalKind;
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_watchdog = Instant::now();
    loop {
        tokio::select! {
            _ = hup.recv() => { let _ = chore_tx.try_send(Chore::Reload); }
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => {
                if reader.as_ref().is_some_and(|r| r.is_finished()) {
                    break;
                }
                health.set("detection", if fresh(&detection_beat) && !detection_thread.is_finished() {
                    State::Ok
                } else {
                    State::Down("the detection thread stopped or is stuck".into())
                });
                // The writer reports its own state; only a stopped or stuck writer is said here.
                if !fresh(&store_beat) || writer_thread.is_finished() {
                    health.set("store", State::Down("the store writer stopped or is stuck".into()));
                }
                if !udp_threads.is_empty() {
                    health.set("resolver", if udp_threads.iter().any(|t| t.is_finished()) {
                        State::Down("a DNS socket thread ended".into())
                    } else {
                        State::Ok
                    });
                }
                let alive = health.report().grade != Grade::Down;
                if let Some(every) = watchdog {
                    if alive && last_watchdog.elapsed() >= every {
                        systemd::notify("WATCHDOG=1");
                        last_watchdog = Instant::now();
                    }
                }
            }
        }
    }

    tracing::info!("stopping: flushing incidents");
    systemd::notify("STOPPING=1");
    shutdown.trigger();
    if let Some(r) = router {
        // Traffic is let go first: a stopping daemon judges nothing.
        r.stop();
    }
    for c in &captures {
        c.wake();
    }
    for t in tasks {
        let _ = t.await;
    }
    let read_result = tokio::task::spawn_blocking(move || {
        for t in udp_threads {
            let _ = t.join();
        }
        for c in captures {
            c.join();
        }
        let read = reader.map(|r| r.join());
        // Every input sender is gone now: detection drains its queue and returns, then the
        // writer flushes what detection sent.
        let _ = detection_thread.join();
        let _ = writer_thread.join();
        let _ = housekeeping.join();
        if let Some(t) = siem {
            let _ = t.join();
        }
        if let Some(t) = rollup {
            let _ = t.join();
        }
        read
    })
    .await
    .ok()
    .flatten();
    drop(chore_tx);
    match read_result {
        Some(Ok(Ok(frames))) => tracing::info!(frames, "capture files read"),
        Some(Ok(Err(e))) => return Err(e),
        Some(Err(_)) => tracing::error!("the capture file reader panicked"),
        None => {}
    }
    tracing::info!("stopped");
    Ok(())
}
