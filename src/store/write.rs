//! Writing the store: batches of incidents, touches and usage in one transaction, acks,
//! unblocks and break rows, each chained, and the head file rewritten after every commit
//! that changes the log. Nothing is written to a file that was deleted, replaced or overwritten, or to a
//! chain that no longer holds the head this process last saw.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::chain::{
    ack_values, break_values, chain_head, hash_at, incident_values, insert_log, tip,
    unblock_values, UnblockEntry,
};
use super::head::{self, head_path};
use super::{
    add_seen, check_day, check_incident, clamp, io_error, is_incident, now_rfc3339, sqlite_error,
    Context, Store,
};
use crate::incident::{IncidentRecord, Touch};
use crate::policy::pattern::Pattern;
use crate::policy::unblock::Device;
use crate::policy::Verdict;
use crate::{Error, Result};

/// Operations written in one transaction: new incidents, touches (of rows, or of incidents
/// new in this batch), usage, and the spool position they bring the store to.
#[derive(Debug, Default)]
pub(super) struct Batch {
    pub(super) incidents: Vec<IncidentRecord>,
    pub(super) touches: Vec<(Target, Touch)>,
    pub(super) usage: Vec<(String, String, Verdict, u64)>,
    /// `(spool file id, sequence number)` of the last spooled operation in the batch.
    pub(super) spool: Option<(String, i64)>,
}

/// The incident a touch applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    /// A row already in the store.
    Row(i64),
    /// The batch's `incidents[i]`.
    New(usize),
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.incidents.is_empty()
            && self.touches.is_empty()
            && self.usage.is_empty()
            && self.spool.is_none()
    }
}

/// What [`Store::write`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Written {
    /// The new incidents' ids, in order.
    pub(super) ids: Vec<i64>,
    /// Touched rows that are not in the store (skipped).
    pub(super) missing: Vec<i64>,
}

impl Store {
    /// Appends incidents in one transaction and returns their ids, in order. Each starts with
    /// an activity of count 1, last seen at `ts`, its host and its `how`.
    pub fn append_incidents(&mut self, incidents: &[IncidentRecord]) -> Result<Vec<i64>> {
        let batch = Batch {
            incidents: incidents.to_vec(),
            ..Batch::default()
        };
        Ok(self.write(&batch)?.ids)
    }

