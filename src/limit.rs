//! Bounds the shells share.
//!
//! - [`Throttle`]: log lines for failures that can repeat thousands of times a second (an
//!   accept loop out of file handles, an upstream timing out, a flood refused): the first
//!   is logged, the rest within the interval only counted, and the next line says how many
//!   were not logged. A flood costs one line per interval, not one per packet.
//! - [`Slots`]: the connections a listener serves at once, in all and per client address.
//!   When all are taken, the one idle longest (a client that opened a connection and sent
//!   nothing, or nothing more) is closed to make room: idle connections cannot lock out a
//!   client with something to ask.

use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use tokio::task::AbortHandle;

/// One kind of repeated failure.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Mutex<Option<Instant>>,
    quiet: AtomicU64,
}

impl Throttle {
    /// At most one line per `every`.
    pub const fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            last: Mutex::new(None),
            quiet: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when this occurrence should be logged, `n` being how many were not since
    /// the last line; `None` when it should only be counted.
    pub fn ready(&self, now: Instant) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match *last {
            Some(t) if now.saturating_duration_since(t) < self.every => {
                self.quiet.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.quiet.swap(0, Ordering::Relaxed))
            }
        }
    }
}

/// Why a connection was not given a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Its client address holds its share already.
    PerClient,
    /// Every slot is busy with a request.
    Full,
}

/// A connection's slot; given back when dropped (the connection's task ended or was
/// aborted).
#[derive(Debug)]
pub struct Ticket {
    slots: Arc<Slots>,
    id: u64,
}

#[derive(Debug)]
struct Open {
    client: IpAddr,
    /// Since when it waits for its client; `None` while a request is being served.
    idle_since: Option<Instant>,
    abort: Option<AbortHandle>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    open: FxHashMap<u64, Open>,
    per_client: FxHashMap<IpAddr, usize>,
}

/// Connection slots: at most `max` in all and `per_client` per address.
#[derive(Debug)]
pub struct Slots {
    max: usize,
    per_client: usize,
    inner: Mutex<Inner>,
}

impl Slots {
    /// `max` connections in all, `per_client` from one address.
    pub fn new(max: usize, per_client: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max: max.max(1),
            per_client: per_client.max(1),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a new connection from `client`, idle from `now`. When every slot is
    /// taken, the connection idle longest is aborted to make room (`.1` is true).
    pub fn enter(
        self: &Arc<Self>,
        client: IpAddr,
        now: Instant,
    ) -> Result<(Ticket, bool), Refused> {
        let mut inner = self.lock();
        let mut evicted = false;
        // The client holds its share: its own longest idle connection makes room.
        if inner.per_client.get(&client).copied().unwrap_or(0) >= self.per_client {
            if !inner.evict_idle(Some(client)) {
                return Err(Refused::PerClient);
            }
            evicted = true;
        }
        if inner.open.len() >= self.max {
            if !inner.evict_idle(None) {
                return Err(Refused::Full);
            }
            evicted = true;
        }
        let id = inner.next;
        inner.next += 1;
        inner.open.insert(
            id,
            Open {
                client,
                idle_since: Some(now),
                abort: None,
            },
        );
        *inner.per_client.entry(client).or_insert(0) += 1;
        Ok((
            Ticket {
                slots: self.clone(),
                id,
            },
            evicted,
        ))
    }

    /// How to close connection `id` when its slot is needed: call right after spawning
    /// the task that owns its [`Ticket`] (a no-op if that task already ended).
    pub fn set_abort(&self, id: u64, abort: AbortHandle) {
        if let Some(o) = self.lock().open.get_mut(&id) {
            o.abort = Some(abort);
        }
    }

    /// Connections open now.
    pub fn len(&self) -> usize {
        self.lock().open.len()
    }

    /// True when no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    /// Closes an idle connection: of `client` if given, else of the client holding the
    /// most slots (a flooding address loses its own connections while it holds more than
    /// anyone else, never a connection a quieter client just opened); the one idle
    /// longest. False if none is idle.
    fn evict_idle(&mut self, client: Option<IpAddr>) -> bool {
        let per_client = &self.per_client;
        let victim = self
            .open
            .iter()
            .filter(|(_, o)| client.is_none_or(|c| o.client == c))
            .filter_map(|(id, o)| {
                let held = per_client.get(&o.client).copied().unwrap_or(0);
                o.idle_since.map(|t| (std::cmp::Reverse(held), t, *id))
            })
            .min();
        let Some((_, _, id)) = victim else {
            return false;
        };
        if let Some(o) = self.open.remove(&id) {
            release(&mut self.per_client, o.client);
            if let Some(a) = o.abort {
                a.abort();
            }
        }
        true
    }
}

fn release(per_client: &mut FxHashMap<IpAddr, usize>, client: IpAddr) {
    if let Entry::Occupied(mut e) = per_client.entry(client) {
        *e.get_mut() -= 1;
        if *e.get() == 0 {
            e.remove();
        }
    }
}

impl Ticket {
    /// Names the slot for [`Slots::set_abort`].
    pub fn id(&self) -> u64 {
        self.id
    }

    /// A request arrived: not to be evicted while it is served.
    pub fn busy(&self) {
        if let Some(o) = self.slots.lock().open.get_mut(&self.id) {
            o.idle_since = None;
        }
    }

