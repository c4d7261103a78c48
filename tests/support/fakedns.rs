//! An upstream DNS server for fault tests, over UDP and TCP, that behaves as hostile or
//! broken upstreams do, by name:
//! - `*.slow.attack.test`: never answered;
//! - `*.huge.attack.test`: a ~62 KB TXT answer (over UDP a truncated one, as a real server
//!   answers a 1,232-byte EDNS asker, so the resolver asks again over TCP);
//! - anything else: `A 198.51.100.7` (TTL 300), or an empty answer for other types.
//!
//! Runs on threads in the calling thread's network namespace until the flag is set.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, OpCode};
use hickory_proto::rr::rdata::{A, TXT};
use hickory_proto::rr::{RData, Record, RecordType};

/// What the fake upstream was asked.
#[derive(Debug, Default)]
pub(crate) struct Asked {
    pub(crate) udp: AtomicU64,
    pub(crate) tcp: AtomicU64,
    pub(crate) slow: AtomicU64,
    pub(crate) huge: AtomicU64,
}

/// The answer to `query`, or `None` to stay silent.
fn answer(query: &[u8], udp: bool, asked: &Asked) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let question = q.queries.first()?.clone();
    let name = question.name().to_ascii().to_ascii_lowercase();
    let mut r = Message::response(q.metadata.id, OpCode::Query);
    r.metadata.recursion_desired = q.metadata.recursion_desired;
    r.metadata.recursion_available = true;
    r.queries = vec![question.clone()];
    if name.ends_with(".slow.attack.test.") {
        asked.slow.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    if name.ends_with(".huge.attack.test.") {
        asked.huge.fetch_add(1, Ordering::Relaxed);
        if udp {
            r.metadata.truncation = true;
            return r.to_vec().ok();
        }
        let text = "x".repeat(255);
        for _ in 0..230 {
            r.answers.push(Record::from_rdata(
                question.name().clone(),
                300,
                RData::TXT(TXT::new(vec![text.clone()])),
            ));
        }
        return r.to_vec().ok();
    }
    if question.query_type() == RecordType::A {
        r.answers.push(Record::from_rdata(
            question.name().clone(),
            300,
            RData::A(A::new(198, 51, 100, 7)),
        ));
    }
    r.to_vec().ok()
}

/// Serves UDP and TCP on `addr` (an address of the current namespace; port 0 picks one)
/// until `stop`; returns the address served and what it was asked.
pub(crate) fn serve(addr: SocketAddr, stop: Arc<AtomicBool>) -> (SocketAddr, Arc<Asked>) {
    let asked = Arc::new(Asked::default());
    let udp = UdpSocket::bind(addr).expect("fake upstream udp");
    udp.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let addr = udp.local_addr().expect("addr");
    let tcp = TcpListener::bind(addr).expect("fake upstream tcp");
    tcp.set_nonblocking(true).expect("nonblocking");
    {
        let (asked, stop) = (asked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_535];
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, peer)) = udp.recv_from(&mut buf) else {
                    continue;
                };
                asked.udp.fetch_add(1, Ordering::Relaxed);
                if let Some(a) = answer(&buf[..n], true, &asked) {
                    let _ = udp.send_to(&a, peer);
                }
            }
        });
    }
    {
        let (asked, stop) = (asked.clone(), stop);
        let open = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match tcp.accept() {
                    Ok((s, _)) => {
                        if open.load(Ordering::Relaxed) >= 256 {
                            continue;
                        }
                        open.fetch_add(1, Ordering::Relaxed);
                        let (asked, open, stop) = (asked.clone(), open.clone(), stop.clone());
                        std::thread::spawn(move || {
                            serve_tcp(s, &asked, &stop);
                            open.fetch_sub(1, Ordering::Relaxed);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
    }
    (addr, asked)
}

fn serve_tcp(mut s: TcpStream, asked: &Asked, stop: &AtomicBool) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut len = [0u8; 2];
    while !stop.load(Ordering::Relaxed) && s.read_exact(&mut len).is_ok() {
        let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if s.read_exact(&mut q).is_err() {
            return;
        }
        asked.tcp.fetch_add(1, Ordering::Relaxed);
        if let Some(a) = answer(&q, false, asked) {
            let Ok(n) = u16::try_from(a.len()) else {
                return;
            };
            let mut out = n.to_be_bytes().to_vec();
            out.extend_from_slice(&a);
            if s.write_all(&out).is_err() {
                return;
            }
        }
    }
}
