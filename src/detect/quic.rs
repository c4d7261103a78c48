//! QUIC client Initial packets (RFC 9000, RFC 9001 for v1; RFC 9369 for v2): derive the
//! Initial keys from the client's Destination Connection ID, remove header protection,
//! decrypt, and reassemble CRYPTO frames (out of order, several per packet, across several
//! Initials) until the ClientHello is complete. Crypto is ring's; nothing is hand-rolled.
//!
//! Initial keys are public by design (anyone who sees the DCID can derive them), so this
//! reads exactly what every on-path middlebox can read, no more.

use ring::aead::quic::{HeaderProtectionKey, AES_128};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use ring::hkdf::{KeyType, Prk, Salt, HKDF_SHA256};

use super::flow::StreamBuf;
use super::observation::FlowKey;
use super::table::{map, Map};
use super::time::Timestamp;

const V1: u32 = 0x0000_0001;
const V2: u32 = 0x6b33_43cf;
const V1_SALT: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
const V2_SALT: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];
/// RFC 9000 §14.1: a client pads datagrams carrying Initial packets to at least 1200 bytes.
const MIN_CLIENT_DATAGRAM: usize = 1200;
const MAX_CID: usize = 20;

/// Limits of QUIC tracking.
#[derive(Debug, Clone)]
pub struct QuicConfig {
    /// Connections tracked at once (least recently used evicted).
    pub max_connections: usize,
    /// CRYPTO stream bytes kept per connection.
    pub max_crypto_bytes: usize,
    /// Capture time a connection may take to deliver its ClientHello.
    pub timeout_micros: u64,
}

impl Default for QuicConfig {
    fn default() -> Self {
        QuicConfig {
            max_connections: 65_536,
            max_crypto_bytes: 16 * 1024,
            timeout_micros: 5_000_000,
        }
    }
}

/// QUIC version of an Initial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuicVersion {
    /// RFC 9000.
    V1,
    /// RFC 9369.
    V2,
}

impl QuicVersion {
    fn from_wire(v: u32) -> Option<QuicVersion> {
        match v {
            V1 => Some(QuicVersion::V1),
            V2 => Some(QuicVersion::V2),
            _ => None,
        }
    }

    /// The long-header packet type bits of an Initial.
    fn initial_type(self) -> u8 {
        match self {
            QuicVersion::V1 => 0b00,
            QuicVersion::V2 => 0b01,
        }
    }

    fn retry_type(self) -> u8 {
        match self {
            QuicVersion::V1 => 0b11,
            QuicVersion::V2 => 0b00,
        }
    }

    fn salt(self) -> &'static [u8] {
        match self {
            QuicVersion::V1 => &V1_SALT,
            QuicVersion::V2 => &V2_SALT,
        }
    }

    fn labels(self) -> [&'static [u8]; 3] {
        match self {
            QuicVersion::V1 => [b"quic key", b"quic iv", b"quic hp"],
            QuicVersion::V2 => [b"quicv2 key", b"quicv2 iv", b"quicv2 hp"],
        }
    }
}

/// What one datagram did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuicEvent {
    /// Not a client Initial of a supported version.
    NotInitial,
    /// Decrypted; the ClientHello is not complete yet.
    Pending,
    /// The connection already produced its ClientHello (a retransmission).
    Duplicate,
    /// The complete ClientHello handshake message (4-byte header and body).
    ClientHello {
        /// The QUIC version.
        version: QuicVersion,
        /// The message.
        message: Vec<u8>,
    },
    /// Looked like an Initial but could not be used.
    Dropped(QuicDrop),
}

/// Why an Initial was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuicDrop {
    /// Shorter than its headers claim.
    Truncated,
    /// AEAD authentication failed (a server Initial, or corrupted).
    DecryptFailed,
    /// A frame not allowed in an Initial, or malformed.
    BadFrame,
    /// The ClientHello would exceed the byte limit.
    TooLarge,
    /// The ClientHello did not complete in time.
    TimedOut,
    /// The CRYPTO stream does not start with a ClientHello.
    NotClientHello,
}

