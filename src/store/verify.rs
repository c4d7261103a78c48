//! Checking a store as an auditor does (`aiwarden verify`: the file's integrity, the chain,
//! the tail against the head file) and as `aiwarden check` does before the daemon starts
//! (that, and whether the directory takes writes).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::chain::{check_chain, BreakRow};
use super::files::{dir_of, probe_dir};
use super::head::{check_tail, head_path, key_path, read_head, HeadFile};
use super::{store_error, tail_error, Broken, Context, Store, Tail};
use crate::{Error, Result};

/// What [`Store::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Rows checked and found intact before the first broken one (all of them when intact).
    pub rows: u64,
    /// The last row retention purged; the check starts from its hash.
    pub anchor: Option<i64>,
    /// The first row where the chain breaks.
    pub first_broken: Option<Broken>,
    /// The database's tail compared with the head file.
    pub tail: Tail,
    /// The break rows of the chain, oldest first: where it began again and why.
    pub breaks: Vec<BreakRow>,
}

impl VerifyReport {
    /// True when the chain checks out and its tail matches the head file.
    pub fn is_intact(&self) -> bool {
        self.first_broken.is_none() && self.tail.is_ok()
    }

    /// The report, or the error naming its first fault: [`Error::Tampered`] for a row that
    /// does not chain or a cut-off or rewritten tail, [`Error::StoreHead`] for a head file
    /// that is missing or forged.
    pub fn into_result(self, path: &Path) -> Result<VerifyReport> {
        if let Some(b) = &self.first_broken {
            return Err(Error::Tampered {
                path: path.to_path_buf(),
                id: b.id,
                reason: b.reason.clone(),
            });
        }
        if let Tail::Broken { id, reason } = &self.tail {
            return Err(tail_error(path, *id, reason.clone()));
        }
        Ok(self)
    }
}

impl Store {
    /// Recomputes the chain in id order, from the retention anchor if there is one, reports
    /// the first row that is edited, missing or out of place, and compares the newest row
    /// with the head file (rows cut off the end, a rewritten tail, a missing or forged head).
    pub fn verify(&self) -> Result<VerifyReport> {
        let tx = self.conn.unchecked_transaction().ctx(&self.path, "begin")?;
        let walk = check_chain(&tx, self.version, None).ctx(&self.path, "verify")?;
        let head = head_path(&self.path);
        let tail = check_tail(
            &tx,
            self.version,
            &read_head(&head),
            &head,
            self.key.as_ref(),
            &key_path(&self.path),
        )
        .ctx(&self.path, "compare with the head file")?;
        Ok(VerifyReport {
            rows: walk.rows,
            anchor: walk.anchor,
            first_broken: walk.first_broken,
            tail,
            breaks: walk.breaks,
        })
    }

    /// `PRAGMA quick_check` on the open file: a corrupt file is [`StoreFault::Corrupt`](crate::error::StoreFault::Corrupt).
    pub fn integrity(&self) -> Result<()> {
        super::open::quick_check(&self.path, &self.conn)
    }

    /// True when the store signs its head file (a key exists beside it).
    pub fn keyed(&self) -> bool {
        self.key.is_some()
    }
}

/// The error for a store file that is gone while its head file names rows: it was deleted
/// (`None` when the file is there, or was never written).
pub fn deleted(path: &Path) -> Option<Error> {
    if path.exists() {
        return None;
    }
    let head = head_path(path);
    match read_head(&head) {
        HeadFile::Present(h) if h.id > 0 => Some(Error::StoreHead {
            path: path.to_path_buf(),
            reason: format!(
                "the store file is missing but {} names row {} (deleted?)",
                head.display(),
                h.id
            ),
        }),
        _ => None,
    }
}

/// What [`check`] found: a store the daemon can write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreCheck {
    /// The store.
    pub path: PathBuf,
    /// It does not exist yet; the daemon creates it.
    pub fresh: bool,
    /// Rows in the chain.
    pub rows: u64,
    /// Its tail against the head file.
    pub tail: Tail,
    /// Where the chain began again, if it did.
    pub breaks: Vec<BreakRow>,
    /// Things that work but an operator should know.
    pub notes: Vec<String>,
}

/// What `aiwarden check` asks of the store at `path`: its directory takes writes (a file is
/// written, fsynced and removed there), and when the file exists, it opens read-only, passes
/// `PRAGMA quick_check`, its chain verifies and its tail matches the head file. With
/// `keyed`, a store whose head is not signed is noted (the daemon creates the key on start).
/// The error names the fault and carries the path: a read-only, full or missing directory,
/// a corrupt file, a cut-off tail, a missing or forged head file.
pub fn check(path: &Path, keyed: bool) -> Result<StoreCheck> {
    if let Some((fault, why)) = probe_dir(&dir_of(path)) {
        return Err(store_error(
            path,
            fault,
            format!("{why}: incidents cannot be written"),
        ));
    }
    if let Some(e) = deleted(path) {
        return Err(e);
    }
    if !path.exists() {
        return Ok(StoreCheck {
            path: path.to_path_buf(),
            fresh: true,
            rows: 0,
            tail: Tail::Fresh,
            breaks: Vec::new(),
            notes: Vec::new(),
        });
    }
    let store = Store::open_read_only(path)?;
    store.integrity()?;
    let report = store.verify()?.into_result(path)?;
    let mut notes = Vec::new();
    match &report.tail {
        Tail::Behind { head, newer, .. } => notes.push(format!(
            "the head file names row {} and {newer} rows follow it: the daemon brings it up \
             to date on its next write",
            head.id
        )),
        Tail::Unchecked => notes.push(format!(
            "{} is a schema 1 store without a head file: the daemon migrates it and writes \
             one on start",
            path.display()
        )),
        _ => {}
    }
    if keyed && !store.keyed() {
        notes.push(format!(
            "keyed is on but {} does not exist yet: the daemon creates it on start",
            key_path(path).display()
        ));
    }
    for b in &report.breaks {
        notes.push(format!(
            "the chain began again at row {}: {}",
            b.id, b.reason
        ));
    }
    Ok(StoreCheck {
        path: path.to_path_buf(),
        fresh: false,
        rows: report.rows,
        tail: report.tail,
        breaks: report.breaks,
        notes,
    })
}
