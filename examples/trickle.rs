//! A raw sender for tests of slow first flights on a real link: it writes real rustls
//! ClientHellos as one-byte TCP segments straight onto an interface (libpcap's
//! `pcap_sendpacket`) at a set packet rate, so a capture on the far end of the link sees
//! exactly the segments a reassembler finds hardest, at thousands of packets a second. A
//! kernel socket cannot be made to do this: with `TCP_NODELAY` it still coalesces small
//! writes (autocorking, the congestion window) once packets queue.
//!
//! ```text
//! trickle --iface c0 --dst-mac MAC --src 10.77.1.2 --dst 198.18.0.10:443 \
//!         [--flows 200] [--pps 5000] [--sni chatgpt.com] [--order interleaved|sequential]
//!         [--provider ring|aws-lc] [--write sent.pcap]
//! ```
//!
//! Each flow is a SYN, then its ClientHello one byte per segment, from source port
//! 40000 + flow. `interleaved` sends every SYN, then byte 0 of every flow, byte 1 of every
//! flow and so on, so each first flight lasts as long as the whole run; `sequential` sends
//! one flow after another. No handshake is answered (the far end may drop the packets):
//! only the capture matters. `--write` saves the frames with the time each was sent, so
//! a test can replay exactly what went onto the wire. Prints one summary line.

use std::io::BufWriter;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapPacket, PcapWriter};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Order {
    Interleaved,
    Sequential,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Provider {
    /// rustls with ring: X25519 key share, a ClientHello of about 250 bytes.
    Ring,
    /// rustls with aws-lc-rs: the post-quantum X25519MLKEM768 share, about 1.4 KB.
    AwsLc,
}

#[derive(Parser)]
#[command(about = "Writes real ClientHellos as one-byte TCP segments onto an interface")]
struct Args {
    #[arg(long)]
    iface: String,
    /// The next hop's MAC address (the gateway's).
    #[arg(long)]
    dst_mac: String,
    #[arg(long)]
    src: IpAddr,
    #[arg(long)]
    dst: SocketAddr,
    #[arg(long, default_value_t = 200)]
    flows: u16,
    #[arg(long, default_value_t = 5000)]
    pps: u32,
    #[arg(long, default_value = "chatgpt.com")]
    sni: String,
    #[arg(long, value_enum, default_value_t = Order::Interleaved)]
    order: Order,
    #[arg(long, value_enum, default_value_t = Provider::Ring)]
    provider: Provider,
    #[arg(long)]
    write: Option<std::path::PathBuf>,
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("trickle: {e}");
            ExitCode::from(2)
        }
    }
}

fn mac(s: &str) -> Res<[u8; 6]> {
    let parts: Vec<u8> = s
        .trim()
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()?;
    Ok(parts.try_into().map_err(|_| format!("bad MAC {s:?}"))?)
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

/// One TCP frame from `src` to `dst`: a SYN when `payload` is `None`.
fn frame(
    macs: ([u8; 6], [u8; 6]),
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    payload: Option<&[u8]>,
) -> Res<Vec<u8>> {
    let eth = PacketBuilder::ethernet2(macs.0, macs.1);
    let ip = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
        _ => return Err("mixed address families".into()),
    };
    let tcp = ip.tcp(src.port(), dst.port(), seq, 64_240);
    let mut out = Vec::new();
    match payload {
        None => tcp.syn().write(&mut out, &[])?,
        Some(p) => tcp.ack(1).psh().write(&mut out, p)?,
    }
    Ok(out)
}

fn run(a: Args) -> Res<String> {
    let hello = client_hello(&a.sni, a.provider)?;
    let own = std::fs::read_to_string(format!("/sys/class/net/{}/address", a.iface))?;
    let macs = (mac(&own)?, mac(&a.dst_mac)?);
    let isn = |f: u16| 1_000_000u32.wrapping_mul(u32::from(f) + 1);
    let src = |f: u16| SocketAddr::new(a.src, 40_000 + f);
    // Every frame in the order it goes out.
    let mut frames = Vec::new();
    match a.order {
        Order::Interleaved => {
            for f in 0..a.flows {
                frames.push(frame(macs, src(f), a.dst, isn(f), None)?);
            }
            for (i, b) in hello.iter().enumerate() {
                for f in 0..a.flows {
                    let seq = isn(f).wrapping_add(1 + i as u32);
                    frames.push(frame(macs, src(f), a.dst, seq, Some(&[*b]))?);
                }
            }
        }
        Order::Sequential => {
            for f in 0..a.flows {
                frames.push(frame(macs, src(f), a.dst, isn(f), None)?);
                for (i, b) in hello.iter().enumerate() {
                    let seq = isn(f).wrapping_add(1 + i as u32);
                    frames.push(frame(macs, src(f), a.dst, seq, Some(&[*b]))?);
                }
            }
        }
    }
    let mut cap = pcap::Capture::from_device(a.iface.as_str())?
        .snaplen(64)
        .open()?;
    // Nothing is read from this handle: keep its buffer empty.
    cap.filter("less 1", true)?;
    let mut sent_at = Vec::with_capacity(frames.len());
    let start = Instant::now();
    let gap = Duration::from_secs(1) / a.pps.max(1);
    for (n, f) in frames.iter().enumerate() {
        let due = start + gap * n as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        cap.sendpacket(f.as_slice())?;
        sent_at.push(SystemTime::now().duration_since(UNIX_EPOCH)?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(path) = &a.write {
        let mut w = PcapWriter::new(BufWriter::new(std::fs::File::create(path)?))?;
        for (f, ts) in frames.iter().zip(&sent_at) {
            w.write_packet(&PcapPacket::new(*ts, f.len() as u32, f))?;
        }
    }
    Ok(format!(
        "trickle flows={} hello_bytes={} frames={} secs={elapsed:.1} pps={:.0}",
        a.flows,
        hello.len(),
        frames.len(),
        frames.len() as f64 / elapsed.max(1e-9)
    ))
}