    /// Served; waiting for the client again from `now`.
    pub fn idle(&self, now: Instant) {
        if let Some(o) = self.slots.lock().open.get_mut(&self.id) {
            o.idle_since = Some(now);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut inner = self.slots.lock();
        if let Some(o) = inner.open.remove(&self.id) {
            release(&mut inner.per_client, o.client);
        }
    }
}

/// Connections the kernel completes and queues for a listener before it accepts them
/// (capped by `net.core.somaxconn`, 4,096 by default). Past it new connections are
/// dropped unanswered and retried a second later: a burst of a thousand from one device
/// would otherwise delay everyone's.
pub const LISTEN_BACKLOG: u32 = 4096;

/// A TCP listener on `addr` with [`LISTEN_BACKLOG`]. The address need not be up yet
/// ([`free_bind`]).
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    free_bind(&socket)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// A UDP socket bound to `addr`, which need not be up yet ([`free_bind`]).
pub fn bind_udp(addr: std::net::SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use nix::sys::socket::{bind, socket, AddressFamily, SockFlag, SockType, SockaddrStorage};
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(family, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    free_bind(&fd)?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrStorage::from(addr),
    )?;
    Ok(std::net::UdpSocket::from(fd))
}

/// Lets a socket bind an address the host does not have yet (`IP_FREEBIND`, as systemd's
/// `FreeBind=` and Unbound's `ip-freebind`): at boot aiwarden starts while the network
/// manager is still putting the LAN address on its interface, and the resolver, console
/// and metrics must bind it then rather than fail and be restarted until it is there.
/// `aiwarden check` still says when a configured address is not this host's.
fn free_bind(fd: &impl std::os::fd::AsFd) -> std::io::Result<()> {
    nix::sys::socket::setsockopt(fd, nix::sys::socket::sockopt::IpFreebind, &true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_an_address_the_host_does_not_have_yet() {
        // TEST-NET addresses no host has: a plain bind fails, the free bind succeeds.
        let v4: std::net::SocketAddr = "192.0.2.53:0".parse().expect("addr");
        assert!(std::net::UdpSocket::bind(v4).is_err());
        assert_eq!(
            bind_udp(v4).expect("udp").local_addr().expect("a").ip(),
            v4.ip()
        );
        assert_eq!(
            listen(v4).expect("tcp").local_addr().expect("a").ip(),
            v4.ip()
        );
        let v6: std::net::SocketAddr = "[2001:db8::53]:0".parse().expect("addr");
        if std::net::UdpSocket::bind("[::1]:0").is_ok() {
            assert_eq!(
                bind_udp(v6).expect("udp6").local_addr().expect("a").ip(),
                v6.ip()
            );
            assert_eq!(
                listen(v6).expect("tcp6").local_addr().expect("a").ip(),
                v6.ip()
            );
        }
    }

    #[test]
    fn one_line_per_interval_with_the_count_of_the_rest() {
        let t = Throttle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(t.ready(t0), Some(0));
        for i in 1..=999 {
            assert_eq!(t.ready(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(t.ready(t0 + Duration::from_secs(10)), Some(999));
        assert_eq!(t.ready(t0 + Duration::from_secs(11)), None);
        assert_eq!(t.ready(t0 + Duration::from_secs(25)), Some(1));
    }

    #[test]
    fn a_full_house_evicts_the_longest_idle_never_a_busy_one() {
        let slots = Slots::new(3, 2);
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let (first, _) = slots.enter(a, t0).expect("room");
        let (second, _) = slots.enter(a, t0 + Duration::from_secs(1)).expect("room");
        // Two per client: a third from `a` while both are busy is refused; while one is
        // idle, that one makes room.
        first.busy();
        second.busy();
        assert_eq!(
            slots.enter(a, t0).map(|_| ()),
            Err(Refused::PerClient),
            "two per client"
        );
        second.idle(t0 + Duration::from_secs(1));
        let (second, evicted) = slots.enter(a, t0 + Duration::from_secs(2)).expect("room");
        assert!(evicted, "a's idle one made room");
        first.idle(t0);
        let (third, evicted) = slots.enter(b, t0 + Duration::from_secs(2)).expect("room");
        assert!(!evicted);
        // Full: the newcomer takes the slot of the one idle longest.
        first.busy();
        let (fourth, evicted) = slots.enter(b, t0 + Duration::from_secs(3)).expect("room");
        assert!(evicted);
        assert_eq!(slots.len(), 3);
        // `second` was evicted (its slot is gone; dropping it changes nothing).
        drop(second);
        assert_eq!(slots.len(), 3);
        // Every slot busy: refused.
        third.busy();
        fourth.busy();
        let c: IpAddr = "10.0.0.3".parse().expect("ip");
        assert_eq!(slots.enter(c, t0).map(|_| ()), Err(Refused::Full));
        drop(first);
        assert!(slots.enter(c, t0).is_ok());
    }

    #[test]
    fn a_flooding_client_loses_its_own_connections_first() {
        // 4 slots, 3 per client: a client holding 3 loses its own, even newer than the
        // quiet client's one, which stays however long it has been idle.
        let slots = Slots::new(4, 3);
        let t0 = Instant::now();
        let flood: IpAddr = "10.0.0.66".parse().expect("ip");
        let quiet: IpAddr = "10.0.0.2".parse().expect("ip");
        let mut kept = Vec::new();
        let (q, _) = slots.enter(quiet, t0).expect("room");
        for i in 1..=3 {
            kept.push(
                slots
                    .enter(flood, t0 + Duration::from_secs(i))
                    .expect("room"),
            );
        }
        let c: IpAddr = "10.0.0.3".parse().expect("ip");
        for i in 0..10 {
            let (t, evicted) = slots
                .enter(c, t0 + Duration::from_secs(10 + i))
                .expect("room");
            assert!(evicted);
            kept.push((t, evicted));
        }
        // The quiet client's slot is still there, idle since t0.
        assert!(
            slots.lock().open.contains_key(&q.id()),
            "the quiet client kept its slot"
        );
        assert_eq!(slots.len(), 4);
    }
}