impl QuicDrop {
    /// snake_case name for counters.
    pub fn as_str(self) -> &'static str {
        match self {
            QuicDrop::Truncated => "quic_truncated",
            QuicDrop::DecryptFailed => "quic_decrypt_failed",
            QuicDrop::BadFrame => "quic_bad_frame",
            QuicDrop::TooLarge => "quic_too_large",
            QuicDrop::TimedOut => "quic_timed_out",
            QuicDrop::NotClientHello => "quic_not_client_hello",
        }
    }
}

/// Client Initial keys of one connection.
struct Keys {
    aead: LessSafeKey,
    iv: [u8; 12],
    hp: HeaderProtectionKey,
}

struct OutLen(usize);

impl KeyType for OutLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
fn expand_label(prk: &Prk, label: &[u8], out: &mut [u8]) -> Option<()> {
    let len = u16::try_from(out.len()).ok()?.to_be_bytes();
    let label_len = [u8::try_from(6 + label.len()).ok()?];
    let info: [&[u8]; 5] = [&len, &label_len, b"tls13 ", label, &[0]];
    prk.expand(&info, OutLen(out.len())).ok()?.fill(out).ok()
}

impl Keys {
    fn derive(version: QuicVersion, dcid: &[u8]) -> Option<Keys> {
        let initial = Salt::new(HKDF_SHA256, version.salt()).extract(dcid);
        let mut client = [0u8; 32];
        expand_label(&initial, b"client in", &mut client)?;
        let client = Prk::new_less_safe(HKDF_SHA256, &client);
        let [key_label, iv_label, hp_label] = version.labels();
        let (mut key, mut iv, mut hp) = ([0u8; 16], [0u8; 12], [0u8; 16]);
        expand_label(&client, key_label, &mut key)?;
        expand_label(&client, iv_label, &mut iv)?;
        expand_label(&client, hp_label, &mut hp)?;
        Some(Keys {
            aead: LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &key).ok()?),
            iv,
            hp: HeaderProtectionKey::new(&AES_128, &hp).ok()?,
        })
    }
}

/// A QUIC variable-length integer (RFC 9000 §16) at the front of `b`.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let len = 1usize << (first >> 6);
    let bytes = b.get(..len)?;
    let mut v = u64::from(first & 0x3f);
    for &x in &bytes[1..] {
        v = v << 8 | u64::from(x);
    }
    Some((v, len))
}

/// The parsed, still protected, long header of one packet.
struct LongHeader<'a> {
    version: QuicVersion,
    packet_type: u8,
    dcid: &'a [u8],
    /// Offset of the packet number from the start of the packet.
    pn_offset: usize,
    /// Total packet length (header, packet number and payload).
    packet_len: usize,
}

enum HeaderResult<'a> {
    NotLong,
    Truncated,
    Header(LongHeader<'a>),
}

fn parse_long_header(p: &[u8]) -> HeaderResult<'_> {
    let Some(&b0) = p.first() else {
        return HeaderResult::NotLong;
    };
    if b0 & 0xc0 != 0xc0 {
        return HeaderResult::NotLong;
    }
    let Some(v) = p.get(1..5) else {
        return HeaderResult::Truncated;
    };
    let Some(version) = QuicVersion::from_wire(u32::from_be_bytes([v[0], v[1], v[2], v[3]])) else {
        return HeaderResult::NotLong;
    };
    let packet_type = (b0 >> 4) & 0b11;
    let parse = || -> Option<LongHeader<'_>> {
        let dcid_len = usize::from(*p.get(5)?);
        if dcid_len > MAX_CID {
            return None;
        }
        let dcid = p.get(6..6 + dcid_len)?;
        let mut at = 6 + dcid_len;
        let scid_len = usize::from(*p.get(at)?);
        if scid_len > MAX_CID {
            return None;
        }
        at += 1 + scid_len;
        if packet_type == version.retry_type() {
            return Some(LongHeader {
                version,
                packet_type,
                dcid,
                pn_offset: p.len(),
                packet_len: p.len(),
            });
        }
        if packet_type == version.initial_type() {
            let (token_len, n) = varint(p.get(at..)?)?;
            at = at
                .checked_add(n)?
                .checked_add(usize::try_from(token_len).ok()?)?;
        }
        let (len, n) = varint(p.get(at..)?)?;
        let pn_offset = at + n;
        let packet_len = pn_offset.checked_add(usize::try_from(len).ok()?)?;
        (packet_len <= p.len()).then_some(LongHeader {
            version,
            packet_type,
            dcid,
            pn_offset,
            packet_len,
        })
    };
    match parse() {
        Some(h) => HeaderResult::Header(h),
        None => HeaderResult::Truncated,
    }
}

