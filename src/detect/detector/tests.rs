//! The detector on built frames: reassembly, every observation kind, bounds.
use super::*;
use crate::detect::dns::tests::query;
use crate::detect::tls::tests::{client_hello_message, records};
use etherparse::PacketBuilder;

const CLIENT: [u8; 4] = [10, 0, 0, 23];
const SERVER: [u8; 4] = [198, 51, 100, 7];

fn tcp(seq: u32, syn: bool, payload: &[u8]) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0x23], [2, 0, 0, 0, 0, 1])
        .ipv4(CLIENT, SERVER, 64)
        .tcp(51000, 443, seq, 64240);
    if syn {
        b = b.syn();
    } else {
        b = b.ack(1);
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("write");
    out
}

fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0x23], [2, 0, 0, 0, 0, 1])
        .ipv4(src, dst, 64)
        .udp(sport, dport);
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("write");
    out
}

fn run(frames: &[Vec<u8>]) -> (Vec<Observation>, Detector) {
    let mut d = Detector::new(DetectorConfig::default());
    let mut out = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        out.extend(d.process(
            Timestamp::from_micros(1_000 * i as i64),
            LinkType::Ethernet,
            f,
        ));
    }
    (out, d)
}

pub(super) fn hosts(obs: &[Observation]) -> Vec<(Proto, String)> {
    obs.iter()
        .map(|o| {
            (
                o.proto,
                o.host.as_ref().map_or("-".into(), ToString::to_string),
            )
        })
        .collect()
}

fn segments(stream: &[u8], cuts: &[usize], isn: u32) -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut start = 0;
    for &c in cuts.iter().chain(std::iter::once(&stream.len())) {
        out.push((isn + 1 + start as u32, stream[start..c].to_vec()));
        start = c;
    }
    out
}

#[test]
fn client_hello_in_order_out_of_order_and_one_byte() {
    let stream = records(&client_hello_message("chatgpt.com", false), 16_384);
    let isn = 1_000;
    let segs = segments(&stream, &[20, 60], isn);
    let mut in_order = vec![tcp(isn, true, &[])];
    in_order.extend(segs.iter().map(|(s, p)| tcp(*s, false, p)));
    let (obs, _) = run(&in_order);
    assert_eq!(hosts(&obs), vec![(Proto::Tls, "chatgpt.com".into())]);
    assert!(obs[0].unresolved);
    assert_eq!(obs[0].client, "10.0.0.23:51000".parse().expect("addr"));

    let mut reversed = vec![tcp(isn, true, &[])];
    reversed.extend(segs.iter().rev().map(|(s, p)| tcp(*s, false, p)));
    // A retransmission after completion must not report twice.
    reversed.push(tcp(segs[0].0, false, &segs[0].1));
    assert_eq!(
        hosts(&run(&reversed).0),
        vec![(Proto::Tls, "chatgpt.com".into())]
    );

    // One byte per segment and no SYN in the capture.
    let ones: Vec<_> = stream
        .iter()
        .enumerate()
        .map(|(i, b)| tcp(isn + 1 + i as u32, false, &[*b]))
        .collect();
    assert_eq!(
        hosts(&run(&ones).0),
        vec![(Proto::Tls, "chatgpt.com".into())]
    );
}

#[test]
fn dns_answer_explains_later_connection() {
    let mut m = hickory_proto::op::Message::new(
        5,
        hickory_proto::op::MessageType::Response,
        hickory_proto::op::OpCode::Query,
    );
    let name = hickory_proto::rr::Name::from_ascii("claude.ai.").expect("name");
    m.add_query(hickory_proto::op::Query::query(
        name.clone(),
        hickory_proto::rr::RecordType::A,
    ));
    m.add_answer(hickory_proto::rr::Record::from_rdata(
        name,
        60,
        hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A::from(std::net::Ipv4Addr::from(
            SERVER,
        ))),
    ));
    let answer = m.to_vec().expect("encode");
    let stream = records(&client_hello_message("claude.ai", false), 16_384);
    let frames = vec![
        udp(CLIENT, 40000, [10, 0, 0, 1], 53, &query("claude.ai", 5)),
        udp([10, 0, 0, 1], 53, CLIENT, 40000, &answer),
        tcp(7, false, &stream),
    ];
    let (obs, d) = run(&frames);
    assert_eq!(
        hosts(&obs),
        vec![
            (Proto::Dns, "claude.ai".into()),
            (Proto::Tls, "claude.ai".into())
        ]
    );
    assert!(!obs[1].unresolved);
    assert_eq!(d.stats().get("dns_query"), 1);
    assert_eq!(d.stats().get("dns_response"), 1);
}

