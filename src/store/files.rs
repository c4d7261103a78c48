//! The files beside the store and what can go wrong with them: private modes whatever the
//! umask, atomic durable writes, what a failed write says about the directory (read-only,
//! full, missing), whether the open file is still the one at the path, and setting a bad
//! file aside with its WAL, shared memory and head files.
//!
//! One rule from SQLite's POSIX locking: closing any descriptor of the database file drops
//! every lock this process holds on it. So the database file is never opened here while a
//! connection is open, except the one descriptor [`Watch`] keeps for the connection's life.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::StoreFault;

/// Every file of the store is readable by its owner only.
pub(super) const MODE: u32 = 0o600;

/// `db` with `suffix` appended to its file name (`incidents.db` -> `incidents.db.head`).
pub(super) fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    db.with_file_name(name)
}

/// The directory holding `path` (`.` for a bare file name).
pub(super) fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates `path`, which must not exist, with mode 0600 whatever the umask.
pub(super) fn create_private(path: &Path) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(MODE)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(MODE))?;
    Ok(f)
}

/// Sets `path` to mode 0600 when it exists (a store created by an older aiwarden under a
/// looser umask).
pub(super) fn make_private(path: &Path) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o777 != MODE => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(MODE))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// fsyncs the directory holding `path`, so a rename or a new file in it survives a power cut.
pub(super) fn sync_dir(path: &Path) -> std::io::Result<()> {
    File::open(dir_of(path))?.sync_all()
}

/// Replaces `path` with `bytes`: a temporary file (0600) written and fsynced, renamed over
/// it, the directory fsynced. A reader sees the old content or the new, never a mix.
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = sibling(path, ".tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(MODE)
        .open(&tmp)?;
    let written = f
        .set_permissions(std::fs::Permissions::from_mode(MODE))
        .and_then(|()| f.write_all(bytes))
        .and_then(|()| f.sync_all());
    if let Err(e) = written {
        drop(f);
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(path)
}

/// The kind of fault an operating system error on the store's files means.
pub(super) fn io_fault(e: &std::io::Error) -> StoreFault {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ReadOnlyFilesystem => StoreFault::ReadOnly,
        K::StorageFull | K::QuotaExceeded => StoreFault::Full,
        K::NotFound => StoreFault::NoDirectory,
        K::PermissionDenied => StoreFault::Denied,
        _ => StoreFault::Io,
    }
}

/// Why the store's directory cannot take a write, found by writing there: `None` when it
/// can. A 4 KiB file written, fsynced and removed, so a full filesystem shows as well as a
/// read-only one.
pub(super) fn probe_dir(dir: &Path) -> Option<(StoreFault, String)> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Some((
                StoreFault::NoDirectory,
                format!("directory {} does not exist", dir.display()),
            ))
        }
        Err(e) => return Some((io_fault(&e), format!("directory {}: {e}", dir.display()))),
        Ok(m) if !m.is_dir() => {
            return Some((
                StoreFault::NoDirectory,
                format!("{} is not a directory", dir.display()),
            ))
        }
        Ok(_) => {}
    }
    let probe = dir.join(format!(".aiwarden-probe-{}", std::process::id()));
    let result = create_private(&probe).and_then(|mut f| {
        f.write_all(&[0u8; 4096])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&probe);
    let e = result.err()?;
    let what = match io_fault(&e) {
        StoreFault::ReadOnly => format!("read-only directory {}", dir.display()),
        StoreFault::Full => format!("no space left on {}", dir.display()),
        StoreFault::Denied => format!("directory {} is not writable ({e})", dir.display()),
        _ => format!("cannot write in {}: {e}", dir.display()),
    };
    Some((io_fault(&e), what))
}

/// The file a connection opened, watched for deletion, replacement and a clobbered header.
/// Holds one descriptor of the database for the connection's life (see the module docs):
/// drop it after the connection.
#[derive(Debug)]
pub(super) struct Watch {
    file: File,
    dev: u64,
    ino: u64,
}

