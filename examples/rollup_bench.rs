//! The central roll-up's benchmark, against a real PostgreSQL the bench starts (Debian's
//! server, TLS on, as the tests start it; needs root):
//! 1. a box's store of N incidents (default 1,000,000, written by `gen_store.rs` through the
//!    store's own API, with acknowledgements) pushed by [`rollup_pg::push`] as the daemon
//!    pushes it: rows/s;
//! 2. the generator: SITES sites (default 500) x PER_SITE incidents (default 10,000) in one
//!    ISO week written straight into the central tables, then the fleet report of that
//!    week ([`rollup_pg::report`], what `aiwarden fleet report` runs) timed, and the
//!    tables' sizes per row.
//!
//! ```text
//! cargo run --release --example rollup_bench -- [N] [SITES] [PER_SITE]
//! ```
//! Target (issue 14): the fleet report of a week of 500 x 10,000 incidents under 10 s.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use aiwarden::fleet::rollup::month_partition;
use aiwarden::fleet::rollup_pg::{self, Central, Source};

#[path = "gen_store.rs"]
#[allow(dead_code, unreachable_pub)]
mod gen_store;
#[path = "../tests/support/pg.rs"]
#[allow(dead_code)]
mod pg;

/// Monday 2026-11-23 00:00 UTC, unix microseconds: the generated week.
const WEEK_START: i64 = 1_795_392_000_000_000;
const WEEK: i64 = 7 * 86_400 * 1_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(1).map_or(Ok(1_000_000), |s| s.parse())?;
    let sites: i64 = args.get(2).map_or(Ok(500), |s| s.parse())?;
    let per_site: i64 = args.get(3).map_or(Ok(10_000), |s| s.parse())?;
    if let Some(why) = pg::unavailable() {
        println!("rollup bench skipped: {why}");
        return Ok(());
    }
    let pg = pg::Pg::start();
    let central = Central {
        url: pg.url(),
        password_file: Some(pg.password_file.clone()),
        ca_file: Some(pg.ca_file.clone()),
        client_cert: None,
        timeout: std::time::Duration::from_secs(30),
    };
    let dir = tempfile::tempdir()?;

    // 1. One box's store pushed.
    let store = dir.path().join("incidents.db");
    let t = Instant::now();
    let g = gen_store::generate(
        &store,
        &gen_store::Options {
            incidents: n,
            ..gen_store::Options::default()
        },
    )?;
    println!(
        "store: {} incidents and {} acks written in {:.1} s",
        g.incidents,
        g.acks,
        t.elapsed().as_secs_f64()
    );
    let src = Source {
        store: &store,
        site: "bench-box",
        batch: 10_000,
        health: serde_json::json!({}),
        rules: String::new(),
    };
    let t = Instant::now();
    let r = rollup_pg::push(&src, &central, &AtomicBool::new(false))?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "push: {} rows in {} batches in {:.1} s: {:.0} rows/s (TLS, binary COPY, one connection)",
        r.rows,
        r.batches,
        secs,
        r.rows as f64 / secs
    );
    let t = Instant::now();
    let again = rollup_pg::push(&src, &central, &AtomicBool::new(false))?;
    println!(
        "push again: {} rows in {:.2} s (nothing new)",
        again.rows,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let checks = rollup_pg::verify(&central, Some("bench-box"))?;
    println!(
        "verify: {} rows walked in {:.1} s, intact: {}",
        checks.iter().map(|c| c.0.rows).sum::<u64>(),
        t.elapsed().as_secs_f64(),
        checks.iter().all(|c| c.0.broken.is_none())
    );

    // 2. The generator: a week of every site, written straight into the central tables.
    let total = sites * per_site;
    let t = Instant::now();
    for ts in [WEEK_START, WEEK_START + WEEK - 1] {
        let (name, from, to) = month_partition(ts);
        pg.psql(
            "fleet",
            &format!(
                "CREATE TABLE IF NOT EXISTS {name} PARTITION OF aiwarden_log \
                 FOR VALUES FROM ({from}) TO ({to}); ALTER TABLE {name} OWNER TO fleet"
            ),
        );
    }
    pg.psql(
        "fleet",
        &format!(
            "INSERT INTO aiwarden_site (site, epoch, head_id, head_hash, last_push) \
             SELECT 'site-' || lpad(s::text, 3, '0'), 'gen', {per_site}, '\\x00'::bytea, now() \
             FROM generate_series(1, {sites}) s"
        ),
    );
    // Per site: ~40 devices, 20 services (a few much busier), a third blocked, one in
    // twenty seen by QUIC, one in forty acknowledged (an ack row after the incidents).
    pg.psql(
        "fleet",
        &format!(
            "INSERT INTO aiwarden_log (site, epoch, id, kind, ts, client_ip, device, label, \
               service, service_name, category, tier, verdict, mode, how, host, rule, \
               prev_hash, hash, attempts, last_seen, hows) \
             SELECT 'site-' || lpad((g / {per_site} + 1)::text, 3, '0'), 'gen', \
               g % {per_site} + 1, 'incident', \
               {WEEK_START} + (g % {per_site}) * ({WEEK} / {per_site}) + g / {per_site}, \
               '10.0.' || (g % 7) || '.' || (g * 13 % 40 + 2), 'pc-' || (g * 13 % 40), \
               'Device ' || (g * 13 % 40), svc, initcap(svc), 'chat', 'consumer', \
               CASE WHEN g % 3 = 0 THEN 'block' ELSE 'flag' END, \
               CASE WHEN g % 3 = 0 THEN 'enforce' ELSE 'monitor' END, \
               CASE WHEN g % 20 = 0 THEN 'quic' ELSE 'tls' END, svc || '.example', \
               'catalog:' || svc, '\\x00'::bytea, '\\x00'::bytea, 1 + g % 4, \
               {WEEK_START} + (g % {per_site}) * ({WEEK} / {per_site}) + 60000000, \
               ARRAY[CASE WHEN g % 20 = 0 THEN 'quic' ELSE 'tls' END] \
             FROM generate_series(0, {total} - 1) g, \
               LATERAL (SELECT (ARRAY['chatgpt','claude','gemini','copilot','perplexity', \
                 'deepseek','mistral','poe','character-ai','grok','meta-ai','you','pi', \
                 'huggingchat','jasper','writesonic','quillbot','otter','fireflies','tldv']) \
                 [1 + (g * 7 % 20) * (g * 11 % 20) / 20] AS svc) s"
        ),
    );
    pg.psql(
        "fleet",
        &format!(
            "INSERT INTO aiwarden_log (site, epoch, id, kind, ts, incident_id, ack_by, \
               ack_note, prev_hash, hash) \
             SELECT site, epoch, {per_site} + row_number() OVER (PARTITION BY site ORDER BY id), \
               'ack', {WEEK_START} + {WEEK} - 1000, id, 'dr.lee', 'spoke to them', \
               '\\x00'::bytea, '\\x00'::bytea \
             FROM aiwarden_log WHERE epoch = 'gen' AND kind = 'incident' AND id % 40 = 0; \
             ANALYZE aiwarden_log"
        ),
    );
    println!(
        "generator: {sites} sites x {per_site} incidents ({total}) and their acks written in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let sites_list: Vec<String> = Vec::new();
    for run in ["first", "second"] {
        let t = Instant::now();
        let r = rollup_pg::report(
            &central,
            "2026-W48",
            (WEEK_START, WEEK_START + WEEK),
            &sites_list,
        )?;
        println!(
            "fleet report, one week, {} sites ({run} run): {:.2} s; {} incidents, {} attempts, {} open, {} acks, {} services (target < 10 s)",
            r.sites.len(),
            t.elapsed().as_secs_f64(),
            r.total.incidents,
            r.total.attempts,
            r.total.open,
            r.total.acks,
            r.total.services
        );
    }
    let sizes = pg.psql(
        "fleet",
        "SELECT pg_size_pretty(sum(pg_table_size(c.oid))), \
           pg_size_pretty(sum(pg_indexes_size(c.oid))), \
           (sum(pg_total_relation_size(c.oid)) / greatest((SELECT count(*) FROM aiwarden_log), 1))::bigint \
         FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid \
         WHERE i.inhparent = 'aiwarden_log'::regclass",
    );
    let mut it = sizes.split('|');
    println!(
        "aiwarden_log: tables {}, indexes {}, {} bytes per row in all",
        it.next().unwrap_or("?"),
        it.next().unwrap_or("?"),
        it.next().unwrap_or("?")
    );
    Ok(())
}
