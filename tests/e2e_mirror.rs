//! Sensor placement end to end: aiwarden on a switch's mirror port resets connections to
//! blocked names by injecting TCP resets onto the LAN (see `support/mirror.rs` for the
//! namespaces: a bridge whose client and server ports are mirrored to the sensor's, the
//! server 20 ms away).
//!
//! A real rustls client makes 100 handshakes with SNI `chatgpt.com` (blocked) to a real
//! rustls server; each must be reset before any byte of the server's reply arrived and
//! within one round trip of the ClientHello (at least 95 of 100: the reset races the
//! server's reply by design). 100 handshakes for `allowed.example` to the same server
//! complete. The incident records the reset; `/metrics` counts the resets sent. Prints the
//! rate and the ClientHello-to-reset latency (p50, p99).
//!
//! Needs root (namespaces); skips with a printed reason otherwise.

use std::net::SocketAddr;
use std::time::Duration;

#[path = "support/mirror.rs"]
mod mirror;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/nsthread.rs"]
mod nsthread;

use mirror::{attempt, quantile, Outcome, SERVER, SERVER_DELAY};
use netns::{copy_rules, have, incidents, is_root, wait_for, BIN};

const TRIES: usize = 100;
const NEEDED: usize = 95;

#[test]
fn a_sensor_on_a_mirror_port_resets_blocked_connections() {
    if !is_root() {
        println!("skipped: needs root to create network namespaces (CI runs it as root)");
        return;
    }
    for tool in ["ip", "tc", "curl"] {
        assert!(have(tool), "{tool} is missing: run scripts/setup-debian.sh");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut net = mirror::setup();
    let server: SocketAddr = SERVER.parse().expect("addr");
    let tls = mirror::tls(&["chatgpt.com", "allowed.example"]);
    if !net.netem {
        println!("netem is not available: the server delays its reply by {SERVER_DELAY:?} itself");
    }
    let delay = (!net.netem).then_some(SERVER_DELAY);
    let _server = mirror::serve(&net.server, server, tls.server.clone(), delay);

    // The sensor: enforce mode, placement sensor, capturing on (and resetting from) its
    // mirror port. No resolver: the sensor is not the clinic's DNS here.
    let rules = d.join("rules");
    copy_rules(&rules);
    let store = d.join("incidents.db");
    let config = d.join("aiwarden.toml");
    std::fs::write(
        &config,
        format!(
            r#"mode = "enforce"
rules = "{rules}"
incident_window_secs = 600
[capture]
interfaces = ["m0"]
[dns]
listen = []
[store]
path = "{store}"
[metrics]
listen = "127.0.0.1:9747"
[enforcement]
placement = "sensor"
"#,
            rules = rules.display(),
            store = store.display(),
        ),
    )
    .expect("config");
    let log = d.join("daemon.log");
    let sensor = net.sensor.clone();
    net.spawn(
        &sensor,
        &[BIN, "run", "--config", config.to_str().expect("utf8")],
        &log,
    );
    let daemon_log = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("the sensor's capture", Duration::from_secs(20), || {
        let health = net.get("http://127.0.0.1:9747/healthz");
        health.lines().any(|l| l.starts_with("capture "))
            && health
                .lines()
                .filter(|l| l.starts_with("capture "))
                .all(|l| l.ends_with(": ok"))
    });
    assert!(
        daemon_log().contains("blocked TCP connections are reset"),
        "the resetter did not open:\n{}",
        daemon_log()
    );

    // Control first: allowed handshakes complete (and the switch learns where everyone is).
    let mut allowed = 0;
    let mut other = Vec::new();
    for _ in 0..TRIES {
        match attempt(&net.client, server, "allowed.example", tls.client.clone()) {
            Outcome::Handshake { .. } => allowed += 1,
            o => other.push(o),
        }
    }
    println!("allowed.example: {allowed}/{TRIES} handshakes completed; others: {other:?}");

    // Blocked: reset before the server's reply, within one round trip.
    let mut in_time = Vec::new();
    let mut late = Vec::new();
    for _ in 0..TRIES {
        match attempt(&net.client, server, "chatgpt.com", tls.client.clone()) {
            Outcome::Reset {
                after,
                server_bytes: 0,
            } if after < SERVER_DELAY => in_time.push(after),
            o => late.push(o),
        }
    }
    let reset = in_time.len();
    let p50 = quantile(&mut in_time, 0.5);
    let p99 = quantile(&mut in_time, 0.99);
    println!(
        "chatgpt.com: {reset}/{TRIES} reset within one round trip ({} ms); ClientHello to reset p50 {:.2} ms, p99 {:.2} ms",
        SERVER_DELAY.as_millis(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
    );
    if !late.is_empty() {
        println!("not reset in time: {late:?}");
    }

    let metrics = net.get("http://127.0.0.1:9747/metrics");
    for l in metrics
        .lines()
        .filter(|l| l.starts_with("aiwarden_resets") || l.starts_with("aiwarden_enforced"))
    {
        println!("metrics: {l}");
    }
    assert!(
        allowed >= NEEDED,
        "allowed handshakes: {allowed}/{TRIES}: {other:?}\n{}",
        daemon_log()
    );
    assert!(
        reset >= NEEDED,
        "reset in time: {reset}/{TRIES}: {late:?}\n{}",
        daemon_log()
    );
    let sent = metrics
        .lines()
        .find_map(|l| l.strip_prefix("aiwarden_resets_total{result=\"sent\"} "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(sent >= reset as u64, "resets sent: {sent}\n{metrics}");
    assert!(
        !metrics.contains("aiwarden_resets_total{result=\"error\"}"),
        "{metrics}"
    );

    // The incident says what was done.
    wait_for("the chatgpt incident", Duration::from_secs(10), || {
        incidents(&store)
            .iter()
            .any(|i| i["service"] == "chatgpt" && i["client_ip"] == mirror::CLIENT_IP)
    });
    let all = incidents(&store);
    let blocked: Vec<_> = all.iter().filter(|i| i["verdict"] == "block").collect();
    assert!(!blocked.is_empty(), "{all:?}");
    for i in &blocked {
        println!(
            "incident {}: {} {} {} how={} hows={}",
            i["id"], i["client_ip"], i["service"], i["host"], i["how"], i["hows"]
        );
        assert!(
            i["how"].as_str().is_some_and(|h| h.contains("reset")),
            "a block without the reset recorded: {i}"
        );
    }
    assert!(
        !all.iter().any(|i| i["host"] == "allowed.example"),
        "the allowed name left an incident: {all:?}"
    );
}
