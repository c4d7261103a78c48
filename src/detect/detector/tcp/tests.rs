//! Slow and oversized first flights: kept while they come, however slowly, on a memory
//! budget; given up (and counted, and reported `incomplete`) by budget, idle limit, byte
//! cap, holes, eviction, close or the capture's end; a hello read from a giant segment.

use super::super::tests::{answer, dgram, hosts, seg};
use crate::detect::dns::tests::query;
use crate::detect::tls::tests::{client_hello_message, records};
use crate::detect::{Detector, DetectorConfig, LinkType, Observation, Proto, Timestamp};

const C: &str = "10.0.0.23:50700";
const S: &str = "203.0.113.5:443";

fn hello(sni: &str) -> Vec<u8> {
    records(&client_hello_message(sni, false), 16_384)
}

/// A ClientHello padded (extension 21) to `total` bytes of stream, the size of a
/// post-quantum browser hello.
fn padded(sni: &str, total: usize) -> Vec<u8> {
    let mut m = client_hello_message(sni, false);
    let pad = total.saturating_sub(m.len() + 4 + 5);
    m.extend_from_slice(&21u16.to_be_bytes());
    m.extend_from_slice(&u16::try_from(pad).expect("small").to_be_bytes());
    m.resize(m.len() + pad, 0);
    // The extensions' length sits after the fixed fields: 4 + 41 bytes in.
    let exts = u16::try_from(m.len() - 47).expect("small");
    m[45..47].copy_from_slice(&exts.to_be_bytes());
    let body = u32::try_from(m.len() - 4).expect("small");
    m[1..4].copy_from_slice(&body.to_be_bytes()[1..]);
    records(&m, 16_384)
}

fn at(d: &mut Detector, micros: i64, frame: &[u8]) -> Vec<Observation> {
    d.process(Timestamp::from_micros(micros), LinkType::Ethernet, frame)
}

/// The client `10.0.0.23:port` to the server `S`.
fn client(port: u16) -> String {
    format!("10.0.0.23:{port}")
}

/// A SYN at `t`, then `flight` one byte per segment, `gap` microseconds apart.
fn trickle(d: &mut Detector, from: &str, t: i64, flight: &[u8], gap: i64) -> Vec<Observation> {
    let mut out = at(d, t, &seg(from, S, 0x23, 0, "S", &[]));
    for (i, b) in flight.iter().enumerate() {
        let ts = t + (i as i64 + 1) * gap;
        out.extend(at(d, ts, &seg(from, S, 0x23, 1 + i as u32, "A", &[*b])));
    }
    out
}

fn named(obs: &[Observation]) -> Vec<(Proto, String)> {
    hosts(obs)
}

#[test]
fn a_byte_every_30_ms_and_a_pause_of_minutes_are_both_read() {
    let h = padded("claude.ai", 1_400);
    assert_eq!(h.len(), 1_400);
    // One byte per 30 ms: the flight takes far longer than the old 5 s window.
    let mut d = Detector::new(DetectorConfig::default());
    let obs = trickle(&mut d, C, 0, &h, 30_000);
    assert!(h.len() as i64 * 30_000 > 5_000_000);
    assert_eq!(named(&obs), [(Proto::Tls, "claude.ai".to_string())]);
    // Paused mid-hello for 5.5 s, and for 100 s: still within the idle limit (120 s).
    for pause in [5_500_000, 100_000_000] {
        let mut d = Detector::new(DetectorConfig::default());
        let mut obs = at(&mut d, 0, &seg(C, S, 0x23, 0, "S", &[]));
        obs.extend(at(&mut d, 1_000, &seg(C, S, 0x23, 1, "A", &h[..40])));
        // Other traffic meanwhile makes the detector sweep its tables every second.
        for s in 1..=pause / 1_000_000 {
            obs.extend(at(
                &mut d,
                s * 1_000_000,
                &dgram(&client(40000), "10.0.0.1:9", 0x23, b"x"),
            ));
        }
        obs.extend(at(&mut d, pause, &seg(C, S, 0x23, 41, "A", &h[40..])));
        assert_eq!(
            named(&obs),
            [(Proto::Tls, "claude.ai".to_string())],
            "{pause}"
        );
        assert_eq!(d.first_flights(), (0, 0), "released once named");
    }
}

