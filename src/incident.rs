//! Incidents: flagged or blocked observations grouped per (client, service) while they keep
//! coming within a window. Pure: time comes from the observations.

use std::collections::BTreeSet;
use std::net::IpAddr;

use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::detect::{Observation, Proto, Timestamp};
use crate::policy::{Decision, Verdict};

/// Default grouping window: 10 minutes.
pub const DEFAULT_WINDOW_MICROS: u64 = 10 * 60 * 1_000_000;

/// One stretch of a device's use of a flagged or blocked service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    /// The device.
    pub client: IpAddr,
    /// Catalog service id, or the matching rule when the host is only on a deny list.
    pub service: String,
    /// The service's display name.
    pub service_name: String,
    /// First observation.
    #[serde(serialize_with = "ser_ts")]
    pub first: Timestamp,
    /// Latest observation.
    #[serde(serialize_with = "ser_ts")]
    pub last: Timestamp,
    /// Observations grouped.
    pub count: u64,
    /// The strongest verdict seen (block over flag).
    pub verdict: Verdict,
    /// Host names seen.
    pub hosts: BTreeSet<String>,
    /// How they were seen.
    pub protos: BTreeSet<Proto>,
    /// The rule that decided the first observation.
    pub rule: String,
}

fn ser_ts<S: serde::Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&ts.rfc3339())
}

/// Groups observations into incidents.
#[derive(Debug)]
pub struct Grouper {
    window_micros: u64,
    open: FxHashMap<(IpAddr, String), Incident>,
}

impl Grouper {
    /// A grouper that closes an incident after `window_micros` without a new observation.
    pub fn new(window_micros: u64) -> Grouper {
        Grouper {
            window_micros,
            open: FxHashMap::default(),
        }
    }

    /// Adds an observation and its decision. Allowed observations are ignored. Returns the
    /// incident this observation closed, if any (same client and service, window passed).
    pub fn add(&mut self, obs: &Observation, decision: &Decision) -> Option<Incident> {
        if decision.verdict == Verdict::Allow {
            return None;
        }
        let service = Tracker::service_of(decision);
        let service_name = decision
            .service
            .as_ref()
            .map_or_else(|| service.clone(), |s| s.name.to_string());
        let key = (obs.client.ip(), service);
        let mut closed = None;
        if let Some(inc) = self.open.get_mut(&key) {
            if obs.ts.micros_since(inc.last) <= self.window_micros {
                inc.last = inc.last.max(obs.ts);
                inc.count += 1;
                if decision.verdict == Verdict::Block {
                    inc.verdict = Verdict::Block;
                }
                inc.hosts.insert(obs.host.to_string());
                inc.protos.insert(obs.proto);
                return None;
            }
            closed = self.open.remove(&key);
        }
        let incident = Incident {
            client: key.0,
            service: key.1.clone(),
            service_name,
            first: obs.ts,
            last: obs.ts,
            count: 1,
            verdict: decision.verdict,
            hosts: BTreeSet::from([obs.host.to_string()]),
            protos: BTreeSet::from([obs.proto]),
            rule: decision
                .rule
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        };
        self.open.insert(key, incident);
        closed
    }

    /// Closes and returns every incident idle for longer than the window at `now`.
    pub fn close_idle(&mut self, now: Timestamp) -> Vec<Incident> {
        let window = self.window_micros;
        let keys: Vec<_> = self
            .open
            .iter()
            .filter(|(_, i)| now.micros_since(i.last) > window)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out: Vec<Incident> = keys.iter().filter_map(|k| self.open.remove(k)).collect();
        out.sort_by_key(|i| (i.first, i.client));
        out
    }

    /// Closes every open incident (end of a replay), oldest first.
    pub fn finish(self) -> Vec<Incident> {
        let mut out: Vec<Incident> = self.open.into_values().collect();
        out.sort_by(|a, b| (a.first, a.client, &a.service).cmp(&(b.first, b.client, &b.service)));
        out
    }
}

