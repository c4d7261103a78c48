//! What the detector saw: a small owned value per DNS name, SNI, HTTP host or connection,
//! free of payloads, and the small address types every layer shares ([`Mac`],
//! [`canonical`]).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use super::time::Timestamp;

/// How something was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// A DNS query (or an answer whose query was not captured).
    Dns,
    /// A TLS ClientHello over TCP (its SNI, or none).
    Tls,
    /// A ClientHello inside QUIC Initials, on any UDP port.
    Quic,
    /// A plaintext HTTP/1 request: its `Host` header or absolute-form target.
    Http,
    /// An HTTP `CONNECT` to a proxy: the tunnel's target is in clear.
    Connect,
    /// A TCP connection whose first flight named nothing (no payload before it ended, a
    /// protocol aiwarden does not read, or a flight given up on: `incomplete`): only its
    /// addresses and port say anything.
    Tcp,
}

impl Proto {
    /// Every protocol, for metrics.
    pub const ALL: [Proto; 6] = [
        Proto::Dns,
        Proto::Tls,
        Proto::Quic,
        Proto::Http,
        Proto::Connect,
        Proto::Tcp,
    ];

    /// The lowercase name used in output and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Dns => "dns",
            Proto::Tls => "tls",
            Proto::Quic => "quic",
            Proto::Http => "http",
            Proto::Connect => "connect",
            Proto::Tcp => "tcp",
        }
    }
}

impl FromStr for Proto {
    type Err = String;

    fn from_str(s: &str) -> Result<Proto, String> {
        Proto::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown protocol {s:?}"))
    }
}

/// A 48-bit Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// An address a device can have as its own: not all zeros (an incomplete neighbour
    /// entry), not a group address (broadcast, multicast).
    pub fn unicast(bytes: [u8; 6]) -> Option<Mac> {
        (bytes != [0; 6] && bytes[0] & 1 == 0).then_some(Mac(bytes))
    }
}

impl FromStr for Mac {
    type Err = String;

