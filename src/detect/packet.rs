//! Frame decoding: a borrowed view of the IP addresses, ports and payload of a captured
//! frame. Link layers: Ethernet II (with 802.1Q and QinQ tags), Linux cooked capture v1
//! and v2 (`tcpdump -i any`), raw IP and BSD loopback.

use std::net::IpAddr;

use etherparse::err::ip::LaxHeaderSliceError;
use etherparse::{EtherType, IpNumber, LaxIpSlice, TcpSlice, UdpSlice};

/// The link layer of a capture, from its pcap link type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// LINKTYPE_ETHERNET (1).
    Ethernet,
    /// LINKTYPE_LINUX_SLL (113): 16-byte cooked header.
    LinuxSll,
    /// LINKTYPE_LINUX_SLL2 (276): 20-byte cooked header.
    LinuxSll2,
    /// LINKTYPE_RAW (101, also DLT 12 and 14): the frame starts with the IP header.
    RawIp,
    /// LINKTYPE_NULL (0) and LINKTYPE_LOOP (108): a 4-byte address family first.
    Loopback,
}

impl LinkType {
    /// Maps a pcap data link type number; `None` when aiwarden cannot decode it.
    pub fn from_pcap(linktype: i32) -> Option<LinkType> {
        match linktype {
            1 => Some(LinkType::Ethernet),
            113 => Some(LinkType::LinuxSll),
            276 => Some(LinkType::LinuxSll2),
            101 | 12 | 14 | 228 | 229 => Some(LinkType::RawIp),
            0 | 108 => Some(LinkType::Loopback),
            _ => None,
        }
    }
}

/// Why a frame was skipped. Counted, never an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// Shorter than its headers claim.
    Truncated,
    /// Not IPv4 or IPv6 (ARP, LLDP...).
    NotIp,
    /// A non-first IP fragment, or a first fragment whose payload is incomplete.
    Fragment,
    /// Not TCP or UDP (ICMP...).
    NotTcpUdp,
    /// The IP or transport header is malformed.
    BadHeader,
    /// A link type aiwarden does not decode.
    UnsupportedLink,
}

impl Skip {
    /// Every reason, for summaries and metrics.
    pub const ALL: [Skip; 6] = [
        Skip::Truncated,
        Skip::NotIp,
        Skip::Fragment,
        Skip::NotTcpUdp,
        Skip::BadHeader,
        Skip::UnsupportedLink,
    ];

    /// snake_case name for output and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Truncated => "truncated",
            Skip::NotIp => "not_ip",
            Skip::Fragment => "fragment",
            Skip::NotTcpUdp => "not_tcp_udp",
            Skip::BadHeader => "bad_header",
            Skip::UnsupportedLink => "unsupported_link",
        }
    }
}

/// The transport part of a decoded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    /// A TCP segment.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Sequence number.
        seq: u32,
        /// SYN flag.
        syn: bool,
        /// ACK flag.
        ack: bool,
        /// FIN or RST flag: the flow is ending.
        fin_or_rst: bool,
        /// Segment payload (may be shorter than sent if the capture was truncated).
        payload: &'a [u8],
    },
    /// A UDP datagram.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Datagram payload.
        payload: &'a [u8],
    },
}

/// A decoded packet: addresses and transport, borrowing the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Source IP address.
    pub src: IpAddr,
    /// Destination IP address.
    pub dst: IpAddr,
    /// TCP or UDP.
    pub transport: Transport<'a>,
}

/// Decodes one frame of the given link type.
///
/// The link layer (a few fixed fields) is read here; IP, its extension headers, TCP and
/// UDP are sliced by etherparse's per-layer slices, which avoids building (and moving) a
/// whole-packet struct for every frame on the hot path.
pub fn decode(link: LinkType, frame: &[u8]) -> Result<Packet<'_>, Skip> {
    match link {
        LinkType::Ethernet => {
            let et = be16(frame, 12).ok_or(Skip::Truncated)?;
            from_ether_type(et, &frame[14..])
        }
        LinkType::RawIp => from_ip(frame),
        LinkType::LinuxSll => {
            // packet type(2) ARPHRD(2) address length(2) address(8) protocol(2)
            let proto = be16(frame, 14).ok_or(Skip::Truncated)?;
            from_ether_type(proto, &frame[16..])
        }
        LinkType::LinuxSll2 => {
            // protocol(2) reserved(2) ifindex(4) ARPHRD(2) packet type(1) address length(1) address(8)
            let proto = be16(frame, 0).ok_or(Skip::Truncated)?;
            from_ether_type(proto, frame.get(20..).ok_or(Skip::Truncated)?)
        }
        LinkType::Loopback => {
            let family = frame.get(..4).ok_or(Skip::Truncated)?;
            // The family is in the capturing host's byte order: accept both.
            let family = u32::from_le_bytes([family[0], family[1], family[2], family[3]]);
            match family {
                // AF_INET; AF_INET6 differs between systems: 10 (Linux), 24, 28, 30 (BSDs).
                2 | 0x0200_0000 | 10 | 24 | 28 | 30 | 0x0a00_0000 | 0x1800_0000 | 0x1c00_0000
                | 0x1e00_0000 => from_ip(&frame[4..]),
                _ => Err(Skip::NotIp),
            }
        }
    }
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    let b = data.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// Skips up to three 802.1Q / 802.1ad / QinQ tags, then hands IP on.
fn from_ether_type(mut et: u16, mut data: &[u8]) -> Result<Packet<'_>, Skip> {
    for _ in 0..3 {
        match EtherType(et) {
            EtherType::VLAN_TAGGED_FRAME
            | EtherType::PROVIDER_BRIDGING
            | EtherType::VLAN_DOUBLE_TAGGED_FRAME => {
                et = be16(data, 2).ok_or(Skip::Truncated)?;
                data = &data[4..];
            }
            _ => break,
        }
    }
    match EtherType(et) {
        EtherType::IPV4 | EtherType::IPV6 => from_ip(data),
        _ => Err(Skip::NotIp),
    }
}

