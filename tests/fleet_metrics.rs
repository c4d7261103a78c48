//! The metrics roll-up of docs/fleet.md, for real: two daemons (sites `elm-street` and
//! `oak-lane`) each block a query asked with `dig`, turn away a burst with their rate limit
//! and capture on `lo`; a site Prometheus (Debian's `/usr/bin/prometheus`, started here
//! with its own storage and port, not the package's service) scrapes both with
//! `docs/fleet/prometheus-site.yml` and serves its web port with TLS and basic auth from
//! `docs/fleet/prometheus-web.yml`; a central Prometheus federates from it with
//! `docs/fleet/prometheus-central.yml` over that TLS (the CA made here with rcgen) and basic
//! auth. Every PromQL expression of `docs/fleet/grafana-dashboard.json` (and its `site`
//! variable) is then asked of the central Prometheus's HTTP API: each answers, and each
//! grouped by site answers for both sites. Every `aiwarden_*` name in the dashboard is
//! one the daemon exports, and the agent-mode example passes `promtool check config`.
//!
//! The shipped files are used as they are except for what a test must change, each
//! replacement checked to hit exactly once: `scrape_interval: 30s` becomes 1s (so the
//! test takes seconds, not minutes), the example addresses become loopback ports, the
//! example file paths temporary files, the placeholder hash a bcrypt hash of a password
//! made here (with Debian's python3 `crypt`, libxcrypt's bcrypt).
//!
//! Needs root (capture on `lo`) and the `prometheus` package; skips with a printed reason
//! otherwise. Only loopback traffic. Prints its duration.

#[path = "support/fakedns.rs"]
mod fakedns;
#[path = "support/netns.rs"]
mod netns;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netns::{copy_rules, is_root, BIN};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const SITES: [&str; 2] = ["elm-street", "oak-lane"];
/// The box addresses the shipped site file names, one per site, in `SITES` order.
const EXAMPLE_BOXES: [&str; 2] = ["192.0.2.10:9747", "192.0.2.20:9747"];

