//! The resolver's allocation-free reader of plain DNS queries: one question for a name
//! of letters, digits, `-` and `_`, no answers, at most an OPT record. The resolver answers
//! such a query from its cache without a hickory parse; everything else returns `None`
//! and takes the full path through hickory, so this reader must never accept a message
//! hickory would read differently (the `dns_query` fuzz target checks exactly that).

/// A plain query as read from the wire by [`read_query`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireQuery<'a> {
    /// Transaction id.
    pub id: u16,
    /// The two header flag bytes as sent (RD is bit 0 of the first, CD bit 4 of the
    /// second); QR is 0 and the opcode QUERY.
    pub flags: [u8; 2],
    /// The question name: lowercase ASCII letters, digits, `-`, `_` and dots, no empty
    /// label, no trailing dot, at most 253 bytes. Empty for the root.
    pub name: &'a str,
    /// The question section exactly as the client wrote it (letter case kept), so an
    /// answer can echo it.
    pub question: &'a [u8],
    /// Question type; never AXFR, IXFR, MAILB, MAILA or ANY (251 to 255).
    pub qtype: u16,
    /// Question class; always IN (1).
    pub qclass: u16,
    /// An EDNS OPT record is present.
    pub edns: bool,
    /// The OPT record's DO bit: the client wants DNSSEC records.
    pub dnssec_ok: bool,
    /// The largest UDP answer the client accepts: 512 without EDNS, else the OPT's
    /// payload size but never less than 512 (RFC 6891 §6.2.5).
    pub max_payload: usize,
}

/// Reads a plain query (one question, no answers, at most an OPT record) without
/// allocating; `None` for anything else, which then takes the full path. The name is
/// written lowercased into `name_buf` and borrowed from it.
pub fn read_query<'a>(b: &'a [u8], name_buf: &'a mut [u8; 256]) -> Option<WireQuery<'a>> {
    let h = b.get(..12)?;
    let (flags, qd, an, ns, ar) = (
        [h[2], h[3]],
        u16::from_be_bytes([h[4], h[5]]),
        u16::from_be_bytes([h[6], h[7]]),
        u16::from_be_bytes([h[8], h[9]]),
        u16::from_be_bytes([h[10], h[11]]),
    );
    // QR = 0, opcode QUERY, one question, nothing else but an optional OPT.
    if flags[0] & 0xf8 != 0 || qd != 1 || an != 0 || ns != 0 || ar > 1 {
        return None;
    }
    let mut i = 12;
    let mut n = 0;
    loop {
        let l = usize::from(*b.get(i)?);
        i += 1;
        if l == 0 {
            break;
        }
        // Also turns away compression pointers (0xc0) and the reserved label types.
        if l > 63 || n + l + 1 > 253 {
            return None;
        }
        if n > 0 {
            name_buf[n] = b'.';
            n += 1;
        }
        // hickory writes a leading '-' as `\-`, so the full path would cache such a name
        // under another key than this reader's: leave it to the full path.
        if b.get(i) == Some(&b'-') {
            return None;
        }
        for &c in b.get(i..i + l)? {
            if !(c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
                return None;
            }
            name_buf[n] = c.to_ascii_lowercase();
            n += 1;
        }
        i += l;
    }
    let q = b.get(i..i + 4)?;
    let (qtype, qclass) = (
        u16::from_be_bytes([q[0], q[1]]),
        u16::from_be_bytes([q[2], q[3]]),
    );
    let question = b.get(12..i + 4)?;
    i += 4;
    // AXFR, IXFR, ANY and odd classes take the full path (refused there).
    if matches!(qtype, 251..=255) || qclass != 1 {
        return None;
    }
    let (mut edns, mut dnssec_ok, mut max_payload) = (false, false, 512);
    if ar == 1 {
        // OPT: root owner, type 41, class = payload size, TTL = ext-rcode, version, flags.
        let o = b.get(i..i + 11)?;
        if o[0] != 0 || u16::from_be_bytes([o[1], o[2]]) != 41 || o[6] != 0 {
            return None;
        }
        let rdlen = usize::from(u16::from_be_bytes([o[9], o[10]]));
        if i + 11 + rdlen != b.len() || !plain_options(&b[i + 11..]) {
            return None;
        }
        edns = true;
        dnssec_ok = o[7] & 0x80 != 0;
        max_payload = usize::from(u16::from_be_bytes([o[3], o[4]])).max(512);
    } else if i != b.len() {
        return None;
    }
    let name = std::str::from_utf8(&name_buf[..n]).ok()?;
    Some(WireQuery {
        id: u16::from_be_bytes([h[0], h[1]]),
        flags,
        name,
        question,
        qtype,
        qclass,
        edns,
        dnssec_ok,
        max_payload,
    })
}

