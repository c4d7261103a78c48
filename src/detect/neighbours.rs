//! Which device sent a frame: a passive neighbour table learned from the frames clients
//! send (DNS queries, SYNs, ClientHellos, QUIC Initials), so a dual-stack device that asks
//! DNS over IPv4 and connects over a rotating IPv6 privacy address is one device.
//!
//! A frame's source MAC names the device only when the device is on the captured segment.
//! Behind a router every address arrives with the router's MAC; a MAC seen with more
//! addresses than one device has ([`MAX_V4_PER_DEVICE`] IPv4 or [`MAX_V6_PER_DEVICE`]
//! IPv6) is taken for a router, and its addresses are then known by address only.
//! Bounded: at most `cap` addresses and `cap` MACs, least recently used evicted.

use std::net::IpAddr;

use super::observation::Mac;
use super::table::{map, Map};

/// IPv4 addresses one device may hold at once (a lease renewed onto a new address, a
/// second interface); more means a router or NAT in front of many devices.
pub const MAX_V4_PER_DEVICE: usize = 4;
/// IPv6 addresses one device may hold: link-local, stable, and a week of rotating
/// temporary (privacy) addresses.
pub const MAX_V6_PER_DEVICE: usize = 24;

#[derive(Debug, Default)]
struct Device {
    /// Its addresses, oldest first (at most the per-family limits).
    addrs: Vec<IpAddr>,
    /// Seen with too many addresses: a router.
    router: bool,
}

/// What a frame taught the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// Nothing new.
    Known,
    /// A new (address, MAC) binding.
    New,
    /// This MAC now has more addresses than a device has: it is a router.
    Router,
}

/// The passive neighbour table.
pub struct Neighbours {
    by_ip: Map<IpAddr, Mac>,
    by_mac: Map<Mac, Device>,
}

impl std::fmt::Debug for Neighbours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Neighbours")
            .field("addresses", &self.by_ip.len())
            .field("macs", &self.by_mac.len())
            .finish()
    }
}

impl Neighbours {
    /// A table of at most `cap` addresses and `cap` MACs.
    pub fn new(cap: usize) -> Neighbours {
        Neighbours {
            by_ip: map(cap),
            by_mac: map(cap),
        }
    }

    /// Records that `mac` sent a frame from `ip` (a client-side frame).
    pub fn learn(&mut self, ip: IpAddr, mac: Mac) -> Learned {
        let ip = ip.to_canonical();
        if self.by_ip.get(&ip) == Some(&mac) {
            if let Some(d) = self.by_mac.get_mut(&mac) {
                // Keep the address young within its device.
                if let Some(at) = d.addrs.iter().position(|a| *a == ip) {
                    let a = d.addrs.remove(at);
                    d.addrs.push(a);
                }
                return Learned::Known;
            }
        }
        if let Some(old) = self.by_ip.put(ip, mac) {
            if old != mac {
                // The address moved to another device (a new lease).
                if let Some(d) = self.by_mac.get_mut(&old) {
                    d.addrs.retain(|a| *a != ip);
                }
            }
        }
        let mut evicted = None;
        let d = self.by_mac.get_or_insert_mut(mac, Device::default);
        let mut became_router = false;
        if !d.addrs.contains(&ip) {
            d.addrs.push(ip);
            let family = |v4: bool| d.addrs.iter().filter(|a| a.is_ipv4() == v4).count();
            let (limit, n) = if ip.is_ipv4() {
                (MAX_V4_PER_DEVICE, family(true))
            } else {
                (MAX_V6_PER_DEVICE, family(false))
            };
            if n > limit {
                if !d.router {
                    d.router = true;
                    became_router = true;
                }
                // Forget the family's oldest address: a router's list is not used.
                if let Some(at) = d.addrs.iter().position(|a| a.is_ipv4() == ip.is_ipv4()) {
                    evicted = Some(d.addrs.remove(at));
                }
            }
        }
        if let Some(old) = evicted {
            if self.by_ip.peek(&old) == Some(&mac) {
                self.by_ip.pop(&old);
            }
        }
        if became_router {
            Learned::Router
        } else {
            Learned::New
        }
    }

