//! The probe client (`examples/probe.rs`) against local peers: a listener that reads the
//! ClientHello it sends, `openssl s_server` for a whole handshake, and a silent UDP socket
//! that collects its QUIC Initials. Everything it sends is read back with the detector.

#[path = "support/example.rs"]
mod example;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use aiwarden::detect::tls::parse_client_hello;
use aiwarden::detect::{Detector, DetectorConfig, LinkType, Timestamp};

/// The probe example, built once per test run.
fn probe_bin() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| example::build("probe"))
}

fn probe(args: &[&str]) -> Command {
    let mut c = Command::new(probe_bin());
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn finish(child: Child) -> (i32, String) {
    let Output { status, stdout, .. } = child.wait_with_output().expect("probe ends");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).trim().to_string(),
    )
}

/// The first TLS record the client sends, read whole.
fn read_record(stream: &mut std::net::TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).expect("record header");
    let mut body = vec![0u8; usize::from(u16::from_be_bytes([head[3], head[4]]))];
    stream.read_exact(&mut body).expect("record body");
    assert_eq!(head[0], 22, "handshake record");
    body
}

#[test]
fn tls_client_hello_carries_sni_grease_ech_and_alpn() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let child = probe(&["tls", &addr, "--sni", "claude.ai", "--grease-ech"])
        .spawn()
        .expect("probe starts");
    let (mut s, _) = listener.accept().expect("accept");
    let ch = parse_client_hello(&read_record(&mut s)).expect("a ClientHello");
    assert_eq!(ch.sni.as_deref(), Some(&b"claude.ai"[..]));
    assert!(ch.ech, "GREASE encrypted_client_hello extension");
    assert_eq!(ch.alpn, ["h2", "http/1.1"]);
    drop(s); // the "server" fails the handshake: still exit 0
    let (code, line) = finish(child);
    assert_eq!(code, 0, "{line}");
    assert!(
        line.starts_with(&format!("tls {addr} sni=claude.ai result=error:")),
        "{line}"
    );
}

/// Reads from `s` until `n` bytes came, noting how many reads each took and the longest
/// wait between two reads.
fn read_timed(s: &mut std::net::TcpStream, n: usize) -> (Vec<u8>, usize, Duration) {
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let (mut got, mut reads, mut longest) = (Vec::new(), 0, Duration::ZERO);
    let mut last = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    while got.len() < n {
        let k = s.read(&mut buf).expect("read");
        assert!(k > 0, "closed after {} bytes", got.len());
        got.extend_from_slice(&buf[..k]);
        reads += 1;
        longest = longest.max(last.elapsed());
        last = std::time::Instant::now();
    }
    (got, reads, longest)
}

#[test]
fn tls_client_hello_paced_and_paused() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    // One byte per write, 2 ms apart, X25519 only: a small hello, read in many pieces.
    let child = probe(&[
        "tls",
        &addr,
        "--sni",
        "claude.ai",
        "--classic",
        "--pace-ms",
        "2",
    ])
    .spawn()
    .expect("probe starts");
    let (mut s, _) = listener.accept().expect("accept");
    let (head, ..) = read_timed(&mut s, 5);
    let len = 5 + usize::from(u16::from_be_bytes([head[3], head[4]]));
    let (rest, reads, _) = read_timed(&mut s, len - head.len());
    let record = [head, rest].concat();
    let ch = parse_client_hello(&record[5..]).expect("a ClientHello");
    assert_eq!(ch.sni.as_deref(), Some(&b"claude.ai"[..]));
    assert!(len < 400, "--classic: a small hello ({len} bytes)");
    assert!(
        reads > len / 4,
        "{reads} reads for {len} bytes: written slowly"
    );
    drop(s);
    let (code, line) = finish(child);
    assert_eq!(code, 0, "{line}");
    // A pause of 600 ms after the first 100 bytes.
    let child = probe(&[
        "tls",
        &addr,
        "--sni",
        "claude.ai",
        "--pause-at",
        "100",
        "--pause-ms",
        "600",
    ])
    .spawn()
    .expect("probe starts");
    let (mut s, _) = listener.accept().expect("accept");
    let (first, ..) = read_timed(&mut s, 100);
    assert_eq!(
        first.len(),
        100,
        "nothing past the pause point before the pause"
    );
    let len = 5 + usize::from(u16::from_be_bytes([first[3], first[4]]));
    let (rest, _, waited) = read_timed(&mut s, len - 100);
    assert!(waited >= Duration::from_millis(500), "paused {waited:?}");
    let ch = parse_client_hello(&[first, rest].concat()[5..]).expect("a ClientHello");
    assert_eq!(ch.sni.as_deref(), Some(&b"claude.ai"[..]));
    drop(s);
    let (code, line) = finish(child);
    assert_eq!(code, 0, "{line}");
}

