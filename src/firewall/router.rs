//! Router placement: installs the table at start (choosing how TCP is blocked from what
//! the kernel offers), runs the firewall thread that adds denied tuples to the sets in
//! batches, gives the capture path its [`Enforcer`], and removes everything on a clean
//! stop. In monitor mode it installs nothing and only clears a stale table.

use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::nft::Firewall;
use super::ruleset::{self, Plan, QueueRule, TUPLE_SETS};
use super::{Enforcer, FwOp};
use crate::config::{Config, Placement, QuicBlock, TcpBlock, Upstream};
use crate::detect::{Observation, Proto};
use crate::error::Result;
use crate::incident::Action;
use crate::metrics::Metrics;
use crate::policy::{Live, Mode, RuleSet, Verdict};

/// How new TCP connections are judged on the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpPath {
    /// Held by the native nft `queue` statement until judged.
    Queue,
    /// Held by iptables' NFQUEUE target (the kernel lacks the nft `queue` expression).
    QueueXt,
    /// Not held: the capture path adds a denied connection to a set; its next packet is
    /// reset (the first ClientHello may pass).
    Reactive,
    /// Not blocked (monitor mode, or `tcp = "off"`).
    Off,
}

impl TcpPath {
    /// As `aiwarden status` and the metric label print it.
    pub fn as_str(self) -> &'static str {
        match self {
            TcpPath::Queue => "queue",
            TcpPath::QueueXt => "queue-xt",
            TcpPath::Reactive => "reactive",
            TcpPath::Off => "off",
        }
    }

    /// True when the queue judges connections inline.
    pub fn inline(self) -> bool {
        matches!(self, TcpPath::Queue | TcpPath::QueueXt)
    }
}

/// The table's plan for `cfg` and `rules` (queue rule not set: chosen at start).
pub fn plan(cfg: &Config, rules: &RuleSet) -> Plan {
    let e = &cfg.enforcement;
    let lan = e.lan_interfaces(&cfg.capture).to_vec();
    let doh: Vec<IpNet> = rules
        .services()
        .filter(|s| s.category == "bypass")
        .flat_map(|s| s.addresses.iter().copied())
        .collect();
    let mut quic_all = Vec::new();
    let mut quic_all_macs = Vec::new();
    for g in &e.block_quic_groups {
        if g == "*" {
            quic_all.extend(
                [IpAddr::from([0u8; 4]), IpAddr::from([0u16; 8])]
                    .into_iter()
                    .filter_map(|any| IpNet::new(any, 0).ok()),
            );
            continue;
        }
        if let Some(def) = rules.groups().iter().find(|d| &d.name == g) {
            quic_all.extend(def.cidrs.iter().copied());
            quic_all_macs.extend(def.macs.iter().map(|m| m.to_string()));
        }
    }
    Plan {
        lan,
        dns: cfg.dns.listen.clone(),
        doh,
        block_853: true,
        quic_all,
        quic_all_macs,
        quic: e.quic,
        block_secs: e.block_secs,
        queue: None,
        queued_packets: None,
    }
}

/// Problems with a router configuration that `aiwarden check` reports (the daemon still
/// starts): group names that are not in groups.toml, devices named only by device name.
pub fn lint(cfg: &Config, rules: &RuleSet) -> Vec<String> {
    let mut out = Vec::new();
    for g in &cfg.enforcement.block_quic_groups {
        if g == "*" {
            continue;
        }
        match rules.groups().iter().find(|d| &d.name == g) {
            None => out.push(format!(
                "enforcement.block_quic_groups: no group {g:?} in groups.toml"
            )),
            Some(d) if !d.devices.is_empty() => out.push(format!(
                "enforcement.block_quic_groups: group {g:?} names devices by name; UDP 443 is refused for its cidrs and macs only"
            )),
            Some(_) => {}
        }
    }
    if !cfg.dns.listen.iter().any(|l| l.is_ipv6()) {
        out.push("enforcement: no IPv6 resolver address in dns.listen: IPv6 DNS to other resolvers is not redirected".into());
    }
    out
}

/// The router's enforcement, started.
pub struct Router {
    /// How TCP is blocked.
    pub tcp: TcpPath,
    /// The NFQUEUE bound for the queue thread, when `tcp` is inline.
    pub queue: Option<nfq::Queue>,
    /// Whether the verdict re-enters the hook (native queue).
    pub repeat: bool,
    /// Changes for the firewall thread.
    pub tx: SyncSender<FwOp>,
    thread: Option<std::thread::JoinHandle<()>>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
    mode: Mode,
}

