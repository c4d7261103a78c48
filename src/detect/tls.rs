//! TLS ClientHello reading, shared by TCP and QUIC: find one complete handshake message in
//! the start of a client stream (it may span several TLS records), then pull out the SNI,
//! the ALPN list and whether an `encrypted_client_hello` extension is present.

use std::borrow::Cow;

use tls_parser::{
    parse_tls_extension, parse_tls_message_handshake, TlsExtension, TlsMessage, TlsMessageHandshake,
};

/// Record content type of handshake records.
const HANDSHAKE: u8 = 22;
/// Handshake message type of a ClientHello.
const CLIENT_HELLO: u8 = 1;
/// TLS extension numbers read here.
const EXT_SNI: u16 = 0;
const EXT_ALPN: u16 = 16;
/// RFC 9849 (draft-ietf-tls-esni) `encrypted_client_hello`.
const EXT_ECH: u16 = 0xfe0d;
/// The largest record payload a peer may send (2^14 plus expansion slack for old stacks).
const MAX_RECORD: usize = 16_384 + 2_048;

/// What the start of a TCP client stream holds so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan<'a> {
    /// Looks like a ClientHello; more bytes are needed.
    NeedMore,
    /// Not a TLS ClientHello: stop tracking the flow.
    NotClientHello,
    /// A ClientHello whose header announces more than the limit: it cannot be read whole
    /// (a padded hello meant to outrun a monitor's buffer, or a broken client).
    TooLarge,
    /// The handshake message (4-byte header and body). Borrowed when one record held it.
    Complete(Cow<'a, [u8]>),
}

/// Scans TLS records at the start of `stream` for one complete ClientHello message no
/// longer than `max_message` bytes. Never allocates more than the bytes present.
pub fn scan_records(stream: &[u8], max_message: usize) -> Scan<'_> {
    let mut pos = 0usize;
    // Message bytes gathered from records after the first (only when it spans records).
    let mut joined: Option<Vec<u8>> = None;
    let mut first_fragment: &[u8] = &[];
    loop {
        let Some(hdr) = stream.get(pos..pos + 5) else {
            return check_partial(stream.get(pos..).unwrap_or(&[]), first_fragment, &joined);
        };
        if hdr[0] != HANDSHAKE || hdr[1] != 3 || hdr[2] > 4 {
            return Scan::NotClientHello;
        }
        let len = usize::from(u16::from_be_bytes([hdr[3], hdr[4]]));
        if len == 0 || len > MAX_RECORD {
            return Scan::NotClientHello;
        }
        let body_start = pos + 5;
        let available = stream.len().saturating_sub(body_start).min(len);
        let body = &stream[body_start..body_start + available];
        match &mut joined {
            None if pos == 0 => first_fragment = body,
            None => {
                let mut v = Vec::with_capacity(first_fragment.len() + body.len());
                v.extend_from_slice(first_fragment);
                v.extend_from_slice(body);
                joined = Some(v);
            }
            Some(v) => v.extend_from_slice(body),
        }
        let msg: &[u8] = joined.as_deref().unwrap_or(first_fragment);
        if let Some(h) = msg.get(..4) {
            if h[0] != CLIENT_HELLO {
                return Scan::NotClientHello;
            }
            let need = 4 + (usize::from(h[1]) << 16 | usize::from(h[2]) << 8 | usize::from(h[3]));
            if need > max_message {
                return Scan::TooLarge;
            }
            if msg.len() >= need {
                return Scan::Complete(match joined {
                    Some(mut v) => {
                        v.truncate(need);
                        Cow::Owned(v)
                    }
                    None => Cow::Borrowed(&first_fragment[..need]),
                });
            }
        } else if msg.first().is_some_and(|&t| t != CLIENT_HELLO) {
            return Scan::NotClientHello;
        }
        if available < len {
            return Scan::NeedMore;
        }
        pos = body_start + len;
    }
}

/// A record header is incomplete: decide from the bytes we have whether it can still be TLS.
fn check_partial<'a>(tail: &[u8], first: &[u8], joined: &Option<Vec<u8>>) -> Scan<'a> {
    let plausible = match tail {
        [] => true,
        [t] => *t == HANDSHAKE,
        [t, major, rest @ ..] => {
            *t == HANDSHAKE && *major == 3 && rest.first().is_none_or(|minor| *minor <= 4)
        }
    };
    let msg_type = joined.as_deref().unwrap_or(first).first();
    if plausible && msg_type.is_none_or(|&t| t == CLIENT_HELLO) {
        Scan::NeedMore
    } else {
        Scan::NotClientHello
    }
}

/// What a ClientHello says about its destination.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    /// The first host_name of the server_name extension, raw (validated by the caller).
    pub sni: Option<Vec<u8>>,
    /// ALPN protocol names offered.
    pub alpn: Vec<String>,
    /// An `encrypted_client_hello` extension is present: `sni` is the outer name.
    pub ech: bool,
}

