//! End to end in network namespaces this test creates: client ↔ gateway ↔ upstream.
//!
//! ```text
//!  aw-c-PID (client)         aw-g-PID (gateway: aiwarden run)      aw-u-PID (upstream)
//!  c0 10.77.1.2  ─────────── g0 10.77.1.1   g1 10.77.2.1 ─────────── u0 10.77.2.2
//!  dig, openssl s_client     capture on g0, DNS on 10.77.1.1:53      dnsmasq :53, openssl s_server :443
//! ```
//!
//! Real `dig` queries get the block answer, the upstream's answer, NXDOMAIN for canaries and
//! an HTTPS record without `ech`; a real TLS handshake to a server presenting claude.ai is
//! detected live; incidents carry the client's MAC; `/metrics` shows the counts; a bad rules
//! edit keeps the old rules; SIGKILL during a burst of incidents leaves a store that
//! verifies, and a restarted daemon keeps appending to the same chain.
//!
//! Needs root (namespaces); skips with a printed reason otherwise.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/netns.rs"]
mod netns;

use netns::*;

#[test]
fn gateway_end_to_end() {
    if !is_root() {
        println!("skipped: needs root to create network namespaces (CI runs it as root)");
        return;
    }
    for tool in ["ip", "dig", "dnsmasq", "openssl", "curl"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false),
            "{tool} is missing: run scripts/setup-debian.sh"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut net = setup(false);
    let (client, upstream) = (net.client.clone(), net.upstream.clone());

    // Upstream: dnsmasq with fixed answers (an HTTPS record with ech among them), and a TLS
    // server presenting claude.ai.
    let https = "000100000100030268320005000401020304"; // 1 . alpn=h2 ech=AQIDBA==
    let dnsmasq_pid = net.spawn(
        &upstream,
        &[
            "dnsmasq",
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--log-facility=-",
            "--listen-address=10.77.2.2",
            "--bind-interfaces",
            "--user=root",
            "--pid-file=",
            "--address=/allowed.example/198.51.100.7",
            "--address=/bedrock-runtime.us-east-1.amazonaws.com/203.0.113.9",
            &format!("--dns-rr=bedrock-runtime.us-east-1.amazonaws.com,65,{https}"),
        ],
        &d.join("dnsmasq.log"),
    );
    let _ = dnsmasq_pid;
    run(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=claude.ai",
        "-addext",
        "subjectAltName=DNS:claude.ai",
        "-keyout",
        d.join("key.pem").to_str().expect("utf8"),
        "-out",
        d.join("cert.pem").to_str().expect("utf8"),
    ]));
    net.spawn(
        &upstream,
        &[
            "openssl",
            "s_server",
            "-quiet",
            "-accept",
            "10.77.2.2:443",
            "-cert",
            d.join("cert.pem").to_str().expect("utf8"),
            "-key",
            d.join("key.pem").to_str().expect("utf8"),
        ],
        &d.join("s_server.log"),
    );
    wait_for("dnsmasq", Duration::from_secs(10), || {
        net.exec(
            &upstream,
            &[
                "dig",
                "@10.77.2.2",
                "+time=1",
                "+tries=1",
                "allowed.example",
            ],
        )
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("198.51.100.7"))
        .unwrap_or(false)
    });
    // The premise of the ECH check: the upstream's answer has it.
    let raw = net.in_ns(
        &upstream,
        &[
            "dig",
            "@10.77.2.2",
            "HTTPS",
            "bedrock-runtime.us-east-1.amazonaws.com",
        ],
    );
    assert!(raw.contains("ech="), "{raw}");

    // The daemon, in enforce mode, capturing on the gateway's client side.
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
interfaces = ["g0"]
[dns]
listen = ["10.77.1.1:53"]
upstreams = ["10.77.2.2"]
[store]
path = "{store}"
[metrics]
listen = "127.0.0.1:9747"
[devices]
refresh_secs = 1
inventory = "{inventory}"
"#,
            rules = rules.display(),
            store = store.display(),
            inventory = d.join("devices.toml").display()
        ),
    )
    .expect("config");
    let client_mac = net
        .in_ns(&client, &["cat", "/sys/class/net/c0/address"])
        .trim()
        .to_string();
    std::fs::write(
        d.join("devices.toml"),
        format!(
            "[[device]]\nmac = \"{client_mac}\"\nlabel = \"Front desk PC 1\"\nowner = \"Alice\"\n"
        ),
    )
    .expect("inventory");
    // `check` where the daemon will run: the gateway's addresses and interfaces.
    let check = net
        .exec(
            &net.gateway.clone(),
            &[BIN, "check", "--config", config.to_str().expect("utf8")],
        )
        .output()
        .expect("check");
    assert!(check.status.success(), "{check:?}");
    let log = d.join("daemon.log");
    start_daemon(&mut net, &config, &log);

    // 1. A consumer AI name gets the block answer; the incident names the client's MAC.
    let out = net.dig(&["chatgpt.com"]);
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    wait_for("the chatgpt incident", Duration::from_secs(10), || {
        incidents(&store).iter().any(|i| {
            i["service"] == "chatgpt"
                && i["client_ip"] == "10.77.1.2"
                && i["client_mac"] == client_mac.as_str()
                && i["label"] == "Front desk PC 1"
        })
    });

    // 2. An allowed name is answered from the upstream.
    let out = net.dig(&["+short", "allowed.example"]);
    assert_eq!(out.trim(), "198.51.100.7");

    // 3. Canaries get NXDOMAIN.
    for canary in ["use-application-dns.net", "mask.icloud.com"] {
        let out = net.dig(&[canary]);
        assert!(out.contains("status: NXDOMAIN"), "{canary}: {out}");
    }

    // 4. The HTTPS record of an AI host comes back without ech, other parameters kept.
    let out = net.dig(&["HTTPS", "bedrock-runtime.us-east-1.amazonaws.com"]);
    assert!(
        out.contains("alpn=\"h2\"") || out.contains("alpn=h2"),
        "{out}"
    );
    assert!(!out.contains("ech="), "{out}");

    // 5. A real TLS handshake to a server presenting claude.ai, by address (no DNS): seen live.
    let mut s_client = net
        .exec(
            &client,
            &[
                "openssl",
                "s_client",
                "-connect",
                "10.77.2.2:443",
                "-servername",
                "claude.ai",
            ],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("s_client");
    if let Some(mut stdin) = s_client.stdin.take() {
        let _ = stdin.write_all(b"Q\n");
    }
    let done = s_client.wait_with_output().expect("s_client finishes");
    assert!(
        String::from_utf8_lossy(&done.stdout).contains("CN = claude.ai")
            || String::from_utf8_lossy(&done.stdout).contains("CN=claude.ai"),
        "handshake with the claude.ai server"
    );
    wait_for("the live TLS detection", Duration::from_secs(10), || {
        incidents(&store).iter().any(|i| {
            i["service"] == "claude"
                && i["hows"].as_array().is_some_and(|h| {
                    h.iter()
                        .any(|x| x.as_str().is_some_and(|s| s.starts_with("tls")))
                })
        })
    });

    // 6. /metrics shows the counts.
    let m = metrics(&net);
    for want in [
        "aiwarden_dns_queries_total{result=\"blocked\"}",
        "aiwarden_dns_queries_total{result=\"canary\"} 2",
        "aiwarden_dns_ech_stripped_total 1",
        "aiwarden_detections_total{proto=\"tls\",service=\"claude\",verdict=\"block\"} 1",
        // Once: the resolver reports the query; the captured copy is not counted again.
        "aiwarden_detections_total{proto=\"dns\",service=\"chatgpt\",verdict=\"block\"} 1",
        "aiwarden_rules_version 1",
    ] {
        assert!(m.contains(want), "{want} missing from\n{m}");
    }
    assert!(
        !m.contains("10.77.1.2"),
        "client addresses never become labels"
    );
    for l in m.lines().filter(|l| {
        l.starts_with("aiwarden_dns")
            || l.starts_with("aiwarden_detections")
            || l.starts_with("aiwarden_incidents")
    }) {
        println!("metrics: {l}");
    }
    for i in incidents(&store) {
        println!(
            "incident {}: {} {} {} {} how={} mac={}",
            i["id"],
            i["client_ip"],
            i["service"],
            i["verdict"],
            i["host"],
            i["how"],
            i["client_mac"]
        );
    }

    // 7. A bad rules edit keeps the old rules; a good one is picked up.
    let deny = rules.join("site/deny.list");
    std::fs::write(&deny, "free-ai.example\nbad entry here\n").expect("write");
    wait_for("the failed reload", Duration::from_secs(10), || {
        metrics(&net).contains("aiwarden_rules_last_reload_success 0")
    });
    // The half-written file's first line is not in force: the upstream answers (NXDOMAIN
    // from dnsmasq has no aiwarden SOA).
    let out = net.dig(&["free-ai.example"]);
    assert!(!out.contains("aiwarden.invalid"), "{out}");
    let out = net.dig(&["chatgpt.com"]);
    assert!(
        out.contains("aiwarden.invalid"),
        "old rules still block: {out}"
    );
    let daemon_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        daemon_log.contains("deny.list:2"),
        "the log names file and line:\n{daemon_log}"
    );
    std::fs::write(&deny, "free-ai.example\n").expect("write");
    wait_for("the good reload", Duration::from_secs(10), || {
        metrics(&net).contains("aiwarden_rules_version 2")
    });
    assert!(net.dig(&["free-ai.example"]).contains("aiwarden.invalid"));

    // 8. SIGKILL while incidents are being written: the store still verifies, and a
    // restarted daemon appends to the same chain.
    // One deny entry per name, so every query of the burst opens its own incident.
    let per_name: String = (0..2000).map(|i| format!("svc{i}.example\n")).collect();
    std::fs::write(&deny, format!("free-ai.example\n{per_name}")).expect("write");
    wait_for("the burst rules", Duration::from_secs(10), || {
        metrics(&net).contains("aiwarden_rules_version 3")
    });
    let queries: String = (0..2000).map(|i| format!("svc{i}.example A\n")).collect();
    let qfile = d.join("queries.txt");
    std::fs::write(&qfile, queries).expect("write");
    let burst = net
        .exec(
            &client,
            &[
                "dig",
                "@10.77.1.1",
                "+time=1",
                "+tries=1",
                "-f",
                qfile.to_str().expect("utf8"),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("burst");
    wait_for("incidents from the burst", Duration::from_secs(20), || {
        incidents(&store).len() > 20
    });
    // What a reader saw committed while the burst was still being written.
    let committed: Vec<serde_json::Value> =
        incidents(&store).iter().map(|i| i["id"].clone()).collect();
    // Kill the daemon (the last child started).
    let daemon = net.children.last_mut().expect("daemon");
    daemon.kill().expect("SIGKILL");
    let _ = daemon.wait();
    let mut burst = burst;
    let _ = burst.kill();
    let _ = burst.wait();
    let after_kill: Vec<serde_json::Value> =
        incidents(&store).iter().map(|i| i["id"].clone()).collect();
    for id in &committed {
        assert!(
            after_kill.contains(id),
            "incident {id} was committed before the kill and is gone"
        );
    }
    let before = after_kill.len();
    assert!(
        before < 2000,
        "the kill came mid-burst ({before} of 2000 written)"
    );
    let v = Command::new(BIN)
        .args(["verify", "--store"])
        .arg(&store)
        .output()
        .expect("verify");
    assert!(v.status.success(), "verify after SIGKILL: {v:?}");
    start_daemon(&mut net, &config, &d.join("daemon2.log"));
    assert!(net.dig(&["svc1999.example"]).contains("status: NXDOMAIN"));
    assert!(net.dig(&["mistral.ai"]).contains("status: NXDOMAIN"));
    wait_for(
        "incidents after the restart",
        Duration::from_secs(10),
        || incidents(&store).len() > before,
    );
    let v = Command::new(BIN)
        .args(["verify", "--store"])
        .arg(&store)
        .output()
        .expect("verify");
    assert!(v.status.success(), "verify after restart: {v:?}");
    println!(
        "after SIGKILL and restart: {} incidents; {}",
        incidents(&store).len(),
        String::from_utf8_lossy(&v.stdout).trim()
    );

    // 9. SIGTERM: a graceful stop that flushes what is queued and exits 0.
    assert!(net.dig(&["deepseek.com"]).contains("aiwarden.invalid"));
    let daemon = net.children.last_mut().expect("daemon");
    run(Command::new("kill").args(["-TERM", &daemon.id().to_string()]));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = daemon.try_wait().expect("wait") {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "daemon did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    assert!(
        incidents(&store).iter().any(|i| i["service"] == "deepseek"),
        "the last incident was flushed before exit"
    );
    let v = Command::new(BIN)
        .args(["verify", "--store"])
        .arg(&store)
        .output()
        .expect("verify");
    assert!(v.status.success(), "verify after SIGTERM: {v:?}");
}