impl Router {
    /// Installs the table for `cfg` and `rules` through `fw`, choosing the TCP path, and
    /// starts the firewall thread. In monitor mode, removes a stale table and installs
    /// nothing.
    ///
    /// With `live`, the firewall thread rebuilds the table when the rules change (the
    /// bypass catalog's resolver addresses, the groups whose QUIC is refused).
    pub fn start(
        cfg: &Config,
        rules: &RuleSet,
        mut fw: Box<dyn Firewall>,
        metrics: Arc<Metrics>,
        live: Option<Arc<Live>>,
    ) -> Result<Router> {
        let e = &cfg.enforcement;
        let mut plan = plan(cfg, rules);
        let lan = plan.lan.clone();
        let queue_rule = QueueRule {
            num: e.queue,
            packets: e.queue_packets,
        };
        let mut tcp = TcpPath::Off;
        let mut queue = None;
        fw.remove_xt();
        if cfg.mode != Mode::Enforce {
            fw.apply(ruleset::remove_commands())?;
        } else {
            if e.tcp == TcpBlock::Auto {
                match super::queue::bind(e.queue, e.queue_max_len) {
                    Ok(b) => {
                        tracing::info!(
                            conntrack_ids = b.conntrack,
                            "NFQUEUE bound: new connections on reused ports are told by {}",
                            if b.conntrack {
                                "conntrack id"
                            } else {
                                "sequence number"
                            }
                        );
                        queue = Some(b.queue);
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "NFQUEUE unavailable: connections are blocked reactively (the first ClientHello may pass)")
                    }
                }
            }
            if queue.is_some() {
                plan.queue = Some(queue_rule);
                plan.queued_packets = Some(queue_rule.packets);
                match fw.apply(plan.commands()) {
                    Ok(()) => tcp = TcpPath::Queue,
                    Err(err) => {
                        tracing::info!(error = %err, "the kernel has no nft queue expression; trying iptables' NFQUEUE target");
                        plan.queue = None;
                    }
                }
            }
            if tcp == TcpPath::Off {
                if queue.is_some() {
                    plan.queued_packets = Some(queue_rule.packets);
                }
                fw.apply(plan.commands())?;
                if queue.is_some() {
                    match fw.install_xt(&lan, queue_rule) {
                        Ok(()) => tcp = TcpPath::QueueXt,
                        Err(err) => {
                            tracing::warn!(error = %err, "no NFQUEUE hook: connections are blocked reactively (the first ClientHello may pass)");
                            fw.remove_xt();
                            queue = None;
                            plan.queued_packets = None;
                            fw.apply(plan.commands())?;
                        }
                    }
                }
                if tcp == TcpPath::Off && e.tcp != TcpBlock::Off {
                    tcp = TcpPath::Reactive;
                }
            }
        }
        if !tcp.inline() {
            queue = None;
        }
        let (tx, rx) = std::sync::mpsc::sync_channel::<FwOp>(4096);
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let stopping = stopping.clone();
            let queue_num = e.queue;
            let mode = cfg.mode;
            let rebuild = live.filter(|_| mode == Mode::Enforce).map(|live| Rebuild {
                version: live.version(),
                live,
                cfg: cfg.clone(),
                queue: plan.queue,
                queued_packets: plan.queued_packets,
            });
            std::thread::Builder::new()
                .name("aiwarden-firewall".into())
                .spawn(move || {
                    firewall_thread(
                        fw,
                        rx,
                        metrics,
                        stopping,
                        queue_num,
                        mode != Mode::Enforce,
                        rebuild,
                    )
                })
                .map_err(|source| crate::Error::Thread {
                    name: "the firewall thread".into(),
                    source,
                })?
        };
        Ok(Router {
            tcp,
            repeat: tcp == TcpPath::Queue,
            queue,
            tx,
            thread: Some(thread),
            stopping,
            mode: cfg.mode,
        })
    }

    /// The capture path's enforcer.
    pub fn enforcer(&self, cfg: &Config) -> RouterEnforcer {
        RouterEnforcer {
            tx: self.tx.clone(),
            tcp: self.tcp != TcpPath::Off,
            redirect: self.mode == Mode::Enforce && !cfg.dns.listen.is_empty(),
        }
    }

    /// Removes the table and the iptables hook and ends the firewall thread.
    pub fn stop(mut self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The labels of `aiwarden_enforcement_info` and the line `check` and the log print.
pub fn describe(cfg: &Config, tcp: Option<TcpPath>) -> [String; 4] {
    let e = &cfg.enforcement;
    let enforce = cfg.mode == Mode::Enforce;
    let dns = match (cfg.dns.listen.is_empty(), enforce, e.placement) {
        (true, _, _) => "off",
        (false, false, _) => "monitor",
        (false, true, Placement::Router) => "nxdomain+redirect",
        (false, true, _) => "nxdomain",
    };
    let (tcp, quic) = match (enforce, e.placement) {
        (false, _) => ("off".to_string(), "off"),
        (true, Placement::Resolver) => ("off".to_string(), "off"),
        (true, Placement::Sensor) => ("reset".to_string(), "off"),
        (true, Placement::Router) => (
            tcp.map_or_else(
                || match e.tcp {
                    TcpBlock::Auto => "queue-or-reactive".to_string(),
                    TcpBlock::Reactive => "reactive".to_string(),
                    TcpBlock::Off => "off".to_string(),
                },
                |t| t.as_str().to_string(),
            ),
            match e.quic {
                QuicBlock::Reject => "reject",
                QuicBlock::Drop => "drop",
            },
        ),
    };
    [
        e.placement.as_str().to_string(),
        tcp,
        quic.to_string(),
        dns.to_string(),
    ]
}

/// The first plain address of each family among the upstreams (a DNS-over-TLS upstream's
/// address serves plain DNS on port 53 at the public resolvers): where the fail-open
/// table sends DNS while aiwarden is down.
pub fn failopen_upstreams(cfg: &Config) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for u in &cfg.dns.upstreams {
        let a: SocketAddr = match u {
            Upstream::Plain(a) => *a,
            Upstream::Tls { addr, .. } => *addr,
        };
        if !out.iter().any(|o| o.is_ipv6() == a.is_ipv6()) {
            out.push(a.ip());
        }
    }
    out
}