/// Parses a complete ClientHello handshake message (4-byte header included).
/// `None` when it is not a well-formed ClientHello.
pub fn parse_client_hello(message: &[u8]) -> Option<ClientHello> {
    let (_, msg) = parse_tls_message_handshake(message).ok()?;
    let TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)) = msg else {
        return None;
    };
    let mut out = ClientHello::default();
    let mut exts = ch.ext.unwrap_or(&[]);
    // Walk extensions by their outer framing so one odd extension (a new key share, a
    // GREASE value) cannot hide the SNI; only SNI and ALPN are handed to tls-parser.
    while exts.len() >= 4 {
        let ty = u16::from_be_bytes([exts[0], exts[1]]);
        let len = usize::from(u16::from_be_bytes([exts[2], exts[3]]));
        let whole = exts.get(..4 + len)?;
        match ty {
            EXT_SNI => {
                let Ok((_, TlsExtension::SNI(names))) = parse_tls_extension(whole) else {
                    return None;
                };
                // An SNI extension without a host_name entry is malformed, not absent.
                let name = names.iter().find(|(kind, _)| kind.0 == 0)?;
                out.sni = Some(name.1.to_vec());
            }
            EXT_ALPN => {
                if let Ok((_, TlsExtension::ALPN(protos))) = parse_tls_extension(whole) {
                    out.alpn = protos
                        .iter()
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                        .collect();
                }
            }
            EXT_ECH => out.ech = true,
            _ => {}
        }
        exts = &exts[4 + len..];
    }
    Some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal hand-framed ClientHello: TLS 1.2 legacy fields, SNI, ALPN and optionally ECH.
    pub(crate) fn client_hello_message(sni: &str, ech: bool) -> Vec<u8> {
        let mut exts = Vec::new();
        // server_name
        let name = sni.as_bytes();
        let list_len = 3 + name.len();
        exts.extend_from_slice(&EXT_SNI.to_be_bytes());
        exts.extend_from_slice(&u16::try_from(list_len + 2).expect("small").to_be_bytes());
        exts.extend_from_slice(&u16::try_from(list_len).expect("small").to_be_bytes());
        exts.push(0);
        exts.extend_from_slice(&u16::try_from(name.len()).expect("small").to_be_bytes());
        exts.extend_from_slice(name);
        // ALPN h2, http/1.1
        let alpn: &[u8] = b"\x02h2\x08http/1.1";
        exts.extend_from_slice(&EXT_ALPN.to_be_bytes());
        exts.extend_from_slice(&u16::try_from(alpn.len() + 2).expect("small").to_be_bytes());
        exts.extend_from_slice(&u16::try_from(alpn.len()).expect("small").to_be_bytes());
        exts.extend_from_slice(alpn);
        if ech {
            exts.extend_from_slice(&EXT_ECH.to_be_bytes());
            exts.extend_from_slice(&[0, 4, 0, 1, 2, 3]);
        }
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7u8; 32]); // random
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher suite
        body.extend_from_slice(&[1, 0]); // null compression
        body.extend_from_slice(&u16::try_from(exts.len()).expect("small").to_be_bytes());
        body.extend_from_slice(&exts);
        let mut msg = vec![CLIENT_HELLO];
        let l = u32::try_from(body.len()).expect("small").to_be_bytes();
        msg.extend_from_slice(&l[1..]);
        msg.extend_from_slice(&body);
        msg
    }

    /// Frames `msg` into TLS handshake records of at most `chunk` bytes each.
    pub(crate) fn records(msg: &[u8], chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for part in msg.chunks(chunk) {
            out.extend_from_slice(&[HANDSHAKE, 3, 1]);
            out.extend_from_slice(&u16::try_from(part.len()).expect("small").to_be_bytes());
            out.extend_from_slice(part);
        }
        out
    }

    #[test]
    fn parses_sni_alpn_and_ech() {
        let msg = client_hello_message("Claude.AI", true);
        let ch = parse_client_hello(&msg).expect("parses");
        assert_eq!(ch.sni.as_deref(), Some(&b"Claude.AI"[..]));
        assert_eq!(ch.alpn, vec!["h2".to_string(), "http/1.1".to_string()]);
        assert!(ch.ech);
        let plain = parse_client_hello(&client_hello_message("x.example", false)).expect("ok");
        assert!(!plain.ech);
    }

    #[test]
    fn scans_one_record_without_copy() {
        let msg = client_hello_message("chatgpt.com", false);
        let stream = records(&msg, 16_384);
        match scan_records(&stream, 16_384) {
            Scan::Complete(Cow::Borrowed(m)) => assert_eq!(m, &msg[..]),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn scans_message_split_over_records() {
        let msg = client_hello_message("gemini.google.com", false);
        let stream = records(&msg, 7);
        assert_eq!(
            scan_records(&stream, 16_384),
            Scan::Complete(Cow::Owned(msg.clone()))
        );
        // Every strict prefix asks for more, never fails.
        for cut in 0..stream.len() {
            assert_eq!(
                scan_records(&stream[..cut], 16_384),
                Scan::NeedMore,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn rejects_other_traffic_and_oversize() {
        assert_eq!(
            scan_records(b"GET / HTTP/1.1\r\n", 16_384),
            Scan::NotClientHello
        );
        assert_eq!(
            scan_records(&[0x17, 3, 3, 0, 10], 16_384),
            Scan::NotClientHello
        );
        // ServerHello (type 2) is not a ClientHello.
        assert_eq!(
            scan_records(&[22, 3, 3, 0, 4, 2, 0, 0, 0], 16_384),
            Scan::NotClientHello
        );
        let msg = client_hello_message("chatgpt.com", false);
        assert_eq!(scan_records(&records(&msg, 100), 64), Scan::TooLarge);
    }

    #[test]
    fn bad_sni_length_is_not_a_panic() {
        let mut msg = client_hello_message("claude.ai", false);
        // Overwrite each byte after the fixed fields in turn with 0xff: lengths then claim
        // more than is there, and parsing must fail softly.
        for i in 40..msg.len() {
            let saved = msg[i];
            msg[i] = 0xff;
            let _ = parse_client_hello(&msg);
            msg[i] = saved;
        }
    }
}
