//! Live capture: one libpcap handle and one thread per interface, a BPF filter that keeps
//! what detection reads, and a bounded queue to detection that capture never waits on
//! (frames it cannot queue are dropped and counted). The thread opens its interface
//! itself and never gives up: a missing interface, one that goes away, or a missing
//! CAP_NET_RAW is reported in health and the log and retried, while DNS runs on; restarts
//! and failures are counted. The file source (`aiwarden run --read`) feeds
//! the same queue, waiting instead of dropping, so a file is read whole.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::FileReader;
use crate::detect::{LinkType, Timestamp};
use crate::error::{Error, Result};
use crate::health::{Health, State};
use crate::metrics::Metrics;

/// Default capture filter: everything detection may read, without the bulk it never
/// reads. Kept: DNS; every TCP packet except data sent from ports 443 and 80 (downloads
/// from web servers, most of a clinic's bytes; their SYN, FIN and RST stay) and bare ACKs,
/// so the first flight of a connection on any port is seen; QUIC long-header packets on
/// any UDP port (Initials; short-header bulk and media streams such as RTP are dropped);
/// port 853;
/// tunnels (GRE and ERSPAN, VXLAN, Geneve, IP in IP), IP fragments, and frames inside
/// VLAN tags, PPPoE or MPLS, whose insides a filter cannot see (matched by EtherType:
/// libpcap's `vlan`, `pppoes` and `mpls` keywords would shift the offsets of everything
/// after them). libpcap's `tcp[]` and `udp[]` index IPv4 only, so IPv6 headers are read at
/// fixed offsets (no extension headers; packets with them are kept whole).
pub const DEFAULT_FILTER: &str = "port 53 or port 853 \
or (ip and tcp and not ((src port 443 or src port 80) and tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) == 0) \
    and not (tcp[tcpflags] == tcp-ack and ip[2:2] == ((ip[0] & 0xf) << 2) + ((tcp[12] & 0xf0) >> 2))) \
or (ip6 and tcp and not ((src port 443 or src port 80) and ip6[6] == 6 and ip6[53] & 7 == 0) \
    and not (ip6[6] == 6 and ip6[53] == 0x10 and ip6[4:2] == (ip6[52] & 0xf0) >> 2)) \
or (ip and udp and udp[8] & 0xc0 == 0xc0) \
or (ip6 and ip6[6] == 17 and ip6[48] & 0xc0 == 0xc0) \
or (ip6 and ip6[6] != 6 and ip6[6] != 17 and ip6[6] != 58) \
or udp port 4789 or udp port 6081 \
or ip proto 47 or ip proto 4 or ip proto 41 \
or (ip and ip[6:2] & 0x3fff != 0) \
or ether proto 0x8100 or ether proto 0x88a8 or ether proto 0x9100 \
or ether proto 0x8864 or ether proto 0x8847 or ether proto 0x8848";

/// A frame copied out of the capture ring for the detection queue.
#[derive(Debug)]
pub struct OwnedFrame {
    /// Capture time.
    pub ts: Timestamp,
    /// Link layer.
    pub link: LinkType,
    /// The bytes.
    pub data: Vec<u8>,
}

/// How to open an interface.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Bytes kept per frame.
    pub snaplen: u32,
    /// Kernel ring buffer, MiB.
    pub buffer_mib: u32,
    /// BPF filter.
    pub filter: String,
    /// The longest a frame waits in a partly filled ring block before it is read, ms:
    /// [`BLOCK_TIMEOUT_MS`], or less where a reaction races the network (a sensor's
    /// resets).
    pub block_timeout_ms: i32,
}

/// A capture thread.
pub struct Live {
    /// The interface.
    pub iface: String,
    thread: JoinHandle<()>,
    breaker: Arc<Mutex<Option<pcap::BreakLoop>>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").field("iface", &self.iface).finish()
    }
}

impl Live {
    /// Wakes the thread out of libpcap (which may wait in poll() for a packet that never
    /// comes) so it sees the stop flag.
    pub fn wake(&self) {
        if let Ok(b) = self.breaker.lock() {
            if let Some(b) = b.as_ref() {
                b.breakloop();
            }
        }
    }

    /// Waits for the thread to end.
    pub fn join(self) {
        let _ = self.thread.join();
    }

