//! The detection thread: frames from capture and events from the resolver in, through the
//! detector, the device map, the rules and the incident pipeline (the same steps as
//! `aiwarden replay`), store operations and metrics out. It never reads a file or runs a
//! process: an address nobody knows asks the housekeeping thread for a device refresh.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::housekeeping::Chore;
use crate::capture::OwnedFrame;
use crate::detect::table::Map;
use crate::detect::{Detector, Observation, Proto, Stats, Timestamp};
use crate::devices::{DeviceMap, Identity};
use crate::firewall::Enforcer;
use crate::incident::{judge, service_key, Action, IncidentOp, Judged, Pipeline};
use crate::limit::Throttle;
use crate::metrics::Metrics;
use crate::policy::unblock::{Asker, Unblocks};
use crate::policy::{Decision, Live, Mode, Verdict};
use crate::resolver::DnsEvent;
use crate::store::writer::{now_micros, StoreOp};

/// What reaches the detection thread.
#[derive(Debug)]
pub(super) enum Input {
    /// A captured frame.
    Frame(OwnedFrame),
    /// Something the resolver did. Boxed: std's bounded channel allocates every slot up
    /// front, so the queue's memory is capacity × the largest variant.
    Resolver(Box<DnsEvent>),
    /// A connection enforcement judged and blocked inline (the NFQUEUE verdicts), and what
    /// it did.
    Blocked(Box<(Observation, Action)>),
}

impl From<OwnedFrame> for Input {
    fn from(f: OwnedFrame) -> Input {
        Input::Frame(f)
    }
}

/// The detection thread's state.
pub(super) struct Detection {
    /// The pure detector.
    pub detector: Detector,
    /// The pure incident pipeline.
    pub pipeline: Pipeline,
    /// The mode in force.
    pub mode: Mode,
    /// The rules in force.
    pub live: Arc<Live>,
    /// The device map in force.
    pub devices: Arc<ArcSwap<DeviceMap>>,
    /// Requests to the housekeeping thread.
    pub chores: SyncSender<Chore>,
    /// aiwarden's own resolver addresses: captured queries to them are the resolver's to
    /// report (it knows what it answered), so the captured copy is not counted twice.
    pub own_dns: Vec<SocketAddr>,
    /// The store writer.
    pub store: SyncSender<StoreOp>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Stamped while the thread is alive.
    pub beat: Arc<AtomicU64>,
    /// Addresses lately seen from a MAC other than the neighbour table's, and when.
    pub spoofed: Map<IpAddr, Timestamp>,
    /// One log line per interval for incidents not opened.
    pub flood_log: Throttle,
    /// Enforcement beyond the resolver, in enforce mode: what the placement does about a
    /// connection the capture path saw.
    pub enforcer: Option<Box<dyn Enforcer>>,
    /// The unblocks in force: a block they cover is flagged, and the enforcer not asked.
    pub unblocks: Arc<ArcSwap<Unblocks>>,
}

/// How long an address stays suspect after a frame from the wrong MAC used it: the
/// resolver's events (which carry no MAC) within it are marked too.
const SPOOF_MEMORY_MICROS: u64 = 60_000_000;

/// Addresses remembered as suspect, at most.
pub(super) const MAX_SPOOFED: usize = 4_096;

impl Detection {
    fn stamp(&self) {
        self.beat
            .store(now_micros().max(0) as u64, Ordering::Relaxed);
    }

