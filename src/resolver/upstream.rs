//! Upstream resolvers: plain DNS over UDP (TCP on truncation) and DNS over TLS with the
//! certificate verified, tried in order within the configured timeout.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::{Asked, Resolver};
use crate::config::Upstream;

fn random_id() -> u16 {
    let mut b = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u16::from_be_bytes(b)
}

impl Resolver {
    pub(super) async fn forward(&self, asked: &Asked) -> Option<Message> {
        let mut q = Message::new(random_id(), MessageType::Query, OpCode::Query);
        q.metadata.recursion_desired = true;
        q.metadata.checking_disabled = asked.msg.metadata.checking_disabled;
        q.queries = vec![asked.query.clone()];
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        edns.set_dnssec_ok(asked.key.dnssec_ok);
        q.edns = Some(edns);
        let bytes = q.to_vec().ok()?;
        let timeout = Duration::from_millis(self.cfg.timeout_ms);
        for up in &self.cfg.upstreams {
            let got = match up {
                Upstream::Plain(addr) => {
                    match tokio::time::timeout(timeout, udp_exchange(*addr, &bytes, &q)).await {
                        Ok(Some(m)) if m.metadata.truncation => {
                            tokio::time::timeout(timeout, tcp_exchange(*addr, &bytes, &q))
                                .await
                                .ok()
                                .flatten()
                        }
                        Ok(m) => m,
                        Err(_) => None,
                    }
                }
                Upstream::Tls { addr, name } => match &self.tls {
                    Some(tls) => {
                        tokio::time::timeout(timeout, tls_exchange(tls, *addr, name, &bytes, &q))
                            .await
                            .ok()
                            .flatten()
                    }
                    None => None,
                },
            };
            match got {
                Some(m) if m.metadata.response_code != ResponseCode::ServFail => return Some(m),
                _ => tracing::debug!(upstream = ?up, "upstream failed"),
            }
        }
        None
    }
}

fn matches(resp: &Message, q: &Message) -> bool {
    resp.metadata.id == q.metadata.id
        && resp.metadata.message_type == MessageType::Response
        && resp.queries.len() == 1
        && q.queries.first().is_some_and(|a| {
            let b = &resp.queries[0];
            a.query_type() == b.query_type()
                && a.query_class() == b.query_class()
                && a.name()
                    .to_ascii()
                    .eq_ignore_ascii_case(&b.name().to_ascii())
        })
}

pub(super) async fn udp_exchange(addr: SocketAddr, bytes: &[u8], q: &Message) -> Option<Message> {
    let bind: SocketAddr = if addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = UdpSocket::bind(bind).await.ok()?;
    s.connect(addr).await.ok()?;
    s.send(bytes).await.ok()?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = s.recv(&mut buf).await.ok()?;
        if let Ok(m) = Message::from_vec(&buf[..n]) {
            if matches(&m, q) {
                return Some(m);
            }
        }
    }
}

pub(super) async fn stream_exchange<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    s: &mut S,
    bytes: &[u8],
    q: &Message,
) -> Option<Message> {
    let mut out = Vec::with_capacity(bytes.len() + 2);
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
    s.write_all(&out).await.ok()?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await.ok()?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).await.ok()?;
    Message::from_vec(&buf).ok().filter(|m| matches(m, q))
}

async fn tcp_exchange(addr: SocketAddr, bytes: &[u8], q: &Message) -> Option<Message> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    stream_exchange(&mut s, bytes, q).await
}

async fn tls_exchange(
    tls: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    name: &str,
    bytes: &[u8],
    q: &Message,
) -> Option<Message> {
    let server_name = rustls::pki_types::ServerName::try_from(name.to_string()).ok()?;
    let tcp = TcpStream::connect(addr).await.ok()?;
    let mut s = tls.connect(server_name, tcp).await.ok()?;
    stream_exchange(&mut s, bytes, q).await
}

pub(super) fn tls_connector(
    ca_file: Option<&std::path::Path>,
) -> crate::Result<tokio_rustls::TlsConnector> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let path = ca_file.unwrap_or(std::path::Path::new(crate::paths::CA_CERTIFICATES));
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
        crate::Error::Tls(format!(
            "cannot read CA certificates {}: {e}",
            path.display()
        ))
    })?;
    for c in certs.flatten() {
        let _ = roots.add(c);
    }
    if roots.is_empty() {
        return Err(crate::Error::Tls(format!(
            "no CA certificates in {}",
            path.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| crate::Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
