//! Sends a capture's frames out of an interface at a set rate, for live line-rate
//! benchmarks (`benches/compare/live.sh`): the frames are loaded into memory first, then
//! written to an AF_PACKET socket bound to the interface, 64 to a `sendmmsg` call,
//! paced so the bits sent (frame bytes × 8, as tcpreplay counts them) follow the rate.
//!
//! The capture is sent whole, as many times as the rate and duration need. Each pass
//! after the first changes the second octet of every IPv4 address (XOR with the pass
//! number, checksums updated), so every pass is new connections to a watcher: its
//! ClientHellos, QUIC Initials and DNS queries count again instead of being duplicates
//! of the first pass's. A frame the kernel refuses (ENOBUFS) is sent again and counted.
//!
//! ```text
//! send_capture IFACE CAPTURE.pcap [--mbps N] [--seconds S] [--passes N]
//! ```
//!
//! `--mbps 0` sends as fast as it can. Without `--passes`, the passes are
//! `round(mbps × seconds / bits in the capture)`, at least 1. Prints one line:
//! `packets=N bytes=N seconds=S passes=N retries=N mbps=R pps=R`.

use std::fs::File;
use std::io::{BufReader, IoSlice};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use nix::errno::Errno;
use nix::sys::socket::{
    bind, sendmmsg, setsockopt, socket, sockopt, AddressFamily, LinkAddr, MsgFlags, MultiHeaders,
    SockFlag, SockType,
};
use pcap_file::pcap::PcapReader;
use std::os::fd::{AsRawFd, OwnedFd};

const BATCH: usize = 64;

#[derive(Parser)]
#[command(about = "Sends a capture out of an interface at a set rate")]
struct Args {
    iface: String,
    capture: std::path::PathBuf,
    /// Megabits per second of frame bytes; 0: as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    mbps: f64,
    /// How long to send for (whole passes of the capture).
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// Passes of the capture, overriding --seconds.
    #[arg(long)]
    passes: Option<u32>,
}

