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
        let (service, service_name) = match &decision.service {
            Some(s) => (s.id.to_string(), s.name.to_string()),
            None => {
                let rule = decision
                    .rule
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                (rule.clone(), rule)
            }
        };
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
