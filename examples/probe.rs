//! A probe client for tests that need real handshakes on a real network (the end-to-end
//! namespace test): a rustls TLS client that can send Chromium-style GREASE ECH, and a
//! quinn-proto QUIC client that sends real Initials. Debian's OpenSSL and curl can do
//! neither. It verifies no certificate and carries no data: it only makes the gateway
//! see a handshake.
//!
//! ```text
//! probe tls ADDR:PORT [--sni NAME] [--grease-ech] [--timeout-ms N]
//!           [--pace-ms N] [--pause-at BYTES --pause-ms N] [--classic]
//! probe quic ADDR:PORT --sni NAME [--timeout-ms N]
//! ```
//!
//! A slow first flight, through the real socket (`TCP_NODELAY`): `--pace-ms` writes the
//! ClientHello one byte per write, N ms apart; `--pause-at` writes its first BYTES bytes,
//! waits `--pause-ms`, then writes the rest. The handshake then goes on as usual.
//! `--classic` offers X25519 only (a ClientHello of about 250 bytes instead of the 1.4 KB
//! a post-quantum key share makes), so a paced hello takes seconds, not a minute.
//!
//! Prints one line (`tls ADDR sni=NAME result=ok|error:...`, or `quic ADDR sni=NAME
//! sent=N result=ok|timeout|error:...`) and exits 0 whatever the server did; 2 for bad
//! arguments or when the connection cannot be made at all.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::hpke::Hpke;
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

#[derive(Parser)]
#[command(about = "Makes one real TLS or QUIC handshake for a test to observe")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// A rustls handshake over TCP (ALPN h2, http/1.1).
    Tls {
        addr: SocketAddr,
        /// Server name to send; absent or an IP address: no SNI extension.
        #[arg(long)]
        sni: Option<String>,
        /// Send a GREASE encrypted_client_hello extension, as Chromium does without a config.
        #[arg(long)]
        grease_ech: bool,
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
        #[command(flatten)]
        slow: Slow,
    },
    /// QUIC v1 client Initials (ALPN h3), retransmitted until the timeout.
    Quic {
        addr: SocketAddr,
        #[arg(long)]
        sni: String,
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
    },
}

/// How slowly the ClientHello goes out.
#[derive(clap::Args, Clone, Copy, Default)]
struct Slow {
    /// Write the ClientHello one byte at a time, this many ms apart.
    #[arg(long)]
    pace_ms: Option<u64>,
    /// Pause after this many bytes of the ClientHello...
    #[arg(long, requires = "pause_ms")]
    pause_at: Option<usize>,
    /// ...for this many ms.
    #[arg(long, requires = "pause_at")]
    pause_ms: Option<u64>,
    /// Offer X25519 only: a small ClientHello.
    #[arg(long)]
    classic: bool,
}

impl Slow {
    fn is_slow(&self) -> bool {
        self.pace_ms.is_some() || self.pause_at.is_some()
    }
}

/// Accepts any certificate: a probe proves the path, not the server.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let args = Args::parse(); // bad arguments: clap prints usage and exits 2
    let out = match args.cmd {
        Cmd::Tls {
            addr,
            sni,
            grease_ech,
            timeout_ms,
            slow,
        } => tls(
            addr,
            sni.as_deref(),
            grease_ech,
            Duration::from_millis(timeout_ms),
            slow,
        ),
        Cmd::Quic {
            addr,
            sni,
            timeout_ms,
        } => quic(addr, &sni, Duration::from_millis(timeout_ms)),
    };
    match out {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("probe: {e}");
            ExitCode::from(2)
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// One line, whatever the error text holds.
fn one_line(e: impl std::fmt::Display) -> String {
    e.to_string().replace(['\n', '\r'], " ")
}

/// Writes the client's first flight as `slow` says: one byte per write, or in two parts
/// with a pause between.
fn write_slowly(conn: &mut rustls::ClientConnection, sock: &mut TcpStream, slow: Slow) -> Res<()> {
    let mut flight = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut flight)?;
    }
    if let Some(ms) = slow.pace_ms {
        for (i, b) in flight.iter().enumerate() {
            if i > 0 {
                std::thread::sleep(Duration::from_millis(ms));
            }
            sock.write_all(&[*b])?;
        }
    } else if let (Some(at), Some(ms)) = (slow.pause_at, slow.pause_ms) {
        let at = at.min(flight.len());
        sock.write_all(&flight[..at])?;
        std::thread::sleep(Duration::from_millis(ms));
        sock.write_all(&flight[at..])?;
    }
    Ok(())
}