    /// The device MAC behind `ip`; `None` when unknown or when the MAC is a router's.
    pub fn mac_of(&self, ip: IpAddr) -> Option<Mac> {
        let mac = *self.by_ip.peek(&ip.to_canonical())?;
        let d = self.by_mac.peek(&mac)?;
        (!d.router).then_some(mac)
    }

    /// Every address of the device behind `ip` (`ip` first), or just `ip` when the device
    /// is unknown or behind a router.
    pub fn device_addrs(&self, ip: IpAddr) -> impl Iterator<Item = IpAddr> + '_ {
        let ip = ip.to_canonical();
        let others = self
            .mac_of(ip)
            .and_then(|m| self.by_mac.peek(&m))
            .map(|d| d.addrs.as_slice())
            .unwrap_or(&[]);
        std::iter::once(ip).chain(others.iter().copied().filter(move |a| *a != ip))
    }

    /// Addresses known.
    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    /// True when nothing was learned.
    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    const PC: Mac = Mac([2, 0, 0, 0, 0, 0x21]);
    const ROUTER: Mac = Mac([2, 0, 0, 0, 0, 0xfe]);

    #[test]
    fn dual_stack_device_is_one_device() {
        let mut n = Neighbours::new(100);
        assert_eq!(n.learn(ip("10.0.0.21"), PC), Learned::New);
        assert_eq!(n.learn(ip("2001:db8::a1"), PC), Learned::New);
        assert_eq!(n.learn(ip("10.0.0.21"), PC), Learned::Known);
        assert_eq!(n.mac_of(ip("2001:db8::a1")), Some(PC));
        assert_eq!(n.mac_of(ip("::ffff:10.0.0.21")), Some(PC));
        let all: Vec<IpAddr> = n.device_addrs(ip("2001:db8::a1")).collect();
        assert_eq!(all, vec![ip("2001:db8::a1"), ip("10.0.0.21")]);
        assert_eq!(
            n.device_addrs(ip("192.0.2.1")).collect::<Vec<_>>(),
            vec![ip("192.0.2.1")]
        );
    }

    #[test]
    fn privacy_addresses_rotate_and_the_oldest_goes() {
        let mut n = Neighbours::new(1000);
        n.learn(ip("10.0.0.21"), PC);
        for i in 0..MAX_V6_PER_DEVICE as u16 {
            n.learn(IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, i + 1]), PC);
        }
        assert_eq!(n.mac_of(ip("2001:db8::1")), Some(PC));
        assert_eq!(
            n.device_addrs(ip("10.0.0.21")).count(),
            MAX_V6_PER_DEVICE + 1
        );
    }

    #[test]
    fn a_mac_with_many_addresses_is_a_router() {
        let mut n = Neighbours::new(1000);
        let mut last = Learned::Known;
        for i in 0..=MAX_V4_PER_DEVICE as u8 {
            last = n.learn(IpAddr::from([10, 1, 0, i + 1]), ROUTER);
        }
        assert_eq!(last, Learned::Router);
        assert_eq!(n.mac_of(ip("10.1.0.2")), None);
        assert_eq!(n.device_addrs(ip("10.1.0.2")).count(), 1);
        // Other devices are unaffected.
        n.learn(ip("10.0.0.21"), PC);
        assert_eq!(n.mac_of(ip("10.0.0.21")), Some(PC));
    }

    #[test]
    fn an_address_that_moves_belongs_to_its_new_device() {
        let mut n = Neighbours::new(100);
        let other = Mac([2, 0, 0, 0, 0, 0x22]);
        n.learn(ip("10.0.0.21"), PC);
        n.learn(ip("10.0.0.21"), other);
        assert_eq!(n.mac_of(ip("10.0.0.21")), Some(other));
        n.learn(ip("10.0.0.30"), PC);
        assert_eq!(
            n.device_addrs(ip("10.0.0.30")).collect::<Vec<_>>(),
            vec![ip("10.0.0.30")]
        );
    }

    #[test]
    fn the_table_is_bounded() {
        let mut n = Neighbours::new(50);
        for i in 0..10_000u32 {
            let mac = Mac([2, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            n.learn(IpAddr::from((0x0a00_0000 + i).to_be_bytes()), mac);
            assert!(n.len() <= 50);
        }
    }
}
