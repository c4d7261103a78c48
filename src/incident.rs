//! The pipeline step, written once: an observation, the device behind it and the rules in
//! force become a decision, an attempt count, a usage count and an incident record. Pure:
//! time comes from the observations. `aiwarden run`, `aiwarden replay` and the pipeline
//! bench all call [`judge`] and [`Pipeline::step`], so the daemon and a replay of the same
//! frames record the same incidents.
//!
//! An incident is a device's use of one flagged or blocked service while it keeps coming
//! within a window: opened (and recorded at once, so a crash loses nothing) by the first
//! observation, touched by the later ones. Devices are keyed by MAC address where one is
//! known (a dual-stack device's IPv4 and rotating IPv6 addresses are one device), by
//! address only behind a router. Counts are attempts, not packets: a distinct query name
//! per device per minute, and each distinct connection, so retries and the A/AAAA/HTTPS
//! trio of one lookup count once.
//!
//! Opening is budgeted (`budget.rs`): [`DEVICE_OPENS_PER_MINUTE`] per device,
//! [`ALL_OPENS_PER_MINUTE`] in all and [`SPOOFED_OPENS_PER_MINUTE`] for observations the
//! shell marked `spoofed`, so a host cycling through addresses cannot write thousands of
//! incidents; what a budget turned away is counted and its usage still recorded. `How`
//! (`how.rs`) is how an observation was seen, as incidents record it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::detect::table::{map, Map};
use crate::detect::{is_local, Host, Mac, Observation, Proto, Timestamp};
use crate::devices::Identity;
use crate::policy::{Client, Decision, Mode, RuleSet, Signal, Tier, Verdict};

mod budget;
mod how;

use budget::Budget;
pub use how::{Action, How};

/// Default grouping window: 10 minutes.
pub const DEFAULT_WINDOW_MICROS: u64 = 10 * 60 * 1_000_000;
/// A query name counts as a new attempt at most once per this long per device.
pub const ATTEMPT_WINDOW_MICROS: u64 = 60 * 1_000_000;
/// Host names and `how` values kept per incident, each. Keeps a wildcard rule that matches
/// endless random subdomains from growing one incident without bound; the count stays
/// exact.
pub const MAX_SEEN_PER_INCIDENT: usize = 64;
/// (device, attempt) pairs remembered to tell a retry from a new attempt.
const MAX_ATTEMPTS: usize = 131_072;

/// Incidents one device may open in a minute (its burst; refilled evenly). A real device
/// opens a few: one per AI service it uses.
pub const DEVICE_OPENS_PER_MINUTE: u32 = 30;
/// Incidents all devices together may open in a minute: what one host cycling through
/// addresses, each a "device" behind a router, meets.
pub const ALL_OPENS_PER_MINUTE: u32 = 600;
/// Incidents marked `spoofed` that may open in a minute, in all.
pub const SPOOFED_OPENS_PER_MINUTE: u32 = 10;
/// Devices whose open budgets are kept (least recently seen dropped).
const MAX_DEVICE_BUDGETS: usize = 65_536;

/// Names that are signals to clients rather than services: the resolver answers them
/// NXDOMAIN in every mode. `use-application-dns.net`: Firefox keeps DNS-over-HTTPS off.
/// `mask.icloud.com`, `mask-h2.icloud.com`: Apple devices turn iCloud Private Relay off.
/// `resolver.arpa` (`_dns.resolver.arpa`, RFC 9462): devices do not discover and switch to
/// an encrypted resolver. A device asking them is checking the network, not using AI, so
/// they never make incidents.
pub const CANARIES: [&str; 4] = [
    "use-application-dns.net",
    "mask.icloud.com",
    "mask-h2.icloud.com",
    "resolver.arpa",
];

/// True for a canary name or a name under one.
pub fn is_canary(host: &str) -> bool {
    CANARIES.iter().any(|c| {
        host == *c
            || (host.len() > c.len()
                && host.ends_with(c)
                && host.as_bytes()[host.len() - c.len() - 1] == b'.')
    })
}

/// An observation decided: what the rules said, about which name, seen how.
#[derive(Debug, Clone)]
pub struct Judged {
    /// The rules' decision.
    pub decision: Decision,
    /// The name decided on: the name the device asked for when real ECH hid it, else the
    /// observation's host. `None` for a connection decided by address or signal alone.
    pub host: Option<Host>,
    /// How it was seen and decided.
    pub how: How,
    /// The ClientHello carried a GREASE ECH extension (counted, never flagged).
    pub ech_grease: bool,
}

