//! QUIC Initial handling on arbitrary datagrams: header parsing, key derivation, header
//! protection removal, decryption attempts, frame parsing and CRYPTO reassembly, with
//! several datagrams per input sharing one tracker.
#![no_main]

use aiwarden::detect::quic::{decrypt_client_initial, QuicConfig, QuicTracker};
use aiwarden::detect::{FlowKey, Timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decrypt_client_initial(data);
    let mut cfg = QuicConfig::default();
    cfg.max_connections = 4;
    let mut t = QuicTracker::new(cfg);
    let key = FlowKey {
        src: "10.0.0.23:50000".parse().expect("addr"),
        dst: "192.0.2.1:443".parse().expect("addr"),
    };
    let mut ts = 0i64;
    for d in data.split(|&b| b == 0xA5) {
        ts += 1_000;
        let _ = t.on_datagram(Timestamp::from_micros(ts), key, d);
    }
    assert!(t.len() <= 4);
});
