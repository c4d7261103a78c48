//! The sequence numbers an observation carries for a sensor's resets ([`TcpSeen`]): from
//! the client's segment that completed the first flight, whatever order the flight came
//! in, with the frame's Ethernet addresses and VLAN.

use etherparse::{PacketBuilder, VlanId};

use super::super::tests::{hosts, seg};
use super::later;
use crate::detect::tls::tests::{client_hello_message, records};
use crate::detect::{
    Detector, DetectorConfig, LinkSeen, LinkType, Mac, Observation, Proto, TcpSeen, Timestamp,
};

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x23];
const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x01];
const ISN: u32 = 4_294_967_000; // the flight wraps around zero
const SERVER_NEXT: u32 = 777_000;

/// A client segment to 203.0.113.5:443, tagged with `vlan` when given.
fn client(seq: u32, syn: bool, vlan: Option<u16>, payload: &[u8]) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(CLIENT_MAC, ROUTER_MAC);
    let ip = match vlan {
        Some(v) => eth.single_vlan(VlanId::try_new(v).expect("vlan")).ipv4(
            [10, 0, 0, 23],
            [203, 0, 113, 5],
            64,
        ),
        None => eth.ipv4([10, 0, 0, 23], [203, 0, 113, 5], 64),
    };
    let mut b = ip.tcp(50800, 443, seq, 501);
    b = if syn { b.syn() } else { b.ack(SERVER_NEXT) };
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("write");
    out
}

fn run(link: LinkType, frames: &[Vec<u8>]) -> Vec<Observation> {
    let mut d = Detector::new(DetectorConfig::default());
    let mut out = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        out.extend(d.process(Timestamp::from_micros(i as i64), link, f));
    }
    out
}

fn hello() -> Vec<u8> {
    records(&client_hello_message("chatgpt.com", false), 16_384)
}

#[test]
fn a_client_hello_carries_the_numbers_of_the_segment_that_completed_it() {
    let h = hello();
    let first = ISN.wrapping_add(1);
    let cut = 40;
    let end = first.wrapping_add(h.len() as u32);
    let link = Some(LinkSeen {
        client: Mac(CLIENT_MAC),
        server: Mac(ROUTER_MAC),
        vlan: Some(42),
    });
    let want = Some(TcpSeen {
        client_next: end,
        server_next: SERVER_NEXT,
        window: 501,
        link,
    });
    let in_order = [
        client(ISN, true, Some(42), &[]),
        client(first, false, Some(42), &h[..cut]),
        client(first.wrapping_add(cut as u32), false, Some(42), &h[cut..]),
    ];
    let obs = run(LinkType::Ethernet, &in_order);
    assert_eq!(hosts(&obs), vec![(Proto::Tls, "chatgpt.com".into())]);
    assert_eq!(obs[0].tcp, want);
    // Out of order: the segment that completes the flight is the first; the server
    // expects the byte after the whole flight all the same.
    let reversed = [
        client(ISN, true, Some(42), &[]),
        client(first.wrapping_add(cut as u32), false, Some(42), &h[cut..]),
        client(first, false, Some(42), &h[..cut]),
    ];
    assert_eq!(run(LinkType::Ethernet, &reversed)[0].tcp, want);
}

#[test]
fn untagged_and_link_less_frames() {
    let h = hello();
    let frames = [
        client(ISN, true, None, &[]),
        client(ISN + 1, false, None, &h),
    ];
    let obs = run(LinkType::Ethernet, &frames);
    let link = obs[0].tcp.and_then(|t| t.link).expect("ethernet");
    assert_eq!(link.vlan, None);
    // Raw IP: the numbers without addresses to forge a frame with.
    let raw: Vec<Vec<u8>> = frames.iter().map(|f| f[14..].to_vec()).collect();
    let obs = run(LinkType::RawIp, &raw);
    let tcp = obs[0].tcp.expect("numbers");
    assert_eq!(
        (tcp.client_next, tcp.server_next, tcp.link),
        (ISN.wrapping_add(1 + h.len() as u32), SERVER_NEXT, None)
    );
}

#[test]
fn http_and_unknown_protocols_carry_numbers_dns_and_closed_flows_do_not() {
    let get = b"GET / HTTP/1.1\r\nHost: chatgpt.com\r\n\r\n";
    let obs = run(
        LinkType::Ethernet,
        &[
            client(ISN, true, None, &[]),
            client(ISN + 1, false, None, get),
        ],
    );
    assert_eq!(hosts(&obs), vec![(Proto::Http, "chatgpt.com".into())]);
    assert_eq!(
        obs[0].tcp.map(|t| t.client_next),
        Some(ISN.wrapping_add(1 + get.len() as u32))
    );
    // A protocol aiwarden does not read: nameless, with the numbers.
    let c = "10.0.0.23:50801";
    let s = "203.0.113.9:22";
    let obs = run(
        LinkType::Ethernet,
        &[
            seg(c, s, 0x23, 0, "S", &[]),
            seg(c, s, 0x23, 1, "A", b"SSH-2.0-x\r\n"),
        ],
    );
    assert_eq!(hosts(&obs), vec![(Proto::Tcp, "-".into())]);
    assert_eq!(obs[0].tcp.map(|t| t.client_next), Some(12));
    // Refused by the server: no client segment completed anything.
    let obs = run(
        LinkType::Ethernet,
        &[seg(c, s, 0x23, 0, "S", &[]), seg(s, c, 0x01, 0, "RA", &[])],
    );
    assert_eq!(hosts(&obs), vec![(Proto::Tcp, "-".into())]);
    assert_eq!(obs[0].tcp, None);
    // A segment without ACK acknowledges nothing: no numbers to reset with.
    let mut b = PacketBuilder::ethernet2(CLIENT_MAC, ROUTER_MAC)
        .ipv4([10, 0, 0, 23], [203, 0, 113, 5], 64)
        .tcp(50802, 443, 1, 501);
    b = b.psh();
    let mut noack = Vec::new();
    b.write(&mut noack, &hello()).expect("write");
    let obs = run(LinkType::Ethernet, &[noack]);
    assert_eq!(hosts(&obs), vec![(Proto::Tls, "chatgpt.com".into())]);
    assert_eq!(obs[0].tcp, None);
}

#[test]
fn dns_over_tcp_carries_none() {
    let q = crate::detect::dns::tests::query("chatgpt.com", 7);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    let c = "10.0.0.23:50803";
    let s = "10.0.0.1:53";
    let obs = run(
        LinkType::Ethernet,
        &[
            seg(c, s, 0x23, 0, "S", &[]),
            seg(c, s, 0x23, 1, "A", &framed),
        ],
    );
    assert_eq!(hosts(&obs), vec![(Proto::Dns, "chatgpt.com".into())]);
    assert_eq!(obs[0].tcp, None);
}

#[test]
fn later_is_serial_arithmetic() {
    assert_eq!(later(5, 3), 5);
    assert_eq!(later(3, 5), 5);
    assert_eq!(later(2, u32::MAX - 2), 2, "across zero");
    assert_eq!(later(7, 7), 7);
}
