//! `aiwarden unblock` end to end on a router, in namespaces this test creates (the layout
//! of e2e_router.rs): a blocked chatgpt.com connection from the client is reset; after
//! `aiwarden unblock <client MAC> chatgpt.com --for 1m` it loads within a few seconds (the
//! housekeeping thread reads the store), while another host from the same device and the
//! same host from another device (a macvlan with its own MAC) stay blocked. The name
//! resolves for the device too, and the unblocked attempts are counted.
//!
//! Needs root (namespaces, nftables); skips with a printed reason otherwise.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

#[path = "support/netns.rs"]
mod netns;

use netns::*;

fn curl(net: &Net, args: &[&str]) -> Output {
    let mut a = vec!["curl", "-sk", "--max-time", "5", "--connect-timeout", "5"];
    a.extend_from_slice(args);
    net.exec(&net.client, &a)
        .output()
        .expect("curl runs in the client namespace")
}

fn loads(net: &Net, host: &str, extra: &[&str]) -> bool {
    let resolve = format!("{host}:443:203.0.113.10");
    let url = format!("https://{host}/");
    let mut args = vec!["--resolve", resolve.as_str(), url.as_str()];
    args.extend_from_slice(extra);
    let o = curl(net, &args);
    String::from_utf8_lossy(&o.stdout).contains(&format!("hello {host}"))
}

#[test]
fn an_unblocked_device_reaches_one_host_for_a_while() {
    if !is_root() {
        println!("skipped: needs root to create network namespaces and nftables");
        return;
    }
    for tool in ["ip", "nft", "dig", "dnsmasq", "curl"] {
        assert!(have(tool), "{tool} is missing: run scripts/setup-debian.sh");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut net = setup(true);
    let (client, upstream) = (net.client.clone(), net.upstream.clone());
    // Another device on the LAN: a macvlan in the client namespace, its own MAC and address.
    sh(&[
        "ip", "-n", &client, "link", "add", "mv0", "link", "c0", "type", "macvlan", "mode",
        "bridge",
    ]);
    sh(&[
        "ip",
        "-n",
        &client,
        "addr",
        "add",
        "10.77.1.3/24",
        "dev",
        "mv0",
    ]);
    sh(&["ip", "-n", &client, "link", "set", "mv0", "up"]);
    sh(&[
        "ip",
        "-n",
        &client,
        "route",
        "add",
        "default",
        "via",
        "10.77.1.1",
        "dev",
        "mv0",
        "metric",
        "100",
    ]);
    let mac = net
        .in_ns(&client, &["cat", "/sys/class/net/c0/address"])
        .trim()
        .to_string();

    dnsmasq(
        &mut net,
        &upstream,
        &["10.77.2.2"],
        &["/allowed.example/198.51.100.7", "/chatgpt.com/203.0.113.10"],
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
    let store = d.join("incidents.db");
    let config = d.join("aiwarden.toml");
    std::fs::write(&config, router_config(&rules, &store, &[], "")).expect("config");
    let log = d.join("daemon.log");
    start_daemon(&mut net, &config, &log);
    let daemon_log = || std::fs::read_to_string(&log).unwrap_or_default();

    // Blocked: the name does not resolve, a hard-coded address is reset.
    assert!(!net.dig(&["+short", "chatgpt.com"]).contains("203.0.113.10"));
    assert!(
        !loads(&net, "chatgpt.com", &[]),
        "blocked before the unblock"
    );
    assert!(!loads(&net, "claude.ai", &[]));

    let out = Command::new(BIN)
        .args([
            "unblock",
            &mac,
            "chatgpt.com",
            "--for",
            "1m",
            "--by",
            "test",
            "--note",
            "e2e: a pilot of the clinic's enterprise workspace",
            "--store",
        ])
        .arg(&store)
        .output()
        .expect("unblock");
    assert!(out.status.success(), "{out:?}");
    let asked = Instant::now();
    wait_for("the unblock in force", Duration::from_secs(10), || {
        loads(&net, "chatgpt.com", &[])
    });
    println!(
        "chatgpt.com loads {:?} after aiwarden unblock",
        asked.elapsed()
    );
    assert!(
        daemon_log().contains("unblock in force"),
        "{}",
        daemon_log()
    );
    assert!(net.dig(&["+short", "chatgpt.com"]).contains("203.0.113.10"));
    // Another host from the same device, the same host from another device: blocked.
    assert!(!loads(&net, "claude.ai", &[]), "another host");
    assert!(
        loads(&net, "news.example", &["--interface", "mv0"]),
        "the other device reaches the internet"
    );
    assert!(
        !loads(&net, "chatgpt.com", &["--interface", "mv0"]),
        "another device"
    );
    // The unblocked attempts are seen and counted (they join the device's open chatgpt
    // incident, the one its blocked attempt opened).
    wait_for(
        "unblocked observations counted",
        Duration::from_secs(10),
        || {
            metrics(&net)
                .lines()
                .any(|l| l.starts_with("aiwarden_pipeline_total{kind=\"unblocked\"}"))
        },
    );
    assert!(
        incidents(&store)
            .iter()
            .any(|i| i["service"] == "chatgpt" && i["verdict"] == "block"),
        "the blocked attempt's incident"
    );
    let verify = Command::new(BIN)
        .args(["verify", "--store"])
        .arg(&store)
        .output()
        .expect("verify");
    assert!(verify.status.success(), "{verify:?}");
}
