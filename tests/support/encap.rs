//! Fixture captures of tunnelled, fragmented and PPP/HDLC traffic: the same client
//! traffic as the plain captures (a DNS query and answer, a rustls ClientHello, quinn
//! Initials in one of them), wrapped the way a remote mirror, a cloud mirror, a tunnel or
//! a serial link delivers it, or cut into IP fragments.
//!
//! Outer headers are built by hand from the specifications (RFC 2784/2890 GRE,
//! draft-foschiano-erspan-03, RFC 7348 VXLAN, RFC 8926 Geneve, RFC 2516 PPPoE) so the
//! decoder is not checked against its own code.

use std::fs::File;
use std::io::BufWriter;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use etherparse::{IpNumber, PacketBuilder, SlicedPacket, TransportSlice};
use hickory_proto::rr::RecordType;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;

use super::{
    dns_udp, quinn_initials, rustls_client_hello, sa, tcp_conn, v4, Capture, Link, Res, Tcp, CLIENT,
};

/// The mirror session's ends: a switch sending to a collector.
const SWITCH_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x99];
const COLLECTOR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x42];
const SWITCH_IP: [u8; 4] = [192, 0, 2, 1];
const COLLECTOR_IP: [u8; 4] = [192, 0, 2, 2];

type Packets = Vec<(Duration, Vec<u8>)>;

fn c(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(CLIENT), port)
}

fn c6(port: u16) -> Res<SocketAddr> {
    Ok(SocketAddr::new("2001:db8::23".parse()?, port))
}

/// claude.ai over IPv4, as in the VLAN and cooked captures: DNS, then a ClientHello in
/// two segments (one when `one_segment`).
fn claude_v4(cap: &mut Capture, one_segment: bool) -> Res<()> {
    let ch = rustls_client_hello("claude.ai", false)?;
    claude_v4_with(cap, one_segment, &ch)
}

fn claude_v4_with(cap: &mut Capture, one_segment: bool, ch: &[u8]) -> Res<()> {
    dns_udp(
        cap,
        c(40030),
        0x4001,
        "claude.ai",
        RecordType::A,
        &[v4("160.79.104.10")],
    )?;
    tcp_conn(
        cap,
        Tcp {
            client: c(50030),
            server: sa("160.79.104.10", 443),
            flight: ch,
            cuts: if one_segment { &[] } else { &[600] },
            order: None,
            bulk: 1,
        },
    );
    Ok(())
}

/// claude.ai over IPv6, as in `ipv6.pcap`.
fn claude_v6(cap: &mut Capture, one_segment: bool) -> Res<()> {
    let s6 = sa("2607:6bc0::10", 443);
    dns_udp(
        cap,
        c6(40040)?,
        0x5001,
        "claude.ai",
        RecordType::AAAA,
        &[s6.ip()],
    )?;
    let ch = rustls_client_hello("claude.ai", false)?;
    tcp_conn(
        cap,
        Tcp {
            client: c6(50040)?,
            server: s6,
            flight: &ch,
            cuts: if one_segment { &[] } else { &[800] },
            order: None,
            bulk: 1,
        },
    );
    Ok(())
}

/// chatgpt.com over QUIC, as in `quic_v1_chatgpt.pcap`.
fn chatgpt_quic(cap: &mut Capture) -> Res<()> {
    let server = sa("104.18.32.47", 443);
    dns_udp(
        cap,
        c(40007),
        0x1007,
        "chatgpt.com",
        RecordType::A,
        &[server.ip()],
    )?;
    for d in quinn_initials("chatgpt.com", server)? {
        cap.udp(c(50007), server, &d);
    }
    Ok(())
}

/// Client traffic as Ethernet frames, starting `offset` seconds into the fixture day.
fn client_traffic(offset: u64, fill: impl FnOnce(&mut Capture) -> Res<()>) -> Res<Packets> {
    let mut cap = Capture::new(Link::Ethernet, offset);
    fill(&mut cap)?;
    Ok(cap.packets)
}

fn write(path: &Path, datalink: DataLink, packets: &[(Duration, Vec<u8>)]) -> Res<()> {
    let header = PcapHeader {
        datalink,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(BufWriter::new(File::create(path)?), header)?;
    for (ts, data) in packets {
        w.write_packet(&PcapPacket::new(*ts, data.len() as u32, data))?;
    }
    Ok(())
}

/// Each frame wrapped by `wrap` (given the frame and its index).
fn wrap_all(packets: &Packets, wrap: impl Fn(usize, &[u8]) -> Res<Vec<u8>>) -> Res<Packets> {
    packets
        .iter()
        .enumerate()
        .map(|(i, (ts, f))| Ok((*ts, wrap(i, f)?)))
        .collect()
}

/// The switch's frame to the collector carrying `payload` as IP protocol `proto`.
fn outer_ip(proto: u8, payload: &[u8]) -> Res<Vec<u8>> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(SWITCH_MAC, COLLECTOR_MAC)
        .ipv4(SWITCH_IP, COLLECTOR_IP, 64)
        .write(&mut out, IpNumber(proto), payload)?;
    Ok(out)
}