#[test]
fn interleaved_one_byte_flights_all_complete() {
    // What a live capture of 200 interleaved one-byte flights at 5,000 packets/s sees: each
    // flight spans the whole run (about 10 s of capture time for 250-byte hellos).
    let h = padded("chatgpt.com", 256);
    let mut d = Detector::new(DetectorConfig::default());
    let mut obs = Vec::new();
    let mut t = 0;
    for f in 0..200u16 {
        obs.extend(at(
            &mut d,
            t,
            &seg(&client(40000 + f), S, 0x23, 0, "S", &[]),
        ));
        t += 200;
    }
    for (i, b) in h.iter().enumerate() {
        for f in 0..200u16 {
            let s = seg(&client(40000 + f), S, 0x23, 1 + i as u32, "A", &[*b]);
            obs.extend(at(&mut d, t, &s));
            t += 200;
        }
    }
    assert!(t > 10_000_000, "each flight spans {t} us");
    assert_eq!(obs.len(), 200);
    assert!(obs
        .iter()
        .all(|o| o.host.as_ref().map(|h| h.as_str()) == Some("chatgpt.com")));
    assert_eq!(d.stats().get("tcp_first_flight_given_up_idle"), 0);
}

#[test]
fn an_idle_flight_is_given_up_and_reported_incomplete() {
    let h = hello("claude.ai");
    let mut d = Detector::new(DetectorConfig::default());
    at(&mut d, 0, &seg(C, S, 0x23, 0, "S", &[]));
    at(&mut d, 1_000, &seg(C, S, 0x23, 1, "A", &h[..30]));
    assert_eq!(d.first_flights().1, 1);
    let mut obs = Vec::new();
    for s in 1..=121 {
        obs.extend(at(
            &mut d,
            s * 1_000_000,
            &dgram(&client(40000), "10.0.0.1:9", 0x23, b"x"),
        ));
    }
    assert_eq!(named(&obs), [(Proto::Tcp, "-".to_string())]);
    let o = &obs[0];
    assert!(o.incomplete && o.unresolved);
    assert_eq!(
        o.ts,
        Timestamp::from_micros(0),
        "dated when the connection began"
    );
    assert_eq!(d.stats().get("tcp_first_flight_given_up_idle"), 1);
    assert_eq!(d.first_flights(), (0, 0));
    // The rest of the hello, much later, does not start a flow mid-hello.
    assert!(at(&mut d, 122_000_000, &seg(C, S, 0x23, 31, "A", &h[30..])).is_empty());
}

#[test]
fn a_flight_to_an_answered_address_is_incomplete_but_not_unresolved() {
    let h = hello("claude.ai");
    let mut d = Detector::new(DetectorConfig::default());
    at(
        &mut d,
        0,
        &dgram(&client(40000), "10.0.0.1:53", 0x23, &query("claude.ai", 3)),
    );
    let a = answer("claude.ai", 3, &["203.0.113.5"]);
    at(&mut d, 10, &dgram("10.0.0.1:53", &client(40000), 0x01, &a));
    at(&mut d, 20, &seg(C, S, 0x23, 0, "S", &[]));
    at(&mut d, 30, &seg(C, S, 0x23, 1, "A", &h[..30]));
    let obs = d.finish();
    assert_eq!(obs.len(), 1);
    assert!(obs[0].incomplete && !obs[0].unresolved);
    assert_eq!(d.stats().get("tcp_first_flight_given_up_capture_end"), 1);
}

#[test]
fn the_budget_gives_up_the_least_recently_advanced_flight() {
    let cfg = DetectorConfig {
        first_flight_budget: 10 * 1024,
        ..DetectorConfig::default()
    };
    let budget = cfg.first_flight_budget;
    let h = padded("claude.ai", 1_400);
    let mut d = Detector::new(cfg);
    // A slow real client starts first and keeps sending a byte every 10 ms.
    at(&mut d, 0, &seg(C, S, 0x23, 0, "S", &[]));
    let mut sent = 0usize;
    let mut obs = Vec::new();
    // Meanwhile 100 flights stall after their first 300 bytes (an attacker, or dead
    // clients): far more than the budget holds.
    for f in 0..100u16 {
        let t = i64::from(f) * 10_000 + 5_000;
        let from = client(41000 + f);
        obs.extend(at(&mut d, t, &seg(&from, S, 0x23, 0, "S", &[])));
        let mut part = vec![22, 3, 1, 0x40, 0, 1, 0, 0x3f, 0xfb];
        part.resize(300, 0);
        obs.extend(at(&mut d, t, &seg(&from, S, 0x23, 1, "A", &part)));
        obs.extend(at(
            &mut d,
            t + 5_000,
            &seg(C, S, 0x23, 1 + sent as u32, "A", &h[sent..=sent]),
        ));
        sent += 1;
        assert!(d.first_flights().0 <= budget, "{:?}", d.first_flights());
    }
    for (i, b) in h.iter().enumerate().skip(sent) {
        let t = 2_000_000 + i as i64 * 10_000;
        obs.extend(at(&mut d, t, &seg(C, S, 0x23, 1 + i as u32, "A", &[*b])));
    }
    let given_up = d.stats().get("tcp_first_flight_given_up_budget");
    assert!(given_up >= 50, "{given_up}");
    let incomplete: Vec<_> = obs.iter().filter(|o| o.incomplete).collect();
    assert_eq!(incomplete.len() as u64, given_up);
    assert!(
        incomplete.iter().all(|o| o.client.port() >= 41000),
        "the attackers go first"
    );
    let named: Vec<_> = obs.iter().filter(|o| o.host.is_some()).collect();
    assert_eq!(named.len(), 1);
    assert_eq!(named[0].client.port(), 50700, "the slow client is read");
}

