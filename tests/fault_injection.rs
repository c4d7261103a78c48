//! Fault injection: the attacks a hostile or broken clinic LAN makes, one after another,
//! against `aiwarden run` (release build) in its shipped configuration (config.example.toml
//! with this network's addresses, the unit's open-file limit applied with `prlimit`), while
//! a probe client keeps asking.
//!
//! ```text
//!  aw-c-PID (LAN)                    aw-g-PID (gateway: aiwarden run)   aw-u-PID (upstream)
//!  c0 10.77.1.2     probe ────────── g0 10.77.1.1 :53 :9747             u0 10.77.2.2 :53
//!     10.77.1.3-70  attackers        g2 (veth, captured; deleted)      fake upstream
//! ```
//!
//! Every 20 ms the probe (10.77.1.2) asks a cached name and a name never asked before; every
//! 100 ms something on the gateway asks `/healthz`; every 50 ms the daemon's resident
//! memory is read. Each attack runs a few seconds; for its window the suite asserts that
//! ≥ 99% of cached and ≥ 95% of uncached questions were answered within 100 ms, `/healthz`
//! answered, resident memory stayed under 128 MB and the log stayed small, and prints
//! the figures. Traffic stays inside the namespaces. Needs root; skips otherwise.
//!
//! Long because the attacks belong together: they run one after another against one daemon
//! (its start-up, a release build, is the costly part), each a short function here.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

#[path = "support/fakedns.rs"]
mod fakedns;
#[path = "support/faultprobe.rs"]
mod faultprobe;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/nsthread.rs"]
mod nsthread;

use faultprobe::*;
use netns::*;
use nsthread::{run_in, spawn_in};

const RSS_LIMIT: u64 = 128 * MB;
const DENIED: usize = 200;
/// Deny patterns loaded besides the attack's: the idle memory bound is for 100,000.
const DENY_PATTERNS: usize = 100_000;

/// The release daemon, built for this suite (what ships, not the debug build).
fn release_binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let started = Instant::now();
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["build", "--quiet", "--release", "--bin", "aiwarden"])
        .current_dir(root);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_") && k != "CARGO_HOME" && k != "CARGO_TARGET_DIR" {
            cargo.env_remove(&*k);
        }
    }
    cargo.env_remove("OUT_DIR");
    let st = cargo.status().expect("cargo build --release");
    assert!(st.success(), "cargo build --release failed");
    println!("release build: {:.1} s", started.elapsed().as_secs_f64());
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target.join("release").join("aiwarden")
}

/// The unit's open-file limit and environment, as the daemon gets them from systemd.
fn unit_settings() -> (u64, Vec<(String, String)>) {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/aiwarden.service"),
    )
    .expect("unit");
    let nofile = unit
        .lines()
        .find_map(|l| l.trim().strip_prefix("LimitNOFILE="))
        .and_then(|v| v.trim().parse().ok())
        .expect("LimitNOFILE in the unit");
    let env = unit
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Environment="))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (nofile, env)
}

/// The shipped example configuration with this network's addresses; every limit as shipped.
fn shipped_config(dir: &Path, rules: &Path) -> PathBuf {
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml"))
            .expect("config.example.toml");
    let mut out = format!("rules = \"{}\"\n", rules.display());
    let mut section = String::new();
    for line in example.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            section = t.to_string();
        }
        let key = t.split('=').next().unwrap_or("").trim();
        let replaced = match (section.as_str(), key) {
            ("", "rules") => Some(String::new()),
            ("[capture]", "interfaces") => Some("interfaces = [\"g0\", \"g2\"]".into()),
            ("[dns]", "listen") => Some(format!("listen = [\"{RESOLVER}\"]")),
            ("[dns]", "upstreams") => Some("upstreams = [\"10.77.2.2\"]".into()),
            ("[store]", "path") => {
                Some(format!("path = \"{}\"", dir.join("incidents.db").display()))
            }
            // Exposed to the LAN (an MSP's Prometheus scrapes it there): open to attack too.
            ("[metrics]", "listen") => Some(format!("listen = \"{METRICS}\"")),
            _ => None,
        };
        out.push_str(&replaced.unwrap_or_else(|| line.to_string()));
        out.push('\n');
    }
    let path = dir.join("aiwarden.toml");
    std::fs::write(&path, out).expect("config");
    path
}

