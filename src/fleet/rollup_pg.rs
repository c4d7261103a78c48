//! The central roll-up's shell: copies a box's chained rows, their activity, the daily
//! usage and the box's health into the MSP's PostgreSQL ([`push`]), walks each site's
//! copied chain ([`verify`]) and reads the fleet report's groups ([`report`]). Every call
//! is blocking: it runs a small tokio runtime of its own, so the daemon's thread, the CLI
//! and the tests call it alike.
//!
//! The copy's position is the database's own: each batch commits its rows and the site's
//! head (`aiwarden_site.head_id`, `head_hash`) in one transaction, and the next push starts
//! after the head once the box's store still holds that row with that hash. Nothing is
//! kept on the box, so a box offline for days, or whose process died between a commit and
//! anything else, sends what the copy lacks and nothing twice (the primary key refuses a
//! row already there, `ON CONFLICT DO NOTHING`). Rows go by binary COPY into a temporary
//! table first, then into the monthly partition.
//!
//! TLS is required and the server's certificate checked (hostname and chain, against the
//! configured CA file or the system's bundle); the password comes from a 0600 file.
//!
//! A long file (~750 lines): the push, the verify walk, the report query and the daemon's
//! thread share the connection, the runtime and the row encoding, and each is one
//! sequence of SQL best read top to bottom.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::time::Duration;

use futures_util::TryStreamExt;
use rusqlite::types::Value;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config as PgConfig};

use super::rollup::{
    copy_columns, epoch_of, hex, is_integer, month_partition, ChainCheck, FleetReport, FleetTally,
    Group, Walk, SCHEMA, SCHEMA_LOCK,
};
use crate::error::{Error, Result};
use crate::store::{export_columns, ActivityRow, LogRow, Store};

/// Where and how to reach the central database.
#[derive(Debug, Clone)]
pub struct Central {
    /// libpq connection string or URL, no password.
    pub url: String,
    /// The password's file (0600).
    pub password_file: Option<PathBuf>,
    /// CA certificates for the server; `None`: the system's.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Connect timeout.
    pub timeout: Duration,
}

impl Central {
    /// From the `[fleet.postgres]` section.
    pub fn from_config(p: &crate::config::Postgres) -> Central {
        Central {
            url: p.url.clone(),
            password_file: p.password_file.clone(),
            ca_file: p.ca_file.clone(),
            client_cert: p.client_cert_file.clone().zip(p.client_key_file.clone()),
            timeout: Duration::from_secs(p.timeout_secs),
        }
    }

    /// `host:port/dbname` for messages (never the user or password).
    pub fn name(&self) -> String {
        let Ok(c) = self.url.parse::<PgConfig>() else {
            return "(bad url)".into();
        };
        let host = match c.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "?".into(),
        };
        let port = c.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port}/{}", c.get_dbname().unwrap_or(""))
    }

    fn fail(&self, message: impl Into<String>) -> Error {
        Error::Postgres {
            to: self.name(),
            message: message.into(),
        }
    }

    fn pg(&self, what: &str, e: tokio_postgres::Error) -> Error {
        self.fail(format!("{what}: {}", crate::tls::error_chain(&e)))
    }

    /// Connects with TLS required and checked; the connection runs on `rt`.
    async fn connect(&self) -> Result<Client> {
        let mut cfg: PgConfig = self
            .url
            .parse()
            .map_err(|e| self.fail(format!("url: {e}")))?;
        if let Some(f) = &self.password_file {
            let pw = crate::config::read_password(f).map_err(|m| self.fail(m))?;
            cfg.password(pw);
        }
        cfg.ssl_mode(tokio_postgres::config::SslMode::Require);
        cfg.connect_timeout(self.timeout);
        cfg.application_name("aiwarden");
        let client = self
            .client_cert
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path()));
        let tls =
            crate::tls::client_config(self.ca_file.as_deref(), client).map_err(|m| self.fail(m))?;
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new((*tls).clone());
        let (client, conn) = cfg.connect(tls).await.map_err(|e| self.pg("connect", e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "postgresql connection ended");
            }
        });
        Ok(client)
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Thread {
            name: "the postgresql runtime".into(),
            source: e,
        })
}

