//! HTTP/1 request heads at the start of a TCP client stream: enough to name the host a
//! device reaches over plaintext HTTP on any port, or through a proxy, where
//! `CONNECT chatgpt.com:443 HTTP/1.1` goes out in clear before the TLS inside the tunnel.
//!
//! Only the method, the authority and the head's length leave this module. Paths, queries
//! and every header but Host are read past and never copied: aiwarden keeps metadata, not
//! URLs. Framing (lines, limits, NUL, folding) is [`scan_request`]'s; what a line means is
//! left to `request_line`, `absolute_authority` and `authority`.

use std::net::Ipv6Addr;

/// What the start of a TCP client stream holds so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// Could still be an HTTP/1 request head; more bytes are needed.
    NeedMore,
    /// Not an HTTP/1 request head (or one longer than the limit): stop tracking the flow.
    NotHttp,
    /// A complete request head.
    Request(Request),
}

/// What a request head says about where it is going.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method is CONNECT: a proxy tunnel, whose bytes after the head are the tunnel's
    /// (usually a TLS ClientHello).
    pub connect: bool,
    /// The authority's host as written (case kept, port removed, an IPv6 literal without
    /// its brackets): from the CONNECT target, an absolute-form target (a forward proxy),
    /// else the first Host header. `None` when there is none or it is not a host name or
    /// IP literal.
    pub host: Option<Vec<u8>>,
    /// The authority's port, when one is written.
    pub port: Option<u16>,
    /// Bytes of the head including the empty line that ends it: where the body, or the
    /// tunnel, starts.
    pub head_len: usize,
}

/// The methods recognised, each with the space that must follow it, grouped by first
/// byte so a stream is turned away after one comparison.
fn methods(first: u8) -> &'static [&'static [u8]] {
    match first {
        b'C' => &[b"CONNECT "],
        b'G' => &[b"GET "],
        b'P' => &[b"POST ", b"PUT ", b"PATCH "],
        b'H' => &[b"HEAD "],
        b'D' => &[b"DELETE "],
        b'O' => &[b"OPTIONS "],
        b'T' => &[b"TRACE "],
        _ => &[],
    }
}

/// A cheap look at a stream's first bytes: true when they start with an HTTP/1 method and
/// a space (`CONNECT `, `GET `, `POST `, `HEAD `, `PUT `, `DELETE `, `OPTIONS `, `PATCH `,
/// `TRACE `) or are a strict prefix of one (`CON`, and the empty slice), so the caller can
/// wait for more; false for anything else, such as a TLS record.
#[inline]
pub fn starts_like_request(first: &[u8]) -> bool {
    let Some(&b) = first.first() else {
        return true;
    };
    // Called for every data segment of a stream aiwarden does not follow (downloads):
    // turn away anything that is not a method's first letter before anything else.
    if !matches!(b, b'C' | b'G' | b'P' | b'H' | b'D' | b'O' | b'T') {
        return false;
    }
    methods(b).iter().any(|m| {
        let n = first.len().min(m.len());
        first[..n] == m[..n]
    })
}

/// The method (with its space) that `line` starts with.
fn method(line: &[u8]) -> Option<&'static [u8]> {
    let first = *line.first()?;
    methods(first).iter().copied().find(|m| line.starts_with(m))
}

