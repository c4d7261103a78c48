//! New TCP connections per second, and how long each takes to set up, for the router
//! enforcement bench (benches/compare/enforce.sh): many short connections, each opened,
//! sent one real rustls ClientHello (the first flight a gateway's NFQUEUE judges) and
//! closed as soon as the server's one-byte reply arrives.
//!
//! ```text
//! connrate server --listen ADDR:PORT [--threads 4]
//! connrate client --connect ADDR:PORT [--secs 10] [--threads 4] [--sni NAME]
//!                 [--provider aws-lc|ring]
//! ```
//!
//! The server reads the client's first TLS record, writes one byte and closes first, so
//! the client side, which closes on end of file, keeps no TIME_WAIT and never runs out of
//! ports.
//!
//! The client prints one line: connections made, per second, failures, and the p50, p99
//! and max, in microseconds, of `connect` (SYN to SYN/ACK, as `connect()` returning shows
//! it), `reply` (the ClientHello written to the reply byte read: the round trip of the
//! first data packet) and `total` (`connect()` called to reply byte read).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Provider {
    /// aws-lc-rs: the post-quantum X25519MLKEM768 share, a ClientHello of about 1.4 KB, as
    /// current browsers send.
    AwsLc,
    /// ring: X25519 only, about 250 bytes.
    Ring,
}

#[derive(Subcommand)]
enum Cmd {
    /// Accepts connections; for each reads one TLS record, writes one byte, closes.
    Server {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, default_value_t = 4)]
        threads: usize,
    },
    /// Opens short connections for `--secs` seconds and prints what it measured.
    Client {
        #[arg(long)]
        connect: SocketAddr,
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
        #[arg(long, default_value_t = 4)]
        threads: usize,
        #[arg(long, default_value = "www.example.com")]
        sni: String,
        #[arg(long, value_enum, default_value_t = Provider::AwsLc)]
        provider: Provider,
    },
}

#[derive(Parser)]
#[command(about = "Short TCP connections per second through a gateway, and their set-up times")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let result = match Args::parse().cmd {
        Cmd::Server { listen, threads } => server(listen, threads),
        Cmd::Client {
            connect,
            secs,
            threads,
            sni,
            provider,
        } => client(connect, secs, threads, &sni, provider),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("connrate: {e}");
            ExitCode::from(2)
        }
    }
}

/// The bytes a fresh rustls client writes first: its ClientHello in TLS records.
fn client_hello(sni: &str, provider: Provider) -> Res<Vec<u8>> {
    let provider = Arc::new(match provider {
        Provider::Ring => rustls::crypto::ring::default_provider(),
        Provider::AwsLc => rustls::crypto::aws_lc_rs::default_provider(),
    });
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from(sni.to_string())?;
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name)?;
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out)?;
    }
    Ok(out)
}

fn server(listen: SocketAddr, threads: usize) -> Res<()> {
    let listener = Arc::new(TcpListener::bind(listen)?);
    eprintln!("connrate: listening on {listen}");
    let workers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let l = listener.clone();
            std::thread::spawn(move || loop {
                if let Ok((s, _)) = l.accept() {
                    // A connection that fails (reset, timeout) is the client's to count.
                    let _ = serve(s);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

/// One connection: the client's first TLS record (whole, however it was segmented), then
/// one byte back and close (this side closes first).
fn serve(mut s: TcpStream) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = [0u8; 5];
    s.read_exact(&mut head)?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes([head[3], head[4]]))];
    s.read_exact(&mut body)?;
    s.write_all(&[1])
}

/// Set-up times of one thread's connections, microseconds.
#[derive(Default)]
struct Times {
    connect: Vec<u32>,
    reply: Vec<u32>,
    total: Vec<u32>,
    failed: u64,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// One connection: (connect, reply, total) times.
fn one(addr: SocketAddr, hello: &[u8]) -> std::io::Result<(Duration, Duration, Duration)> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    let t1 = Instant::now();
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(hello)?;
    let t_sent = Instant::now();
    let mut b = [0u8; 1];
    s.read_exact(&mut b)?;
    let t2 = Instant::now();
    // Wait for the server's FIN so the server, not this side, holds the TIME_WAIT.
    let mut rest = [0u8; 16];
    while s.read(&mut rest)? > 0 {}
    Ok((t1 - t0, t2 - t_sent, t2 - t0))
}

fn client(addr: SocketAddr, secs: f64, threads: usize, sni: &str, provider: Provider) -> Res<()> {
    let hello = Arc::new(client_hello(sni, provider)?);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let (hello, stop) = (hello.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut t = Times::default();
                while !stop.load(Ordering::Relaxed) {
                    match one(addr, &hello) {
                        Ok((c, r, all)) => {
                            t.connect.push(micros(c));
                            t.reply.push(micros(r));
                            t.total.push(micros(all));
                        }
                        Err(_) => t.failed += 1,
                    }
                }
                t
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let mut all = Times::default();
    for w in workers {
        let t = w.join().map_err(|_| "a client thread panicked")?;
        all.connect.extend(t.connect);
        all.reply.extend(t.reply);
        all.total.extend(t.total);
        all.failed += t.failed;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = all.total.len();
    let mut line = format!(
        "conns={n} secs={elapsed:.2} rate={:.0} failed={} hello_bytes={}",
        n as f64 / elapsed,
        all.failed,
        hello.len()
    );
    for (name, v) in [
        ("connect", &mut all.connect),
        ("reply", &mut all.reply),
        ("total", &mut all.total),
    ] {
        v.sort_unstable();
        let q = |p: f64| {
            v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        line += &format!(
            " {name}_p50={} {name}_p99={} {name}_max={}",
            q(0.5),
            q(0.99),
            v.last().copied().unwrap_or(0)
        );
    }
    println!("{line}");
    Ok(())
}
