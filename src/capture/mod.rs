//! Capture shell: owns capture files and live interfaces and hands frames out with their
//! link type and timestamp. It reads; it does not parse or decide.
//!
//! | file | owns |
//! |---|---|
//! | `file.rs` | pcap and pcapng files (`aiwarden replay`, `aiwarden run --read`) |
//! | `live.rs` | a libpcap handle per interface, its thread, its restart, its drop counters |

mod file;
mod live;

pub use file::FileReader;
pub use live::{
    check_filter, probe, spawn_file, spawn_live, Live, LiveOptions, OwnedFrame, BLOCK_TIMEOUT_MS,
    DEFAULT_FILTER, SENSOR_BLOCK_TIMEOUT_MS,
};

use crate::detect::{LinkType, Timestamp};

/// One frame borrowed from a reader.
#[derive(Debug)]
pub struct Frame<'a> {
    /// Capture time.
    pub ts: Timestamp,
    /// The link layer of the file or interface.
    pub link: LinkType,
    /// The captured bytes (possibly cut at the snap length).
    pub data: &'a [u8],
}
