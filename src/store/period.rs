//! Reading a period for reports: every incident opened in it as a stream (a million
//! incidents are read in three ordered scans merged here, never one query per incident),
//! the acknowledgements made in it, and the chain rows a report prints as evidence.

use std::net::IpAddr;

use rusqlite::{params, OptionalExtension};

use super::chain::{hex, read_anchor};
use super::read::{parsed, parsed_opt, read_incident};
use super::{unclamp, AckRow, Context, Head, IncidentRow, Store};
use crate::incident::{How, IncidentRecord, IncidentSummary};
use crate::policy::{Mac, Mode, Tier, Verdict};
use crate::Result;

/// Where a row named by an earlier report stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowStatus {
    /// The row is there with the same hash.
    Present,
    /// The row is there with another hash: history was rewritten.
    Changed,
    /// Retention purged it (it is at or before the anchor).
    Purged,
    /// No such row.
    Missing,
}

impl Store {
    /// Calls `f` with every incident opened in `[from, to)` (unix microseconds), in id
    /// order, with its activity and acknowledgements. One read snapshot.
    pub fn scan_period(&self, from: i64, to: i64, f: impl FnMut(IncidentRow)) -> Result<()> {
        match self.period_ids(from, to)? {
            Some((lo, hi)) => self.scan_ids(from, to, lo, hi, f),
            None => Ok(()),
        }
    }