/// Creates the schema if missing (under an advisory lock: boxes start together).
async fn ensure_schema(c: &mut Client, central: &Central) -> Result<()> {
    let tx = c.transaction().await.map_err(|e| central.pg("begin", e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await
        .map_err(|e| central.pg("lock", e))?;
    tx.batch_execute(SCHEMA)
        .await
        .map_err(|e| central.pg("create the schema", e))?;
    tx.commit().await.map_err(|e| central.pg("commit", e))
}

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Chained rows copied.
    pub rows: u64,
    /// Transactions (batches) committed.
    pub batches: u64,
    /// Incidents whose activity was refreshed.
    pub activity: u64,
    /// Usage rows written.
    pub usage: u64,
    /// The chain copied into.
    pub epoch: String,
    /// The newest row copied.
    pub head: i64,
    /// A new chain began (the box's store began again).
    pub new_epoch: bool,
}

/// The box's side of a push.
pub struct Source<'a> {
    /// The store.
    pub store: &'a Path,
    /// The site's name.
    pub site: &'a str,
    /// Rows per transaction.
    pub batch: u32,
    /// The health to record (JSON), the rules version, aiwarden's version.
    pub health: serde_json::Value,
    /// The rules version in force.
    pub rules: String,
}

/// Copies what the central database lacks of `src`'s store, in batches; see the module
/// docs. Stops between batches when `stop` is set.
pub fn push(
    src: &Source<'_>,
    central: &Central,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<PushReport> {
    runtime()?.block_on(push_async(src, central, stop))
}

async fn push_async(
    src: &Source<'_>,
    central: &Central,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<PushReport> {
    let mut c = central.connect().await?;
    ensure_schema(&mut c, central).await?;
    let store = Store::open_read_only(src.store)?;
    let known = c
        .query_opt(
            "SELECT epoch, head_id, head_hash, activity_mark, usage_day FROM aiwarden_site
             WHERE site = $1",
            &[&src.site],
        )
        .await
        .map_err(|e| central.pg("read the site", e))?;
    let mut report = PushReport::default();
    let (epoch, mut after, mut mark, usage_day) = match known {
        Some(r) => {
            let epoch: String = r.get(0);
            let head: i64 = r.get(1);
            let hash: Option<Vec<u8>> = r.get(2);
            let mark: i64 = r.get(3);
            let day: Option<String> = r.get(4);
            let ours = store.hash_of(head)?;
            let same = head == 0 || (ours.is_some() && ours.map(|h| h.to_vec()) == hash);
            if same {
                (epoch, head, mark, day)
            } else {
                let Some((first, h)) = store.chain_start()? else {
                    return Ok(report);
                };
                let new = epoch_of(&h);
                if new == epoch {
                    return Err(central.fail(format!(
                        "site {}: the copy ends at row {head}, which this box's chain no \
                         longer holds with the same hash (store restored from an older copy?)",
                        src.site
                    )));
                }
                tracing::warn!(site = src.site, old = %epoch, new = %new,
                    "the box's chain began again: copying it as a new chain");
                report.new_epoch = true;
                (new, first - 1, 0, day)
            }
        }
        None => match store.chain_start()? {
            Some((first, h)) => (epoch_of(&h), first - 1, 0, None),
            None => return Ok(report),
        },
    };
    report.epoch = epoch.clone();
    report.head = after;
    let cols = copy_columns();
    let types: Vec<Type> = cols
        .iter()
        .map(|c| match *c {
            "hows" => Type::TEXT_ARRAY,
            "prev_hash" | "hash" | "break_prev_hash" => Type::BYTEA,
            c if is_integer(c) => Type::INT8,
            _ => Type::TEXT,
        })
        .collect();
    c.batch_execute(
        "CREATE TEMP TABLE IF NOT EXISTS aiwarden_in (LIKE aiwarden_log) ON COMMIT DELETE ROWS;
         CREATE TEMP TABLE IF NOT EXISTS aiwarden_act (site text, epoch text, id bigint,
           ts bigint, attempts bigint, last_seen bigint, hows text[], seen_mac text)
           ON COMMIT DELETE ROWS;",
    )
    .await
    .map_err(|e| central.pg("create the staging tables", e))?;
    let mut partitions: std::collections::HashSet<String> = Default::default();
    loop {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let rows = store.log_after(after, src.batch)?;
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            break;
        };
        let acts: HashMap<i64, ActivityRow> = store
            .activity_of(first.id(), last.id())?
            .into_iter()
            .map(|a| (a.incident_id, a))
            .collect();
        let tx = c.transaction().await.map_err(|e| central.pg("begin", e))?;
        // Partitions for the batch's months, made under the schema lock.
        let mut months: Vec<(String, i64, i64)> = Vec::new();
        for r in &rows {
            let ts = match r.values.get(2) {
                Some(Value::Integer(t)) => *t,
                _ => 0,
            };
            let p = month_partition(ts);
            if !partitions.contains(&p.0) && !months.iter().any(|m| m.0 == p.0) {
                months.push(p);
            }
        }
        if !months.is_empty() {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
                .await
                .map_err(|e| central.pg("lock", e))?;
            for (name, from, to) in &months {
                tx.batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {name} PARTITION OF aiwarden_log
                     FOR VALUES FROM ({from}) TO ({to})"
                ))
                .await
                .map_err(|e| central.pg(&format!("create partition {name}"), e))?;
            }
        }
        let sink = tx
            .copy_in(&format!(
                "COPY aiwarden_in (site, epoch, {}) FROM STDIN BINARY",
                cols.join(", ")
            ))
            .await
            .map_err(|e| central.pg("copy", e))?;
        let mut all_types = vec![Type::TEXT, Type::TEXT];
        all_types.extend(types.iter().cloned());
        let mut w = pin!(BinaryCopyInWriter::new(sink, &all_types));
        for r in &rows {
            let vals = copy_values(src.site, &epoch, r, acts.get(&r.id()), &types);
            let refs: Vec<&(dyn ToSql + Sync)> = vals
                .iter()
                .map(|v| v.as_ref() as &(dyn ToSql + Sync))
                .collect();
            w.as_mut()
                .write(&refs)
                .await
                .map_err(|e| central.pg("copy a row", e))?;
        }
        w.as_mut()
            .finish()
            .await
            .map_err(|e| central.pg("finish the copy", e))?;
        let inserted = tx
            .execute(
                "INSERT INTO aiwarden_log SELECT * FROM aiwarden_in ON CONFLICT DO NOTHING",
                &[],
            )
            .await
            .map_err(|e| central.pg("insert the rows", e))?;
        let last_id = last.id();
        let last_hash = last.hash.to_vec();
        tx.execute(
            "INSERT INTO aiwarden_site (site, epoch, head_id, head_hash, last_push)
             VALUES ($1, $2, $3, $4, now())
             ON CONFLICT (site) DO UPDATE SET epoch = $2, head_id = $3, head_hash = $4,
               last_push = now()
             -- Two pushes of one site at once (the daemon's and a hand-run one) never
             -- move the head back.
             WHERE aiwarden_site.epoch <> $2 OR aiwarden_site.head_id < $3",
            &[&src.site, &epoch, &last_id, &last_hash],
        )
        .await
        .map_err(|e| central.pg("move the head", e))?;
        tx.commit().await.map_err(|e| central.pg("commit", e))?;
        partitions.extend(months.into_iter().map(|m| m.0));
        report.rows += inserted;
        report.batches += 1;
        report.head = last_id;
        after = last_id;
        if let Some(m) = acts.values().map(|a| a.last_seen).max() {
            mark = mark.max(m);
        }
    }
    // Activity that grew since the last push, for incidents copied before.
    let changed = store.activity_since(mark)?;
    if !changed.is_empty() {
        let tx = c.transaction().await.map_err(|e| central.pg("begin", e))?;
        let sink = tx
            .copy_in("COPY aiwarden_act FROM STDIN BINARY")
            .await
            .map_err(|e| central.pg("copy activity", e))?;
        let t = [
            Type::TEXT,
            Type::TEXT,
            Type::INT8,
            Type::INT8,
            Type::INT8,
            Type::INT8,
            Type::TEXT_ARRAY,
            Type::TEXT,
        ];
        let mut w = pin!(BinaryCopyInWriter::new(sink, &t));
        let mut newest = mark;
        for a in &changed {
            let count = i64::try_from(a.count).unwrap_or(i64::MAX);
            newest = newest.max(a.last_seen);
            w.as_mut()
                .write(&[
                    &src.site,
                    &epoch,
                    &a.incident_id,
                    &a.ts,
                    &count,
                    &a.last_seen,
                    &a.hows,
                    &a.mac,
                ])
                .await
                .map_err(|e| central.pg("copy activity", e))?;
        }
        w.as_mut()
            .finish()
            .await
            .map_err(|e| central.pg("finish the activity copy", e))?;
        let n = tx
            .execute(
                "UPDATE aiwarden_log l SET attempts = a.attempts, last_seen = a.last_seen,
                   hows = a.hows, seen_mac = a.seen_mac
                 FROM aiwarden_act a
                 WHERE l.site = a.site AND l.epoch = a.epoch AND l.id = a.id AND l.ts = a.ts",
                &[],
            )
            .await
            .map_err(|e| central.pg("update activity", e))?;
        tx.execute(
            "UPDATE aiwarden_site SET activity_mark = $2 WHERE site = $1",
            &[&src.site, &newest],
        )
        .await
        .map_err(|e| central.pg("move the activity mark", e))?;
        tx.commit().await.map_err(|e| central.pg("commit", e))?;
        report.activity = n;
    } else if mark > 0 {
        c.execute(
            "UPDATE aiwarden_site SET activity_mark = greatest(activity_mark, $2) WHERE site = $1",
            &[&src.site, &mark],
        )
        .await
        .map_err(|e| central.pg("move the activity mark", e))?;
    }
    // Daily usage from the last day copied on (its counts grew since).
    let usage = store.usage_from(usage_day.as_deref().unwrap_or("0000-01-01"))?;
    if let Some(newest) = usage.iter().map(|u| u.day.clone()).max() {
        let tx = c.transaction().await.map_err(|e| central.pg("begin", e))?;
        let st = tx
            .prepare(
                "INSERT INTO aiwarden_usage (site, day, service, verdict, count)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (site, day, service, verdict) DO UPDATE
                 SET count = greatest(aiwarden_usage.count, excluded.count)",
            )
            .await
            .map_err(|e| central.pg("prepare usage", e))?;
        for u in &usage {
            let n = i64::try_from(u.count).unwrap_or(i64::MAX);
            tx.execute(
                &st,
                &[&src.site, &u.day, &u.service, &u.verdict.as_str(), &n],
            )
            .await
            .map_err(|e| central.pg("write usage", e))?;
        }
        tx.execute(
            "UPDATE aiwarden_site SET usage_day = $2 WHERE site = $1",
            &[&src.site, &newest],
        )
        .await
        .map_err(|e| central.pg("move the usage day", e))?;
        tx.commit().await.map_err(|e| central.pg("commit", e))?;
        report.usage = usage.len() as u64;
    }
    let health = src.health.to_string();
    c.execute(
        "UPDATE aiwarden_site SET last_push = now(), version = $2, rules = $3,
           health = $4::text::jsonb WHERE site = $1",
        &[&src.site, &env!("CARGO_PKG_VERSION"), &src.rules, &health],
    )
    .await
    .map_err(|e| central.pg("record health", e))?;
    Ok(report)
}

