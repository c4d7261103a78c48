//! Slow first flights, live, in network namespaces this test creates (`support/netns.rs`):
//! the gateway runs `aiwarden run` capturing on its LAN veth while the client sends
//!
//! - (a) 200 real rustls ClientHellos as one-byte TCP segments, written onto the client's
//!   veth by the `trickle` example (libpcap) at 5,000 packets/s and interleaved, so each
//!   flight lasts the whole run (about 10 s): the case that detected 0 of 200 live while
//!   a replay of a file with packed timestamps found all 200;
//! - (b) a real TLS 1.3 handshake (the `probe` example, rustls) paused 5.5 s mid-ClientHello;
//! - (c) a real handshake whose ClientHello goes one byte per 30 ms (`--classic`: X25519
//!   only, about 265 bytes, so 8 s).
//!
//! ```text
//!  client c0 10.77.1.2 ── g0 gateway (aiwarden: capture g0, no resolver) g1 ── u0 upstream
//!  (a) → 198.18.0.10:443 (blackholed at the gateway: only the capture matters)
//!  (b) → 10.77.2.2:443, (c) → 10.77.2.2:4443 (openssl s_server)
//! ```
//!
//! Every flight is detected; the daemon's metrics, its store and a replay of the frames
//! the sender wrote (with the times it sent them) agree; nothing is given up or dropped.
//! Prints its duration. Needs root; skips with a printed reason otherwise.

#[path = "support/netns.rs"]
mod netns;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netns::*;

/// The value of the metric line that starts with `name` (0 when absent).
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

/// `/metrics` in the gateway's namespace, empty while nothing answers.
fn try_metrics(net: &Net) -> String {
    net.exec(
        &net.gateway,
        &[
            "curl",
            "-s",
            "--max-time",
            "2",
            "http://127.0.0.1:9747/metrics",
        ],
    )
    .output()
    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    .unwrap_or_default()
}

