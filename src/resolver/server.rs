//! The socket loops: UDP served from a blocking thread per socket (queries received and
//! answered in batches, one system call each way; a cached answer needs no task and no
//! cross-thread wake-up), TCP from tokio tasks, and the binding of both. Every query first
//! passes the client gate (allowed networks, per-client rate). TCP connections hold a
//! [`Slots`] ticket: bounded in all and per client, the longest idle evicted when full,
//! idle ones closed after `dns.tcp_idle_secs`, and a question is read as its bytes arrive
//! (nothing reserved for the length a client announces).

use std::io::{IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmmsg, sendmmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    MultiHeaders, SockaddrStorage,
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{refused, Gate, Resolver};
use crate::limit::{Refused, Slots, Throttle, Ticket};

/// Datagrams taken from the kernel, and answers given back, per system call.
const BATCH: usize = 32;
/// The largest query read; a longer one is truncated, as a single `recvfrom` would.
const DATAGRAM: usize = 4096;
/// The kernel's receive queue of each UDP socket, in bytes (kernel memory, not ours): the
/// default (~208 KiB, a few hundred small queries) overflows whenever a flood meets a few
/// milliseconds without CPU, and the datagrams it drops are everyone's, not the flooder's.
/// 4 MiB holds thousands, drained at hundreds of thousands a second.
const UDP_RCVBUF: usize = 4 << 20;

impl Resolver {
    /// Serves UDP on `socket` from the calling thread until `stop` is set: blocking batched
    /// receives (`recvmmsg`, as many queries as are waiting, up to [`BATCH`]) and one
    /// `sendmmsg` for their answers, so a cached answer costs a fraction of two system calls
    /// and no wake-up of another thread. Queries that go upstream run as tasks on `rt` and
    /// send their own answers. Give the socket a read timeout so `stop` is noticed.
    pub fn serve_udp(
        self: Arc<Self>,
        socket: std::net::UdpSocket,
        rt: tokio::runtime::Handle,
        stop: Arc<std::sync::atomic::AtomicBool>,
    ) {
        let server = socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 53)));
        let socket = Arc::new(socket);
        let mut batch = Batch::new();
        let mut kernel_dropped = 0u32;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let n = match batch.receive(&socket) {
                Ok(n) => n,
                Err(Errno::EAGAIN | Errno::ETIMEDOUT | Errno::EINTR) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "dns udp recv");
                    continue;
                }
            };
            if batch.kernel_dropped != kernel_dropped {
                self.metrics
                    .dns_limited
                    .with_label_values(&["udp_queue_full"])
                    .inc_by(u64::from(batch.kernel_dropped.wrapping_sub(kernel_dropped)));
                kernel_dropped = batch.kernel_dropped;
            }
            let now = Instant::now();
            for i in 0..n {
                let Some(peer) = batch.peers[i] else { continue };
                let query = &batch.space[i * DATAGRAM..][..batch.lens[i].min(DATAGRAM)];
                let out = &mut batch.outs[batch.to.len()];
                match self.admit(peer, now) {
                    Gate::Pass => {}
                    Gate::NotAllowed => {
                        let reply = refused(query);
                        if !reply.is_empty() {
                            out.clear();
                            out.extend_from_slice(&reply);
                            batch.to.push(Some(peer.into()));
                        }
                        continue;
                    }
                    Gate::Limited => continue,
                }
                if self.answer_cached(query, peer, out) {
                    batch.to.push(Some(peer.into()));
                    continue;
                }
                match self.answer_now(query, peer, server, true) {
                    Ok(Some(reply)) => {
                        out.clear();
                        out.extend_from_slice(&reply);
                        batch.to.push(Some(peer.into()));
                    }
                    Ok(None) => {}
                    Err(up) => {
                        let (asked, strip) = *up;
                        let me = self.clone();
                        let socket = socket.clone();
                        rt.spawn(async move {
                            let reply = me.answer_upstream(asked, strip, peer, true).await;
                            // A UDP send does not wait for the peer; it is fine on a task.
                            let _ = socket.send_to(&reply, peer);
                        });
                    }
                }
            }
            batch.send(&socket);
        }
    }

    /// Serves TCP on `listener` until `shutdown` changes. Connections are bounded in all
    /// (`dns.max_tcp_clients`) and per client address (`dns.max_tcp_per_client`): one over
    /// either is closed at once and counted. Accept errors (out of file handles) back off
    /// instead of spinning, and are logged once per interval.
    pub async fn serve_tcp(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let server = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 53)));
        let slots = Slots::new(self.cfg.max_tcp_clients, self.cfg.max_tcp_per_client);
        let log = Throttle::new(Duration::from_secs(10));
        let mut backoff = Duration::ZERO;
        loop {
            if !backoff.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
            }
            let (conn, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => {
                        backoff = Duration::ZERO;
                        x
                    }
                    Err(e) => {
                        self.metrics.accept_errors.with_label_values(&["dns"]).inc();
                        backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                        if let Some(quiet) = log.ready(Instant::now()) {
                            tracing::warn!(error = %e, not_logged = quiet, "dns tcp accept failed; backing off");
                        }
                        continue;
                    }
                },
                _ = shutdown.changed() => return,
            };
            let client = peer.ip().to_canonical();
            if self.admit(peer, Instant::now()) == Gate::NotAllowed {
                // Not an allowed network: closed without a word.
                continue;
            }
            let ticket = match slots.enter(client, Instant::now()) {
                Ok((ticket, evicted)) => {
                    if evicted {
                        self.metrics
                            .dns_limited
                            .with_label_values(&["tcp_evicted_idle"])
                            .inc();
                    }
                    ticket
                }
                Err(why) => {
                    let limit = match why {
                        Refused::PerClient => "tcp_per_client",
                        Refused::Full => "tcp_total",
                    };
                    self.metrics.dns_limited.with_label_values(&[limit]).inc();
                    continue;
                }
            };
            self.metrics.dns_tcp_connections.set(slots.len() as i64);
            let (me, id, gauge_slots) = (self.clone(), ticket.id(), slots.clone());
            let task = tokio::spawn(async move {
                me.tcp_conn(conn, peer, server, &ticket).await;
                drop(ticket);
                me.metrics.dns_tcp_connections.set(gauge_slots.len() as i64);
            });
            slots.set_abort(id, task.abort_handle());
        }
    }

    async fn tcp_conn(
        &self,
        mut conn: TcpStream,
        peer: SocketAddr,
        server: SocketAddr,
        ticket: &Ticket,
    ) {
        let idle = Duration::from_secs(self.cfg.tcp_idle_secs);
        loop {
            ticket.idle(Instant::now());
            let mut len = [0u8; 2];
            match tokio::time::timeout(idle, conn.read_exact(&mut len)).await {
                Ok(Ok(_)) => {}
                _ => return,
            }
            let n = usize::from(u16::from_be_bytes(len));
            // Read what arrives, up to the announced length, within the idle time: no
            // buffer is reserved for a length a client only claims.
            let mut msg = Vec::new();
            match tokio::time::timeout(idle, (&mut conn).take(n as u64).read_to_end(&mut msg)).await
            {
                Ok(Ok(k)) if k == n => {}
                _ => return,
            }
            // A whole question: not to be evicted while it is answered. (A client still
            // trickling in its question is as idle as one that sends nothing.)
            ticket.busy();
            if self.admit(peer, Instant::now()) != Gate::Pass {
                return;
            }
            let Some(reply) = self.handle(&msg, peer, server, false).await else {
                return;
            };
            let mut out = Vec::with_capacity(reply.len() + 2);
            out.extend_from_slice(&(reply.len() as u16).to_be_bytes());
            out.extend_from_slice(&reply);
            match tokio::time::timeout(idle, conn.write_all(&out)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
    }
}

/// Binds UDP (blocking, with a 200 ms read timeout for shutdown) and TCP on every listen
/// address. A busy or foreign address is an [`crate::Error::Listen`] naming it.
pub async fn bind(listen: &[SocketAddr]) -> crate::Result<Vec<(std::net::UdpSocket, TcpListener)>> {
    let mut out = Vec::new();
    for addr in listen {
        let err = |source| crate::Error::Listen {
            what: "dns",
            addr: addr.to_string(),
            source,
        };
        let udp = crate::limit::bind_udp(*addr).map_err(err)?;
        udp.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(err)?;
        // Past net.core.rmem_max with CAP_NET_ADMIN; else as far as that allows.
        if setsockopt(&udp, sockopt::RcvBufForce, &UDP_RCVBUF).is_err() {
            let _ = setsockopt(&udp, sockopt::RcvBuf, &UDP_RCVBUF);
        }
        // Each datagram then says how many the kernel dropped before it (counted).
        let _ = setsockopt(&udp, sockopt::RxqOvfl, &1);
        let tcp = crate::limit::listen(udp.local_addr().map_err(err)?).map_err(err)?;
        out.push((udp, tcp));
    }
    Ok(out)
}

/// The buffers of one UDP socket's batched receives and sends, reused for every batch.
struct Batch {
    /// [`BATCH`] receive buffers of [`DATAGRAM`] bytes, back to back.
    space: Vec<u8>,
    lens: [usize; BATCH],
    /// Who sent each query received (None: an address that is not IP, never on UDP).
    peers: [Option<SocketAddr>; BATCH],
    /// The answers to send, the first `to.len()` of them.
    outs: Vec<Vec<u8>>,
    to: Vec<Option<SockaddrStorage>>,
    recv: MultiHeaders<SockaddrStorage>,
    send: MultiHeaders<SockaddrStorage>,
    /// Datagrams the kernel dropped on this socket so far, full queue (`SO_RXQ_OVFL`).
    kernel_dropped: u32,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            space: vec![0; BATCH * DATAGRAM],
            lens: [0; BATCH],
            peers: [None; BATCH],
            outs: (0..BATCH).map(|_| Vec::with_capacity(DATAGRAM)).collect(),
            to: Vec::with_capacity(BATCH),
            recv: MultiHeaders::preallocate(BATCH, Some(nix::cmsg_space!(u32))),
            send: MultiHeaders::preallocate(BATCH, None),
            kernel_dropped: 0,
        }
    }

    /// Waits for at least one datagram, then takes every one waiting, up to [`BATCH`];
    /// returns how many. Clears the answers of the last batch.
    fn receive(&mut self, socket: &std::net::UdpSocket) -> Result<usize, Errno> {
        self.to.clear();
        let mut chunks = self.space.chunks_mut(DATAGRAM);
        let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] = std::array::from_fn(|_| {
            [IoSliceMut::new(
                chunks.next().expect("space holds BATCH datagrams"),
            )]
        });
        let got = recvmmsg(
            socket.as_raw_fd(),
            &mut self.recv,
            iovs.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        )?;
        let mut n = 0;
        for (i, msg) in got.enumerate() {
            self.lens[i] = msg.bytes;
            self.peers[i] = msg.address.as_ref().and_then(socket_addr);
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::RxqOvfl(d) = c {
                        self.kernel_dropped = d;
                    }
                }
            }
            n = i + 1;
        }
        Ok(n)
    }

    /// Sends the batch's answers; one that fails (an unreachable peer) is skipped, counted
    /// by nothing but the peer's retry.
    fn send(&mut self, socket: &std::net::UdpSocket) {
        let mut start = 0;
        while start < self.to.len() {
            let iovs: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|i| {
                [IoSlice::new(
                    self.outs.get(start + i).map_or(&[][..], |o| &o[..]),
                )]
            });
            let sent = sendmmsg(
                socket.as_raw_fd(),
                &mut self.send,
                iovs.iter(),
                &self.to[start..],
                [] as [ControlMessage<'_>; 0],
                MsgFlags::empty(),
            );
            match sent {
                Ok(r) => start += r.count().max(1),
                Err(Errno::EINTR) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "dns udp send");
                    start += 1;
                }
            }
        }
    }
}

fn socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}
