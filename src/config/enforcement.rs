//! `[enforcement]`: where aiwarden sits in the clinic's network and how it blocks beyond
//! the resolver (see `crate::firewall`).

use serde::Deserialize;

use super::Capture;

/// Where aiwarden sits in the clinic's network, which decides what it can block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// Only the resolver enforces (blocked names get NXDOMAIN); connections are seen and
    /// recorded, not blocked.
    Resolver,
    /// The clinic's gateway: traffic is forwarded through it; nftables blocks connections.
    Router,
    /// Out of the path (a switch mirror port, or beside the router): the resolver plus TCP
    /// resets injected onto the LAN (best effort: a race with the server's reply).
    Sensor,
}

impl Placement {
    /// The configured and printed form.
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::Resolver => "resolver",
            Placement::Router => "router",
            Placement::Sensor => "sensor",
        }
    }
}

/// How TCP connections are blocked on a router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TcpBlock {
    /// The best the kernel offers: NFQUEUE (native nft, else iptables-nft), else reactive.
    Auto,
    /// Only reactive: the capture path adds a denied connection to a set whose next packet
    /// is reset; the first ClientHello may pass.
    Reactive,
    /// No TCP blocking (DNS, DoT and DoH addresses are still enforced).
    Off,
}

/// What a denied QUIC flow gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuicBlock {
    /// ICMP administratively-prohibited: browsers fall back to TCP at once.
    Reject,
    /// Silence: browsers fall back after their QUIC timer.
    Drop,
}

/// Enforcement beyond the resolver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enforcement {
    /// Where aiwarden sits.
    #[serde(default = "default_placement")]
    pub placement: Placement,
    /// Router: the LAN interfaces (DNS redirect, blocking); default: `capture.interfaces`.
    #[serde(default)]
    pub lan: Vec<String>,
    /// Router: how TCP connections are blocked.
    #[serde(default = "default_tcp")]
    pub tcp: TcpBlock,
    /// Router: what a denied QUIC flow gets.
    #[serde(default = "default_quic")]
    pub quic: QuicBlock,
    /// Router: client groups (groups.toml) whose UDP 443 is blocked outright, so their
    /// browsers use TCP where the name is visible; `"*"` for every client.
    #[serde(default)]
    pub block_quic_groups: Vec<String>,
    /// Router: the NFQUEUE number.
    #[serde(default)]
    pub queue: u16,
    /// Router: packets of each new connection (client to server) held for a verdict.
    #[serde(default = "default_queue_packets")]
    pub queue_packets: u32,
    /// Router: packets the kernel holds for aiwarden at most; beyond them packets pass
    /// unjudged (fail-open). Room for a burst of new connections (a page load opens dozens
    /// at once); a stuck daemon is the watchdog's to end.
    #[serde(default = "default_queue_max_len")]
    pub queue_max_len: u32,
    /// Seconds a denied (client, server, port) stays blocked, so retries die at once.
    #[serde(default = "default_block_secs")]
    pub block_secs: u32,
    /// Sensor: the interface resets are sent on; default: the first capture interface.
    pub reset_interface: Option<String>,
}

impl Enforcement {
    /// The router's LAN interfaces: as configured, else the capture interfaces.
    pub fn lan_interfaces<'a>(&'a self, capture: &'a Capture) -> &'a [String] {
        if self.lan.is_empty() {
            &capture.interfaces
        } else {
            &self.lan
        }
    }
}

impl Default for Enforcement {
    fn default() -> Enforcement {
        Enforcement {
            placement: default_placement(),
            lan: Vec::new(),
            tcp: default_tcp(),
            quic: default_quic(),
            block_quic_groups: Vec::new(),
            queue: 0,
            queue_packets: default_queue_packets(),
            queue_max_len: default_queue_max_len(),
            block_secs: default_block_secs(),
            reset_interface: None,
        }
    }
}

fn default_placement() -> Placement {
    Placement::Resolver
}
fn default_tcp() -> TcpBlock {
    TcpBlock::Auto
}
fn default_quic() -> QuicBlock {
    QuicBlock::Reject
}
fn default_queue_packets() -> u32 {
    8
}
fn default_queue_max_len() -> u32 {
    256
}
fn default_block_secs() -> u32 {
    60
}