/// One row's COPY values: site, epoch, [`export_columns`], the hashes, its activity.
fn copy_values(
    site: &str,
    epoch: &str,
    r: &LogRow,
    act: Option<&ActivityRow>,
    types: &[Type],
) -> Vec<Box<dyn ToSql + Sync + Send>> {
    let mut out: Vec<Box<dyn ToSql + Sync + Send>> = Vec::with_capacity(types.len() + 2);
    out.push(Box::new(site.to_string()));
    out.push(Box::new(epoch.to_string()));
    for (v, t) in r.values.iter().zip(types) {
        out.push(match (v, t) {
            (Value::Integer(i), _) => Box::new(*i),
            (Value::Text(s), _) => Box::new(s.clone()),
            (Value::Blob(b), _) => Box::new(b.clone()),
            (Value::Real(f), _) => Box::new(f.to_string()),
            (Value::Null, t) if *t == Type::INT8 => Box::new(None::<i64>),
            (Value::Null, t) if *t == Type::BYTEA => Box::new(None::<Vec<u8>>),
            (Value::Null, _) => Box::new(None::<String>),
        });
    }
    out.push(Box::new(r.prev_hash.to_vec()));
    out.push(Box::new(r.hash.to_vec()));
    match act {
        Some(a) => {
            out.push(Box::new(Some(i64::try_from(a.count).unwrap_or(i64::MAX))));
            out.push(Box::new(Some(a.last_seen)));
            out.push(Box::new(Some(a.hows.clone())));
            out.push(Box::new(a.mac.clone()));
        }
        None => {
            out.push(Box::new(None::<i64>));
            out.push(Box::new(None::<i64>));
            out.push(Box::new(None::<Vec<String>>));
            out.push(Box::new(None::<String>));
        }
    }
    out
}

