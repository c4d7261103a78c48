//! Enforcement beyond the resolver: the shell that changes traffic. On a router, the
//! nftables table `inet aiwarden` (DNS redirect, DoT and DoH-address rejects, per-connection
//! deny sets) and the NFQUEUE verdicts that judge each new connection's first packets; on
//! a sensor, TCP resets injected onto the LAN. Policy stays in [`crate::incident::judge`]:
//! this module only carries out what was decided and says what it did.

use crate::detect::Observation;
use crate::incident::Action;
use crate::policy::Verdict;

/// What the capture path asks of enforcement. The detection thread calls it for every
/// observation it judged, in enforce mode; the placement does what it can and says what
/// was done (recorded with the incident), or `None` when it did nothing.
pub trait Enforcer: Send {
    /// Acts on `obs`, judged `verdict`.
    fn act(&mut self, obs: &Observation, verdict: Verdict) -> Option<Action>;
}

pub mod nft;
pub mod queue;
pub mod reset;
pub mod router;
pub mod ruleset;

pub use nft::{DryRun, Firewall, Nft};
pub use router::{Router, TcpPath};

/// A change for the firewall thread: a denied (client, server, port) for the tuple sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FwOp {
    /// A TCP connection to reset, and its retries.
    DenyTcp(std::net::IpAddr, std::net::IpAddr, u16),
    /// A QUIC flow to refuse, and its retries.
    DenyQuic(std::net::IpAddr, std::net::IpAddr, u16),
    /// One TCP connection (client, server) to reset at its next packet: judged denied by
    /// the capture path after it passed the queue unjudged, or with no queue.
    DenyConn(std::net::SocketAddr, std::net::SocketAddr),
}
