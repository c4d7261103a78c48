//! A threaded test server for end-to-end enforcement tests: HTTPS on any number of
//! addresses (a self-signed certificate; it answers every SNI with `hello <sni>`), and
//! optionally an HTTP CONNECT proxy. Threaded because a reset connection leaves the server
//! side half-open, which stalls a single-threaded server such as `openssl s_server`.
//!
//! ```text
//! tls_server --tls ADDR:PORT [--tls ADDR:PORT ...] [--proxy ADDR:PORT --map NAME=IP ...]
//! ```
//!
//! The proxy resolves CONNECT targets only through `--map` (tests have no DNS of their
//! own here) and splices bytes both ways.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

fn usage() -> ! {
    eprintln!("usage: tls_server --tls ADDR:PORT ... [--proxy ADDR:PORT --map NAME=IP ...]");
    std::process::exit(2)
}

fn main() {
    let mut tls = Vec::new();
    let mut proxy = None;
    let mut map = HashMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--tls" => tls.push(v.parse::<SocketAddr>().unwrap_or_else(|_| usage())),
            "--proxy" => proxy = Some(v.parse::<SocketAddr>().unwrap_or_else(|_| usage())),
            "--map" => {
                let (n, ip) = v.split_once('=').unwrap_or_else(|| usage());
                map.insert(
                    n.to_string(),
                    ip.parse::<IpAddr>().unwrap_or_else(|_| usage()),
                );
            }
            _ => usage(),
        }
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["test.invalid".to_string()])
        .unwrap_or_else(|e| panic!("certificate: {e}"));
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let config = Arc::new(
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap_or_else(|e| panic!("tls config: {e}")),
    );
    let mut handles = Vec::new();
    for addr in tls {
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let config = config.clone();
        handles.push(thread::spawn(move || {
            for s in listener.incoming().flatten() {
                let config = config.clone();
                thread::spawn(move || serve_tls(s, config));
            }
        }));
    }
    if let Some(addr) = proxy {
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let map = Arc::new(map);
        handles.push(thread::spawn(move || {
            for s in listener.incoming().flatten() {
                let map = map.clone();
                thread::spawn(move || serve_proxy(s, &map));
            }
        }));
    }
    println!("ready");
    for h in handles {
        let _ = h.join();
    }
}

fn serve_tls(mut sock: TcpStream, config: Arc<rustls::ServerConfig>) {
    let _ = sock.set_read_timeout(Some(Duration::from_secs(10)));
    let mut conn = match rustls::ServerConnection::new(config) {
        Ok(c) => c,
        Err(_) => return,
    };
    while conn.is_handshaking() {
        if conn.complete_io(&mut sock).is_err() {
            return;
        }
    }
    let sni = conn.server_name().unwrap_or("-").to_string();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    let mut buf = [0u8; 4096];
    // The request head, then one answer and close.
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16_384 {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let body = format!("hello {sni}\n");
    let _ = write!(
        tls,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tls.flush();
    conn.send_close_notify();
    let _ = conn.complete_io(&mut sock);
}

fn serve_proxy(client: TcpStream, map: &HashMap<String, IpAddr>) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match client.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) | Err(_) => return,
            Ok(_) if h == "\r\n" || h == "\n" => break,
            Ok(_) => {}
        }
    }
    let mut out = client;
    let target = line
        .strip_prefix("CONNECT ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|hp| hp.rsplit_once(':'))
        .and_then(|(h, p)| Some((map.get(h)?, p.parse::<u16>().ok()?)));
    let (ip, port) = match target {
        Some((ip, port)) => (*ip, port),
        None => {
            let _ = out.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
            return;
        }
    };
    let mut upstream =
        match TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_secs(5)) {
            Ok(u) => u,
            Err(_) => {
                let _ = out.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                return;
            }
        };
    if out
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_err()
    {
        return;
    }
    // Whatever the client sent after the head is in the reader's buffer.
    let pending = reader.buffer().to_vec();
    if !pending.is_empty() && upstream.write_all(&pending).is_err() {
        return;
    }
    let (mut up_r, mut out_w) = match (upstream.try_clone(), out.try_clone()) {
        (Ok(u), Ok(o)) => (u, o),
        _ => return,
    };
    let t = thread::spawn(move || {
        let _ = std::io::copy(&mut up_r, &mut out_w);
    });
    let mut client_r = reader.into_inner();
    let _ = std::io::copy(&mut client_r, &mut upstream);
    let _ = upstream.shutdown(std::net::Shutdown::Write);
    let _ = t.join();
}
