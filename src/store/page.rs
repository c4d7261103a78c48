//! Reading the store a page at a time, as the web console does: keyset pages of incidents
//! newest first (one query for the page, one for its acks, whatever the store's size), and
//! the figures of a period for its dashboard.
//!
//! A page is addressed by the `(ts, id)` of the last row of the page before it, not by an
//! offset: the index `log_kind_ts` (`kind, ts`, and the rowid) finds where it starts at once,
//! so the thousandth page costs what the first does.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OptionalExtension};
use serde::Serialize;

use super::read::record_at;
use super::{unclamp, AckRow, Context, IncidentRow, Store};
use crate::incident::IncidentSummary;
use crate::Result;

/// The most rows one page holds.
pub const MAX_PAGE: u32 = 500;

/// Follow-up status of an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AckStatus {
    /// Nobody acknowledged it yet.
    Open,
    /// Acknowledged at least once.
    Acknowledged,
}

/// Which incidents [`Store::page`] returns. The default is every incident.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageFilter {
    /// First seen at or after, unix microseconds.
    pub since: Option<i64>,
    /// First seen before, unix microseconds.
    pub until: Option<i64>,
    /// Equal (ASCII case-insensitive) to the inventory label or DHCP host name, and unless
    /// `names_only`, to the client IP or MAC.
    pub device: Option<String>,
    /// `device` matches names only, never an address (a viewer may not find a device by
    /// its address any more than see it).
    pub names_only: bool,
    /// Catalog service id.
    pub service: Option<String>,
    /// Follow-up status.
    pub status: Option<AckStatus>,
}

/// Incidents of a service in a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceCount {
    /// Catalog service id.
    pub service: String,
    /// Its name.
    pub name: String,
    /// Incidents.
    pub incidents: u64,
    /// Of which blocked.
    pub blocked: u64,
}

/// Incidents of a device in a period. A device is told by its label, else its DHCP host
/// name, else its MAC, else its address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceCount {
    /// The inventory label.
    pub label: Option<String>,
    /// The DHCP host name.
    pub device: Option<String>,
    /// The MAC (one seen, for a device with a label or name).
    pub mac: Option<String>,
    /// The address (one seen).
    pub ip: String,
    /// Incidents.
    pub incidents: u64,
    /// Of which nobody acknowledged yet.
    pub open: u64,
}

/// The figures of a period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Incidents opened.
    pub incidents: u64,
    /// Of which blocked.
    pub blocked: u64,
    /// Of which flagged (monitor mode, or a flag rule).
    pub flagged: u64,
    /// Attempts: observations counted in those incidents.
    pub attempts: u64,
    /// Distinct devices.
    pub devices: u64,
    /// Distinct services.
    pub services: u64,
    /// Incidents nobody acknowledged yet.
    pub open: u64,
    /// Services with the most incidents, most first.
    pub top_services: Vec<ServiceCount>,
    /// Devices with the most incidents, most first.
    pub top_devices: Vec<DeviceCount>,
}

/// The columns of a page row: the 15 of [`record_at`], then activity and its sets.
const PAGE_COLUMNS: &str = "l.ts, l.client_ip, l.client_mac, l.device, l.label, l.client_group,
    l.service, l.service_name, l.category, l.tier, l.verdict, l.mode, l.how, l.host, l.rule,
    l.id, a.last_seen, a.count,
    (SELECT group_concat(value, char(10)) FROM activity_seen s
      WHERE s.incident_id = l.id AND s.what = 'host'),
    (SELECT group_concat(value, char(10)) FROM activity_seen s
      WHERE s.incident_id = l.id AND s.what = 'how'),
    (SELECT value FROM activity_seen s WHERE s.incident_id = l.id AND s.what = 'mac' LIMIT 1)";

/// The device a row counts for in a tally.
const DEVICE_KEY: &str = "coalesce(l.label, l.device, l.client_mac, l.client_ip)";

/// `WHERE` terms and their arguments for `filter` (on `log l`).
pub(super) fn conditions(filter: &PageFilter, args: &mut Vec<Value>) -> String {
    let mut sql = range(filter, None, "l", args);
    let matching = matches(filter, args);
    if !matching.is_empty() {
        sql.push_str(" AND ");
        sql.push_str(&matching);
    }
    sql
}

