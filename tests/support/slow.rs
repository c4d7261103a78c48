//! Fixtures for first flights that take their time or their room: real rustls ClientHellos
//! paused 5.5 s, sent one byte per 30 ms, or interleaved one byte at a time with another
//! flight (each outlasting the old 5 s window); flights given up on (idle, byte cap,
//! closed, the capture's end) to resolver addresses and port 853, so their `incomplete`
//! observations are judged; and hellos at the start of 60 KB segments (TSO/GRO on a
//! mirror port).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hickory_proto::rr::RecordType;

use super::{dns_query, dns_udp, rustls_client_hello, Capture, Link, Res, CLIENT};

fn c(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(CLIENT), port)
}

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

/// The three-way handshake of `client` to `server`; returns the client's first sequence
/// number for data.
fn open(cap: &mut Capture, client: SocketAddr, server: SocketAddr) -> u32 {
    let cisn = 3_000_000u32 + u32::from(client.port());
    cap.tcp(client, server, cisn, 0, "S", &[]);
    cap.tcp(server, client, 8_000_000, cisn + 1, "SA", &[]);
    cap.tcp(client, server, cisn + 1, 8_000_001, "A", &[]);
    cisn + 1
}

/// One data segment from the client at `seq + off`.
fn data(cap: &mut Capture, client: SocketAddr, server: SocketAddr, seq: u32, off: usize, p: &[u8]) {
    cap.tcp(client, server, seq + off as u32, 8_000_001, "AP", p);
}

/// A rustls ClientHello message (no record header) grown to `len` bytes with a padding
/// extension (type 21), its lengths fixed up: what a client does to outgrow a monitor.
fn padded_message(sni: &str, len: usize) -> Res<Vec<u8>> {
    let records = rustls_client_hello(sni, false)?;
    let mut m = records.get(5..).ok_or("short hello")?.to_vec();
    // Fixed fields: type and length (4), version (2), random (32), then three vectors.
    let mut at = 4 + 2 + 32;
    at += 1 + usize::from(m[at]);
    at += 2 + usize::from(u16::from_be_bytes([m[at], m[at + 1]]));
    at += 1 + usize::from(m[at]);
    let pad = len.checked_sub(m.len() + 4).ok_or("already longer")?;
    m.extend_from_slice(&21u16.to_be_bytes());
    m.extend_from_slice(&u16::try_from(pad)?.to_be_bytes());
    m.resize(m.len() + pad, 0);
    let exts = u16::try_from(m.len() - at - 2)?;
    m[at..at + 2].copy_from_slice(&exts.to_be_bytes());
    let body = u32::try_from(m.len() - 4)?.to_be_bytes();
    m[1..4].copy_from_slice(&body[1..]);
    Ok(m)
}