/// Connects, handshakes, and says how it went. `Err` only when no TCP connection was made.
fn tls(
    addr: SocketAddr,
    sni: Option<&str>,
    grease_ech: bool,
    timeout: Duration,
    slow: Slow,
) -> Res<String> {
    // rustls sends no SNI for an IP address, which is what a client dialling an IP does.
    let name = match sni {
        Some(s) => ServerName::try_from(s.to_string())?,
        None => ServerName::IpAddress(addr.ip().into()),
    };
    let shown = match &name {
        ServerName::DnsName(d) => d.as_ref().to_string(),
        _ => "-".to_string(),
    };
    let stack = if slow.classic {
        Arc::new(CryptoProvider {
            kx_groups: vec![aws_lc_rs::kx_group::X25519],
            ..aws_lc_rs::default_provider()
        })
    } else {
        provider()
    };
    let builder = rustls::ClientConfig::builder_with_provider(stack);
    let builder = if grease_ech {
        // Chromium offers GREASE ECH with a fresh X25519 key each time.
        let suite = aws_lc_rs::hpke::DH_KEM_X25519_HKDF_SHA256_AES_128;
        let (placeholder, _) = suite.generate_key_pair()?;
        let grease = rustls::client::EchGreaseConfig::new(suite, placeholder);
        builder.with_ech(rustls::client::EchMode::Grease(grease))?
    } else {
        builder.with_safe_default_protocol_versions()?
    };
    let mut cfg = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name)?;

    let deadline = Instant::now() + timeout;
    let mut sock =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    sock.set_nodelay(true)?;
    if slow.is_slow() {
        sock.set_write_timeout(Some(timeout))?;
        write_slowly(&mut conn, &mut sock, slow)
            .map_err(|e| format!("slow first flight to {addr}: {e}"))?;
    }
    let result = loop {
        if !conn.is_handshaking() {
            conn.send_close_notify();
            // Best effort: the handshake already succeeded.
            let _ = conn.complete_io(&mut sock);
            break "ok".to_string();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break "error:timeout".to_string();
        }
        sock.set_read_timeout(Some(left))?;
        sock.set_write_timeout(Some(left))?;
        if let Err(e) = conn.complete_io(&mut sock) {
            break match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "error:timeout".into(),
                _ => format!("error:{}", one_line(e)),
            };
        }
    };
    Ok(format!("tls {addr} sni={shown} result={result}"))
}

/// Sends quinn's Initials and keeps the connection's timers running until `timeout`.
/// `Err` only when the socket cannot be opened or the first datagram cannot be sent.
fn quic(addr: SocketAddr, sni: &str, timeout: Duration) -> Res<String> {
    let mut crypto = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
        .with_no_client_auth();
    crypto.alpn_protocols = vec![b"h3".to_vec()];
    let qcc = quinn_proto::crypto::rustls::QuicClientConfig::try_from(crypto)?;
    let client_cfg = quinn_proto::ClientConfig::new(Arc::new(qcc));
    let mut endpoint = quinn_proto::Endpoint::new(
        Arc::new(quinn_proto::EndpointConfig::default()),
        None,
        false,
        None,
    );
    let bind: SocketAddr = match addr.ip() {
        IpAddr::V4(_) => "0.0.0.0:0".parse()?,
        IpAddr::V6(_) => "[::]:0".parse()?,
    };
    // Not connected: ICMP errors then never fail a later send or receive, and the probe
    // retransmits until the timeout as a browser would.
    let sock = UdpSocket::bind(bind)?;

    let start = Instant::now();
    let deadline = start + timeout;
    let (handle, mut conn) = endpoint.connect(start, client_cfg, addr, sni)?;
    let mut sent = 0u32;
    let mut result = None;
    let mut tx = Vec::new();
    let mut rx = vec![0u8; 65_535];
    while result.is_none() {
        let now = Instant::now();
        while let Some(t) = conn.poll_transmit(now, 1, &mut tx) {
            match sock.send_to(&tx[..t.size], t.destination) {
                Ok(_) => sent += 1,
                Err(e) if sent == 0 => return Err(format!("send to {addr}: {e}").into()),
                Err(e) => result = Some(format!("error:{}", one_line(e))),
            }
            tx.clear();
        }
        while let Some(ev) = conn.poll() {
            match ev {
                quinn_proto::Event::Connected => result = Some("ok".to_string()),
                quinn_proto::Event::ConnectionLost { reason } => {
                    result.get_or_insert_with(|| format!("error:{}", one_line(reason)));
                }
                _ => {}
            }
        }
        while let Some(ev) = conn.poll_endpoint_events() {
            if let Some(back) = endpoint.handle_event(handle, ev) {
                conn.handle_event(back);
            }
        }
        if result.is_some() {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            result = Some("timeout".to_string());
            break;
        }
        let wake = conn.poll_timeout().map_or(deadline, |t| t.min(deadline));
        sock.set_read_timeout(Some(
            wake.saturating_duration_since(now)
                .max(Duration::from_millis(1)),
        ))?;
        match sock.recv_from(&mut rx) {
            Ok((n, from)) if from == addr => {
                let mut resp = Vec::new();
                let ev =
                    endpoint.handle(Instant::now(), from, None, None, rx[..n].into(), &mut resp);
                match ev {
                    Some(quinn_proto::DatagramEvent::ConnectionEvent(_, ev)) => {
                        conn.handle_event(ev)
                    }
                    Some(quinn_proto::DatagramEvent::Response(t)) => {
                        // The endpoint's own answer (a stateless reset); best effort.
                        let _ = sock.send_to(&resp[..t.size], t.destination);
                    }
                    _ => {}
                }
            }
            Ok(_) => {} // someone else's datagram
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                conn.handle_timeout(Instant::now());
            }
            Err(e) => result = Some(format!("error:{}", one_line(e))),
        }
    }
    let result = result.unwrap_or_else(|| "timeout".to_string());
    Ok(format!("quic {addr} sni={sni} sent={sent} result={result}"))
}