/// The terms an index walk answers: the kind, the period, and `before` (on `log <t>`).
fn range(
    filter: &PageFilter,
    before: Option<(i64, i64)>,
    t: &str,
    args: &mut Vec<Value>,
) -> String {
    let mut sql = format!("{t}.kind = 'incident'");
    if let Some(since) = filter.since {
        args.push(Value::Integer(since));
        sql.push_str(&format!(" AND {t}.ts >= ?{}", args.len()));
    }
    if let Some(until) = filter.until {
        args.push(Value::Integer(until));
        sql.push_str(&format!(" AND {t}.ts < ?{}", args.len()));
    }
    if let Some((ts, id)) = before {
        args.push(Value::Integer(ts));
        let a = args.len();
        args.push(Value::Integer(id));
        let b = args.len();
        // `ts <= ?` alone bounds the index seek; the OR picks up the rest of a tie.
        sql.push_str(&format!(
            " AND {t}.ts <= ?{a} AND ({t}.ts < ?{a} OR {t}.id < ?{b})"
        ));
    }
    sql
}

/// The terms that need the row itself (on `log l`): device, service, status. Empty for none.
fn matches(filter: &PageFilter, args: &mut Vec<Value>) -> String {
    let mut terms: Vec<String> = Vec::new();
    if let Some(device) = filter.device.as_deref().map(str::trim) {
        args.push(Value::Text(device.to_string()));
        let n = args.len();
        terms.push(if filter.names_only {
            format!("(l.label = ?{n} COLLATE NOCASE OR l.device = ?{n} COLLATE NOCASE)")
        } else {
            format!(
                "(l.label = ?{n} COLLATE NOCASE OR l.device = ?{n} COLLATE NOCASE
                  OR l.client_ip = ?{n} COLLATE NOCASE OR l.client_mac = ?{n} COLLATE NOCASE
                  OR EXISTS (SELECT 1 FROM activity_seen s WHERE s.incident_id = l.id
                             AND s.what = 'mac' AND s.value = ?{n} COLLATE NOCASE))"
            )
        });
    }
    if let Some(service) = &filter.service {
        args.push(Value::Text(service.clone()));
        terms.push(format!("l.service = ?{}", args.len()));
    }
    let acked = "EXISTS (SELECT 1 FROM log k WHERE k.kind = 'ack' AND k.incident_id = l.id)";
    match filter.status {
        Some(AckStatus::Open) => terms.push(format!("NOT {acked}")),
        Some(AckStatus::Acknowledged) => terms.push(acked.to_string()),
        None => {}
    }
    terms.join(" AND ")
}

/// A page of [`Store::page_within`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The incidents, newest first.
    pub rows: Vec<IncidentRow>,
    /// Where the next page starts (its `before`), `None` at the end.
    pub next: Option<(i64, i64)>,
}

impl Store {
    /// Up to `limit` (at most [`MAX_PAGE`]) incidents that pass `filter`, newest first
    /// (by first seen, then id), starting after `before`, the `(ts, id)` of the last row of
    /// the page before (`None`: the first page). Each comes with its activity and acks, read
    /// in two queries for the whole page.
    pub fn page(
        &self,
        filter: &PageFilter,
        before: Option<(i64, i64)>,
        limit: u32,
    ) -> Result<Vec<IncidentRow>> {
        let mut args = Vec::new();
        let mut cond = range(filter, before, "l", &mut args);
        let matching = matches(filter, &mut args);
        if !matching.is_empty() {
            cond = format!("{cond} AND {matching}");
        }
        args.push(Value::Integer(i64::from(limit.clamp(1, MAX_PAGE))));
        let sql = format!(
            "SELECT {PAGE_COLUMNS} FROM log l LEFT JOIN activity a ON a.incident_id = l.id
             WHERE {cond} ORDER BY l.ts DESC, l.id DESC LIMIT ?{}",
            args.len()
        );
        // One snapshot, so an append or a purge between the two queries cannot tear a page.
        let tx = self.conn.unchecked_transaction().ctx(&self.path, "begin")?;
        let mut rows = read_page(&tx, &sql, args).ctx(&self.path, "read a page")?;
        let acks = read_acks(&tx, rows.iter().map(|r| r.id)).ctx(&self.path, "read acks")?;
        for row in &mut rows {
            if let Some(a) = acks.get(&row.id) {
                row.acks.clone_from(a);
            }
        }
        Ok(rows)
    }

