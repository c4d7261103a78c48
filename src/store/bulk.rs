//! The bulk path: many incidents appended in one transaction with statements prepared once
//! and a large page cache, for generators and imports (`examples/gen_store.rs` writes a
//! million in a few seconds). Each row is chained exactly as [`Store::append_incidents`]
//! chains it and gets the same activity, so the result verifies like any store.

use rusqlite::types::{ToSql, Value, ValueRef};
use rusqlite::TransactionBehavior;

use super::chain::{chain_head, incident_values, row_hash, LOG_COLUMNS};
use super::write::guard;
use super::{check_incident, Context, Store};
use crate::incident::IncidentRecord;
use crate::Result;

/// The page cache while a bulk append runs, KiB (SQLite's default is 2,000).
const BULK_CACHE_KIB: i64 = 256 * 1024;

impl Store {
    /// Appends every incident of `incidents` in one transaction, in order, each chained and
    /// with an activity of count 1, its host and its `how` (as [`Store::append_incidents`]
    /// does), and returns how many. All or none: a refused incident (an allowed one) or a
    /// failure rolls the whole lot back.
    pub fn append_bulk(
        &mut self,
        incidents: impl IntoIterator<Item = IncidentRecord>,
    ) -> Result<u64> {
        self.check_file()?;
        let path = self.path.clone();
        // Every row refers only to rows written just before it in the same transaction:
        // the foreign key checks (and the statement journals they need) are spent on
        // nothing here. Restored whatever happens.
        self.conn
            .pragma_update(None, "cache_size", -BULK_CACHE_KIB)
            .and_then(|()| self.conn.pragma_update(None, "foreign_keys", false))
            .ctx(&path, "set up a bulk append")?;
        let out = self.bulk(incidents);
        let _ = self.conn.pragma_update(None, "cache_size", -2000);
        let _ = self.conn.pragma_update(None, "foreign_keys", true);
        if out.as_ref().is_ok_and(|n| *n > 0) {
            self.after_commit();
        }
        out
    }

    fn bulk(&mut self, incidents: impl IntoIterator<Item = IncidentRecord>) -> Result<u64> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(&path, "begin")?;
        guard(&path, &tx, self.known)?;
        let (mut id, mut prev) = chain_head(&tx).ctx(&path, "read the chain head")?;
        let mut n = 0u64;
        let mut chunk: Vec<(Vec<Value>, [u8; 32], IncidentRecord)> = Vec::with_capacity(ROWS);
        let mut it = incidents.into_iter().peekable();
        while let Some(inc) = it.next() {
            check_incident(&inc)?;
            let row: Vec<Value> = incident_values(id, &inc);
            let hash = row_hash(&prev, row.iter().map(ValueRef::from));
            chunk.push((row, prev, inc));
            prev = hash;
            id += 1;
            n += 1;
            if chunk.len() == ROWS || it.peek().is_none() {
                write_chunk(&tx, &chunk, &prev).ctx(&path, "append incidents")?;
                chunk.clear();
            }
        }
        tx.commit().ctx(&path, "commit")?;
        Ok(n)
    }
}

/// Incidents written by one statement of each kind: a statement's fixed cost, paid once
/// for many rows, is most of what a row costs otherwise.
const ROWS: usize = 32;

/// `INSERT INTO table (cols) VALUES (?, ...), ...` for `rows` rows.
fn insert_sql(table: &str, cols: &[&str], rows: usize) -> String {
    let one = format!("({})", vec!["?"; cols.len()].join(", "));
    format!(
        "INSERT INTO {table} ({}) VALUES {}",
        cols.join(", "),
        vec![one; rows].join(", ")
    )
}

/// Writes `chunk` (each row's values, the hash it chains to, the incident), the last
/// row's hash being `last`: its log rows, activity and the sets seen.
fn write_chunk(
    conn: &rusqlite::Connection,
    chunk: &[(Vec<Value>, [u8; 32], IncidentRecord)],
    last: &[u8; 32],
) -> rusqlite::Result<()> {
    let mut cols: Vec<&str> = LOG_COLUMNS.to_vec();
    cols.extend(["prev_hash", "hash"]);
    let mut args: Vec<&dyn ToSql> = Vec::with_capacity(chunk.len() * cols.len());
    for (i, (row, prev, _)) in chunk.iter().enumerate() {
        args.extend(row.iter().map(|v| v as &dyn ToSql));
        args.push(prev);
        // A row's hash is the next row's prev_hash.
        args.push(match chunk.get(i + 1) {
            Some((_, next_prev, _)) => next_prev,
            None => last,
        });
    }
    conn.prepare_cached(&insert_sql("log", &cols, chunk.len()))?
        .execute(args.as_slice())?;
    let ids: Vec<&Value> = chunk.iter().map(|(row, _, _)| &row[0]).collect();
    let mut args: Vec<&dyn ToSql> = Vec::with_capacity(chunk.len() * 2);
    for ((_, _, inc), id) in chunk.iter().zip(&ids) {
        args.push(*id);
        args.push(&inc.ts);
    }
    let one = "(?, ?, 1)";
    conn.prepare_cached(&format!(
        "INSERT INTO activity (incident_id, last_seen, count) VALUES {}",
        vec![one; chunk.len()].join(", ")
    ))?
    .execute(args.as_slice())?;
    let hows: Vec<String> = chunk
        .iter()
        .map(|(_, _, inc)| inc.how.to_string())
        .collect();
    let mut args: Vec<&dyn ToSql> = Vec::with_capacity(chunk.len() * 4);
    for (((_, _, inc), id), how) in chunk.iter().zip(&ids).zip(&hows) {
        args.push(*id);
        args.push(&inc.host);
        args.push(*id);
        args.push(how);
    }
    conn.prepare_cached(&format!(
        "INSERT OR IGNORE INTO activity_seen (incident_id, what, value) VALUES {}",
        vec!["(?, 'host', ?), (?, 'how', ?)"; chunk.len()].join(", ")
    ))?
    .execute(args.as_slice())?;
    Ok(())
}
