//! The chain's head kept outside the database: `<store>.head`, rewritten (temp file, fsync,
//! rename, directory fsync) after every commit that changes the log, and optionally signed
//! with an HMAC-SHA256 key kept in `<store>.key`. A database whose newest rows were cut off
//! no longer holds the row the head file names; one whose tail was rewritten holds it with
//! another hash; and without the key a forged head file does not carry a valid MAC.
//!
//! The file is text, one `name value` pair a line, in this order:
//!
//! ```text
//! aiwarden-head 1
//! id 120
//! hash 5f3a...(64 hex digits: row 120's hash)
//! rows 118
//! anchor 2
//! time 2026-11-23T09:40:34.123456Z
//! mac 9a7c...(64 hex digits; only when keyed)
//! ```
//!
//! `rows` is the rows the log held (newest id less the retention anchor's), `anchor` the
//! retention anchor's row (0 for none), `time` when it was written, and `mac` the
//! HMAC-SHA256 of every line before it, with the key as 32 bytes.

use std::io::Write;
use std::path::{Path, PathBuf};

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::Connection;
use serde::Serialize;

use super::chain::{hash_at, hex, tip};
use super::files::{create_private, sibling, write_atomic};
use super::Head;

/// The first line of every head file.
const MAGIC: &str = "aiwarden-head 1";

/// The head file of the store at `db`.
pub(super) fn head_path(db: &Path) -> PathBuf {
    sibling(db, ".head")
}

/// The HMAC key of the store at `db`.
pub(super) fn key_path(db: &Path) -> PathBuf {
    sibling(db, ".key")
}

/// What a head file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HeadRecord {
    /// The newest row's id (0 when the log was never written).
    pub(super) id: i64,
    /// Its hash.
    pub(super) hash: [u8; 32],
    /// Rows in the log then.
    pub(super) rows: i64,
    /// The retention anchor's row then (0: none).
    pub(super) anchor: i64,
    /// When it was written (RFC 3339).
    pub(super) time: String,
    /// HMAC-SHA256 of the lines before it.
    pub(super) mac: Option<[u8; 32]>,
}

impl HeadRecord {
    /// The lines the MAC covers.
    fn body(&self) -> String {
        format!(
            "{MAGIC}\nid {}\nhash {}\nrows {}\nanchor {}\ntime {}\n",
            self.id,
            hex(&self.hash),
            self.rows,
            self.anchor,
            self.time
        )
    }

    /// The file's text, signed with `key` when there is one.
    pub(super) fn encode(&self, key: Option<&Key>) -> String {
        let body = self.body();
        match key {
            Some(k) => {
                let tag = hmac::sign(&k.0, body.as_bytes());
                format!("{body}mac {}\n", hex(tag.as_ref()))
            }
            None => body,
        }
    }