impl Judged {
    /// True when some rule or catalog entry matched (an allowed enterprise service too).
    pub fn matched(&self) -> bool {
        self.decision.service.is_some() || self.decision.rule.is_some()
    }

    /// A query the resolver already judged: its decision is the one acted on and stored.
    pub fn resolved_query(obs: &Observation, decision: Decision) -> Judged {
        Judged {
            decision,
            host: obs.host.clone(),
            how: How::of(obs.proto),
            ech_grease: false,
        }
    }
}

/// Decides an observation: by name (the real name behind an ECH public name first, then
/// the name seen), then by the server's address (a public resolver), then by signal
/// (port 853; a ClientHello without a name to an unexplained internet address).
pub fn judge(rules: &RuleSet, obs: &Observation, client: &Client<'_>, mode: Mode) -> Judged {
    let hello = matches!(obs.proto, Proto::Tls | Proto::Quic);
    let ech = hello
        && obs.ech_offered
        && (obs.asked.is_some()
            || obs
                .host
                .as_ref()
                .is_some_and(|h| rules.is_ech_public_name(h.as_str())));
    let mut how = How {
        proto: obs.proto,
        unresolved: obs.unresolved,
        ech,
        no_sni: hello && obs.host.is_none(),
        port_853: obs.proto != Proto::Dns && obs.server.port() == 853,
        by_address: false,
        incomplete: obs.incomplete,
        // Identity is the shell's to check (it knows the neighbour tables).
        spoofed: false,
        // Enforcement is the shells' to say.
        action: None,
    };
    let judged = |decision: Decision, host: Option<&Host>, how: How| Judged {
        decision,
        host: host.cloned(),
        how,
        ech_grease: hello && obs.ech_offered && !ech,
    };
    if obs.proto == Proto::Dns && obs.host.as_ref().is_some_and(|h| is_canary(h.as_str())) {
        return judged(
            unmatched(
                rules,
                client,
                "a resolver canary: the device is checking the network",
            ),
            obs.host.as_ref(),
            how,
        );
    }
    let names = if ech { obs.asked.as_ref() } else { None }
        .into_iter()
        .chain(obs.host.as_ref());
    for name in names {
        let d = rules.judge(name.as_str(), client, mode);
        if d.service.is_some() || d.rule.is_some() {
            return judged(d, Some(name), how);
        }
    }
    if let Some(d) = rules.judge_address(obs.server.ip(), client, mode) {
        how.by_address = true;
        return judged(d, obs.host.as_ref(), how);
    }
    if how.port_853 {
        if let Some(d) = rules.judge_signal(Signal::Port853, client, mode) {
            return judged(d, obs.host.as_ref(), how);
        }
    }
    if how.no_sni && obs.unresolved && !is_local(obs.server.ip()) {
        if let Some(d) = rules.judge_signal(Signal::NoSni, client, mode) {
            return judged(d, None, how);
        }
    }
    judged(
        unmatched(rules, client, "no rule matches"),
        obs.host.as_ref(),
        how,
    )
}

/// The decision when no rule matches: allowed, nothing recorded.
fn unmatched(rules: &RuleSet, client: &Client<'_>, reason: &'static str) -> Decision {
    Decision {
        verdict: Verdict::Allow,
        service: None,
        tier: None,
        rule: None,
        group: rules
            .group_of(client)
            .map(|(g, _)| Arc::from(g.name.as_str())),
        reason,
    }
}

/// Who an incident belongs to: the device's MAC address where one is known, its address
/// behind a router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceKey {
    /// A device on the captured segment.
    Mac(Mac),
    /// A client known by address only.
    Addr(IpAddr),
}

impl DeviceKey {
    /// The key of an identified device.
    pub fn of(who: &Identity) -> DeviceKey {
        match who.mac {
            Some(m) => DeviceKey::Mac(m),
            None => DeviceKey::Addr(who.ip),
        }
    }
}

