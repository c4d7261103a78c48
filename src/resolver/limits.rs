//! Who may use the resolver and how fast: the allowed client networks (everything else is
//! REFUSED) and a token bucket per client address (queries beyond it are dropped). The
//! table of buckets is itself bounded: a device cycling through spoofed addresses evicts
//! the least recently seen buckets, it cannot grow the table. Every refusal and drop is
//! counted by limit in `aiwarden_dns_limited_total`.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Instant;

use ipnet::IpNet;
use lru::LruCache;
use rustc_hash::FxBuildHasher;

/// Client addresses whose buckets are kept; beyond it the least recently seen is dropped
/// (it restarts full: a device that was evicted gets its burst again, never less).
const MAX_TRACKED: usize = 65_536;

/// What the gate says about one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gate {
    /// Answer it.
    Pass,
    /// Not from an allowed network: REFUSED.
    NotAllowed,
    /// Over the client's rate: dropped.
    Limited,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The allowed networks and the per-client buckets.
#[derive(Debug)]
pub(super) struct ClientGate {
    allow: Vec<IpNet>,
    rate: f64,
    burst: f64,
    buckets: Mutex<LruCache<IpAddr, Bucket, FxBuildHasher>>,
}

impl ClientGate {
    /// `rate` queries per second with `burst` at once per address (`rate` 0: no limit),
    /// from `allow` (empty: nobody but loopback).
    pub(super) fn new(allow: Vec<IpNet>, rate: u32, burst: u32) -> ClientGate {
        let cap = NonZeroUsize::new(MAX_TRACKED).unwrap_or(NonZeroUsize::MIN);
        ClientGate {
            allow,
            rate: f64::from(rate),
            burst: f64::from(burst.max(rate).max(1)),
            buckets: Mutex::new(LruCache::with_hasher(cap, FxBuildHasher)),
        }
    }

    /// The networks allowed.
    pub(super) fn allowed(&self) -> &[IpNet] {
        &self.allow
    }

    /// Whether `client` may be answered now.
    pub(super) fn check(&self, client: IpAddr, now: Instant) -> Gate {
        let ip = client.to_canonical();
        if !ip.is_loopback() && !self.allow.iter().any(|n| n.contains(&ip)) {
            return Gate::NotAllowed;
        }
        if self.rate <= 0.0 {
            return Gate::Pass;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets.get_or_insert_mut(ip, || Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Gate::Pass
        } else {
            Gate::Limited
        }
    }
}

/// The networks the resolver answers by default: those of the interfaces that hold the
/// listen addresses (every interface's for a wildcard address), IPv6 link-local included.
/// Loopback is always allowed by the gate itself.
pub fn attached_networks(listen: &[SocketAddr]) -> Vec<IpNet> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let all: Vec<(String, IpNet)> = addrs
        .filter_map(|a| {
            let ip = sockaddr_ip(a.address.as_ref()?)?;
            let mask = sockaddr_ip(a.netmask.as_ref()?)?;
            let prefix = match mask {
                IpAddr::V4(m) => u32::from(m).count_ones(),
                IpAddr::V6(m) => u128::from(m).count_ones(),
            };
            let net = IpNet::new(ip, u8::try_from(prefix).ok()?).ok()?.trunc();
            Some((a.interface_name, net))
        })
        .collect();
    let wildcard = listen.iter().any(|l| l.ip().is_unspecified());
    let wanted: Vec<&str> = all
        .iter()
        .filter(|(_, net)| wildcard || listen.iter().any(|l| net.contains(&l.ip().to_canonical())))
        .map(|(name, _)| name.as_str())
        .collect();
    let mut out: Vec<IpNet> = all
        .iter()
        .filter(|(name, net)| wanted.contains(&name.as_str()) && !net.addr().is_loopback())
        .map(|(_, net)| *net)
        .collect();
    out.sort();
    out.dedup();
    out
}

fn sockaddr_ip(s: &nix::sys::socket::SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn net(s: &str) -> IpNet {
        s.parse().expect("net")
    }

    #[test]
    fn only_allowed_networks_and_loopback_pass() {
        let g = ClientGate::new(vec![net("192.168.1.0/24"), net("fd00::/64")], 0, 0);
        let t = Instant::now();
        let check = |s: &str| g.check(s.parse().expect("ip"), t);
        assert_eq!(check("192.168.1.20"), Gate::Pass);
        assert_eq!(check("::ffff:192.168.1.20"), Gate::Pass);
        assert_eq!(check("fd00::1234"), Gate::Pass);
        assert_eq!(check("127.0.0.1"), Gate::Pass);
        assert_eq!(check("::1"), Gate::Pass);
        assert_eq!(check("192.168.2.20"), Gate::NotAllowed);
        assert_eq!(check("203.0.113.9"), Gate::NotAllowed);
        assert_eq!(check("fd01::1"), Gate::NotAllowed);
    }

    #[test]
    fn a_flooding_client_is_held_to_its_rate_and_others_are_not() {
        let g = ClientGate::new(vec![net("10.0.0.0/8")], 100, 500);
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.21".parse().expect("ip");
        let b: IpAddr = "10.0.0.22".parse().expect("ip");
        let passed = (0..2_000).filter(|_| g.check(a, t0) == Gate::Pass).count();
        assert_eq!(passed, 500, "the burst, then nothing");
        assert_eq!(g.check(b, t0), Gate::Pass, "another device is not affected");
        // One second later: 100 more.
        let t1 = t0 + Duration::from_secs(1);
        let passed = (0..2_000).filter(|_| g.check(a, t1) == Gate::Pass).count();
        assert_eq!(passed, 100);
    }

    #[test]
    fn spoofed_addresses_cannot_grow_the_table() {
        let g = ClientGate::new(vec![net("10.0.0.0/8")], 10, 10);
        let t = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 10_000) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            g.check(ip, t);
        }
        assert_eq!(
            g.buckets.lock().expect("lock").len(),
            MAX_TRACKED,
            "bounded"
        );
    }

    #[test]
    fn loopback_listeners_have_their_own_networks() {
        // Loopback itself is never listed (the gate always allows it); a wildcard lists
        // every interface's networks, a loopback-only listener none.
        let lo = attached_networks(&["127.0.0.1:53".parse().expect("addr")]);
        assert!(lo.is_empty(), "{lo:?}");
        let all = attached_networks(&["0.0.0.0:53".parse().expect("addr")]);
        assert!(all.iter().all(|n| !n.addr().is_loopback()), "{all:?}");
    }
}
