//! The whole detector on arbitrary frames: the first byte picks the link type and the IP
//! fragment overlap policy, and the rest is split into several frames so that state
//! carries across them (IP fragment reassembly, TCP reassembly, QUIC CRYPTO streams, DNS
//! maps) with small caps to exercise eviction, and a first-flight budget below one flight's
//! cap whose bound and accounting are checked after every frame.
#![no_main]

use aiwarden::detect::frag::FragPolicy;
use aiwarden::detect::{Detector, DetectorConfig, LinkType, Timestamp};
use libfuzzer_sys::fuzz_target;

const LINKS: [LinkType; 9] = [
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

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let link = LINKS[usize::from(sel & 0x0f) % LINKS.len()];
    let mut cfg = DetectorConfig::default();
    cfg.max_tcp_flows = 4;
    // Smaller than one flight's cap: the budget gives flights up on every path.
    cfg.first_flight_budget = 8 * 1024;
    cfg.max_resolved = 4;
    cfg.max_pending_queries = 4;
    cfg.quic.max_connections = 4;
    cfg.frag.max_datagrams = 4;
    cfg.frag.max_fragments = 8;
    cfg.frag.max_total_bytes = 16 * 1024;
    cfg.frag.policy = match (sel >> 4) & 3 {
        0 => FragPolicy::Linux,
        1 => FragPolicy::First,
        _ => FragPolicy::Last,
    };
    let mut det = Detector::new(cfg);
    // Frames are separated by the byte 0xA5; each is a millisecond after the last, and
    // the high bit of the selector makes that a minute, to reach the fragment timeout.
    let step = if sel & 0x80 != 0 { 60_000_000 } else { 1_000 };
    let mut ts = 0i64;
    for frame in rest.split(|&b| b == 0xA5) {
        ts += step;
        let _ = det.process(Timestamp::from_micros(ts), link, frame);
        let (bytes, flights) = det.first_flights();
        assert!(bytes <= 8 * 1024, "first flights hold {bytes} bytes");
        assert!(flights <= det.tcp_flows(), "{flights} flights, {} flows", det.tcp_flows());
    }
    assert!(det.tcp_flows() <= 4);
    let _ = det.finish();
    assert_eq!(det.first_flights(), (0, 0), "finish releases every flight");
});