/// An incident as it opens. Every field is chained in the store: none may change later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncidentRecord {
    /// First seen, unix microseconds.
    pub ts: i64,
    /// The device's address when the incident opened.
    pub client_ip: IpAddr,
    /// The device's MAC address, when it is on the appliance's segment.
    pub client_mac: Option<Mac>,
    /// The host name the device gave DHCP.
    pub device: Option<String>,
    /// The staff member or device label from the admin's inventory.
    pub label: Option<String>,
    /// The client group the policy placed the device in.
    pub group: Option<String>,
    /// Catalog service id (or the deny rule when the host is only on a list).
    pub service: String,
    /// The service's display name.
    pub service_name: String,
    /// Catalog category.
    pub category: Option<String>,
    /// Product tier.
    pub tier: Option<Tier>,
    /// Flag or block.
    pub verdict: Verdict,
    /// The mode in force.
    pub mode: Mode,
    /// How it was seen.
    pub how: How,
    /// The first host name seen (the server's address when nothing was named). A host
    /// name only: never a URL or a path.
    pub host: String,
    /// The rule that decided, e.g. `catalog/openai.toml:chatgpt`.
    pub rule: String,
}

/// A later observation of an open incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touch {
    /// Observation time, unix microseconds.
    pub ts: i64,
    /// The host name seen (or the server's address).
    pub host: String,
    /// How it was seen.
    pub how: How,
    /// A new attempt (counted), not a retry.
    pub attempt: bool,
    /// The device's MAC, learned after its incident was opened by address alone (a
    /// resolver query before any frame of the device was seen): recorded with the activity,
    /// since the chained row cannot change.
    pub mac: Option<Mac>,
}

/// What an observation did to incidents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncidentOp {
    /// Opened a new incident: record it now. `key` names it for later touches.
    Open {
        /// The pipeline's key for the incident.
        key: u64,
        /// The chained facts.
        record: Box<IncidentRecord>,
    },
    /// Another observation of the open incident `key`.
    Touch {
        /// The incident's key.
        key: u64,
        /// What changed.
        touch: Touch,
    },
}

/// One day's count of a service's attempts with one verdict (the clinic's AI inventory,
/// allowed enterprise use included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    /// Catalog service id (or the deny rule).
    pub service: String,
    /// The verdict.
    pub verdict: Verdict,
}

/// What one observation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// It was a new attempt, not a retry within the attempt window.
    pub attempt: bool,
    /// The day's usage count to add one to (attempts of matched services only).
    pub usage: Option<Usage>,
    /// The incident it opened or touched (flagged and blocked observations only).
    pub incident: Option<IncidentOp>,
}

/// The service key of a decision: the catalog id, or the rule for deny-list hosts.
pub fn service_key(decision: &Decision) -> String {
    match &decision.service {
        Some(s) => s.id.to_string(),
        None => decision
            .rule
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
    }
}

/// Counters of the pipeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Observations that were new attempts.
    pub attempts: u64,
    /// Observations that repeated an attempt (retries, the other query types of a lookup).
    pub repeats: u64,
    /// ClientHellos with a GREASE ECH extension (the name was visible).
    pub ech_grease: u64,
    /// ClientHellos with real ECH (an outer public name).
    pub ech_hidden: u64,
    /// Incidents not opened because a device, all devices, or spoofed addresses used up
    /// their budget (the attempts still count as usage).
    pub opens_limited: u64,
}

/// The incident pipeline's state: open incidents and recent attempts, both bounded.
#[derive(Debug)]
pub struct Pipeline {
    window_micros: u64,
    mode: Mode,
    next_key: u64,
    open: FxHashMap<(DeviceKey, Arc<str>), (u64, Timestamp)>,
    attempts: Map<u64, Timestamp>,
    budgets: Map<DeviceKey, Budget>,
    all: Option<Budget>,
    spoofed: Option<Budget>,
    stats: PipelineStats,
}

impl Pipeline {
    /// A pipeline for `mode` whose incidents close after `window_micros` without an
    /// observation.
    pub fn new(mode: Mode, window_micros: u64) -> Pipeline {
        Pipeline {
            window_micros,
            mode,
            next_key: 1,
            open: FxHashMap::default(),
            attempts: map(MAX_ATTEMPTS),
            budgets: map(MAX_DEVICE_BUDGETS),
            all: None,
            spoofed: None,
            stats: PipelineStats::default(),
        }
    }

    /// What has been counted.
    pub fn stats(&self) -> &PipelineStats {
        &self.stats
    }

