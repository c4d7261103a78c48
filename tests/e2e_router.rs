//! Router placement end to end, in namespaces this test creates: a client, aiwarden as the
//! clinic's gateway (enforce mode, `placement = "router"`), and an "internet" with DNS,
//! HTTPS, DoH, DoT and a CONNECT proxy.
//!
//! ```text
//!  aw-c-PID (client)            aw-g-PID (gateway)                    aw-u-PID (internet)
//!  c0 10.77.1.2, fd77:1::2 ─── g0 10.77.1.1  g1 10.77.2.1 ──────────  u0 10.77.2.2 dnsmasq (upstream)
//!  curl, dig, probe (QUIC)      aiwarden run: DNS, capture,             8.8.8.8, 2001:db8:77::99 "another resolver"
//!                               table inet aiwarden, NFQUEUE            203.0.113.10 :443 :8443 (chatgpt.com and news.example)
//!                                                                       203.0.113.20 :443 (Azure OpenAI tenants)
//!                                                                       1.1.1.1 :443 (DoH), 203.0.113.53 :853 (DoT)
//!                                                                       203.0.113.80 :3128 (CONNECT proxy)
//! ```
//!
//! Every way around the resolver that a clinic device tries is checked with a real client
//! (curl through the OS resolver, dig, the probe's QUIC Initials): each fails, the allowed
//! names on the same addresses work, and every block is an incident with what was done.
//! Then the daemon stops cleanly and leaves nothing in the firewall.
//!
//! Needs root (namespaces, nftables); skips with a printed reason otherwise.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

#[path = "support/netns.rs"]
mod netns;

use netns::*;

fn curl(net: &Net, args: &[&str]) -> (Output, Duration) {
    let mut a = vec!["curl", "-sk", "--max-time", "5", "--connect-timeout", "5"];
    a.extend_from_slice(args);
    let start = Instant::now();
    let out = net
        .exec(&net.client, &a)
        .output()
        .expect("curl runs in the client namespace");
    (out, start.elapsed())
}

