//! HTTP/1 request-head scanning on arbitrary bytes: what it returns must hold up (a host
//! that is a valid name or IPv6 literal taken from inside the head, a head length within
//! the bytes and the limit) and must not change as more bytes arrive or the limit grows.
#![no_main]

use std::net::Ipv6Addr;

use aiwarden::detect::http::{scan_request, starts_like_request, Scan};
use aiwarden::detect::Host;
use libfuzzer_sys::fuzz_target;

const MAX: usize = 8 * 1024;

fn check(data: &[u8], max: usize) -> Scan {
    let scan = scan_request(data, max);
    if let Scan::Request(r) = &scan {
        assert!(starts_like_request(data));
        assert!(r.head_len <= data.len().min(max));
        assert!(data[..r.head_len].ends_with(b"\n"));
        match &r.host {
            Some(h) if h.contains(&b':') => {
                let s = std::str::from_utf8(h).expect("an IPv6 literal is ASCII");
                assert!(s.parse::<Ipv6Addr>().is_ok(), "{s:?}");
            }
            Some(h) => assert!(Host::parse(h).is_ok(), "{h:?}"),
            None => assert!(r.port.is_none()),
        }
        if let Some(h) = &r.host {
            assert!(data[..r.head_len].windows(h.len()).any(|w| w == &h[..]));
        }
    }
    scan
}

fuzz_target!(|data: &[u8]| {
    let full = check(data, MAX);
    // A prefix that decided must agree with the whole; a prefix of a head needs more.
    for cut in [data.len() / 2, data.len().saturating_sub(1)] {
        let part = check(&data[..cut], MAX);
        match (&part, &full) {
            (Scan::NotHttp, f) => assert_eq!(f, &Scan::NotHttp),
            (Scan::Request(p), f) => assert_eq!(f, &Scan::Request(p.clone())),
            (Scan::NeedMore, Scan::Request(r)) if cut < r.head_len => {}
            (Scan::NeedMore, Scan::Request(r)) => panic!("needs more past the head: {r:?}"),
            (Scan::NeedMore, _) => {}
        }
    }
    // The head alone reads the same, whatever follows it.
    if let Scan::Request(r) = &full {
        assert_eq!(check(&data[..r.head_len], MAX), full);
    }
    // A smaller limit either refuses or agrees.
    let small = check(data, (data.len() / 3).min(MAX));
    assert!(
        small == Scan::NotHttp || small == full,
        "{small:?} {full:?}"
    );
});
