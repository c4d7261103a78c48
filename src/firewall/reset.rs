//! A sensor's enforcement: TCP resets injected onto the LAN. Out of the traffic path (a
//! switch mirror port, or beside the router), aiwarden cannot drop a connection; when a
//! blocked first flight is seen it forges a reset each way, from the sequence numbers the
//! mirrored client segment showed ([`TcpSeen`]): to the server as if from the client, to
//! the client as if from the server. Best effort by design: a race with the server's
//! reply, which a near sensor and a far AI service usually win.
//!
//! [`resets`] builds the two frames (pure); [`Resetter`] owns the sending socket of one
//! interface and implements [`Enforcer`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etherparse::{PacketBuilder, PacketBuilderStep, VlanId};
use pnet_datalink::{Channel, DataLinkSender};

use super::Enforcer;
use crate::detect::{LinkSeen, Mac, Observation, Proto, TcpSeen};
use crate::error::{Error, Result};
use crate::incident::Action;
use crate::limit::Throttle;
use crate::metrics::Metrics;
use crate::policy::Verdict;

/// The two frames that reset one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resets {
    /// To the server, as if from the client.
    pub to_server: Vec<u8>,
    /// To the client, as if from the server.
    pub to_client: Vec<u8>,
}

/// The hop limit of forged packets: what a host on the LAN would send.
const TTL: u8 = 64;

/// The resets of the connection `client` ⇄ `server` whose client segment showed `seen`:
/// `None` when the frame had no Ethernet addresses to forge from, or the addresses are of
/// different families. Each is RST+ACK: the server is told the byte the client would send
/// next, the client the byte the server would (exactly where RFC 5961 wants a reset to
/// be, so it is not answered with a challenge ACK).
///
/// With `own`, the sender's MAC, both frames come from it: a switch then never learns the
/// client's or the router's address on the sensor's port (which would send their traffic
/// there), and no host checks the source MAC of a TCP segment. Without it they carry the
/// addresses the mirrored frame had, swapped for the client's reset.
pub fn resets(
    client: SocketAddr,
    server: SocketAddr,
    seen: &TcpSeen,
    own: Option<Mac>,
) -> Option<Resets> {
    let link = seen.link?;
    let to_server = frame(
        &link,
        own,
        Side::FromClient,
        client,
        server,
        seen.client_next,
        seen.server_next,
    )?;
    let to_client = frame(
        &link,
        own,
        Side::FromServer,
        server,
        client,
        seen.server_next,
        seen.client_next,
    )?;
    Some(Resets {
        to_server,
        to_client,
    })
}

/// Who a forged frame pretends to come from.
#[derive(Debug, Clone, Copy)]
enum Side {
    FromClient,
    FromServer,
}

fn frame(
    link: &LinkSeen,
    own: Option<Mac>,
    side: Side,
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
) -> Option<Vec<u8>> {
    let (src_mac, dst_mac) = match side {
        Side::FromClient => (link.client, link.server),
        Side::FromServer => (link.server, link.client),
    };
    let eth = PacketBuilder::ethernet2(own.unwrap_or(src_mac).0, dst_mac.0);
    let ip: PacketBuilderStep<etherparse::IpHeaders> =
        match (link.vlan, src.ip(), dst.ip()) {
            (None, IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), TTL),
            (None, IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), TTL),
            (Some(v), IpAddr::V4(s), IpAddr::V4(d)) => eth
                .single_vlan(VlanId::try_new(v).ok()?)
                .ipv4(s.octets(), d.octets(), TTL),
            (Some(v), IpAddr::V6(s), IpAddr::V6(d)) => eth
                .single_vlan(VlanId::try_new(v).ok()?)
                .ipv6(s.octets(), d.octets(), TTL),
            _ => return None,
        };
    let tcp = ip.tcp(src.port(), dst.port(), seq, 0).rst().ack(ack);
    let mut out = Vec::with_capacity(tcp.size(0));
    tcp.write(&mut out, &[]).ok()?;
    Some(out)
}

/// Which observations a reset can end: those carried by a TCP connection.
fn tcp_borne(proto: Proto) -> bool {
    matches!(
        proto,
        Proto::Tls | Proto::Http | Proto::Connect | Proto::Tcp
    )
}

/// Sends the resets for blocked connections on one interface. A send never waits: the
/// socket is non-blocking and a full queue is an error, counted
/// (`aiwarden_resets_total{result="error"}`) and logged once per interval.
pub struct Resetter {
    tx: Box<dyn DataLinkSender>,
    /// The interface's MAC, the source of every frame sent.
    own: Option<Mac>,
    interface: String,
    metrics: Arc<Metrics>,
    errors: Throttle,
}

