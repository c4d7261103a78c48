//! Fixtures for every way a device reaches a service besides a plain lookup and a
//! ClientHello on port 443: plaintext HTTP on any port, an HTTP CONNECT proxy, DNS over TLS
//! on port 853, TLS without SNI (IP-literal URLs, DoH to a resolver's address), TLS and QUIC
//! on other ports, and a dual-stack device that looks up over IPv4 and connects over IPv6.
//! ClientHellos from rustls, Initials from quinn, as in the rest of the generator.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use hickory_proto::rr::RecordType;

use super::{
    dns_answer, dns_query, dns_udp, quinn_initials, rustls_client_hello, tcp_conn, Capture, Link,
    Res, Tcp, CLIENT,
};

fn c(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(CLIENT), port)
}

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

/// A TCP connection whose client flight is `request`, answered by `reply`, then closed.
fn exchange(
    cap: &mut Capture,
    client: SocketAddr,
    server: SocketAddr,
    request: &[u8],
    reply: &[u8],
) {
    let (cisn, sisn) = (2_000_000u32 + u32::from(client.port()), 9_000_000u32);
    cap.tcp(client, server, cisn, 0, "S", &[]);
    cap.tcp(server, client, sisn, cisn + 1, "SA", &[]);
    cap.tcp(client, server, cisn + 1, sisn + 1, "A", &[]);
    cap.tcp(client, server, cisn + 1, sisn + 1, "AP", request);
    let cend = cisn + 1 + request.len() as u32;
    cap.tcp(server, client, sisn + 1, cend, "AP", reply);
    let send = sisn + 1 + reply.len() as u32;
    cap.tcp(client, server, cend, send, "AF", &[]);
    cap.tcp(server, client, send, cend + 1, "AF", &[]);
}