#[test]
fn a_flight_that_reaches_the_byte_cap_unnamed_is_given_up() {
    // A hello framed in one-byte records: six bytes of stream per byte of message, so a
    // 3,000-byte hello outgrows the 16 KiB cap before it completes.
    let mut msg = client_hello_message("claude.ai", false);
    msg.resize(3_000, 0);
    let body = (msg.len() - 4) as u32;
    msg[1..4].copy_from_slice(&body.to_be_bytes()[1..]);
    let stream = records(&msg, 1);
    let mut d = Detector::new(DetectorConfig::default());
    let mut obs = at(&mut d, 0, &seg(C, S, 0x23, 0, "S", &[]));
    for (i, c) in stream.chunks(1_000).enumerate() {
        obs.extend(at(
            &mut d,
            10 + i as i64,
            &seg(C, S, 0x23, 1 + 1_000 * i as u32, "A", c),
        ));
    }
    assert_eq!(named(&obs), [(Proto::Tcp, "-".to_string())]);
    assert!(obs[0].incomplete);
    assert_eq!(d.stats().get("tcp_first_flight_given_up_byte_cap"), 1);
    // A hello that announces more than the cap is given up at once.
    let mut d = Detector::new(DetectorConfig::default());
    let big = [&[1u8, 0, 0x4e, 0x20][..], &[0; 200]].concat();
    let mut obs = at(&mut d, 0, &seg(C, S, 0x23, 0, "S", &[]));
    obs.extend(at(
        &mut d,
        10,
        &seg(C, S, 0x23, 1, "A", &records(&big, 16_384)),
    ));
    assert!(obs.len() == 1 && obs[0].incomplete);
    assert_eq!(d.stats().get("tcp_first_flight_given_up_byte_cap"), 1);
}

#[test]
fn a_hello_at_the_start_of_a_64_kib_segment_is_read() {
    // TSO/GRO on a mirror port: the first flight and what follows in one giant segment.
    let mut big = hello("gemini.google.com");
    big.resize(65_000, 0x17);
    let mut d = Detector::new(DetectorConfig::default());
    let mut obs = at(&mut d, 0, &seg(C, S, 0x23, 0, "S", &[]));
    obs.extend(at(&mut d, 10, &seg(C, S, 0x23, 1, "A", &big)));
    assert_eq!(named(&obs), [(Proto::Tls, "gemini.google.com".to_string())]);
    assert_eq!(d.stats().get("tcp_first_flight_clipped"), 1);
    // Joined mid-stream (no SYN seen) too.
    let mut d = Detector::new(DetectorConfig::default());
    let obs = at(&mut d, 0, &seg(C, S, 0x23, 77, "A", &big));
    assert_eq!(named(&obs), [(Proto::Tls, "gemini.google.com".to_string())]);
}

#[test]
fn too_many_holes_close_and_eviction_are_given_up_and_counted() {
    let h = hello("claude.ai");
    // Every other byte, never the first: 65 holes.
    let mut d = Detector::new(DetectorConfig::default());
    let mut obs = at(&mut d, 0, &seg(C, S, 0x23, 0, "S", &[]));
    for i in 0..70u32 {
        obs.extend(at(&mut d, 10, &seg(C, S, 0x23, 3 + 2 * i, "A", &[1])));
    }
    assert!(obs.len() == 1 && obs[0].incomplete);
    assert_eq!(d.stats().get("tcp_first_flight_given_up_holes"), 1);
    // Half a hello, then the client's FIN.
    let mut d = Detector::new(DetectorConfig::default());
    at(&mut d, 0, &seg(C, S, 0x23, 0, "S", &[]));
    at(&mut d, 10, &seg(C, S, 0x23, 1, "A", &h[..20]));
    let obs = at(&mut d, 20, &seg(C, S, 0x23, 21, "AF", &[]));
    assert!(obs.len() == 1 && obs[0].incomplete);
    assert_eq!(d.stats().get("tcp_first_flight_given_up_closed"), 1);
    assert_eq!(d.first_flights(), (0, 0));
    // A full flow table evicts a begun flight.
    let mut d = Detector::new(DetectorConfig {
        max_tcp_flows: 2,
        ..DetectorConfig::default()
    });
    at(&mut d, 0, &seg(C, S, 0x23, 0, "S", &[]));
    at(&mut d, 10, &seg(C, S, 0x23, 1, "A", &h[..20]));
    let mut obs = at(&mut d, 20, &seg(&client(1), S, 0x23, 0, "S", &[]));
    obs.extend(at(&mut d, 30, &seg(&client(2), S, 0x23, 0, "S", &[])));
    assert_eq!(obs.iter().filter(|o| o.incomplete).count(), 1);
    assert_eq!(d.stats().get("tcp_first_flight_given_up_evicted"), 1);
    assert_eq!(d.first_flights(), (0, 0));
}

