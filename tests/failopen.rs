//! Fail-open, timed: aiwarden as a router in enforce mode, run the way the shipped unit
//! runs it (its Restart=, RestartSec=, WatchdogSec=, WatchdogSignal=, Environment= and
//! ExecStopPost=, applied by `support/supervisor.rs` since systemd is not PID 1 here), while
//! a client loop asks DNS of the gateway and fetches an allowed HTTPS page. The daemon is
//! killed (SIGKILL), then hung (SIGSTOP); each time the test prints how long until DNS and
//! HTTPS work again and asserts at most 5 s, then that the restarted daemon blocks again
//! and left no stale state (one table, its own chains, one iptables hook).
//!
//! Needs root (namespaces, nftables); skips with a printed reason otherwise.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "support/netns.rs"]
mod netns;
#[path = "support/supervisor.rs"]
mod supervisor;

use netns::*;
use supervisor::{Supervisor, Unit};

/// One round of the client loop: when it started and ended, and what worked.
#[derive(Debug, Clone, Copy)]
struct Sample {
    start: Instant,
    end: Instant,
    dns: bool,
    https: bool,
}

fn client_loop(
    net: &Net,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Vec<Sample>>>,
) -> std::thread::JoinHandle<()> {
    let client = net.client.clone();
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let start = Instant::now();
            let dns = std::process::Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &client,
                    "dig",
                    "@10.77.1.1",
                    "+time=1",
                    "+tries=1",
                    "+short",
                    "allowed.example",
                ])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("198.51.100.7"))
                .unwrap_or(false);
            let https = std::process::Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &client,
                    "curl",
                    "-sk",
                    "--max-time",
                    "1",
                    "--resolve",
                    "news.example:443:203.0.113.10",
                    "https://news.example/",
                ])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("hello news.example"))
                .unwrap_or(false);
            out.lock().expect("samples").push(Sample {
                start,
                end: Instant::now(),
                dns,
                https,
            });
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

/// Time from `fault` until DNS and HTTPS both work for good: the end of the last round
/// after `fault` in which either failed (zero when none did).
fn recovery(samples: &[Sample], fault: Instant, what: fn(&Sample) -> bool) -> Duration {
    samples
        .iter()
        .filter(|s| s.end > fault && !what(s))
        .map(|s| s.end.duration_since(fault))
        .max()
        .unwrap_or_default()
}

fn blocked(net: &Net) -> bool {
    let o = net
        .exec(
            &net.client,
            &[
                "curl",
                "-sk",
                "--max-time",
                "3",
                "--resolve",
                "chatgpt.com:443:203.0.113.10",
                "https://chatgpt.com/",
            ],
        )
        .output()
        .expect("curl");
    !String::from_utf8_lossy(&o.stdout).contains("hello")
}

fn wait_restarted(net: &Net, sup: &Supervisor, old: u32) {
    wait_for(
        "the daemon to be restarted",
        Duration::from_secs(20),
        || {
            let pid = sup.pid();
            pid != 0 && pid != old && Path::new(&format!("/proc/{pid}")).exists()
        },
    );
    wait_for(
        "the restarted daemon to block again",
        Duration::from_secs(20),
        || {
            net.in_ns(&net.gateway, &["nft", "list", "tables"])
                .contains("aiwarden")
                && net
                    .in_ns(&net.gateway, &["nft", "list", "table", "inet", "aiwarden"])
                    .contains("forward_filter")
                && blocked(net)
        },
    );
}

fn no_stale_state(net: &Net) {
    let table = net.in_ns(&net.gateway, &["nft", "list", "table", "inet", "aiwarden"]);
    assert!(
        !table.contains("dns_failopen"),
        "the fail-open table stayed: {table}"
    );
    let mut chains: Vec<&str> = table
        .lines()
        .filter_map(|l| l.trim().strip_prefix("chain "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    chains.sort_unstable();
    assert_eq!(
        chains,
        ["bare", "dns_redirect", "forward_filter", "prefilter"],
        "{table}"
    );
    let tables = net.in_ns(&net.gateway, &["nft", "list", "tables"]);
    assert_eq!(tables.matches("aiwarden").count(), 1, "{tables}");
    for tool in ["iptables", "ip6tables"] {
        let mangle = net.in_ns(&net.gateway, &[tool, "-t", "mangle", "-S", "FORWARD"]);
        assert!(
            mangle.matches("-j AIWARDEN").count() <= 1,
            "{tool}: one hook at most: {mangle}"
        );
    }
}

#[test]
fn clinic_keeps_working_within_seconds_when_the_daemon_dies_or_hangs() {
    if !is_root() {
        println!(
            "skipped: needs root to create network namespaces and nftables (CI runs it as root)"
        );
        return;
    }
    for tool in ["ip", "nft", "dig", "dnsmasq", "curl", "iptables"] {
        assert!(have(tool), "{tool} is missing: run scripts/setup-debian.sh");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut net = setup(true);
    let upstream = net.upstream.clone();
    dnsmasq(
        &mut net,
        &upstream,
        &["10.77.2.2"],
        &["/allowed.example/198.51.100.7"],
        &d.join("dnsmasq.log"),
    );
    let server = example_path("tls_server");
    net.spawn(
        &upstream,
        &[server.to_str().expect("utf8"), "--tls", "203.0.113.10:443"],
        &d.join("tls_server.log"),
    );
    let rules = d.join("rules");
    copy_rules(&rules);
    let config = d.join("aiwarden.toml");
    std::fs::write(
        &config,
        router_config(&rules, &d.join("incidents.db"), &[], ""),
    )
    .expect("config");
    let unit = Unit::shipped(BIN, &config);
    println!("unit: {unit:?}");
    let log = d.join("daemon.log");
    let sup = Supervisor::start(unit, &net.gateway, BIN, &config, &log, &d.join("run"));
    wait_restarted(&net, &sup, 0);
    no_stale_state(&net);

    let samples = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let looper = client_loop(&net, stop.clone(), samples.clone());
    std::thread::sleep(Duration::from_secs(2));
    let t0 = Instant::now();
    let mut results = Vec::new();
    for (name, signal) in [("SIGKILL", "-KILL"), ("SIGSTOP", "-STOP")] {
        let pid = sup.pid();
        let fault = Instant::now();
        sh(&["kill", signal, &pid.to_string()]);
        wait_restarted(&net, &sup, pid);
        // A few more rounds after the restart, so "for good" means something.
        std::thread::sleep(Duration::from_secs(3));
        let s = samples.lock().expect("samples").clone();
        let dns = recovery(&s, fault, |s| s.dns);
        let https = recovery(&s, fault, |s| s.https);
        let rounds = s.iter().filter(|x| x.start >= fault).count();
        println!(
            "{name}: DNS works again after {:.2} s, HTTPS to an allowed host after {:.2} s ({rounds} client rounds)",
            dns.as_secs_f64(),
            https.as_secs_f64()
        );
        no_stale_state(&net);
        results.push((name, dns, https));
    }
    stop.store(true, Ordering::SeqCst);
    let _ = looper.join();
    for e in sup.events_since(t0) {
        println!("  {e}");
    }
    sup.stop();
    let tables = net.in_ns(&net.gateway, &["nft", "list", "tables"]);
    assert!(
        !tables.contains("aiwarden"),
        "a clean stop removes the table: {tables}"
    );
    for (name, dns, https) in results {
        assert!(
            dns <= Duration::from_secs(5),
            "{name}: DNS back after {dns:?}"
        );
        assert!(
            https <= Duration::from_secs(5),
            "{name}: HTTPS back after {https:?}"
        );
    }
}