/// Reads the request head at the start of `stream`, which may be incomplete: call again
/// with more bytes after [`Scan::NeedMore`]. A head longer than `max_head` bytes, a NUL or
/// an obsolete folded header line in it, or a malformed request line is [`Scan::NotHttp`].
/// Allocates only the host it returns.
pub fn scan_request(stream: &[u8], max_head: usize) -> Scan {
    if !starts_like_request(stream) {
        return Scan::NotHttp;
    }
    // Bytes past the limit are never looked at: a head that has not ended within them is
    // too long whatever follows.
    let window = &stream[..stream.len().min(max_head)];
    let mut pos = 0;
    let mut start: Option<Start<'_>> = None;
    let mut host_header: Option<&[u8]> = None;
    loop {
        let rest = &window[pos..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            if stream.len() >= max_head {
                return Scan::NotHttp;
            }
            return partial_line(rest, start.is_none());
        };
        let raw = &rest[..nl];
        // CRLF or a bare LF ends a line.
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        pos += nl + 1;
        if line.contains(&0) {
            return Scan::NotHttp;
        }
        let Some(s) = &start else {
            match request_line(line, true) {
                Line::Complete(s) => start = Some(s),
                Line::Partial | Line::Bad => return Scan::NotHttp,
            }
            continue;
        };
        if line.is_empty() {
            return Scan::Request(request(s, host_header, pos));
        }
        if line[0] == b' ' || line[0] == b'\t' {
            // obs-fold: RFC 9112 lets a server reject it, and a folded Host would be read
            // differently by different servers.
            return Scan::NotHttp;
        }
        // The first Host header wins; a later one is never read.
        if host_header.is_none() {
            host_header = header_value(line, b"host");
        }
    }
}

/// The owned result for a complete head ending at `head_len`.
fn request(s: &Start<'_>, host_header: Option<&[u8]>, head_len: usize) -> Request {
    let auth = if s.connect {
        // Authority-form: `host:port` is the whole target.
        Some(s.target)
    } else {
        // Absolute-form (a forward proxy) overrides Host, as RFC 9112 §3.2.2 says.
        absolute_authority(s.target).or(host_header)
    };
    let (host, port) = match auth.and_then(authority) {
        Some((h, p)) => (Some(h.to_vec()), p),
        None => (None, None),
    };
    Request {
        connect: s.connect,
        host,
        port,
        head_len,
    }
}

/// The head has not ended within `tail`'s line: decide whether what is there can still
/// become a head.
fn partial_line(tail: &[u8], in_request_line: bool) -> Scan {
    if tail.contains(&0) {
        return Scan::NotHttp;
    }
    if in_request_line {
        return match request_line(tail, false) {
            Line::Bad => Scan::NotHttp,
            Line::Partial | Line::Complete(_) => Scan::NeedMore,
        };
    }
    if tail.first().is_some_and(|&b| b == b' ' || b == b'\t') {
        return Scan::NotHttp;
    }
    Scan::NeedMore
}

/// The parts of a request line kept while the headers are read.
struct Start<'a> {
    connect: bool,
    target: &'a [u8],
}

/// A request line, or as much of one as has arrived.
enum Line<'a> {
    Bad,
    Partial,
    Complete(Start<'a>),
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_space(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_space(*last) {
            break;
        }
        s = rest;
    }
    s
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| is_space(b)).count();
    &s[n..]
}

/// Reads `METHOD SP target SP HTTP/1.x` (line end removed). With `complete` false the
/// line is still arriving and only has to be a plausible start of one. Runs of spaces
/// between the parts are accepted, as RFC 9112 §3 allows and lenient proxies do, so an
/// extra space does not hide a CONNECT a proxy would honour.
fn request_line(line: &[u8], complete: bool) -> Line<'_> {
    let line = if complete {
        line
    } else {
        // A CR whose LF has not arrived yet.
        line.strip_suffix(b"\r").unwrap_or(line)
    };
    if line.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Line::Bad;
    }
    let Some(m) = method(line) else {
        return if !complete && starts_like_request(line) {
            Line::Partial
        } else {
            Line::Bad
        };
    };
    let rest = trim_start(&line[m.len()..]);
    let end = rest.iter().position(|&b| is_space(b)).unwrap_or(rest.len());
    let (target, rest) = rest.split_at(end);
    let version = trim_start(rest);
    if version.is_empty() {
        // HTTP/0.9 (`GET /`) has no version and no Host: not a head this module reads.
        return if complete { Line::Bad } else { Line::Partial };
    }
    if !version_ok(version, complete) {
        return Line::Bad;
    }
    if !complete {
        return Line::Partial;
    }
    Line::Complete(Start {
        connect: m == b"CONNECT ",
        target,
    })
}

