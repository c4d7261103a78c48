//! Unblocks: time-limited exceptions a compliance officer or admin records with `aiwarden
//! unblock` (one device, one host pattern or every AI host, until a time). The store keeps
//! them in the chained log; this is the pure table the enforcement paths ask whether a
//! block is lifted for a device and a host at a time.
//!
//! Only a `Block` verdict in enforce mode is ever changed, and only to `Flag`: the attempt
//! is still seen and recorded, with the exception's log row as the deciding rule
//! (`unblock:<row id>`).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use super::pattern::{Pattern, SuffixMap};
use super::{Decision, Mode, RuleRef, Verdict};
use crate::detect::Mac;

/// The file name of the [`RuleRef`] a lifted block names: `unblock:17` is log row 17.
pub const RULE_FILE: &str = "unblock";

/// Why a lifted block was flagged (the exception itself is the decision's rule).
pub const REASON: &str = "blocked, but an unblock for this device is in force";

/// The device an unblock names, as `incidents list --device` names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    /// Its Ethernet address.
    Mac(Mac),
    /// Its address (canonical: `::ffff:10.0.0.5` is 10.0.0.5).
    Ip(IpAddr),
    /// Its DHCP host name or inventory label, matched ASCII case-insensitively.
    Name(String),
}

impl Device {
    /// A MAC address, else an IP address, else a name. Empty text is refused.
    pub fn parse(text: &str) -> Result<Device, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("empty device: give a MAC address, an IP address or a device name".into());
        }
        if let Ok(mac) = t.parse::<Mac>() {
            return Ok(Device::Mac(mac));
        }
        if let Ok(ip) = t.parse::<IpAddr>() {
            return Ok(Device::Ip(ip.to_canonical()));
        }
        Ok(Device::Name(t.to_string()))
    }

    /// Whether this names the device at `ip` with `mac` and `names` (host name, label).
    fn names(&self, ip: IpAddr, mac: Option<Mac>, names: [Option<&str>; 2]) -> bool {
        match self {
            Device::Mac(m) => mac == Some(*m),
            Device::Ip(a) => ip.to_canonical() == *a,
            Device::Name(n) => names
                .iter()
                .flatten()
                .any(|s| s.trim().eq_ignore_ascii_case(n)),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Mac(m) => m.fmt(f),
            Device::Ip(a) => a.fmt(f),
            Device::Name(n) => f.write_str(n),
        }
    }
}