fn docs(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/fleet")
        .join(name)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The shipped file `name` with each `(from, to)` replaced; each `from` must occur exactly
/// once, so a change to the file that the test would silently miss fails here.
fn templated(name: &str, swaps: &[(&str, String)]) -> String {
    let mut text = std::fs::read_to_string(docs(name)).expect("shipped file");
    for (from, to) in swaps {
        assert_eq!(
            text.matches(from).count(),
            1,
            "{name}: {from:?} should occur exactly once"
        );
        text = text.replace(from, to);
    }
    text
}

/// Children killed (by their own PID) and reaped when dropped.
#[derive(Default)]
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A plain HTTP/1.0 GET on loopback: (status line, body).
fn get(port: u16, path: &str) -> (String, String) {
    let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (String::new(), String::new());
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = c.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes());
    let mut s = String::new();
    let _ = c.read_to_string(&mut s);
    let (head, body) = s.split_once("\r\n\r\n").unwrap_or((&s, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The central Prometheus's answer to an instant query: the `result` array.
fn query(port: u16, expr: &str) -> Vec<serde_json::Value> {
    let (status, body) = get(port, &format!("/api/v1/query?query={}", urlencode(expr)));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    assert!(
        status.contains(" 200 ") && v["status"] == "success",
        "{expr}: {status}: {body}"
    );
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn sites_of(result: &[serde_json::Value]) -> BTreeSet<String> {
    result
        .iter()
        .filter_map(|r| r["metric"]["site"].as_str().map(str::to_string))
        .collect()
}

/// Asks `server` for `name` from `from` with dig: the response code.
fn dig(server: SocketAddr, from: &str, name: &str) -> String {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "-b", from])
        .args(["+tries=1", "+time=2", "+noall", "+comments", name, "A"])
        .output()
        .expect("dig");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("")
        .to_string()
}

/// A DNS question for `name` (type A).
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A CA, and a certificate it signs for 127.0.0.1: (CA file, cert file, key file).
fn site_tls(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "msp-ca");
    let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("key");
    let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("params");
    leaf.distinguished_name
        .push(DnType::CommonName, "site-prometheus");
    leaf.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let cert = leaf.signed_by(&key, &issuer).expect("signed");
    let paths = (
        dir.join("msp-ca.pem"),
        dir.join("site.crt"),
        dir.join("site.key"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).expect("ca");
    std::fs::write(&paths.1, cert.pem()).expect("cert");
    std::fs::write(&paths.2, key.serialize_pem()).expect("key");
    paths
}

/// A bcrypt hash of `password` (cost 10), from libxcrypt through Debian's python3.
fn bcrypt(password: &str) -> String {
    let out = Command::new("/usr/bin/python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1024)))",
            password,
        ])
        .output()
        .expect("python3");
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(hash.starts_with("$2b$10$"), "bcrypt: {out:?}");
    hash
}

/// One daemon of site `site`: DNS on a loopback port (upstream the fake server), capture on
/// `lo`, metrics on a loopback port, a rate limit of 5 queries a second per client.
fn daemon(kids: &mut Children, dir: &Path, site: &str, upstream: SocketAddr) -> (SocketAddr, u16) {
    let d = dir.join(site);
    std::fs::create_dir_all(&d).expect("mkdir");
    let (dns, http) = (free_port(), free_port());
    let config = d.join("aiwarden.toml");
    std::fs::write(
        &config,
        format!(
            "mode = \"enforce\"\nsite_name = \"{site}\"\nrules = \"{}\"\n\
             [dns]\nlisten = [\"127.0.0.1:{dns}\"]\nupstreams = [\"{upstream}\"]\ntimeout_ms = 500\n\
             rate_limit = 5\nrate_burst = 5\n\
             [capture]\ninterfaces = [\"lo\"]\n\
             [store]\npath = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:{http}\"\n",
            dir.join("rules").display(),
            d.join("incidents.db").display()
        ),
    )
    .expect("config");
    kids.0.push(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(&config)
            .env("AIWARDEN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("daemon.log")).expect("log"))
            .spawn()
            .expect("daemon"),
    );
    let dns = SocketAddr::from(([127, 0, 0, 1], dns));
    wait_for(
        &format!("{site}: the daemon"),
        Duration::from_secs(20),
        || {
            get(http, "/healthz").0.contains(" 200 ")
                && dig(dns, "127.0.0.1", "ready.example") == "NOERROR"
        },
    );
    (dns, http)
}

fn prometheus(
    kids: &mut Children,
    dir: &Path,
    name: &str,
    config: &str,
    web: Option<&Path>,
) -> u16 {
    let port = free_port();
    let file = dir.join(format!("{name}.yml"));
    std::fs::write(&file, config).expect("config");
    let mut cmd = Command::new(PROMETHEUS);
    cmd.arg(format!("--config.file={}", file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join(format!("{name}-data")).display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    if let Some(w) = web {
        cmd.arg(format!("--web.config.file={}", w.display()));
    }
    kids.0.push(
        cmd.stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).expect("log"))
            .spawn()
            .expect("prometheus"),
    );
    port
}

/// The PromQL of every panel, with its title; the `site` variable's query.
fn dashboard() -> (Vec<(String, String)>, String) {
    let text = std::fs::read_to_string(docs("grafana-dashboard.json")).expect("dashboard");
    let d: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let mut exprs = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            exprs.push((
                p["title"].as_str().expect("title").to_string(),
                t["expr"].as_str().expect("expr").to_string(),
            ));
        }
    }
    let site = d["templating"]["list"]
        .as_array()
        .expect("variables")
        .iter()
        .find(|v| v["name"] == "site")
        .expect("a site variable");
    let q = site["query"]["query"].as_str().expect("site query");
    (exprs, q.to_string())
}