    /// True once the thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}

/// The longest a captured frame waits in a partly filled ring block before it is read, by
/// default: ten wake-ups a second per interface at most while frames trickle in.
pub const BLOCK_TIMEOUT_MS: i32 = 10;

/// The same for a sensor that resets connections: its reset races the server's reply, and
/// every millisecond the ClientHello waits in the ring is lost from that race.
pub const SENSOR_BLOCK_TIMEOUT_MS: i32 = 1;

fn open(iface: &str, opts: &LiveOptions) -> Result<pcap::Capture<pcap::Active>> {
    let err = |e: pcap::Error| Error::Capture {
        path: PathBuf::from(iface),
        message: e.to_string(),
    };
    // Not immediate mode: without it libpcap uses TPACKET_V3, whose ring holds frames at
    // their own length, so 16 MiB holds ~16,000 of 1 KB. Immediate mode makes it use
    // TPACKET_V2, whose slots are sized for the snaplen (65,535 on an interface with
    // offloads, as most NICs and veth are): 16 MiB asked gave 32 MiB mapped and 256
    // slots, which dropped frames at 1 Gbit/s of the clinic mix (benches/compare/live.sh).
    // A frame now waits at most the block timeout in a block that is not yet full.
    let mut cap = pcap::Capture::from_device(iface)
        .map_err(err)?
        .promisc(true)
        .snaplen(i32::try_from(opts.snaplen).unwrap_or(i32::MAX))
        .buffer_size(i32::try_from(opts.buffer_mib.saturating_mul(1 << 20)).unwrap_or(i32::MAX))
        .immediate_mode(false)
        .timeout(opts.block_timeout_ms.max(1))
        .open()
        .map_err(err)?;
    cap.filter(&opts.filter, true).map_err(err)?;
    if LinkType::from_pcap(cap.get_datalink().0).is_none() {
        return Err(Error::Capture {
            path: PathBuf::from(iface),
            message: format!("unsupported link type {}", cap.get_datalink().0),
        });
    }
    Ok(cap)
}

/// Compiles `filter` for Ethernet without opening anything: `aiwarden check` and config
/// validation use it so a typo is an error before the daemon starts.
pub fn check_filter(filter: &str) -> std::result::Result<(), String> {
    pcap::Capture::dead(pcap::Linktype::ETHERNET)
        .and_then(|c| c.compile(filter, true))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Starts the capture thread of `iface`, which opens it and sends frames to `tx` until
/// `stop` is set or every receiver is gone. The thread never gives up: when the interface
/// is missing, goes away or cannot be opened (no CAP_NET_RAW), it says so in `health`
/// (part `capture <iface>`), logs once per kind of failure and tries again with a growing
/// pause (2 s to 30 s), so DNS and the rest of the daemon run on without it.
pub fn spawn_live<T: From<OwnedFrame> + Send + 'static>(
    iface: &str,
    opts: LiveOptions,
    tx: SyncSender<T>,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> Result<Live> {
    let breaker = Arc::new(Mutex::new(None));
    let name = iface.to_string();
    let part = format!("capture {iface}");
    let b = breaker.clone();
    health.set(&part, State::Degraded("opening".into()));
    let thread = std::thread::Builder::new()
        .name(format!("aiwarden-cap-{iface}"))
        .spawn(move || {
            let mut pause = Duration::from_secs(2);
            let mut last_error = String::new();
            let mut opened_before = false;
            while !stop.load(Ordering::Relaxed) {
                let c = match open(&name, &opts) {
                    Ok(mut c) => {
                        if let Ok(mut slot) = b.lock() {
                            *slot = Some(c.breakloop_handle());
                        }
                        if opened_before {
                            metrics.capture_restarts.inc();
                            tracing::info!(iface = %name, "capture reopened");
                        }
                        opened_before = true;
                        health.set(&part, State::Ok);
                        pause = Duration::from_secs(2);
                        last_error.clear();
                        c
                    }
                    Err(e) => {
                        let why = explain(&e.to_string());
                        if why != last_error {
                            tracing::error!(iface = %name, error = %why, "cannot capture; DNS goes on, capture retries");
                            last_error = why.clone();
                        }
                        health.set(&part, State::Down(why));
                        sleep_unless(&stop, pause);
                        pause = (pause * 2).min(Duration::from_secs(30));
                        continue;
                    }
                };
                match capture_loop(c, &name, &tx, &stop, &metrics) {
                    Ended::Stopped => return,
                    Ended::Failed(e) => {
                        tracing::error!(iface = %name, error = %e, "capture failed; reopening");
                        metrics.capture_failures.inc();
                        health.set(&part, State::Down(format!("failed: {e}; reopening")));
                        if let Ok(mut slot) = b.lock() {
                            *slot = None;
                        }
                        sleep_unless(&stop, Duration::from_secs(2));
                    }
                }
            }
        })
        .map_err(|e| Error::Thread {
            name: format!("capture on {iface}"),
            source: e,
        })?;
    Ok(Live {
        iface: iface.to_string(),
        thread,
        breaker,
    })
}

/// Whether `iface` can be captured on now (it exists, and this process may open it):
/// `aiwarden check` asks before the daemon would find out.
pub fn probe(iface: &str) -> std::result::Result<(), String> {
    pcap::Capture::from_device(iface)
        .and_then(|c| c.snaplen(256).timeout(10).open())
        .map(|_| ())
        .map_err(|e| explain(&e.to_string()))
}

/// libpcap's message, with what to do about it when the cause is known.
fn explain(message: &str) -> String {
    let m = message.to_ascii_lowercase();
    if m.contains("permission") || m.contains("not permitted") {
        format!(
            "{message} (capture needs CAP_NET_RAW: run as root, or give the service \
             AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN as the shipped unit does)"
        )
    } else if m.contains("no such device") || m.contains("doesn't exist") {
        format!("{message} (no such interface: check capture.interfaces)")
    } else {
        message.to_string()
    }
}

fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
}

enum Ended {
    Stopped,
    Failed(String),
}

fn capture_loop<T: From<OwnedFrame>>(
    mut cap: pcap::Capture<pcap::Active>,
    iface: &str,
    tx: &SyncSender<T>,
    stop: &AtomicBool,
    metrics: &Metrics,
) -> Ended {
    let Some(link) = LinkType::from_pcap(cap.get_datalink().0) else {
        return Ended::Failed(format!("unsupported link type {}", cap.get_datalink().0));
    };
    let (mut kernel_seen, mut iface_seen) = (0u32, 0u32);
    let mut last_stats = Instant::now();
    let queue_drops = metrics.capture_dropped.with_label_values(&["queue"]);
    while !stop.load(Ordering::Relaxed) {
        match cap.next_packet() {
            Ok(p) => {
                let frame = OwnedFrame {
                    ts: Timestamp::from_secs_micros(p.header.ts.tv_sec, p.header.ts.tv_usec),
                    link,
                    data: p.data.to_vec(),
                };
                match tx.try_send(T::from(frame)) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => queue_drops.inc(),
                    Err(TrySendError::Disconnected(_)) => return Ended::Stopped,
                }
            }
            Err(pcap::Error::TimeoutExpired) => {}
            Err(pcap::Error::NoMorePackets) => return Ended::Stopped,
            Err(e) if stop.load(Ordering::Relaxed) => {
                tracing::debug!(iface, error = %e, "capture woken to stop");
                return Ended::Stopped;
            }
            Err(e) => return Ended::Failed(e.to_string()),
        }
        if last_stats.elapsed() >= Duration::from_secs(1) {
            last_stats = Instant::now();
            if let Ok(s) = cap.stats() {
                metrics
                    .capture_dropped
                    .with_label_values(&["kernel"])
                    .inc_by(u64::from(s.dropped.wrapping_sub(kernel_seen)));
                metrics
                    .capture_dropped
                    .with_label_values(&["interface"])
                    .inc_by(u64::from(s.if_dropped.wrapping_sub(iface_seen)));
                kernel_seen = s.dropped;
                iface_seen = s.if_dropped;
            }
        }
    }
    Ended::Stopped
}

/// Reads `files` in order into `tx` (waiting when the queue is full: a file is read
/// whole) on a thread of its own, and ends when they are read or `stop` is set.
pub fn spawn_file<T: From<OwnedFrame> + Send + 'static>(
    files: Vec<PathBuf>,
    tx: SyncSender<T>,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<Result<u64>>> {
    // Open them all first so a bad path is an error now, not a log line later.
    let readers = files
        .iter()
        .map(|f| FileReader::open(f))
        .collect::<Result<Vec<_>>>()?;
    std::thread::Builder::new()
        .name("aiwarden-read".into())
        .spawn(move || {
            let mut n = 0u64;
            for mut r in readers {
                while let Some(f) = r.next_frame()? {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(n);
                    }
                    let frame = OwnedFrame {
                        ts: f.ts,
                        link: f.link,
                        data: f.data.to_vec(),
                    };
                    if tx.send(T::from(frame)).is_err() {
                        return Ok(n);
                    }
                    n += 1;
                }
            }
            Ok(n)
        })
        .map_err(|e| Error::Thread {
            name: "capture file reader".into(),
            source: e,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_filter_compiles() {
        check_filter(DEFAULT_FILTER).expect("compiles");
        assert!(check_filter("port 53 or").is_err());
    }
}