    /// Parses a head file's text. Strict: every line in order, nothing else.
    pub(super) fn decode(text: &str) -> Result<HeadRecord, String> {
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(format!("it does not begin with {MAGIC:?}"));
        }
        let mut field = |name: &str| -> Result<String, String> {
            let line = lines.next().ok_or(format!("no {name} line"))?;
            line.strip_prefix(name)
                .and_then(|v| v.strip_prefix(' '))
                .map(str::to_string)
                .ok_or(format!("expected {name}, found {line:?}"))
        };
        let int =
            |v: String, name: &str| v.parse::<i64>().map_err(|e| format!("{name} {v:?}: {e}"));
        let id = int(field("id")?, "id")?;
        let hash = unhex32(&field("hash")?).ok_or("hash is not 64 hex digits")?;
        let rows = int(field("rows")?, "rows")?;
        let anchor = int(field("anchor")?, "anchor")?;
        let time = field("time")?;
        let mac = match lines.next() {
            None => None,
            Some(l) => Some(
                l.strip_prefix("mac ")
                    .and_then(unhex32)
                    .ok_or(format!("expected mac, found {l:?}"))?,
            ),
        };
        if let Some(extra) = lines.next() {
            return Err(format!("unexpected line {extra:?}"));
        }
        Ok(HeadRecord {
            id,
            hash,
            rows,
            anchor,
            time,
            mac,
        })
    }
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The HMAC key of a keyed store.
pub(super) struct Key(hmac::Key);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// Reads the key at `path`: `None` when there is none.
    pub(super) fn load(path: &Path) -> Result<Option<Key>, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => unhex32(text.trim())
                .map(|b| Some(Key(hmac::Key::new(hmac::HMAC_SHA256, &b))))
                .ok_or(format!("{} is not 64 hex digits", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Creates a fresh random key at `path` (mode 0600; refuses to replace one).
    pub(super) fn create(path: &Path) -> std::io::Result<Key> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| std::io::Error::other("no randomness for the store key"))?;
        let mut f = create_private(path)?;
        f.write_all(format!("{}\n", hex(&bytes)).as_bytes())?;
        f.sync_all()?;
        super::files::sync_dir(path)?;
        Ok(Key(hmac::Key::new(hmac::HMAC_SHA256, &bytes)))
    }

    fn verifies(&self, rec: &HeadRecord, mac: &[u8; 32]) -> bool {
        hmac::verify(&self.0, rec.body().as_bytes(), mac).is_ok()
    }
}

/// A head file as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum HeadFile {
    /// There is none.
    Missing,
    /// It could not be read or parsed: why.
    Unreadable(String),
    /// What it says.
    Present(HeadRecord),
}

/// Reads the head file at `path`.
pub(super) fn read_head(path: &Path) -> HeadFile {
    match std::fs::read_to_string(path) {
        Ok(text) => match HeadRecord::decode(&text) {
            Ok(h) => HeadFile::Present(h),
            Err(e) => HeadFile::Unreadable(e),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HeadFile::Missing,
        Err(e) => HeadFile::Unreadable(e.to_string()),
    }
}

/// The database's tail compared with its head file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Tail {
    /// The head file names the database's newest row.
    Matches {
        /// That row.
        head: Head,
        /// The head file carries a valid MAC.
        keyed: bool,
    },
    /// The database holds `newer` rows after the head file's row, chained from it: written
    /// after the head's last update (a crash between a commit and the head's write, or an
    /// ack written by an older aiwarden). Nothing is missing.
    Behind {
        /// The row the head file names.
        head: Head,
        /// Rows after it.
        newer: i64,
        /// The head file carries a valid MAC.
        keyed: bool,
    },
    /// No head file and nothing ever written: a fresh store.
    Fresh,
    /// A schema 1 store (from before head files): its tail cannot be checked until the
    /// daemon has opened it once.
    Unchecked,
    /// Rows cut off the end, the tail rewritten, or the head file missing or forged.
    Broken {
        /// The first row at fault, when there is one (for a cut-off tail: the first
        /// missing row).
        id: Option<i64>,
        /// What was found, naming the expected and the found head.
        reason: String,
    },
}

impl Tail {
    /// False when the tail is broken.
    pub fn is_ok(&self) -> bool {
        !matches!(self, Tail::Broken { .. })
    }
}

fn short(h: &[u8; 32]) -> String {
    hex(&h[..8])
}

