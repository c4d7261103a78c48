//! Device identity for incidents: which device, and whose, is behind a client address, so
//! a report says "Front desk PC 1 (Alice)" and not 10.0.0.21.
//!
//! The chain: client IP → MAC address (the kernel's neighbour table) → host name (the DHCP
//! server's leases: dnsmasq, ISC dhcpd or Kea) → label and owner (the admin's
//! `devices.toml`, see [`Inventory`]).
//!
//! Reading and understanding are apart. The parsers ([`parse_proc_arp`],
//! [`parse_ip_neigh`], [`parse_dnsmasq`], [`parse_dhcpd`], [`parse_kea`],
//! [`Inventory::parse`]) take text; [`DeviceMap`] answers from one snapshot of them, with
//! the time passed in; only [`load`] (and [`Inventory::load`], which it calls) reads files
//! and runs `ip`. The daemon calls [`load`] every half minute or so and swaps the new map
//! in whole (e.g. an `ArcSwap<DeviceMap>`); when `devices.toml` is bad the load fails and
//! the old map stays in force.

mod inventory;
mod leases;
mod load;
mod neigh;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::policy::{Client, Mac};
pub use inventory::{Device, Inventory};
pub use leases::{parse_dhcpd, parse_dnsmasq, parse_kea};
pub use load::{load, Sources};
pub use neigh::{parse_ip_neigh, parse_proc_arp};

/// One address binding, from a neighbour table (no host name, no expiry) or a DHCP
/// server's lease file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The client's address.
    pub ip: IpAddr,
    /// Its Ethernet address, when the source records one.
    pub mac: Option<Mac>,
    /// The host name the client sent, as the server recorded it (case kept, trailing dot
    /// and control characters removed).
    pub hostname: Option<String>,
    /// When the lease ends, in seconds since the Unix epoch; `None` for infinite leases
    /// and neighbour entries.
    pub expires: Option<u64>,
}

/// The lease file formats [`load`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseFormat {
    /// dnsmasq's `dnsmasq.leases` (IPv4 and DHCPv6 lines).
    Dnsmasq,
    /// ISC dhcpd's `dhcpd.leases` (`lease` blocks; DHCPv6 `ia-na` blocks are skipped).
    Dhcpd,
    /// Kea's memfile CSV, `kea-leases4.csv` or `kea-leases6.csv`.
    Kea,
}

impl LeaseFormat {
    /// Lowercase name, as written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseFormat::Dnsmasq => "dnsmasq",
            LeaseFormat::Dhcpd => "dhcpd",
            LeaseFormat::Kea => "kea",
        }
    }

    /// Parses a lease file of this format.
    pub fn parse(self, text: &str) -> Vec<Lease> {
        match self {
            LeaseFormat::Dnsmasq => parse_dnsmasq(text),
            LeaseFormat::Dhcpd => parse_dhcpd(text),
            LeaseFormat::Kea => parse_kea(text),
        }
    }
}

impl FromStr for LeaseFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<LeaseFormat, String> {
        match s {
            "dnsmasq" => Ok(LeaseFormat::Dnsmasq),
            "dhcpd" => Ok(LeaseFormat::Dhcpd),
            "kea" => Ok(LeaseFormat::Kea),
            _ => Err(format!(
                "unknown lease format {s:?} (expected dnsmasq, dhcpd or kea)"
            )),
        }
    }
}

impl fmt::Display for LeaseFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything known about the device behind one address, owned, for an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The address asked about.
    pub ip: IpAddr,
    /// Its Ethernet address.
    pub mac: Option<Mac>,
    /// Its host name: from a DHCP lease, else the `name` of its inventory entry.
    pub hostname: Option<String>,
    /// What reports call it, from the inventory.
    pub label: Option<String>,
    /// The staff member it belongs to, from the inventory.
    pub owner: Option<String>,
}

impl Identity {
    /// The policy's view of the device.
    pub fn client(&self) -> Client<'_> {
        Client::new(Some(self.ip), self.mac, self.hostname.as_deref())
    }
}