/// RFC 9000 Appendix A.3.
fn decode_packet_number(largest: Option<u64>, truncated: u64, bits: u32) -> u64 {
    let expected = largest.map_or(0, |l| l + 1);
    let win = 1u64 << bits;
    let hwin = win / 2;
    let mask = win - 1;
    let candidate = (expected & !mask) | truncated;
    if candidate + hwin <= expected && candidate < (1 << 62) - win {
        candidate + win
    } else if candidate > expected + hwin && candidate >= win {
        candidate - win
    } else {
        candidate
    }
}

/// A decrypted Initial packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecryptedInitial {
    /// QUIC version.
    pub version: QuicVersion,
    /// Destination Connection ID the keys came from.
    pub dcid: Vec<u8>,
    /// Full packet number.
    pub packet_number: u64,
    /// Plaintext frames.
    pub payload: Vec<u8>,
    /// Bytes of the datagram this packet used.
    pub packet_len: usize,
}

/// Removes protection from the Initial `h` at the start of `p` with `keys`.
fn unprotect(
    keys: &Keys,
    h: &LongHeader<'_>,
    p: &[u8],
    largest: Option<u64>,
) -> Result<(u64, Vec<u8>), QuicDrop> {
    let sample = p
        .get(h.pn_offset + 4..h.pn_offset + 20)
        .ok_or(QuicDrop::Truncated)?;
    let mask = keys
        .hp
        .new_mask(sample)
        .map_err(|_| QuicDrop::DecryptFailed)?;
    let b0 = p[0] ^ (mask[0] & 0x0f);
    let pn_len = usize::from(b0 & 0x03) + 1;
    let header_len = h.pn_offset + pn_len;
    if header_len + 16 > h.packet_len {
        return Err(QuicDrop::Truncated);
    }
    let mut header = p[..header_len].to_vec();
    header[0] = b0;
    let mut truncated = 0u64;
    for i in 0..pn_len {
        header[h.pn_offset + i] ^= mask[1 + i];
        truncated = truncated << 8 | u64::from(header[h.pn_offset + i]);
    }
    let pn = decode_packet_number(largest, truncated, 8 * pn_len as u32);
    let mut nonce = keys.iv;
    for (n, b) in nonce[4..].iter_mut().zip(pn.to_be_bytes()) {
        *n ^= b;
    }
    let mut payload = p[header_len..h.packet_len].to_vec();
    let plain_len = keys
        .aead
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&header[..]),
            &mut payload,
        )
        .map_err(|_| QuicDrop::DecryptFailed)?
        .len();
    payload.truncate(plain_len);
    Ok((pn, payload))
}

/// Decrypts the first client Initial packet in `datagram` (for tests and benchmarks).
pub fn decrypt_client_initial(datagram: &[u8]) -> Option<DecryptedInitial> {
    let HeaderResult::Header(h) = parse_long_header(datagram) else {
        return None;
    };
    if h.packet_type != h.version.initial_type() {
        return None;
    }
    let keys = Keys::derive(h.version, h.dcid)?;
    let (packet_number, payload) = unprotect(&keys, &h, datagram, None).ok()?;
    Some(DecryptedInitial {
        version: h.version,
        dcid: h.dcid.to_vec(),
        packet_number,
        payload,
        packet_len: h.packet_len,
    })
}

/// One CRYPTO frame: its stream offset and data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CryptoFrame<'a> {
    /// Offset in the CRYPTO stream.
    pub offset: u64,
    /// The bytes.
    pub data: &'a [u8],
}