#[test]
fn other_traffic_is_ignored_and_state_stays_bounded() {
    let cfg = DetectorConfig {
        max_tcp_flows: 1_000,
        ..DetectorConfig::default()
    };
    let mut d = Detector::new(cfg);
    let mut frame = tcp(1, true, &[]);
    // A million distinct flows, each a SYN: the table never exceeds its cap.
    for i in 0..1_000_000u32 {
        let port = (i % 60_000) as u16 + 1024;
        let host = (i / 60_000) as u8;
        frame[29] = host; // source IP last byte
        frame[34..36].copy_from_slice(&port.to_be_bytes());
        d.process(
            Timestamp::from_micros(i64::from(i)),
            LinkType::Ethernet,
            &frame,
        );
        assert!(d.tcp_flows() <= 1_000);
    }
    assert!(d.stats().get("tcp_flow_evicted") > 0);
    let bulk = tcp(5, false, &[0x17, 3, 3, 0, 10, 1, 2, 3]);
    assert!(d
        .process(Timestamp::from_micros(1), LinkType::Ethernet, &bulk)
        .is_empty());
}

#[test]
fn an_answer_without_its_query_is_reported_with_the_answers() {
    let mut m = hickory_proto::op::Message::new(
        8,
        hickory_proto::op::MessageType::Response,
        hickory_proto::op::OpCode::Query,
    );
    let q = hickory_proto::rr::Name::from_ascii("chat.openai.com.").expect("name");
    let c = hickory_proto::rr::Name::from_ascii("chatgpt.com.").expect("name");
    m.add_query(hickory_proto::op::Query::query(
        q.clone(),
        hickory_proto::rr::RecordType::A,
    ));
    m.add_answer(hickory_proto::rr::Record::from_rdata(
        q,
        60,
        hickory_proto::rr::RData::CNAME(hickory_proto::rr::rdata::CNAME(c.clone())),
    ));
    m.add_answer(hickory_proto::rr::Record::from_rdata(
        c,
        60,
        hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A::new(104, 18, 32, 47)),
    ));
    let a = m.to_vec().expect("encode");
    let (obs, _) = run(&[udp([10, 0, 0, 1], 53, CLIENT, 40000, &a)]);
    assert_eq!(obs.len(), 1);
    assert_eq!(
        obs[0].host.as_ref().map(|h| h.as_str()),
        Some("chat.openai.com")
    );
    assert_eq!(obs[0].client, "10.0.0.23:40000".parse().expect("addr"));
    assert_eq!(obs[0].answers, vec!["chatgpt.com", "104.18.32.47"]);
}

#[test]
fn dns_answer_map_is_capped() {
    let cfg = DetectorConfig {
        max_resolved: 100,
        max_pending_queries: 50,
        ..DetectorConfig::default()
    };
    let mut d = Detector::new(cfg);
    for i in 0..10_000u32 {
        let name = hickory_proto::rr::Name::from_ascii(format!("h{i}.example.")).expect("name");
        let mut m = hickory_proto::op::Message::new(
            i as u16,
            hickory_proto::op::MessageType::Response,
            hickory_proto::op::OpCode::Query,
        );
        m.add_query(hickory_proto::op::Query::query(
            name.clone(),
            hickory_proto::rr::RecordType::A,
        ));
        m.add_answer(hickory_proto::rr::Record::from_rdata(
            name,
            60,
            hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A::from(
                std::net::Ipv4Addr::from(0x0a00_0000 + i),
            )),
        ));
        let q = query(&format!("h{i}.example"), i as u16);
        let ts = Timestamp::from_micros(i64::from(i));
        d.process(
            ts,
            LinkType::Ethernet,
            &udp(CLIENT, 40000, [10, 0, 0, 1], 53, &q),
        );
        let a = m.to_vec().expect("encode");
        d.process(
            ts,
            LinkType::Ethernet,
            &udp([10, 0, 0, 1], 53, CLIENT, 40000, &a),
        );
        assert!(d.resolved_len() <= 100);
    }
    assert_eq!(d.resolved_len(), 100);
}