impl fmt::Display for Identity {
    /// The best name: the label, else the host name, else the MAC address, else the IP
    /// address.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.label, &self.hostname, self.mac) {
            (Some(label), _, _) => f.write_str(label),
            (None, Some(host), _) => f.write_str(host),
            (None, None, Some(mac)) => mac.fmt(f),
            (None, None, None) => self.ip.fmt(f),
        }
    }
}

/// How much a [`DeviceMap`] knows, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Counts {
    /// Addresses with a neighbour table entry.
    pub neighbours: usize,
    /// Addresses with a current lease.
    pub leases: usize,
    /// Inventory entries.
    pub devices: usize,
}

/// One snapshot of the neighbour table, the DHCP leases and the inventory, answering
/// "who is this address". Immutable: build a new one to refresh, and share it behind an
/// `Arc`.
#[derive(Debug, Clone, Default)]
pub struct DeviceMap {
    inventory: Inventory,
    neighbours: HashMap<IpAddr, Mac>,
    /// The newest current lease per address.
    by_ip: HashMap<IpAddr, Lease>,
    /// The newest current lease with a host name per MAC address.
    by_mac: HashMap<Mac, Lease>,
}

/// What `DeviceMap::lookup` found, borrowed from the map.
struct Found<'a> {
    /// The canonical address.
    ip: IpAddr,
    mac: Option<Mac>,
    hostname: Option<&'a str>,
    device: Option<&'a Device>,
}

impl DeviceMap {
    /// Builds the map. `neighbours` are neighbour table entries ([`parse_proc_arp`],
    /// [`parse_ip_neigh`]); entries without a MAC address are ignored. Leases that ended
    /// at or before `now` (Unix seconds) are ignored. Where two entries disagree the later
    /// one in its slice wins, except that of two leases the one that ends later wins.
    pub fn new(
        inventory: Inventory,
        neighbours: Vec<Lease>,
        leases: Vec<Lease>,
        now: u64,
    ) -> DeviceMap {
        let neighbours = neighbours
            .into_iter()
            .filter_map(|n| Some((n.ip, n.mac?)))
            .collect();
        let mut by_ip: HashMap<IpAddr, Lease> = HashMap::new();
        let mut by_mac: HashMap<Mac, Lease> = HashMap::new();
        // Infinite leases end last.
        let end = |l: &Lease| l.expires.unwrap_or(u64::MAX);
        for lease in leases.into_iter().filter(|l| end(l) > now) {
            if let (Some(mac), Some(_)) = (lease.mac, &lease.hostname) {
                if by_mac.get(&mac).is_none_or(|old| end(&lease) >= end(old)) {
                    by_mac.insert(mac, lease.clone());
                }
            }
            if by_ip
                .get(&lease.ip)
                .is_none_or(|old| end(&lease) >= end(old))
            {
                by_ip.insert(lease.ip, lease);
            }
        }
        DeviceMap {
            inventory,
            neighbours,
            by_ip,
            by_mac,
        }
    }

    /// Who is behind `ip` (taken canonical: a dual-stack socket's `::ffff:10.0.0.21` is
    /// 10.0.0.21). The MAC address comes from the neighbour table, else from a
    /// lease of `ip`. The host name comes from the newest lease of that MAC address, else
    /// from the lease of `ip` (unless that lease names another MAC address: the address
    /// has moved on), else from the inventory entry's `name`. Label and owner come from
    /// the inventory entry that names the MAC address, else the host name, else `ip`.
    pub fn identify(&self, ip: IpAddr) -> Identity {
        self.identify_with(ip, None)
    }

    /// [`DeviceMap::identify`], with `mac` (from the frames the device sent) standing in
    /// when the neighbour table and the leases do not know the address, so the host name,
    /// label and owner of a device on a new IPv6 privacy address are still found.
    pub fn identify_with(&self, ip: IpAddr, mac: Option<Mac>) -> Identity {
        let found = self.lookup(ip, mac);
        Identity {
            ip: found.ip,
            mac: found.mac,
            hostname: found.hostname.map(str::to_string),
            label: found.device.map(|d| d.label.clone()),
            owner: found.device.and_then(|d| d.owner.clone()),
        }
    }

