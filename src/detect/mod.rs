//! The pure detection core: frame bytes and a timestamp in, [`Observation`]s out.
//! No I/O, no clock, no tokio.

pub mod detector;
pub mod dns;
pub mod flow;
pub mod frag;
pub mod http;
pub mod neighbours;
pub mod observation;
pub mod packet;
pub mod quic;
pub mod table;
pub mod time;
pub mod tls;

pub use detector::{Detector, DetectorConfig, Stats};
pub use observation::{
    canonical, is_local, FlowKey, Host, HostError, LinkSeen, Mac, Observation, Proto, TcpSeen,
};
pub use packet::LinkType;
pub use time::Timestamp;