    /// Runs until every sender is gone, then returns (dropping the store's sender lets the
    /// writer flush).
    pub(super) fn run(mut self, rx: Receiver<Input>) {
        let mut published = Stats::default();
        let mut last_export = Instant::now();
        let mut latest = Timestamp::default();
        let mut last_expire = Instant::now();
        self.stamp();
        loop {
            let input = match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(i) => Some(i),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            self.stamp();
            match input {
                Some(Input::Frame(f)) => {
                    self.metrics.packets.inc();
                    self.metrics.bytes.inc_by(f.data.len() as u64);
                    latest = latest.max(f.ts);
                    for obs in self.detector.process(f.ts, f.link, &f.data) {
                        self.observe(obs, None, None);
                    }
                }
                Some(Input::Resolver(ev)) => match *ev {
                    DnsEvent::Answer {
                        client,
                        host,
                        addrs,
                    } => {
                        for a in addrs {
                            self.detector.learn(client, a, host.clone());
                        }
                    }
                    DnsEvent::Query { obs, decision } => {
                        latest = latest.max(obs.ts);
                        self.observe(obs, Some(decision), None);
                    }
                },
                Some(Input::Blocked(b)) => {
                    let (obs, action) = *b;
                    latest = latest.max(obs.ts);
                    self.observe(obs, None, Some(action));
                }
                None => {}
            }
            if last_export.elapsed() >= Duration::from_secs(1) {
                last_export = Instant::now();
                let now = self.detector.stats();
                self.metrics.add_detector_stats(&now, &published);
                published = now;
            }
            if last_expire.elapsed() >= Duration::from_secs(5) {
                last_expire = Instant::now();
                for key in self.pipeline.expire(latest) {
                    self.send(StoreOp::Forget(key));
                }
            }
        }
        // Connections still waiting for their first flight end with the capture.
        for obs in self.detector.finish() {
            self.observe(obs, None, None);
        }
        let now = self.detector.stats();
        self.metrics.add_detector_stats(&now, &published);
    }

    /// Whether `obs` used an address that is not its sender's: a frame whose MAC is not
    /// the one the kernel's neighbour table has for the address, or (for the resolver's
    /// events, which carry no MAC) an address such a frame used within the last minute.
    fn spoofed(&mut self, obs: &Observation) -> bool {
        let ip = obs.client.ip().to_canonical();
        match obs.client_mac {
            Some(frame) => {
                let known = self.devices.load().neighbour_mac(ip);
                let wrong = known.is_some_and(|k| k != frame);
                if wrong {
                    if self.spoofed.put(ip, obs.ts).is_none() {
                        tracing::warn!(client = %ip, frame_mac = %frame, "an address used from another device's MAC; its incidents are marked spoofed");
                    }
                    self.metrics.pipeline.with_label_values(&["spoofed"]).inc();
                }
                wrong
            }
            None => self
                .spoofed
                .get(&ip)
                .is_some_and(|t| obs.ts.micros_since(*t) < SPOOF_MEMORY_MICROS),
        }
    }

    /// Who made `obs`: the device map's answer, with the MAC frames taught standing in.
    fn identify(&mut self, obs: &Observation) -> Identity {
        let ip = obs.client.ip();
        let map = self.devices.load();
        let frame_mac = obs.client_mac.or_else(|| self.detector.mac_of(ip));
        let who = map.identify_with(ip, frame_mac);
        if !map.knows(ip) {
            // Joined since the last refresh, or behind a router; the housekeeping thread
            // rate-limits the re-reads.
            let _ = self.chores.try_send(Chore::RefreshDevices);
        }
        if let (Some(mac), None) = (who.mac, frame_mac) {
            // The kernel knows this device: teach the detector, so its other addresses'
            // connections are explained by this address's DNS answers.
            self.detector.learn_neighbour(ip, mac);
        }
        who
    }