/// What the firewall thread needs to rebuild the table when the rules change.
struct Rebuild {
    live: Arc<Live>,
    version: u64,
    cfg: Config,
    queue: Option<QueueRule>,
    queued_packets: Option<u32>,
}

impl Rebuild {
    /// The table for the rules in force, when they changed since the last one installed.
    fn changed(&mut self) -> Option<Vec<serde_json::Value>> {
        let v = self.live.version();
        if v == self.version {
            return None;
        }
        self.version = v;
        let mut p = plan(&self.cfg, &self.live.current());
        p.queue = self.queue;
        p.queued_packets = self.queued_packets;
        Some(p.commands())
    }
}

/// Batches denied tuples into the sets (one `nft` run per batch, 5 ms after the first),
/// rebuilds the table when the rules change, and every ten seconds publishes the sets'
/// sizes and the kernel's queue counters.
fn firewall_thread(
    mut fw: Box<dyn Firewall>,
    rx: Receiver<FwOp>,
    metrics: Arc<Metrics>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
    queue_num: u16,
    monitor: bool,
    mut rebuild: Option<Rebuild>,
) {
    let mut last_stats = Instant::now();
    let mut seen: crate::detect::table::Map<FwOp, Instant> = crate::detect::table::map(65_536);
    loop {
        let first = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(op) => Some(op),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if stopping.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        if let Some(first) = first {
            // A few milliseconds for others to join the batch: one `nft` run for a burst.
            std::thread::sleep(Duration::from_millis(5));
            let mut ops = vec![first];
            while let Ok(op) = rx.try_recv() {
                ops.push(op);
            }
            // A tuple added within the last second is still in its set.
            let now = Instant::now();
            ops.retain(|op| {
                let fresh = seen
                    .get(op)
                    .is_none_or(|t| now.duration_since(*t) > Duration::from_secs(1));
                if fresh {
                    seen.put(*op, now);
                }
                fresh
            });
            let mut sets: [Vec<(IpAddr, IpAddr, u16)>; 4] = Default::default();
            let mut conns: [Vec<(SocketAddr, SocketAddr)>; 2] = Default::default();
            for op in ops {
                let (i, c, s, p) = match op {
                    FwOp::DenyTcp(c, s, p) => (0, c, s, p),
                    FwOp::DenyQuic(c, s, p) => (2, c, s, p),
                    FwOp::DenyConn(c, s) => {
                        let v6 = c.ip().to_canonical().is_ipv6();
                        if v6 == s.ip().to_canonical().is_ipv6() {
                            conns[usize::from(v6)].push((c, s));
                        }
                        continue;
                    }
                };
                let (c, s) = (c.to_canonical(), s.to_canonical());
                if c.is_ipv6() != s.is_ipv6() || c.is_unspecified() {
                    continue;
                }
                sets[i + usize::from(c.is_ipv6())].push((c, s, p));
            }
            let mut commands: Vec<_> = sets
                .iter()
                .zip(TUPLE_SETS)
                .filter(|(t, _)| !t.is_empty())
                .map(|(t, name)| ruleset::add_tuples(name, t))
                .collect();
            commands.extend(
                conns
                    .iter()
                    .zip(["conn4", "conn6"])
                    .filter(|(t, _)| !t.is_empty())
                    .map(|(t, name)| ruleset::add_connections(name, t)),
            );
            if !commands.is_empty() {
                match fw.apply(commands) {
                    Ok(()) => metrics.firewall_changes.with_label_values(&["ok"]).inc(),
                    Err(e) => {
                        metrics.firewall_changes.with_label_values(&["error"]).inc();
                        tracing::warn!(error = %e, "could not add denied connections to the firewall's sets");
                    }
                }
            }
        }
        if let Some(commands) = rebuild.as_mut().and_then(Rebuild::changed) {
            // One transaction: the old table (and the denied tuples in its sets) goes, the
            // new one comes; connections already judged keep their conntrack marks.
            match fw.apply(commands) {
                Ok(()) => {
                    metrics.firewall_changes.with_label_values(&["ok"]).inc();
                    tracing::info!("firewall table rebuilt for the reloaded rules");
                }
                Err(e) => {
                    metrics.firewall_changes.with_label_values(&["error"]).inc();
                    tracing::error!(error = %e, "could not rebuild the firewall table for the reloaded rules; the previous one stays");
                }
            }
        }
        if last_stats.elapsed() >= Duration::from_secs(10) {
            last_stats = Instant::now();
            for set in TUPLE_SETS {
                if let Some(n) = fw.set_len(set) {
                    metrics
                        .firewall_set_elements
                        .with_label_values(&[set])
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
            if let Some(queued) = fw.queued_packets() {
                // What the queue rules sent minus the verdicts given: fail-open passes
                // (the kernel counts them nowhere), give or take packets in flight.
                let judged: u64 = ["accept", "deny", "quic_deny"]
                    .iter()
                    .map(|r| metrics.queue_verdicts.with_label_values(&[r]).get())
                    .sum();
                metrics
                    .queue_kernel
                    .with_label_values(&["passed_unjudged"])
                    .set(i64::try_from(queued.saturating_sub(judged)).unwrap_or(i64::MAX));
            }
            if let Some(q) = QueueStats::read(queue_num) {
                metrics
                    .queue_kernel
                    .with_label_values(&["waiting"])
                    .set(q.waiting);
                metrics
                    .queue_kernel
                    .with_label_values(&["dropped"])
                    .set(q.dropped);
                metrics
                    .queue_kernel
                    .with_label_values(&["user_dropped"])
                    .set(q.user_dropped);
            }
        }
    }
    // A clean stop: nothing of aiwarden's stays in the kernel.
    fw.remove_xt();
    if let Err(e) = fw.apply(ruleset::remove_commands()) {
        tracing::error!(error = %e, "could not remove table inet aiwarden");
    } else if !monitor {
        tracing::info!("firewall table removed");
    }
}

/// One line of `/proc/net/netfilter/nfnetlink_queue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    /// Packets waiting for a verdict now.
    pub waiting: i64,
    /// Packets dropped because the queue was full (fail-open lets them pass instead).
    pub dropped: i64,
    /// Packets the netlink socket could not take.
    pub user_dropped: i64,
}

impl QueueStats {
    /// Parses the kernel's table for queue `num`.
    pub fn parse(text: &str, num: u16) -> Option<QueueStats> {
        text.lines().find_map(|l| {
            let f: Vec<i64> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (f.len() >= 7 && f[0] == i64::from(num)).then(|| QueueStats {
                waiting: f[2],
                dropped: f[5],
                user_dropped: f[6],
            })
        })
    }

    /// Reads the kernel's counters for queue `num`, when it is bound.
    pub fn read(num: u16) -> Option<QueueStats> {
        let text = std::fs::read_to_string("/proc/net/netfilter/nfnetlink_queue").ok()?;
        QueueStats::parse(&text, num)
    }
}

/// The capture path's enforcement on a router: a blocked connection the capture saw goes
/// into the tuple sets (the next packet is reset: the reactive path, and a second line
/// behind the queue for a connection that passed it while it was full); a captured DNS
/// query to another resolver was redirected to aiwarden's.
pub struct RouterEnforcer {
    tx: SyncSender<FwOp>,
    tcp: bool,
    redirect: bool,
}

impl Enforcer for RouterEnforcer {
    fn act(&mut self, obs: &Observation, verdict: Verdict) -> Option<Action> {
        if obs.proto == Proto::Dns {
            return (self.redirect && obs.server.port() == 53).then_some(Action::Redirected);
        }
        if verdict != Verdict::Block {
            return None;
        }
        let (c, s, p) = (obs.client.ip(), obs.server.ip(), obs.server.port());
        match obs.proto {
            Proto::Quic => {
                let _ = self.tx.try_send(FwOp::DenyQuic(c, s, p));
                Some(Action::QuicDrop)
            }
            _ if self.tcp => {
                let _ = self.tx.try_send(FwOp::DenyConn(obs.client, obs.server));
                let _ = self.tx.try_send(FwOp::DenyTcp(c, s, p));
                Some(Action::Reset)
            }
            _ if p == 853 => Some(Action::Reset),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