#[test]
fn malformed_frames_never_stop_detection() {
    let good = udp(CLIENT, 40000, [10, 0, 0, 1], 53, &query("claude.ai", 9));
    let mut frames: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
    frames.push(udp(CLIENT, 40001, [10, 0, 0, 1], 53, &[0xff; 40]));
    frames.push(good.clone());
    let (obs, d) = run(&frames);
    assert_eq!(hosts(&obs), vec![(Proto::Dns, "claude.ai".into())]);
    assert!(d.stats().skipped.values().sum::<u64>() > 0);
    assert!(d.stats().get("dns_malformed") > 0);
}

/// A TCP frame between any two endpoints (IPv4 or IPv6), from `mac` (to the gateway's
/// MAC 0x01, or from a server through the gateway to the client 0x23).
pub(super) fn seg(src: &str, dst: &str, mac: u8, seq: u32, flags: &str, payload: &[u8]) -> Vec<u8> {
    let (s, d): (SocketAddr, SocketAddr) = (src.parse().expect("src"), dst.parse().expect("dst"));
    let to = if mac == 0x01 { 0x23 } else { 0x01 };
    let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, mac], [2, 0, 0, 0, 0, to]);
    let ip = match (s.ip(), d.ip()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => eth.ipv4(a.octets(), b.octets(), 64),
        (IpAddr::V6(a), IpAddr::V6(b)) => eth.ipv6(a.octets(), b.octets(), 64),
        _ => panic!("mixed families"),
    };
    let mut b = ip.tcp(s.port(), d.port(), seq, 64_240);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(1);
    }
    if flags.contains('R') {
        b = b.rst();
    }
    if flags.contains('F') {
        b = b.fin();
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("write");
    out
}

/// A UDP frame from `mac`; a frame from the gateway (`mac` 0x01) goes to the client 0x23.
pub(super) fn dgram(src: &str, dst: &str, mac: u8, payload: &[u8]) -> Vec<u8> {
    let (s, d): (SocketAddr, SocketAddr) = (src.parse().expect("src"), dst.parse().expect("dst"));
    let to = if mac == 0x01 { 0x23 } else { 0x01 };
    let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, mac], [2, 0, 0, 0, 0, to]);
    let ip = match (s.ip(), d.ip()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => eth.ipv4(a.octets(), b.octets(), 64),
        (IpAddr::V6(a), IpAddr::V6(b)) => eth.ipv6(a.octets(), b.octets(), 64),
        _ => panic!("mixed families"),
    };
    let mut out = Vec::new();
    ip.udp(s.port(), d.port())
        .write(&mut out, payload)
        .expect("write");
    out
}

/// An answer to `name` with `addrs` (A and AAAA records).
pub(super) fn answer(name: &str, id: u16, addrs: &[&str]) -> Vec<u8> {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{rdata, Name, RData, Record, RecordType};
    let mut m = Message::new(id, MessageType::Response, OpCode::Query);
    let n = Name::from_ascii(format!("{name}.")).expect("name");
    m.add_query(Query::query(n.clone(), RecordType::A));
    for a in addrs {
        let rd = match a.parse::<IpAddr>().expect("addr") {
            IpAddr::V4(v4) => RData::A(rdata::A(v4)),
            IpAddr::V6(v6) => RData::AAAA(rdata::AAAA(v6)),
        };
        m.add_answer(Record::from_rdata(n.clone(), 60, rd));
    }
    m.to_vec().expect("encode")
}

fn feed(frames: &[Vec<u8>]) -> Vec<Observation> {
    run(frames).0
}

#[test]
fn tls_on_any_port_is_followed_from_its_syn() {
    let hello = records(&client_hello_message("claude.ai", false), 16_384);
    let c = "10.0.0.23:50100";
    let s = "203.0.113.5:4443";
    let obs = feed(&[
        seg(c, s, 0x23, 99, "S", &[]),
        seg(c, s, 0x23, 100, "A", &hello),
    ]);
    assert_eq!(hosts(&obs), vec![(Proto::Tls, "claude.ai".into())]);
    assert_eq!(obs[0].server.port(), 4443);
    assert!(obs[0].unresolved);
    assert_eq!(obs[0].client_mac, Some(Mac([2, 0, 0, 0, 0, 0x23])));
}

