//! The writer's spool: operations waiting, in order, while the database cannot be written.
//! Bounded by count and by bytes; what does not fit is refused (the writer counts and logs
//! it). Usage counts are summed per (day, service, verdict) rather than queued, so a flood
//! of queries for one service costs one entry.
//!
//! Incidents and touches are also appended to `<store>.spool` (0600, one JSON object a
//! line, fdatasync'd once per batch) while its directory takes writes, so a restart or a
//! crash during an outage loses nothing: the next writer loads the file and writes it first.
//! A batch written from the file records the file's id and its last sequence number in the
//! store's `spool` table in the same transaction, so a crash between that commit and the
//! file's removal does not write anything twice. Summed usage reaches the file only when
//! the writer stops ([`Spool::save_all`]). When the directory cannot take the file (the
//! usual outage: read-only, full), the memory copy is all there is.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::files::{create_private, sibling, sync_dir, write_atomic};
use super::StoreOp;
use crate::incident::{IncidentOp, IncidentRecord, Touch, Usage};
use crate::policy::Verdict;

/// How much the spool holds before it refuses operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Limits {
    /// Operations (queued entries plus distinct usage keys).
    pub(super) ops: usize,
    /// Estimated bytes of memory.
    pub(super) bytes: usize,
}

/// One operation waiting: the process (`epoch`) whose pipeline keys it uses, and its place.
#[derive(Debug)]
pub(super) struct Spooled {
    /// The writer that received it (keys are per process).
    pub(super) epoch: u64,
    /// Its place in the spool file's order.
    pub(super) seq: i64,
    /// The operation (never `Usage`: usage is summed apart).
    pub(super) op: StoreOp,
}

type UsageKey = (String, String, Verdict);

/// The spool. See the module docs.
#[derive(Debug)]
pub(super) struct Spool {
    queue: VecDeque<Spooled>,
    usage: FxHashMap<UsageKey, u64>,
    bytes: usize,
    incidents: usize,
    limits: Limits,
    next_seq: i64,
    path: PathBuf,
    /// The file mirroring the queue, while every queued operation is in it.
    disk: Option<File>,
    /// The id of the spool file the queued operations are in (also when `disk` was given
    /// up: its prefix is still there).
    file_id: Option<String>,
    /// Tried to create or write the file this outage and failed: not again until empty.
    disk_failed: bool,
    /// Spool files made by this process, for unique ids.
    made: u32,
}

/// What the file's first line says.
#[derive(Serialize, Deserialize)]
struct Header {
    aiwarden_spool: u32,
    id: String,
}

/// One line of the file after the header.
#[derive(Serialize, Deserialize)]
struct Line {
    seq: i64,
    epoch: u64,
    #[serde(flatten)]
    op: LineOp,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum LineOp {
    Open {
        key: u64,
        record: Box<Rec>,
    },
    Touch {
        key: u64,
        ts: i64,
        host: String,
        how: String,
        attempt: bool,
        /// Absent in spool files written before the MAC was carried.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mac: Option<String>,
    },
    Forget {
        key: u64,
    },
    Usage {
        day: String,
        service: String,
        verdict: String,
        n: u64,
    },
}

/// An [`IncidentRecord`] as text fields (its own `Serialize` gives the same names).
#[derive(Serialize, Deserialize)]
struct Rec {
    ts: i64,
    client_ip: String,
    client_mac: Option<String>,
    device: Option<String>,
    label: Option<String>,
    group: Option<String>,
    service: String,
    service_name: String,
    category: Option<String>,
    tier: Option<String>,
    verdict: String,
    mode: String,
    how: String,
    host: String,
    rule: String,
}

impl Rec {
    fn of(r: &IncidentRecord) -> Rec {
        Rec {
            ts: r.ts,
            client_ip: r.client_ip.to_string(),
            client_mac: r.client_mac.map(|m| m.to_string()),
            device: r.device.clone(),
            label: r.label.clone(),
            group: r.group.clone(),
            service: r.service.clone(),
            service_name: r.service_name.clone(),
            category: r.category.clone(),
            tier: r.tier.map(|t| t.as_str().to_string()),
            verdict: r.verdict.as_str().to_string(),
            mode: r.mode.as_str().to_string(),
            how: r.how.to_string(),
            host: r.host.clone(),
            rule: r.rule.clone(),
        }
    }

