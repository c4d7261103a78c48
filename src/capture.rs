//! Capture shell: owns libpcap handles and hands frames out with their link type and
//! timestamp. It reads; it does not parse or decide.

use std::path::{Path, PathBuf};

use pcap::{Capture, Offline};

use crate::detect::{LinkType, Timestamp};
use crate::error::{Error, Result};

/// A pcap or pcapng file opened for reading.
pub struct FileReader {
    path: PathBuf,
    cap: Capture<Offline>,
    link: LinkType,
    linktype_raw: i32,
    /// File bytes consumed so far, estimated from record sizes (for progress).
    pub position: u64,
}

/// One frame borrowed from the reader.
pub struct Frame<'a> {
    /// Capture time.
    pub ts: Timestamp,
    /// The link layer of the file.
    pub link: LinkType,
    /// The captured bytes (possibly cut at the snap length).
    pub data: &'a [u8],
}

impl FileReader {
    /// Opens `path` (pcap or pcapng). Fails with the file name and libpcap's reason.
    pub fn open(path: &Path) -> Result<FileReader> {
        let cap = Capture::from_file(path).map_err(|e| Error::Capture {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let raw = cap.get_datalink().0;
        let link = LinkType::from_pcap(raw).ok_or_else(|| Error::Capture {
            path: path.to_path_buf(),
            message: format!("unsupported link type {raw}"),
        })?;
        Ok(FileReader {
            path: path.to_path_buf(),
            cap,
            link,
            linktype_raw: raw,
            position: 24,
        })
    }

    /// The pcap link type number of the file.
    pub fn linktype(&self) -> i32 {
        self.linktype_raw
    }

    /// The next frame, `None` at the end of the file. A truncated last record ends the
    /// file with an error naming it.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>> {
        match self.cap.next_packet() {
            Ok(p) => {
                self.position += 16 + u64::from(p.header.caplen);
                Ok(Some(Frame {
                    ts: Timestamp::from_secs_micros(p.header.ts.tv_sec, p.header.ts.tv_usec),
                    link: self.link,
                    data: p.data,
                }))
            }
            Err(pcap::Error::NoMorePackets) => Ok(None),
            Err(e) => Err(Error::Capture {
                path: self.path.clone(),
                message: e.to_string(),
            }),
        }
    }
}