/// The CRYPTO frames of a decrypted Initial payload, in packet order. `None` when a frame
/// is malformed or not allowed in an Initial packet.
pub fn crypto_frames(mut p: &[u8]) -> Option<Vec<CryptoFrame<'_>>> {
    let mut out = Vec::new();
    while let Some(&ty) = p.first() {
        match ty {
            0x00 => {
                let n = p.iter().take_while(|&&b| b == 0).count();
                p = &p[n..];
            }
            0x01 => p = &p[1..],
            0x02 | 0x03 => {
                let mut at = 1;
                let next = |p: &[u8], at: &mut usize| -> Option<u64> {
                    let (v, n) = varint(p.get(*at..)?)?;
                    *at += n;
                    Some(v)
                };
                let _largest = next(p, &mut at)?;
                let _delay = next(p, &mut at)?;
                let ranges = next(p, &mut at)?;
                let _first = next(p, &mut at)?;
                // Each range is two varints of at least one byte: bound the loop by what
                // is left rather than by the claimed count.
                if ranges > (p.len() as u64) / 2 {
                    return None;
                }
                for _ in 0..ranges {
                    next(p, &mut at)?;
                    next(p, &mut at)?;
                }
                if ty == 0x03 {
                    for _ in 0..3 {
                        next(p, &mut at)?;
                    }
                }
                p = &p[at..];
            }
            0x06 => {
                let (offset, n1) = varint(p.get(1..)?)?;
                let (len, n2) = varint(p.get(1 + n1..)?)?;
                let start = 1 + n1 + n2;
                let end = start.checked_add(usize::try_from(len).ok()?)?;
                out.push(CryptoFrame {
                    offset,
                    data: p.get(start..end)?,
                });
                p = &p[end..];
            }
            0x1c => {
                let mut at = 1;
                for _ in 0..2 {
                    let (_, n) = varint(p.get(at..)?)?;
                    at += n;
                }
                let (len, n) = varint(p.get(at..)?)?;
                at = at.checked_add(n)?.checked_add(usize::try_from(len).ok()?)?;
                p = p.get(at..)?;
            }
            _ => return None,
        }
    }
    Some(out)
}

struct Conn {
    version: QuicVersion,
    keys: Keys,
    first_seen: Timestamp,
    largest_pn: Option<u64>,
    crypto: StreamBuf,
    done: bool,
}

type ConnKey = (FlowKey, [u8; MAX_CID], u8);

/// Tracks client Initials per connection until each yields its ClientHello.
pub struct QuicTracker {
    cfg: QuicConfig,
    conns: Map<ConnKey, Conn>,
}

impl QuicTracker {
    /// A tracker with the given limits.
    pub fn new(cfg: QuicConfig) -> QuicTracker {
        QuicTracker {
            conns: map(cfg.max_connections),
            cfg,
        }
    }

    /// Connections tracked now.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// True when no connection is tracked.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Handles one UDP payload sent from `key.src` to `key.dst`.
    pub fn on_datagram(&mut self, now: Timestamp, key: FlowKey, datagram: &[u8]) -> QuicEvent {
        // The hot path: most UDP is not a padded client Initial.
        if datagram.len() < MIN_CLIENT_DATAGRAM || datagram[0] & 0xc0 != 0xc0 {
            return QuicEvent::NotInitial;
        }
        let mut rest = datagram;
        let mut result = QuicEvent::NotInitial;
        // Coalesced packets: an Initial may be followed by 0-RTT or Handshake packets.
        while !rest.is_empty() {
            let h = match parse_long_header(rest) {
                HeaderResult::Header(h) => h,
                HeaderResult::Truncated if matches!(result, QuicEvent::NotInitial) => {
                    return QuicEvent::Dropped(QuicDrop::Truncated)
                }
                _ => break,
            };
            let used = h.packet_len;
            if h.packet_type == h.version.initial_type() {
                match self.on_initial(now, key, &h, rest) {
                    QuicEvent::NotInitial | QuicEvent::Pending => result = QuicEvent::Pending,
                    done => return done,
                }
            }
            if used == 0 || h.packet_type == h.version.retry_type() {
                break;
            }
            rest = &rest[used..];
        }
        result
    }