    /// Like [`Store::page`], but looks at no more than `scan` incidents (from `before`, in
    /// the period) for ones that pass the device, service and status filters, so a filter
    /// few incidents pass costs a bounded walk, not the whole store. The page may then hold
    /// fewer than `limit` rows with more to come: `next` says where to go on.
    pub fn page_within(
        &self,
        filter: &PageFilter,
        before: Option<(i64, i64)>,
        limit: u32,
        scan: u32,
    ) -> Result<Page> {
        let limit = limit.clamp(1, MAX_PAGE);
        let scan = scan.max(limit);
        if matches(filter, &mut Vec::new()).is_empty() {
            // Every row in the period passes: the plain walk stops at `limit` by itself.
            let rows = self.page(filter, before, limit)?;
            let next = (rows.len() == limit as usize)
                .then(|| rows.last().map(|r| (r.summary.record.ts, r.id)))
                .flatten();
            return Ok(Page { rows, next });
        }
        let mut args = Vec::new();
        let window = range(filter, before, "w", &mut args);
        args.push(Value::Integer(i64::from(scan)));
        let n_scan = args.len();
        let matching = matches(filter, &mut args);
        args.push(Value::Integer(i64::from(limit)));
        let n_limit = args.len();
        let sql = format!(
            "SELECT {PAGE_COLUMNS}
             FROM (SELECT w.id AS id FROM log w WHERE {window}
                   ORDER BY w.ts DESC, w.id DESC LIMIT ?{n_scan}) win
             JOIN log l ON l.id = win.id
             LEFT JOIN activity a ON a.incident_id = l.id
             {} ORDER BY l.ts DESC, l.id DESC LIMIT ?{n_limit}",
            if matching.is_empty() {
                String::new()
            } else {
                format!("WHERE {matching}")
            }
        );
        let mut end_args = Vec::new();
        let end_window = range(filter, before, "w", &mut end_args);
        end_args.push(Value::Integer(i64::from(scan) - 1));
        let end_sql = format!(
            "SELECT w.ts, w.id FROM log w WHERE {end_window}
             ORDER BY w.ts DESC, w.id DESC LIMIT 1 OFFSET ?{}",
            end_args.len()
        );
        let tx = self.conn.unchecked_transaction().ctx(&self.path, "begin")?;
        let mut rows = read_page(&tx, &sql, args).ctx(&self.path, "read a page")?;
        let acks = read_acks(&tx, rows.iter().map(|r| r.id)).ctx(&self.path, "read acks")?;
        for row in &mut rows {
            if let Some(a) = acks.get(&row.id) {
                row.acks.clone_from(a);
            }
        }
        let next = if rows.len() == limit as usize {
            rows.last().map(|r| (r.summary.record.ts, r.id))
        } else {
            // The window was full: the incidents beyond it are still to be looked at.
            tx.prepare_cached(&end_sql)
                .and_then(|mut st| {
                    st.query_row(params_from_iter(end_args), |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .ctx(&self.path, "read a page")?
        };
        Ok(Page { rows, next })
    }

    /// How many incidents pass `filter`.
    pub fn count(&self, filter: &PageFilter) -> Result<u64> {
        let mut args = Vec::new();
        let cond = conditions(filter, &mut args);
        self.conn
            .prepare_cached(&format!("SELECT count(*) FROM log l WHERE {cond}"))
            .and_then(|mut st| st.query_row(params_from_iter(args), |r| r.get::<_, i64>(0)))
            .map(unclamp)
            .ctx(&self.path, "count incidents")
    }

    /// The figures of the incidents first seen in `since <= ts < until`, with the `top`
    /// services and devices.
    pub fn tally(&self, since: i64, until: i64, top: u32) -> Result<Tally> {
        let tx = self.conn.unchecked_transaction().ctx(&self.path, "begin")?;
        let open = "NOT EXISTS (SELECT 1 FROM log k WHERE k.kind = 'ack' AND k.incident_id = l.id)";
        let range = "l.kind = 'incident' AND l.ts >= ?1 AND l.ts < ?2";
        let mut t = tx
            .query_row(
                &format!(
                    "SELECT count(*), coalesce(sum(l.verdict = 'block'), 0),
                            coalesce(sum(l.verdict = 'flag'), 0), coalesce(sum(a.count), 0),
                            count(DISTINCT {DEVICE_KEY}), count(DISTINCT l.service),
                            coalesce(sum({open}), 0)
                     FROM log l LEFT JOIN activity a ON a.incident_id = l.id WHERE {range}"
                ),
                [since, until],
                |r| {
                    let n = |i| r.get::<_, i64>(i).map(unclamp);
                    Ok(Tally {
                        incidents: n(0)?,
                        blocked: n(1)?,
                        flagged: n(2)?,
                        attempts: n(3)?,
                        devices: n(4)?,
                        services: n(5)?,
                        open: n(6)?,
                        top_services: Vec::new(),
                        top_devices: Vec::new(),
                    })
                },
            )
            .ctx(&self.path, "tally")?;
        let top = i64::from(top);
        t.top_services = tx
            .prepare(&format!(
                "SELECT l.service, max(l.service_name), count(*),
                        coalesce(sum(l.verdict = 'block'), 0)
                 FROM log l WHERE {range} GROUP BY l.service
                 ORDER BY count(*) DESC, l.service LIMIT ?3"
            ))
            .and_then(|mut st| {
                st.query_map([since, until, top], |r| {
                    Ok(ServiceCount {
                        service: r.get(0)?,
                        name: r.get(1)?,
                        incidents: unclamp(r.get(2)?),
                        blocked: unclamp(r.get(3)?),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .ctx(&self.path, "tally services")?;
        t.top_devices = tx
            .prepare(&format!(
                "SELECT max(l.label), max(l.device), max(l.client_mac), max(l.client_ip),
                        count(*), coalesce(sum({open}), 0)
                 FROM log l WHERE {range} GROUP BY {DEVICE_KEY}
                 ORDER BY count(*) DESC, {DEVICE_KEY} LIMIT ?3"
            ))
            .and_then(|mut st| {
                st.query_map([since, until, top], |r| {
                    Ok(DeviceCount {
                        label: r.get(0)?,
                        device: r.get(1)?,
                        mac: r.get(2)?,
                        ip: r.get(3)?,
                        incidents: unclamp(r.get(4)?),
                        open: unclamp(r.get(5)?),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .ctx(&self.path, "tally devices")?;
        Ok(t)
    }

    /// Incidents first seen in each of the periods `[bounds[i], bounds[i + 1])` (days of a
    /// week in the clinic's time zone, say): one count per consecutive pair.
    pub fn counts_between(&self, bounds: &[i64]) -> Result<Vec<u64>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM log WHERE kind = 'incident' AND ts >= ?1 AND ts < ?2",
            )
            .ctx(&self.path, "count incidents")?;
        bounds
            .windows(2)
            .map(|w| {
                st.query_row([w[0], w[1]], |r| r.get::<_, i64>(0))
                    .map(unclamp)
                    .ctx(&self.path, "count incidents")
            })
            .collect()
    }
}

fn read_page(conn: &Connection, sql: &str, args: Vec<Value>) -> rusqlite::Result<Vec<IncidentRow>> {
    let mut st = conn.prepare_cached(sql)?;
    let rows = st.query_map(params_from_iter(args), |r| {
        let mut record = record_at(r, 0)?;
        let lines = |i: usize| -> rusqlite::Result<Vec<String>> {
            Ok(r.get::<_, Option<String>>(i)?
                .map(|s| s.split('\n').map(str::to_string).collect())
                .unwrap_or_default())
        };
        let mut hosts = lines(18)?;
        let mut hows = lines(19)?;
        hosts.sort();
        hows.sort();
        // Opened by address, the device's MAC learned later: shown as its MAC.
        if record.client_mac.is_none() {
            record.client_mac = r.get::<_, Option<String>>(20)?.and_then(|m| m.parse().ok());
        }
        let last_seen = r.get::<_, Option<i64>>(16)?.unwrap_or(record.ts);
        Ok(IncidentRow {
            id: r.get(15)?,
            summary: IncidentSummary {
                record,
                last_seen,
                count: unclamp(r.get::<_, Option<i64>>(17)?.unwrap_or(1)),
                hosts,
                hows,
            },
            acks: Vec::new(),
        })
    })?;
    rows.collect()
}

/// The acks of the incidents `ids`, by incident, oldest first.
fn read_acks(
    conn: &Connection,
    ids: impl Iterator<Item = i64>,
) -> rusqlite::Result<HashMap<i64, Vec<AckRow>>> {
    let ids: Vec<Value> = ids.map(Value::Integer).collect();
    let mut out: HashMap<i64, Vec<AckRow>> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let marks = (1..=ids.len())
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut st = conn.prepare(&format!(
        "SELECT id, incident_id, ts, ack_by, ack_note FROM log
         WHERE kind = 'ack' AND incident_id IN ({marks}) ORDER BY id"
    ))?;
    let mut rows = st.query(params_from_iter(ids))?;
    while let Some(r) = rows.next()? {
        let ack = AckRow {
            id: r.get(0)?,
            incident_id: r.get(1)?,
            ts: r.get(2)?,
            by: r.get(3)?,
            note: r.get(4)?,
        };
        out.entry(ack.incident_id).or_default().push(ack);
    }
    Ok(out)
}