    /// The policy's view of `ip` (canonical address, MAC address, host name as device
    /// name), as [`DeviceMap::identify`] finds them but borrowed from the map, for the
    /// per-observation path.
    pub fn client(&self, ip: IpAddr) -> Client<'_> {
        let found = self.lookup(ip, None);
        Client::new(Some(found.ip), found.mac, found.hostname)
    }

    /// The inventory this map was built with.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// How much the map knows.
    pub fn counts(&self) -> Counts {
        Counts {
            neighbours: self.neighbours.len(),
            leases: self.by_ip.len(),
            devices: self.inventory.devices().len(),
        }
    }

    /// The MAC the kernel's neighbour table gives for `ip` (ARP or NDP answered by the
    /// device itself): what a frame from `ip` should carry on this segment.
    pub fn neighbour_mac(&self, ip: IpAddr) -> Option<Mac> {
        self.neighbours.get(&ip.to_canonical()).copied()
    }

    /// True when the neighbour table or a lease knows `ip` (else a refresh may find it).
    pub fn knows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.neighbours.contains_key(&ip) || self.by_ip.contains_key(&ip)
    }

    fn lookup(&self, ip: IpAddr, mac_hint: Option<Mac>) -> Found<'_> {
        let ip = ip.to_canonical();
        let lease = self.by_ip.get(&ip);
        let mac = self
            .neighbours
            .get(&ip)
            .copied()
            .or_else(|| lease.and_then(|l| l.mac))
            .or(mac_hint);
        let by_mac = mac
            .and_then(|m| self.by_mac.get(&m))
            .and_then(|l| l.hostname.as_deref());
        let by_ip = lease
            .filter(|l| l.mac.is_none() || l.mac == mac)
            .and_then(|l| l.hostname.as_deref());
        let leased = by_mac.or(by_ip);
        let device = self.inventory.find(mac, leased, ip);
        Found {
            ip,
            mac,
            hostname: leased.or_else(|| device.and_then(|d| d.name.as_deref())),
            device,
        }
    }
}

/// `s` as a MAC address a client can have: not all zeros (an incomplete neighbour entry),
/// not a group address (broadcast, multicast).
fn unicast_mac(s: &str) -> Option<Mac> {
    Mac::unicast(s.parse::<Mac>().ok()?.0)
}