#[test]
fn tls_without_sni_over_ipv6() {
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        eprintln!("skipped: no IPv6 loopback");
        return;
    };
    let addr = listener.local_addr().expect("addr").to_string();
    let child = probe(&["tls", &addr]).spawn().expect("probe starts");
    let (mut s, _) = listener.accept().expect("accept");
    let ch = parse_client_hello(&read_record(&mut s)).expect("a ClientHello");
    assert_eq!(ch.sni, None, "no SNI when dialling an address");
    assert!(!ch.ech);
    drop(s);
    let (code, line) = finish(child);
    assert_eq!(code, 0, "{line}");
    assert!(
        line.starts_with(&format!("tls {addr} sni=- result=error:")),
        "{line}"
    );
}

#[test]
fn tls_full_handshake_with_openssl() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("skipped: openssl not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let (crt, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&crt, cert.cert.pem()).expect("write cert");
    std::fs::write(&key, cert.signing_key.serialize_pem()).expect("write key");
    // A port the kernel just handed out; s_server binds it right after.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut server = Command::new("openssl")
        .args(["s_server", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&crt)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("s_server starts");
    // s_server prints ACCEPT once it listens.
    let mut out = server.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains("ACCEPT") {
        match out.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => break,
        }
    }
    let addr = format!("127.0.0.1:{port}");
    let results: Vec<(i32, String)> = [
        vec!["tls", &addr, "--sni", "claude.ai", "--grease-ech"],
        vec!["tls", &addr, "--sni", "chatgpt.com"],
        vec!["tls", &addr, "--sni", "127.0.0.1"],
    ]
    .iter()
    .map(|args| finish(probe(args).spawn().expect("probe starts")))
    .collect();
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        String::from_utf8_lossy(&seen).contains("ACCEPT"),
        "s_server did not start"
    );
    assert_eq!(
        results,
        [
            (0, format!("tls {addr} sni=claude.ai result=ok")),
            (0, format!("tls {addr} sni=chatgpt.com result=ok")),
            (0, format!("tls {addr} sni=- result=ok")),
        ]
    );
}

#[test]
fn quic_initials_reach_a_silent_socket() {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let server = sock.local_addr().expect("addr");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let child = probe(&[
        "quic",
        &server.to_string(),
        "--sni",
        "chatgpt.com",
        "--timeout-ms",
        "1500",
    ])
    .spawn()
    .expect("probe starts");
    // The kernel queues the datagrams while the probe runs; read them once it is done.
    let (code, line) = finish(child);
    let mut got: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok((n, from)) = sock.recv_from(&mut buf) {
        got.push((from, buf[..n].to_vec()));
    }
    assert_eq!(code, 0, "{line}");
    assert_eq!(
        line,
        format!(
            "quic {server} sni=chatgpt.com sent={} result=timeout",
            got.len()
        )
    );
    // The first flight is two Initials (the post-quantum key share does not fit one), and
    // a retransmission followed within 1.5 s.
    assert!(got.len() >= 3, "{} datagrams", got.len());
    assert!(got.iter().all(|(_, d)| d.len() >= 1200), "padded Initials");

    let mut det = Detector::new(DetectorConfig::default());
    let mut hosts = Vec::new();
    for (from, d) in &got {
        let mut frame = Vec::new();
        let (SocketAddr::V4(src), SocketAddr::V4(dst)) = (from, server) else {
            unreachable!("v4 loopback")
        };
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src.ip().octets(), dst.ip().octets(), 64)
            .udp(src.port(), dst.port())
            .write(&mut frame, d)
            .expect("frame");
        for o in det.process(Timestamp::default(), LinkType::Ethernet, &frame) {
            hosts.extend(o.host.as_ref().map(ToString::to_string));
        }
    }
    assert_eq!(hosts, ["chatgpt.com"]);
}

#[test]
fn bad_arguments_and_refused_connections_exit_2() {
    for args in [
        vec!["tls"],
        vec!["tls", "not-an-address"],
        vec!["quic", "127.0.0.1:443"],
        vec!["tls", "127.0.0.1:443", "--timeout-ms", "soon"],
    ] {
        let (code, _) = finish(probe(&args).spawn().expect("probe starts"));
        assert_eq!(code, 2, "{args:?}");
    }
    // A port nobody listens on: bind, note it, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let (code, line) = finish(
        probe(&["tls", &format!("127.0.0.1:{port}")])
            .spawn()
            .expect("probe starts"),
    );
    assert_eq!((code, line.as_str()), (2, ""));
}