    fn record(self) -> Result<IncidentRecord, String> {
        fn p<T: std::str::FromStr>(s: &str) -> Result<T, String>
        where
            T::Err: std::fmt::Display,
        {
            s.parse::<T>().map_err(|e| format!("{s:?}: {e}"))
        }
        Ok(IncidentRecord {
            ts: self.ts,
            client_ip: p(&self.client_ip)?,
            client_mac: self.client_mac.as_deref().map(p).transpose()?,
            device: self.device,
            label: self.label,
            group: self.group,
            service: self.service,
            service_name: self.service_name,
            category: self.category,
            tier: self.tier.as_deref().map(p).transpose()?,
            verdict: p(&self.verdict)?,
            mode: p(&self.mode)?,
            how: p(&self.how)?,
            host: self.host,
            rule: self.rule,
        })
    }
}

fn line_of(s: &Spooled) -> Option<Line> {
    let op = match &s.op {
        StoreOp::Incident(IncidentOp::Open { key, record }) => LineOp::Open {
            key: *key,
            record: Box::new(Rec::of(record)),
        },
        StoreOp::Incident(IncidentOp::Touch { key, touch }) => LineOp::Touch {
            key: *key,
            ts: touch.ts,
            host: touch.host.clone(),
            how: touch.how.to_string(),
            attempt: touch.attempt,
            mac: touch.mac.map(|m| m.to_string()),
        },
        StoreOp::Forget(key) => LineOp::Forget { key: *key },
        StoreOp::Usage(_) => return None,
    };
    Some(Line {
        seq: s.seq,
        epoch: s.epoch,
        op,
    })
}

/// Memory an operation holds, estimated: its size and its strings.
fn op_bytes(op: &StoreOp) -> usize {
    let base = std::mem::size_of::<Spooled>();
    base + match op {
        StoreOp::Incident(IncidentOp::Open { record, .. }) => {
            let r = record.as_ref();
            std::mem::size_of::<IncidentRecord>()
                + [&r.device, &r.label, &r.group, &r.category]
                    .iter()
                    .map(|s| s.as_ref().map_or(0, String::len))
                    .sum::<usize>()
                + r.service.len()
                + r.service_name.len()
                + r.host.len()
                + r.rule.len()
        }
        StoreOp::Incident(IncidentOp::Touch { touch, .. }) => touch.host.len(),
        StoreOp::Usage(u) => u.day.len() + u.service.len(),
        StoreOp::Forget(_) => 0,
    }
}

impl Spool {
    /// An empty spool for the store at `store`, mirrored to `<store>.spool`.
    pub(super) fn new(store: &Path, limits: Limits) -> Spool {
        Spool {
            queue: VecDeque::new(),
            usage: FxHashMap::default(),
            bytes: 0,
            incidents: 0,
            limits,
            next_seq: 1,
            path: sibling(store, ".spool"),
            disk: None,
            file_id: None,
            disk_failed: false,
            made: 0,
        }
    }