/// What [`Watch::check`] found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Gone {
    /// The path no longer names the open file: deleted or replaced.
    Vanished(String),
    /// The file's first bytes are not SQLite's.
    Header(String),
}

/// The first 16 bytes of every SQLite database.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

impl Watch {
    /// Watches the file at `path` (opened read-only).
    pub(super) fn open(path: &Path) -> std::io::Result<Watch> {
        let file = File::open(path)?;
        let m = file.metadata()?;
        Ok(Watch {
            file,
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    /// Whether the path still names the open file and its header is SQLite's: a `stat` and
    /// a 16-byte read, cheap enough before every write.
    pub(super) fn check(&self, path: &Path) -> Result<(), Gone> {
        match std::fs::metadata(path) {
            Ok(m) if m.dev() == self.dev && m.ino() == self.ino => {}
            Ok(_) => {
                return Err(Gone::Vanished(
                    "the file was replaced while open".to_string(),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Gone::Vanished(
                    "the file was deleted while open".to_string(),
                ))
            }
            Err(_) => return Ok(()),
        }
        let mut head = [0u8; 16];
        match self.file.read_at(&mut head, 0) {
            // A store whose first page is still only in the WAL has a short file.
            Ok(n) if n < head.len() => Ok(()),
            Ok(_) if &head == SQLITE_MAGIC => Ok(()),
            Ok(_) => Err(Gone::Header(
                "the file's header is not SQLite's (overwritten?)".to_string(),
            )),
            Err(_) => Ok(()),
        }
    }
}

/// `20261123T094034Z`: a UTC time for file names.
pub(super) fn utc_stamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace(['-', ':'], "")
}

/// A free name `<db>.<tag>-<stamp>` (with `-2`, `-3`, ... when taken).
pub(super) fn aside_name(db: &Path, tag: &str, t: SystemTime) -> PathBuf {
    let base = sibling(db, &format!(".{tag}-{}", utc_stamp(t)));
    let mut candidate = base.clone();
    let mut n = 2;
    while candidate.exists() || sibling(&candidate, ".head").exists() {
        candidate = sibling(&base, &format!("-{n}"));
        n += 1;
    }
    candidate
}

/// Moves the store at `db` aside to `to`: the database with its `-wal` and `-shm` (so SQLite
/// opens the set-aside copy as it was) and its head file; the key is linked, so the
/// set-aside head still verifies. Call it only after the connection is closed. Returns an
/// error only when the database itself could not be moved.
pub(super) fn set_aside(db: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::rename(db, to)?;
    for suffix in ["-wal", "-shm", ".head"] {
        let from = sibling(db, suffix);
        if from.exists() {
            if let Err(e) = std::fs::rename(&from, sibling(to, suffix)) {
                tracing::warn!(file = %from.display(), error = %e, "store: cannot set aside");
            }
        }
    }
    link_key(db, to);
    sync_dir(db)
}

/// Links `db`'s key (when there is one) as `to`'s, so `verify --store <to>` finds it.
pub(super) fn link_key(db: &Path, to: &Path) {
    let key = sibling(db, ".key");
    if key.exists() {
        let target = sibling(to, ".key");
        if std::fs::hard_link(&key, &target).is_err() {
            let _ = std::fs::copy(&key, &target).and_then(|_| make_private(&target));
        }
    }
}

/// Removes or sets aside what a vanished database left at its path: a `-wal` or `-shm`
/// with no database would be taken by SQLite for the new one's. With `to`, they are moved
/// beside it as `<to>.orphan-wal` and `<to>.orphan-shm` (never as `<to>-wal`, which SQLite
/// would apply to a copy it does not belong to).
pub(super) fn clear_leftovers(db: &Path, to: Option<&Path>) {
    for suffix in ["-wal", "-shm"] {
        let from = sibling(db, suffix);
        if !from.exists() {
            continue;
        }
        let done = match to {
            Some(to) => std::fs::rename(&from, sibling(to, &format!(".orphan{suffix}"))),
            None => std::fs::remove_file(&from),
        };
        if let Err(e) = done {
            tracing::warn!(file = %from.display(), error = %e, "store: cannot clear");
        }
    }
}
