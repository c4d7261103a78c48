//! DNS message parsing on arbitrary bytes, and the host-name check on every name it yields.
#![no_main]

use aiwarden::detect::{dns, Host};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(s) = dns::parse(data) {
        let _ = Host::parse(&s.qname);
    }
    let _ = Host::parse(data);
});
