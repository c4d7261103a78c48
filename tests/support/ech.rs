//! Real Encrypted Client Hello (RFC 9849) from rustls 0.23, and the fixture that carries it.
//!
//! rustls encrypts the inner ClientHello (with the name the user asked for) to the public
//! key of an ECHConfig and puts the config's `public_name` in the outer SNI. There is no
//! server here, so the ECHConfigList is built by hand in the wire format of RFC 9849 §4,
//! shaped like the one Cloudflare publishes (one config, DHKEM(X25519, HKDF-SHA256),
//! HKDF-SHA256 with AES-128-GCM, maximum_name_length 0, no extensions). The key pair is
//! the fixed RFC 7748 §6.1 test vector, so every run describes the same server and a test
//! can open what rustls sealed; the client's own randoms still differ run to run.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use hickory_proto::rr::RecordType;

use super::{dns_udp, sa, tcp_conn, v4, Capture, Link, Res, Tcp, CLIENT};

/// RFC 7748 §6.1, Alice's X25519 private key: only tests use it, to open the inner hello.
pub(crate) const ECH_SECRET_KEY: [u8; 32] = [
    0x77, 0x07, 0x6d, 0x0a, 0x73, 0x18, 0xa5, 0x7d, 0x3c, 0x16, 0xc1, 0x72, 0x51, 0xb2, 0x66, 0x45,
    0xdf, 0x4c, 0x2f, 0x87, 0xeb, 0xc0, 0x99, 0x2a, 0xb1, 0x77, 0xfb, 0xa5, 0x1d, 0xb9, 0x2c, 0x2a,
];

/// RFC 7748 §6.1, Alice's public key X25519(a, 9): the key the ECHConfig publishes.
pub(crate) const ECH_PUBLIC_KEY: [u8; 32] = [
    0x85, 0x20, 0xf0, 0x09, 0x89, 0x30, 0xa7, 0x54, 0x74, 0x8b, 0x7d, 0xdc, 0xb4, 0x3e, 0xf7, 0x5a,
    0x0d, 0xbf, 0x3a, 0x0d, 0x26, 0x38, 0x1a, 0xf4, 0xeb, 0xa4, 0xa9, 0x8e, 0xaa, 0x9b, 0x4e, 0x6a,
];

/// Ethernet MSS with TCP timestamps: the ~1.9 KB outer hello takes two segments, as on a
/// real link.
const MSS: usize = 1448;

const ECH_VERSION: u16 = 0xfe0d;
const ECH_CONFIG_ID: u8 = 0x2a;
const KEM_X25519_HKDF_SHA256: u16 = 0x0020;
const KDF_HKDF_SHA256: u16 = 0x0001;
const AEAD_AES_128_GCM: u16 = 0x0001;

fn put_u16(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&u16::try_from(v).expect("fits u16").to_be_bytes());
}

/// One ECHConfig (version, length, contents) for `public_name`.
pub(crate) fn ech_config(public_name: &str) -> Vec<u8> {
    let mut contents = Vec::new();
    // HpkeKeyConfig
    contents.push(ECH_CONFIG_ID);
    contents.extend_from_slice(&KEM_X25519_HKDF_SHA256.to_be_bytes());
    put_u16(&mut contents, ECH_PUBLIC_KEY.len());
    contents.extend_from_slice(&ECH_PUBLIC_KEY);
    put_u16(&mut contents, 4); // cipher_suites: one HpkeSymmetricCipherSuite
    contents.extend_from_slice(&KDF_HKDF_SHA256.to_be_bytes());
    contents.extend_from_slice(&AEAD_AES_128_GCM.to_be_bytes());
    // maximum_name_length, public_name<1..255>, extensions<0..2^16-1>
    contents.push(0);
    contents.push(u8::try_from(public_name.len()).expect("public name fits u8"));
    contents.extend_from_slice(public_name.as_bytes());
    put_u16(&mut contents, 0);

    let mut config = ECH_VERSION.to_be_bytes().to_vec();
    put_u16(&mut config, contents.len());
    config.extend_from_slice(&contents);
    config
}

/// An ECHConfigList holding the one config of [`ech_config`].
pub(crate) fn ech_config_list(public_name: &str) -> Vec<u8> {
    let config = ech_config(public_name);
    let mut list = Vec::with_capacity(config.len() + 2);
    put_u16(&mut list, config.len());
    list.extend_from_slice(&config);
    list
}

/// The TLS records rustls writes first when it connects to `inner_sni` with real ECH, the
/// outer hello naming `public_name`.
pub(crate) fn rustls_client_hello_ech(inner_sni: &str, public_name: &str) -> Res<Vec<u8>> {
    let list = rustls::pki_types::EchConfigListBytes::from(ech_config_list(public_name));
    let ech = rustls::client::EchConfig::new(
        list,
        rustls::crypto::aws_lc_rs::hpke::ALL_SUPPORTED_SUITES,
    )?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_ech(rustls::client::EchMode::Enable(ech))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from(inner_sni.to_string())?;
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name)?;
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out)?;
    }
    Ok(out)
}