/// Frames a handshake message into TLS records of at most `chunk` bytes.
fn records(msg: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for part in msg.chunks(chunk) {
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&(part.len() as u16).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// Writes the slow, given-up and giant-segment fixtures into `fixtures`.
pub(crate) fn write_slow(fixtures: &Path) -> Res<()> {
    // 1. Slow flights, all read.
    let mut cap = Capture::new(Link::Ethernet, 1_500);
    // A handshake paused 5.5 s after its first 600 bytes, after a lookup.
    dns_udp(
        &mut cap,
        c(40150),
        0x8001,
        "claude.ai",
        RecordType::A,
        &["160.79.104.10".parse()?],
    )?;
    let (cl, sv) = (c(50150), sa("160.79.104.10:443"));
    let ch = rustls_client_hello("claude.ai", false)?;
    let seq = open(&mut cap, cl, sv);
    data(&mut cap, cl, sv, seq, 0, &ch[..600]);
    cap.advance(Duration::from_millis(5_500));
    data(&mut cap, cl, sv, seq, 600, &ch[600..]);
    // One byte per 30 ms to an address nobody looked up (about 40 s for 1.3 KB).
    let (cl, sv) = (c(50151), sa("142.250.72.110:443"));
    let ch = rustls_client_hello("gemini.google.com", false)?;
    let seq = open(&mut cap, cl, sv);
    for (i, b) in ch.iter().enumerate() {
        data(&mut cap, cl, sv, seq, i, &[*b]);
        cap.advance(Duration::from_micros(30_000 - 350));
    }
    // Two flights interleaved a byte at a time, 3 ms apart: each spans about 8 s.
    let sv = sa("104.18.32.47:443");
    let ch = rustls_client_hello("chatgpt.com", false)?;
    let flows: Vec<(SocketAddr, u32)> = (50152..50154)
        .map(|p| (c(p), open(&mut cap, c(p), sv)))
        .collect();
    for (i, b) in ch.iter().enumerate() {
        for &(cl, seq) in &flows {
            data(&mut cap, cl, sv, seq, i, &[*b]);
            cap.advance(Duration::from_micros(3_000 - 350));
        }
    }
    cap.write(&fixtures.join("tls_slow_flights.pcap"))?;

    // 2. Flights given up on, each to an address or port the rules judge.
    let mut cap = Capture::new(Link::Ethernet, 1_620);
    let ch = rustls_client_hello("example.org", false)?;
    // Idle: 300 bytes to a public resolver's address, then nothing for 121 s.
    let (idle, dns) = (c(50160), sa("8.8.8.8:443"));
    let seq = open(&mut cap, idle, dns);
    data(&mut cap, idle, dns, seq, 0, &ch[..300]);
    // Byte cap: a hello padded past 16 KiB announces more than can be kept...
    let (cl, sv) = (c(50161), sa("1.1.1.1:443"));
    let big = records(&padded_message("example.org", 17_000)?, 16_384);
    let seq = open(&mut cap, cl, sv);
    for (i, part) in big.chunks(1_400).enumerate() {
        data(&mut cap, cl, sv, seq, i * 1_400, part);
    }
    // ...and one in one-byte records (six bytes of stream each) outgrows the cap.
    let (cl, sv) = (c(50162), sa("1.0.0.1:443"));
    let tiny = records(&padded_message("example.org", 3_000)?, 1);
    let seq = open(&mut cap, cl, sv);
    for (i, part) in tiny.chunks(1_400).enumerate() {
        data(&mut cap, cl, sv, seq, i * 1_400, part);
    }
    // Closed: half a hello to port 853, then the client's RST.
    let (cl, sv) = (c(50163), sa("203.0.113.53:853"));
    let seq = open(&mut cap, cl, sv);
    data(&mut cap, cl, sv, seq, 0, &ch[..300]);
    cap.tcp(cl, sv, seq + 300, 8_000_001, "R", &[]);
    // 121 s later a query: the idle flight is given up before it is read.
    cap.advance(Duration::from_secs(121));
    cap.udp(
        c(40164),
        sa("10.0.0.1:53"),
        &dns_query(0x8002, "example.org", RecordType::A)?,
    );
    // The capture's end: half a hello to another resolver address.
    let (cl, sv) = (c(50165), sa("8.8.4.4:443"));
    let seq = open(&mut cap, cl, sv);
    data(&mut cap, cl, sv, seq, 0, &ch[..300]);
    cap.write(&fixtures.join("tls_given_up.pcap"))?;

    // 3. Giant segments: the hello, then bulk, in one 60,000-byte segment after a SYN,
    // and in a 30,000-byte one that starts a stream mid-capture.
    let mut cap = Capture::new(Link::Ethernet, 1_800);
    dns_udp(
        &mut cap,
        c(40180),
        0x8003,
        "claude.ai",
        RecordType::A,
        &["160.79.104.10".parse()?],
    )?;
    let (cl, sv) = (c(50180), sa("160.79.104.10:443"));
    let mut giant = rustls_client_hello("claude.ai", false)?;
    giant.resize(60_000, 0x17);
    let seq = open(&mut cap, cl, sv);
    data(&mut cap, cl, sv, seq, 0, &giant);
    let (cl, sv) = (c(50181), sa("104.18.32.47:443"));
    let mut giant = rustls_client_hello("chatgpt.com", false)?;
    giant.resize(30_000, 0x17);
    data(&mut cap, cl, sv, 4_000_000, 0, &giant);
    cap.write(&fixtures.join("tls_giant_segment.pcap"))?;
    Ok(())
}
