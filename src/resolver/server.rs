//! The socket loops: UDP served from a blocking thread per socket (a cached answer is one
//! receive and one send, no task, no cross-thread wake-up), TCP from tokio tasks, and the
//! binding of both.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Resolver;

impl Resolver {
    /// Serves UDP on `socket` until `shutdown` changes.
    /// Serves UDP on `socket` from the calling thread until `stop` is set: blocking
    /// receives and sends, so a cached answer costs two system calls and no wake-up of
    /// another thread. Queries that go upstream run as tasks on `rt` and send their own
    /// answers. Give the socket a read timeout so `stop` is noticed.
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
        let mut buf = vec![0u8; 4096];
        let mut out = Vec::with_capacity(4096);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let (n, peer) = match socket.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    tracing::debug!(error = %e, "dns udp recv");
                    continue;
                }
            };
            if self.answer_cached(&buf[..n], peer, &mut out) {
                let _ = socket.send_to(&out, peer);
                continue;
            }
            match self.answer_now(&buf[..n], peer, server, true) {
                Ok(Some(reply)) => {
                    let _ = socket.send_to(&reply, peer);
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