/// `tls_ech_real.pcap`: real ECH twice from one client. First to ChatGPT behind Cloudflare
/// (the DNS answer names the server; the outer SNI is Cloudflare's public name), then to
/// an address no DNS answer explains, with a public name nobody lists.
pub(crate) fn write_ech(fixtures: &Path) -> Res<()> {
    let c = |port| SocketAddr::new(IpAddr::V4(CLIENT), port);
    let mut cap = Capture::new(Link::Ethernet, 840);
    dns_udp(
        &mut cap,
        c(40070),
        0x1070,
        "chatgpt.com",
        RecordType::A,
        &[v4("104.18.32.47")],
    )?;
    let ch = rustls_client_hello_ech("chatgpt.com", "cloudflare-ech.com")?;
    tcp_conn(
        &mut cap,
        Tcp {
            client: c(50070),
            server: sa("104.18.32.47", 443),
            flight: &ch,
            cuts: &[MSS],
            order: None,
            bulk: 2,
        },
    );
    let ch = rustls_client_hello_ech("claude.ai", "public.example.net")?;
    tcp_conn(
        &mut cap,
        Tcp {
            client: c(50071),
            server: sa("104.18.33.99", 443),
            flight: &ch,
            cuts: &[MSS],
            order: None,
            bulk: 2,
        },
    );
    cap.write(&fixtures.join("tls_ech_real.pcap"))
}

#[cfg(test)]
mod tests {
    use super::*;

    use rustls::crypto::hpke::{EncapsulatedSecret, Hpke, HpkePrivateKey};

    const EXT_SERVER_NAME: u16 = 0;
    const EXT_ECH: u16 = 0xfe0d;

    fn u16_at(b: &[u8], at: usize) -> usize {
        usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
    }

    /// The ClientHello body (after the handshake header) and where each extension's data
    /// lies in it. Expects what rustls writes: one record, one message.
    fn hello(records: &[u8]) -> (&[u8], Vec<(u16, std::ops::Range<usize>)>) {
        assert_eq!(records[0], 22, "handshake record");
        assert_eq!(u16_at(records, 3) + 5, records.len(), "one record");
        let msg = &records[5..];
        assert_eq!(msg[0], 1, "ClientHello");
        let body = &msg[4..];
        assert_eq!(
            usize::from(msg[1]) << 16 | u16_at(msg, 2),
            body.len(),
            "one message"
        );
        let mut at = 2 + 32;
        at += 1 + usize::from(body[at]); // legacy_session_id
        at += 2 + u16_at(body, at); // cipher_suites
        at += 1 + usize::from(body[at]); // legacy_compression_methods
        let end = at + 2 + u16_at(body, at);
        at += 2;
        let mut exts = Vec::new();
        while at < end {
            let (ty, len) = (u16_at(body, at) as u16, u16_at(body, at + 2));
            exts.push((ty, at + 4..at + 4 + len));
            at += 4 + len;
        }
        assert_eq!(at, body.len(), "extensions end the message");
        (body, exts)
    }

    fn ext(exts: &[(u16, std::ops::Range<usize>)], ty: u16) -> std::ops::Range<usize> {
        exts.iter()
            .find(|(t, _)| *t == ty)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("extension {ty:#06x} missing"))
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn config_list_reads_back_in_rustls() {
        let list = ech_config_list("cloudflare-ech.com");
        assert_eq!(u16_at(&list, 0) + 2, list.len());
        assert_eq!(&list[2..4], &[0xfe, 0x0d]);
        let suites = rustls::crypto::aws_lc_rs::hpke::ALL_SUPPORTED_SUITES;
        assert!(rustls::client::EchConfig::new(list.into(), suites).is_ok());
    }

    #[test]
    fn outer_sni_is_the_public_name_and_the_inner_name_is_sealed() {
        let records = rustls_client_hello_ech("chatgpt.com", "cloudflare-ech.com").expect("hello");
        assert!(!contains(&records, b"chatgpt"), "inner name leaked");
        let (body, exts) = hello(&records);

        let sni = &body[ext(&exts, EXT_SERVER_NAME)];
        assert_eq!(sni[2], 0, "host_name");
        assert_eq!(&sni[5..5 + u16_at(sni, 3)], b"cloudflare-ech.com");

        // ECHClientHello, outer: type, cipher suite, config id, enc, payload.
        let ech_range = ext(&exts, EXT_ECH);
        let ech = &body[ech_range.clone()];
        assert_eq!(ech[0], 0, "outer");
        assert_eq!(u16_at(ech, 1) as u16, KDF_HKDF_SHA256);
        assert_eq!(u16_at(ech, 3) as u16, AEAD_AES_128_GCM);
        assert_eq!(ech[5], ECH_CONFIG_ID);
        let enc_len = u16_at(ech, 6);
        let enc = EncapsulatedSecret(ech[8..8 + enc_len].to_vec());
        let payload_at = 8 + enc_len + 2;
        let payload = &ech[payload_at..payload_at + u16_at(ech, 8 + enc_len)];
        assert_eq!(payload_at + payload.len(), ech.len());

        // Open it as the server would: AAD is the outer hello with the payload zeroed.
        let mut aad = body.to_vec();
        let start = ech_range.start + payload_at;
        aad[start..start + payload.len()].fill(0);
        let mut info = b"tls ech\0".to_vec();
        info.extend_from_slice(&ech_config("cloudflare-ech.com"));
        let hpke = rustls::crypto::aws_lc_rs::hpke::DH_KEM_X25519_HKDF_SHA256_AES_128;
        let inner = hpke
            .open(
                &enc,
                &info,
                &aad,
                payload,
                &HpkePrivateKey::from(ECH_SECRET_KEY.to_vec()),
            )
            .expect("the inner hello opens with the config's private key");
        assert!(contains(&inner, b"chatgpt.com"), "inner SNI");
        assert!(!contains(&inner, b"cloudflare-ech.com"));
    }
}