/// A host name as a report may show it: control characters and a trailing dot removed,
/// `None` when nothing is left.
fn clean_hostname(raw: &str) -> Option<String> {
    let name: String = raw.chars().filter(|c| !c.is_control()).collect();
    let name = name.trim().trim_end_matches('.');
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn mac(s: &str) -> Mac {
        s.parse().expect("mac")
    }

    fn lease(ip_: &str, mac_: Option<&str>, host: Option<&str>, expires: Option<u64>) -> Lease {
        Lease {
            ip: ip(ip_),
            mac: mac_.map(mac),
            hostname: host.map(str::to_string),
            expires,
        }
    }

    const NOW: u64 = 1_764_147_600; // 2025-11-26 09:00:00 UTC

    const INVENTORY: &str = r#"
[[device]]
mac = "52:54:00:00:00:01"
label = "Front desk PC 1"
owner = "Alice (reception)"

[[device]]
name = "exam-2"
label = "Exam room 2"

[[device]]
ip = "10.0.0.50"
label = "Label printer"

[[device]]
mac = "52:54:00:00:00:09"
name = "xray-1"
label = "X-ray workstation"
"#;

    fn map() -> DeviceMap {
        let inv = Inventory::parse(Path::new("site/devices.toml"), INVENTORY).expect("inventory");
        let neighbours = parse_proc_arp(
            "IP address       HW type     Flags       HW address            Mask     Device\n\
             10.0.0.21        0x1         0x2         52:54:00:00:00:01     *        eth0\n\
             10.0.0.23        0x1         0x2         52:54:00:00:00:03     *        eth0\n\
             10.0.0.30        0x1         0x2         52:54:00:00:00:09     *        eth0\n",
        );
        let leases = vec![
            // The MAC address's lease is preferred over the address's.
            lease(
                "10.0.0.21",
                Some("52:54:00:00:00:01"),
                Some("reception-1"),
                Some(NOW + 600),
            ),
            // Expired: ignored.
            lease(
                "10.0.0.22",
                Some("52:54:00:00:00:02"),
                Some("old-laptop"),
                Some(NOW),
            ),
            // 10.0.0.23 moved to another MAC; this lease's name is not its name.
            lease(
                "10.0.0.23",
                Some("52:54:00:00:00:04"),
                Some("Exam-2"),
                Some(NOW + 60),
            ),
            // No neighbour entry: MAC address and name from the lease.
            lease(
                "10.0.0.24",
                Some("52:54:00:00:00:05"),
                Some("EXAM-2.clinic.lan"),
                None,
            ),
            // A DHCPv6 lease has no MAC address; the name still applies.
            lease("fd00::24", None, Some("exam-2"), Some(NOW + 60)),
            lease("10.0.0.50", None, None, Some(NOW + 60)),
        ];
        DeviceMap::new(inv, neighbours, leases, NOW)
    }

    #[test]
    fn identify_follows_the_chain() {
        let m = map();
        assert_eq!(
            m.identify(ip("10.0.0.21")),
            Identity {
                ip: ip("10.0.0.21"),
                mac: Some(mac("52:54:00:00:00:01")),
                hostname: Some("reception-1".into()),
                label: Some("Front desk PC 1".into()),
                owner: Some("Alice (reception)".into()),
            }
        );
        assert_eq!(m.identify(ip("10.0.0.21")).to_string(), "Front desk PC 1");
        assert_eq!(
            m.identify(ip("::ffff:10.0.0.21")),
            m.identify(ip("10.0.0.21"))
        );

        let expired = m.identify(ip("10.0.0.22"));
        assert_eq!((expired.mac, expired.hostname.as_deref()), (None, None));
        assert_eq!(expired.to_string(), "10.0.0.22");

        let moved = m.identify(ip("10.0.0.23"));
        assert_eq!(moved.mac, Some(mac("52:54:00:00:00:03")));
        assert_eq!((moved.hostname, moved.label), (None, None));
        assert_eq!(m.identify(ip("10.0.0.23")).to_string(), "52:54:00:00:00:03");

        // The inventory's "exam-2" matches the first label of a qualified name, any case.
        let by_name = m.identify(ip("10.0.0.24"));
        assert_eq!(by_name.mac, Some(mac("52:54:00:00:00:05")));
        assert_eq!(by_name.hostname.as_deref(), Some("EXAM-2.clinic.lan"));
        assert_eq!(by_name.label.as_deref(), Some("Exam room 2"));
        assert_eq!(by_name.owner, None);

        let v6 = m.identify(ip("fd00::24"));
        assert_eq!((v6.mac, v6.label.as_deref()), (None, Some("Exam room 2")));

        assert_eq!(
            m.identify(ip("10.0.0.50")).label.as_deref(),
            Some("Label printer")
        );
        // No lease: the inventory's name stands in for the host name.
        let xray = m.identify(ip("10.0.0.30"));
        assert_eq!(xray.hostname.as_deref(), Some("xray-1"));
        assert_eq!(xray.label.as_deref(), Some("X-ray workstation"));

        let unknown = m.identify(ip("192.0.2.1"));
        assert_eq!(
            unknown,
            Identity {
                ip: ip("192.0.2.1"),
                mac: None,
                hostname: None,
                label: None,
                owner: None
            }
        );
        assert_eq!(
            m.counts(),
            Counts {
                neighbours: 3,
                leases: 5,
                devices: 4
            }
        );
    }

    #[test]
    fn mac_beats_name_beats_ip_in_the_inventory() {
        let inv = Inventory::parse(
            Path::new("devices.toml"),
            "[[device]]\nip = \"10.0.0.5\"\nlabel = \"by ip\"\n\
             [[device]]\nname = \"pc-5\"\nlabel = \"by name\"\n\
             [[device]]\nmac = \"52:54:00:00:00:05\"\nlabel = \"by mac\"\n",
        )
        .expect("inventory");
        let label = |neighbours: Vec<Lease>, leases: Vec<Lease>| {
            DeviceMap::new(inv.clone(), neighbours, leases, NOW)
                .identify(ip("10.0.0.5"))
                .label
        };
        let arp = || vec![lease("10.0.0.5", Some("52:54:00:00:00:05"), None, None)];
        let named = || vec![lease("10.0.0.5", None, Some("pc-5"), None)];
        assert_eq!(label(arp(), named()).as_deref(), Some("by mac"));
        assert_eq!(label(vec![], named()).as_deref(), Some("by name"));
        assert_eq!(label(vec![], vec![]).as_deref(), Some("by ip"));
    }

    #[test]
    fn newest_lease_wins_and_neighbours_beat_leases() {
        let leases = vec![
            lease(
                "10.0.0.7",
                Some("52:54:00:00:00:07"),
                Some("new"),
                Some(NOW + 900),
            ),
            lease(
                "10.0.0.7",
                Some("52:54:00:00:00:08"),
                Some("old"),
                Some(NOW + 100),
            ),
            lease("10.0.0.9", Some("52:54:00:00:00:07"), Some("newest"), None),
        ];
        let m = DeviceMap::new(Inventory::default(), vec![], leases, NOW);
        let seven = m.identify(ip("10.0.0.7"));
        assert_eq!(seven.mac, Some(mac("52:54:00:00:00:07")));
        // The MAC address's newest lease (an infinite one) names it.
        assert_eq!(seven.hostname.as_deref(), Some("newest"));

        let arp = vec![lease("10.0.0.7", Some("52:54:00:00:00:08"), None, None)];
        let leases = vec![lease(
            "10.0.0.7",
            Some("52:54:00:00:00:07"),
            Some("pc-7"),
            Some(NOW + 900),
        )];
        let m = DeviceMap::new(Inventory::default(), arp, leases, NOW);
        let seven = m.identify(ip("10.0.0.7"));
        assert_eq!(seven.mac, Some(mac("52:54:00:00:00:08")));
        assert_eq!(seven.hostname, None);
    }

    #[test]
    fn client_borrows_from_the_map() {
        let m = map();
        assert_eq!(
            m.client(ip("10.0.0.21")),
            Client::new(
                Some(ip("10.0.0.21")),
                Some(mac("52:54:00:00:00:01")),
                Some("reception-1")
            )
        );
        assert_eq!(m.client(ip("192.0.2.1")), Client::ip(ip("192.0.2.1")));
        assert_eq!(m.client(ip("::ffff:10.0.0.21")), m.client(ip("10.0.0.21")));
        assert_eq!(
            DeviceMap::default().identify(ip("10.0.0.21")).to_string(),
            "10.0.0.21"
        );
    }

    #[test]
    fn lease_formats_round_trip() {
        for f in [LeaseFormat::Dnsmasq, LeaseFormat::Dhcpd, LeaseFormat::Kea] {
            assert_eq!(f.as_str().parse::<LeaseFormat>(), Ok(f));
        }
        assert!("isc"
            .parse::<LeaseFormat>()
            .expect_err("unknown")
            .contains("dnsmasq, dhcpd or kea"));
    }

    #[test]
    fn helpers_reject_what_no_client_has() {
        assert_eq!(unicast_mac("00:00:00:00:00:00"), None);
        assert_eq!(unicast_mac("ff:ff:ff:ff:ff:ff"), None);
        assert_eq!(unicast_mac("33:33:00:00:00:01"), None);
        assert_eq!(
            unicast_mac("52:54:00:AB:CD:EF"),
            Some(mac("52:54:00:ab:cd:ef"))
        );
        assert_eq!(clean_hostname(" pc-1.lan. "), Some("pc-1.lan".into()));
        assert_eq!(clean_hostname("\u{7}"), None);
    }
}