    /// Writes `batch` in one transaction: incidents chained in order (each with an activity
    /// of count 1), then touches, usage and the spool position. Touches of rows that are not
    /// in the store are skipped and listed. Refuses to write when the file was deleted,
    /// replaced or overwritten, or when the chain no longer holds the head this process last
    /// saw (its tail was cut off or rewritten under it).
    pub(super) fn write(&mut self, batch: &Batch) -> Result<Written> {
        for inc in &batch.incidents {
            check_incident(inc)?;
        }
        for (day, ..) in &batch.usage {
            check_day(day)?;
        }
        if batch.is_empty() {
            return Ok(Written::default());
        }
        self.check_file()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(&self.path, "begin")?;
        guard(&self.path, &tx, self.known)?;
        let mut out = Written::default();
        if !batch.incidents.is_empty() {
            let (mut next, mut prev) = chain_head(&tx).ctx(&self.path, "read the chain head")?;
            for inc in &batch.incidents {
                let row = incident_values(next, inc);
                prev = insert_log(&tx, &row, &prev).ctx(&self.path, "append incident")?;
                tx.prepare_cached(
                    "INSERT INTO activity (incident_id, last_seen, count) VALUES (?1, ?2, 1)",
                )
                .and_then(|mut st| st.execute(params![next, inc.ts]))
                .ctx(&self.path, "append activity")?;
                add_seen(&tx, next, "host", &inc.host).ctx(&self.path, "append activity")?;
                add_seen(&tx, next, "how", &inc.how.to_string())
                    .ctx(&self.path, "append activity")?;
                out.ids.push(next);
                next += 1;
            }
        }
        for (target, t) in &batch.touches {
            let id = match *target {
                Target::Row(id) => id,
                Target::New(i) => match out.ids.get(i) {
                    Some(id) => *id,
                    None => continue,
                },
            };
            let changed = tx
                .prepare_cached(
                    "UPDATE activity SET last_seen = max(last_seen, ?2), count = count + ?3
                     WHERE incident_id = ?1",
                )
                .and_then(|mut st| st.execute(params![id, t.ts, i64::from(t.attempt)]))
                .ctx(&self.path, "update activity")?;
            if changed == 0 {
                out.missing.push(id);
                continue;
            }
            add_seen(&tx, id, "host", &t.host).ctx(&self.path, "update activity")?;
            add_seen(&tx, id, "how", &t.how.to_string()).ctx(&self.path, "update activity")?;
            if let Some(mac) = t.mac {
                add_seen(&tx, id, "mac", &mac.to_string()).ctx(&self.path, "update activity")?;
            }
        }
        if !batch.usage.is_empty() {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO usage (day, service, verdict, count) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (day, service, verdict) DO UPDATE SET count = count + excluded.count",
                )
                .ctx(&self.path, "add usage")?;
            for (day, service, verdict, n) in &batch.usage {
                st.execute(params![day, service, verdict.as_str(), clamp(*n)])
                    .ctx(&self.path, "add usage")?;
            }
        }
        if let Some((file, seq)) = &batch.spool {
            tx.execute(
                "INSERT INTO spool (only, file, seq) VALUES (1, ?1, ?2)
                 ON CONFLICT (only) DO UPDATE SET file = excluded.file, seq = excluded.seq",
                params![file, seq],
            )
            .ctx(&self.path, "record the spool position")?;
        }
        tx.commit().ctx(&self.path, "commit")?;
        if !batch.incidents.is_empty() {
            self.after_commit();
        }
        Ok(out)
    }

    /// Records that `by` acknowledged incident `incident_id` at `ts` (unix microseconds) with
    /// `note`, and returns the ack's id. An incident may be acknowledged more than once.
    pub fn ack(&mut self, incident_id: i64, ts: i64, by: &str, note: &str) -> Result<i64> {
        self.check_file()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(&self.path, "begin")?;
        guard(&self.path, &tx, self.known)?;
        if !is_incident(&tx, incident_id).ctx(&self.path, "find incident")? {
            return Err(Error::NoSuchIncident(incident_id));
        }
        let (id, prev) = chain_head(&tx).ctx(&self.path, "read the chain head")?;
        let row = ack_values(id, incident_id, ts, by, note);
        insert_log(&tx, &row, &prev).ctx(&self.path, "append ack")?;
        tx.commit().ctx(&self.path, "commit ack")?;
        self.after_commit();
        Ok(id)
    }

    /// Acknowledges each of `incident_ids` as [`Store::ack`] does, in one transaction: all
    /// of them or, when one is not an incident ([`Error::NoSuchIncident`]), none. Returns
    /// the acks' ids in order.
    pub fn ack_many(
        &mut self,
        incident_ids: &[i64],
        ts: i64,
        by: &str,
        note: &str,
    ) -> Result<Vec<i64>> {
        self.chained(|path, tx| {
            let mut out = Vec::with_capacity(incident_ids.len());
            let (mut id, mut prev) = chain_head(tx).ctx(path, "read the chain head")?;
            for &incident in incident_ids {
                if !is_incident(tx, incident).ctx(path, "find incident")? {
                    return Err(Error::NoSuchIncident(incident));
                }
                let row = ack_values(id, incident, ts, by, note);
                prev = insert_log(tx, &row, &prev).ctx(path, "append ack")?;
                out.push(id);
                id += 1;
            }
            Ok(out)
        })
    }

    /// Records at `ts` that `by` let `device` reach `host` (every blocked AI host when
    /// `None`) until `until` (unix microseconds, exclusive), for the reason in `note`, and
    /// returns the unblock's id. Refuses an empty `by` or `note` and an `until` not after
    /// `ts`.
    pub fn unblock(
        &mut self,
        ts: i64,
        device: &Device,
        host: Option<&Pattern>,
        by: &str,
        note: &str,
        until: i64,
    ) -> Result<i64> {
        if by.trim().is_empty() {
            return Err(Error::Usage("an unblock needs --by: who allows it".into()));
        }
        if note.trim().is_empty() {
            return Err(Error::Usage("an unblock needs --note: why".into()));
        }
        if until <= ts {
            return Err(Error::Usage("an unblock must end after it begins".into()));
        }
        if matches!(device, Device::Name(n) if n.trim().is_empty()) {
            return Err(Error::Usage("an unblock needs a device".into()));
        }
        self.check_file()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(&self.path, "begin")?;
        guard(&self.path, &tx, self.known)?;
        let (id, prev) = chain_head(&tx).ctx(&self.path, "read the chain head")?;
        let row = unblock_values(
            id,
            &UnblockEntry {
                ts,
                device,
                host,
                by,
                note,
                until,
            },
        );
        insert_log(&tx, &row, &prev).ctx(&self.path, "append unblock")?;
        tx.commit().ctx(&self.path, "commit unblock")?;
        self.after_commit();
        Ok(id)
    }

    /// Appends a `break` row at `ts`: the chain before this one ended for `reason`; `prev`
    /// was its newest row and `file` the name it was set aside as. Returns the row's id.
    pub(super) fn append_break(
        &mut self,
        ts: i64,
        reason: &str,
        prev: Option<(i64, [u8; 32])>,
        file: Option<&str>,
    ) -> Result<i64> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(&self.path, "begin")?;
        let (id, prev_hash) = chain_head(&tx).ctx(&self.path, "read the chain head")?;
        let row = break_values(id, ts, reason, prev, file);
        insert_log(&tx, &row, &prev_hash).ctx(&self.path, "append break")?;
        tx.commit().ctx(&self.path, "commit break")?;
        self.after_commit();
        Ok(id)
    }

    /// Records a later observation of incident `id` as [`IncidentSummary::touch`](crate::incident::IncidentSummary::touch) does:
    /// moves `last_seen` forward, counts an attempt, adds the host and `how` to the sets
    /// seen.
    pub fn touch_incident(&mut self, id: i64, touch: &Touch) -> Result<()> {
        self.touch_batch(&[(id, touch.clone())])
    }

    /// [`Store::touch_incident`] for many incidents in one transaction. Fails whole, with
    /// [`Error::NoSuchIncident`], if one of them is not in the store.
    pub fn touch_batch(&mut self, touches: &[(i64, Touch)]) -> Result<()> {
        for (id, _) in touches {
            let known: Option<i64> = self
                .conn
                .query_row("SELECT 1 FROM activity WHERE incident_id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()
                .ctx(&self.path, "find incident")?;
            if known.is_none() {
                return Err(Error::NoSuchIncident(*id));
            }
        }
        let batch = Batch {
            touches: touches
                .iter()
                .map(|(id, t)| (Target::Row(*id), t.clone()))
                .collect(),
            ..Batch::default()
        };
        self.write(&batch).map(|_| ())
    }

    /// Adds `n` attempts of `service` with `verdict` on UTC `day` (`YYYY-MM-DD`).
    pub fn add_usage(&mut self, day: &str, service: &str, verdict: Verdict, n: u64) -> Result<()> {
        self.add_usage_batch(&[(day.into(), service.into(), verdict, n)])
    }

    /// [`Store::add_usage`] for many `(day, service, verdict, n)` in one transaction.
    pub fn add_usage_batch(&mut self, rows: &[(String, String, Verdict, u64)]) -> Result<()> {
        let batch = Batch {
            usage: rows.to_vec(),
            ..Batch::default()
        };
        self.write(&batch).map(|_| ())
    }

    /// Rewrites the head file from the database after a commit; a failure is kept for
    /// [`Store::take_head_error`] (the commit stands: the head file is then behind, which
    /// `verify` accepts, until the next commit rewrites it).
    pub(super) fn after_commit(&mut self) {
        let rec = match head::current(&self.conn, now_rfc3339()) {
            Ok(rec) => rec,
            Err(e) => {
                self.head_error = Some(sqlite_error(&self.path, "read the chain head", &e));
                return;
            }
        };
        self.known = Some((rec.id, rec.hash));
        match head::write_head(&head_path(&self.path), &rec, self.key.as_ref()) {
            Ok(()) => self.head_error = None,
            Err(e) => self.head_error = Some(io_error(&self.path, "write the head file", &e)),
        }
    }
}

/// Refuses to write to a chain that no longer holds `known`, the head this process last saw.
pub(super) fn guard(path: &Path, conn: &Connection, known: Option<(i64, [u8; 32])>) -> Result<()> {
    let Some((id, hash)) = known.filter(|(id, _)| *id > 0) else {
        return Ok(());
    };
    let tampered = |id: i64, reason: String| {
        Err(Error::Tampered {
            path: path.to_path_buf(),
            id,
            reason,
        })
    };
    match hash_at(conn, id).ctx(path, "check the chain head")? {
        Some(found) if found == hash => Ok(()),
        Some(_) => tampered(
            id,
            format!("row {id} changed under the daemon: the tail was rewritten"),
        ),
        None => {
            let (last, _) = tip(conn).ctx(path, "check the chain head")?;
            let last = last.map_or(0, |(id, _)| id);
            tampered(
                last + 1,
                format!(
                    "rows {} to {id} were cut off the end while the daemon had them",
                    last + 1
                ),
            )
        }
    }
}