/// The capture in memory: frame bytes back to back, and where each frame is.
struct Frames {
    bytes: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

fn load(path: &std::path::Path) -> Result<Frames, Box<dyn std::error::Error>> {
    let mut reader = PcapReader::new(BufReader::new(File::open(path)?))?;
    let mut f = Frames {
        bytes: Vec::new(),
        spans: Vec::new(),
    };
    while let Some(p) = reader.next_packet() {
        let p = p?;
        f.spans.push((f.bytes.len(), p.data.len()));
        f.bytes.extend_from_slice(&p.data);
    }
    Ok(f)
}

/// Adds `new - old` to a one's-complement checksum (RFC 1624, eqn. 3).
fn adjust(sum: u16, old: u16, new: u16) -> u16 {
    let mut s = u32::from(!sum) + u32::from(!old) + u32::from(new);
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// XORs the second octet of an Ethernet/IPv4 frame's addresses with `x`, keeping the IP
/// and TCP/UDP checksums right. Other frames are left alone.
fn readdress(frame: &mut [u8], x: u8) {
    if x == 0 || frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
        return;
    }
    let ip = &mut frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ihl < 20 || ip.len() < ihl {
        return;
    }
    let word = |b: &[u8], at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    let (src_old, dst_old) = (word(ip, 12), word(ip, 16));
    ip[13] ^= x;
    ip[17] ^= x;
    let (src_new, dst_new) = (word(ip, 12), word(ip, 16));
    let change = |sum: u16| adjust(adjust(sum, src_old, src_new), dst_old, dst_new);
    let sum = change(word(ip, 10));
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    // Only the first fragment holds the transport header.
    if word(ip, 6) & 0x1fff != 0 {
        return;
    }
    let proto = ip[9];
    let l4 = &mut ip[ihl..];
    let at = match proto {
        6 if l4.len() >= 18 => 16,
        17 if l4.len() >= 8 => 6,
        _ => return,
    };
    let old = word(l4, at);
    if proto == 17 && old == 0 {
        return; // no UDP checksum
    }
    let mut sum = change(old);
    if proto == 17 && sum == 0 {
        sum = 0xffff;
    }
    l4[at..at + 2].copy_from_slice(&sum.to_be_bytes());
}

/// An AF_PACKET socket that sends out of `iface` and receives nothing (protocol 0).
fn open(iface: &str) -> Result<OwnedFd, Box<dyn std::error::Error>> {
    let addr: LinkAddr = nix::ifaddrs::getifaddrs()?
        .filter(|a| a.interface_name == iface)
        .find_map(|a| a.address.and_then(|s| s.as_link_addr().copied()))
        .ok_or_else(|| format!("no interface {iface}"))?;
    let fd = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    bind(fd.as_raw_fd(), &addr)?;
    setsockopt(&fd, sockopt::SndBuf, &(4 << 20))?;
    Ok(fd)
}

struct Sent {
    packets: u64,
    bytes: u64,
    retries: u64,
}

fn send_pass(
    fd: &OwnedFd,
    frames: &Frames,
    bits_per_sec: f64,
    start: Instant,
    sent: &mut Sent,
) -> Result<(), Errno> {
    let mut headers: MultiHeaders<LinkAddr> = MultiHeaders::preallocate(BATCH, None);
    let addrs = [None; BATCH];
    let mut i = 0;
    while i < frames.spans.len() {
        if bits_per_sec > 0.0 {
            let due = start + Duration::from_secs_f64(sent.bytes as f64 * 8.0 / bits_per_sec);
            loop {
                let now = Instant::now();
                if now >= due {
                    break;
                }
                let ahead = due - now;
                if ahead > Duration::from_micros(200) {
                    std::thread::sleep(ahead - Duration::from_micros(100));
                } else {
                    std::hint::spin_loop();
                }
            }
        }
        let end = (i + BATCH).min(frames.spans.len());
        let slices: Vec<[IoSlice<'_>; 1]> = frames.spans[i..end]
            .iter()
            .map(|&(at, len)| [IoSlice::new(&frames.bytes[at..at + len])])
            .collect();
        let n = match sendmmsg(
            fd.as_raw_fd(),
            &mut headers,
            &slices,
            &addrs[..slices.len()],
            [],
            MsgFlags::empty(),
        ) {
            Ok(r) => r.count(),
            Err(Errno::ENOBUFS | Errno::EAGAIN | Errno::EINTR) => {
                sent.retries += 1;
                std::thread::yield_now();
                0
            }
            Err(e) => return Err(e),
        };
        for &(_, len) in &frames.spans[i..i + n] {
            sent.packets += 1;
            sent.bytes += len as u64;
        }
        i += n;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("send_capture: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut frames = load(&args.capture)?;
    if frames.spans.is_empty() {
        return Err("the capture holds no frames".into());
    }
    let capture_bits = frames.bytes.len() as f64 * 8.0;
    let passes = match args.passes {
        Some(p) => p.max(1),
        None if args.mbps > 0.0 => {
            ((args.mbps * 1e6 * args.seconds / capture_bits).round() as u32).max(1)
        }
        None => 1,
    };
    if passes > 256 {
        return Err(
            format!("{passes} passes: at most 256 are distinct; use a larger capture").into(),
        );
    }
    let fd = open(&args.iface)?;
    let bits_per_sec = args.mbps * 1e6;
    let mut sent = Sent {
        packets: 0,
        bytes: 0,
        retries: 0,
    };
    let start = Instant::now();
    let mut xor = 0u8;
    for pass in 0..passes {
        let next = pass as u8;
        if next != xor {
            for &(at, len) in &frames.spans {
                readdress(&mut frames.bytes[at..at + len], xor ^ next);
            }
            xor = next;
        }
        send_pass(&fd, &frames, bits_per_sec, start, &mut sent)?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "packets={} bytes={} seconds={:.3} passes={} retries={} mbps={:.1} pps={:.0}",
        sent.packets,
        sent.bytes,
        secs,
        passes,
        sent.retries,
        sent.bytes as f64 * 8.0 / secs / 1e6,
        sent.packets as f64 / secs
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip_sum(h: &[u8]) -> u16 {
        let mut s: u32 = h
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn readdressed_frames_keep_valid_checksums() {
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 20, 1, 2], [104, 18, 32, 47], 64)
            .tcp(49_152, 443, 1, 64_240)
            .write(&mut frame, b"hello")
            .expect("frame");
        let original = frame.clone();
        readdress(&mut frame, 7);
        assert_eq!(&frame[26..34], &[10, 20 ^ 7, 1, 2, 104, 18 ^ 7, 32, 47]);
        assert_eq!(ip_sum(&frame[14..34]), 0);
        {
            let s = etherparse::SlicedPacket::from_ethernet(&frame).expect("parses");
            let (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Tcp(t))) =
                (s.net, s.transport)
            else {
                panic!("ipv4 tcp");
            };
            let want = t
                .to_header()
                .calc_checksum_ipv4(&ip.header().to_header(), t.payload())
                .expect("sum");
            assert_eq!(t.checksum(), want);
        }
        readdress(&mut frame, 7);
        assert_eq!(frame, original);
    }
}
