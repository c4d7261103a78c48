//! The project's capture generator: writes the test fixtures under `tests/fixtures/` and
//! the bundled sample `samples/clinic-morning.pcap`. It is long because every fixture of the
//! first detection work is written in one function, so the regeneration test covers them
//! all; later sets live beside it (ech.rs, paths.rs, encap.rs, slow.rs, sample.rs).
//!
//! Handshakes come from real stacks: rustls 0.23 (aws-lc-rs provider, so ClientHellos
//! carry the post-quantum X25519MLKEM768 key share and are ~1.3 KB like Chrome's) and
//! quinn-proto 0.11 (QUIC v1 Initials). DNS messages are built with hickory-proto, frames
//! with etherparse, files with pcap-file. `encap.rs` wraps the same traffic in tunnels, IP
//! fragments and serial link layers.
//!
//! Timestamps, addresses, ports and every choice the generator makes are fixed, so two
//! runs describe the same traffic; the stacks' own random values (client randoms, key
//! shares, connection IDs) differ from run to run, so the bytes are not identical.
//! QUIC v2 Initials come from the RFC 9369 Appendix A vector: quinn-proto 0.11 does not
//! speak v2.

#![allow(dead_code)]

#[path = "encap.rs"]
mod encap;

use std::error::Error;
use std::fs::File;
use std::io::BufWriter;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etherparse::{PacketBuilder, VlanId};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::svcb::{EchConfigList, SvcParamKey, SvcParamValue, SVCB};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, HTTPS};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;

#[path = "ech.rs"]
pub(crate) mod ech;
#[path = "paths.rs"]
pub(crate) mod paths;
#[path = "sample.rs"]
pub(crate) mod sample;
#[path = "slow.rs"]
pub(crate) mod slow;

pub(crate) type Res<T> = Result<T, Box<dyn Error>>;

/// 2026-11-23T08:00:00Z.
const BASE_SECS: u64 = 1_795_420_800;

pub(crate) const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 23);
pub(crate) const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const GW_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

/// The MAC a frame to or from `ip` carries on the clinic's LAN: each workstation its own,
/// from the last byte of its address (10.0.0.23 and 2001:db8::23 are the same device);
/// the gateway's for the gateway and for every address beyond it.
fn mac_of(ip: IpAddr) -> [u8; 6] {
    let last = match ip {
        IpAddr::V4(v4) => v4.octets()[3],
        IpAddr::V6(v6) => format!("{:x}", v6.segments()[7])
            .parse::<u8>()
            .unwrap_or(v6.octets()[15]),
    };
    if !is_local(ip) || last == 1 {
        GW_MAC
    } else {
        [2, 0, 0, 0, 0, last]
    }
}

/// A rustls ClientHello as the bytes a client writes first (TLS records).
pub(crate) fn rustls_client_hello(sni: &str, ech_grease: bool) -> Res<Vec<u8>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider);
    let builder = if ech_grease {
        let suite = rustls::crypto::aws_lc_rs::hpke::ALL_SUPPORTED_SUITES
            .iter()
            .find(|s| format!("{:?}", s.suite()).contains("X25519"))
            .ok_or("no x25519 hpke suite")?;
        let grease = rustls::client::EchGreaseConfig::new(
            *suite,
            rustls::crypto::hpke::HpkePublicKey(vec![0x42; 32]),
        );
        builder.with_ech(rustls::client::EchMode::Grease(grease))?
    } else {
        builder.with_safe_default_protocol_versions()?
    };
    let mut cfg = builder
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from(sni.to_string())?;
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name)?;
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out)?;
    }
    Ok(out)
}

/// The client Initial datagrams quinn sends first for `sni`.
pub(crate) fn quinn_initials(sni: &str, server: SocketAddr) -> Res<Vec<Vec<u8>>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut crypto = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    crypto.alpn_protocols = vec![b"h3".to_vec()];
    let qcc = quinn_proto::crypto::rustls::QuicClientConfig::try_from(crypto)?;
    let client_cfg = quinn_proto::ClientConfig::new(Arc::new(qcc));
    let mut endpoint = quinn_proto::Endpoint::new(
        Arc::new(quinn_proto::EndpointConfig::default()),
        None,
        false,
        Some([7; 32]),
    );
    let now = Instant::now();
    let (_, mut conn) = endpoint.connect(now, client_cfg, server, sni)?;
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while let Some(t) = conn.poll_transmit(now, 1, &mut buf) {
        out.push(buf[..t.size].to_vec());
        buf.clear();
    }
    Ok(out)
}

