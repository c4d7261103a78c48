//! Reading the store for a central copy (`crate::fleet::rollup`): every chained row after a
//! row id, with the values its hash covers, so a copy elsewhere holds the rows themselves and
//! can recompute the chain; each incident's activity (attempts, last seen, every `how` and
//! a MAC learned later), which changes after the row is written and so is not chained; the
//! daily usage from a day on.
//!
//! Row ids only grow (retention purges a prefix), so "rows with an id above the copy's last"
//! is the exact set the copy lacks, whatever happened in between.

use rusqlite::types::{Value, ValueRef};
use rusqlite::OptionalExtension;

use super::chain::{extra_columns, hash_at, row_hash, BREAK_COLUMNS, EVENT_COLUMNS, LOG_COLUMNS};
use super::chain::{read_anchor, UNBLOCK_COLUMNS};
use super::{check_day, unclamp, Context, Store};
use crate::Result;

/// The most rows one [`Store::log_after`] call returns.
pub const MAX_EXPORT: u32 = 50_000;

/// Every column of `log` a central copy holds, in the order [`LogRow::values`] are kept:
/// the 20 chained columns of every kind, then the break, unblock and event columns.
pub fn export_columns() -> Vec<&'static str> {
    let mut c = LOG_COLUMNS.to_vec();
    c.extend(BREAK_COLUMNS);
    c.extend(UNBLOCK_COLUMNS);
    c.extend(EVENT_COLUMNS);
    c
}

/// The columns of [`export_columns`] that hold integers (the rest hold text, but for
/// `break_prev_hash`, 32 bytes).
pub const INTEGER_COLUMNS: [&str; 5] =
    ["id", "ts", "incident_id", "break_prev_id", "unblock_until"];

/// One chained row as a copy keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    /// The values of [`export_columns`], in that order (NULL where the kind has none).
    pub values: Vec<Value>,
    /// The hash of the row before (or of the retention anchor, or zeros).
    pub prev_hash: [u8; 32],
    /// This row's hash.
    pub hash: [u8; 32],
}

impl LogRow {
    /// The row's id.
    pub fn id(&self) -> i64 {
        match self.values.first() {
            Some(Value::Integer(i)) => *i,
            _ => 0,
        }
    }

    /// The row's kind (`incident`, `ack`, `event`, `break`, `unblock`).
    pub fn kind(&self) -> &str {
        match self.values.get(1) {
            Some(Value::Text(t)) => t,
            _ => "",
        }
    }

    /// The hash the row's values give chained to `prev`: what the store computed when it
    /// wrote the row (the 20 common columns, then those of its kind alone).
    pub fn recompute(&self, prev: &[u8; 32]) -> [u8; 32] {
        let cols = export_columns();
        let extra = extra_columns(self.kind());
        let values = self
            .values
            .iter()
            .zip(&cols)
            .enumerate()
            .filter(|(i, (_, c))| *i < LOG_COLUMNS.len() || extra.contains(c))
            .map(|(_, (v, _))| ValueRef::from(v));
        row_hash(prev, values)
    }
}

/// What an incident's activity is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRow {
    /// The incident's row id.
    pub incident_id: i64,
    /// When the incident opened (unix microseconds; where a copy partitioned by time finds it).
    pub ts: i64,
    /// The last attempt, unix microseconds.
    pub last_seen: i64,
    /// Attempts.
    pub count: u64,
    /// Every `how` it was seen by, sorted.
    pub hows: Vec<String>,
    /// The device's MAC, learned after the incident was opened by address.
    pub mac: Option<String>,
}