#[test]
fn dashboard_queries_answer_per_site_through_federation() {
    let t0 = Instant::now();
    if !is_root() {
        println!("skipped: capture on lo needs root (CI runs as root)");
        return;
    }
    if !Path::new(PROMETHEUS).exists() {
        println!("skipped: {PROMETHEUS} is missing (scripts/setup-debian.sh installs prometheus)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    copy_rules(&d.join("rules"));
    let stop = Arc::new(AtomicBool::new(false));
    let (upstream, _) = fakedns::serve("127.0.0.1:0".parse().expect("addr"), stop.clone());
    let mut kids = Children::default();

    // Two boxes, each with a blocked query (an incident) and a burst over its rate limit.
    let mut boxes = Vec::new();
    for site in SITES {
        let (dns, http) = daemon(&mut kids, d, site, upstream);
        assert_eq!(dig(dns, "127.0.0.11", "chatgpt.com"), "NXDOMAIN", "{site}");
        let burst = UdpSocket::bind("127.0.0.12:0").expect("bind");
        for i in 0..20 {
            burst
                .send_to(&dns_query(i, &format!("b{i}.example")), dns)
                .expect("send");
        }
        boxes.push(http);
    }
    for (site, http) in SITES.iter().zip(&boxes) {
        wait_for(
            &format!("{site}: counters"),
            Duration::from_secs(10),
            || {
                let m = get(*http, "/metrics").1;
                let value = |name: &str| -> f64 {
                    m.lines()
                        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                        .unwrap_or(0.0)
                };
                value("aiwarden_incidents_total{verdict=\"block\"}") == 1.0
                    && value("aiwarden_dns_limited_total{limit=\"client_rate\"}") >= 10.0
            },
        );
    }

    // The site Prometheus: the shipped files, 1 s scrapes, the boxes' loopback ports, TLS
    // and basic auth on its web port.
    let (ca, cert, key) = site_tls(d);
    let password = "federate-test-password";
    let web = d.join("prometheus-web.yml");
    std::fs::write(
        &web,
        templated(
            "prometheus-web.yml",
            &[
                ("/etc/prometheus/site.crt", cert.display().to_string()),
                ("/etc/prometheus/site.key", key.display().to_string()),
                ("BCRYPT-HASH-OF-THE-PASSWORD", bcrypt(password)),
            ],
        ),
    )
    .expect("web config");
    let site_yml = templated(
        "prometheus-site.yml",
        &[
            ("scrape_interval: 30s", "scrape_interval: 1s".into()),
            (EXAMPLE_BOXES[0], format!("127.0.0.1:{}", boxes[0])),
            (EXAMPLE_BOXES[1], format!("127.0.0.1:{}", boxes[1])),
        ],
    );
    let site_port = prometheus(&mut kids, d, "site", &site_yml, Some(&web));

    // The central Prometheus federating from it over TLS with basic auth.
    let password_file = d.join("federate.password");
    std::fs::write(&password_file, password).expect("password");
    let central_yml = templated(
        "prometheus-central.yml",
        &[
            ("scrape_interval: 30s", "scrape_interval: 1s".into()),
            (
                "prometheus.elm-street.msp.example:9090",
                format!("127.0.0.1:{site_port}"),
            ),
            ("/etc/prometheus/msp-ca.pem", ca.display().to_string()),
            (
                "/etc/prometheus/federate.password",
                password_file.display().to_string(),
            ),
        ],
    );
    let central = prometheus(&mut kids, d, "central", &central_yml, None);

    // The site Prometheus answers nothing without the password (and nothing in plain HTTP).
    wait_for("the site prometheus", Duration::from_secs(20), || {
        !get(site_port, "/-/ready").0.is_empty()
    });
    let plain = get(site_port, "/federate?match[]=up").0;
    assert!(!plain.contains(" 200 "), "plain http answered: {plain}");

    // Federation works: the central Prometheus sees both boxes up, with their sites.
    wait_for("federated series", Duration::from_secs(30), || {
        let r = get(central, "/api/v1/query?query=up%7Bjob%3D%22aiwarden%22%7D").1;
        SITES
            .iter()
            .all(|s| r.contains(&format!("\"site\":\"{s}\"")))
            && r.matches("\"1\"]").count() >= 2
    });
    let fed = query(central, "up{job=\"aiwarden-federate\"}");
    assert_eq!(fed.len(), 1, "{fed:?}");
    assert_eq!(
        fed[0]["value"][1], "1",
        "federation over tls with basic auth: {fed:?}"
    );

    // Every expression of the dashboard, `$site` as Grafana sends a multi-value selection.
    let (exprs, site_query) = dashboard();
    let both: BTreeSet<String> = SITES.iter().map(|s| s.to_string()).collect();
    let substitute = |e: &str| {
        e.replace("$site", &SITES.join("|"))
            .replace("$__rate_interval", "1m")
            .replace("$__range", "5m")
    };
    for (title, expr) in &exprs {
        let q = substitute(expr);
        assert!(!q.contains('$'), "{title}: a variable left: {q}");
        let per_site = expr.contains("by (site");
        let mut last = Vec::new();
        wait_for(&format!("{title}: {q}"), Duration::from_secs(30), || {
            last = query(central, &q);
            !last.is_empty() && (!per_site || sites_of(&last) == both)
        });
        println!(
            "{title}: {} series{}",
            last.len(),
            if per_site { ", both sites" } else { "" }
        );
    }
    // What the boxes did came through: one blocked incident and a burst limited at each.
    for site in SITES {
        let r = query(
            central,
            &format!("aiwarden_incidents_total{{site=\"{site}\", verdict=\"block\"}}"),
        );
        assert_eq!(r.len(), 1, "{site}: {r:?}");
        assert_eq!(r[0]["value"][1], "1", "{site}: {r:?}");
        let r = query(
            central,
            &format!("aiwarden_dns_limited_total{{site=\"{site}\", limit=\"client_rate\"}} > 0"),
        );
        assert_eq!(r.len(), 1, "{site}: limited: {r:?}");
    }
    // The `site` variable: label_values(METRIC, site) as Grafana asks it.
    let (metric, label) = site_query
        .strip_prefix("label_values(")
        .and_then(|s| s.strip_suffix(')'))
        .and_then(|s| s.split_once(", "))
        .expect("label_values(METRIC, site)");
    assert_eq!(label, "site");
    let (_, body) = get(
        central,
        &format!("/api/v1/label/site/values?match[]={}", urlencode(metric)),
    );
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let sites: BTreeSet<String> = v["data"]
        .as_array()
        .expect("values")
        .iter()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect();
    assert_eq!(sites, both, "{body}");

    // Every aiwarden_* name the dashboard uses is one the daemon exports.
    let exported = get(boxes[0], "/metrics").1;
    let mut names = BTreeSet::new();
    for (_, e) in exprs
        .iter()
        .chain([(String::new(), site_query.clone())].iter())
    {
        for (i, _) in e.match_indices("aiwarden_") {
            let name: String = e[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    for n in &names {
        assert!(
            exported.contains(&format!("\n# TYPE {n} ")),
            "the dashboard uses {n}, which the daemon does not export"
        );
    }
    println!("dashboard metric names, all exported: {names:?}");

    // The agent-mode example (remote write) is a valid agent configuration as shipped.
    let check = Command::new("promtool")
        .args(["check", "config", "--agent"])
        .arg(docs("prometheus-agent.yml"))
        .output()
        .expect("promtool");
    assert!(check.status.success(), "{check:?}");

    drop(kids);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    println!("fleet_metrics: {:.1} s", t0.elapsed().as_secs_f64());
}