/// Re-frames the handshake message of a single-record ClientHello into records of at most
/// `chunk` bytes each.
pub(crate) fn reframe(records: &[u8], chunk: usize) -> Vec<u8> {
    let msg = &records[5..];
    let mut out = Vec::new();
    for part in msg.chunks(chunk) {
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&(part.len() as u16).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

pub(crate) fn dns_query(id: u16, name: &str, qtype: RecordType) -> Res<Vec<u8>> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name)?, qtype));
    Ok(m.to_vec()?)
}

/// An answer: each element of `chain` is a CNAME to the next; the last gets `addrs`.
pub(crate) fn dns_answer(
    id: u16,
    chain: &[&str],
    qtype: RecordType,
    addrs: &[IpAddr],
    ech: bool,
) -> Res<Vec<u8>> {
    let mut m = Message::new(id, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.metadata.recursion_available = true;
    let first = Name::from_ascii(chain[0])?;
    m.add_query(Query::query(first, qtype));
    for w in chain.windows(2) {
        m.add_answer(Record::from_rdata(
            Name::from_ascii(w[0])?,
            300,
            RData::CNAME(CNAME(Name::from_ascii(w[1])?)),
        ));
    }
    let last = Name::from_ascii(chain[chain.len() - 1])?;
    if qtype == RecordType::HTTPS {
        let mut params = vec![(
            SvcParamKey::Alpn,
            SvcParamValue::Alpn(hickory_proto::rr::rdata::svcb::Alpn(vec![
                "h3".into(),
                "h2".into(),
            ])),
        )];
        if ech {
            params.push((
                SvcParamKey::EchConfigList,
                SvcParamValue::EchConfigList(EchConfigList(vec![0, 4, 0xfe, 0x0d, 0, 0])),
            ));
        }
        m.add_answer(Record::from_rdata(
            last.clone(),
            300,
            RData::HTTPS(HTTPS(SVCB::new(1, Name::root(), params))),
        ));
    }
    for a in addrs {
        let rdata = match a {
            IpAddr::V4(v4) => RData::A(A(*v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
        };
        m.add_answer(Record::from_rdata(last.clone(), 300, rdata));
    }
    Ok(m.to_vec()?)
}

/// How frames are wrapped for a capture's link type.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    Ethernet,
    Vlan(u16),
    QinQ(u16, u16),
    Sll,
    Sll2,
    Raw,
}

/// Builds frames and keeps a clock that advances per packet.
pub(crate) struct Capture {
    link: Link,
    pub(crate) packets: Vec<(Duration, Vec<u8>)>,
    now: Duration,
}

impl Capture {
    pub(crate) fn new(link: Link, start_offset_secs: u64) -> Capture {
        Capture {
            link,
            packets: Vec::new(),
            now: Duration::from_secs(BASE_SECS + start_offset_secs),
        }
    }

    pub(crate) fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    fn builder(
        &self,
        src: IpAddr,
        dst: IpAddr,
    ) -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
        let eth = PacketBuilder::ethernet2(mac_of(src), mac_of(dst));
        let ip = |b: etherparse::PacketBuilderStep<etherparse::VlanHeader>| match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => b.ipv4(s.octets(), d.octets(), 64),
            (IpAddr::V6(s), IpAddr::V6(d)) => b.ipv6(s.octets(), d.octets(), 64),
            _ => panic!("mixed address families"),
        };
        match self.link {
            Link::Vlan(v) => ip(eth.single_vlan(VlanId::try_new(v).expect("vlan id"))),
            Link::QinQ(a, b) => ip(eth.double_vlan(
                VlanId::try_new(a).expect("vlan id"),
                VlanId::try_new(b).expect("vlan id"),
            )),
            _ => match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
                (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
                _ => panic!("mixed address families"),
            },
        }
    }

    fn push_ethernet(&mut self, frame: Vec<u8>) {
        let out = match self.link {
            Link::Ethernet | Link::Vlan(_) | Link::QinQ(..) => frame,
            Link::Raw => frame[14..].to_vec(),
            Link::Sll => {
                let mut v = vec![0, 0, 0, 1, 0, 6];
                v.extend_from_slice(&frame[6..12]);
                v.extend_from_slice(&[0, 0]);
                v.extend_from_slice(&frame[12..]);
                v
            }
            Link::Sll2 => {
                let mut v = frame[12..14].to_vec();
                v.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6]);
                v.extend_from_slice(&frame[6..12]);
                v.extend_from_slice(&[0, 0]);
                v.extend_from_slice(&frame[14..]);
                v
            }
        };
        self.packets.push((self.now, out));
        self.now += Duration::from_micros(350);
    }

    pub(crate) fn udp(&mut self, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
        let b = self.builder(src.ip(), dst.ip()).udp(src.port(), dst.port());
        let mut f = Vec::new();
        b.write(&mut f, payload).expect("write frame");
        self.push_ethernet(f);
    }

    pub(crate) fn tcp(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        seq: u32,
        ack: u32,
        flags: &str,
        payload: &[u8],
    ) {
        let mut b = self
            .builder(src.ip(), dst.ip())
            .tcp(src.port(), dst.port(), seq, 64_240);
        if flags.contains('S') {
            b = b.syn();
        }
        if flags.contains('A') {
            b = b.ack(ack);
        }
        if flags.contains('P') {
            b = b.psh();
        }
        if flags.contains('F') {
            b = b.fin();
        }
        if flags.contains('R') {
            b = b.rst();
        }
        let mut f = Vec::new();
        b.write(&mut f, payload).expect("write frame");
        self.push_ethernet(f);
    }

    /// A raw frame, for malformed input.
    pub(crate) fn raw(&mut self, frame: Vec<u8>) {
        self.packets.push((self.now, frame));
        self.now += Duration::from_micros(350);
    }

    pub(crate) fn write(&self, path: &Path) -> Res<()> {
        let datalink = match self.link {
            Link::Ethernet | Link::Vlan(_) | Link::QinQ(..) => DataLink::ETHERNET,
            Link::Sll => DataLink::LINUX_SLL,
            Link::Sll2 => DataLink::LINUX_SLL2,
            Link::Raw => DataLink::RAW,
        };
        let header = PcapHeader {
            datalink,
            ..PcapHeader::default()
        };
        let mut w = PcapWriter::with_header(BufWriter::new(File::create(path)?), header)?;
        for (ts, data) in &self.packets {
            w.write_packet(&PcapPacket::new(*ts, data.len() as u32, data))?;
        }
        Ok(())
    }

    /// Writes the capture as pcapng (one Ethernet interface).
    pub(crate) fn write_pcapng(&self, path: &Path) -> Res<()> {
        use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
        use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
        let mut w = pcap_file::pcapng::PcapNgWriter::new(BufWriter::new(File::create(path)?))?;
        w.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 65_535,
            // pcap-file writes nanosecond timestamps: say so, as readers default to micro.
            options: vec![pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption::IfTsResol(9)],
        })?;
        for (ts, data) in &self.packets {
            w.write_pcapng_block(EnhancedPacketBlock {
                interface_id: 0,
                timestamp: *ts,
                original_len: data.len() as u32,
                data: std::borrow::Cow::Borrowed(data),
                options: Vec::new(),
            })?;
        }
        Ok(())
    }
}

fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private(),
        IpAddr::V6(v6) => {
            v6.segments()[0] == 0x2001 && v6.segments()[1] == 0x0db8 && v6.segments()[2] == 0
        }
    }
}

/// A DNS exchange over UDP between `client` and the gateway resolver.
pub(crate) fn dns_udp(
    cap: &mut Capture,
    client: SocketAddr,
    id: u16,
    name: &str,
    qtype: RecordType,
    addrs: &[IpAddr],
) -> Res<()> {
    let resolver = SocketAddr::new(
        if client.is_ipv4() {
            IpAddr::V4(GATEWAY)
        } else {
            "2001:db8::1".parse()?
        },
        53,
    );
    cap.udp(client, resolver, &dns_query(id, name, qtype)?);
    cap.udp(
        resolver,
        client,
        &dns_answer(id, &[name], qtype, addrs, false)?,
    );
    Ok(())
}

/// A TCP connection: handshake, the client's first flight cut at `cuts` and sent in
/// `order`, the server's reply and `bulk` full-size download segments, then FIN.
pub(crate) struct Tcp<'a> {
    pub(crate) client: SocketAddr,
    pub(crate) server: SocketAddr,
    pub(crate) flight: &'a [u8],
    pub(crate) cuts: &'a [usize],
    pub(crate) order: Option<&'a [usize]>,
    pub(crate) bulk: usize,
}