/// Walks every site's copied chains (or `site`'s), each from its first row copied.
/// Returns one check per site and chain, and each site's head as its last push recorded.
pub fn verify(central: &Central, site: Option<&str>) -> Result<Vec<(ChainCheck, i64, String)>> {
    runtime()?.block_on(async {
        let c = central.connect().await?;
        let sites = c
            .query(
                "SELECT site, epoch, head_id, coalesce(head_hash, ''::bytea) FROM aiwarden_site
                 WHERE $1::text IS NULL OR site = $1 ORDER BY site",
                &[&site],
            )
            .await
            .map_err(|e| central.pg("read the sites", e))?;
        let cols = export_columns();
        let sql = format!(
            "SELECT {}, prev_hash, hash FROM aiwarden_log WHERE site = $1 AND epoch = $2
             ORDER BY id",
            cols.join(", ")
        );
        let mut out = Vec::new();
        for s in sites {
            let name: String = s.get(0);
            let current: String = s.get(1);
            let head: i64 = s.get(2);
            let head_hash: Vec<u8> = s.get(3);
            let epochs = c
                .query(
                    "SELECT DISTINCT epoch FROM aiwarden_log WHERE site = $1",
                    &[&name],
                )
                .await
                .map_err(|e| central.pg("read the chains", e))?;
            let mut epochs: Vec<String> = epochs.iter().map(|r| r.get(0)).collect();
            if !epochs.contains(&current) {
                epochs.push(current.clone());
            }
            for epoch in epochs {
                let mut walk = Walk::new(&name, &epoch);
                let stream = c
                    .query_raw(&sql, [&name as &(dyn ToSql + Sync), &epoch])
                    .await
                    .map_err(|e| central.pg("read the chain", e))?;
                let mut stream = pin!(stream);
                while let Some(row) = stream
                    .try_next()
                    .await
                    .map_err(|e| central.pg("read the chain", e))?
                {
                    walk.row(&log_row(&row, &cols));
                }
                let check = walk.finish();
                let (h, hh) = if epoch == current {
                    (head, hex(&head_hash))
                } else {
                    (
                        check.last.as_ref().map_or(0, |l| l.0),
                        check.last.as_ref().map_or(String::new(), |l| l.1.clone()),
                    )
                };
                out.push((check, h, hh));
            }
        }
        Ok(out)
    })
}

