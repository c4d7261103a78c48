//! ClientHello record scanning and parsing on arbitrary bytes.
#![no_main]

use aiwarden::detect::tls::{parse_client_hello, scan_records, Scan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_client_hello(data);
    if let Scan::Complete(msg) = scan_records(data, 16 * 1024) {
        assert!(msg.len() <= 16 * 1024);
        let _ = parse_client_hello(&msg);
    }
});
