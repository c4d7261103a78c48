//! Decoding tests: every link layer, tunnel and encapsulation, bounds and garbage. Long: one
//! case per link type and tunnel, each frame built byte by byte.
use super::*;
use crate::detect::frag::tests::{fragment_v4, fragment_v6, set_v4};
use crate::detect::frag::FragPolicy;
use etherparse::PacketBuilder;

const CMAC: [u8; 6] = [2, 0, 0, 0, 0, 0x23];
const GMAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const SWITCH: [u8; 6] = [2, 0, 0, 0, 0, 0x99];
const COLLECTOR: [u8; 6] = [2, 0, 0, 0, 0, 0x42];

fn udp_v4(payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 23], [10, 0, 0, 1], 64)
        .udp(50000, 53);
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("write to vec");
    out
}

/// The innermost packet of most tests: a TCP segment to port 443, IP header first.
fn tcp_ip(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 23], [160, 79, 104, 10], 64)
        .tcp(50000, 443, 1, 64_240)
        .ack(1)
        .write(&mut out, payload)
        .expect("write");
    out
}

fn tcp_ip6(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv6(
        [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x23],
        [0x26; 16],
        64,
    )
    .tcp(50000, 443, 1, 64_240)
    .ack(1)
    .write(&mut out, payload)
    .expect("write");
    out
}