fn from_ip(data: &[u8]) -> Result<Packet<'_>, Skip> {
    let (ip, _) = LaxIpSlice::from_slice(data).map_err(|e| match e {
        LaxHeaderSliceError::Len(_) => Skip::Truncated,
        LaxHeaderSliceError::Content(_) => Skip::BadHeader,
    })?;
    let payload = ip.payload();
    if payload.fragmented {
        return Err(Skip::Fragment);
    }
    let (src, dst) = (ip.source_addr(), ip.destination_addr());
    match payload.ip_number {
        IpNumber::TCP => {
            let tcp = TcpSlice::from_slice(payload.payload).map_err(|e| match e {
                etherparse::err::tcp::HeaderSliceError::Len(_) => Skip::Truncated,
                etherparse::err::tcp::HeaderSliceError::Content(_) => Skip::BadHeader,
            })?;
            Ok(Packet {
                src,
                dst,
                transport: Transport::Tcp {
                    sport: tcp.source_port(),
                    dport: tcp.destination_port(),
                    seq: tcp.sequence_number(),
                    syn: tcp.syn(),
                    ack: tcp.ack(),
                    fin_or_rst: tcp.fin() || tcp.rst(),
                    payload: tcp.payload(),
                },
            })
        }
        IpNumber::UDP => {
            let udp = UdpSlice::from_slice_lax(payload.payload).map_err(|_| Skip::Truncated)?;
            Ok(Packet {
                src,
                dst,
                transport: Transport::Udp {
                    sport: udp.source_port(),
                    dport: udp.destination_port(),
                    payload: udp.payload(),
                },
            })
        }
        _ => Err(Skip::NotTcpUdp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn udp_v4(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 23], [10, 0, 0, 1], 64)
            .udp(50000, 53);
        let mut out = Vec::new();
        b.write(&mut out, payload).expect("write to vec");
        out
    }

    #[test]
    fn decodes_ethernet_udp() {
        let f = udp_v4(b"hello");
        let p = decode(LinkType::Ethernet, &f).expect("decodes");
        assert_eq!(p.src, "10.0.0.23".parse::<IpAddr>().expect("ip"));
        assert_eq!(
            p.transport,
            Transport::Udp {
                sport: 50000,
                dport: 53,
                payload: b"hello"
            }
        );
    }

    #[test]
    fn decodes_vlan_and_qinq() {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .double_vlan(
                etherparse::VlanId::try_new(100).expect("vlan"),
                etherparse::VlanId::try_new(200).expect("vlan"),
            )
            .ipv6([0x20; 16], [0x21; 16], 64)
            .tcp(40000, 443, 7, 1000);
        let mut f = Vec::new();
        b.write(&mut f, b"\x16\x03\x01").expect("write");
        let p = decode(LinkType::Ethernet, &f).expect("decodes");
        match p.transport {
            Transport::Tcp {
                dport,
                seq,
                payload,
                ..
            } => {
                assert_eq!((dport, seq, payload), (443, 7, &b"\x16\x03\x01"[..]));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn decodes_linux_cooked_v1_and_v2() {
        let eth = udp_v4(b"x");
        let ip = &eth[14..];
        let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(ip);
        assert!(decode(LinkType::LinuxSll, &sll).is_ok());
        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0,
        ];
        sll2.extend_from_slice(ip);
        let p = decode(LinkType::LinuxSll2, &sll2).expect("decodes");
        assert_eq!(p.dst, "10.0.0.1".parse::<IpAddr>().expect("ip"));
        assert_eq!(decode(LinkType::RawIp, ip).map(|p| p.src), Ok(p.src));
    }

    #[test]
    fn skips_garbage_without_panicking() {
        let f = udp_v4(b"hello world");
        for len in 0..f.len() {
            for link in [
                LinkType::Ethernet,
                LinkType::LinuxSll,
                LinkType::LinuxSll2,
                LinkType::RawIp,
                LinkType::Loopback,
            ] {
                let _ = decode(link, &f[..len]);
            }
        }
        assert_eq!(decode(LinkType::Ethernet, &[]), Err(Skip::Truncated));
        let mut arp = f.clone();
        arp[12] = 0x08;
        arp[13] = 0x06;
        assert!(decode(LinkType::Ethernet, &arp).is_err());
    }

    #[test]
    fn skips_non_first_fragments() {
        let mut f = udp_v4(b"hello");
        // IPv4 flags/fragment offset at bytes 20..22 of the frame: offset 185 (x8 bytes).
        f[20] = 0x00;
        f[21] = 0xb9;
        assert_eq!(decode(LinkType::Ethernet, &f), Err(Skip::Fragment));
    }
}
