//! Opening the store: for writing (the file created 0600, checked with `quick_check`, the
//! schema created or migrated, the tail checked against the head file, the key created when
//! asked for) and for reading.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::files::{self, sibling, Watch};
use super::head::{self, check_tail, head_path, key_path, read_head, Key};
use super::schema::{self, SCHEMA_VERSION};
use super::{
    io_error, now_rfc3339, store_error, tail_error, Context, Store, StoreOptions, Tail,
    BUSY_TIMEOUT,
};
use crate::error::StoreFault;
use crate::{Error, Result};

impl Store {
    /// Opens the store at `path` for reading and writing, creating the file and the schema
    /// when missing (see [`Store::open_with`]).
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with(path, StoreOptions::default())
    }

    /// Opens the store at `path` for reading and writing, creating the file (mode 0600) and
    /// the schema when missing and migrating a version 1, 2 or 3 schema. Checks the file
    /// (`PRAGMA quick_check`) and its tail against the head file, and refuses a corrupt file
    /// ([`StoreFault::Corrupt`]), a broken tail ([`Error::Tampered`], [`Error::StoreHead`]),
    /// a file from a newer aiwarden and a SQLite file that is not a store.
    pub fn open_with(path: &Path, opts: StoreOptions) -> Result<Store> {
        match files::create_private(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_error(path, "create", &e)),
        }
        for suffix in ["", "-wal", "-shm"] {
            if let Err(e) = files::make_private(&sibling(path, suffix)) {
                tracing::debug!(error = %e, "store: cannot set mode 0600");
            }
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags).ctx(path, "open")?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .ctx(path, "set busy timeout")?;
        // WAL: readers (reports, the web page) never block the daemon's writes. FULL: a
        // committed incident survives a power cut, not only a crash.
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .ctx(path, "set journal_mode")?;
        if !mode.eq_ignore_ascii_case("wal") {
            let fault = files::probe_dir(&files::dir_of(path)).map_or(StoreFault::Other, |p| p.0);
            return Err(store_error(
                path,
                fault,
                format!("journal_mode is {mode}, wanted wal"),
            ));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .ctx(path, "set synchronous")?;
        quick_check(path, &conn)?;
        // Off while a migration rebuilds `log` (it cannot change inside a transaction).
        conn.pragma_update(None, "foreign_keys", false)
            .ctx(path, "disable foreign keys")?;

        let head = head_path(path);
        let key_file = key_path(path);
        let mut key = Key::load(&key_file).map_err(|reason| Error::StoreHead {
            path: path.to_path_buf(),
            reason,
        })?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(path, "begin")?;
        let found = schema::check_version(path, &tx)?;
        match found {
            Some(SCHEMA_VERSION) => {}
            Some(v @ 1..=3) => schema::migrate(path, &tx, v)?,
            Some(v) => {
                return Err(store_error(
                    path,
                    StoreFault::Other,
                    format!("schema version {v} has no migration to {SCHEMA_VERSION}"),
                ))
            }
            None => schema::create(path, &tx)?,
        }
        let tail = check_tail(
            &tx,
            found.unwrap_or(SCHEMA_VERSION),
            &read_head(&head),
            &head,
            key.as_ref(),
            &key_file,
        )
        .ctx(path, "check the tail")?;
        let mut rewrite = !matches!(tail, Tail::Matches { .. });
        if let Tail::Broken { id, reason } = tail {
            return Err(tail_error(path, id, reason));
        }
        if opts.keyed && key.is_none() {
            key = Some(Key::create(&key_file).map_err(|e| io_error(path, "create the key", &e))?);
            rewrite = true;
        }
        let mut store_head_error = None;
        let now = head::current(&tx, now_rfc3339()).ctx(path, "read the chain head")?;
        if rewrite {
            // Written before the commit: a new or migrated store never exists without a
            // head file (the head names the same rows before and after the commit).
            if let Err(e) = head::write_head(&head, &now, key.as_ref()) {
                let err = io_error(path, "write the head file", &e);
                if found != Some(SCHEMA_VERSION) {
                    return Err(err);
                }
                store_head_error = Some(err);
            }
        }
        tx.commit().ctx(path, "commit")?;
        conn.pragma_update(None, "foreign_keys", true)
            .ctx(path, "enable foreign keys")?;
        let watch = Watch::open(path).map_err(|e| io_error(path, "watch", &e))?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            version: SCHEMA_VERSION,
            key,
            known: Some((now.id, now.hash)),
            head_error: store_head_error,
            watch: Some(watch),
        })
    }

    /// Opens an existing store for reading only (reports, `aiwarden verify`). The directory
    /// must be writable by the caller or the WAL index must already exist, as SQLite needs it.
    /// Reads schema 1, 2, 3 and 4.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        if !path.exists() {
            return Err(store_error(
                path,
                files::probe_dir(&files::dir_of(path)).map_or(StoreFault::Other, |p| p.0),
                "no such file".into(),
            ));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).ctx(path, "open")?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .ctx(path, "set busy timeout")?;
        conn.pragma_update(None, "foreign_keys", true)
            .ctx(path, "enable foreign keys")?;
        let tx = conn.unchecked_transaction().ctx(path, "begin")?;
        let version = match schema::check_version(path, &tx)? {
            Some(v) => v,
            None => {
                return Err(store_error(
                    path,
                    StoreFault::Other,
                    "not an aiwarden store (no schema)".into(),
                ))
            }
        };
        drop(tx);
        let key = Key::load(&key_path(path)).map_err(|reason| Error::StoreHead {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            version,
            key,
            known: None,
            head_error: None,
            watch: None,
        })
    }
}

/// `PRAGMA quick_check`: a corrupt file is refused before anything is written to it.
pub(super) fn quick_check(path: &Path, conn: &Connection) -> Result<()> {
    let result: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .ctx(path, "quick_check")?;
    if result == "ok" {
        Ok(())
    } else {
        Err(store_error(
            path,
            StoreFault::Corrupt,
            format!("corrupt: quick_check: {result}"),
        ))
    }
}