fn ether(src: [u8; 6], dst: [u8; 6], et: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = dst.to_vec();
    out.extend_from_slice(&src);
    out.extend_from_slice(&et.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The client's frame: Ethernet from the client to the gateway.
fn client_frame(ip: &[u8]) -> Vec<u8> {
    let et = if ip[0] >> 4 == 4 { 0x0800 } else { 0x86dd };
    ether(CMAC, GMAC, et, ip)
}

/// An outer IPv4 packet (switch to collector) with the given protocol.
fn outer_v4(proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
        .write(&mut out, IpNumber(proto), payload)
        .expect("write");
    out
}

fn outer_v6(next: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv6([0xfd; 16], [0xfe; 16], 64)
        .write(&mut out, IpNumber(next), payload)
        .expect("write");
    out
}

fn outer_udp(dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
        .udp(49152, dport)
        .write(&mut out, payload)
        .expect("write");
    out
}

/// The mirror's frame: Ethernet from the switch to the collector.
fn mirror(ip: &[u8]) -> Vec<u8> {
    let et = if ip[0] >> 4 == 4 { 0x0800 } else { 0x86dd };
    ether(SWITCH, COLLECTOR, et, ip)
}

fn gre(flags: u16, proto: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = flags.to_be_bytes().to_vec();
    out.extend_from_slice(&proto.to_be_bytes());
    for bit in [0x8000u16, 0x2000, 0x1000] {
        if flags & bit != 0 {
            out.extend_from_slice(&[0xab; 4]);
        }
    }
    out.extend_from_slice(payload);
    out
}

fn erspan2(frame: &[u8]) -> Vec<u8> {
    // version 1, VLAN 42, COS 0, En 0, T 0, session 7, index 3
    let mut out = vec![0x10, 42, 0x00, 0x07, 0, 0, 0, 3];
    out.extend_from_slice(frame);
    gre(0x1000, 0x88be, &out)
}

fn erspan3(frame: &[u8], subheader: bool, frame_type: u16) -> Vec<u8> {
    // version 2, VLAN 42, session 7, timestamp, SGT, P/FT/HwID/D/Gra/O
    let mut out = vec![0x20, 42, 0x00, 0x07, 1, 2, 3, 4, 0, 0];
    let word = (frame_type << 10) | u16::from(subheader);
    out.extend_from_slice(&word.to_be_bytes());
    if subheader {
        out.extend_from_slice(&[0x1c, 0, 0, 5, 0, 0, 0, 9]);
    }
    out.extend_from_slice(frame);
    gre(0x1000, 0x22eb, &out)
}

fn vxlan_hdr(frame: &[u8]) -> Vec<u8> {
    let mut out = vec![0x08, 0, 0, 0, 0, 0x10, 0x01, 0];
    out.extend_from_slice(frame);
    out
}

fn geneve_hdr(proto: u16, options: &[u8], inner: &[u8]) -> Vec<u8> {
    let mut out = vec![(options.len() / 4) as u8, 0];
    out.extend_from_slice(&proto.to_be_bytes());
    out.extend_from_slice(&[0, 0x20, 0x02, 0]);
    out.extend_from_slice(options);
    out.extend_from_slice(inner);
    out
}

fn pppoe_hdr(ppp_proto: &[u8], ip: &[u8]) -> Vec<u8> {
    let len = (ppp_proto.len() + ip.len()) as u16;
    let mut out = vec![0x11, 0x00, 0x12, 0x34];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(ppp_proto);
    out.extend_from_slice(ip);
    out
}

/// Source, destination and transport payload of a decoded packet, or the skip.
type Seen = Result<(String, String, Vec<u8>), Skip>;

fn seen(r: Result<Packet<'_>, Skip>) -> Seen {
    let p = r?;
    match p.transport {
        Transport::Tcp { payload, .. } => {
            Ok((p.src.to_string(), p.dst.to_string(), payload.to_vec()))
        }
        Transport::Udp { payload, .. } => {
            Ok((p.src.to_string(), p.dst.to_string(), payload.to_vec()))
        }
    }
}

fn hello() -> Seen {
    Ok((
        "10.0.0.23".into(),
        "160.79.104.10".into(),
        b"hello".to_vec(),
    ))
}

fn hello6() -> Seen {
    Ok((
        "2001:db8::23".into(),
        "2626:2626:2626:2626:2626:2626:2626:2626".into(),
        b"hello".to_vec(),
    ))
}

fn macs(link: LinkType, f: &[u8]) -> (Option<[u8; 6]>, Option<[u8; 6]>) {
    decode(link, f).map_or((None, None), |p| (p.link_src, p.link_dst))
}

/// A frame of every kind this module opens, with the link type to read it as.
fn every_kind() -> Vec<(LinkType, Vec<u8>)> {
    let ip = tcp_ip(b"hello");
    let eth = client_frame(&ip);
    let mut v = vec![
        (LinkType::Ethernet, eth.clone()),
        (
            LinkType::Ethernet,
            mirror(&outer_v4(47, &gre(0, 0x0800, &ip))),
        ),
        (
            LinkType::Ethernet,
            mirror(&outer_v4(47, &gre(0xb000, 0x6558, &eth))),
        ),
        (
            LinkType::Ethernet,
            mirror(&outer_v4(47, &gre(0, 0x88be, &eth))),
        ),
        (LinkType::Ethernet, mirror(&outer_v4(47, &erspan2(&eth)))),
        (
            LinkType::Ethernet,
            mirror(&outer_v4(47, &erspan3(&eth, true, 0))),
        ),
        (
            LinkType::Ethernet,
            mirror(&outer_udp(4789, &vxlan_hdr(&eth))),
        ),
        (
            LinkType::Ethernet,
            mirror(&outer_udp(6081, &geneve_hdr(0x6558, &[0; 8], &eth))),
        ),
        (LinkType::Ethernet, mirror(&outer_v4(4, &ip))),
        (LinkType::Ethernet, mirror(&outer_v6(4, &ip))),
        (
            LinkType::Ethernet,
            ether(CMAC, GMAC, 0x8864, &pppoe_hdr(&[0, 0x21], &ip)),
        ),
        (LinkType::Ethernet, {
            let mut m = vec![0, 0x01, 0x00, 64, 0, 0x02, 0x01, 64];
            m.extend_from_slice(&ip);
            ether(CMAC, GMAC, 0x8847, &m)
        }),
        (LinkType::Ppp, [&[0xff, 0x03, 0x00, 0x21][..], &ip].concat()),
        (LinkType::Ppp, [&[0x21][..], &ip].concat()),
        (
            LinkType::PppHdlc,
            [&[0xff, 0x03, 0x00, 0x21][..], &ip].concat(),
        ),
        (
            LinkType::PppHdlc,
            [&[0x0f, 0x00, 0x08, 0x00][..], &ip].concat(),
        ),
        (
            LinkType::CiscoHdlc,
            [&[0x0f, 0x00, 0x08, 0x00][..], &ip].concat(),
        ),
        (LinkType::PppEther, pppoe_hdr(&[0, 0x21], &ip)),
    ];
    // VXLAN carrying GRE carrying IPv4.
    let gre_in = ether(
        SWITCH,
        COLLECTOR,
        0x0800,
        &outer_v4(47, &gre(0, 0x0800, &ip)),
    );
    v.push((
        LinkType::Ethernet,
        mirror(&outer_udp(4789, &vxlan_hdr(&gre_in))),
    ));
    v
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
    assert_eq!(p.link_src, Some([2, 0, 0, 0, 0, 1]));
    assert_eq!(p.link_dst, Some([2, 0, 0, 0, 0, 2]));
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
    assert_eq!(
        macs(LinkType::LinuxSll, &sll),
        (Some([2, 0, 0, 0, 0, 1]), None)
    );
    let mut sll2 = vec![
        0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0,
    ];
    sll2.extend_from_slice(ip);
    let p = decode(LinkType::LinuxSll2, &sll2).expect("decodes");
    assert_eq!(p.dst, "10.0.0.1".parse::<IpAddr>().expect("ip"));
    assert_eq!(p.link_src, Some([2, 0, 0, 0, 0, 1]));
    assert_eq!(decode(LinkType::RawIp, ip).map(|p| p.src), Ok(p.src));
    assert_eq!(macs(LinkType::RawIp, ip), (None, None));
    // A sender address that is not 6 bytes long is not a MAC.
    sll2[11] = 8;
    assert_eq!(macs(LinkType::LinuxSll2, &sll2), (None, None));
}

#[test]
fn new_pcap_link_types() {
    for (n, link) in [
        (9, LinkType::Ppp),
        (50, LinkType::PppHdlc),
        (51, LinkType::PppEther),
        (104, LinkType::CiscoHdlc),
    ] {
        assert_eq!(LinkType::from_pcap(n), Some(link));
    }
    let ip6 = tcp_ip6(b"hello");
    let ppp6 = [&[0xff, 0x03, 0x00, 0x57][..], &ip6].concat();
    assert_eq!(seen(decode(LinkType::Ppp, &ppp6)), hello6());
    let chdlc6 = [&[0x8f, 0x00, 0x86, 0xdd][..], &ip6].concat();
    assert_eq!(seen(decode(LinkType::CiscoHdlc, &chdlc6)), hello6());
    // LCP and SLARP are not IP.
    assert_eq!(
        decode(LinkType::Ppp, &[0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 4]),
        Err(Skip::NotIp)
    );
    assert_eq!(
        decode(LinkType::CiscoHdlc, &[0x8f, 0x00, 0x80, 0x35, 0, 0, 0, 0]),
        Err(Skip::NotIp)
    );
    // PPPoE discovery is not a session.
    let mut disc = pppoe_hdr(&[0, 0x21], &tcp_ip(b"hello"));
    disc[1] = 0x09;
    assert_eq!(decode(LinkType::PppEther, &disc), Err(Skip::NotIp));
}

#[test]
fn every_tunnel_and_link_reaches_the_inner_packet() {
    for (i, (link, f)) in every_kind().iter().enumerate() {
        assert_eq!(seen(decode(*link, f)), hello(), "frame {i} ({link:?})");
    }
}

#[test]
fn gre_flags_versions_and_inner_ipv6() {
    let ip6 = tcp_ip6(b"hello");
    for flags in [0x0000, 0x8000, 0x2000, 0x1000, 0xb000] {
        let f = mirror(&outer_v4(47, &gre(flags, 0x86dd, &ip6)));
        assert_eq!(seen(decode(LinkType::Ethernet, &f)), hello6(), "{flags:#x}");
        // The outer MACs are the innermost Ethernet header's: no inner one here.
        assert_eq!(
            macs(LinkType::Ethernet, &f),
            (Some(SWITCH), Some(COLLECTOR))
        );
    }
    let ip = tcp_ip(b"hello");
    // Routing present (RFC 1701) and version 1 (PPTP) are not opened.
    for flags in [0x4000, 0x0001, 0x3081] {
        let f = mirror(&outer_v4(47, &gre(flags, 0x0800, &ip)));
        assert_eq!(decode(LinkType::Ethernet, &f), Err(Skip::NotTcpUdp));
    }
    // GRE over IPv6, and a keepalive-like GRE with no payload protocol.
    let f = mirror(&outer_v6(47, &gre(0x2000, 0x0800, &ip)));
    assert_eq!(seen(decode(LinkType::Ethernet, &f)), hello());
    let f = mirror(&outer_v4(47, &gre(0, 0x0000, &[])));
    assert_eq!(decode(LinkType::Ethernet, &f), Err(Skip::NotIp));
}

#[test]
fn erspan_types_and_inner_macs() {
    let ip = tcp_ip(b"hello");
    let eth = client_frame(&ip);
    let frames = [
        gre(0, 0x88be, &eth),
        erspan2(&eth),
        erspan3(&eth, false, 0),
        erspan3(&eth, true, 0),
    ];
    for (i, g) in frames.iter().enumerate() {
        let f = mirror(&outer_v4(47, g));
        assert_eq!(seen(decode(LinkType::Ethernet, &f)), hello(), "{i}");
        assert_eq!(
            macs(LinkType::Ethernet, &f),
            (Some(CMAC), Some(GMAC)),
            "{i}"
        );
    }
    // Type III with frame type IP: no inner Ethernet.
    let f = mirror(&outer_v4(47, &erspan3(&ip, false, 2)));
    assert_eq!(seen(decode(LinkType::Ethernet, &f)), hello());
    assert_eq!(
        macs(LinkType::Ethernet, &f),
        (Some(SWITCH), Some(COLLECTOR))
    );
    // A VLAN tag the mirror kept inside the frame.
    let mut tagged = eth[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 42]);
    tagged.extend_from_slice(&eth[12..]);
    let f = mirror(&outer_v4(47, &erspan2(&tagged)));
    assert_eq!(seen(decode(LinkType::Ethernet, &f)), hello());
    // An unknown ERSPAN version.
    let mut bad = erspan2(&eth);
    bad[8] = 0x30;
    let f = mirror(&outer_v4(47, &bad));
    assert_eq!(decode(LinkType::Ethernet, &f), Err(Skip::BadHeader));
}

#[test]
fn vxlan_and_geneve() {
    let ip = tcp_ip(b"hello");
    let ip6 = tcp_ip6(b"hello");
    let eth = client_frame(&ip);
    let f = mirror(&outer_udp(4789, &vxlan_hdr(&eth)));
    assert_eq!(macs(LinkType::Ethernet, &f), (Some(CMAC), Some(GMAC)));
    for (proto, inner, want) in [
        (0x6558, eth.clone(), hello()),
        (0x0800, ip.clone(), hello()),
        (0x86dd, ip6.clone(), hello6()),
    ] {
        for opts in [&[][..], &[0, 1, 2, 1, 9, 9, 9, 9][..]] {
            let f = mirror(&outer_udp(6081, &geneve_hdr(proto, opts, &inner)));
            assert_eq!(seen(decode(LinkType::Ethernet, &f)), want, "{proto:#x}");
        }
    }
    // VXLAN over IPv6.
    let mut v6 = Vec::new();
    PacketBuilder::ipv6([0xfd; 16], [0xfe; 16], 64)
        .udp(49152, 4789)
        .write(&mut v6, &vxlan_hdr(&eth))
        .expect("write");
    assert_eq!(seen(decode(LinkType::Ethernet, &mirror(&v6))), hello());
}

#[test]
fn udp_to_tunnel_ports_that_is_not_a_tunnel_stays_udp() {
    let quic_like = [0xc3, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0];
    let mut bad_flags = vxlan_hdr(&client_frame(&tcp_ip(b"hello")));
    bad_flags[0] = 0x0c;
    let mut geneve_v1 = geneve_hdr(0x6558, &[], &client_frame(&tcp_ip(b"hello")));
    geneve_v1[0] |= 0x40;
    let unknown_proto = geneve_hdr(0x894f, &[], &[0; 40]);
    for (port, payload) in [
        (4789, &quic_like[..]),
        (4789, &bad_flags[..]),
        (4789, &[0x08, 0, 0][..]),
        (6081, &quic_like[..]),
        (6081, &geneve_v1[..]),
        (6081, &unknown_proto[..]),
        (6081, &geneve_hdr(0x0800, &[0; 60], &[])[..8]),
    ] {
        let f = mirror(&outer_udp(port, payload));
        let p = decode(LinkType::Ethernet, &f).expect("decodes");
        assert_eq!(
            p.transport,
            Transport::Udp {
                sport: 49152,
                dport: port,
                payload
            }
        );
    }
}

#[test]
fn ip_in_ip_every_combination() {
    let ip = tcp_ip(b"hello");
    let ip6 = tcp_ip6(b"hello");
    assert_eq!(
        seen(decode(LinkType::Ethernet, &mirror(&outer_v4(4, &ip)))),
        hello()
    );
    assert_eq!(
        seen(decode(LinkType::Ethernet, &mirror(&outer_v4(41, &ip6)))),
        hello6()
    );
    assert_eq!(
        seen(decode(LinkType::Ethernet, &mirror(&outer_v6(4, &ip)))),
        hello()
    );
    assert_eq!(
        seen(decode(LinkType::Ethernet, &mirror(&outer_v6(41, &ip6)))),
        hello6()
    );
    assert_eq!(
        decode(LinkType::Ethernet, &mirror(&outer_v4(4, &ip6))),
        Err(Skip::BadHeader)
    );
    assert_eq!(
        decode(LinkType::Ethernet, &mirror(&outer_v4(41, &[]))),
        Err(Skip::Truncated)
    );
}

#[test]
fn pppoe_and_mpls() {
    let ip = tcp_ip(b"hello");
    let ip6 = tcp_ip6(b"hello");
    // PPPoE behind a VLAN tag, with Ethernet padding after the PPP payload.
    let mut tagged = vec![0x00, 0x0a, 0x88, 0x64];
    tagged.extend_from_slice(&pppoe_hdr(&[0, 0x57], &ip6));
    tagged.extend_from_slice(&[0; 6]);
    let f = ether(CMAC, GMAC, 0x8100, &tagged);
    assert_eq!(seen(decode(LinkType::Ethernet, &f)), hello6());
    assert_eq!(macs(LinkType::Ethernet, &f), (Some(CMAC), Some(GMAC)));
    // One label (bottom of stack), IPv6; three labels, IPv4.
    let mut one = vec![0, 0x01, 0x01, 64];
    one.extend_from_slice(&ip6);
    assert_eq!(
        seen(decode(LinkType::Ethernet, &ether(CMAC, GMAC, 0x8847, &one))),
        hello6()
    );
    let mut three = vec![0, 1, 0, 64, 0, 2, 0, 64, 0, 3, 1, 64];
    three.extend_from_slice(&ip);
    assert_eq!(
        seen(decode(
            LinkType::Ethernet,
            &ether(CMAC, GMAC, 0x8848, &three)
        )),
        hello()
    );
    // No bottom of stack before the data ends; an Ethernet pseudowire.
    assert_eq!(
        decode(
            LinkType::Ethernet,
            &ether(CMAC, GMAC, 0x8847, &[0, 1, 0, 64])
        ),
        Err(Skip::Truncated)
    );
    let mut pw = vec![0, 1, 1, 64, 0, 0, 0, 0];
    pw.extend_from_slice(&client_frame(&ip));
    assert_eq!(
        decode(LinkType::Ethernet, &ether(CMAC, GMAC, 0x8847, &pw)),
        Err(Skip::NotIp)
    );
}

/// `depth` IPv4-in-IPv4 tunnels around the TCP packet.
fn nested(depth: usize) -> Vec<u8> {
    let mut ip = tcp_ip(b"hello");
    for _ in 0..depth {
        ip = outer_v4(4, &ip);
    }
    mirror(&ip)
}

#[test]
fn tunnels_in_tunnels_and_too_deep() {
    for depth in 0..=usize::from(MAX_TUNNELS) {
        assert_eq!(
            seen(decode(LinkType::Ethernet, &nested(depth))),
            hello(),
            "{depth}"
        );
    }
    assert_eq!(
        decode(LinkType::Ethernet, &nested(usize::from(MAX_TUNNELS) + 1)),
        Err(Skip::TunnelTooDeep)
    );
    // Mixed kinds: Geneve carrying VXLAN carrying ERSPAN carrying GRE (4 levels) is
    // fine; wrapping it in IP in IP once more is not.
    let ip = tcp_ip(b"hello");
    let l4 = ether(
        SWITCH,
        COLLECTOR,
        0x0800,
        &outer_v4(47, &gre(0, 0x0800, &ip)),
    );
    let l3 = ether(SWITCH, COLLECTOR, 0x0800, &outer_v4(47, &erspan2(&l4)));
    let l2 = ether(SWITCH, COLLECTOR, 0x0800, &outer_udp(4789, &vxlan_hdr(&l3)));
    let l1 = outer_udp(6081, &geneve_hdr(0x6558, &[], &l2));
    assert_eq!(seen(decode(LinkType::Ethernet, &mirror(&l1))), hello());
    assert_eq!(
        decode(LinkType::Ethernet, &mirror(&outer_v4(4, &l1))),
        Err(Skip::TunnelTooDeep)
    );
    let mut d = Decoder::new(FragConfig::default());
    let _ = d.decode(Timestamp::default(), LinkType::Ethernet, &mirror(&l1));
    let counts: Vec<_> = d.counts().collect();
    assert_eq!(
        counts,
        vec![
            ("encap_gre", 1),
            ("encap_erspan", 1),
            ("encap_vxlan", 1),
            ("encap_geneve", 1)
        ]
    );
}

#[test]
fn skips_garbage_without_panicking() {
    let f = udp_v4(b"hello world");
    let links = [
        LinkType::Ethernet,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::RawIp,
        LinkType::Loopback,
        LinkType::Ppp,
        LinkType::PppHdlc,
        LinkType::PppEther,
        LinkType::CiscoHdlc,
    ];
    let mut d = Decoder::new(FragConfig {
        max_datagrams: 4,
        ..FragConfig::default()
    });
    let mut frames: Vec<Vec<u8>> = every_kind().into_iter().map(|(_, f)| f).collect();
    frames.push(f.clone());
    frames.extend(
        fragment_v4(&tcp_ip(&[7; 300]), &[104, 200])
            .iter()
            .map(|x| client_frame(x)),
    );
    for frame in &frames {
        for len in 0..=frame.len() {
            for link in links {
                let _ = decode(link, &frame[..len]);
                let _ = d.decode(Timestamp::from_micros(len as i64), link, &frame[..len]);
            }
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
    // Also inside a tunnel.
    let inner = fragment_v4(&tcp_ip(&[1; 100]), &[48]);
    let g = mirror(&outer_v4(47, &gre(0, 0x0800, &inner[0])));
    assert_eq!(decode(LinkType::Ethernet, &g), Err(Skip::Fragment));
}

fn decode_all(d: &mut Decoder, frames: &[Vec<u8>]) -> Vec<Seen> {
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| seen(d.decode(Timestamp::from_micros(i as i64), LinkType::Ethernet, f)))
        .collect()
}

#[test]
fn decoder_reassembles_ipv4_and_ipv6() {
    let body: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let dg = tcp_ip(&body);
    let frames: Vec<_> = fragment_v4(&dg, &[400, 800])
        .iter()
        .rev()
        .map(|f| client_frame(f))
        .collect();
    let mut d = Decoder::new(FragConfig::default());
    let out = decode_all(&mut d, &frames);
    assert_eq!(&out[..2], &[Err(Skip::Fragment), Err(Skip::Fragment)]);
    assert_eq!(
        out[2],
        Ok(("10.0.0.23".into(), "160.79.104.10".into(), body.clone()))
    );
    let p = d
        .decode(Timestamp::default(), LinkType::Ethernet, &frames[0])
        .err();
    assert_eq!(p, Some(Skip::Fragment));

    let dg6 = tcp_ip6(&body);
    let frames: Vec<_> = fragment_v6(&dg6, &[504], 99)
        .iter()
        .map(|f| client_frame(f))
        .collect();
    let out = decode_all(&mut d, &frames);
    assert_eq!(out[1].as_ref().map(|s| s.2.clone()), Ok(body.clone()));
    let counts: Vec<_> = d.counts().collect();
    assert_eq!(counts, vec![("frag_held", 4), ("frag_reassembled", 2)]);
    // The reassembled packet keeps the frame's MACs. (Another IP ID: the last
    // fragment of the first datagram, fed again above, waits under the old one.)
    let mut dg = dg;
    dg[4] = 0x77;
    set_v4(&mut dg, 0, false);
    let frames: Vec<_> = fragment_v4(&dg, &[504])
        .iter()
        .map(|f| client_frame(f))
        .collect();
    let _ = d.decode(Timestamp::default(), LinkType::Ethernet, &frames[0]);
    let p = d
        .decode(Timestamp::default(), LinkType::Ethernet, &frames[1])
        .expect("complete");
    assert_eq!((p.link_src, p.link_dst), (Some(CMAC), Some(GMAC)));
}

#[test]
fn decoder_reassembles_inside_and_around_tunnels() {
    let body: Vec<u8> = (0..600u32).map(|i| (i % 13) as u8).collect();
    let dg = tcp_ip(&body);
    let want = Ok(("10.0.0.23".into(), "160.79.104.10".into(), body.clone()));
    // Inner fragments, each in its own VXLAN frame.
    let frames: Vec<_> = fragment_v4(&dg, &[304])
        .iter()
        .map(|f| mirror(&outer_udp(4789, &vxlan_hdr(&client_frame(f)))))
        .collect();
    let mut d = Decoder::new(FragConfig::default());
    assert_eq!(decode_all(&mut d, &frames)[1], want);
    // The outer GRE packet fragmented (a mirror session over a small MTU).
    let outer = outer_v4(47, &gre(0, 0x6558, &client_frame(&dg)));
    let frames: Vec<_> = fragment_v4(&outer, &[200, 400])
        .iter()
        .map(|f| mirror(f))
        .collect();
    assert_eq!(decode_all(&mut d, &frames)[2], want);
    // Both: inner fragments inside an outer packet that is fragmented in turn.
    let inner = fragment_v4(&dg, &[304]);
    let mut frames = Vec::new();
    for (i, f) in inner.iter().enumerate() {
        let mut outer = outer_v4(4, f);
        outer[4..6].copy_from_slice(&(500 + i as u16).to_be_bytes());
        set_v4(&mut outer, 0, false);
        frames.extend(fragment_v4(&outer, &[160]).iter().rev().map(|x| mirror(x)));
    }
    let out = decode_all(&mut d, &frames);
    assert_eq!(out[3], want, "{out:?}");
    assert!(d.counts().any(|c| c == ("encap_ip_in_ip", 2)));
}

#[test]
fn decoder_applies_the_policy_and_counts() {
    let body = [0x41u8; 200];
    let dg = tcp_ip(&body);
    let frags = fragment_v4(&dg, &[96]);
    let mut rogue = dg[..20].to_vec();
    rogue.extend_from_slice(&[0x42; 48]);
    set_v4(&mut rogue, 80, true);
    let frames: Vec<_> = [&frags[0], &rogue, &frags[1]]
        .iter()
        .map(|f| client_frame(f))
        .collect();
    let mut d = Decoder::new(FragConfig::default());
    let out = decode_all(&mut d, &frames);
    assert!(out.iter().all(|r| *r == Err(Skip::Fragment)), "{out:?}");
    assert!(d.counts().any(|c| c == ("frag_overlap_discarded", 1)));
    let mut d = Decoder::new(FragConfig {
        policy: FragPolicy::Last,
        ..FragConfig::default()
    });
    let out = decode_all(&mut d, &frames);
    let got = out[2].as_ref().map(|s| s.2.clone()).expect("complete");
    // R covered 80..128 of the IP payload, and the last fragment then rewrote 96..
    // again: after the 20-byte TCP header, payload bytes 60..76 are R's.
    assert_eq!(&got[..60], &body[..60]);
    assert!(got[60..76].iter().all(|&b| b == 0x42));
    assert_eq!(&got[76..], &body[76..]);
}

#[test]
fn decoder_expires_held_fragments() {
    let frags = fragment_v4(&tcp_ip(&[1; 300]), &[104]);
    let mut d = Decoder::new(FragConfig::default());
    let f = client_frame(&frags[0]);
    let _ = d.decode(Timestamp::from_micros(0), LinkType::Ethernet, &f);
    assert_eq!(d.reassembler().len(), 1);
    let later = udp_v4(b"x");
    let _ = d.decode(
        Timestamp::from_micros(31_000_000),
        LinkType::Ethernet,
        &later,
    );
    assert!(d.reassembler().is_empty());
    assert!(d.counts().any(|c| c == ("frag_timed_out", 1)));
}