pub(crate) fn tcp_conn(cap: &mut Capture, c: Tcp<'_>) {
    let (cisn, sisn) = (1_000_000u32 + u32::from(c.client.port()), 7_000_000u32);
    cap.tcp(c.client, c.server, cisn, 0, "S", &[]);
    cap.tcp(c.server, c.client, sisn, cisn + 1, "SA", &[]);
    cap.tcp(c.client, c.server, cisn + 1, sisn + 1, "A", &[]);
    let mut segs = Vec::new();
    let mut start = 0;
    for &cut in c.cuts.iter().chain(std::iter::once(&c.flight.len())) {
        segs.push((start, &c.flight[start..cut]));
        start = cut;
    }
    let order: Vec<usize> = c
        .order
        .map_or_else(|| (0..segs.len()).collect(), |o| o.to_vec());
    for i in order {
        let (off, data) = segs[i];
        cap.tcp(
            c.client,
            c.server,
            cisn + 1 + off as u32,
            sisn + 1,
            "AP",
            data,
        );
    }
    let cend = cisn + 1 + c.flight.len() as u32;
    // Server hello-ish reply: a handshake record that is not a ClientHello, then data.
    let reply = [22u8, 3, 3, 0, 4, 2, 0, 0, 0];
    cap.tcp(c.server, c.client, sisn + 1, cend, "AP", &reply);
    let mut sseq = sisn + 1 + reply.len() as u32;
    let bulk = vec![0x17u8; 1448];
    for i in 0..c.bulk {
        cap.tcp(c.server, c.client, sseq, cend, "A", &bulk);
        sseq += bulk.len() as u32;
        if i % 2 == 1 {
            cap.tcp(c.client, c.server, cend, sseq, "A", &[]);
        }
    }
    cap.tcp(c.client, c.server, cend, sseq, "AF", &[]);
    cap.tcp(c.server, c.client, sseq, cend + 1, "AF", &[]);
}

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("ip"), port)
}

fn v4(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn rfc_hex(dir: &Path, name: &str) -> Res<Vec<u8>> {
    let text: String = std::fs::read_to_string(dir.join("quic").join(name))?
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect();
    Ok((0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16))
        .collect::<Result<_, _>>()?)
}

