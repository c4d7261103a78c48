//! Retention: the oldest prefix of the log goes, with its activity and usage, behind an
//! anchor that keeps the rest verifiable; evidence of an edit is never purged.

use rusqlite::{params, Connection, TransactionBehavior};

use super::chain::{check_chain, read_anchor};
use super::{store_error, Context, Store};
use crate::error::StoreFault;
use crate::Result;

impl Store {
    /// Retention: deletes the oldest rows of the log, the longest prefix in which every row is
    /// older than `cutoff` (unix microseconds), with their activity, and usage days before the
    /// cutoff's day. Records the last purged row's id and hash as the anchor [`Store::verify`]
    /// starts from. The prefix stops before an incident whose acknowledgement is kept, so no
    /// kept ack loses its incident. Refuses to purge rows whose chain is broken, so retention
    /// never erases the evidence of an edit. Rewrites the head file (its anchor moved).
    /// Returns the log rows deleted.
    pub fn purge_before(&mut self, cutoff: i64) -> Result<u64> {
        self.check_file()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(&self.path, "begin")?;
        super::write::guard(&self.path, &tx, self.known)?;
        let anchor_id = read_anchor(&tx)
            .ctx(&self.path, "read anchor")?
            .map_or(0, |(id, _)| id);
        let last = purge_end(&tx, cutoff).ctx(&self.path, "find rows to purge")?;
        let mut deleted = 0;
        if let Some(last) = last.filter(|&l| l > anchor_id) {
            let report = check_chain(&tx, self.version, Some(last))
                .ctx(&self.path, "verify before purge")?;
            let reason = match report.first_broken {
                Some(b) => Some(format!("row {}: {}", b.id, b.reason)),
                // The walk stops at `last`, so a gap just before it shows only as a short count.
                None if report.rows != (last - anchor_id) as u64 => Some(format!(
                    "rows {} to {last} are not all there (deleted?)",
                    anchor_id + 1
                )),
                None => None,
            };
            if let Some(reason) = reason {
                return Err(store_error(
                    &self.path,
                    StoreFault::Other,
                    format!("purge refused: {reason}; the rows are kept as evidence"),
                ));
            }
            let hash: [u8; 32] = tx
                .query_row("SELECT hash FROM log WHERE id = ?1", [last], |r| r.get(0))
                .ctx(&self.path, "read the last purged row")?;
            // The anchor first: the delete trigger allows deleting only rows at or before it.
            tx.execute(
                "INSERT INTO anchor (only, last_id, last_hash, cutoff) VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT (only) DO UPDATE SET last_id = excluded.last_id,
                     last_hash = excluded.last_hash, cutoff = excluded.cutoff",
                params![last, hash, cutoff],
            )
            .ctx(&self.path, "record anchor")?;
            tx.execute("DELETE FROM activity_seen WHERE incident_id <= ?1", [last])
                .ctx(&self.path, "purge activity")?;
            tx.execute("DELETE FROM activity WHERE incident_id <= ?1", [last])
                .ctx(&self.path, "purge activity")?;
            deleted += tx
                .execute("DELETE FROM log WHERE id <= ?1 AND kind = 'ack'", [last])
                .ctx(&self.path, "purge acks")?;
            deleted += tx
                .execute("DELETE FROM log WHERE id <= ?1", [last])
                .ctx(&self.path, "purge incidents")?;
        }
        tx.execute(
            "DELETE FROM usage WHERE day < date(?1, 'unixepoch')",
            [cutoff.div_euclid(1_000_000)],
        )
        .ctx(&self.path, "purge usage")?;
        tx.commit().ctx(&self.path, "commit purge")?;
        if deleted > 0 {
            self.after_commit();
        }
        Ok(deleted as u64)
    }
}

/// The last id retention may purge at `cutoff`: the end of the prefix of rows older than the
/// cutoff, pulled back before any incident in it whose ack lies beyond it.
fn purge_end(conn: &Connection, cutoff: i64) -> rusqlite::Result<Option<i64>> {
    let first_kept: Option<i64> =
        conn.query_row("SELECT min(id) FROM log WHERE ts >= ?1", [cutoff], |r| {
            r.get(0)
        })?;
    let mut last: Option<i64> = match first_kept {
        Some(id) => Some(id - 1),
        None => conn.query_row("SELECT max(id) FROM log", [], |r| r.get(0))?,
    };
    if let Some(l) = last {
        let acked_later: Option<i64> = conn.query_row(
            "SELECT min(incident_id) FROM log WHERE kind = 'ack' AND id > ?1 AND incident_id <= ?1",
            [l],
            |r| r.get(0),
        )?;
        if let Some(inc) = acked_later {
            last = Some(inc - 1);
        }
    }
    Ok(last.filter(|&l| l > 0))
}
