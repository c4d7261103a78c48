//! What the detector saw: a small owned value per DNS name or SNI, free of payloads.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::time::Timestamp;

/// How a host name was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// A DNS query (or an answer whose query was not captured).
    Dns,
    /// The SNI of a TLS ClientHello over TCP.
    Tls,
    /// The SNI of a ClientHello inside a QUIC Initial.
    Quic,
}

impl Proto {
    /// The lowercase name used in output and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Dns => "dns",
            Proto::Tls => "tls",
            Proto::Quic => "quic",
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

/// One sighting of a host name on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Capture time of the packet that completed the sighting.
    pub ts: Timestamp,
    /// The device that asked (DNS client, TLS/QUIC client).
    pub client: SocketAddr,
    /// The DNS server or the TLS/QUIC server.
    pub server: SocketAddr,
    /// How it was seen.
    pub proto: Proto,
    /// The name queried or the SNI.
    pub host: Host,
    /// TLS/QUIC: an `encrypted_client_hello` extension was present, so `host` is the outer
    /// (public) name. DNS: an HTTPS/SVCB answer carried an `ech` parameter.
    pub ech: bool,
    /// TLS/QUIC: the server IP was never in a DNS answer to this client (DoH, hard-coded IP).
    pub unresolved: bool,
    /// TLS/QUIC: the ALPN protocols offered, in order.
    pub alpn: Vec<String>,
    /// DNS: the query type (`A`, `AAAA`, `HTTPS`...).
    pub qtype: Option<String>,
    /// DNS, when reported from an answer: the CNAME chain and addresses, in order. Empty
    /// for queries (their answers feed the IP-to-name map instead).
    pub answers: Vec<String>,
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