    /// Incidents open now.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// True when `obs` by `device` is a new attempt: a connection not seen before, or a
    /// query name not counted for this device within the attempt window.
    fn is_attempt(&mut self, device: DeviceKey, obs: &Observation) -> bool {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut h = rustc_hash::FxBuildHasher.build_hasher();
        device.hash(&mut h);
        match obs.proto {
            Proto::Dns => {
                0u8.hash(&mut h);
                obs.host.hash(&mut h);
            }
            Proto::Quic => {
                1u8.hash(&mut h);
                (obs.client, obs.server).hash(&mut h);
            }
            _ => {
                2u8.hash(&mut h);
                (obs.client, obs.server).hash(&mut h);
            }
        }
        let k = h.finish();
        let fresh = match self.attempts.get(&k) {
            Some(&last) => {
                obs.ts.micros_since(last) >= ATTEMPT_WINDOW_MICROS && obs.proto == Proto::Dns
            }
            None => true,
        };
        if fresh {
            self.attempts.put(k, obs.ts);
        }
        fresh
    }

    /// Takes one incident opening from `device`'s budget, the spoofed budget when it
    /// applies, and everyone's; false (nothing taken) when one of them is empty.
    fn may_open(&mut self, device: DeviceKey, spoofed: bool, now: Timestamp) -> bool {
        let mut mine = self
            .budgets
            .get(&device)
            .copied()
            .unwrap_or_else(|| Budget::full(DEVICE_OPENS_PER_MINUTE, now));
        mine.refill(DEVICE_OPENS_PER_MINUTE, now);
        let mut all = self
            .all
            .unwrap_or_else(|| Budget::full(ALL_OPENS_PER_MINUTE, now));
        all.refill(ALL_OPENS_PER_MINUTE, now);
        let mut fake = self
            .spoofed
            .unwrap_or_else(|| Budget::full(SPOOFED_OPENS_PER_MINUTE, now));
        fake.refill(SPOOFED_OPENS_PER_MINUTE, now);
        let ok = mine.tokens >= 1.0 && all.tokens >= 1.0 && (!spoofed || fake.tokens >= 1.0);
        if ok {
            mine.tokens -= 1.0;
            all.tokens -= 1.0;
            if spoofed {
                fake.tokens -= 1.0;
            }
        }
        self.budgets.put(device, mine);
        self.all = Some(all);
        self.spoofed = Some(fake);
        ok
    }

    /// Files one observation by the device `who`, already judged.
    pub fn step(&mut self, obs: &Observation, who: &Identity, judged: &Judged) -> Outcome {
        if judged.ech_grease {
            self.stats.ech_grease += 1;
        } else if judged.how.ech {
            self.stats.ech_hidden += 1;
        }
        if !judged.matched() {
            return Outcome {
                attempt: false,
                usage: None,
                incident: None,
            };
        }
        let device = DeviceKey::of(who);
        let attempt = self.is_attempt(device, obs);
        if attempt {
            self.stats.attempts += 1;
        } else {
            self.stats.repeats += 1;
        }
        let d = &judged.decision;
        let service = service_key(d);
        let usage = attempt.then(|| Usage {
            day: obs.ts.rfc3339().get(..10).unwrap_or("").to_string(),
            service: service.clone(),
            verdict: d.verdict,
        });
        if d.verdict == Verdict::Allow {
            return Outcome {
                attempt,
                usage,
                incident: None,
            };
        }
        let host = shown_host(judged, obs.server);
        let service: Arc<str> = Arc::from(service);
        let key = (device, service.clone());
        let mut learned_mac = None;
        if let DeviceKey::Mac(mac) = device {
            // Opened by address before the device's MAC was known (a resolver query ahead
            // of any captured frame): the same device, so its incident carries on, and
            // learns the MAC.
            if !self.open.contains_key(&key) {
                if let Some(open) = self
                    .open
                    .remove(&(DeviceKey::Addr(who.ip), service.clone()))
                {
                    self.open.insert(key.clone(), open);
                    learned_mac = Some(mac);
                }
            }
        }
        if let Some((k, last)) = self.open.get_mut(&key) {
            if obs.ts.micros_since(*last) <= self.window_micros {
                *last = (*last).max(obs.ts);
                return Outcome {
                    attempt,
                    usage,
                    incident: Some(IncidentOp::Touch {
                        key: *k,
                        touch: Touch {
                            ts: obs.ts.as_micros(),
                            host,
                            how: judged.how,
                            attempt,
                            mac: learned_mac,
                        },
                    }),
                };
            }
        }
        if !self.may_open(device, judged.how.spoofed, obs.ts) {
            self.stats.opens_limited += 1;
            return Outcome {
                attempt,
                usage,
                incident: None,
            };
        }
        let k = self.next_key;
        self.next_key += 1;
        self.open.insert(key, (k, obs.ts));
        let record = IncidentRecord {
            ts: obs.ts.as_micros(),
            client_ip: who.ip,
            client_mac: who.mac,
            device: who.hostname.clone(),
            label: who.label.clone(),
            group: d.group.as_deref().map(str::to_string),
            service_name: d
                .service
                .as_ref()
                .map_or_else(|| service.to_string(), |s| s.name.to_string()),
            service: service.to_string(),
            category: d.service.as_ref().map(|s| s.category.clone()),
            tier: d.tier,
            verdict: d.verdict,
            mode: self.mode,
            how: judged.how,
            host,
            rule: d.rule.as_ref().map(ToString::to_string).unwrap_or_default(),
        };
        Outcome {
            attempt,
            usage,
            incident: Some(IncidentOp::Open {
                key: k,
                record: Box::new(record),
            }),
        }
    }