/// Writes every fixture into `fixtures` (which must hold `quic/*.hex`) and the sample
/// into `samples`.
pub(crate) fn write_all(fixtures: &Path, samples: &Path) -> Res<()> {
    let c = |port| SocketAddr::new(IpAddr::V4(CLIENT), port);

    // 1. One segment, with DNS first.
    let mut cap = Capture::new(Link::Ethernet, 0);
    dns_udp(
        &mut cap,
        c(40001),
        0x1001,
        "claude.ai",
        RecordType::A,
        &[v4("160.79.104.10")],
    )?;
    let ch = rustls_client_hello("claude.ai", false)?;
    tcp_conn(
        &mut cap,
        Tcp {
            client: c(50001),
            server: sa("160.79.104.10", 443),
            flight: &ch,
            cuts: &[],
            order: None,
            bulk: 4,
        },
    );
    cap.write(&fixtures.join("tls_rustls_single.pcap"))?;
    cap.write_pcapng(&fixtures.join("tls_rustls_single.pcapng"))?;

    // 2. Split in two, the SNI wholly in the second segment.
    let ch = rustls_client_hello("chatgpt.com", false)?;
    let sni_at = ch
        .windows(11)
        .position(|w| w == b"chatgpt.com")
        .ok_or("sni not found")?;
    let mut cap = Capture::new(Link::Ethernet, 60);
    dns_udp(
        &mut cap,
        c(40002),
        0x1002,
        "chatgpt.com",
        RecordType::A,
        &[v4("104.18.32.47")],
    )?;
    tcp_conn(
        &mut cap,
        Tcp {
            client: c(50002),
            server: sa("104.18.32.47", 443),
            flight: &ch,
            cuts: &[sni_at - 9],
            order: None,
            bulk: 2,
        },
    );
    cap.write(&fixtures.join("tls_split_sni_second.pcap"))?;

    // 3. Three segments sent 2, 3, 1, plus a retransmission of segment 2.
    let ch = rustls_client_hello("gemini.google.com", false)?;
    let mut cap = Capture::new(Link::Ethernet, 120);
    dns_udp(
        &mut cap,
        c(40003),
        0x1003,
        "gemini.google.com",
        RecordType::A,
        &[v4("142.250.72.110")],
    )?;
    let third = ch.len() / 3;
    tcp_conn(
        &mut cap,
        Tcp {
            client: c(50003),
            server: sa("142.250.72.110", 443),
            flight: &ch,
            cuts: &[third, 2 * third],
            order: Some(&[1, 2, 1, 0]),
            bulk: 2,
        },
    );
    cap.write(&fixtures.join("tls_out_of_order.pcap"))?;

    // 4. One byte per segment, no DNS.
    let ch = rustls_client_hello("api.openai.com", false)?;
    let cuts: Vec<usize> = (1..ch.len()).collect();
    let mut cap = Capture::new(Link::Ethernet, 180);
    tcp_conn(
        &mut cap,
        Tcp {
            client: c(50004),
            server: sa("162.159.140.245", 443),
            flight: &ch,
            cuts: &cuts,
            order: None,
            bulk: 1,
        },
    );
    cap.write(&fixtures.join("tls_one_byte_segments.pcap"))?;

    // 5. The handshake message split across several TLS records.
    let ch = reframe(&rustls_client_hello("www.perplexity.ai", false)?, 500);
    let mut cap = Capture::new(Link::Ethernet, 240);
    dns_udp(
        &mut cap,
        c(40005),
        0x1005,
        "www.perplexity.ai",
        RecordType::A,
        &[v4("104.18.26.48")],
    )?;
    tcp_conn(
        &mut cap,
        Tcp {
            client: c(50005),
            server: sa("104.18.26.48", 443),
            flight: &ch,
            cuts: &[700],
            order: None,
            bulk: 1,
        },
    );
    cap.write(&fixtures.join("tls_multi_record.pcap"))?;

    // 6. ECH GREASE: a real encrypted_client_hello extension.
    let ch = rustls_client_hello("claude.ai", true)?;
    let mut cap = Capture::new(Link::Ethernet, 300);
    dns_udp(
        &mut cap,
        c(40006),
        0x1006,
        "claude.ai",
        RecordType::A,
        &[v4("160.79.104.10")],
    )?;
    tcp_conn(
        &mut cap,
        Tcp {
            client: c(50006),
            server: sa("160.79.104.10", 443),
            flight: &ch,
            cuts: &[],
            order: None,
            bulk: 1,
        },
    );
    cap.write(&fixtures.join("tls_ech_grease.pcap"))?;

    // 7, 8. quinn Initials for chatgpt.com: in order, and reversed.
    let server = sa("104.18.32.47", 443);
    let initials = quinn_initials("chatgpt.com", server)?;
    for (name, reverse) in [
        ("quic_v1_chatgpt.pcap", false),
        ("quic_two_initials_reversed.pcap", true),
    ] {
        let mut cap = Capture::new(Link::Ethernet, 360);
        dns_udp(
            &mut cap,
            c(40007),
            0x1007,
            "chatgpt.com",
            RecordType::A,
            &[server.ip()],
        )?;
        let mut ds = initials.clone();
        if reverse {
            ds.reverse();
        }
        for d in &ds {
            cap.udp(c(50007), server, d);
        }
        cap.write(&fixtures.join(name))?;
    }

    // 9. RFC 9001 / RFC 9369 Appendix A client Initials (example.com), v1 and v2.
    let mut cap = Capture::new(Link::Ethernet, 420);
    cap.udp(
        c(50008),
        sa("192.0.2.80", 443),
        &rfc_hex(fixtures, "rfc9001_a2_client_initial.hex")?,
    );
    cap.udp(
        c(50009),
        sa("192.0.2.80", 443),
        &rfc_hex(fixtures, "rfc9369_a2_client_initial.hex")?,
    );
    cap.write(&fixtures.join("quic_rfc_v1_v2.pcap"))?;

    // 10. DNS over UDP: A, AAAA, a CNAME chain, HTTPS with ech.
    let mut cap = Capture::new(Link::Ethernet, 480);
    let r = sa("10.0.0.1", 53);
    cap.udp(
        c(40010),
        r,
        &dns_query(0x2001, "chat.openai.com", RecordType::A)?,
    );
    cap.udp(
        r,
        c(40010),
        &dns_answer(
            0x2001,
            &["chat.openai.com", "chatgpt.com"],
            RecordType::A,
            &[v4("104.18.32.47")],
            false,
        )?,
    );
    cap.udp(
        c(40011),
        r,
        &dns_query(0x2002, "claude.ai", RecordType::HTTPS)?,
    );
    cap.udp(
        r,
        c(40011),
        &dns_answer(0x2002, &["claude.ai"], RecordType::HTTPS, &[], true)?,
    );
    cap.udp(
        c(40012),
        r,
        &dns_query(0x2003, "gemini.google.com", RecordType::AAAA)?,
    );
    cap.udp(
        r,
        c(40012),
        &dns_answer(
            0x2003,
            &["gemini.google.com"],
            RecordType::AAAA,
            &["2607:f8b0:4005:80c::200e".parse()?],
            false,
        )?,
    );
    cap.write(&fixtures.join("dns_udp.pcap"))?;

    // 11. DNS over TCP, query and answer each split (the query inside its length prefix).
    let mut cap = Capture::new(Link::Ethernet, 540);
    let q = dns_query(0x3001, "gemini.google.com", RecordType::A)?;
    let a = dns_answer(
        0x3001,
        &["gemini.google.com"],
        RecordType::A,
        &[v4("142.250.72.110")],
        false,
    )?;
    let (cl, sv) = (c(40020), r);
    let mut qf = (q.len() as u16).to_be_bytes().to_vec();
    qf.extend_from_slice(&q);
    let mut af = (a.len() as u16).to_be_bytes().to_vec();
    af.extend_from_slice(&a);
    cap.tcp(cl, sv, 100, 0, "S", &[]);
    cap.tcp(sv, cl, 900, 101, "SA", &[]);
    cap.tcp(cl, sv, 101, 901, "A", &[]);
    cap.tcp(cl, sv, 101, 901, "AP", &qf[..1]);
    cap.tcp(cl, sv, 102, 901, "AP", &qf[1..]);
    cap.tcp(sv, cl, 901, 101 + qf.len() as u32, "AP", &af[..20]);
    cap.tcp(sv, cl, 921, 101 + qf.len() as u32, "AP", &af[20..]);
    cap.write(&fixtures.join("dns_tcp_split.pcap"))?;

    // 12. Link layers: VLAN, QinQ, Linux cooked v1 and v2, raw IP, IPv6.
    let ch = rustls_client_hello("claude.ai", false)?;
    for (name, link) in [
        ("vlan.pcap", Link::Vlan(42)),
        ("qinq.pcap", Link::QinQ(100, 200)),
        ("linux_sll.pcap", Link::Sll),
        ("linux_sll2.pcap", Link::Sll2),
        ("raw_ip.pcap", Link::Raw),
    ] {
        let mut cap = Capture::new(link, 600);
        dns_udp(
            &mut cap,
            c(40030),
            0x4001,
            "claude.ai",
            RecordType::A,
            &[v4("160.79.104.10")],
        )?;
        tcp_conn(
            &mut cap,
            Tcp {
                client: c(50030),
                server: sa("160.79.104.10", 443),
                flight: &ch,
                cuts: &[600],
                order: None,
                bulk: 1,
            },
        );
        cap.write(&fixtures.join(name))?;
    }
    let c6 = SocketAddr::new(
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x23)),
        50040,
    );
    let s6 = sa("2607:6bc0::10", 443);
    let mut cap = Capture::new(Link::Ethernet, 660);
    dns_udp(
        &mut cap,
        SocketAddr::new(c6.ip(), 40040),
        0x5001,
        "claude.ai",
        RecordType::AAAA,
        &[s6.ip()],
    )?;
    tcp_conn(
        &mut cap,
        Tcp {
            client: c6,
            server: s6,
            flight: &ch,
            cuts: &[800],
            order: None,
            bulk: 1,
        },
    );
    cap.write(&fixtures.join("ipv6.pcap"))?;

    // 13. Lookalikes: none is AI.
    let mut cap = Capture::new(Link::Ethernet, 720);
    for (i, host) in [
        "notchatgpt.com",
        "chatgpt.com.example.net",
        "gemini.com",
        "docs.google.com",
        "mail.google.com",
        "americanphilanthropic.com",
    ]
    .iter()
    .enumerate()
    {
        let i = i as u16;
        dns_udp(
            &mut cap,
            c(40050 + i),
            0x6000 + i,
            host,
            RecordType::A,
            &[v4("198.51.100.10")],
        )?;
        let ch = rustls_client_hello(host, false)?;
        tcp_conn(
            &mut cap,
            Tcp {
                client: c(50050 + i),
                server: sa("198.51.100.10", 443),
                flight: &ch,
                cuts: &[],
                order: None,
                bulk: 0,
            },
        );
    }
    cap.write(&fixtures.join("lookalikes.pcap"))?;

    // 14. Malformed frames, then one valid query: capture must go on.
    let mut cap = Capture::new(Link::Ethernet, 780);
    let mut good = Capture::new(Link::Ethernet, 780);
    good.udp(c(40060), r, &dns_query(0x7001, "claude.ai", RecordType::A)?);
    let frame = good.packets[0].1.clone();
    cap.raw(Vec::new());
    cap.raw(frame[..10].to_vec());
    cap.raw(frame[..30].to_vec());
    let mut bad_ihl = frame.clone();
    bad_ihl[14] = 0x4f;
    cap.raw(bad_ihl);
    let mut ch_frame = Capture::new(Link::Ethernet, 780);
    let mut bad_ch = rustls_client_hello("claude.ai", false)?;
    let at = bad_ch
        .windows(9)
        .position(|w| w == b"claude.ai")
        .ok_or("sni")?;
    bad_ch[at - 2] = 0xff; // SNI name length beyond the extension
    ch_frame.tcp(c(50061), sa("160.79.104.10", 443), 5, 1, "AP", &bad_ch);
    let mut bad_off = ch_frame.packets[0].1.clone();
    cap.raw(ch_frame.packets[0].1.clone());
    bad_off[14 + 20 + 12] = 0xf0; // TCP data offset 60 bytes
    cap.raw(bad_off);
    cap.udp(c(40062), sa("192.0.2.80", 443), &[0xc3; 1300]);
    cap.udp(c(40063), r, &[0x55; 40]);
    cap.raw(frame);
    cap.write(&fixtures.join("malformed.pcap"))?;

    ech::write_ech(fixtures)?;
    paths::write_paths(fixtures)?;
    slow::write_slow(fixtures)?;

    encap::write_encap(fixtures)?;
    sample::write_sample(&samples.join("clinic-morning.pcap"))?;
    Ok(())
}
