//! The central roll-up into a real PostgreSQL (Debian's server, started by the test on a
//! local port with TLS on and password logins only over TLS): three sites copy their
//! stores. Site A and B are stores written through the store's own API (`examples/
//! gen_store.rs`, with acknowledgements) and pushed with `aiwarden fleet push`; site C is a
//! running daemon with `[fleet.postgres]` whose incidents come from `dig` asking for
//! blocked names. Then:
//! - a second push copies nothing (idempotent);
//! - the server goes down while B and C keep recording: B's push fails with a clear error
//!   and the daemon's health says `rollup: degraded`; back up, both catch up, and the copy
//!   holds exactly each box's rows (count, first and last id: no duplicates, no gaps);
//! - `aiwarden fleet verify` walks every site's copied chain and its head equals what
//!   `aiwarden verify` says on each box; a row edited in the copy is named (exit 3);
//! - `aiwarden fleet report` figures equal each site's own `aiwarden report`, and the
//!   total their sum.
//!
//! Needs root and the `postgresql` package (skips saying so otherwise). Prints its time.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "../examples/gen_store.rs"]
#[allow(dead_code, unreachable_pub)]
mod gen_store;
#[path = "support/pg.rs"]
mod pg;

const BIN: &str = env!("CARGO_BIN_EXE_aiwarden");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("aiwarden runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

struct Site {
    name: &'static str,
    config: PathBuf,
    store: PathBuf,
}

/// A site's configuration: its store, UTC, the central database; `dns` for a daemon.
fn site(dir: &Path, name: &'static str, pg: &pg::Pg, dns: Option<(u16, u16)>) -> Site {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).expect("mkdir");
    let store = d.join("incidents.db");
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let mut cfg = format!(
        "site_name = \"{name}\"\ntimezone = \"UTC\"\nmode = \"enforce\"\nrules = \"{}\"\n",
        rules.display()
    );
    if let Some((dns, http)) = dns {
        cfg += &format!(
            "[dns]\nlisten = [\"127.0.0.1:{dns}\"]\nupstreams = [\"127.0.0.1:9\"]\ntimeout_ms = 300\n\
             [metrics]\nlisten = \"127.0.0.1:{http}\"\n"
        );
    }
    cfg += &format!(
        "[store]\npath = \"{}\"\n[fleet.postgres]\nurl = \"{}\"\npassword_file = \"{}\"\n\
         ca_file = \"{}\"\ninterval_secs = 1\nbatch = 700\n",
        store.display(),
        pg.url(),
        pg.password_file.display(),
        pg.ca_file.display()
    );
    let config = d.join("aiwarden.toml");
    std::fs::write(&config, cfg).expect("config");
    Site {
        name,
        config,
        store,
    }
}

fn push(s: &Site) -> Output {
    run(&[
        "fleet",
        "push",
        "--config",
        s.config.to_str().expect("utf-8"),
    ])
}

fn push_ok(s: &Site) -> String {
    let o = push(s);
    assert!(o.status.success(), "push {}: {}", s.name, text(&o));
    text(&o)
}

/// Every chained row of a box's store: count, first and last id.
fn local_rows(store: &Path) -> (i64, i64, i64) {
    let c = rusqlite::Connection::open(store).expect("open");
    c.query_row("SELECT count(*), min(id), max(id) FROM log", [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
    .expect("count")
}

fn central_rows(pg: &pg::Pg, site: &str) -> (i64, i64, i64) {
    let out = pg.psql(
        "fleet",
        &format!(
            "SELECT count(*), coalesce(min(id), 0), coalesce(max(id), 0) FROM aiwarden_log \
             WHERE site = '{site}' AND epoch = (SELECT epoch FROM aiwarden_site WHERE site = '{site}')"
        ),
    );
    let v: Vec<i64> = out.split('|').map(|x| x.parse().expect("number")).collect();
    (v[0], v[1], v[2])
}

fn central_has_table(pg: &pg::Pg) -> bool {
    pg.psql(
        "fleet",
        "SELECT count(*) FROM pg_tables WHERE tablename = 'aiwarden_site'",
    ) == "1"
}

/// `head: row N (HASH)` from `aiwarden verify` on the box.
fn box_head(store: &Path) -> (i64, String) {
    let o = run(&["verify", "--store", store.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    let line = t
        .lines()
        .find(|l| l.starts_with("head: row "))
        .expect("a head line");
    let rest = &line["head: row ".len()..];
    let (id, rest) = rest.split_once(" (").expect("id");
    let hash = rest.split(')').next().expect("hash");
    (id.parse().expect("id"), hash.to_string())
}

fn add_incidents(store: &Path, from: u8, n: u8) {
    use aiwarden::policy::{Mode, Tier, Verdict};
    let mut s = aiwarden::store::Store::open(store).expect("open");
    let now = aiwarden::store::now_micros();
    let recs: Vec<_> = (0..n)
        .map(|i| aiwarden::incident::IncidentRecord {
            ts: now - i64::from(i) * 1_000_000,
            client_ip: std::net::IpAddr::from([10, 9, 0, from + i]),
            client_mac: None,
            device: None,
            label: None,
            group: None,
            service: "claude".into(),
            service_name: "Claude".into(),
            category: Some("chat".into()),
            tier: Some(Tier::Consumer),
            verdict: Verdict::Flag,
            mode: Mode::Monitor,
            how: "quic".parse().expect("how"),
            host: "claude.ai".into(),
            rule: "catalog:claude".into(),
        })
        .collect();
    let ids = s.append_incidents(&recs).expect("append");
    s.ack(ids[0], now, "dr.lee", "spoke to the front desk")
        .expect("ack");
}

fn dig(port: u16, from: Ipv4Addr, name: &str) {
    let _ = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            "-b",
            &from.to_string(),
            "+tries=1",
            "+time=2",
            name,
            "A",
        ])
        .output();
}

fn healthz(port: u16) -> String {
    get(port, "/healthz")
}

fn get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn headline(v: &serde_json::Value) -> [u64; 8] {
    let h = &v["headline"];
    let n = |k: &str| h[k].as_u64().unwrap_or_else(|| panic!("headline.{k}: {h}"));
    [
        n("incidents"),
        n("attempts"),
        n("blocked"),
        n("flagged"),
        n("open"),
        n("bypass"),
        n("devices"),
        n("services"),
    ]
}

fn figures(v: &serde_json::Value) -> [u64; 8] {
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k}: {v}"));
    [
        n("incidents"),
        n("attempts"),
        n("blocked"),
        n("flagged"),
        n("open"),
        n("bypass"),
        n("devices"),
        n("services"),
    ]
}

#[test]
fn three_sites_roll_up_verify_and_report() {
    if let Some(why) = pg::unavailable() {
        println!("skipped: {why}");
        return;
    }
    let t0 = Instant::now();
    let pg = pg::Pg::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let end = aiwarden::store::now_micros() / 1_000_000;

    // Site A and B: stores written through the store's API, acknowledgements included.
    let a = site(dir.path(), "clinic-a", &pg, None);
    let b = site(dir.path(), "clinic-b", &pg, None);
    for (s, n, devices) in [(&a, 3_000, 25), (&b, 1_800, 12)] {
        let o = gen_store::Options {
            incidents: n,
            devices,
            services: 12,
            days: 2,
            end,
            ack_every: 17,
        };
        gen_store::generate(&s.store, &o).expect("generate");
    }
    let said = push_ok(&a);
    assert!(said.contains("copied"), "{said}");
    push_ok(&b);
    assert_eq!(central_rows(&pg, "clinic-a"), local_rows(&a.store));
    // Again: nothing new, nothing twice.
    let again = push_ok(&a);
    assert!(again.contains("copied 0 rows"), "{again}");
    assert_eq!(central_rows(&pg, "clinic-a"), local_rows(&a.store));

    // Site C: a daemon pushing on its own every second.
    let (dns, http) = (free_port(), free_port());
    let c = site(dir.path(), "clinic-c", &pg, Some((dns, http)));
    let daemon = Daemon(
        Command::new(BIN)
            .args(["run", "--config", c.config.to_str().expect("utf-8")])
            .env("AIWARDEN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("daemon-c.log")).expect("log"))
            .spawn()
            .expect("daemon"),
    );
    wait_for("the daemon", Duration::from_secs(20), || {
        healthz(http).contains("200 OK")
    });
    for n in 0..6u8 {
        dig(dns, Ipv4Addr::new(127, 0, 0, 30 + n), "chatgpt.com");
        dig(dns, Ipv4Addr::new(127, 0, 0, 30 + n), "gemini.google.com");
    }
    wait_for("site C's rows in the copy", Duration::from_secs(30), || {
        c.store.exists() && central_rows(&pg, "clinic-c") == local_rows(&c.store)
    });

    // The server goes away; B and C keep recording.
    pg.stop();
    add_incidents(&b.store, 1, 40);
    for n in 0..4u8 {
        dig(dns, Ipv4Addr::new(127, 0, 0, 40 + n), "claude.ai");
    }
    let failed = push(&b);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    assert!(
        text(&failed).contains("postgresql 127.0.0.1:") && text(&failed).contains("connect"),
        "a clear error: {}",
        text(&failed)
    );
    wait_for("the daemon to notice", Duration::from_secs(15), || {
        healthz(http).contains("rollup: degraded")
    });
    std::thread::sleep(Duration::from_secs(2));
    pg.restart();
    push_ok(&b);
    assert_eq!(
        central_rows(&pg, "clinic-b"),
        local_rows(&b.store),
        "B caught up"
    );
    wait_for("site C to catch up", Duration::from_secs(30), || {
        central_rows(&pg, "clinic-c") == local_rows(&c.store)
            && healthz(http).contains("rollup: ok")
    });
    // What the daemon's metrics say: pushes failed while the server was down, rows copied,
    // nothing waiting now.
    let m = get(http, "/metrics");
    let value = |name: &str| -> f64 {
        m.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {m}"))
    };
    assert!(
        value("aiwarden_rollup_pushes_total{result=\"failed\"}") >= 1.0,
        "{m}"
    );
    assert!(
        value("aiwarden_rollup_pushes_total{result=\"ok\"}") >= 2.0,
        "{m}"
    );
    assert_eq!(
        value("aiwarden_rollup_rows_total") as i64,
        local_rows(&c.store).0,
        "{m}"
    );
    assert_eq!(value("aiwarden_rollup_lag_rows"), 0.0, "{m}");
    drop(daemon);
    push_ok(&c);
    // Not one row twice anywhere.
    assert_eq!(
        pg.psql(
            "fleet",
            "SELECT count(*) FROM (SELECT site, epoch, id FROM aiwarden_log \
             GROUP BY 1, 2, 3 HAVING count(*) > 1) d"
        ),
        "0"
    );

    // The copy verifies per site, and ends where each box's own chain ends.
    let no_config = dir.path().join("no-config.toml");
    let db = [
        "--db",
        &pg.url(),
        "--password-file",
        pg.password_file.to_str().expect("utf-8"),
        "--ca-file",
        pg.ca_file.to_str().expect("utf-8"),
        "--config",
        no_config.to_str().expect("utf-8"),
    ];
    let mut args = vec!["fleet", "verify"];
    args.extend(db);
    let v = run(&args);
    assert!(v.status.success(), "{}", text(&v));
    for s in [&a, &b, &c] {
        let (id, hash) = box_head(&s.store);
        let line = text(&v)
            .lines()
            .find(|l| l.starts_with(&format!("site {} ", s.name)))
            .unwrap_or_else(|| panic!("{}: {}", s.name, text(&v)))
            .to_string();
        assert!(
            line.contains("intact") && line.ends_with(&format!("head {id} {hash}")),
            "{line} (the box says row {id} {hash})"
        );
    }

    // The fleet report equals the sites' own reports, and the total their sum.
    let today = jiff::Timestamp::from_second(end)
        .expect("now")
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let from = today
        .checked_sub(jiff::ToSpan::days(3))
        .expect("date")
        .to_string();
    let to = today.to_string();
    let mut args = vec![
        "fleet",
        "report",
        "--json",
        "--timezone",
        "UTC",
        "--from",
        &from,
        "--to",
        &to,
    ];
    args.extend(db);
    let r = run(&args);
    assert!(r.status.success(), "{}", text(&r));
    let fleet: serde_json::Value = serde_json::from_slice(&r.stdout).expect("json");
    let mut sum = [0u64; 8];
    for s in [&a, &b, &c] {
        let o = run(&[
            "report",
            "--config",
            s.config.to_str().expect("utf-8"),
            "--from",
            &from,
            "--to",
            &to,
            "--format",
            "json",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let own: serde_json::Value = serde_json::from_slice(&o.stdout).expect("report json");
        let own = headline(&own);
        let row = fleet["sites"]
            .as_array()
            .expect("sites")
            .iter()
            .find(|x| x["site"] == s.name)
            .unwrap_or_else(|| panic!("{} in {fleet}", s.name));
        assert_eq!(
            figures(&row["figures"]),
            own,
            "{}: fleet report vs its own",
            s.name
        );
        assert!(own[0] > 0, "{} has incidents", s.name);
        for (t, x) in sum.iter_mut().zip(own) {
            *t += x;
        }
    }
    let total = figures(&fleet["total"]);
    // Services are counted once across the fleet; every other figure is the sum.
    assert_eq!(total[..7], sum[..7], "total vs the sum of the sites");
    println!("fleet report: {:?} (incidents, attempts, blocked, flagged, open, bypass, devices, services)", total);

    // A row edited in the copy is found and named.
    assert!(central_has_table(&pg));
    pg.psql(
        "fleet",
        "UPDATE aiwarden_log SET host = 'example.org' WHERE site = 'clinic-b' AND id = 7",
    );
    let mut args = vec!["fleet", "verify"];
    args.extend(db);
    let bad = run(&args);
    assert_eq!(bad.status.code(), Some(3), "{}", text(&bad));
    assert!(
        text(&bad).contains("site clinic-b chain")
            && text(&bad).contains("row 7: hash does not match"),
        "{}",
        text(&bad)
    );
    println!("fleet_postgres: {:.1} s", t0.elapsed().as_secs_f64());
}