/// The test's world: namespaces, daemon, probes.
struct World {
    net: Net,
    pid: u32,
    log: PathBuf,
    store: PathBuf,
    seen: Arc<Seen>,
}

impl World {
    fn metrics(&self) -> String {
        run_in(&self.net.gateway.clone(), || {
            http_get("/metrics", Duration::from_secs(3)).unwrap_or_default()
        })
    }

    fn log_lines(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    fn incidents(&self) -> usize {
        netns::incidents(&self.store).len()
    }
}

/// An attack: blocks for its duration and says what it did.
type Attack = fn(&World) -> String;

/// What one attack did and what the probes saw meanwhile.
struct Report {
    name: &'static str,
    what: String,
    cached: (usize, usize),
    uncached: (usize, usize),
    health: (usize, usize),
    rss: u64,
    log_lines: usize,
    secs: f64,
}

impl Report {
    fn pct((n, ok): (usize, usize)) -> f64 {
        if n == 0 {
            0.0
        } else {
            100.0 * ok as f64 / n as f64
        }
    }

    fn print(&self) {
        println!(
            "{:<16} {:>5.1} s  cached {:>6.2}% of {:<4} uncached {:>6.2}% of {:<4} healthz {:>6.2}% of {:<3} rss {:>5.1} MB  log +{:<4} | {}",
            self.name,
            self.secs,
            Self::pct(self.cached),
            self.cached.0,
            Self::pct(self.uncached),
            self.uncached.0,
            Self::pct(self.health),
            self.health.0,
            self.rss as f64 / MB as f64,
            self.log_lines,
            self.what
        );
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let name = self.name;
        if self.cached.0 < 20 || Self::pct(self.cached) < 99.0 {
            p.push(format!(
                "{name}: cached answered in 100 ms: {:?}",
                self.cached
            ));
        }
        if self.uncached.0 < 20 || Self::pct(self.uncached) < 95.0 {
            p.push(format!(
                "{name}: uncached answered in 100 ms: {:?}",
                self.uncached
            ));
        }
        if self.health.0 < 5 || Self::pct(self.health) < 99.0 {
            p.push(format!("{name}: /healthz answered: {:?}", self.health));
        }
        if self.rss >= RSS_LIMIT {
            p.push(format!("{name}: resident memory {} MB", self.rss / MB));
        }
        if self.log_lines > 1_000 {
            p.push(format!("{name}: {} log lines", self.log_lines));
        }
        p
    }
}

/// Runs `attack` (which blocks for its duration and says what it did) and reports on its
/// window.
fn run_attack(w: &World, name: &'static str, attack: impl FnOnce(&World) -> String) -> Report {
    let lines = w.log_lines();
    let from = Instant::now();
    let what = attack(w);
    let to = Instant::now();
    let patience = Duration::from_millis(100);
    let r = Report {
        name,
        what,
        cached: w.seen.within(Kind::Cached, from, to, patience),
        uncached: w.seen.within(Kind::Uncached, from, to, patience),
        health: w
            .seen
            .within(Kind::Health, from, to, Duration::from_secs(1)),
        rss: w.seen.max_rss(from, to),
        log_lines: w.log_lines().saturating_sub(lines),
        secs: (to - from).as_secs_f64(),
    };
    r.print();
    r
}

/// Runs `f` on one thread per attacker address inside the LAN namespace until `secs` pass.
fn from_each(
    w: &World,
    addrs: impl IntoIterator<Item = u8>,
    secs: f64,
    f: impl Fn(Ipv4Addr, Instant, &AtomicU64) + Send + Sync + Clone + 'static,
) -> u64 {
    let sent = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let threads: Vec<_> = addrs
        .into_iter()
        .map(|a| {
            let (f, sent) = (f.clone(), sent.clone());
            spawn_in(&w.net.client, "attacker", move || f(lan(a), until, &sent))
        })
        .collect();
    for t in threads {
        t.join().expect("attacker");
    }
    sent.load(Ordering::Relaxed)
}

fn idle_tcp(w: &World) -> String {
    // 2,000 connections to port 53 from 20 addresses, never a question on them.
    let conns = Arc::new(Mutex::new(Vec::new()));
    let c = conns.clone();
    let opened = from_each(w, 3..23, 0.5, move |src, _, n| {
        for _ in 0..100 {
            if let Some(fd) = tcp_from(src, RESOLVER) {
                c.lock().expect("lock").push(fd);
                n.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    std::thread::sleep(Duration::from_secs(3));
    // A rules reload meanwhile opens files: it must not fail for want of handles.
    sh(&["kill", "-HUP", &w.pid.to_string()]);
    std::thread::sleep(Duration::from_secs(3));
    let m = w.metrics();
    drop(conns);
    assert_eq!(
        metric(&m, "aiwarden_rules_last_reload_success", ""),
        1.0,
        "the reload during the attack succeeded"
    );
    assert_eq!(
        metric(&m, "aiwarden_rules_reloads_total", "result=\"ok\""),
        1.0,
        "one reload, and it went through"
    );
    format!(
        "{opened} connections opened; daemon holds {}; idle ones evicted {}, turned away {}",
        metric(&m, "aiwarden_dns_tcp_connections", ""),
        metric(
            &m,
            "aiwarden_dns_limited_total",
            "limit=\"tcp_evicted_idle\""
        ),
        metric(&m, "aiwarden_dns_limited_total", "limit=\"tcp_total\"")
            + metric(&m, "aiwarden_dns_limited_total", "limit=\"tcp_per_client\""),
    )
}

fn slow_metrics(w: &World) -> String {
    // 1,100 connections to /metrics from 11 addresses, each sending its head a byte every
    // half second, reconnecting when dropped.
    let opened = from_each(w, 23..34, 6.0, move |src, until, n| {
        let mut conns: Vec<Option<TcpStream>> = (0..100).map(|_| None).collect();
        let head = b"GET /metrics HTTP/1.1\r\nHost: x\r\n";
        let mut step = 0usize;
        while Instant::now() < until {
            for c in conns.iter_mut() {
                if c.is_none() {
                    *c = tcp_from(src, METRICS).map(TcpStream::from);
                    n.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(s) = c {
                    match s.write(&head[step % head.len()..=step % head.len()]) {
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => *c = None,
                    }
                }
            }
            step += 1;
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    let m = w.metrics();
    format!(
        "{opened} connections opened; idle ones evicted {}, turned away {}",
        metric(
            &m,
            "aiwarden_dns_limited_total",
            "limit=\"metrics_evicted_idle\""
        ),
        metric(
            &m,
            "aiwarden_dns_limited_total",
            "limit=\"metrics_connections\""
        ),
    )
}

fn slow_upstream(w: &World) -> String {
    // ~500 names a second the upstream never answers, from 5 addresses.
    let sent = from_each(w, 34..39, 5.0, move |src, until, n| {
        let s = UdpSocket::bind((src, 0)).expect("bind");
        s.connect(RESOLVER).expect("connect");
        s.set_nonblocking(true).expect("nonblocking");
        let mut i = 0u32;
        let mut buf = [0u8; 512];
        while Instant::now() < until {
            let q = query(
                i as u16,
                &format!("s{i}-{src}.slow.attack.test."),
                RecordType::A,
            );
            let _ = s.send(&q);
            n.fetch_add(1, Ordering::Relaxed);
            while s.recv(&mut buf).is_ok() {}
            i += 1;
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let m = w.metrics();
    format!(
        "{sent} slow names; SERVFAIL for a client's share {}, for all slots {}; upstream timeouts {}",
        metric(&m, "aiwarden_dns_limited_total", "limit=\"upstream_per_client\""),
        metric(&m, "aiwarden_dns_limited_total", "limit=\"upstream_inflight\""),
        metric(&m, "aiwarden_dns_upstream_failures_total", "reason=\"timeout\""),
    )
}

fn malformed(w: &World) -> String {
    // Garbage datagrams as fast as one core sends them, and TCP connections announcing
    // 65,535 bytes and sending junk.
    let udp = from_each(w, 39..40, 5.0, move |src, until, n| {
        let s = UdpSocket::bind((src, 0)).expect("bind");
        s.connect(RESOLVER).expect("connect");
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut buf = [0u8; 512];
        while Instant::now() < until {
            for _ in 0..256 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let len = 1 + (x as usize % 300);
                for (i, b) in buf[..len].iter_mut().enumerate() {
                    *b = (x >> (i % 8 * 8)) as u8 ^ i as u8;
                }
                let _ = s.send(&buf[..len]);
                n.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let tcp = from_each(w, 40..41, 3.0, move |src, until, n| {
        while Instant::now() < until {
            if let Some(fd) = tcp_from(src, RESOLVER) {
                let mut s = TcpStream::from(fd);
                std::thread::sleep(Duration::from_millis(2));
                let _ = s.write(b"\xff\xff\x00\x01junk that is not a question");
                n.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let m = w.metrics();
    format!(
        "{udp} garbage datagrams, {tcp} junk TCP connections; FORMERR answered {}, over the rate {}, dropped by a full socket queue {}",
        metric(&m, "aiwarden_dns_queries_total", "result=\"formerr\""),
        metric(&m, "aiwarden_dns_limited_total", "limit=\"client_rate\""),
        metric(&m, "aiwarden_dns_limited_total", "limit=\"udp_queue_full\""),
    )
}

fn valid_flood(w: &World) -> String {
    // One address asking a cached name as fast as it can.
    let sent = from_each(w, 41..42, 5.0, move |src, until, n| {
        let s = UdpSocket::bind((src, 0)).expect("bind");
        s.connect(RESOLVER).expect("connect");
        s.set_nonblocking(true).expect("nonblocking");
        let q = query(7, "c1.probe.test.", RecordType::A);
        let mut buf = [0u8; 512];
        while Instant::now() < until {
            for _ in 0..256 {
                let _ = s.send(&q);
                n.fetch_add(1, Ordering::Relaxed);
            }
            while s.recv(&mut buf).is_ok() {}
        }
    });
    let m = w.metrics();
    format!(
        "{sent} questions from one address; over the rate {}, dropped by a full socket queue {}",
        metric(&m, "aiwarden_dns_limited_total", "limit=\"client_rate\""),
        metric(&m, "aiwarden_dns_limited_total", "limit=\"udp_queue_full\""),
    )
}

fn deny_flood(w: &World) -> String {
    // 50 addresses of one device, each asking all 200 denied names.
    let before = w.incidents();
    let started = Instant::now();
    let sent = from_each(w, 42..92, 5.0, move |src, until, n| {
        let s = UdpSocket::bind((src, 0)).expect("bind");
        s.connect(RESOLVER).expect("connect");
        s.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0u8; 512];
        for j in 0..DENIED {
            if Instant::now() >= until {
                break;
            }
            let _ = s.send(&query(
                j as u16,
                &format!("evil{j}.attack.test."),
                RecordType::A,
            ));
            n.fetch_add(1, Ordering::Relaxed);
            while s.recv(&mut buf).is_ok() {}
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    let opened = w.incidents() - before;
    let m = w.metrics();
    let limited = metric(&m, "aiwarden_pipeline_total", "kind=\"opens_limited\"");
    // The budget in all: 600 a minute, a full minute's worth at once, refilled at 10/s.
    let budget = 600 + (started.elapsed().as_secs_f64() * 10.0).ceil() as usize;
    assert!(
        opened <= budget,
        "incidents opened stay within the budget: {opened} > {budget}"
    );
    assert!(limited > 0.0, "the budget was used up and counted");
    format!("{sent} denied questions from 50 addresses; {opened} incidents opened, {limited} not (budget)")
}

fn huge_answers(w: &World) -> String {
    // 800 names whose answers are ~62 KB (50 MB, past the 32 MiB cache), asked over TCP
    // (the whole answer comes back).
    let fetched = from_each(w, 92..96, 8.0, move |src, until, n| {
        for i in 0..200 {
            if Instant::now() >= until {
                break;
            }
            let Some(fd) = tcp_from(src, RESOLVER) else {
                continue;
            };
            let mut s = TcpStream::from(fd);
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
            let q = query(i, &format!("h{i}-{src}.huge.attack.test."), RecordType::TXT);
            let mut framed = (q.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&q);
            std::thread::sleep(Duration::from_millis(5));
            if s.write_all(&framed).is_err() {
                continue;
            }
            let mut len = [0u8; 2];
            if s.read_exact(&mut len).is_ok() {
                let mut a = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if s.read_exact(&mut a).is_ok() {
                    n.fetch_add(a.len() as u64, Ordering::Relaxed);
                }
            }
        }
    });
    let m = w.metrics();
    format!(
        "{:.1} MB of answers fetched; cache holds {:.1} MB, evicted {}",
        fetched as f64 / MB as f64,
        metric(&m, "aiwarden_dns_cache", "what=\"bytes\"") / MB as f64,
        metric(&m, "aiwarden_dns_cache_evictions_total", ""),
    )
}

/// A second captured interface on the gateway (a veth pair: this kernel may have no dummy
/// driver), up.
fn add_g2(gw: &str) {
    sh(&[
        "ip", "-n", gw, "link", "add", "g2", "type", "veth", "peer", "name", "g3",
    ]);
    for dev in ["g2", "g3"] {
        sh(&["ip", "-n", gw, "link", "set", dev, "up"]);
    }
}

fn vanished_interface(w: &World) -> String {
    // A captured interface deleted and added again.
    let gw = w.net.gateway.clone();
    let restarts = |m: &str| metric(m, "aiwarden_capture_restarts_total", "");
    let before = restarts(&w.metrics());
    sh(&["ip", "-n", &gw, "link", "del", "g2"]);
    let gone = Instant::now();
    let g = gw.clone();
    let health = move || {
        run_in(&g.clone(), || {
            http_get("/healthz", Duration::from_secs(1)).unwrap_or_default()
        })
    };
    wait_for(
        "healthz to say capture g2 is down",
        Duration::from_secs(10),
        || {
            let h = health();
            h.starts_with("HTTP/1.1 200") && h.contains("capture g2: down")
        },
    );
    let noticed = gone.elapsed();
    add_g2(&gw);
    let back = Instant::now();
    wait_for("capture g2 to reopen", Duration::from_secs(40), || {
        health().contains("capture g2: ok")
    });
    let reopened = back.elapsed();
    let after = restarts(&w.metrics());
    assert!(after > before, "the reopening is counted");
    format!(
        "down in healthz after {:.1} s (200, degraded), reopened {:.1} s after it came back",
        noticed.as_secs_f64(),
        reopened.as_secs_f64()
    )
}

#[test]
fn the_resolver_is_the_last_thing_standing() {
    if !is_root() {
        println!("skipped: needs root to create network namespaces (CI runs it as root)");
        return;
    }
    for tool in ["ip", "prlimit"] {
        assert!(have(tool), "{tool} is missing: run scripts/setup-debian.sh");
    }
    let suite = Instant::now();
    let bin = release_binary();
    // The hard limit this process may raise to (a container without CAP_SYS_RESOURCE
    // cannot go past it): this process holds thousands of attacking sockets, and the
    // daemon gets the unit's limit or this, the lower.
    let hard: u64 = sh(&["sh", "-c", "ulimit -Hn"])
        .trim()
        .parse()
        .unwrap_or(1024);
    let me = std::process::id().to_string();
    sh(&["prlimit", "--pid", &me, &format!("--nofile={hard}:{hard}")]);

    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let net = setup(false);
    let (client, gateway, upstream) = (
        net.client.clone(),
        net.gateway.clone(),
        net.upstream.clone(),
    );
    for a in 3..=100u8 {
        sh(&[
            "ip",
            "-n",
            &client,
            "addr",
            "add",
            &format!("{}/24", lan(a)),
            "dev",
            "c0",
        ]);
    }
    add_g2(&gateway);

    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let (_, asked) = run_in(&upstream, move || {
        fakedns::serve("10.77.2.2:53".parse().expect("addr"), s)
    });

    let rules = d.join("rules");
    copy_rules(&rules);
    let mut deny: String = (0..DENIED)
        .map(|j| format!("evil{j}.attack.test\n"))
        .collect();
    for i in 0..DENY_PATTERNS - DENIED {
        deny.push_str(&format!("host{i}.deny-{}.example\n", i % 977));
    }
    std::fs::write(rules.join("site/deny.list"), deny).expect("deny list");
    let config = shipped_config(d, &rules);
    let log = d.join("daemon.log");
    let (unit, unit_env) = unit_settings();
    let nofile = unit.min(hard);
    let mut net = net;
    let env_args: Vec<String> = unit_env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut args = vec!["env"];
    args.extend(env_args.iter().map(String::as_str));
    let limit = format!("--nofile={nofile}:{nofile}");
    let pid = net.spawn(
        &gateway,
        &[
            &args[..],
            &[
                "prlimit",
                &limit,
                bin.to_str().expect("utf8"),
                "run",
                "--config",
                config.to_str().expect("utf8"),
            ],
        ]
        .concat(),
        &log,
    );
    println!("daemon environment from the unit: {env_args:?}");
    let world = World {
        net,
        pid,
        log: log.clone(),
        store: d.join("incidents.db"),
        seen: Arc::new(Seen::default()),
    };
    wait_for("the resolver", Duration::from_secs(20), || {
        run_in(&client, || {
            let s = UdpSocket::bind((lan(2), 0)).expect("bind");
            s.connect(RESOLVER).expect("connect");
            ask(&s, 1, "c0.probe.test.", Duration::from_millis(500)).is_some()
        })
    });
    // Warm the cache with the probe's cached names.
    run_in(&client, || {
        let s = UdpSocket::bind((lan(2), 0)).expect("bind");
        s.connect(RESOLVER).expect("connect");
        for i in 0..CACHED {
            ask(&s, 2, &format!("c{i}.probe.test."), Duration::from_secs(1)).expect("warm");
        }
    });

    let seen = world.seen.clone();
    let sampler = {
        let (seen, stop) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let r = rss_of(pid);
                seen.rss.lock().expect("lock").push((Instant::now(), r));
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let probe = start_probe(&client, seen.clone(), stop.clone());
    let health = start_health_probe(&gateway, seen.clone(), stop.clone());
    std::thread::sleep(Duration::from_millis(500));

    // At idle, with 100,000 deny patterns: under 64 MB for one captured interface (this
    // one captures two; the second's ring is not counted against the bound).
    let idle = rss_of(pid);
    let rings = rings_of(pid);
    let one_interface = idle - rings.iter().skip(1).sum::<u64>();
    println!(
        "daemon pid {pid}, open-file limit {nofile} (the unit's {unit}, capped by this host's hard limit {hard}); idle with {DENY_PATTERNS} deny patterns: rss {:.1} MB, capture rings {:?} MB, {:.1} MB with one interface",
        idle as f64 / MB as f64,
        rings.iter().map(|r| r / MB).collect::<Vec<_>>(),
        one_interface as f64 / MB as f64,
    );
    assert_eq!(rings.len(), 2, "two capture rings mapped");
    assert!(
        one_interface < 64 * MB,
        "idle resident memory {one_interface}"
    );
    let attacks: [(&'static str, Attack); 9] = [
        ("quiet", |_| {
            std::thread::sleep(Duration::from_secs(3));
            "no attack (baseline)".into()
        }),
        ("idle_tcp", idle_tcp),
        ("slow_metrics", slow_metrics),
        ("slow_upstream", slow_upstream),
        ("malformed", malformed),
        ("valid_flood", valid_flood),
        ("deny_flood", deny_flood),
        ("huge_answers", huge_answers),
        ("vanished_iface", vanished_interface),
    ];
    // AIWARDEN_FAULTS=name,name runs only those (while working on one).
    let only = std::env::var("AIWARDEN_FAULTS").unwrap_or_default();
    let mut problems = Vec::new();
    for (name, attack) in attacks {
        if !only.is_empty() && !only.split(',').any(|o| o == name) {
            continue;
        }
        let r = run_attack(&world, name, attack);
        problems.extend(r.problems());
        // Let the daemon settle between attacks (idle connections time out, slow names
        // give up) so each window shows its own attack.
        std::thread::sleep(Duration::from_secs(2));
    }
    stop.store(true, Ordering::Relaxed);
    for t in [probe, health, sampler] {
        t.join().expect("probe thread");
    }
    let total_rss = seen.max_rss(suite, Instant::now());
    println!(
        "fake upstream asked {} over UDP, {} over TCP ({} slow, {} huge); max rss {:.1} MB; log {} lines; suite {:.1} s",
        asked.udp.load(Ordering::Relaxed),
        asked.tcp.load(Ordering::Relaxed),
        asked.slow.load(Ordering::Relaxed),
        asked.huge.load(Ordering::Relaxed),
        total_rss as f64 / MB as f64,
        world.log_lines(),
        suite.elapsed().as_secs_f64()
    );
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !log_text.contains("panicked"),
        "the daemon panicked:\n{log_text}"
    );
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the daemon is still running"
    );
    assert!(problems.is_empty(), "{problems:#?}");
}
