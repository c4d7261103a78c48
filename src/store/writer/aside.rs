//! Breaks: a store that cannot be written as it is (corrupt, deleted or replaced while open,
//! its tail cut off or rewritten, its head file missing or forged) is set aside with its
//! WAL, shared memory and head files, and a new chain begins whose first row says why, with
//! the newest row of the chain before and the name it was set aside as.

use std::path::Path;
use std::time::{Instant, SystemTime};

use super::Shell;
use crate::error::{Error, StoreFault};
use crate::store::files::{self, aside_name, sibling};
use crate::store::head::{head_path, key_path, read_head, HeadFile, Key};
use crate::store::{now_micros, store_error, Store, StoreOptions};

impl Shell<'_> {
    /// Sets the store aside and starts a new chain whose first row says why.
    pub(super) fn break_chain(&mut self, e: Error, now: Instant) {
        self.breaks_in_row += 1;
        let vanished = matches!(
            e,
            Error::Store {
                fault: StoreFault::Vanished,
                ..
            }
        );
        let prev = self.store.as_ref().and_then(Store::known_head).or_else(|| {
            match read_head(&head_path(&self.path)) {
                HeadFile::Present(h) if h.id > 0 => Some((h.id, h.hash)),
                _ => None,
            }
        });
        let stamp = SystemTime::now();
        let aside = aside_name(
            &self.path,
            if vanished { "deleted" } else { "corrupt" },
            stamp,
        );
        let moved = if vanished {
            self.rescue(&aside, stamp)
        } else {
            if let Some(s) = self.store.take() {
                s.close_as_is();
            }
            let key = key_path(&self.path);
            if Key::load(&key).is_err() {
                // An unreadable key would fail the new chain too: it goes with the file.
                let _ = std::fs::rename(&key, sibling(&aside, ".key"));
            }
            if self.path.exists() {
                files::set_aside(&self.path, &aside).map(|()| true)
            } else {
                Ok(false)
            }
        };
        self.store = None;
        let moved = match moved {
            Ok(m) => m,
            Err(io) => {
                let why = format!("{e}; and it cannot be set aside: {io}");
                return self.fail(store_error(&self.path, files::io_fault(&io), why), now);
            }
        };
        let name = moved.then(|| {
            aside
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let reason = match &name {
            Some(n) => format!("{}; set aside as {n}", reason_of(&e)),
            None => reason_of(&e),
        };
        let opened = Store::open_with(
            &self.path,
            StoreOptions {
                keyed: self.cfg.keyed,
            },
        )
        .and_then(|mut s| {
            s.append_break(now_micros(), &reason, prev, name.as_deref())?;
            Ok(s)
        });
        match opened {
            Ok(s) => {
                tracing::error!(
                    reason = %reason,
                    prev_id = prev.map_or(0, |p| p.0),
                    "store: a new chain begins with a break row"
                );
                self.broke = Some(format!(
                    "a new chain began at {}: {reason}",
                    humantime::format_rfc3339_seconds(stamp)
                ));
                // Rows of the chain set aside are not in this one: a touch opens them again.
                for k in self.ids.values_mut() {
                    k.id = None;
                }
                self.up(s);
            }
            Err(e2) => self.fail(e2, now),
        }
    }

    /// A store deleted or replaced while open: saves what the connection still sees as
    /// `aside` (with the head file), sets a replacement aside, clears the leftovers.
    fn rescue(&mut self, aside: &Path, stamp: SystemTime) -> std::io::Result<bool> {
        let saved = match self.store.take() {
            Some(s) => {
                let r = s.salvage(aside);
                s.close_as_is();
                match r {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::error!(error = %e, "store: cannot save the deleted store's rows");
                        false
                    }
                }
            }
            None => false,
        };
        let head = head_path(&self.path);
        if saved && head.exists() {
            std::fs::rename(&head, sibling(aside, ".head"))?;
            files::link_key(&self.path, aside);
        }
        if self.path.exists() {
            // Replaced: what is there now is not the chain this process wrote.
            let other = aside_name(&self.path, "corrupt", stamp);
            std::fs::rename(&self.path, &other)?;
            for s in ["-wal", "-shm"] {
                let f = sibling(&self.path, s);
                if f.exists() {
                    std::fs::rename(&f, sibling(&other, s))?;
                }
            }
        } else {
            files::clear_leftovers(&self.path, (!saved).then_some(aside));
        }
        files::sync_dir(&self.path)?;
        Ok(saved)
    }
}

/// Whether an error means the file must be set aside (it cannot be written as it is, and
/// waiting will not change that).
pub(super) fn breaks(e: &Error) -> bool {
    matches!(
        e,
        Error::Store {
            fault: StoreFault::Corrupt | StoreFault::Vanished,
            ..
        } | Error::Tampered { .. }
            | Error::StoreHead { .. }
    )
}

/// What a break row says about the error: its kind and message, without the path (the
/// break row lives in the same directory).
fn reason_of(e: &Error) -> String {
    match e {
        Error::Store { message, .. } => message.clone(),
        Error::Tampered { id, reason, .. } => format!("tampered at row {id}: {reason}"),
        Error::StoreHead { reason, .. } => format!("head file: {reason}"),
        other => other.to_string(),
    }
}