/// What [`Tracker::observe`] made of an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracked {
    /// Allowed: no incident.
    Ignored,
    /// The first observation of a new incident: record it now.
    Opened {
        /// The tracker's key for later touches.
        key: u64,
    },
    /// Another observation of an open incident: update its activity.
    Touched {
        /// The incident's key.
        key: u64,
    },
}

/// The live counterpart of [`Grouper`]: decides, observation by observation, whether a
/// flagged or blocked observation opens a new incident (recorded at once, so a crash
/// loses nothing) or belongs to the open one of the same client and service.
#[derive(Debug)]
pub struct Tracker {
    window_micros: u64,
    next_key: u64,
    open: FxHashMap<(IpAddr, String), (u64, Timestamp)>,
}

impl Tracker {
    /// A tracker whose incidents close after `window_micros` without an observation.
    pub fn new(window_micros: u64) -> Tracker {
        Tracker {
            window_micros,
            next_key: 1,
            open: FxHashMap::default(),
        }
    }

    /// The service key of a decision: the catalog id, or the rule for deny-list hosts.
    pub fn service_of(decision: &Decision) -> String {
        match &decision.service {
            Some(s) => s.id.to_string(),
            None => decision
                .rule
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        }
    }

    /// Files `obs` under an open incident or opens a new one.
    pub fn observe(&mut self, obs: &Observation, decision: &Decision) -> Tracked {
        if decision.verdict == Verdict::Allow {
            return Tracked::Ignored;
        }
        let key = (obs.client.ip(), Tracker::service_of(decision));
        if let Some((k, last)) = self.open.get_mut(&key) {
            if obs.ts.micros_since(*last) <= self.window_micros {
                *last = (*last).max(obs.ts);
                return Tracked::Touched { key: *k };
            }
        }
        let k = self.next_key;
        self.next_key += 1;
        self.open.insert(key, (k, obs.ts));
        Tracked::Opened { key: k }
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

    /// Incidents open now.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Host;
    use crate::policy::Verdict;

    fn obs(client: &str, host: &str, secs: i64) -> Observation {
        Observation {
            ts: Timestamp::from_secs_micros(secs, 0),
            client: format!("{client}:5000").parse().expect("addr"),
            server: "10.0.0.1:53".parse().expect("addr"),
            proto: Proto::Dns,
            host: Host::parse(host.as_bytes()).expect("host"),
            ech: false,
            unresolved: false,
            alpn: Vec::new(),
            qtype: None,
            answers: Vec::new(),
        }
    }

    fn decision(verdict: Verdict, rule: &str) -> Decision {
        Decision {
            verdict,
            service: None,
            tier: None,
            rule: Some(crate::policy::RuleRef::Line {
                file: rule.into(),
                line: 1,
            }),
            group: None,
            reason: "test",
        }
    }

    #[test]
    fn tracker_opens_touches_and_expires() {
        let mut t = Tracker::new(600_000_000);
        let block = decision(Verdict::Block, "site/deny.list");
        assert_eq!(
            t.observe(
                &obs("10.0.0.2", "a.example", 0),
                &decision(Verdict::Allow, "x")
            ),
            Tracked::Ignored
        );
        assert_eq!(
            t.observe(&obs("10.0.0.2", "a.example", 0), &block),
            Tracked::Opened { key: 1 }
        );
        assert_eq!(
            t.observe(&obs("10.0.0.2", "b.example", 599), &block),
            Tracked::Touched { key: 1 }
        );
        assert_eq!(
            t.observe(&obs("10.0.0.3", "a.example", 600), &block),
            Tracked::Opened { key: 2 }
        );
        // More than the window after the last observation: a new incident.
        assert_eq!(
            t.observe(&obs("10.0.0.2", "a.example", 1200), &block),
            Tracked::Opened { key: 3 }
        );
        assert_eq!(t.expire(Timestamp::from_secs_micros(1201, 0)), vec![2]);
        assert_eq!(t.open_count(), 1);
    }
}