impl std::fmt::Debug for Resetter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resetter")
            .field("interface", &self.interface)
            .finish_non_exhaustive()
    }
}

impl Resetter {
    /// Opens a raw (`AF_PACKET`) socket on `interface` to send resets from. Needs
    /// `CAP_NET_RAW`.
    pub fn open(interface: &str, metrics: Arc<Metrics>) -> Result<Resetter> {
        let fail = |message: String| Error::Firewall {
            what: format!("reset interface {interface}"),
            message,
        };
        let iface = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == interface)
            .ok_or_else(|| fail("no such interface".into()))?;
        let config = pnet_datalink::Config {
            // Never wait for room in the socket's queue: a reset that cannot go now is
            // late anyway, and the detection thread must not stall.
            write_timeout: Some(Duration::ZERO),
            // The capture owns promiscuous mode; this socket only sends.
            promiscuous: false,
            read_buffer_size: 0,
            ..Default::default()
        };
        match pnet_datalink::channel(&iface, config) {
            Ok(Channel::Ethernet(tx, _rx)) => Ok(Resetter {
                tx,
                own: iface
                    .mac
                    .map(|m| Mac(m.octets()))
                    .and_then(|m| Mac::unicast(m.0)),
                interface: interface.to_string(),
                metrics,
                errors: Throttle::new(Duration::from_secs(10)),
            }),
            Ok(_) => Err(fail("not an ethernet channel".into())),
            Err(e) => Err(fail(e.to_string())),
        }
    }

    /// Sends both frames; the first failure is the error.
    fn send(&mut self, r: &Resets) -> std::io::Result<()> {
        for f in [&r.to_server, &r.to_client] {
            match self.tx.send_to(f, None) {
                Some(Ok(())) => {}
                Some(Err(e)) => return Err(e),
                None => return Err(std::io::Error::other("frame larger than the send buffer")),
            }
        }
        Ok(())
    }

    fn count(&self, result: &str) {
        self.metrics.resets.with_label_values(&[result]).inc();
    }
}