#[test]
fn a_silent_connection_is_reported_on_time_behind_a_slow_flight() {
    // A begun flight at the old end of the flow table does not hold back the short
    // timeout of a silent connection opened after it.
    let h = hello("claude.ai");
    let mut d = Detector::new(DetectorConfig::default());
    at(&mut d, 0, &seg(C, S, 0x23, 0, "S", &[]));
    at(&mut d, 10, &seg(C, S, 0x23, 1, "A", &h[..20]));
    at(
        &mut d,
        20,
        &seg(&client(2), "203.0.113.53:853", 0x23, 0, "S", &[]),
    );
    let mut obs = Vec::new();
    for s in 1..=7 {
        obs.extend(at(
            &mut d,
            s * 1_000_000,
            &dgram(&client(40000), "10.0.0.1:9", 0x23, b"x"),
        ));
    }
    assert_eq!(obs.len(), 1);
    assert_eq!((obs[0].server.port(), obs[0].incomplete), (853, false));
    assert_eq!(d.stats().get("tcp_silent_timed_out"), 1);
    // The slow flight is still there and completes.
    let obs = at(&mut d, 8_000_000, &seg(C, S, 0x23, 21, "A", &h[20..]));
    assert_eq!(named(&obs), [(Proto::Tls, "claude.ai".to_string())]);
    // A hello that starts only after the silence timed out is read all the same.
    let mut d = Detector::new(DetectorConfig::default());
    let mut obs = at(&mut d, 0, &seg(C, S, 0x23, 0, "S", &[]));
    obs.extend(at(
        &mut d,
        6_000_000,
        &dgram(&client(40000), "10.0.0.1:9", 0x23, b"x"),
    ));
    obs.extend(trickle_from(&mut d, 10_000_000, &h));
    assert_eq!(
        named(&obs),
        [
            (Proto::Tcp, "-".to_string()),
            (Proto::Tls, "claude.ai".to_string())
        ]
    );
}

/// `flight` one byte per millisecond from `t`, with no SYN.
fn trickle_from(d: &mut Detector, t: i64, flight: &[u8]) -> Vec<Observation> {
    let mut out = Vec::new();
    for (i, b) in flight.iter().enumerate() {
        let s = seg(C, S, 0x23, 1 + i as u32, "A", &[*b]);
        out.extend(at(d, t + i as i64 * 1_000, &s));
    }
    out
}

#[test]
fn without_its_syn_a_hello_split_after_one_byte_is_read_from_its_start() {
    // The NFQUEUE judge sees no SYN (packets without payload are not queued): a hello
    // whose first segment is a single byte still starts the flow where it starts.
    let h = hello("chatgpt.com");
    let mut d = Detector::new(DetectorConfig::default());
    let mut out = at(&mut d, 0, &seg(C, S, 0x23, 1000, "A", &h[..1]));
    out.extend(at(&mut d, 10, &seg(C, S, 0x23, 1001, "A", &h[1..])));
    assert_eq!(named(&out), vec![(Proto::Tls, "chatgpt.com".to_string())]);
}

#[test]
fn a_connection_opened_without_its_syn_replaces_the_flow_of_a_reused_port() {
    // The NFQUEUE judge is given no SYN: the first connection on this port named
    // chatgpt.com; a new one on the same port is told of by `open_tcp` and read afresh.
    let mut d = Detector::new(DetectorConfig::default());
    let first = hello("chatgpt.com");
    let mut out = d.open_tcp(
        Timestamp::from_micros(0),
        C.parse().expect("addr"),
        S.parse().expect("addr"),
        1000,
    );
    out.extend(at(&mut d, 10, &seg(C, S, 0x23, 1000, "A", &first)));
    assert_eq!(named(&out), vec![(Proto::Tls, "chatgpt.com".to_string())]);
    // Without being told, the lingering flow of the first connection swallows the second.
    let second = hello("claude.ai");
    assert!(named(&at(&mut d, 20, &seg(C, S, 0x23, 90_000, "A", &second))).is_empty());
    let mut out = d.open_tcp(
        Timestamp::from_micros(30),
        C.parse().expect("addr"),
        S.parse().expect("addr"),
        90_000,
    );
    out.extend(at(&mut d, 40, &seg(C, S, 0x23, 90_000, "A", &second)));
    assert_eq!(named(&out), vec![(Proto::Tls, "claude.ai".to_string())]);
}