#[test]
fn plain_http_and_a_connect_tunnel_name_their_hosts() {
    let c = "10.0.0.23:50200";
    let get = b"GET /some/path?q=1 HTTP/1.1\r\nHost: ChatGPT.com:8080\r\nUser-Agent: x\r\n\r\n";
    let obs = feed(&[
        seg(c, "203.0.113.7:8080", 0x23, 9, "S", &[]),
        seg(c, "203.0.113.7:8080", 0x23, 10, "A", &get[..20]),
        seg(c, "203.0.113.7:8080", 0x23, 30, "A", &get[20..]),
    ]);
    assert_eq!(hosts(&obs), vec![(Proto::Http, "chatgpt.com".into())]);
    // CONNECT through a proxy on 3128, then the ClientHello inside the tunnel.
    let proxy = "10.0.0.1:3128";
    let head = b"CONNECT claude.ai:443 HTTP/1.1\r\nHost: claude.ai:443\r\n\r\n";
    let hello = records(&client_hello_message("claude.ai", false), 16_384);
    let c = "10.0.0.23:50201";
    let obs = feed(&[
        seg(c, proxy, 0x23, 0, "S", &[]),
        seg(c, proxy, 0x23, 1, "A", head),
        seg(c, proxy, 0x23, 1 + head.len() as u32, "A", &hello),
    ]);
    assert_eq!(
        hosts(&obs),
        vec![
            (Proto::Connect, "claude.ai".into()),
            (Proto::Tls, "claude.ai".into())
        ]
    );
    assert!(
        obs.iter().all(|o| !o.unresolved),
        "a proxy's client resolves nothing"
    );
}

#[test]
fn a_connection_that_names_nothing_is_a_nameless_observation() {
    // DNS over TLS to a literal address, refused: SYN, then the server's RST.
    let c = "10.0.0.23:50300";
    let s = "203.0.113.53:853";
    let obs = feed(&[seg(c, s, 0x23, 0, "S", &[]), seg(s, c, 0x01, 0, "RA", &[])]);
    assert_eq!(hosts(&obs), vec![(Proto::Tcp, "-".into())]);
    assert_eq!(obs[0].server.port(), 853);
    // SSH: a protocol aiwarden does not read.
    let obs = feed(&[
        seg(c, "203.0.113.9:22", 0x23, 0, "S", &[]),
        seg(
            c,
            "203.0.113.9:22",
            0x23,
            1,
            "A",
            b"SSH-2.0-OpenSSH_9.2\r\n",
        ),
    ]);
    assert_eq!(hosts(&obs), vec![(Proto::Tcp, "-".into())]);
    // A SYN that is never answered: reported once the connection has been silent for
    // `flow_timeout_micros`.
    let mut d = Detector::new(DetectorConfig::default());
    assert!(d
        .process(
            Timestamp::from_micros(0),
            LinkType::Ethernet,
            &seg(c, s, 0x23, 0, "S", &[])
        )
        .is_empty());
    let later = dgram("10.0.0.23:40000", "10.0.0.1:9", 0x23, b"x");
    let obs = d.process(
        Timestamp::from_micros(6_000_000),
        LinkType::Ethernet,
        &later,
    );
    assert_eq!(hosts(&obs), vec![(Proto::Tcp, "-".into())]);
    assert_eq!(
        obs[0].ts,
        Timestamp::from_micros(0),
        "dated when the connection began"
    );
    assert_eq!(d.stats().get("tcp_silent_timed_out"), 1);
}

#[test]
fn a_client_hello_without_sni_is_reported() {
    let mut msg = client_hello_message("x.example", false);
    // Rebuild without the SNI extension: a rustls client given an IP address sends none.
    let sni_len = 4 + 2 + 3 + "x.example".len();
    let ext_start = msg.len() - (sni_len + 4 + 2 + b"\x02h2\x08http/1.1".len());
    msg.drain(ext_start..ext_start + sni_len);
    let body_len = (msg.len() - 4) as u32;
    msg[1..4].copy_from_slice(&body_len.to_be_bytes()[1..]);
    let exts_len = (msg.len() - ext_start) as u16;
    msg[ext_start - 2..ext_start].copy_from_slice(&exts_len.to_be_bytes());
    assert_eq!(tls::parse_client_hello(&msg).map(|c| c.sni), Some(None));
    let c = "10.0.0.23:50400";
    let s = "8.8.8.8:443";
    let (obs, d) = run(&[
        seg(c, s, 0x23, 0, "S", &[]),
        seg(c, s, 0x23, 1, "A", &records(&msg, 16_384)),
    ]);
    assert_eq!(hosts(&obs), vec![(Proto::Tls, "-".into())]);
    assert!(obs[0].unresolved);
    assert_eq!(d.stats().get("client_hello_without_sni"), 1);
}