impl Enforcer for Resetter {
    fn act(&mut self, obs: &Observation, verdict: Verdict) -> Option<Action> {
        if verdict != Verdict::Block || !tcp_borne(obs.proto) {
            return None;
        }
        let Some(frames) = obs
            .tcp
            .as_ref()
            .and_then(|seen| resets(obs.client, obs.server, seen, self.own))
        else {
            self.count("no_sequence");
            return None;
        };
        match self.send(&frames) {
            Ok(()) => {
                self.count("sent");
                tracing::trace!(client = %obs.client, server = %obs.server, "reset sent");
                Some(Action::Reset)
            }
            Err(e) => {
                self.count("error");
                if let Some(quiet) = self.errors.ready(Instant::now()) {
                    tracing::warn!(interface = %self.interface, error = %e, not_logged = quiet,
                        "reset not sent");
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    const CLIENT_MAC: Mac = Mac([2, 0, 0, 0, 0, 0x23]);
    const ROUTER_MAC: Mac = Mac([2, 0, 0, 0, 0, 0x01]);

    fn seen(vlan: Option<u16>) -> TcpSeen {
        TcpSeen {
            client_next: 1_000_518,
            server_next: 4_000_000_001,
            window: 502,
            link: Some(LinkSeen {
                client: CLIENT_MAC,
                server: ROUTER_MAC,
                vlan,
            }),
        }
    }

    /// What a frame says: MACs, VLAN, addresses, ports, seq, ack, flags; and that both
    /// checksums verify.
    #[derive(Debug, PartialEq, Eq)]
    struct Parsed {
        src_mac: Mac,
        dst_mac: Mac,
        vlan: Option<u16>,
        src: SocketAddr,
        dst: SocketAddr,
        seq: u32,
        ack: u32,
        rst_ack_only: bool,
    }

    fn parse(f: &[u8]) -> Parsed {
        let p = SlicedPacket::from_ethernet(f).expect("parses");
        let eth = match &p.link {
            Some(etherparse::LinkSlice::Ethernet2(e)) => e,
            other => panic!("not ethernet: {other:?}"),
        };
        let vlan = p.vlan_ids().first().map(|v| v.value());
        let (src_ip, dst_ip, tcp_checksum) = match (&p.net, &p.transport) {
            (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Tcp(t))) => {
                let h = ip.header().to_header();
                assert_eq!(
                    h.header_checksum,
                    h.calc_header_checksum(),
                    "ipv4 header checksum"
                );
                let want = t
                    .to_header()
                    .calc_checksum_ipv4(&h, t.payload())
                    .expect("sum");
                (
                    IpAddr::from(h.source),
                    IpAddr::from(h.destination),
                    (t.checksum(), want),
                )
            }
            (Some(NetSlice::Ipv6(ip)), Some(TransportSlice::Tcp(t))) => {
                let h = ip.header().to_header();
                let want = t
                    .to_header()
                    .calc_checksum_ipv6(&h, t.payload())
                    .expect("sum");
                (
                    IpAddr::from(h.source),
                    IpAddr::from(h.destination),
                    (t.checksum(), want),
                )
            }
            other => panic!("not tcp over ip: {other:?}"),
        };
        assert_eq!(tcp_checksum.0, tcp_checksum.1, "tcp checksum");
        let Some(TransportSlice::Tcp(t)) = p.transport else {
            unreachable!()
        };
        assert!(t.payload().is_empty());
        Parsed {
            src_mac: Mac(eth.source()),
            dst_mac: Mac(eth.destination()),
            vlan,
            src: SocketAddr::new(src_ip, t.source_port()),
            dst: SocketAddr::new(dst_ip, t.destination_port()),
            seq: t.sequence_number(),
            ack: t.acknowledgment_number(),
            rst_ack_only: t.rst() && t.ack() && !t.syn() && !t.fin() && !t.psh(),
        }
    }

    fn check(client: &str, server: &str, vlan: Option<u16>) {
        let (c, s): (SocketAddr, SocketAddr) =
            (client.parse().expect("c"), server.parse().expect("s"));
        let r = resets(c, s, &seen(vlan), None).expect("frames");
        assert_eq!(
            parse(&r.to_server),
            Parsed {
                src_mac: CLIENT_MAC,
                dst_mac: ROUTER_MAC,
                vlan,
                src: c,
                dst: s,
                seq: 1_000_518,
                ack: 4_000_000_001,
                rst_ack_only: true,
            }
        );
        assert_eq!(
            parse(&r.to_client),
            Parsed {
                src_mac: ROUTER_MAC,
                dst_mac: CLIENT_MAC,
                vlan,
                src: s,
                dst: c,
                seq: 4_000_000_001,
                ack: 1_000_518,
                rst_ack_only: true,
            }
        );
    }

    #[test]
    fn ipv4_resets_each_way() {
        check("10.0.0.23:51000", "104.18.32.47:443", None);
    }

    #[test]
    fn ipv6_resets_each_way() {
        check("[fd00::23]:51000", "[2606:4700::6812:202f]:443", None);
    }

    #[test]
    fn a_tagged_frame_is_answered_on_its_vlan() {
        check("10.0.0.23:51000", "104.18.32.47:443", Some(42));
        check("[fd00::23]:51000", "[2606:4700::6812:202f]:443", Some(4094));
    }

    #[test]
    fn frames_come_from_the_sensors_own_mac_when_it_has_one() {
        let own = Mac([2, 0, 0, 0, 0, 0x99]);
        let (c, s): (SocketAddr, SocketAddr) = (
            "10.0.0.23:51000".parse().expect("c"),
            "104.18.32.47:443".parse().expect("s"),
        );
        let r = resets(c, s, &seen(None), Some(own)).expect("frames");
        let (to_server, to_client) = (parse(&r.to_server), parse(&r.to_client));
        assert_eq!((to_server.src_mac, to_server.dst_mac), (own, ROUTER_MAC));
        assert_eq!((to_client.src_mac, to_client.dst_mac), (own, CLIENT_MAC));
        assert_eq!((to_client.src, to_client.seq), (s, 4_000_000_001));
    }

    #[test]
    fn nothing_to_forge_from() {
        let (c, s): (SocketAddr, SocketAddr) = (
            "10.0.0.23:51000".parse().expect("c"),
            "104.18.32.47:443".parse().expect("s"),
        );
        let mut no_link = seen(None);
        no_link.link = None;
        assert_eq!(
            resets(c, s, &no_link, None),
            None,
            "a frame without Ethernet"
        );
        let v6: SocketAddr = "[2606:4700::6812:202f]:443".parse().expect("s");
        assert_eq!(resets(c, v6, &seen(None), None), None, "mixed families");
    }

    #[test]
    fn only_tcp_borne_observations_are_reset() {
        assert!(tcp_borne(Proto::Tls) && tcp_borne(Proto::Http));
        assert!(tcp_borne(Proto::Connect) && tcp_borne(Proto::Tcp));
        assert!(!tcp_borne(Proto::Dns) && !tcp_borne(Proto::Quic));
    }
}