/// Writes the path fixtures into `fixtures`.
pub(crate) fn write_paths(fixtures: &Path) -> Res<()> {
    // Plain HTTP: a Host header on port 80, and one with a port on 8080. Only the host is
    // read; the path and the other headers are not kept.
    let mut cap = Capture::new(Link::Ethernet, 900);
    exchange(
        &mut cap,
        c(50080),
        sa("203.0.113.7:80"),
        b"GET /c/6740-secret-path?x=1 HTTP/1.1\r\nHost: chatgpt.com\r\nAccept: */*\r\n\r\n",
        b"HTTP/1.1 301 Moved Permanently\r\nLocation: https://chatgpt.com/\r\nContent-Length: 0\r\n\r\n",
    );
    exchange(
        &mut cap,
        c(50081),
        sa("203.0.113.7:8080"),
        b"POST /api HTTP/1.1\r\nUser-Agent: x\r\nhost: Claude.AI:8080\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    );
    cap.write(&fixtures.join("http_host.pcap"))?;

    // An HTTP CONNECT proxy on 3128: the tunnel's target in clear, then the ClientHello
    // inside the tunnel (the proxy resolves the name; the device resolved nothing).
    let mut cap = Capture::new(Link::Ethernet, 960);
    let (client, proxy) = (c(50128), sa("10.0.0.1:3128"));
    let head = b"CONNECT chatgpt.com:443 HTTP/1.1\r\nHost: chatgpt.com:443\r\nUser-Agent: curl/7.88.1\r\n\r\n";
    let hello = rustls_client_hello("chatgpt.com", false)?;
    let (cisn, sisn) = (3_000_000u32, 8_000_000u32);
    cap.tcp(client, proxy, cisn, 0, "S", &[]);
    cap.tcp(proxy, client, sisn, cisn + 1, "SA", &[]);
    cap.tcp(client, proxy, cisn + 1, sisn + 1, "A", &[]);
    cap.tcp(client, proxy, cisn + 1, sisn + 1, "AP", head);
    let ok = b"HTTP/1.1 200 Connection established\r\n\r\n";
    let after_head = cisn + 1 + head.len() as u32;
    cap.tcp(proxy, client, sisn + 1, after_head, "AP", ok);
    let sack = sisn + 1 + ok.len() as u32;
    cap.tcp(client, proxy, after_head, sack, "AP", &hello[..1000]);
    cap.tcp(client, proxy, after_head + 1000, sack, "AP", &hello[1000..]);
    cap.write(&fixtures.join("connect_proxy.pcap"))?;

    // DNS over TLS: to a literal address that refuses (`dig +tls @IP`), and to Google's
    // resolver with its name in the SNI.
    let mut cap = Capture::new(Link::Ethernet, 1020);
    let (client, dot) = (c(50853), sa("203.0.113.53:853"));
    cap.tcp(client, dot, 4_000_000, 0, "S", &[]);
    cap.tcp(dot, client, 0, 4_000_001, "RA", &[]);
    let hello = rustls_client_hello("dns.google", false)?;
    tcp_conn(
        &mut cap,
        Tcp {
            client: c(50854),
            server: sa("8.8.4.4:853"),
            flight: &hello,
            cuts: &[],
            order: None,
            bulk: 1,
        },
    );
    cap.write(&fixtures.join("dot_853.pcap"))?;

    // TLS without SNI: an IP-literal URL to an address nobody resolved, and DoH to a
    // resolver's address (https://1.1.1.1/dns-query); QUIC to 8.8.8.8 likewise.
    let mut cap = Capture::new(Link::Ethernet, 1080);
    for (port, server) in [(50443, "203.0.113.9"), (50444, "1.1.1.1")] {
        let hello = rustls_client_hello(server, false)?;
        tcp_conn(
            &mut cap,
            Tcp {
                client: c(port),
                server: sa(&format!("{server}:443")),
                flight: &hello,
                cuts: &[],
                order: None,
                bulk: 1,
            },
        );
    }
    for d in quinn_initials("8.8.8.8", sa("8.8.8.8:443"))? {
        cap.udp(c(50445), sa("8.8.8.8:443"), &d);
    }
    cap.write(&fixtures.join("tls_no_sni.pcap"))?;

    // TLS on 4443 and QUIC on UDP 8443: any port.
    let mut cap = Capture::new(Link::Ethernet, 1140);
    let hello = rustls_client_hello("claude.ai", false)?;
    tcp_conn(
        &mut cap,
        Tcp {
            client: c(54443),
            server: sa("203.0.113.5:4443"),
            flight: &hello,
            cuts: &[1000],
            order: None,
            bulk: 2,
        },
    );
    for d in quinn_initials("gemini.google.com", sa("203.0.113.6:8443"))? {
        cap.udp(c(58443), sa("203.0.113.6:8443"), &d);
    }
    cap.write(&fixtures.join("any_port.pcap"))?;

    // A dual-stack device: A and AAAA over IPv4, then TLS over its IPv6 privacy address to
    // the AAAA address (explained), and to an IPv6 address nobody resolved (unresolved).
    let mut cap = Capture::new(Link::Ethernet, 1200);
    dns_udp(
        &mut cap,
        c(40100),
        0x8001,
        "claude.ai",
        RecordType::A,
        &["160.79.104.10".parse()?],
    )?;
    let resolver = sa("10.0.0.1:53");
    cap.udp(
        c(40101),
        resolver,
        &dns_query(0x8002, "claude.ai", RecordType::AAAA)?,
    );
    cap.udp(
        resolver,
        c(40101),
        &dns_answer(
            0x8002,
            &["claude.ai"],
            RecordType::AAAA,
            &["2607:6bc0::10".parse()?],
            false,
        )?,
    );
    let hello = rustls_client_hello("claude.ai", false)?;
    for (port, server) in [
        (50600, "[2607:6bc0::10]:443"),
        (50601, "[2607:6bc0::99]:443"),
    ] {
        tcp_conn(
            &mut cap,
            Tcp {
                client: sa(&format!("[2001:db8::23]:{port}")),
                server: sa(server),
                flight: &hello,
                cuts: &[900],
                order: None,
                bulk: 1,
            },
        );
    }
    cap.write(&fixtures.join("dual_stack.pcap"))?;
    Ok(())
}
