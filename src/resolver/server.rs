//! The socket loops: UDP served from a blocking thread per socket (queries received and
//! answered in batches, one system call each way; a cached answer needs no task and no
//! cross-thread wake-up), TCP from tokio tasks, and the binding of both.

use std::io::{IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    recvmmsg, sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage,
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Resolver;

/// Datagrams taken from the kernel, and answers given back, per system call.
const BATCH: usize = 32;
/// The largest query read; a longer one is truncated, as a single `recvfrom` would.
const DATAGRAM: usize = 4096;

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
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let n = match batch.receive(&socket) {
                Ok(n) => n,
                Err(Errno::EAGAIN | Errno::ETIMEDOUT | Errno::EINTR) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "dns udp recv");
                    continue;
                }
            };
            for i in 0..n {
                let Some(peer) = batch.peers[i] else { continue };
                let query = &batch.space[i * DATAGRAM..][..batch.lens[i].min(DATAGRAM)];
                let out = &mut batch.outs[batch.to.len()];
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

    /// Serves TCP on `listener` until `shutdown` changes.
    pub async fn serve_tcp(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let server = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 53)));
        loop {
            let (conn, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::debug!(error = %e, "dns tcp accept");
                        continue;
                    }
                },
                _ = shutdown.changed() => return,
            };
            let me = self.clone();
            tokio::spawn(async move { me.tcp_conn(conn, peer, server).await });
        }
    }

    async fn tcp_conn(&self, mut conn: TcpStream, peer: SocketAddr, server: SocketAddr) {
        let idle = Duration::from_secs(10);
        loop {
            let mut len = [0u8; 2];
            match tokio::time::timeout(idle, conn.read_exact(&mut len)).await {
                Ok(Ok(_)) => {}
                _ => return,
            }
            let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
            match tokio::time::timeout(idle, conn.read_exact(&mut msg)).await {
                Ok(Ok(_)) => {}
                _ => return,
            }
            let Some(reply) = self.handle(&msg, peer, server, false).await else {
                return;
            };
            let mut out = Vec::with_capacity(reply.len() + 2);
            out.extend_from_slice(&(reply.len() as u16).to_be_bytes());
            out.extend_from_slice(&reply);
            if conn.write_all(&out).await.is_err() {
                return;
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
        let udp = std::net::UdpSocket::bind(addr).map_err(err)?;
        udp.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(err)?;
        let tcp = TcpListener::bind(udp.local_addr().map_err(err)?)
            .await
            .map_err(err)?;
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
}

impl Batch {
    fn new() -> Batch {
        Batch {
            space: vec![0; BATCH * DATAGRAM],
            lens: [0; BATCH],
            peers: [None; BATCH],
            outs: (0..BATCH).map(|_| Vec::with_capacity(DATAGRAM)).collect(),
            to: Vec::with_capacity(BATCH),
            recv: MultiHeaders::preallocate(BATCH, None),
            send: MultiHeaders::preallocate(BATCH, None),
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