/// A copied row back as the box had it.
fn log_row(row: &tokio_postgres::Row, cols: &[&str]) -> LogRow {
    let mut values = Vec::with_capacity(cols.len());
    for (i, c) in cols.iter().enumerate() {
        values.push(if is_integer(c) {
            row.get::<_, Option<i64>>(i)
                .map_or(Value::Null, Value::Integer)
        } else if *c == "break_prev_hash" {
            row.get::<_, Option<Vec<u8>>>(i)
                .map_or(Value::Null, Value::Blob)
        } else {
            row.get::<_, Option<String>>(i)
                .map_or(Value::Null, Value::Text)
        });
    }
    let hash = |i: usize| -> [u8; 32] {
        let v: Vec<u8> = row.get(i);
        v.try_into().unwrap_or([0; 32])
    };
    LogRow {
        values,
        prev_hash: hash(cols.len()),
        hash: hash(cols.len() + 1),
    }
}

/// The fleet report's grouping of incidents opened in `[$1, $2)` (`$3`: every site, else
/// those in `$4`), acknowledged by an ack row of `$5` (the period's start) or later.
const REPORT_SQL: &str = "WITH acked AS (
                   SELECT DISTINCT site, epoch, incident_id FROM aiwarden_log
                   WHERE kind = 'ack' AND ts >= $5 AND ($3 OR site = ANY($4)))
                 SELECT site, service, min(service_name), category, verdict, dev, acked, hows,
                   count(*), sum(attempts)::bigint, GROUPING(dev)
                 FROM (
                   SELECT i.site, i.service, i.service_name, i.category, i.verdict,
                     coalesce(i.label, i.device, i.client_mac, i.seen_mac, i.client_ip) AS dev,
                     a.incident_id IS NOT NULL AS acked,
                     coalesce(i.hows, ARRAY[i.how]) AS hows,
                     coalesce(i.attempts, 1) AS attempts
                   FROM aiwarden_log i LEFT JOIN acked a
                     ON a.site = i.site AND a.epoch = i.epoch AND a.incident_id = i.id
                   WHERE i.kind = 'incident' AND i.ts >= $1 AND i.ts < $2
                     AND ($3 OR i.site = ANY($4))) x
                 GROUP BY GROUPING SETS ((site, service, category, verdict, acked, hows),
                   (site, dev))";