/// `HTTP/1.` and a digit, then only spaces; with `complete` false, a prefix of that.
fn version_ok(v: &[u8], complete: bool) -> bool {
    const V: &[u8] = b"HTTP/1.";
    let n = v.len().min(V.len());
    if v[..n] != V[..n] {
        return false;
    }
    match v.get(V.len()) {
        Some(d) => d.is_ascii_digit() && v[V.len() + 1..].iter().all(|&b| is_space(b)),
        None => !complete,
    }
}

/// The trimmed value of header `name` (lowercase) when `line` is that header.
fn header_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let colon = line.iter().position(|&b| b == b':')?;
    line[..colon]
        .eq_ignore_ascii_case(name)
        .then(|| trim(&line[colon + 1..]))
}

/// The authority of an absolute-form target (`scheme://[userinfo@]authority[/path]`);
/// `None` for origin-form (`/path`), asterisk-form (`*`) and anything without `//`.
fn absolute_authority(target: &[u8]) -> Option<&[u8]> {
    let colon = target.iter().position(|&b| b == b':')?;
    let (scheme, rest) = target.split_at(colon);
    if !scheme.first().is_some_and(u8::is_ascii_alphabetic)
        || !scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return None;
    }
    let rest = rest.strip_prefix(b"://")?;
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let auth = &rest[..end];
    // Userinfo (`user:password@`) is dropped unread.
    Some(match auth.iter().rposition(|&b| b == b'@') {
        Some(at) => &auth[at + 1..],
        None => auth,
    })
}

/// Splits `host[:port]` or `[ipv6][:port]`; `None` unless the host is a host name (labels
/// of letters, digits, `-` and `_`, at most 253 bytes) or an IP literal and the port, when
/// written, is a number that fits.
fn authority(a: &[u8]) -> Option<(&[u8], Option<u16>)> {
    let (host, after) = if let Some(rest) = a.strip_prefix(b"[") {
        let close = rest.iter().position(|&b| b == b']')?;
        let ip = &rest[..close];
        std::str::from_utf8(ip).ok()?.parse::<Ipv6Addr>().ok()?;
        (ip, &rest[close + 1..])
    } else {
        let colon = a.iter().position(|&b| b == b':').unwrap_or(a.len());
        let host = &a[..colon];
        if !is_host_name(host) {
            return None;
        }
        (host, &a[colon..])
    };
    let port = match after {
        // RFC 3986 allows an empty port.
        [] | [b':'] => None,
        [b':', digits @ ..] => Some(port(digits)?),
        _ => return None,
    };
    Some((host, port))
}

