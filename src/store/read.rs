//! Reading the store: incidents with their activity and acknowledgements, unblocks, daily
//! usage, the chain head. Values stored as text are parsed back into their types; one this build
//! cannot read is an error naming it, never a guess.

use std::net::IpAddr;

use rusqlite::types::{FromSqlError, Value};
use rusqlite::{params, Connection, OptionalExtension};

use super::chain::hex;
use super::{check_day, unclamp, AckRow, Context, Head, IncidentRow, ListFilter, Store, UsageRow};
use crate::incident::{How, IncidentRecord, IncidentSummary};
use crate::policy::pattern::Pattern;
use crate::policy::unblock::{Device, Unblock};
use crate::policy::{Mac, Mode, Tier, Verdict};
use crate::Result;

impl Store {
    /// Usage from `from_day` to `to_day` (both `YYYY-MM-DD`, inclusive), by day, service and
    /// verdict.
    pub fn usage(&self, from_day: &str, to_day: &str) -> Result<Vec<UsageRow>> {
        check_day(from_day)?;
        check_day(to_day)?;
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT day, service, verdict, count FROM usage WHERE day BETWEEN ?1 AND ?2
                 ORDER BY day, service, verdict",
            )
            .ctx(&self.path, "read usage")?;
        let rows = st
            .query_map(params![from_day, to_day], |r| {
                Ok(UsageRow {
                    day: r.get(0)?,
                    service: r.get(1)?,
                    verdict: parsed(r.get_ref(2)?.as_str()?)?,
                    count: unclamp(r.get(3)?),
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .ctx(&self.path, "read usage")?;
        Ok(rows)
    }

    /// Incidents that pass `filter`, newest first, with their activity and acks.
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<IncidentRow>> {
        let mut sql = String::from("SELECT id FROM log WHERE kind = 'incident'");
        let mut args: Vec<Value> = Vec::new();
        if let Some(since) = filter.since {
            args.push(Value::Integer(since));
            sql.push_str(&format!(" AND ts >= ?{}", args.len()));
        }
        if let Some(until) = filter.until {
            args.push(Value::Integer(until));
            sql.push_str(&format!(" AND ts < ?{}", args.len()));
        }
        if let Some(device) = &filter.device {
            args.push(Value::Text(device.clone()));
            let n = args.len();
            sql.push_str(&format!(
                " AND (client_ip = ?{n} COLLATE NOCASE OR client_mac = ?{n} COLLATE NOCASE
                       OR device = ?{n} COLLATE NOCASE OR label = ?{n} COLLATE NOCASE
                       OR EXISTS (SELECT 1 FROM activity_seen s WHERE s.incident_id = log.id
                                  AND s.what = 'mac' AND s.value = ?{n} COLLATE NOCASE))"
            ));
        }
        if let Some(service) = &filter.service {
            args.push(Value::Text(service.clone()));
            sql.push_str(&format!(" AND service = ?{}", args.len()));
        }
        if filter.unacked_only {
            sql.push_str(
                " AND NOT EXISTS (SELECT 1 FROM log a WHERE a.kind = 'ack' AND a.incident_id = log.id)",
            );
        }
        args.push(Value::Integer(filter.limit.map_or(-1, i64::from)));
        sql.push_str(&format!(" ORDER BY ts DESC, id DESC LIMIT ?{}", args.len()));

        // One snapshot, so a purge or an append between the queries cannot tear the answer.
        let tx = self.conn.unchecked_transaction().ctx(&self.path, "begin")?;
        let ids = tx
            .prepare(&sql)
            .and_then(|mut st| {
                st.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, i64>(0))?
                    .collect::<rusqlite::Result<Vec<i64>>>()
            })
            .ctx(&self.path, "list incidents")?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(row) = read_incident(&tx, id).ctx(&self.path, "read incident")? {
                out.push(row);
            }
        }
        Ok(out)
    }

    /// The incident with row id `id`, or `None` when there is none (or `id` is an ack).
    pub fn get(&self, id: i64) -> Result<Option<IncidentRow>> {
        let tx = self.conn.unchecked_transaction().ctx(&self.path, "begin")?;
        read_incident(&tx, id).ctx(&self.path, "read incident")
    }