    /// The spool file's path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Loads a spool file a previous writer left, to write it first. Returns the operations
    /// loaded; a line that does not parse (a crash mid-write) ends the file. New operations
    /// are appended to the same file.
    pub(super) fn load(&mut self) -> Result<usize, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(format!("cannot read {}: {e}", self.path.display())),
        };
        let mut lines = text.lines();
        let header: Header = lines
            .next()
            .and_then(|l| serde_json::from_str(l).ok())
            .filter(|h: &Header| h.aiwarden_spool == 1)
            .ok_or(format!("{} has no spool header", self.path.display()))?;
        let mut n = 0;
        for l in lines {
            let Ok(line) = serde_json::from_str::<Line>(l) else {
                break;
            };
            let op = match line.op {
                LineOp::Open { key, record } => match record.record() {
                    Ok(r) => StoreOp::Incident(IncidentOp::Open {
                        key,
                        record: Box::new(r),
                    }),
                    Err(e) => {
                        tracing::warn!(error = %e, seq = line.seq, "store spool: unreadable incident");
                        continue;
                    }
                },
                LineOp::Touch {
                    key,
                    ts,
                    host,
                    how,
                    attempt,
                    mac,
                } => match how.parse() {
                    Ok(how) => StoreOp::Incident(IncidentOp::Touch {
                        key,
                        touch: Touch {
                            ts,
                            host,
                            how,
                            attempt,
                            mac: mac.and_then(|m| m.parse().ok()),
                        },
                    }),
                    Err(_) => continue,
                },
                LineOp::Forget { key } => StoreOp::Forget(key),
                LineOp::Usage {
                    day,
                    service,
                    verdict,
                    n: count,
                } => {
                    if let Ok(v) = verdict.parse() {
                        *self.usage.entry((day, service, v)).or_insert(0) += count;
                    }
                    continue;
                }
            };
            self.next_seq = self.next_seq.max(line.seq + 1);
            self.account(&op, 1);
            self.queue.push_back(Spooled {
                epoch: line.epoch,
                seq: line.seq,
                op,
            });
            n += 1;
        }
        self.file_id = Some(header.id);
        match std::fs::OpenOptions::new().append(true).open(&self.path) {
            Ok(f) => self.disk = Some(f),
            Err(_) => self.disk_failed = true,
        }
        Ok(n)
    }

    fn account(&mut self, op: &StoreOp, sign: isize) {
        let b = op_bytes(op);
        let opened = matches!(op, StoreOp::Incident(IncidentOp::Open { .. }));
        if sign > 0 {
            self.bytes += b;
            self.incidents += usize::from(opened);
        } else {
            self.bytes = self.bytes.saturating_sub(b);
            self.incidents -= usize::from(opened);
        }
    }

    /// Queues `op` from writer `epoch` (usage is summed). Gives it back when the spool is
    /// full. Call [`Spool::persist`] after a batch of pushes.
    pub(super) fn push(&mut self, epoch: u64, op: StoreOp) -> Result<(), StoreOp> {
        let b = op_bytes(&op);
        if let StoreOp::Usage(Usage {
            day,
            service,
            verdict,
        }) = op
        {
            let key = (day, service, verdict);
            if let Some(n) = self.usage.get_mut(&key) {
                *n += 1;
                return Ok(());
            }
            if self.len() >= self.limits.ops || self.bytes + b > self.limits.bytes {
                return Err(StoreOp::Usage(Usage {
                    day: key.0,
                    service: key.1,
                    verdict: key.2,
                }));
            }
            self.bytes += b;
            self.usage.insert(key, 1);
            return Ok(());
        }
        if self.len() >= self.limits.ops || self.bytes + b > self.limits.bytes {
            return Err(op);
        }
        let s = Spooled {
            epoch,
            seq: self.next_seq,
            op,
        };
        self.next_seq += 1;
        self.account(&s.op, 1);
        self.append(&s);
        self.queue.push_back(s);
        Ok(())
    }

    /// Appends one operation to the file (creating it for the first one of an outage).
    fn append(&mut self, s: &Spooled) {
        if self.disk.is_none() && !self.disk_failed {
            if self.queue.is_empty() {
                self.start_file();
            } else {
                // Queued operations are not in a file: a file now would skip them.
                self.disk_failed = true;
            }
        }
        let Some(f) = self.disk.as_mut() else { return };
        let Some(line) = line_of(s) else { return };
        let text = serde_json::to_string(&line).unwrap_or_default();
        if f.write_all(format!("{text}\n").as_bytes()).is_err() {
            self.give_up_disk();
        }
    }

    fn start_file(&mut self) {
        self.made += 1;
        let id = format!("{:x}-{}", super::now_micros(), self.made);
        let header = serde_json::to_string(&Header {
            aiwarden_spool: 1,
            id: id.clone(),
        })
        .unwrap_or_default();
        let _ = std::fs::remove_file(&self.path);
        let made = create_private(&self.path).and_then(|mut f| {
            f.write_all(format!("{header}\n").as_bytes())?;
            f.sync_all()?;
            sync_dir(&self.path)?;
            Ok(f)
        });
        match made {
            Ok(f) => {
                self.disk = Some(f);
                self.file_id = Some(id);
            }
            Err(e) => {
                tracing::debug!(error = %e, "store spool: no file, memory only");
                let _ = std::fs::remove_file(&self.path);
                self.disk_failed = true;
            }
        }
    }

    fn give_up_disk(&mut self) {
        self.disk = None;
        self.disk_failed = true;
    }

    /// Makes the file's appends durable (one fdatasync per batch). False when the file was
    /// given up now (the writer logs it once).
    pub(super) fn persist(&mut self) -> bool {
        if let Some(f) = self.disk.as_mut() {
            if f.sync_data().is_err() {
                self.give_up_disk();
                return false;
            }
        }
        true
    }

    /// Operations waiting (queued entries and distinct usage keys).
    pub(super) fn len(&self) -> usize {
        self.queue.len() + self.usage.len()
    }

    /// Nothing waits.
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Incidents waiting (queued opens).
    pub(super) fn incidents(&self) -> usize {
        self.incidents
    }

    /// The id of the file holding the queued operations (a prefix of them when the file was
    /// given up), for the store's `spool` table.
    pub(super) fn file_id(&self) -> Option<&str> {
        self.file_id.as_deref()
    }

    /// Drops queued operations up to and including `seq` (the store has them).
    pub(super) fn drop_through(&mut self, seq: i64) -> usize {
        let mut n = 0;
        while self.queue.front().is_some_and(|s| s.seq <= seq) {
            if let Some(s) = self.queue.pop_front() {
                self.account(&s.op, -1);
                n += 1;
            }
        }
        n
    }

    /// The oldest `n` queued operations.
    pub(super) fn front(&self, n: usize) -> impl Iterator<Item = &Spooled> {
        self.queue.iter().take(n)
    }

    /// Takes the summed usage (to write with the next batch; [`Spool::restore_usage`] puts it
    /// back if the write fails).
    pub(super) fn take_usage(&mut self) -> Vec<(String, String, Verdict, u64)> {
        let usage: Vec<_> = self
            .usage
            .drain()
            .map(|((d, s, v), n)| (d, s, v, n))
            .collect();
        for (d, s, ..) in &usage {
            self.bytes = self
                .bytes
                .saturating_sub(std::mem::size_of::<Spooled>() + d.len() + s.len());
        }
        usage
    }

    /// Puts usage taken by [`Spool::take_usage`] back.
    pub(super) fn restore_usage(&mut self, usage: Vec<(String, String, Verdict, u64)>) {
        for (d, s, v, n) in usage {
            self.bytes += std::mem::size_of::<Spooled>() + d.len() + s.len();
            *self.usage.entry((d, s, v)).or_insert(0) += n;
        }
    }

    /// Removes the oldest `n` queued operations (written), and the file once nothing is left.
    pub(super) fn pop(&mut self, n: usize) {
        for _ in 0..n {
            if let Some(s) = self.queue.pop_front() {
                self.account(&s.op, -1);
            }
        }
        if self.is_empty() {
            self.finish();
        }
    }

    /// Nothing waits: the file goes, the next outage starts a new one.
    fn finish(&mut self) {
        self.disk = None;
        self.disk_failed = false;
        if self.file_id.take().is_some() {
            match std::fs::remove_file(&self.path) {
                Ok(()) => {
                    let _ = sync_dir(&self.path);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(error = %e, "store spool: cannot remove the file"),
            }
        }
        self.bytes = 0;
        self.incidents = 0;
    }

    /// At shutdown: makes sure the file holds everything waiting, summed usage included
    /// (rewritten whole when it is not in step). Returns the operations saved.
    pub(super) fn save_all(&mut self) -> std::io::Result<usize> {
        let id = self
            .file_id
            .clone()
            .unwrap_or_else(|| format!("{:x}-final", super::now_micros()));
        let mut text = serde_json::to_string(&Header {
            aiwarden_spool: 1,
            id,
        })
        .map_err(std::io::Error::other)?;
        text.push('\n');
        for s in &self.queue {
            if let Some(line) = line_of(s) {
                text.push_str(&serde_json::to_string(&line).map_err(std::io::Error::other)?);
                text.push('\n');
            }
        }
        for ((day, service, verdict), n) in &self.usage {
            let line = Line {
                seq: 0,
                epoch: 0,
                op: LineOp::Usage {
                    day: day.clone(),
                    service: service.clone(),
                    verdict: verdict.as_str().to_string(),
                    n: *n,
                },
            };
            text.push_str(&serde_json::to_string(&line).map_err(std::io::Error::other)?);
            text.push('\n');
        }
        self.disk = None;
        write_atomic(&self.path, text.as_bytes())?;
        Ok(self.len())
    }
}