/// A DNS name or dotted IPv4 address, with at most one trailing dot.
fn is_host_name(h: &[u8]) -> bool {
    let h = h.strip_suffix(b".").unwrap_or(h);
    !h.is_empty()
        && h.len() <= 253
        && h.split(|&b| b == b'.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// One to five decimal digits (no sign) of a value that fits in 16 bits.
fn port(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 {
        return None;
    }
    let mut v = 0u32;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(d - b'0');
    }
    u16::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::tls::tests::{client_hello_message, records};

    const MAX: usize = 8 * 1024;

    fn req(stream: &[u8]) -> Request {
        match scan_request(stream, MAX) {
            Scan::Request(r) => r,
            other => panic!("expected a request for {stream:?}, got {other:?}"),
        }
    }

    fn host_port(stream: &[u8]) -> (Option<String>, Option<u16>) {
        let r = req(stream);
        (r.host.map(|h| String::from_utf8(h).expect("ascii")), r.port)
    }

    fn hp(host: &str, port: Option<u16>) -> (Option<String>, Option<u16>) {
        (Some(host.to_string()), port)
    }

    #[test]
    fn first_bytes_check() {
        for yes in [
            &b""[..],
            b"C",
            b"CON",
            b"CONNECT",
            b"CONNECT ",
            b"CONNECT x",
            b"GET /",
            b"PO",
            b"POST ",
            b"PUT ",
            b"PATCH ",
            b"HEAD ",
            b"DELETE ",
            b"OPTIONS *",
            b"TRACE ",
        ] {
            assert!(starts_like_request(yes), "{yes:?}");
        }
        for no in [
            &b"\x16\x03\x01"[..],
            b"get /",
            b"GETS",
            b"CONNECTX",
            b"PRI * HTTP/2.0",
            b"SSH-2.0",
            b" GET",
            b"\r\nGET",
        ] {
            assert!(!starts_like_request(no), "{no:?}");
        }
    }

    #[test]
    fn connect_with_and_without_port() {
        let r = req(b"CONNECT chatgpt.com:443 HTTP/1.1\r\nHost: chatgpt.com:443\r\n\r\n");
        assert!(r.connect);
        assert_eq!(r.host.as_deref(), Some(&b"chatgpt.com"[..]));
        assert_eq!(r.port, Some(443));
        // The target, not a Host header, names a tunnel's end.
        assert_eq!(
            host_port(b"CONNECT claude.ai HTTP/1.1\r\nHost: other.example\r\n\r\n"),
            hp("claude.ai", None)
        );
    }

    #[test]
    fn ipv6_literals_lose_their_brackets() {
        assert_eq!(
            host_port(b"CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n\r\n"),
            hp("2001:db8::1", Some(8443))
        );
        assert_eq!(
            host_port(b"GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n"),
            hp("::1", None)
        );
        // Not an address, a zone id, a bad tail: no host rather than garbage.
        for bad in [
            &b"[::g]"[..],
            b"[fe80::1%25eth0]",
            b"[::1]x",
            b"[::1",
            b"[v1.x]",
        ] {
            let mut s = b"CONNECT ".to_vec();
            s.extend_from_slice(bad);
            s.extend_from_slice(b" HTTP/1.1\r\n\r\n");
            assert_eq!(host_port(&s), (None, None), "{bad:?}");
        }
    }

    #[test]
    fn host_header_with_port_and_case() {
        let r = req(b"POST /v1/chat HTTP/1.1\r\nhOsT:  Gemini.Google.com:8080 \r\nX: y\r\n\r\n");
        assert!(!r.connect);
        assert_eq!(r.host.as_deref(), Some(&b"Gemini.Google.com"[..]));
        assert_eq!(r.port, Some(8080));
        // The first Host header wins.
        assert_eq!(
            host_port(b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n"),
            hp("a.example", None)
        );
        assert_eq!(
            host_port(b"GET / HTTP/1.1\r\nHost: bad host\r\nHost: b.example\r\n\r\n"),
            (None, None)
        );
    }

    #[test]
    fn absolute_form_for_forward_proxies() {
        assert_eq!(
            host_port(b"GET http://chatgpt.com/x?q=1 HTTP/1.1\r\nHost: other.example\r\n\r\n"),
            hp("chatgpt.com", None)
        );
        assert_eq!(
            host_port(b"GET HTTP://user:pw@api.openai.com:80?x HTTP/1.1\r\n\r\n"),
            hp("api.openai.com", Some(80))
        );
        // Asterisk-form takes Host.
        assert_eq!(
            host_port(b"OPTIONS * HTTP/1.1\r\nHost: claude.ai\r\n\r\n"),
            hp("claude.ai", None)
        );
    }

    #[test]
    fn http10_without_host() {
        let r = req(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!((r.host, r.port, r.head_len), (None, None, 18));
    }

    #[test]
    fn every_strict_prefix_needs_more() {
        let heads: [&[u8]; 3] = [
            b"CONNECT chatgpt.com:443 HTTP/1.1\r\nHost: chatgpt.com:443\r\nUser-Agent: curl/8\r\n\r\n",
            b"GET /index.html HTTP/1.1\nHost: claude.ai\n\n",
            b"DELETE  /x  HTTP/1.0 \r\n\r\n",
        ];
        for head in heads {
            assert!(matches!(scan_request(head, MAX), Scan::Request(_)));
            for cut in 0..head.len() {
                assert_eq!(
                    scan_request(&head[..cut], MAX),
                    Scan::NeedMore,
                    "{:?}",
                    String::from_utf8_lossy(&head[..cut])
                );
            }
        }
    }

    #[test]
    fn bare_line_feeds() {
        let stream = b"GET / HTTP/1.1\nHost: perplexity.ai\n\nbody";
        let r = req(stream);
        assert_eq!(r.host.as_deref(), Some(&b"perplexity.ai"[..]));
        assert_eq!(&stream[r.head_len..], b"body");
    }

    #[test]
    fn oversize_heads_are_not_followed() {
        let mut head = b"GET / HTTP/1.1\r\nHost: chatgpt.com\r\nCookie: ".to_vec();
        head.extend(std::iter::repeat_n(b'a', 200));
        head.extend_from_slice(b"\r\n\r\n");
        assert!(matches!(scan_request(&head, head.len()), Scan::Request(_)));
        assert_eq!(scan_request(&head, head.len() - 1), Scan::NotHttp);
        // Incomplete and already at the limit: it can only end past it.
        assert_eq!(scan_request(&head[..100], 100), Scan::NotHttp);
        assert_eq!(scan_request(&head[..99], 100), Scan::NeedMore);
    }

    #[test]
    fn malformed_heads_are_not_http() {
        for bad in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n x\r\n\r\n"[..], // obs-fold
            b"GET / HTTP/1.1\r\nHost: a\r\n\tx",             // obs-fold, still arriving
            b"GET / HTTP/1.1\r\nHost: a\0\r\n\r\n",          // NUL
            b"GET / HTTP/1.1\r\nX: \0",                      // NUL, still arriving
            b"GET /\r\n",                                    // HTTP/0.9
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.1 x\r\n\r\n",
            b"GET / HTTP/1.x",
            b"GET / FTP",
            b"GET /\x01 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\r\n\r\n",
            b"GETS / HTTP/1.1\r\n\r\n",
            b"get / HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(
                scan_request(bad, MAX),
                Scan::NotHttp,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn bad_authorities_give_no_host() {
        let long = format!("{}.com", "a".repeat(250));
        let label = format!("{}.com", "a".repeat(64));
        for bad in [
            "",
            ":443",
            "chatgpt.com:65536",
            "chatgpt.com:443x",
            "chatgpt.com:+443",
            "chatgpt.com:000443",
            "chat gpt.com",
            "chatgpt..com",
            "chatgpt.com:443:1",
            "xn--caf%C3%A9.com",
            long.as_str(),
            label.as_str(),
        ] {
            let s = format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n");
            assert_eq!(host_port(s.as_bytes()), (None, None), "{bad:?}");
        }
        assert_eq!(
            host_port(b"GET / HTTP/1.1\r\nHost: 10.0.0.1:\r\n\r\n"),
            hp("10.0.0.1", None)
        );
        assert_eq!(
            host_port(b"GET / HTTP/1.1\r\nHost: _dns.resolver.arpa.:00053\r\n\r\n"),
            hp("_dns.resolver.arpa.", Some(53))
        );
    }

    #[test]
    fn junk_and_tls_are_not_http() {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let junk: Vec<u8> = (0..512)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert_eq!(scan_request(&junk, MAX), Scan::NotHttp);
        assert_eq!(scan_request(b"\x00\x01GET / HTTP/1.1", MAX), Scan::NotHttp);
        let tls = records(&client_hello_message("chatgpt.com", false), 16_384);
        assert!(!starts_like_request(&tls));
        assert_eq!(scan_request(&tls, MAX), Scan::NotHttp);
    }

    #[test]
    fn connect_head_then_tls() {
        let head = b"CONNECT chatgpt.com:443 HTTP/1.1\r\nHost: chatgpt.com:443\r\nProxy-Connection: Keep-Alive\r\n\r\n";
        let tls = records(&client_hello_message("chatgpt.com", false), 16_384);
        let mut stream = head.to_vec();
        stream.extend_from_slice(&tls);
        let r = req(&stream);
        assert_eq!(r.head_len, head.len());
        assert_eq!(&stream[r.head_len..], &tls[..]);
        // The head is complete before the tunnel's bytes arrive, and the NULs in them do
        // not count against the head.
        assert_eq!(req(head).head_len, head.len());
    }
}
