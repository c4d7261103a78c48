//! The kernel's neighbour table as text: `/proc/net/arp` for IPv4, the output of
//! `ip -6 neigh show` for IPv6. Lines that do not describe a complete entry are skipped.

use std::net::{IpAddr, Ipv4Addr};

use super::{unicast_mac, Lease};

/// The kernel's "entry is complete" flag (`ATF_COM`).
const ATF_COM: u32 = 0x2;

/// Parses `/proc/net/arp`. Skips the header, incomplete entries (flags without `0x2`, MAC
/// address all zeros) and anything that is not an Ethernet address.
///
/// ```text
/// IP address       HW type     Flags       HW address            Mask     Device
/// 10.0.0.21        0x1         0x2         52:54:00:12:34:56     *        eth0
/// ```
pub fn parse_proc_arp(text: &str) -> Vec<Lease> {
    text.lines().filter_map(arp_line).collect()
}

fn arp_line(line: &str) -> Option<Lease> {
    let mut fields = line.split_whitespace();
    let ip: Ipv4Addr = fields.next()?.parse().ok()?;
    let _hw_type = fields.next()?;
    let flags = u32::from_str_radix(fields.next()?.strip_prefix("0x")?, 16).ok()?;
    let mac = unicast_mac(fields.next()?)?;
    (flags & ATF_COM != 0).then_some(Lease {
        ip: IpAddr::V4(ip),
        mac: Some(mac),
        hostname: None,
        expires: None,
    })
}

/// Parses the output of `ip neigh show` (either family, with or without `dev`). Skips
/// entries in state `FAILED` or `INCOMPLETE`, entries without `lladdr`, and group
/// addresses (`NOARP` multicast entries).
///
/// ```text
/// fe80::5054:ff:fe12:3456 dev eth0 lladdr 52:54:00:12:34:56 router REACHABLE
/// 2001:db8::5 dev eth0 FAILED
/// ```
pub fn parse_ip_neigh(text: &str) -> Vec<Lease> {
    text.lines().filter_map(neigh_line).collect()
}

fn neigh_line(line: &str) -> Option<Lease> {
    let mut words = line.split_whitespace();
    let ip: IpAddr = words.next()?.parse().ok()?;
    let mut mac = None;
    while let Some(word) = words.next() {
        match word {
            "lladdr" => mac = Some(unicast_mac(words.next()?)?),
            "FAILED" | "INCOMPLETE" => return None,
            _ => {}
        }
    }
    Some(Lease {
        ip,
        mac: Some(mac?),
        hostname: None,
        expires: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(leases: &[Lease]) -> Vec<(String, String)> {
        leases
            .iter()
            .map(|l| {
                (
                    l.ip.to_string(),
                    l.mac.map(|m| m.to_string()).unwrap_or_default(),
                )
            })
            .collect()
    }

    #[test]
    fn proc_net_arp() {
        // As on a router with a LAN bridge and a WAN port: one complete entry, one being
        // resolved (flags 0x0), a static one (0x6 = complete + permanent), one in upper
        // case, a blank line, and an InfiniBand entry whose address is no MAC address.
        let text = "\
IP address       HW type     Flags       HW address            Mask     Device
10.0.0.21        0x1         0x2         52:54:00:12:34:56     *        br-lan
10.0.0.77        0x1         0x0         00:00:00:00:00:00     *        br-lan
10.0.0.1         0x1         0x6         52:54:00:AB:CD:EF     *        br-lan

192.168.1.254    0x1         0x2         a0:b1:c2:d3:e4:f5     *        wan
10.10.0.4        0x20        0x2         80:00:00:48:fe:80:00:00:00:00:00:00:f4:52:14:03:00:7b:cb:a1 *  ib0
";
        assert_eq!(
            pairs(&parse_proc_arp(text)),
            [
                ("10.0.0.21".into(), "52:54:00:12:34:56".into()),
                ("10.0.0.1".into(), "52:54:00:ab:cd:ef".into()),
                ("192.168.1.254".into(), "a0:b1:c2:d3:e4:f5".into()),
            ]
        );
        let only_header =
            "IP address       HW type     Flags       HW address            Mask     Device\n";
        assert!(parse_proc_arp(only_header).is_empty());
        assert!(parse_proc_arp("").is_empty());
    }

    #[test]
    fn ip_neigh_show() {
        let text = "\
fe80::5054:ff:fe12:3456 dev eth0 lladdr 52:54:00:12:34:56 router REACHABLE
2001:db8:10::21 dev eth0 lladdr 52:54:00:AB:CD:EF STALE
fd00::9 dev eth0 lladdr 52:54:00:00:00:09 DELAY
2001:db8:10::77 dev eth0 FAILED
2001:db8:10::78 dev eth0 INCOMPLETE
2001:db8:10::79 dev eth0 lladdr 52:54:00:00:00:79 FAILED
ff02::1 dev eth0 lladdr 33:33:00:00:00:01 NOARP
fe80::1 dev wg0 lladdr 10.0.0.1 PERMANENT

10.0.0.21 dev eth0 lladdr 52:54:00:12:34:56 REACHABLE
fe80::2 lladdr 52:54:00:00:00:02 router STALE
";
        assert_eq!(
            pairs(&parse_ip_neigh(text)),
            [
                ("fe80::5054:ff:fe12:3456".into(), "52:54:00:12:34:56".into()),
                ("2001:db8:10::21".into(), "52:54:00:ab:cd:ef".into()),
                ("fd00::9".into(), "52:54:00:00:00:09".into()),
                ("10.0.0.21".into(), "52:54:00:12:34:56".into()),
                ("fe80::2".into(), "52:54:00:00:00:02".into()),
            ]
        );
        assert!(parse_ip_neigh("").is_empty());
    }
}