    /// Unblocks that end after `ended_after` (unix microseconds), oldest first: those in
    /// force at a time `t` are `unblocks(t)`; a listing passes a time before now to show
    /// the lately expired too. None in a store from before unblocks (schema 1 and 2).
    pub fn unblocks(&self, ended_after: i64) -> Result<Vec<Unblock>> {
        if self.version < 3 {
            return Ok(Vec::new());
        }
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, ts, client_ip, client_mac, device, host, ack_by, ack_note,
                        unblock_until
                 FROM log WHERE kind = 'unblock' AND unblock_until > ?1 ORDER BY id",
            )
            .ctx(&self.path, "read unblocks")?;
        let rows = st
            .query_map([ended_after], |r| {
                let ip = parsed_opt::<IpAddr>(r.get_ref(2)?.as_str_or_null()?)?;
                let mac = parsed_opt::<Mac>(r.get_ref(3)?.as_str_or_null()?)?;
                let name: Option<String> = r.get(4)?;
                let device = match (mac, ip, name) {
                    (Some(m), _, _) => Device::Mac(m),
                    (None, Some(a), _) => Device::Ip(a.to_canonical()),
                    (None, None, Some(n)) => Device::Name(n),
                    (None, None, None) => {
                        return Err(rusqlite::Error::InvalidColumnType(
                            4,
                            "device".into(),
                            rusqlite::types::Type::Null,
                        ))
                    }
                };
                let host = r
                    .get_ref(5)?
                    .as_str_or_null()?
                    .map(|h| Pattern::parse(h).map_err(|e| conversion(h, e)))
                    .transpose()?;
                Ok(Unblock {
                    id: r.get(0)?,
                    ts: r.get(1)?,
                    device,
                    host,
                    by: r.get(6)?,
                    note: r.get(7)?,
                    until: r.get(8)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .ctx(&self.path, "read unblocks")?;
        Ok(rows)
    }

    /// Unblocks in force at `now` (unix microseconds), oldest first.
    pub fn active_unblocks(&self, now: i64) -> Result<Vec<Unblock>> {
        self.unblocks(now)
    }

    /// The newest row of the chain, or `None` when the log is empty.
    pub fn head(&self) -> Result<Option<Head>> {
        self.conn
            .query_row(
                "SELECT id, hash FROM log ORDER BY id DESC LIMIT 1",
                [],
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
}

pub(super) fn read_incident(conn: &Connection, id: i64) -> rusqlite::Result<Option<IncidentRow>> {
    let row = conn
        .prepare_cached(
            "SELECT l.ts, l.client_ip, l.client_mac, l.device, l.label, l.client_group,
                    l.service, l.service_name, l.category, l.tier, l.verdict, l.mode, l.how,
                    l.host, l.rule, a.last_seen, a.count
             FROM log l LEFT JOIN activity a ON a.incident_id = l.id
             WHERE l.id = ?1 AND l.kind = 'incident'",
        )?
        .query_row([id], |r| {
            let incident = record_at(r, 0)?;
            let last_seen = r.get::<_, Option<i64>>(15)?.unwrap_or(incident.ts);
            let count = unclamp(r.get::<_, Option<i64>>(16)?.unwrap_or(1));
            Ok((incident, last_seen, count))
        })
        .optional()?;
    let Some((mut incident, last_seen, count)) = row else {
        return Ok(None);
    };
    let mut hosts = Vec::new();
    let mut hows = Vec::new();
    let mut st = conn.prepare_cached(
        "SELECT what, value FROM activity_seen WHERE incident_id = ?1 ORDER BY what, value",
    )?;
    let mut rows = st.query([id])?;
    while let Some(r) = rows.next()? {
        let value: String = r.get(1)?;
        match r.get_ref(0)?.as_str()? {
            "host" => hosts.push(value),
            // Opened by address, the device's MAC learned later: shown as its MAC.
            "mac" => {
                if incident.client_mac.is_none() {
                    incident.client_mac = value.parse().ok();
                }
            }
            _ => hows.push(value),
        }
    }
    let acks = conn
        .prepare_cached(
            "SELECT id, ts, ack_by, ack_note FROM log
             WHERE kind = 'ack' AND incident_id = ?1 ORDER BY id",
        )?
        .query_map([id], |r| {
            Ok(AckRow {
                id: r.get(0)?,
                incident_id: id,
                ts: r.get(1)?,
                by: r.get(2)?,
                note: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(IncidentRow {
        id,
        summary: IncidentSummary {
            record: incident,
            last_seen,
            count,
            hosts,
            hows,
        },
        acks,
    }))
}

/// The chained facts of an incident from 15 columns of `r` starting at `at`, in this
/// order: ts, client_ip, client_mac, device, label, client_group, service, service_name,
/// category, tier, verdict, mode, how, host, rule.
pub(super) fn record_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<IncidentRecord> {
    let text = |i: usize| -> rusqlite::Result<Option<String>> { r.get(at + i) };
    Ok(IncidentRecord {
        ts: r.get(at)?,
        client_ip: parsed::<IpAddr>(r.get_ref(at + 1)?.as_str()?)?,
        client_mac: parsed_opt::<Mac>(r.get_ref(at + 2)?.as_str_or_null()?)?,
        device: text(3)?,
        label: text(4)?,
        group: text(5)?,
        service: r.get(at + 6)?,
        service_name: r.get(at + 7)?,
        category: text(8)?,
        tier: parsed_opt::<Tier>(r.get_ref(at + 9)?.as_str_or_null()?)?,
        verdict: parsed::<Verdict>(r.get_ref(at + 10)?.as_str()?)?,
        mode: parsed::<Mode>(r.get_ref(at + 11)?.as_str()?)?,
        how: parsed::<How>(r.get_ref(at + 12)?.as_str()?)?,
        host: r.get(at + 13)?,
        rule: r.get(at + 14)?,
    })
}

/// A text column read back into its type; a value this build cannot read is a conversion
/// error naming the value (the row was written by something else).
pub(super) fn parsed<T: std::str::FromStr>(s: &str) -> rusqlite::Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>().map_err(|e| conversion(s, e))
}

fn conversion(s: &str, e: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        Box::new(FromSqlError::Other(format!("{s:?}: {e}").into())),
    )
}

pub(super) fn parsed_opt<T: std::str::FromStr>(s: Option<&str>) -> rusqlite::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    s.map(parsed).transpose()
}