impl Serialize for Device {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One exception: `device` may reach `host` (every blocked host when `None`) until `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unblock {
    /// Its row in the log.
    pub id: i64,
    /// When it was recorded, unix microseconds.
    pub ts: i64,
    /// The device.
    pub device: Device,
    /// The host pattern, as in the site allow list; `None` is every blocked host.
    #[serde(serialize_with = "pattern_text")]
    pub host: Option<Pattern>,
    /// Who allowed it.
    pub by: String,
    /// Why.
    pub note: String,
    /// When it ends, unix microseconds (exclusive).
    pub until: i64,
}

fn pattern_text<S: serde::Serializer>(p: &Option<Pattern>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_some(&p.display()),
        None => s.serialize_none(),
    }
}

impl Unblock {
    /// In force at `now` (unix microseconds).
    pub fn active(&self, now: i64) -> bool {
        now < self.until
    }

    /// The host as shown: the pattern, or "all AI".
    pub fn host_text(&self) -> String {
        self.host
            .as_ref()
            .map_or_else(|| "all AI".to_string(), Pattern::display)
    }
}

/// Who is asking, as far as the shell knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asker<'a> {
    /// The address.
    pub ip: IpAddr,
    /// The Ethernet address, when known.
    pub mac: Option<Mac>,
    /// The DHCP host name and the inventory label, when known.
    pub names: [Option<&'a str>; 2],
}

/// The unblocks in force, indexed by host pattern. Built whole and swapped in whole (the
/// daemon's housekeeping thread rebuilds it from the store every few seconds).
#[derive(Debug, Default)]
pub struct Unblocks {
    entries: Vec<Unblock>,
    /// Each distinct pattern's index into `by_pattern`.
    map: SuffixMap,
    /// Per distinct pattern, the entries that name it.
    by_pattern: Vec<Vec<usize>>,
    /// Entries for every host.
    every_host: Vec<usize>,
}

impl Unblocks {
    /// The table of `entries` (expired ones may be among them: `covers` checks the time).
    pub fn new(entries: Vec<Unblock>) -> Unblocks {
        let mut t = Unblocks {
            entries,
            ..Unblocks::default()
        };
        for (i, u) in t.entries.iter().enumerate() {
            match &u.host {
                None => t.every_host.push(i),
                Some(p) => {
                    let next = t.by_pattern.len() as u32;
                    match t.map.insert(p, 0, next) {
                        Some(known) => t.by_pattern[known as usize].push(i),
                        None => t.by_pattern.push(vec![i]),
                    }
                }
            }
        }
        t
    }

    /// True when there are none (the enforcement paths then skip the device lookup).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every entry, as built.
    pub fn iter(&self) -> impl Iterator<Item = &Unblock> {
        self.entries.iter()
    }

    /// The unblock in force at `now` that lets `who` reach `host` (`None`: a connection
    /// decided by address or signal, which only an every-host unblock covers). The one that
    /// lasts longest when several do.
    pub fn covers(&self, who: &Asker<'_>, host: Option<&str>, now: i64) -> Option<&Unblock> {
        let entries = &self.entries;
        let mut best: Option<usize> = None;
        let mut consider = |i: usize| {
            let u = &entries[i];
            if u.active(now)
                && u.device.names(who.ip, who.mac, who.names)
                && best.is_none_or(|b| u.until > entries[b].until)
            {
                best = Some(i);
            }
        };
        self.every_host.iter().copied().for_each(&mut consider);
        if let Some(host) = host.filter(|_| !self.by_pattern.is_empty()) {
            let lower;
            let host = if host.bytes().any(|b| b.is_ascii_uppercase()) || host.ends_with('.') {
                lower = host.trim_end_matches('.').to_ascii_lowercase();
                lower.as_str()
            } else {
                host
            };
            self.map.each_match(host, 0, |g| {
                self.by_pattern[g as usize]
                    .iter()
                    .copied()
                    .for_each(&mut consider);
            });
        }
        best.map(|i| &self.entries[i])
    }

    /// `decision` for `who` asking for `host` at `now`: a `Block` in enforce mode that an
    /// unblock covers becomes `Flag`, naming the unblock as its rule; anything else is
    /// returned as it is.
    pub fn apply(
        &self,
        decision: Decision,
        mode: Mode,
        who: &Asker<'_>,
        host: Option<&str>,
        now: i64,
    ) -> Decision {
        if decision.verdict != Verdict::Block || mode != Mode::Enforce || self.is_empty() {
            return decision;
        }
        match self.covers(who, host, now) {
            Some(u) => lifted(decision, u),
            None => decision,
        }
    }
}

/// `decision` with its block lifted by `u`.
pub fn lifted(decision: Decision, u: &Unblock) -> Decision {
    Decision {
        verdict: Verdict::Flag,
        rule: Some(RuleRef::Line {
            file: Arc::from(RULE_FILE),
            line: u32::try_from(u.id).unwrap_or(u32::MAX),
        }),
        reason: REASON,
        ..decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000_000;

    fn unblock(id: i64, device: &str, host: Option<&str>, until: i64) -> Unblock {
        Unblock {
            id,
            ts: 0,
            device: Device::parse(device).expect("device"),
            host: host.map(|h| Pattern::parse(h).expect("pattern")),
            by: "Dr. Ada".into(),
            note: "trial".into(),
            until,
        }
    }

    fn asker(ip: &str, mac: Option<&str>) -> Asker<'static> {
        Asker {
            ip: ip.parse().expect("ip"),
            mac: mac.map(|m| m.parse().expect("mac")),
            names: [Some("reception-1"), Some("Front desk PC")],
        }
    }

    #[test]
    fn devices_parse_as_mac_then_ip_then_name() {
        assert!(matches!(
            Device::parse("52-54-00-AB-CD-EF"),
            Ok(Device::Mac(_))
        ));
        assert_eq!(
            Device::parse("::ffff:10.0.0.5"),
            Ok(Device::Ip("10.0.0.5".parse().expect("ip")))
        );
        assert_eq!(
            Device::parse(" Front desk PC "),
            Ok(Device::Name("Front desk PC".into()))
        );
        assert!(Device::parse("  ").is_err());
    }

    #[test]
    fn covers_by_mac_ip_and_name() {
        let t = Unblocks::new(vec![
            unblock(1, "52:54:00:00:00:01", Some("chatgpt.com"), NOW + 1),
            unblock(2, "10.0.0.9", Some("chatgpt.com"), NOW + 1),
            unblock(3, "FRONT DESK pc", Some("claude.ai"), NOW + 1),
        ]);
        let mac = asker("10.0.0.5", Some("52:54:00:00:00:01"));
        assert_eq!(
            t.covers(&mac, Some("chatgpt.com"), NOW).map(|u| u.id),
            Some(1)
        );
        assert_eq!(
            t.covers(&mac, Some("ab.chatgpt.com"), NOW).map(|u| u.id),
            Some(1)
        );
        assert_eq!(
            t.covers(&mac, Some("Claude.AI."), NOW).map(|u| u.id),
            Some(3)
        );
        let other = Asker {
            names: [None, None],
            ..asker("10.0.0.6", Some("52:54:00:00:00:02"))
        };
        assert!(t.covers(&other, Some("chatgpt.com"), NOW).is_none());
        let by_ip = Asker {
            names: [None, None],
            ..asker("::ffff:10.0.0.9", None)
        };
        assert_eq!(
            t.covers(&by_ip, Some("chatgpt.com"), NOW).map(|u| u.id),
            Some(2)
        );
        assert!(t.covers(&by_ip, Some("gemini.google.com"), NOW).is_none());
        assert!(
            t.covers(&by_ip, None, NOW).is_none(),
            "a host pattern needs a host"
        );
    }

    #[test]
    fn expiry_and_every_host() {
        let t = Unblocks::new(vec![
            unblock(1, "10.0.0.5", None, NOW),
            unblock(2, "10.0.0.5", None, NOW + 10),
            unblock(3, "10.0.0.5", Some("*.openai.azure.com"), NOW + 20),
        ]);
        let who = asker("10.0.0.5", None);
        assert_eq!(t.covers(&who, None, NOW).map(|u| u.id), Some(2));
        assert!(
            t.covers(&who, None, NOW + 10).is_none(),
            "until is exclusive"
        );
        assert_eq!(
            t.covers(&who, Some("x.openai.azure.com"), NOW)
                .map(|u| u.id),
            Some(3),
            "the one that lasts longest"
        );
        assert!(t.covers(&who, Some("openai.azure.com"), NOW + 15).is_none());
    }

    #[test]
    fn same_name_in_both_forms() {
        let t = Unblocks::new(vec![
            unblock(1, "10.0.0.5", Some("openai.com"), NOW + 5),
            unblock(2, "10.0.0.6", Some("*.openai.com"), NOW + 5),
        ]);
        let five = asker("10.0.0.5", None);
        let six = Asker {
            names: [None, None],
            ..asker("10.0.0.6", None)
        };
        assert_eq!(
            t.covers(&five, Some("api.openai.com"), NOW).map(|u| u.id),
            Some(1)
        );
        assert_eq!(
            t.covers(&six, Some("api.openai.com"), NOW).map(|u| u.id),
            Some(2)
        );
        assert!(t.covers(&six, Some("openai.com"), NOW).is_none());
    }

    #[test]
    fn apply_lifts_only_enforced_blocks() {
        let t = Unblocks::new(vec![unblock(7, "10.0.0.5", None, NOW + 1)]);
        let who = asker("10.0.0.5", None);
        let block = Decision {
            verdict: Verdict::Block,
            service: None,
            tier: None,
            rule: None,
            group: None,
            reason: "deny list",
        };
        let d = t.apply(block.clone(), Mode::Enforce, &who, Some("x.com"), NOW);
        assert_eq!(d.verdict, Verdict::Flag);
        assert_eq!(d.reason, REASON);
        assert_eq!(d.rule.map(|r| r.to_string()), Some("unblock:7".into()));
        let later = t.apply(block.clone(), Mode::Enforce, &who, Some("x.com"), NOW + 1);
        assert_eq!(later.verdict, Verdict::Block);
        let flag = Decision {
            verdict: Verdict::Flag,
            ..block
        };
        assert_eq!(t.apply(flag.clone(), Mode::Enforce, &who, None, NOW), flag);
    }
}
