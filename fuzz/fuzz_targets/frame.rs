//! The whole detector on arbitrary frames: the first byte picks the link type, and the
//! rest is split into several frames so that state carries across them (reassembly, QUIC
//! CRYPTO streams, DNS maps) with small caps to exercise eviction.
#![no_main]

use aiwarden::detect::{Detector, DetectorConfig, LinkType, Timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let link = match sel % 5 {
        0 => LinkType::Ethernet,
        1 => LinkType::LinuxSll,
        2 => LinkType::LinuxSll2,
        3 => LinkType::RawIp,
        _ => LinkType::Loopback,
    };
    let mut cfg = DetectorConfig::default();
    cfg.max_tcp_flows = 4;
    cfg.max_resolved = 4;
    cfg.max_pending_queries = 4;
    cfg.quic.max_connections = 4;
    let mut det = Detector::new(cfg);
    // Frames are separated by the byte 0xA5.
    let mut ts = 0i64;
    for frame in rest.split(|&b| b == 0xA5) {
        ts += 1_000;
        let _ = det.process(Timestamp::from_micros(ts), link, frame);
    }
    assert!(det.tcp_flows() <= 4);
});
