//! Capture files: frames out with their link type and timestamp. It reads; it does not
//! parse or decide.
//!
//! Classic pcap files (what `tcpdump -w` writes) are read by a small record reader over
//! 4 MiB `read()`s, frames borrowed from the buffer. libpcap's offline reader copies every
//! record on its own; on a 716 MB capture the whole replay took 0.32 s with it and 0.17-0.19 s
//! with this reader (a memory map was slower still: 0.30 s, page-table work). Every other
//! format (pcapng above all) goes through libpcap.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use pcap::{Capture, Offline};

use super::Frame;
use crate::detect::{LinkType, Timestamp};
use crate::error::{Error, Result};

/// A pcap or pcapng file opened for reading.
pub struct FileReader {
    path: PathBuf,
    link: LinkType,
    linktype_raw: i32,
    source: Source,
    /// File bytes consumed so far (exact for pcap, estimated for pcapng; for progress).
    pub position: u64,
}

enum Source {
    Classic(Classic),
    Libpcap(Box<Capture<Offline>>),
}

/// A record larger than this is corruption, not a frame (libpcap's own limit is 256 KiB).
const MAX_RECORD: usize = 262_144 + 65_536;
const CHUNK: usize = 4 << 20;

struct Classic {
    file: File,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    big_endian: bool,
    nanos: bool,
}