#[test]
fn a_dual_stack_device_is_explained_by_its_ipv4_lookup() {
    // The device asks over IPv4 and gets A and AAAA answers; it then connects over an IPv6
    // privacy address the DNS exchange never used. Same MAC: the answer explains it.
    let hello = records(&client_hello_message("claude.ai", false), 16_384);
    let v6 = "[2001:db8::a1]:50500";
    let frames = [
        dgram(
            "10.0.0.23:40000",
            "10.0.0.1:53",
            0x23,
            &query("claude.ai", 7),
        ),
        dgram(
            "10.0.0.1:53",
            "10.0.0.23:40000",
            0x01,
            &answer("claude.ai", 7, &["160.79.104.10", "2607:6bc0::10"]),
        ),
        seg(v6, "[2607:6bc0::10]:443", 0x23, 0, "S", &[]),
        seg(v6, "[2607:6bc0::10]:443", 0x23, 1, "A", &hello),
        // A hard-coded IPv6 address nobody resolved.
        seg(
            "[2001:db8::a1]:50501",
            "[2607:6bc0::99]:443",
            0x23,
            0,
            "S",
            &[],
        ),
        seg(
            "[2001:db8::a1]:50501",
            "[2607:6bc0::99]:443",
            0x23,
            1,
            "A",
            &hello,
        ),
        // Another device on the segment using the same IPv6 server address: not explained.
        seg(
            "[2001:db8::b2]:50502",
            "[2607:6bc0::10]:443",
            0x24,
            0,
            "S",
            &[],
        ),
        seg(
            "[2001:db8::b2]:50502",
            "[2607:6bc0::10]:443",
            0x24,
            1,
            "A",
            &hello,
        ),
    ];
    let obs = feed(&frames);
    let tls: Vec<(&str, bool)> = obs
        .iter()
        .filter(|o| o.proto == Proto::Tls)
        .map(|o| {
            (
                if o.client.port() == 50500 {
                    "lookup"
                } else if o.client.port() == 50501 {
                    "literal"
                } else {
                    "other"
                },
                o.unresolved,
            )
        })
        .collect();
    assert_eq!(
        tls,
        vec![("lookup", false), ("literal", true), ("other", true)]
    );
    assert!(obs
        .iter()
        .filter(|o| o.client.ip().is_ipv6() && o.client.port() != 50502)
        .all(|o| o.client_mac == Some(Mac([2, 0, 0, 0, 0, 0x23]))));
}

#[test]
fn real_ech_names_the_host_the_device_asked_for() {
    let server = "104.18.32.47:443";
    let ech_hello = |sni: &str| {
        let mut m = client_hello_message(sni, true);
        m.truncate(m.len());
        records(&m, 16_384)
    };
    let frames = [
        dgram(
            "10.0.0.23:40000",
            "10.0.0.1:53",
            0x23,
            &query("chatgpt.com", 9),
        ),
        dgram(
            "10.0.0.1:53",
            "10.0.0.23:40000",
            0x01,
            &answer("chatgpt.com", 9, &["104.18.32.47"]),
        ),
        // Real ECH: the outer SNI is a public name the device never looked up.
        seg("10.0.0.23:50600", server, 0x23, 0, "S", &[]),
        seg(
            "10.0.0.23:50600",
            server,
            0x23,
            1,
            "A",
            &ech_hello("cloudflare-ech.com"),
        ),
        // GREASE: the real name in the SNI.
        seg("10.0.0.23:50601", server, 0x23, 0, "S", &[]),
        seg(
            "10.0.0.23:50601",
            server,
            0x23,
            1,
            "A",
            &ech_hello("chatgpt.com"),
        ),
    ];
    let obs: Vec<Observation> = feed(&frames)
        .into_iter()
        .filter(|o| o.proto == Proto::Tls)
        .collect();
    assert_eq!(obs.len(), 2);
    assert!(obs[0].ech_offered && obs[1].ech_offered);
    assert_eq!(
        obs[0].asked.as_ref().map(|h| h.as_str()),
        Some("chatgpt.com")
    );
    assert_eq!(obs[1].asked, None, "GREASE hides nothing");
}