    /// Forgets incidents idle longer than the window at `now`; returns their keys.
    pub fn expire(&mut self, now: Timestamp) -> Vec<u64> {
        let window = self.window_micros;
        let mut gone = Vec::new();
        self.open.retain(|_, (k, last)| {
            let keep = now.micros_since(*last) <= window;
            if !keep {
                gone.push(*k);
            }
            keep
        });
        gone
    }
}

/// The name an incident shows: the name decided on, else the server's address.
fn shown_host(judged: &Judged, server: SocketAddr) -> String {
    judged
        .host
        .as_ref()
        .map_or_else(|| server.ip().to_string(), ToString::to_string)
}

/// An incident with everything later observations added: what the store's rows hold and
/// what `replay --incidents` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncidentSummary {
    /// The chained facts.
    #[serde(flatten)]
    pub record: IncidentRecord,
    /// Last observation, unix microseconds.
    pub last_seen: i64,
    /// Attempts grouped into the incident.
    pub count: u64,
    /// Every host name seen, sorted (at most [`MAX_SEEN_PER_INCIDENT`]).
    pub hosts: Vec<String>,
    /// Every `how` seen, sorted (at most [`MAX_SEEN_PER_INCIDENT`]).
    pub hows: Vec<String>,
}

impl IncidentSummary {
    /// An incident just opened: one attempt, its host and how.
    pub fn opened(record: IncidentRecord) -> IncidentSummary {
        IncidentSummary {
            last_seen: record.ts,
            count: 1,
            hosts: vec![record.host.clone()],
            hows: vec![record.how.to_string()],
            record,
        }
    }

    /// Applies a later observation the way the store does.
    pub fn touch(&mut self, t: &Touch) {
        self.last_seen = self.last_seen.max(t.ts);
        self.count += u64::from(t.attempt);
        add_seen(&mut self.hosts, t.host.clone());
        add_seen(&mut self.hows, t.how.to_string());
    }
}

fn add_seen(set: &mut Vec<String>, v: String) {
    if set.len() < MAX_SEEN_PER_INCIDENT {
        if let Err(at) = set.binary_search(&v) {
            set.insert(at, v);
        }
    }
}

/// Incidents gathered from a pipeline's operations in memory (a replay), oldest first.
#[derive(Debug, Default)]
pub struct Incidents {
    rows: Vec<IncidentSummary>,
    by_key: FxHashMap<u64, usize>,
}

impl Incidents {
    /// Applies an operation.
    pub fn apply(&mut self, op: &IncidentOp) {
        match op {
            IncidentOp::Open { key, record } => {
                self.by_key.insert(*key, self.rows.len());
                self.rows.push(IncidentSummary::opened((**record).clone()));
            }
            IncidentOp::Touch { key, touch } => {
                if let Some(&i) = self.by_key.get(key) {
                    self.rows[i].touch(touch);
                }
            }
        }
    }

    /// Every incident, in the order they opened.
    pub fn into_rows(self) -> Vec<IncidentSummary> {
        self.rows
    }

    /// Incidents so far.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests;