    /// Judges and records `obs`: `resolver` is the resolver's decision for its own
    /// queries, `done` what inline enforcement already did to it.
    fn observe(&mut self, obs: Observation, resolver: Option<Decision>, done: Option<Action>) {
        // Checked before anything is skipped: a spoofed query to aiwarden's own resolver
        // is reported by the resolver, marked by what this frame showed.
        let spoofed = self.spoofed(&obs);
        if resolver.is_none()
            && obs.proto == Proto::Dns
            && self.own_dns.iter().any(|l| {
                l.port() == obs.server.port()
                    && (l.ip().is_unspecified() || l.ip().to_canonical() == obs.server.ip())
            })
        {
            return;
        }
        let mut who = self.identify(&obs);
        if spoofed {
            // The frame's own MAC is who sent it; the address belongs to someone else.
            if let Some(frame) = obs.client_mac {
                who = Identity {
                    ip: who.ip,
                    mac: Some(frame),
                    hostname: None,
                    label: None,
                    owner: None,
                };
            }
        }
        let from_resolver = resolver.is_some();
        let mut judged = match resolver {
            Some(decision) => Judged::resolved_query(&obs, decision),
            None => {
                let rules = self.live.current();
                let judged = judge(&rules, &obs, &who.client(), self.mode);
                self.lift(judged, &who)
            }
        };
        judged.how.spoofed = spoofed;
        judged.how.action = match done {
            Some(a) => Some(a),
            None if self.mode != Mode::Enforce => None,
            None if from_resolver => (judged.decision.verdict == Verdict::Block
                && judged.how.proto == Proto::Dns)
                .then_some(Action::Nxdomain),
            None => self
                .enforcer
                .as_mut()
                .and_then(|e| e.act(&obs, judged.decision.verdict)),
        };
        if let Some(a) = judged.how.action {
            self.metrics.enforced.with_label_values(&[a.as_str()]).inc();
        }
        if judged.ech_grease {
            self.metrics
                .pipeline
                .with_label_values(&["ech_grease"])
                .inc();
        } else if judged.how.ech {
            self.metrics
                .pipeline
                .with_label_values(&["ech_hidden"])
                .inc();
        }
        if !judged.matched() {
            return;
        }
        let before = self.pipeline.stats().opens_limited;
        let outcome = self.pipeline.step(&obs, &who, &judged);
        if self.pipeline.stats().opens_limited > before {
            self.metrics
                .pipeline
                .with_label_values(&["opens_limited"])
                .inc();
            if let Some(quiet) = self.flood_log.ready(Instant::now()) {
                tracing::warn!(device = %who, service = %service_key(&judged.decision), not_logged = quiet,
                    "incident not opened: this device, all devices or spoofed addresses used up their budget (a flood?)");
            }
        }
        let d = &judged.decision;
        self.metrics
            .detections
            .with_label_values(&[&service_key(d), d.verdict.as_str(), obs.proto.as_str()])
            .inc();
        self.metrics
            .pipeline
            .with_label_values(&[if outcome.attempt { "attempt" } else { "repeat" }])
            .inc();
        if let Some(u) = outcome.usage {
            self.send(StoreOp::Usage(u));
        }
        if let Some(op) = outcome.incident {
            if let IncidentOp::Open { record, .. } = &op {
                tracing::info!(
                    device = %who,
                    client = %record.client_ip,
                    service = %record.service,
                    verdict = record.verdict.as_str(),
                    how = %record.how,
                    host = %record.host,
                    "incident"
                );
                self.metrics
                    .incidents
                    .with_label_values(&[record.verdict.as_str()])
                    .inc();
            }
            self.send(StoreOp::Incident(op));
        }
    }

    /// `judged` with its block lifted when an unblock in force covers the device and the
    /// name decided on (enforce mode only; the resolver lifts its own decisions).
    fn lift(&self, mut judged: Judged, who: &Identity) -> Judged {
        if judged.decision.verdict != Verdict::Block || self.mode != Mode::Enforce {
            return judged;
        }
        let table = self.unblocks.load();
        if table.is_empty() {
            return judged;
        }
        let asker = Asker {
            ip: who.ip,
            mac: who.mac,
            names: [who.hostname.as_deref(), who.label.as_deref()],
        };
        let host = judged.host.as_ref().map(|h| h.as_str());
        judged.decision = table.apply(judged.decision, self.mode, &asker, host, now_micros());
        if judged.decision.verdict == Verdict::Flag {
            self.metrics
                .pipeline
                .with_label_values(&["unblocked"])
                .inc();
        }
        judged
    }

    /// Store operations are never dropped: incidents are the point. When the store falls
    /// behind, detection waits (capture keeps dropping into its own counter instead).
    fn send(&self, op: StoreOp) {
        if self.store.send(op).is_err() {
            self.metrics
                .store_errors
                .with_label_values(&["writer_gone"])
                .inc();
        }
    }
}