/// The fleet report of `[from, to)` (unix microseconds) labelled `period`, over every site
/// or those in `sites`: the database groups the period's incidents, the tally counts them.
pub fn report(
    central: &Central,
    period: &str,
    (from, to): (i64, i64),
    sites: &[String],
) -> Result<FleetReport> {
    runtime()?.block_on(async {
        let c = central.connect().await?;
        let all = sites.is_empty();
        // The period in as many slices as there are cores (at most 4), each read on a
        // connection of its own at once: the server's grouping of a slice is one process,
        // and a week of 500 sites is millions of rows. The slices' groups add up; the
        // devices are a set, so one met in two slices counts once.
        let slices = std::thread::available_parallelism().map_or(1, |n| n.get().min(4)) as i64;
        let step = ((to - from) / slices).max(1);
        let bounds: Vec<(i64, i64)> = (0..slices)
            .map(|k| {
                let lo = from + k * step;
                (lo, if k == slices - 1 { to } else { lo + step })
            })
            .filter(|(lo, hi)| lo < hi)
            .collect();
        let read = |(lo, hi): (i64, i64)| async move {
            let c = central.connect().await?;
            // The default 4 MB makes the grouping of a week of 500 sites spill to disk.
            c.batch_execute("SET work_mem = '128MB'")
                .await
                .map_err(|e| central.pg("set work_mem", e))?;
            let rows: Vec<tokio_postgres::Row> = c
                .query_raw(
                    // One scan, two grouping sets: the figures by (site, service, verdict,
                    // acknowledged, ways seen) and the devices by site. Grouping the figures
                    // by device as well made a group of nearly every incident at fleet scale.
                    REPORT_SQL,
                    [&lo as &(dyn ToSql + Sync), &hi, &all, &sites, &from],
                )
                .await
                .map_err(|e| central.pg("read the period", e))?
                .try_collect()
                .await
                .map_err(|e| central.pg("read the period", e))?;
            Ok::<_, Error>(rows)
        };
        let parts = futures_util::future::join_all(bounds.into_iter().map(read)).await;
        let mut tally = FleetTally::default();
        for r in parts.into_iter().collect::<Result<Vec<_>>>()?.iter().flatten() {
            let site: String = r.get(0);
            if r.get::<_, i32>(10) == 0 {
                tally.device(&site, &r.get::<_, Option<String>>(5).unwrap_or_default());
                continue;
            }
            let n: i64 = r.get(8);
            let attempts: i64 = r.get(9);
            tally.add(&Group {
                site,
                service: r.get::<_, Option<String>>(1).unwrap_or_default(),
                service_name: r.get::<_, Option<String>>(2).unwrap_or_default(),
                category: r.get(3),
                verdict: r.get::<_, Option<String>>(4).unwrap_or_default(),
                acked: r.get(6),
                hows: r
                    .get::<_, Option<Vec<Option<String>>>>(7)
                    .unwrap_or_default()
                    .into_iter()
                    .flatten()
                    .collect(),
                incidents: n.max(0) as u64,
                attempts: attempts.max(0) as u64,
            });
        }
        for r in c
            .query(
                "SELECT site, count(*) FROM aiwarden_log
                 WHERE kind = 'ack' AND ts >= $1 AND ts < $2 AND ($3 OR site = ANY($4))
                 GROUP BY site",
                &[&from, &to, &all, &sites],
            )
            .await
            .map_err(|e| central.pg("read the acknowledgements", e))?
        {
            let site: String = r.get(0);
            let n: i64 = r.get(1);
            tally.acks(&site, n.max(0) as u64);
        }
        let known = c
            .query(
                "SELECT site, to_char(last_push AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                   head_id, epoch FROM aiwarden_site WHERE $1 OR site = ANY($2) ORDER BY site",
                &[&all, &sites],
            )
            .await
            .map_err(|e| central.pg("read the sites", e))?
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        Ok(tally.finish(period, (from, to), known))
    })
}