    /// The lowest and highest row ids of incidents opened in `[from, to)`, if any: the
    /// range [`Store::scan_ids`] splits between connections.
    pub fn period_ids(&self, from: i64, to: i64) -> Result<Option<(i64, i64)>> {
        let bounds: (Option<i64>, Option<i64>) = self
            .conn
            .query_row(
                "SELECT min(id), max(id) FROM log
                 WHERE kind = 'incident' AND ts >= ?1 AND ts < ?2",
                params![from, to],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ctx(&self.path, "read a period")?;
        Ok(bounds.0.zip(bounds.1))
    }

    /// [`Store::scan_period`] of the incidents with ids in `[lo, hi]` only.
    pub fn scan_ids(
        &self,
        from: i64,
        to: i64,
        lo: i64,
        hi: i64,
        mut f: impl FnMut(IncidentRow),
    ) -> Result<()> {
        let tx = self.conn.unchecked_transaction().ctx(&self.path, "begin")?;
        let mut scan = || -> rusqlite::Result<()> {
            let mut main = tx.prepare(
                "SELECT l.id, l.ts, l.client_ip, l.client_mac, l.device, l.label,
                        l.client_group, l.service, l.service_name, l.category, l.tier,
                        l.verdict, l.mode, l.how, l.host, l.rule, a.last_seen, a.count
                 FROM log l LEFT JOIN activity a ON a.incident_id = l.id
                 WHERE l.id BETWEEN ?1 AND ?2 AND l.kind = 'incident'
                   AND l.ts >= ?3 AND l.ts < ?4
                 ORDER BY l.id",
            )?;
            let mut seen_st = tx.prepare(
                "SELECT incident_id, what, value FROM activity_seen
                 WHERE incident_id BETWEEN ?1 AND ?2 ORDER BY incident_id, what, value",
            )?;
            let mut acks_st = tx.prepare(
                "SELECT incident_id, id, ts, ack_by, ack_note FROM log
                 WHERE kind = 'ack' AND incident_id BETWEEN ?1 AND ?2
                 ORDER BY incident_id, id",
            )?;
            let mut seen = seen_st.query(params![lo, hi])?;
            let mut acks = acks_st.query(params![lo, hi])?;
            let mut seen_next: Option<(i64, String, String)> = next_seen(&mut seen)?;
            let mut ack_next: Option<AckRow> = next_ack(&mut acks)?;
            let mut rows = main.query(params![lo, hi, from, to])?;
            while let Some(r) = rows.next()? {
                let id: i64 = r.get(0)?;
                let mut record = IncidentRecord {
                    ts: r.get(1)?,
                    client_ip: parsed::<IpAddr>(r.get_ref(2)?.as_str()?)?,
                    client_mac: parsed_opt::<Mac>(r.get_ref(3)?.as_str_or_null()?)?,
                    device: r.get(4)?,
                    label: r.get(5)?,
                    group: r.get(6)?,
                    service: r.get(7)?,
                    service_name: r.get(8)?,
                    category: r.get(9)?,
                    tier: parsed_opt::<Tier>(r.get_ref(10)?.as_str_or_null()?)?,
                    verdict: parsed::<Verdict>(r.get_ref(11)?.as_str()?)?,
                    mode: parsed::<Mode>(r.get_ref(12)?.as_str()?)?,
                    how: parsed::<How>(r.get_ref(13)?.as_str()?)?,
                    host: r.get(14)?,
                    rule: r.get(15)?,
                };
                let last_seen = r.get::<_, Option<i64>>(16)?.unwrap_or(record.ts);
                let count = unclamp(r.get::<_, Option<i64>>(17)?.unwrap_or(1));
                let (mut hosts, mut hows) = (Vec::new(), Vec::new());
                while let Some((sid, what, value)) = seen_next.take() {
                    if sid > id {
                        seen_next = Some((sid, what, value));
                        break;
                    }
                    if sid == id {
                        match what.as_str() {
                            "host" => hosts.push(value),
                            "mac" => {
                                if record.client_mac.is_none() {
                                    record.client_mac = value.parse().ok();
                                }
                            }
                            _ => hows.push(value),
                        }
                    }
                    seen_next = next_seen(&mut seen)?;
                }
                let mut row_acks = Vec::new();
                while let Some(a) = ack_next.take() {
                    if a.incident_id > id {
                        ack_next = Some(a);
                        break;
                    }
                    if a.incident_id == id {
                        row_acks.push(a);
                    }
                    ack_next = next_ack(&mut acks)?;
                }
                f(IncidentRow {
                    id,
                    summary: IncidentSummary {
                        record,
                        last_seen,
                        count,
                        hosts,
                        hows,
                    },
                    acks: row_acks,
                });
            }
            Ok(())
        };
        scan().ctx(&self.path, "read a period")
    }

    /// Readies a read-only connection for long scans: the file mapped (no copy per page
    /// read) and a larger page cache. Memory stays bounded: the map is the kernel's page
    /// cache, the cache 64 MiB.
    pub fn for_scans(&self) -> Result<()> {
        self.conn
            .execute_batch("PRAGMA cache_size = -16384;")
            .ctx(&self.path, "set up for a scan")
    }

    /// How many incidents were opened in `[from, to)`.
    pub fn count_incidents(&self, from: i64, to: i64) -> Result<u64> {
        self.conn
            .query_row(
                "SELECT count(*) FROM log WHERE kind = 'incident' AND ts >= ?1 AND ts < ?2",
                params![from, to],
                |r| r.get::<_, i64>(0),
            )
            .map(unclamp)
            .ctx(&self.path, "count incidents")
    }

    /// Calls `f` with every acknowledgement made in `[from, to)` and its incident.
    pub fn acks_between(
        &self,
        from: i64,
        to: i64,
        mut f: impl FnMut(&IncidentRow, &AckRow),
    ) -> Result<()> {
        let tx = self.conn.unchecked_transaction().ctx(&self.path, "begin")?;
        let acks = tx
            .prepare(
                "SELECT id, incident_id, ts, ack_by, ack_note FROM log
                 WHERE kind = 'ack' AND ts >= ?1 AND ts < ?2 ORDER BY ts, id",
            )
            .and_then(|mut st| {
                st.query_map(params![from, to], |r| {
                    Ok(AckRow {
                        id: r.get(0)?,
                        incident_id: r.get(1)?,
                        ts: r.get(2)?,
                        by: r.get(3)?,
                        note: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .ctx(&self.path, "read acknowledgements")?;
        for a in &acks {
            if let Some(row) = read_incident(&tx, a.incident_id).ctx(&self.path, "read incident")? {
                f(&row, a);
            }
        }
        Ok(())
    }

    /// The newest chain row written before `to` (unix microseconds): the head a report of
    /// a period ending at `to` prints.
    pub fn head_before(&self, to: i64) -> Result<Option<Head>> {
        self.conn
            .query_row(
                "SELECT id, hash FROM log WHERE id = (SELECT max(id) FROM log WHERE ts < ?1)",
                [to],
                |r| {
                    Ok(Head {
                        id: r.get(0)?,
                        hash: hex(&r.get::<_, Vec<u8>>(1)?),
                    })
                },
            )
            .optional()
            .ctx(&self.path, "read the chain head")
    }

    /// Whether the chain still holds row `head.id` with hash `head.hash`.
    pub fn row_status(&self, head: &Head) -> Result<RowStatus> {
        let hash: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT hash FROM log WHERE id = ?1", [head.id], |r| {
                r.get(0)
            })
            .optional()
            .ctx(&self.path, "read a chain row")?;
        if let Some(h) = hash {
            return Ok(if hex(&h).eq_ignore_ascii_case(&head.hash) {
                RowStatus::Present
            } else {
                RowStatus::Changed
            });
        }
        let anchor = read_anchor(&self.conn).ctx(&self.path, "read the anchor")?;
        Ok(match anchor {
            Some((last, _)) if head.id <= last => RowStatus::Purged,
            _ => RowStatus::Missing,
        })
    }
}

fn next_seen(rows: &mut rusqlite::Rows<'_>) -> rusqlite::Result<Option<(i64, String, String)>> {
    match rows.next()? {
        Some(r) => Ok(Some((r.get(0)?, r.get(1)?, r.get(2)?))),
        None => Ok(None),
    }
}

fn next_ack(rows: &mut rusqlite::Rows<'_>) -> rusqlite::Result<Option<AckRow>> {
    match rows.next()? {
        Some(r) => Ok(Some(AckRow {
            incident_id: r.get(0)?,
            id: r.get(1)?,
            ts: r.get(2)?,
            by: r.get(3)?,
            note: r.get(4)?,
        })),
        None => Ok(None),
    }
}