#[test]
fn slow_first_flights_are_detected_live() {
    if !is_root() {
        println!("skipped: needs root to create network namespaces (CI runs it as root)");
        return;
    }
    for tool in ["ip", "openssl", "curl", "dig"] {
        assert!(have(tool), "{tool} is missing: run scripts/setup-debian.sh");
    }
    let built = Instant::now();
    let probe = probe();
    let trickle = trickle();
    let start = Instant::now();
    println!("examples built in {:.1}s", (start - built).as_secs_f64());
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut net = setup(false);
    let (client, gateway, upstream) = (
        net.client.clone(),
        net.gateway.clone(),
        net.upstream.clone(),
    );
    net.in_ns(
        &gateway,
        &["ip", "route", "add", "blackhole", "198.18.0.0/15"],
    );

    // Upstream: two TLS servers.
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let (crt, key) = (d.join("c.pem"), d.join("k.pem"));
    std::fs::write(&crt, cert.cert.pem()).expect("write cert");
    std::fs::write(&key, cert.signing_key.serialize_pem()).expect("write key");
    for port in ["443", "4443"] {
        net.spawn(
            &upstream,
            &[
                "openssl",
                "s_server",
                "-quiet",
                "-accept",
                &format!("10.77.2.2:{port}"),
                "-cert",
                crt.to_str().expect("utf8"),
                "-key",
                key.to_str().expect("utf8"),
            ],
            &d.join(format!("s_server_{port}.log")),
        );
    }

    // The daemon: capture on g0, no resolver, metrics in the gateway's namespace.
    let rules = d.join("rules");
    copy_rules(&rules);
    let store = d.join("incidents.db");
    let config = d.join("aiwarden.toml");
    std::fs::write(
        &config,
        format!(
            "mode = \"enforce\"\nrules = \"{}\"\n[capture]\ninterfaces = [\"g0\"]\n\
             [store]\npath = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:9747\"\n",
            rules.display(),
            store.display()
        ),
    )
    .expect("config");
    net.spawn(
        &gateway,
        &[BIN, "run", "--config", config.to_str().expect("utf8")],
        &d.join("daemon.log"),
    );
    // Ready once a captured frame is counted (a DNS query nobody answers).
    wait_for("the daemon's capture", Duration::from_secs(20), || {
        let _ = net
            .exec(
                &client,
                &["dig", "@10.77.1.1", "+time=1", "+tries=1", "ready.example"],
            )
            .output();
        metric(&try_metrics(&net), "aiwarden_packets_total") > 0
    });
    let ready = start.elapsed();

    // (a), (b) and (c) at once.
    let gw_mac = net
        .in_ns(&gateway, &["cat", "/sys/class/net/g0/address"])
        .trim()
        .to_string();
    let sent = d.join("sent.pcap");
    let spawn = |args: &[&str]| {
        net.exec(&client, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    };
    let (probe, trickle) = (
        probe.to_str().expect("utf8"),
        trickle.to_str().expect("utf8"),
    );
    let senders = [
        spawn(&[
            trickle,
            "--iface",
            "c0",
            "--dst-mac",
            &gw_mac,
            "--src",
            "10.77.1.2",
            "--dst",
            "198.18.0.10:443",
            "--flows",
            "200",
            "--pps",
            "5000",
            "--sni",
            "chatgpt.com",
            "--write",
            sent.to_str().expect("utf8"),
        ]),
        spawn(&[
            probe,
            "tls",
            "10.77.2.2:443",
            "--sni",
            "claude.ai",
            "--pause-at",
            "600",
            "--pause-ms",
            "5500",
            "--timeout-ms",
            "30000",
        ]),
        spawn(&[
            probe,
            "tls",
            "10.77.2.2:4443",
            "--sni",
            "gemini.google.com",
            "--classic",
            "--pace-ms",
            "30",
            "--timeout-ms",
            "30000",
        ]),
    ];
    let lines: Vec<String> = senders
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().expect("sender ends");
            let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
            assert!(
                out.status.success(),
                "{line}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            println!("{line}");
            line
        })
        .collect();
    assert!(lines[0].starts_with("trickle flows=200"), "{}", lines[0]);
    assert!(
        lines[1].ends_with("sni=claude.ai result=ok"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].ends_with("sni=gemini.google.com result=ok"),
        "{}",
        lines[2]
    );

    // Live: every flight detected, nothing given up, nothing dropped.
    let tls = |m: &str, service: &str| {
        metric(
            m,
            &format!(
                "aiwarden_detections_total{{proto=\"tls\",service=\"{service}\",verdict=\"block\"}}"
            ),
        )
    };
    let mut m = String::new();
    let all_seen = Instant::now();
    while all_seen.elapsed() < Duration::from_secs(10) {
        m = metrics(&net);
        // Detector counters and the memory gauge are published once a second.
        if tls(&m, "chatgpt") >= 200
            && tls(&m, "claude") >= 1
            && tls(&m, "gemini") >= 1
            && metric(&m, "aiwarden_events_total{kind=\"tls_client_hello\"}") >= 202
            && metric(&m, "aiwarden_first_flight_bytes") == 0
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for l in m.lines().filter(|l| {
        l.starts_with("aiwarden_detections")
            || l.starts_with("aiwarden_capture_dropped")
            || l.starts_with("aiwarden_first_flight")
            || l.contains("kind=\"tcp_")
            || l.contains("kind=\"tls_")
    }) {
        println!("metrics: {l}");
    }
    assert_eq!(
        (tls(&m, "chatgpt"), tls(&m, "claude"), tls(&m, "gemini")),
        (200, 1, 1),
        "live detections"
    );
    assert_eq!(
        metric(&m, "aiwarden_events_total{kind=\"tls_client_hello\"}"),
        202
    );
    assert!(
        !m.contains("tcp_first_flight_given_up"),
        "no flight given up"
    );
    assert_eq!(
        metric(&m, "aiwarden_first_flight_bytes"),
        0,
        "every flight released"
    );
    for place in ["kernel", "interface", "queue"] {
        assert_eq!(
            metric(
                &m,
                &format!("aiwarden_capture_dropped_total{{where=\"{place}\"}}")
            ),
            0,
            "{place} drops"
        );
    }

    // The store: one incident per service, the 200 connections counted as 200 attempts.
    let incidents = incidents(&store);
    let of = |s: &str| incidents.iter().find(|i| i["service"] == s);
    let chatgpt = of("chatgpt").expect("chatgpt incident");
    assert_eq!(chatgpt["count"], 200, "{chatgpt}");
    assert_eq!(chatgpt["how"], "tls,unresolved");
    assert!(
        of("claude").is_some() && of("gemini").is_some(),
        "{incidents:?}"
    );

    // Replay of the frames the sender wrote, with the times it sent them: the same 200.
    let out = Command::new(BIN)
        .args(["replay", "--no-progress"])
        .arg(&sent)
        .output()
        .expect("replay");
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{summary}");
    let replayed = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"service\":\"chatgpt\""))
        .count();
    assert_eq!(replayed, 200, "{summary}");
    assert!(
        summary.contains("detections by service: chatgpt=200"),
        "{summary}"
    );
    println!(
        "slow flights: daemon ready after {:.1}s, whole test {:.1}s",
        ready.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
}
