//! Reading the store as a feed, oldest first by row id: what a roll-up client (the SIEM
//! syslog sender, `crate::fleet`) sends after its cursor. Each incident comes with its row's
//! chain hash, so a copy kept elsewhere can be checked against `aiwarden verify` on the box.
//!
//! Row ids only grow (retention purges a prefix, never the middle), so "every incident with
//! an id above the cursor" is the exact set not yet sent, whatever happened in between.

use super::chain::{hash_at, hex};
use super::read::read_incident;
use super::{Context, IncidentRow, Store};
use crate::Result;

/// The most incidents one [`Store::incidents_after`] call returns.
pub const MAX_FEED: u32 = 10_000;

/// An incident as a feed hands it out: the row and its chain hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chained {
    /// The incident, its activity and acks as they are now.
    pub row: IncidentRow,
    /// The row's `hash` in the chain, lowercase hex.
    pub hash: String,
}

impl Store {
    /// The chain hash of row `id` (lowercase hex), the retention anchor's when `id` is the
    /// last row purged, `None` when the store holds neither: a cursor kept elsewhere checks
    /// with it that it still points into this chain.
    pub fn row_hash(&self, id: i64) -> Result<Option<String>> {
        let h = hash_at(&self.conn, id).ctx(&self.path, "read a row's hash")?;
        Ok(h.map(|h| hex(&h)))
    }

    /// How many incidents have a row id above `after`: what a feed has not sent yet.
    pub fn incidents_count_after(&self, after: i64) -> Result<u64> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM log WHERE kind = 'incident' AND id > ?1")
            .and_then(|mut st| st.query_row([after], |r| r.get(0)))
            .ctx(&self.path, "count incidents after a cursor")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Up to `limit` (at most [`MAX_FEED`]) incidents with a row id above `after`, oldest
    /// (lowest id) first, each with its chain hash. One read snapshot, so a purge or an
    /// append between the queries cannot tear the answer.
    pub fn incidents_after(&self, after: i64, limit: u32) -> Result<Vec<Chained>> {
        let tx = self.conn.unchecked_transaction().ctx(&self.path, "begin")?;
        let ids = tx
            .prepare_cached(
                "SELECT id, hash FROM log WHERE kind = 'incident' AND id > ?1
                 ORDER BY id LIMIT ?2",
            )
            .and_then(|mut st| {
                st.query_map([after, i64::from(limit.min(MAX_FEED))], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .ctx(&self.path, "read incidents after a cursor")?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, hash) in ids {
            if let Some(row) = read_incident(&tx, id).ctx(&self.path, "read incident")? {
                out.push(Chained {
                    row,
                    hash: hex(&hash),
                });
            }
        }
        Ok(out)
    }
}