/// EDNS Client Subnet (RFC 7871): hickory reads its contents and refuses the whole
/// message over a bad one, so a query carrying it takes the full path.
const EDNS_CLIENT_SUBNET: u16 = 8;

/// The OPT record's data is a run of whole options (code, length, data) with no client
/// subnet among them: what hickory reads without error and keeps. hickory fails on an
/// option header cut short and drops every option when an option's data is, so both are
/// refused here.
fn plain_options(mut rdata: &[u8]) -> bool {
    while !rdata.is_empty() {
        let Some(h) = rdata.get(..4) else {
            return false;
        };
        let code = u16::from_be_bytes([h[0], h[1]]);
        let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        if code == EDNS_CLIENT_SUBNET {
            return false;
        }
        let Some(rest) = rdata.get(4 + len..) else {
            return false;
        };
        rdata = rest;
    }
    true
}

/// Length of the question section of a message with one question: from byte 12 to the
/// end of QCLASS. `None` when the name is compressed or the message ends first.
pub fn question_len(msg: &[u8]) -> Option<usize> {
    let mut i = 12;
    loop {
        let l = usize::from(*msg.get(i)?);
        if l == 0 {
            i += 1;
            break;
        }
        if l & 0xc0 != 0 {
            return None;
        }
        i += 1 + l;
    }
    let end = i + 4;
    (end <= msg.len()).then_some(end - 12)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{Name, RecordType};

    /// A query as a stub resolver sends it, built by hickory.
    fn query(name: &str, qtype: RecordType, id: u16, edns: Option<bool>) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
        if let Some(dnssec_ok) = edns {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            e.set_dnssec_ok(dnssec_ok);
            m.edns = Some(e);
        }
        m.to_vec().expect("encode")
    }

    /// A query written byte by byte, for names hickory would not build.
    fn raw_query(labels: &[&[u8]]) -> Vec<u8> {
        let mut q = vec![0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in labels {
            q.push(u8::try_from(l.len()).expect("short label"));
            q.extend_from_slice(l);
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        q
    }

    fn name_of(q: &[u8]) -> Option<String> {
        read_query(q, &mut [0u8; 256]).map(|w| w.name.to_string())
    }

    #[test]
    fn reads_a_plain_query() {
        let q = query("example.org.", RecordType::A, 1, None);
        let mut buf = [0u8; 256];
        let w = read_query(&q, &mut buf).expect("plain query");
        assert_eq!((w.id, w.name, w.qtype, w.qclass), (1, "example.org", 1, 1));
        assert_eq!((w.edns, w.dnssec_ok, w.max_payload), (false, false, 512));
        assert_eq!(w.flags, [0x01, 0x00]);
        assert_eq!(w.question, &q[12..]);
        assert_eq!(question_len(&q), Some(q.len() - 12));
    }

    #[test]
    fn reads_edns_and_the_do_bit() {
        let q = query("Www.Example.ORG.", RecordType::AAAA, 77, Some(true));
        let mut buf = [0u8; 256];
        let w = read_query(&q, &mut buf).expect("edns query");
        assert_eq!(
            (w.id, w.name, w.qtype, w.qclass),
            (77, "www.example.org", 28, 1)
        );
        assert!(w.edns && w.dnssec_ok);
        assert_eq!(w.max_payload, 1232);
        // The OPT record (11 bytes, no options) is not part of the question.
        assert_eq!(w.question.len(), q.len() - 12 - 11);
        assert_eq!(question_len(&q), Some(w.question.len()));
        let q = query("example.org.", RecordType::A, 1, Some(false));
        let w = read_query(&q, &mut [0u8; 256]).map(|w| (w.edns, w.dnssec_ok));
        assert_eq!(w, Some((true, false)));
    }

    /// `q` (no EDNS) with an OPT record whose data is `options`.
    fn with_options(q: &[u8], options: &[u8]) -> Vec<u8> {
        let mut q = q.to_vec();
        q[11] = 1;
        q.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0x80, 0]);
        q.extend_from_slice(&u16::try_from(options.len()).expect("short").to_be_bytes());
        q.extend_from_slice(options);
        q
    }

    #[test]
    fn reads_whole_edns_options_but_not_client_subnet() {
        let q = query("example.org.", RecordType::A, 1, None);
        let cookie = [0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];
        let padding = [0, 12, 0, 0];
        let both: Vec<u8> = cookie.iter().chain(&padding).copied().collect();
        for options in [&cookie[..], &padding, &both] {
            let m = with_options(&q, options);
            let w = read_query(&m, &mut [0u8; 256]).map(|w| (w.edns, w.dnssec_ok, w.max_payload));
            assert_eq!(w, Some((true, true, 1232)), "{options:?}");
            assert!(Message::from_vec(&m).is_ok());
        }
        // Cut short, or a client subnet (valid or not): the full path reads them.
        let subnet = [0, 8, 0, 7, 0, 1, 24, 0, 10, 0, 0];
        let empty_subnet = [0, 8, 0, 0];
        let overlong = [0, 10, 0, 200, 1, 2, 3, 4];
        for options in [
            &cookie[..11],
            &cookie[..3],
            &overlong,
            &subnet,
            &empty_subnet,
        ] {
            let m = with_options(&q, options);
            assert!(read_query(&m, &mut [0u8; 256]).is_none(), "{options:?}");
        }
        // hickory refuses some of these outright (an option header running past the end,
        // an empty client subnet) and drops the options of others; either way not a
        // message for the hot path.
        assert!(Message::from_vec(&with_options(&q, &cookie[..3])).is_err());
        assert!(Message::from_vec(&with_options(&q, &overlong)).is_err());
        assert!(Message::from_vec(&with_options(&q, &empty_subnet)).is_err());
    }

    #[test]
    fn keeps_the_question_as_written_and_folds_the_name() {
        let q = query("ChatGPT.COM.", RecordType::HTTPS, 9, None);
        let mut buf = [0u8; 256];
        let w = read_query(&q, &mut buf).expect("query");
        assert_eq!(w.name, "chatgpt.com");
        assert_eq!(&w.question[1..8], b"ChatGPT");
    }

    #[test]
    fn compression_pointers_are_refused() {
        // The name points back at the header: legal for hickory, never in a plain query.
        let mut q = vec![0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
        assert!(read_query(&q, &mut [0u8; 256]).is_none());
        assert_eq!(question_len(&q), None);
        let mut q = raw_query(&[b"a"]);
        q.splice(14..15, [0xc0, 0x0c]);
        assert!(read_query(&q, &mut [0u8; 256]).is_none());
    }

    #[test]
    fn zone_transfers_and_any_take_the_full_path() {
        for t in [RecordType::AXFR, RecordType::IXFR, RecordType::ANY] {
            let q = query("example.org.", t, 1, None);
            assert!(read_query(&q, &mut [0u8; 256]).is_none(), "{t}");
        }
        // So do other classes (CH for version.bind).
        let mut q = raw_query(&[b"version", b"bind"]);
        let at = q.len() - 1;
        q[at] = 3;
        assert!(read_query(&q, &mut [0u8; 256]).is_none());
    }

    #[test]
    fn responses_trailing_bytes_and_cuts_are_refused() {
        let mut resp = query("example.org.", RecordType::A, 1, None);
        resp[2] |= 0x80;
        assert!(read_query(&resp, &mut [0u8; 256]).is_none());
        let mut extra = query("example.org.", RecordType::A, 1, None);
        extra.push(0);
        assert!(read_query(&extra, &mut [0u8; 256]).is_none());
        let mut extra = query("example.org.", RecordType::A, 1, Some(false));
        extra.extend_from_slice(b"junk");
        assert!(read_query(&extra, &mut [0u8; 256]).is_none());
        let q = query("example.org.", RecordType::A, 1, Some(true));
        for cut in 0..q.len() {
            assert!(
                read_query(&q[..cut], &mut [0u8; 256]).is_none(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn names_with_underscore_and_hyphen() {
        assert_eq!(
            name_of(&raw_query(&[b"_dns", b"Resolver", b"arpa"])).as_deref(),
            Some("_dns.resolver.arpa")
        );
        assert_eq!(
            name_of(&raw_query(&[b"xn--chtgpt-9za", b"com"])).as_deref(),
            Some("xn--chtgpt-9za.com")
        );
        // A leading '-' is written `\-` by hickory, so it would key the cache differently.
        for bad in [&b"a b"[..], b"a.b", b"caf\xc3\xa9", b"a*", b"\0", b"-a"] {
            assert_eq!(name_of(&raw_query(&[bad, b"com"])), None, "{bad:?}");
        }
    }

    #[test]
    fn label_and_name_limits() {
        let l63 = [b'a'; 63];
        let l64 = [b'a'; 64];
        assert_eq!(
            name_of(&raw_query(&[&l63, b"com"])).map(|n| n.len()),
            Some(67)
        );
        assert_eq!(name_of(&raw_query(&[&l64, b"com"])), None);
        // 63 + 63 + 63 + 61 bytes and three dots: 253, the longest name DNS can carry.
        let l61 = [b'b'; 61];
        let name253 = raw_query(&[&l63, &l63, &l63, &l61]);
        assert_eq!(name_of(&name253).map(|n| n.len()), Some(253));
        let l62 = [b'b'; 62];
        assert_eq!(name_of(&raw_query(&[&l63, &l63, &l63, &l62])), None);
    }
}