/// Starts the daemon's roll-up thread: a push every `interval_secs` (the first at once)
/// until `stop`; the `rollup` part of the health says how the last one went.
pub fn spawn(
    cfg: crate::config::Postgres,
    store: PathBuf,
    site: String,
    live: std::sync::Arc<crate::policy::Live>,
    (metrics, health): (
        std::sync::Arc<crate::metrics::Metrics>,
        std::sync::Arc<crate::health::Health>,
    ),
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<std::thread::JoinHandle<()>> {
    use crate::health::State;
    let central = Central::from_config(&cfg);
    std::thread::Builder::new()
        .name("aiwarden-rollup".into())
        .spawn(move || {
            tracing::info!(to = %central.name(), site = %site, every_secs = cfg.interval_secs,
                "rollup: copying the store to the central postgresql");
            // The writer makes the store as the daemon starts.
            let mut wait = 0;
            while !crate::store::made(&store) && wait < 100 {
                if super::syslog_send::pause(Duration::from_millis(100), &stop) {
                    return;
                }
                wait += 1;
            }
            // The newest row the copy holds, as far as this thread knows.
            let mut copied: Option<i64> = None;
            let newest = || {
                Store::open_read_only(&store)
                    .and_then(|s| s.head())
                    .ok()
                    .flatten()
                    .map_or(0, |h| h.id)
            };
            loop {
                let parts: serde_json::Map<String, serde_json::Value> = health
                    .report()
                    .parts
                    .into_iter()
                    .filter(|(name, _)| name != "rollup")
                    .map(|(name, s)| {
                        let v = match s {
                            State::Ok => "ok".to_string(),
                            State::Degraded(why) => format!("degraded: {why}"),
                            State::Down(why) => format!("down: {why}"),
                        };
                        (name, serde_json::Value::String(v))
                    })
                    .collect();
                let src = Source {
                    store: &store,
                    site: &site,
                    batch: cfg.batch,
                    health: serde_json::Value::Object(parts),
                    rules: live.current().digest().chars().take(16).collect(),
                };
                match push(&src, &central, &stop) {
                    Ok(r) => {
                        metrics.rollup_pushes.with_label_values(&["ok"]).inc();
                        metrics.rollup_rows.inc_by(r.rows);
                        copied = Some(r.head);
                        metrics.rollup_lag.set((newest() - r.head).max(0));
                        if r.rows > 0 {
                            tracing::info!(to = %central.name(), rows = r.rows, head = r.head,
                                epoch = %r.epoch, "rollup: rows copied");
                        }
                        health.set("rollup", State::Ok);
                    }
                    Err(e) => {
                        metrics.rollup_pushes.with_label_values(&["failed"]).inc();
                        metrics
                            .rollup_lag
                            .set((newest() - copied.unwrap_or(0)).max(0));
                        tracing::warn!(error = %e, "rollup: push failed; the next one resumes");
                        health.set("rollup", State::Degraded(e.to_string()));
                    }
                }
                if super::syslog_send::pause(Duration::from_secs(cfg.interval_secs), &stop) {
                    return;
                }
            }
        })
        .map_err(|e| Error::Thread {
            name: "the rollup thread".into(),
            source: e,
        })
}