/// The switch's frame to the collector carrying `payload` in UDP to `dport`.
fn outer_udp(sport: u16, dport: u16, payload: &[u8]) -> Res<Vec<u8>> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(SWITCH_MAC, COLLECTOR_MAC)
        .ipv4(SWITCH_IP, COLLECTOR_IP, 64)
        .udp(sport, dport)
        .write(&mut out, payload)?;
    Ok(out)
}

/// A GRE header: flags and version, protocol type, then the optional fields the flags
/// announce (RFC 2784, RFC 2890).
fn gre(key: Option<u32>, seq: Option<u32>, proto: u16, payload: &[u8]) -> Vec<u8> {
    let flags = if key.is_some() { 0x2000u16 } else { 0 } | if seq.is_some() { 0x1000 } else { 0 };
    let mut out = flags.to_be_bytes().to_vec();
    out.extend_from_slice(&proto.to_be_bytes());
    for v in [key, seq].into_iter().flatten() {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// The IP packet inside an Ethernet frame (the frames built here have no VLAN tag).
fn ip_of(frame: &[u8]) -> &[u8] {
    &frame[14..]
}

fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// IPv4 fragments of the packet in an Ethernet frame, cut at `cuts` (offsets into the
/// IP payload, multiples of 8), with identification `id`; each an Ethernet frame.
fn fragments_v4(frame: &[u8], id: u16, cuts: &[usize]) -> Vec<Vec<u8>> {
    let ip = ip_of(frame);
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let payload = &ip[ihl..];
    spans(payload.len(), cuts)
        .into_iter()
        .map(|(s, e)| v4_fragment(frame, id, s, e < payload.len(), &payload[s..e]))
        .collect()
}

/// One IPv4 fragment of the packet in `frame`: `data` at `offset`.
fn v4_fragment(frame: &[u8], id: u16, offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
    let ip = ip_of(frame);
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let mut out = frame[..14 + ihl].to_vec();
    out.extend_from_slice(data);
    let h = &mut out[14..14 + ihl];
    h[2..4].copy_from_slice(&((ihl + data.len()) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    let fo = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
    h[6..8].copy_from_slice(&fo.to_be_bytes());
    h[10..12].copy_from_slice(&[0, 0]);
    let sum = ipv4_checksum(h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    out
}

/// IPv6 fragments (a Fragment header after the fixed header) of the packet in an
/// Ethernet frame.
fn fragments_v6(frame: &[u8], id: u32, cuts: &[usize]) -> Vec<Vec<u8>> {
    let ip = ip_of(frame);
    let payload = &ip[40..];
    spans(payload.len(), cuts)
        .into_iter()
        .map(|(s, e)| {
            let mut out = frame[..14 + 40].to_vec();
            let next = out[14 + 6];
            out[14 + 6] = 44;
            let data = &payload[s..e];
            out[14 + 4..14 + 6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
            let fo = s as u16 | u16::from(e < payload.len());
            out.extend_from_slice(&[next, 0]);
            out.extend_from_slice(&fo.to_be_bytes());
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(data);
            out
        })
        .collect()
}

fn spans(len: usize, cuts: &[usize]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for &c in cuts.iter().chain(std::iter::once(&len)) {
        out.push((start, c));
        start = c;
    }
    out
}

/// What a frame carries, to pick the ones to fragment.
fn carries(frame: &[u8]) -> Option<(u16, Vec<u8>)> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    match p.transport? {
        TransportSlice::Udp(u) => Some((u.destination_port(), u.payload().to_vec())),
        TransportSlice::Tcp(t) => Some((t.destination_port(), t.payload().to_vec())),
        _ => None,
    }
}

fn is_dns_query(frame: &[u8]) -> bool {
    carries(frame).is_some_and(|(port, _)| port == 53)
}

fn is_client_hello(frame: &[u8]) -> bool {
    carries(frame).is_some_and(|(port, p)| port == 443 && p.starts_with(&[0x16, 3]))
}

/// The frames with the DNS query cut in two (sent in reverse order) and the ClientHello
/// segment cut in three, by `split`.
fn fragmented(packets: &Packets, split: impl Fn(&[u8], u32, &[usize]) -> Vec<Vec<u8>>) -> Packets {
    let mut out = Vec::new();
    for (ts, f) in packets {
        let mut at = *ts;
        let pieces = if is_dns_query(f) {
            let mut p = split(f, 0x0d05, &[16]);
            p.reverse();
            p
        } else if is_client_hello(f) {
            split(f, 0x0c11, &[480, 960])
        } else {
            vec![f.clone()]
        };
        for p in pieces {
            out.push((at, p));
            at += Duration::from_micros(20);
        }
    }
    out
}

/// Writes the tunnel, fragment and serial-link fixtures into `fixtures`.
pub(crate) fn write_encap(fixtures: &Path) -> Res<()> {
    // GRE (with a key) carrying IPv4, as a router's tunnel or an IP-only mirror.
    let inner = client_traffic(900, |cap| claude_v4(cap, false))?;
    let frames = wrap_all(&inner, |_, f| {
        outer_ip(47, &gre(Some(0x0000_2a2a), None, 0x0800, ip_of(f)))
    })?;
    write(&fixtures.join("gre_ip.pcap"), DataLink::ETHERNET, &frames)?;

    // ERSPAN type II: GRE with a sequence number, the 8-byte ERSPAN header (version 1,
    // VLAN 10, session 7, index 3), then the mirrored Ethernet frame.
    let inner = client_traffic(960, |cap| claude_v4(cap, false))?;
    let frames = wrap_all(&inner, |i, f| {
        let mut e = vec![0x10, 0x0a, 0x00, 0x07, 0x00, 0x00, 0x00, 0x03];
        e.extend_from_slice(f);
        outer_ip(47, &gre(None, Some(i as u32), 0x88be, &e))
    })?;
    write(&fixtures.join("erspan2.pcap"), DataLink::ETHERNET, &frames)?;

    // ERSPAN type III (protocol 0x22EB): the 12-byte header (version 2, VLAN 10, session
    // 7, timestamp, SGT, frame type Ethernet) and, on every other frame, the O bit and an
    // 8-byte platform-specific subheader (platform 3: port index and upper timestamp).
    let inner = client_traffic(1020, |cap| claude_v4(cap, false))?;
    let frames = wrap_all(&inner, |i, f| {
        let sub = i % 2 == 1;
        let mut e = vec![0x20, 0x0a, 0x00, 0x07];
        e.extend_from_slice(&(1_000 * i as u32).to_be_bytes());
        e.extend_from_slice(&[0x00, 0x00, 0x00, if sub { 0x03 } else { 0x02 }]);
        if sub {
            e.extend_from_slice(&[0x0c, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x01]);
        }
        e.extend_from_slice(f);
        outer_ip(47, &gre(None, Some(i as u32), 0x22eb, &e))
    })?;
    write(&fixtures.join("erspan3.pcap"), DataLink::ETHERNET, &frames)?;

    // VXLAN (VNI 4096), a cloud traffic mirror: claude.ai over TLS and chatgpt.com over
    // QUIC.
    let inner = client_traffic(1080, |cap| {
        claude_v4(cap, false)?;
        chatgpt_quic(cap)
    })?;
    let frames = wrap_all(&inner, |i, f| {
        let mut v = vec![0x08, 0, 0, 0, 0x00, 0x10, 0x00, 0];
        v.extend_from_slice(f);
        outer_udp(49_200 + (i % 64) as u16, 4789, &v)
    })?;
    write(&fixtures.join("vxlan.pcap"), DataLink::ETHERNET, &frames)?;

    // Geneve carrying Ethernet (0x6558) with one 8-byte option (class 0x0108, type 1).
    let inner = client_traffic(1140, |cap| claude_v4(cap, false))?;
    let frames = wrap_all(&inner, |i, f| {
        let mut g = vec![0x02, 0x00, 0x65, 0x58, 0x00, 0x00, 0x2a, 0x00];
        g.extend_from_slice(&[0x01, 0x08, 0x01, 0x01, 0xde, 0xad, 0xbe, 0xef]);
        g.extend_from_slice(f);
        outer_udp(49_200 + (i % 64) as u16, 6081, &g)
    })?;
    write(&fixtures.join("geneve.pcap"), DataLink::ETHERNET, &frames)?;

    // IPv4 in IPv4 (protocol 4) and IPv6 in IPv4 (protocol 41, a 6in4 tunnel).
    let inner = client_traffic(1200, |cap| {
        claude_v4(cap, false)?;
        claude_v6(cap, false)
    })?;
    let frames = wrap_all(&inner, |_, f| {
        let proto = if f[12..14] == [0x86, 0xdd] { 41 } else { 4 };
        outer_ip(proto, ip_of(f))
    })?;
    write(&fixtures.join("ip_in_ip.pcap"), DataLink::ETHERNET, &frames)?;

    // IPv4 fragments: the DNS query in two (the second first), the ClientHello segment
    // in three.
    let inner = client_traffic(1260, |cap| claude_v4(cap, true))?;
    let frames = fragmented(&inner, |f, id, cuts| fragments_v4(f, id as u16, cuts));
    write(
        &fixtures.join("ip_fragments.pcap"),
        DataLink::ETHERNET,
        &frames,
    )?;

    // The same over IPv6 (Fragment extension header).
    let inner = client_traffic(1320, |cap| claude_v6(cap, true))?;
    let frames = fragmented(&inner, fragments_v6);
    write(
        &fixtures.join("ipv6_fragments.pcap"),
        DataLink::ETHERNET,
        &frames,
    )?;

    // Overlapping fragments: the ClientHello segment in three, and between the first and
    // the second a rogue copy of the bytes around the server name that starts 8 bytes
    // before the second and names another host. Linux discards the whole datagram, so
    // the server never sees this ClientHello, and neither does the detector. rustls
    // shuffles its extensions: take a ClientHello whose server name is not at the very
    // end, so the three fragments all carry data.
    let mut ch = rustls_client_hello("claude.ai", false)?;
    for _ in 0..64 {
        let at = ch.windows(9).position(|w| w == b"claude.ai");
        if at.is_some_and(|at| at + 64 < ch.len()) {
            break;
        }
        ch = rustls_client_hello("claude.ai", false)?;
    }
    let inner = client_traffic(1380, |cap| claude_v4_with(cap, true, &ch))?;
    let mut frames = Vec::new();
    for (ts, f) in &inner {
        if !is_client_hello(f) {
            frames.push((*ts, f.clone()));
            continue;
        }
        let payload = &ip_of(f)[20..];
        let sni = payload
            .windows(9)
            .position(|w| w == b"claude.ai")
            .ok_or("no server name in the ClientHello")?;
        let a = sni / 8 * 8;
        let b = a + 32;
        let mut rogue = payload[a - 8..a + 24].to_vec();
        rogue[sni - (a - 8)..sni - (a - 8) + 9].copy_from_slice(b"zzzzzz.ai");
        let pieces = [
            v4_fragment(f, 0x0c12, 0, true, &payload[..a]),
            v4_fragment(f, 0x0c12, a - 8, true, &rogue),
            v4_fragment(f, 0x0c12, a, true, &payload[a..b]),
            v4_fragment(f, 0x0c12, b, false, &payload[b..]),
        ];
        for (k, p) in pieces.into_iter().enumerate() {
            frames.push((*ts + Duration::from_micros(20 * k as u64), p));
        }
    }
    write(
        &fixtures.join("frag_overlap.pcap"),
        DataLink::ETHERNET,
        &frames,
    )?;

    // PPP (link type 9) in HDLC-like framing: 0xFF 0x03, protocol 0x0021 (IPv4).
    let inner = client_traffic(1440, |cap| claude_v4(cap, false))?;
    let frames = wrap_all(&inner, |_, f| {
        Ok([&[0xff, 0x03, 0x00, 0x21][..], ip_of(f)].concat())
    })?;
    write(&fixtures.join("ppp.pcap"), DataLink::PPP, &frames)?;

    // Cisco HDLC (link type 104): unicast address 0x0F, control 0, EtherType.
    let inner = client_traffic(1500, |cap| claude_v4(cap, false))?;
    let frames = wrap_all(&inner, |_, f| {
        Ok([&[0x0f, 0x00, 0x08, 0x00][..], ip_of(f)].concat())
    })?;
    write(&fixtures.join("chdlc.pcap"), DataLink::C_HDLC, &frames)?;

    // PPPoE session frames (EtherType 0x8864, session 0x1234), PPP protocol 0x0021, as
    // on a DSL modem's LAN side.
    let inner = client_traffic(1560, |cap| claude_v4(cap, false))?;
    let frames = wrap_all(&inner, |_, f| {
        let ip = ip_of(f);
        let mut out = f[..12].to_vec();
        out.extend_from_slice(&[0x88, 0x64, 0x11, 0x00, 0x12, 0x34]);
        out.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&[0x00, 0x21]);
        out.extend_from_slice(ip);
        Ok(out)
    })?;
    write(&fixtures.join("pppoe.pcap"), DataLink::ETHERNET, &frames)?;
    Ok(())
}
