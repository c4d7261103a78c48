//! The console's way into the store: one connection for writing (acks and event rows),
//! opened when first needed and again after a failure, and a few read-only ones reused
//! between requests. Blocking: handlers call it from `spawn_blocking`.
//!
//! The daemon's writer thread keeps its own connection; SQLite's WAL and busy timeout let
//! both append, and each checks that the chain still holds the head it last saw.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::store::Store;
use crate::Result;

/// Read-only connections kept between requests.
const KEEP_READERS: usize = 4;

/// The store, as the console uses it.
#[derive(Debug)]
pub(super) struct Db {
    path: PathBuf,
    writer: Mutex<Option<Store>>,
    readers: Mutex<Vec<Store>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding it leaves nothing half-done that matters: the store's own
    // transactions roll back.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Db {
    /// The store at `path` (not opened yet).
    pub(super) fn new(path: &Path) -> Db {
        Db {
            path: path.to_path_buf(),
            writer: Mutex::new(None),
            readers: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` on a read-only connection.
    pub(super) fn read<T>(&self, f: impl FnOnce(&Store) -> Result<T>) -> Result<T> {
        let taken = lock(&self.readers).pop();
        let store = match taken {
            Some(s) => s,
            None => Store::open_read_only(&self.path)?,
        };
        let out = f(&store);
        if out.is_ok() {
            let mut readers = lock(&self.readers);
            if readers.len() < KEEP_READERS {
                readers.push(store);
            }
        }
        out
    }

    /// Runs `f` on the writing connection (opening it, and so creating or migrating the
    /// store, when needed). After an error the connection is dropped and opened afresh next
    /// time.
    pub(super) fn write<T>(&self, f: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
        let mut w = lock(&self.writer);
        if w.is_none() {
            *w = Some(Store::open(&self.path)?);
        }
        let Some(store) = w.as_mut() else {
            return Err(crate::Error::Console("store not open".into()));
        };
        let out = f(store);
        // A refused value leaves the connection as good as it was; a store fault does not.
        if matches!(
            out,
            Err(crate::Error::Store { .. }
                | crate::Error::Tampered { .. }
                | crate::Error::StoreHead { .. })
        ) {
            *w = None;
        }
        out
    }
}