fn body(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `curl https://HOST[:PORT]/` with HOST pinned to `addr` (no DNS: a hard-coded address).
fn fetch_at(net: &Net, host: &str, port: u16, addr: &str) -> (Output, Duration) {
    let resolve = format!("{host}:{port}:{addr}");
    let url = match port {
        443 => format!("https://{host}/"),
        _ => format!("https://{host}:{port}/"),
    };
    curl(net, &["--resolve", &resolve, &url])
}

/// The request failed and no page came back.
fn assert_refused(o: &Output, what: &str) {
    assert!(
        !o.status.success() && !body(o).contains("hello"),
        "{what}: {o:?}"
    );
}

/// The server's page for `host` came back.
fn assert_loads(o: &Output, host: &str, what: &str) {
    assert!(body(o).contains(&format!("hello {host}")), "{what}: {o:?}");
}

/// Packets the internet namespace's input counter `name` has seen.
fn arrived(net: &Net, name: &str) -> u64 {
    let out = net.in_ns(
        &net.upstream,
        &["nft", "-j", "list", "counter", "inet", "seen", name],
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("nft json");
    v["nftables"]
        .as_array()
        .and_then(|a| a.iter().find_map(|o| o["counter"]["packets"].as_u64()))
        .expect("counter")
}

#[test]
fn router_blocks_every_way_around_the_resolver() {
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
    let (client, gateway, upstream) = (
        net.client.clone(),
        net.gateway.clone(),
        net.upstream.clone(),
    );
    for addr in ["1.1.1.1/32", "203.0.113.80/32"] {
        sh(&["ip", "-n", &upstream, "addr", "add", addr, "dev", "u0"]);
    }
    sh(&[
        "ip",
        "-n",
        &gateway,
        "route",
        "add",
        "1.1.1.1/32",
        "via",
        "10.77.2.2",
    ]);
    // The client's OS resolver is the gateway, as DHCP would say.
    let etc = Path::new("/etc/netns").join(&client);
    std::fs::create_dir_all(&etc).expect("mkdir /etc/netns");
    std::fs::write(etc.join("resolv.conf"), "nameserver 10.77.1.1\n").expect("resolv.conf");
    struct RmDir(std::path::PathBuf);
    impl Drop for RmDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _etc = RmDir(etc);

    // The internet: the clinic's upstream resolver, "another resolver" that answers every
    // name with 192.0.2.99 (so an answer from it shows the redirect did not happen), HTTPS
    // servers, a DoH and a DoT server, a CONNECT proxy; and counters of what arrives.
    dnsmasq(
        &mut net,
        &upstream,
        &["10.77.2.2"],
        &[
            "/allowed.example/198.51.100.7",
            "/chatgpt.com/203.0.113.10",
            "/news.example/203.0.113.10",
        ],
        &d.join("dnsmasq.log"),
    );
    dnsmasq(
        &mut net,
        &upstream,
        &["8.8.8.8", "2001:db8:77::99"],
        &["/#/192.0.2.99"],
        &d.join("other-resolver.log"),
    );
    let server = example_bin("tls_server");
    let server = server.to_str().expect("utf8");
    net.spawn(
        &upstream,
        &[
            server,
            "--tls",
            "203.0.113.10:443",
            "--tls",
            "203.0.113.10:8443",
            "--tls",
            "203.0.113.20:443",
            "--tls",
            "1.1.1.1:443",
            "--tls",
            "203.0.113.53:853",
            "--tls",
            "[2001:db8:77::10]:443",
            "--proxy",
            "203.0.113.80:3128",
            "--map",
            "chatgpt.com=203.0.113.10",
            "--map",
            "news.example=203.0.113.10",
        ],
        &d.join("tls_server.log"),
    );
    net.in_ns(
        &upstream,
        &["nft", "add table inet seen; add counter inet seen quic; add chain inet seen input { type filter hook input priority 0; udp dport 443 counter name quic; }"],
    );

    let rules = d.join("rules");
    copy_rules(&rules);
    std::fs::write(rules.join("site/allow.list"), "myclinic.openai.azure.com\n").expect("allow");
    std::fs::write(rules.join("site/deny.list"), "*.openai.azure.com\n").expect("deny");
    let store = d.join("incidents.db");
    let config = d.join("aiwarden.toml");
    std::fs::write(
        &config,
        format!(
            "log = \"info,aiwarden::firewall=trace\"\n{}",
            router_config(&rules, &store, &["[fd77:1::1]:53"], "")
        ),
    )
    .expect("config");
    let check = Command::new("ip")
        .args(["netns", "exec", &gateway, BIN, "check", "--config"])
        .arg(&config)
        .output()
        .expect("check");
    let said = String::from_utf8_lossy(&check.stdout);
    println!("{said}{}", String::from_utf8_lossy(&check.stderr));
    assert!(check.status.success(), "aiwarden check");
    assert!(said.contains("placement router"), "{said}");
    let log = d.join("daemon.log");
    let pid = start_daemon(&mut net, &config, &log);
    let daemon_log = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        daemon_log().contains("firewall installed"),
        "{}",
        daemon_log()
    );
    let m = metrics(&net);
    let info = m
        .lines()
        .find(|l| l.starts_with("aiwarden_enforcement_info{"))
        .expect("aiwarden_enforcement_info");
    println!("{info}");
    assert!(
        info.contains("placement=\"router\"") && info.contains("tcp=\"queue"),
        "{info}"
    );

    // 1. The resolver: the name does not resolve, through the OS resolver, fast.
    let (o, t) = curl(&net, &["https://chatgpt.com/"]);
    assert_eq!(o.status.code(), Some(6), "curl could not resolve: {o:?}");
    assert!(t < Duration::from_secs(2), "fails fast: {t:?}");
    println!("curl https://chatgpt.com: no such name in {t:?}");

    // 2. A hard-coded address: reset before any application data; the page never loads.
    let (o, t) = fetch_at(&net, "chatgpt.com", 443, "203.0.113.10");
    assert_refused(&o, "hard-coded address");
    assert!(t < Duration::from_secs(2), "reset, not a timeout: {t:?}");
    println!(
        "curl --resolve chatgpt.com: curl exit {:?} in {t:?}",
        o.status.code()
    );
    // Over IPv6 too.
    let (o, _) = fetch_at(&net, "chatgpt.com", 443, "[2001:db8:77::10]");
    assert_refused(&o, "IPv6");

    // 3. A non-AI name on the same server address and port as the blocked one loads, also
    // right after the block (no collateral damage on a shared address).
    let (o, _) = fetch_at(&net, "news.example", 443, "203.0.113.10");
    assert_loads(&o, "news.example", "shared address");

    // 4. TLS with a denied SNI on another port.
    let (o, t) = fetch_at(&net, "chatgpt.com", 8443, "203.0.113.10");
    assert_refused(&o, "port 8443");
    assert!(t < Duration::from_secs(2), "{t:?}");
    let (o, _) = fetch_at(&net, "news.example", 8443, "203.0.113.10");
    assert_loads(&o, "news.example", "port 8443, allowed");

    // 5. The clinic's own Azure OpenAI resource works; another organisation's does not.
    let (o, _) = fetch_at(&net, "myclinic.openai.azure.com", 443, "203.0.113.20");
    assert_loads(&o, "myclinic.openai.azure.com", "own tenant");
    let (o, _) = fetch_at(&net, "othertenant.openai.azure.com", 443, "203.0.113.20");
    assert_refused(&o, "other tenant");

    // 6. DNS to another resolver is answered by aiwarden (UDP, TCP, IPv6).
    let dig = |args: &[&str]| {
        let mut a = vec!["dig", "+time=2", "+tries=1", "+short"];
        a.extend_from_slice(args);
        net.in_ns(&client, &a).trim().to_string()
    };
    assert_eq!(dig(&["@8.8.8.8", "allowed.example"]), "198.51.100.7");
    assert_eq!(
        dig(&["+tcp", "@8.8.8.8", "allowed.example"]),
        "198.51.100.7"
    );
    assert_eq!(
        dig(&["@2001:db8:77::99", "allowed.example"]),
        "198.51.100.7"
    );
    let full = net.in_ns(
        &client,
        &["dig", "+time=2", "+tries=1", "@8.8.8.8", "chatgpt.com"],
    );
    assert!(full.contains("NXDOMAIN"), "{full}");
    let canary = net.in_ns(
        &client,
        &[
            "dig",
            "+time=2",
            "+tries=1",
            "@8.8.8.8",
            "use-application-dns.net",
        ],
    );
    assert!(
        canary.contains("NXDOMAIN"),
        "canary stays NXDOMAIN: {canary}"
    );

    // 7. DoT to a literal address, and DoH to a catalog resolver address, fail.
    for (what, url) in [
        ("DoT", "https://203.0.113.53:853/"),
        ("DoH", "https://1.1.1.1/dns-query?name=chatgpt.com"),
    ] {
        let (o, t) = curl(&net, &[url]);
        assert_refused(&o, what);
        assert!(
            t < Duration::from_secs(2),
            "{what} refused, not timed out: {t:?}"
        );
    }

    // 8. A CONNECT proxy beyond the gateway: the tunnel to a denied host is refused; to an
    // allowed one it works.
    let proxy = |host: &str| {
        curl(
            &net,
            &[
                "-x",
                "http://203.0.113.80:3128",
                &format!("https://{host}/"),
            ],
        )
        .0
    };
    assert_refused(&proxy("chatgpt.com"), "proxy");
    assert_loads(&proxy("news.example"), "news.example", "proxy, allowed");

    // 9. HTTP/3: the QUIC Initial naming chatgpt.com never reaches the server (refused at
    // the gateway); one naming an allowed host does. The TCP retry is reset (2).
    let probe = probe();
    let probe = probe.to_str().expect("utf8");
    let before = arrived(&net, "quic");
    let out = net.in_ns(
        &client,
        &[
            probe,
            "quic",
            "203.0.113.10:443",
            "--sni",
            "chatgpt.com",
            "--timeout-ms",
            "1500",
        ],
    );
    println!("{}", out.trim());
    assert!(!out.contains("result=ok"), "{out}");
    let blocked_quic = arrived(&net, "quic") - before;
    let before = arrived(&net, "quic");
    let out = net.in_ns(
        &client,
        &[
            probe,
            "quic",
            "203.0.113.10:443",
            "--sni",
            "news.example",
            "--timeout-ms",
            "1500",
        ],
    );
    println!("{}", out.trim());
    let allowed_quic = arrived(&net, "quic") - before;
    println!("QUIC packets reaching the server: blocked name {blocked_quic}, allowed name {allowed_quic}");
    if blocked_quic > 1 {
        for l in daemon_log()
            .lines()
            .filter(|l| l.contains("nfqueue") && l.contains(":443"))
        {
            println!("{l}");
        }
        println!(
            "{}",
            net.in_ns(
                &gateway,
                &["nft", "list", "chain", "inet", "aiwarden", "forward_filter"]
            )
        );
    }
    // A post-quantum ClientHello spans two Initial packets: the first passes before the
    // second completes the name; from then on the flow is refused (its retransmissions
    // too), so the server never holds a whole ClientHello.
    assert!(
        blocked_quic <= 1,
        "the denied flow kept reaching the server: {blocked_quic}"
    );
    assert!(
        allowed_quic > blocked_quic + 1,
        "the allowed Initials did not reach the server: {allowed_quic}"
    );

    // 10. Thousands of short connections cycle through the client's ports, so new
    // connections reuse the ports of old ones: each is still judged on its own (the queue
    // is not given SYNs; connection tracking tells it a connection is new).
    let connrate = example_bin("connrate");
    let connrate = connrate.to_str().expect("utf8");
    net.spawn(
        &upstream,
        &[connrate, "server", "--listen", "203.0.113.10:9443"],
        &d.join("connrate.log"),
    );
    wait_for("the connrate server", Duration::from_secs(10), || {
        std::fs::read_to_string(d.join("connrate.log")).is_ok_and(|l| l.contains("listening"))
    });
    let field = |line: &str, name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    let allowed = net.in_ns(
        &client,
        &[
            connrate,
            "client",
            "--connect",
            "203.0.113.10:9443",
            "--secs",
            "3",
            "--threads",
            "4",
            "--sni",
            "news.example",
        ],
    );
    let denied = net.in_ns(
        &client,
        &[
            connrate,
            "client",
            "--connect",
            "203.0.113.10:9443",
            "--secs",
            "1",
            "--threads",
            "2",
            "--sni",
            "chatgpt.com",
        ],
    );
    println!("allowed: {}\ndenied: {}", allowed.trim(), denied.trim());
    assert!(field(&allowed, "conns") > 1_000, "{allowed}");
    assert_eq!(field(&allowed, "failed"), 0, "{allowed}");
    assert!(field(&denied, "failed") > 10, "{denied}");
    assert_eq!(
        field(&denied, "conns"),
        0,
        "a denied connection got through: {denied}"
    );

    // Every block is an incident with what was done.
    let mut hows = Vec::new();
    wait_for(
        "incidents with their actions",
        Duration::from_secs(10),
        || {
            hows = incidents(&store)
                .iter()
                .flat_map(|i| {
                    i["hows"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|h| h.as_str().map(String::from))
                })
                .collect();
            ["nxdomain", "reset", "quic_drop", "redirected"]
                .iter()
                .all(|a| hows.iter().any(|h| h.split(',').any(|q| q == *a)))
        },
    );
    println!("incident hows: {hows:?}");
    let m = metrics(&net);
    for l in m.lines().filter(|l| {
        l.starts_with("aiwarden_enforced_total") || l.starts_with("aiwarden_queue_verdicts_total")
    }) {
        println!("{l}");
    }
    let status = net.in_ns(
        &gateway,
        &[BIN, "status", "--config", config.to_str().expect("utf8")],
    );
    println!("{status}");
    assert!(status.contains("placement=router"), "{status}");

    // A clean stop leaves nothing of aiwarden's in the firewall.
    sh(&["kill", "-TERM", &pid.to_string()]);
    wait_for("the daemon to stop", Duration::from_secs(20), || {
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true)
    });
    let tables = net.in_ns(&gateway, &["nft", "list", "tables"]);
    assert!(!tables.contains("aiwarden"), "{tables}");
    let mangle = net.in_ns(&gateway, &["iptables", "-t", "mangle", "-S"]);
    assert!(!mangle.contains("AIWARDEN"), "{mangle}");
    let (o, _) = fetch_at(&net, "chatgpt.com", 443, "203.0.113.10");
    assert_loads(&o, "chatgpt.com", "after stop nothing is blocked");
}

fn example_bin(name: &str) -> std::path::PathBuf {
    netns::example_path(name)
}