    /// Accepts `52:54:00:ab:cd:ef` and `52-54-00-AB-CD-EF`.
    fn from_str(s: &str) -> Result<Mac, String> {
        let bad =
            || format!("invalid MAC address {s:?} (expected six hex pairs like 52:54:00:ab:cd:ef)");
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut mac = [0u8; 6];
        for (byte, part) in mac.iter_mut().zip(parts) {
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        Ok(Mac(mac))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl serde::Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The one spelling of a client address: an IPv4-mapped IPv6 address (how a socket bound
/// to `[::]` sees an IPv4 client) becomes the IPv4 address, so a device has one address
/// whichever socket or capture saw it.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// True for addresses that never leave the site: private, loopback, link-local, shared
/// (CGNAT), unique-local, multicast and unspecified. A connection to one needs no DNS
/// answer to be explained.
pub fn is_local(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_unspecified()
                || (v4.octets()[0] == 100 && v4.octets()[1] & 0xc0 == 64)
        }
        IpAddr::V6(v6) => {
            let s0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || s0 & 0xfe00 == 0xfc00
                || s0 & 0xffc0 == 0xfe80
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated host name: lowercase ASCII, no trailing dot, labels of letters, digits,
/// `-` and `_` (the last appears in real DNS names such as `_dns.resolver.arpa`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Host(Box<str>);

/// Why a name was refused as a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// Empty, or only a dot.
    Empty,
    /// Longer than 253 characters.
    TooLong,
    /// An empty label (`a..b`) or one longer than 63 characters.
    BadLabel,
    /// A byte that has no place in a host name.
    BadByte,
}

impl Host {
    /// Normalises `name`: lowercases, drops one trailing dot, checks every byte and label.
    pub fn parse(name: &[u8]) -> Result<Host, HostError> {
        let name = name.strip_suffix(b".").unwrap_or(name);
        if name.is_empty() {
            return Err(HostError::Empty);
        }
        if name.len() > 253 {
            return Err(HostError::TooLong);
        }
        let mut out = String::with_capacity(name.len());
        let mut label_len = 0usize;
        for &b in name {
            match b {
                b'.' => {
                    if label_len == 0 {
                        return Err(HostError::BadLabel);
                    }
                    label_len = 0;
                    out.push('.');
                    continue;
                }
                b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => out.push(char::from(b)),
                b'A'..=b'Z' => out.push(char::from(b.to_ascii_lowercase())),
                _ => return Err(HostError::BadByte),
            }
            label_len += 1;
            if label_len > 63 {
                return Err(HostError::BadLabel);
            }
        }
        if label_len == 0 {
            return Err(HostError::BadLabel);
        }
        Ok(Host(out.into_boxed_str()))
    }

    /// The normalised name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One sighting on the wire: a name asked or sent, or a connection that named nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Capture time of the packet that completed the sighting.
    pub ts: Timestamp,
    /// The device that asked (DNS client, TLS/QUIC/HTTP client), address canonical.
    pub client: SocketAddr,
    /// The device's Ethernet address, when frames from it were seen on this segment and
    /// the address is not a router's (behind a router only the address is known).
    pub client_mac: Option<Mac>,
    /// The DNS server, the TLS/QUIC/HTTP server or the proxy.
    pub server: SocketAddr,
    /// How it was seen.
    pub proto: Proto,
    /// The name queried, the SNI, the HTTP host or the CONNECT target. `None` for a
    /// ClientHello without SNI (an IP-literal URL) and for a connection that named nothing.
    pub host: Option<Host>,
    /// TLS/QUIC/HTTP: the name a DNS answer gave this device for `server`, when it is not
    /// `host`: with an ECH extension, the real destination behind a public name.
    pub asked: Option<Host>,
    /// TLS/QUIC: the ClientHello carries an `encrypted_client_hello` extension (real ECH or
    /// GREASE; the pipeline tells them apart). DNS: an HTTPS/SVCB answer offered ECH.
    pub ech_offered: bool,
    /// TLS/QUIC/HTTP/TCP: no DNS answer to this device explained the server address
    /// (DoH, a hard-coded address).
    pub unresolved: bool,
    /// TCP: the client's first flight began (a partial ClientHello or HTTP head) but was
    /// given up before it named anything: the memory budget, the idle limit, the byte cap,
    /// too many holes, the connection's end or the capture's. `proto` is then `Tcp`.
    pub incomplete: bool,
    /// TLS/QUIC: the ALPN protocols offered, in order.
    pub alpn: Vec<String>,
    /// DNS: the query type (`A`, `AAAA`, `HTTPS`...).
    pub qtype: Option<String>,
    /// DNS, when reported from an answer: the CNAME chain and addresses, in order. Empty
    /// for queries (their answers feed the IP-to-name map instead).
    pub answers: Vec<String>,
    /// TLS/HTTP/CONNECT/TCP: the sequence numbers of the client's segment that completed
    /// the first flight, what a sensor needs to reset the connection. `None` for DNS and
    /// QUIC, and for a connection reported without such a segment (silent, closed, given
    /// up on a timer or at the capture's end).
    pub tcp: Option<TcpSeen>,
}

/// A TCP connection's state as the client's segment that completed its first flight
/// showed it: enough to forge a reset each way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSeen {
    /// The client's next sequence number: the end of the flight as far as it is
    /// contiguous (or of the segment, when it was cut at the flight cap). What the server
    /// expects next.
    pub client_next: u32,
    /// The segment's acknowledgement number: the server's next sequence number, as long
    /// as it has sent nothing since its SYN-ACK. What the client expects next.
    pub server_next: u32,
    /// The client's advertised window, unscaled.
    pub window: u16,
    /// The frame's Ethernet addresses; `None` on links without them and for tunnelled
    /// packets (whose outer addresses are the tunnel's).
    pub link: Option<LinkSeen>,
}

/// The Ethernet addresses of a client's frame, for frames forged either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkSeen {
    /// The client's MAC (the frame's source).
    pub client: Mac,
    /// The frame's destination: the server's MAC, or the router's toward it.
    pub server: Mac,
    /// The frame's VLAN ID (the first tag only: a QinQ frame's inner tag is not kept).
    pub vlan: Option<u16>,
}

/// Direction-specific 5-tuple-less flow key: source and destination socket addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Sender of the packet.
    pub src: SocketAddr,
    /// Receiver of the packet.
    pub dst: SocketAddr,
}

impl FlowKey {
    /// The key of the opposite direction.
    pub fn reversed(self) -> FlowKey {
        FlowKey {
            src: self.dst,
            dst: self.src,
        }
    }

    /// The sender's IP address.
    pub fn src_ip(&self) -> IpAddr {
        self.src.ip()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_trailing_dot() {
        let h = Host::parse(b"ChatGPT.COM.").expect("valid");
        assert_eq!(h.as_str(), "chatgpt.com");
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(Host::parse(b""), Err(HostError::Empty));
        assert_eq!(Host::parse(b"."), Err(HostError::Empty));
        assert_eq!(Host::parse(b"a..b"), Err(HostError::BadLabel));
        assert_eq!(Host::parse(b".a"), Err(HostError::BadLabel));
        assert_eq!(Host::parse(b"a b.com"), Err(HostError::BadByte));
        assert_eq!(Host::parse(b"caf\xc3\xa9.com"), Err(HostError::BadByte));
        assert_eq!(Host::parse(&[b'a'; 64]), Err(HostError::BadLabel));
        let long = vec![b'a'; 254];
        assert_eq!(Host::parse(&long), Err(HostError::TooLong));
    }

    #[test]
    fn keeps_punycode_and_underscores() {
        assert_eq!(
            Host::parse(b"xn--chtgpt-9za.com").map(|h| h.to_string()),
            Ok("xn--chtgpt-9za.com".to_string())
        );
        assert!(Host::parse(b"_dns.resolver.arpa").is_ok());
    }
}
