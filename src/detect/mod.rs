//! The pure detection core: frame bytes and a timestamp in, [`Observation`]s out.
//! No I/O, no clock, no tokio.

pub mod observation;
pub mod quic;
pub mod time;

pub use observation::{FlowKey, Host, HostError, Observation, Proto};
pub use time::Timestamp;