    fn on_initial(
        &mut self,
        now: Timestamp,
        flow: FlowKey,
        h: &LongHeader<'_>,
        p: &[u8],
    ) -> QuicEvent {
        let mut dcid = [0u8; MAX_CID];
        dcid[..h.dcid.len()].copy_from_slice(h.dcid);
        let key: ConnKey = (flow, dcid, h.dcid.len() as u8);
        let fresh = !self.conns.contains(&key);
        if fresh {
            let Some(keys) = Keys::derive(h.version, h.dcid) else {
                return QuicEvent::Dropped(QuicDrop::DecryptFailed);
            };
            self.conns.push(
                key,
                Conn {
                    version: h.version,
                    keys,
                    first_seen: now,
                    largest_pn: None,
                    crypto: StreamBuf::new(0),
                    done: false,
                },
            );
        }
        let cfg = &self.cfg;
        let Some(conn) = self.conns.get_mut(&key) else {
            return QuicEvent::Dropped(QuicDrop::DecryptFailed);
        };
        if conn.done {
            return QuicEvent::Duplicate;
        }
        if now.micros_since(conn.first_seen) > cfg.timeout_micros {
            self.conns.pop(&key);
            return QuicEvent::Dropped(QuicDrop::TimedOut);
        }
        let (pn, payload) = match unprotect(&conn.keys, h, p, conn.largest_pn) {
            Ok(x) => x,
            Err(e) => {
                if fresh {
                    // Server Initials and noise must not occupy the table.
                    self.conns.pop(&key);
                }
                return QuicEvent::Dropped(e);
            }
        };
        conn.largest_pn = Some(conn.largest_pn.map_or(pn, |l| l.max(pn)));
        let Some(frames) = crypto_frames(&payload) else {
            return QuicEvent::Dropped(QuicDrop::BadFrame);
        };
        for f in frames {
            let Ok(offset) = u32::try_from(f.offset) else {
                self.conns.pop(&key);
                return QuicEvent::Dropped(QuicDrop::TooLarge);
            };
            if conn
                .crypto
                .insert(offset, f.data, cfg.max_crypto_bytes)
                .is_err()
            {
                self.conns.pop(&key);
                return QuicEvent::Dropped(QuicDrop::TooLarge);
            }
        }
        let stream = conn.crypto.contiguous();
        let Some(hdr) = stream.get(..4) else {
            return QuicEvent::Pending;
        };
        if hdr[0] != 1 {
            self.conns.pop(&key);
            return QuicEvent::Dropped(QuicDrop::NotClientHello);
        }
        let need = 4 + (usize::from(hdr[1]) << 16 | usize::from(hdr[2]) << 8 | usize::from(hdr[3]));
        if need > cfg.max_crypto_bytes {
            self.conns.pop(&key);
            return QuicEvent::Dropped(QuicDrop::TooLarge);
        }
        if stream.len() < need {
            return QuicEvent::Pending;
        }
        let message = stream[..need].to_vec();
        conn.done = true;
        conn.crypto = StreamBuf::default();
        QuicEvent::ClientHello {
            version: conn.version,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::tls::parse_client_hello;

    fn hex(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/quic/{name}", env!("CARGO_MANIFEST_DIR"));
        let text: String = std::fs::read_to_string(path)
            .expect("fixture")
            .chars()
            .filter(|c| c.is_ascii_hexdigit())
            .collect();
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn flow() -> FlowKey {
        FlowKey {
            src: "10.0.0.23:50000".parse().expect("addr"),
            dst: "192.0.2.1:443".parse().expect("addr"),
        }
    }

    #[test]
    fn rfc_vectors_decrypt_to_the_published_plaintext() {
        let mut expected = hex("rfc_a2_plaintext_payload.hex");
        expected.resize(expected.len() + 917, 0);
        for (file, version) in [
            ("rfc9001_a2_client_initial.hex", QuicVersion::V1),
            ("rfc9369_a2_client_initial.hex", QuicVersion::V2),
        ] {
            let packet = hex(file);
            assert_eq!(packet.len(), 1200);
            let d = decrypt_client_initial(&packet).expect(file);
            assert_eq!(d.version, version);
            assert_eq!(d.packet_number, 2);
            assert_eq!(d.dcid, [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08]);
            assert_eq!(d.payload, expected, "{file}");
            let mut t = QuicTracker::new(QuicConfig::default());
            match t.on_datagram(Timestamp::from_micros(0), flow(), &packet) {
                QuicEvent::ClientHello {
                    version: v,
                    message,
                } => {
                    assert_eq!(v, version);
                    let ch = parse_client_hello(&message).expect("parses");
                    assert_eq!(ch.sni.as_deref(), Some(&b"example.com"[..]));
                }
                other => panic!("{file}: {other:?}"),
            }
            assert_eq!(
                t.on_datagram(Timestamp::from_micros(1), flow(), &packet),
                QuicEvent::Duplicate
            );
        }
    }

    #[test]
    fn rfc_key_derivation_matches_appendix_a1() {
        let k = Keys::derive(
            QuicVersion::V1,
            &[0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08],
        )
        .expect("keys");
        // RFC 9001 A.1: client iv fa044b2f42a3fd3b46fb255c.
        assert_eq!(
            k.iv,
            [0xfa, 0x04, 0x4b, 0x2f, 0x42, 0xa3, 0xfd, 0x3b, 0x46, 0xfb, 0x25, 0x5c]
        );
        let k2 = Keys::derive(
            QuicVersion::V2,
            &[0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08],
        )
        .expect("keys");
        // RFC 9369 A.1: client iv 91f73e2351d8fa91660e909f.
        assert_eq!(
            k2.iv,
            [0x91, 0xf7, 0x3e, 0x23, 0x51, 0xd8, 0xfa, 0x91, 0x66, 0x0e, 0x90, 0x9f]
        );
    }

    #[test]
    fn truncations_and_corruption_never_panic() {
        let packet = hex("rfc9001_a2_client_initial.hex");
        let mut t = QuicTracker::new(QuicConfig::default());
        for len in 0..packet.len() {
            let _ = t.on_datagram(Timestamp::from_micros(0), flow(), &packet[..len]);
            let _ = decrypt_client_initial(&packet[..len]);
        }
        let mut bad = packet.clone();
        bad[600] ^= 1;
        assert_eq!(
            t.on_datagram(Timestamp::from_micros(0), flow(), &bad),
            QuicEvent::Dropped(QuicDrop::DecryptFailed)
        );
        assert!(t.is_empty(), "a failed fresh connection is not kept");
        assert_eq!(
            t.on_datagram(Timestamp::from_micros(0), flow(), &[0x40; 1300]),
            QuicEvent::NotInitial
        );
    }

    #[test]
    fn crypto_frames_parse_ack_padding_and_reject_others() {
        let p = [
            0x02, 0x05, 0x00, 0x01, 0x00, 0x03, 0x01, 0x01, // ACK with one extra range
            0x06, 0x04, 0x02, 0xaa, 0xbb, // CRYPTO offset 4 len 2
            0x00, 0x00, 0x01, // padding, ping
            0x06, 0x00, 0x01, 0xcc, // CRYPTO offset 0 len 1
        ];
        let f = crypto_frames(&p).expect("valid");
        assert_eq!(
            f,
            vec![
                CryptoFrame {
                    offset: 4,
                    data: &[0xaa, 0xbb]
                },
                CryptoFrame {
                    offset: 0,
                    data: &[0xcc]
                }
            ]
        );
        assert_eq!(crypto_frames(&[0x08, 0x00]), None, "STREAM is not allowed");
        assert_eq!(crypto_frames(&[0x06, 0x00, 0x40]), None, "truncated");
    }

    #[test]
    fn packet_numbers_follow_rfc9000_a3() {
        assert_eq!(
            decode_packet_number(Some(0xa82f30ea), 0x9b32, 16),
            0xa82f9b32
        );
        assert_eq!(decode_packet_number(None, 2, 32), 2);
    }
}