/// Compares the database's tail with `file` (read from `head`), checking its MAC with `key`
/// (read from `key_file`). `version` is the schema's.
pub(super) fn check_tail(
    conn: &Connection,
    version: i32,
    file: &HeadFile,
    head: &Path,
    key: Option<&Key>,
    key_file: &Path,
) -> rusqlite::Result<Tail> {
    let (last, anchor) = tip(conn)?;
    let broken = |id: Option<i64>, reason: String| Ok(Tail::Broken { id, reason });
    let h = match file {
        HeadFile::Missing if version < 2 => return Ok(Tail::Unchecked),
        HeadFile::Missing if last.is_none() && pristine(conn)? => return Ok(Tail::Fresh),
        HeadFile::Missing => {
            return broken(
                None,
                format!(
                    "{} is missing, so rows cut off the end could not be seen (deleted?)",
                    head.display()
                ),
            )
        }
        HeadFile::Unreadable(why) => {
            return broken(None, format!("{} is unreadable: {why}", head.display()))
        }
        HeadFile::Present(h) => h,
    };
    let keyed = match (&h.mac, key) {
        (Some(mac), Some(k)) if k.verifies(h, mac) => true,
        (Some(_), Some(_)) => {
            return broken(
                None,
                format!(
                    "the MAC of {} does not verify with {}: it was written without the key \
                     (the head and the tail rewritten?)",
                    head.display(),
                    key_file.display()
                ),
            )
        }
        (Some(_), None) => {
            return broken(
                None,
                format!(
                    "{} is keyed but the key {} is missing",
                    head.display(),
                    key_file.display()
                ),
            )
        }
        (None, Some(_)) => {
            return broken(
                None,
                format!(
                    "{} carries no MAC although the key {} exists (written without the key?)",
                    head.display(),
                    key_file.display()
                ),
            )
        }
        (None, None) => false,
    };
    let named = Head {
        id: h.id,
        hash: hex(&h.hash),
    };
    let (last_id, last_hash) = last.unwrap_or((0, super::chain::GENESIS));
    if h.id == 0 {
        return Ok(match last_id {
            0 => Tail::Matches { head: named, keyed },
            n => Tail::Behind {
                head: named,
                newer: n,
                keyed,
            },
        });
    }
    match hash_at(conn, h.id)? {
        Some(found) if found == h.hash => {
            if last_id > h.id {
                Ok(Tail::Behind {
                    head: named,
                    newer: last_id - h.id,
                    keyed,
                })
            } else if anchor != h.anchor {
                broken(
                    Some(anchor.min(h.anchor) + 1),
                    format!(
                        "the retention anchor is at row {anchor} but the head file says {} \
                         (rows purged by hand, or a crash between a purge and its head write)",
                        h.anchor
                    ),
                )
            } else {
                Ok(Tail::Matches { head: named, keyed })
            }
        }
        Some(found) => broken(
            Some(h.id),
            format!(
                "row {}'s hash is {}…, the head file expects {}…: the tail was rewritten",
                h.id,
                short(&found),
                short(&h.hash)
            ),
        ),
        None if last_id < h.id => broken(
            Some(last_id + 1),
            format!(
                "rows {} to {} are missing from the end (cut off?): the head file names row {} \
                 (hash {}…), the database ends at row {last_id} (hash {}…)",
                last_id + 1,
                h.id,
                h.id,
                short(&h.hash),
                short(&last_hash)
            ),
        ),
        None => broken(
            Some(h.id),
            format!(
                "row {}, the head file's, is gone while newer rows stayed (purged by hand?)",
                h.id
            ),
        ),
    }
}

/// Nothing was ever written: no rows, no anchor, no activity, no usage.
fn pristine(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT NOT EXISTS (SELECT 1 FROM log) AND NOT EXISTS (SELECT 1 FROM anchor)
            AND NOT EXISTS (SELECT 1 FROM activity) AND NOT EXISTS (SELECT 1 FROM usage)",
        [],
        |r| r.get(0),
    )
}

/// The head record of the database as it is now.
pub(super) fn current(conn: &Connection, time: String) -> rusqlite::Result<HeadRecord> {
    let (last, anchor) = tip(conn)?;
    let (id, hash) = last.unwrap_or((0, super::chain::GENESIS));
    Ok(HeadRecord {
        id,
        hash,
        rows: id - anchor,
        anchor,
        time,
        mac: None,
    })
}

/// Writes `rec` to `path` atomically and durably, signed with `key` when there is one.
pub(super) fn write_head(path: &Path, rec: &HeadRecord, key: Option<&Key>) -> std::io::Result<()> {
    write_atomic(path, rec.encode(key).as_bytes())
}