impl Store {
    /// Up to `limit` (at most [`MAX_EXPORT`]) chained rows with an id above `after`, in id
    /// order. One read snapshot.
    pub fn log_after(&self, after: i64, limit: u32) -> Result<Vec<LogRow>> {
        let cols = export_columns();
        let sql = format!(
            "SELECT {}, prev_hash, hash FROM log WHERE id > ?1 ORDER BY id LIMIT ?2",
            cols.join(", ")
        );
        let n = cols.len();
        let mut st = self
            .conn
            .prepare_cached(&sql)
            .ctx(&self.path, "read rows")?;
        let rows = st
            .query_map([after, i64::from(limit.min(MAX_EXPORT))], |r| {
                let mut values = Vec::with_capacity(n);
                for i in 0..n {
                    values.push(r.get::<_, Value>(i)?);
                }
                Ok(LogRow {
                    values,
                    prev_hash: r.get(n)?,
                    hash: r.get(n + 1)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .ctx(&self.path, "read rows")?;
        Ok(rows)
    }

    /// The id and hash of the chain's first row now (after the retention anchor), else the
    /// anchor's; `None` for an empty chain.
    pub fn chain_start(&self) -> Result<Option<(i64, [u8; 32])>> {
        let first = self
            .conn
            .query_row("SELECT id, hash FROM log ORDER BY id LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .ctx(&self.path, "read the first row")?;
        match first {
            Some(f) => Ok(Some(f)),
            None => read_anchor(&self.conn).ctx(&self.path, "read the anchor"),
        }
    }

    /// The hash of row `id` (or of the retention anchor when it is the anchor's row).
    pub fn hash_of(&self, id: i64) -> Result<Option<[u8; 32]>> {
        hash_at(&self.conn, id).ctx(&self.path, "read a row's hash")
    }

    /// The activity of the incidents with ids in `[lo, hi]` (rows just exported: their
    /// activity goes with them). One read snapshot.
    pub fn activity_of(&self, lo: i64, hi: i64) -> Result<Vec<ActivityRow>> {
        self.activity_where("a.incident_id BETWEEN ?1 AND ?2", [lo, hi])
    }

    /// The activity of every incident last seen at or after `since` (unix microseconds):
    /// what grew since a copy was made.
    pub fn activity_since(&self, since: i64) -> Result<Vec<ActivityRow>> {
        self.activity_where("a.last_seen >= ?1 AND ?2 = 0", [since, 0])
    }

    fn activity_where(&self, cond: &str, args: [i64; 2]) -> Result<Vec<ActivityRow>> {
        let tx = self.conn.unchecked_transaction().ctx(&self.path, "begin")?;
        let read = || -> rusqlite::Result<Vec<ActivityRow>> {
            let mut out: Vec<ActivityRow> = tx
                .prepare_cached(&format!(
                    "SELECT a.incident_id, l.ts, a.last_seen, a.count
                     FROM activity a JOIN log l ON l.id = a.incident_id
                     WHERE {cond} ORDER BY a.incident_id"
                ))?
                .query_map(args, |r| {
                    Ok(ActivityRow {
                        incident_id: r.get(0)?,
                        ts: r.get(1)?,
                        last_seen: r.get(2)?,
                        count: unclamp(r.get(3)?),
                        hows: Vec::new(),
                        mac: None,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut seen = tx.prepare_cached(
                "SELECT what, value FROM activity_seen
                 WHERE incident_id = ?1 AND what IN ('how', 'mac') ORDER BY what, value",
            )?;
            for a in &mut out {
                let mut rows = seen.query([a.incident_id])?;
                while let Some(r) = rows.next()? {
                    let value: String = r.get(1)?;
                    match r.get_ref(0)? {
                        ValueRef::Text(b"mac") => a.mac = Some(value),
                        _ => a.hows.push(value),
                    }
                }
            }
            Ok(out)
        };
        read().ctx(&self.path, "read activity")
    }

    /// Every usage row of `from_day` (`YYYY-MM-DD`, UTC) and after.
    pub fn usage_from(&self, from_day: &str) -> Result<Vec<super::UsageRow>> {
        check_day(from_day)?;
        self.usage(from_day, "9999-12-31")
    }
}
