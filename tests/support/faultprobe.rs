//! The probes of the fault-injection suite: a client asking the resolver on a schedule,
//! something asking `/healthz`, the daemon's resident memory, and the small tools the
//! attacks share (questions, connections from a chosen address, reading `/metrics`).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn};

use super::nsthread::spawn_in;

pub(crate) const RESOLVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 77, 1, 1), 53);
pub(crate) const METRICS: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 77, 1, 1), 9747);
pub(crate) const MB: u64 = 1 << 20;
/// Names the probe keeps asking (cached after the first time).
pub(crate) const CACHED: usize = 10;

pub(crate) fn lan(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 1, last)
}

/// A DNS question as a stub resolver writes it.
pub(crate) fn query(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    m.to_vec().expect("encode")
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Cached,
    Uncached,
    Health,
}

pub(crate) struct Sample {
    pub(crate) at: Instant,
    pub(crate) kind: Kind,
    /// Answered (NOERROR with an address for DNS, any HTTP answer for /healthz), and how
    /// long it took; `None` when not answered within the probe's patience.
    pub(crate) took: Option<Duration>,
}

/// What the probes and the memory sampler saw, over the whole run.
#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) samples: Mutex<Vec<Sample>>,
    pub(crate) rss: Mutex<Vec<(Instant, u64)>>,
}

impl Seen {
    pub(crate) fn push(&self, kind: Kind, took: Option<Duration>) {
        self.samples.lock().expect("lock").push(Sample {
            at: Instant::now(),
            kind,
            took,
        });
    }

    /// (asked, answered within `within`) of `kind` in `[from, to]`.
    pub(crate) fn within(
        &self,
        kind: Kind,
        from: Instant,
        to: Instant,
        within: Duration,
    ) -> (usize, usize) {
        let s = self.samples.lock().expect("lock");
        let w: Vec<_> = s
            .iter()
            .filter(|x| x.kind == kind && x.at >= from && x.at <= to)
            .collect();
        let ok = w
            .iter()
            .filter(|x| x.took.is_some_and(|t| t <= within))
            .count();
        (w.len(), ok)
    }

    pub(crate) fn max_rss(&self, from: Instant, to: Instant) -> u64 {
        self.rss
            .lock()
            .expect("lock")
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(0)
    }
}

/// Bytes of `pid` resident in packet socket mappings (the capture rings: kernel memory
/// mapped into the process, counted in its resident size).
pub(crate) fn rings_of(pid: u32) -> Vec<u64> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut rings = Vec::new();
    let mut in_socket = false;
    for l in smaps.lines() {
        if l.split_whitespace()
            .nth(5)
            .is_some_and(|n| n.starts_with("socket:"))
        {
            in_socket = true;
        } else if l.contains('-') && l.split_whitespace().count() >= 5 && !l.ends_with("kB") {
            in_socket = false;
        }
        if in_socket {
            if let Some(kb) = l.strip_prefix("Rss:") {
                rings.push(
                    kb.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .unwrap_or(0)
                        * 1024,
                );
            }
        }
    }
    rings
}

pub(crate) fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// One question on `sock` (connected to the resolver), answered within `patience`?
pub(crate) fn ask(sock: &UdpSocket, id: u16, name: &str, patience: Duration) -> Option<Duration> {
    let started = Instant::now();
    sock.send(&query(id, name, RecordType::A)).ok()?;
    let mut buf = [0u8; 4096];
    loop {
        let left = patience.checked_sub(started.elapsed())?;
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        let n = sock.recv(&mut buf).ok()?;
        let Ok(m) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if m.metadata.id != id {
            continue; // a late answer to an earlier question
        }
        let good = m.metadata.response_code == ResponseCode::NoError && !m.answers.is_empty();
        return good.then(|| started.elapsed());
    }
}

/// The probe client: every 20 ms a cached name and a name never asked before, with 100 ms
/// of patience (later counts as not answered).
pub(crate) fn start_probe(
    ns: &str,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    spawn_in(ns, "probe", move || {
        let cached = UdpSocket::bind((lan(2), 0)).expect("bind");
        cached.connect(RESOLVER).expect("connect");
        let fresh = UdpSocket::bind((lan(2), 0)).expect("bind");
        fresh.connect(RESOLVER).expect("connect");
        let patience = Duration::from_millis(100);
        let mut i: u32 = 0;
        while !stop.load(Ordering::Relaxed) {
            let tick = Instant::now();
            i += 1;
            let id = (i & 0xffff) as u16;
            let name = format!("c{}.probe.test.", i as usize % CACHED);
            seen.push(Kind::Cached, ask(&cached, id, &name, patience));
            let name = format!("u{i}.fresh.probe.test.");
            seen.push(Kind::Uncached, ask(&fresh, id, &name, patience));
            std::thread::sleep(Duration::from_millis(20).saturating_sub(tick.elapsed()));
        }
    })
}

/// GET `path` from the metrics listener; `None` when nothing answered within `patience`.
pub(crate) fn http_get(path: &str, patience: Duration) -> Option<String> {
    try_get(path, patience).ok()
}

/// GET `path`, or why not: `connect`, `write`, `read` or `closed` (no answer).
pub(crate) fn try_get(path: &str, patience: Duration) -> Result<String, &'static str> {
    let mut s =
        TcpStream::connect_timeout(&SocketAddr::V4(METRICS), patience).map_err(|_| "connect")?;
    s.set_read_timeout(Some(patience)).map_err(|_| "read")?;
    s.set_write_timeout(Some(patience)).map_err(|_| "write")?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: aiwarden\r\n\r\n").map_err(|_| "write")?;
    let mut body = String::new();
    s.read_to_string(&mut body).map_err(|_| "read")?;
    if body.starts_with("HTTP/1.") {
        Ok(body)
    } else {
        Err("closed")
    }
}

/// Something on the gateway asking `/healthz` every 100 ms, with a second of patience.
pub(crate) fn start_health_probe(
    ns: &str,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    spawn_in(ns, "healthz", move || {
        while !stop.load(Ordering::Relaxed) {
            let tick = Instant::now();
            let got = try_get("/healthz", Duration::from_secs(1));
            if let Err(why) = got {
                println!("  /healthz not answered: {why} after {:?}", tick.elapsed());
            }
            seen.push(Kind::Health, got.ok().map(|_| tick.elapsed()));
            std::thread::sleep(Duration::from_millis(100).saturating_sub(tick.elapsed()));
        }
    })
}

/// A non-blocking TCP connection from `src` to `dst`, left to complete in the background.
pub(crate) fn tcp_from(src: Ipv4Addr, dst: SocketAddrV4) -> Option<OwnedFd> {
    let fd = socket::socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ok()?;
    socket::bind(fd.as_raw_fd(), &SockaddrIn::from(SocketAddrV4::new(src, 0))).ok()?;
    match socket::connect(fd.as_raw_fd(), &SockaddrIn::from(dst)) {
        Ok(()) | Err(nix::errno::Errno::EINPROGRESS) => Some(fd),
        Err(_) => None,
    }
}

/// A metric's value (the sum over its label sets matching `labels`) from `/metrics` text.
pub(crate) fn metric(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter(|l| l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |a, b| a + b)
}