impl Classic {
    fn u32_at(&self, at: usize) -> u32 {
        let b = [
            self.buf[at],
            self.buf[at + 1],
            self.buf[at + 2],
            self.buf[at + 3],
        ];
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    /// Makes at least `n` unread bytes available; false at the end of the file.
    fn fill(&mut self, n: usize) -> std::io::Result<bool> {
        while self.end - self.start < n {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() < n.max(CHUNK) {
                self.buf.resize(n.max(CHUNK), 0);
            }
            let read = self.file.read(&mut self.buf[self.end..])?;
            if read == 0 {
                return Ok(false);
            }
            self.end += read;
        }
        Ok(true)
    }
}

fn capture_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Capture {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl FileReader {
    /// Opens `path` (pcap or pcapng). Fails with the file name and the reason.
    pub fn open(path: &Path) -> Result<FileReader> {
        let mut file = File::open(path).map_err(|e| capture_err(path, e.to_string()))?;
        let mut header = [0u8; 24];
        let classic = match file.read_exact(&mut header) {
            Ok(()) => match header[..4] {
                [0xd4, 0xc3, 0xb2, 0xa1] => Some((false, false)),
                [0x4d, 0x3c, 0xb2, 0xa1] => Some((false, true)),
                [0xa1, 0xb2, 0xc3, 0xd4] => Some((true, false)),
                [0xa1, 0xb2, 0x3c, 0x4d] => Some((true, true)),
                _ => None,
            },
            Err(_) => None,
        };
        let Some((big_endian, nanos)) = classic else {
            return FileReader::open_libpcap(path);
        };
        let lt = if big_endian {
            u32::from_be_bytes([header[20], header[21], header[22], header[23]])
        } else {
            u32::from_le_bytes([header[20], header[21], header[22], header[23]])
        };
        // The upper bits may carry FCS information; the link type is the low 16.
        let source = Source::Classic(Classic {
            file,
            buf: Vec::new(),
            start: 0,
            end: 0,
            big_endian,
            nanos,
        });
        FileReader::with(path, i32::from(lt as u16), source)
    }

    fn open_libpcap(path: &Path) -> Result<FileReader> {
        let cap = Capture::from_file(path).map_err(|e| capture_err(path, e.to_string()))?;
        let raw = cap.get_datalink().0;
        FileReader::with(path, raw, Source::Libpcap(Box::new(cap)))
    }

    /// A reader of `source`, whose pcap link type is `raw`; an error for a link type
    /// aiwarden does not decode.
    fn with(path: &Path, raw: i32, source: Source) -> Result<FileReader> {
        let link = LinkType::from_pcap(raw)
            .ok_or_else(|| capture_err(path, format!("unsupported link type {raw}")))?;
        Ok(FileReader {
            path: path.to_path_buf(),
            link,
            linktype_raw: raw,
            source,
            position: 24,
        })
    }

    /// The pcap link type number of the file.
    pub fn linktype(&self) -> i32 {
        self.linktype_raw
    }

    /// The next frame, `None` at the end of the file. A truncated or corrupt record ends
    /// the file with an error naming it and the byte offset.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>> {
        let link = self.link;
        match &mut self.source {
            Source::Classic(c) => {
                let io = |e: std::io::Error| capture_err(&self.path, e.to_string());
                if !c.fill(16).map_err(io)? {
                    if c.end > c.start {
                        return Err(capture_err(
                            &self.path,
                            format!("truncated record header at byte {}", self.position),
                        ));
                    }
                    return Ok(None);
                }
                let h = c.start;
                let secs = c.u32_at(h);
                let frac = c.u32_at(h + 4);
                let incl = c.u32_at(h + 8) as usize;
                if incl > MAX_RECORD {
                    return Err(capture_err(
                        &self.path,
                        format!("record at byte {} claims {incl} bytes", self.position),
                    ));
                }
                if !c.fill(16 + incl).map_err(io)? {
                    return Err(capture_err(
                        &self.path,
                        format!(
                            "truncated record at byte {}: {incl} bytes claimed, {} present",
                            self.position,
                            (c.end - c.start).saturating_sub(16)
                        ),
                    ));
                }
                let micros = if c.nanos { frac / 1_000 } else { frac };
                let data = &c.buf[c.start + 16..c.start + 16 + incl];
                c.start += 16 + incl;
                self.position += 16 + incl as u64;
                Ok(Some(Frame {
                    ts: Timestamp::from_secs_micros(i64::from(secs), i64::from(micros)),
                    link,
                    data,
                }))
            }
            Source::Libpcap(cap) => match cap.next_packet() {
                Ok(p) => {
                    self.position += 16 + u64::from(p.header.caplen);
                    Ok(Some(Frame {
                        ts: Timestamp::from_secs_micros(p.header.ts.tv_sec, p.header.ts.tv_usec),
                        link,
                        data: p.data,
                    }))
                }
                Err(pcap::Error::NoMorePackets) => Ok(None),
                Err(e) => Err(capture_err(&self.path, e.to_string())),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> Vec<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("fixtures")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
            .collect();
        v.sort();
        v
    }

    /// The record reader and libpcap agree on every frame and timestamp of every fixture.
    #[test]
    fn classic_reader_agrees_with_libpcap() {
        for path in fixtures() {
            let mut ours = FileReader::open(&path).expect("opens");
            let mut theirs = Capture::from_file(&path).expect("libpcap opens");
            let mut n = 0;
            while let Some(f) = ours.next_frame().expect("reads") {
                let p = theirs.next_packet().expect("libpcap has the frame too");
                assert_eq!(f.data, p.data, "{} frame {n}", path.display());
                assert_eq!(
                    f.ts,
                    Timestamp::from_secs_micros(p.header.ts.tv_sec, p.header.ts.tv_usec)
                );
                n += 1;
            }
            assert!(
                theirs.next_packet().is_err(),
                "{}: libpcap has more",
                path.display()
            );
            assert!(n > 0);
        }
    }

    #[test]
    fn truncated_files_are_errors_naming_the_offset() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dns_udp.pcap");
        let bytes = std::fs::read(&path).expect("read");
        let dir = tempfile::tempdir().expect("tempdir");
        let cut = dir.path().join("cut.pcap");
        std::fs::write(&cut, &bytes[..bytes.len() - 5]).expect("write");
        let mut r = FileReader::open(&cut).expect("opens");
        let mut result = Ok(None);
        for _ in 0..100 {
            result = r.next_frame().map(|f| f.map(|f| f.data.len()));
            if !matches!(result, Ok(Some(_))) {
                break;
            }
        }
        let msg = result.expect_err("truncation is an error").to_string();
        assert!(msg.contains("truncated record at byte"), "{msg}");
        assert!(
            msg.starts_with(&format!("capture {}", cut.display())),
            "{msg}"
        );
    }

    #[test]
    fn big_endian_nanosecond_files_read() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dns_udp.pcap");
        let bytes = std::fs::read(&path).expect("read");
        // Rewrite the microsecond file in the other byte order with nanosecond timestamps.
        let be = bytes[0] == 0xa1;
        let rd = |o: usize| {
            let b = [bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]];
            if be {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let wr = |v: u32| if be { v.to_le_bytes() } else { v.to_be_bytes() };
        let mut out = Vec::new();
        out.extend_from_slice(&wr(0xa1b2_3c4d));
        out.extend_from_slice(&[bytes[5], bytes[4], bytes[7], bytes[6]]);
        for i in (8..24).step_by(4) {
            out.extend_from_slice(&wr(rd(i)));
        }
        let mut at = 24;
        while at + 16 <= bytes.len() {
            let incl = rd(at + 8) as usize;
            out.extend_from_slice(&wr(rd(at)));
            out.extend_from_slice(&wr(rd(at + 4) * 1_000));
            out.extend_from_slice(&wr(rd(at + 8)));
            out.extend_from_slice(&wr(rd(at + 12)));
            out.extend_from_slice(&bytes[at + 16..at + 16 + incl]);
            at += 16 + incl;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let other = dir.path().join("other.pcap");
        std::fs::write(&other, &out).expect("write");
        let mut a = FileReader::open(&path).expect("opens");
        let mut b = FileReader::open(&other).expect("opens");
        let mut frames = 0;
        loop {
            let fa = a
                .next_frame()
                .expect("reads")
                .map(|f| (f.ts, f.data.to_vec()));
            let fb = b
                .next_frame()
                .expect("reads")
                .map(|f| (f.ts, f.data.to_vec()));
            assert_eq!(fa, fb);
            if fa.is_none() {
                break;
            }
            frames += 1;
        }
        assert_eq!(frames, 6);
    }
}
