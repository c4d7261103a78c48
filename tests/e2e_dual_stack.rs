//! End to end on a dual-stack LAN, every way around the resolver, in namespaces this test
//! creates (see `support/netns.rs`): real `dig` (plain and `+tls`), `curl` (an IP-literal
//! URL, a CONNECT proxy, DoH to a literal address), OpenSSL on an arbitrary port, and the
//! probe example's rustls (GREASE ECH) and quinn (QUIC) clients.
//!
//! ```text
//!  client c0 10.77.1.2, fd77:1::2 ── g0 gateway (aiwarden: capture g0, DNS 10.77.1.1:53) g1 ── u0 upstream
//!  u0: 10.77.2.2 (dnsmasq, TLS on 443 and 4443, a listener on 3128), 203.0.113.10/.20/.53,
//!      8.8.8.8, 2001:db8:77::10 and ::99, all routed through the gateway
//! ```
//!
//! Needs root; skips with a printed reason otherwise.

#[path = "support/netns.rs"]
mod netns;

use std::process::Command;
use std::time::Duration;

use netns::*;

/// The incidents of `service` in the store.
fn of<'a>(all: &'a [serde_json::Value], service: &str) -> Vec<&'a serde_json::Value> {
    all.iter().filter(|i| i["service"] == service).collect()
}

fn hows(i: &serde_json::Value) -> Vec<String> {
    i["hows"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|h| h.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn dual_stack_and_every_bypass_path() {
    if !is_root() {
        println!("skipped: needs root to create network namespaces (CI runs it as root)");
        return;
    }
    for tool in ["ip", "dig", "dnsmasq", "openssl", "curl"] {
        assert!(have(tool), "{tool} is missing: run scripts/setup-debian.sh");
    }
    let probe = probe();
    let probe = probe.to_str().expect("utf8");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut net = setup(true);
    let (client, upstream) = (net.client.clone(), net.upstream.clone());

    net.spawn(
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
            "--address=/contoso-ai.openai.azure.com/203.0.113.10",
            "--address=/contoso-ai.openai.azure.com/2001:db8:77::10",
        ],
        &d.join("dnsmasq.log"),
    );
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
        "/CN=server.example",
        "-keyout",
        d.join("key.pem").to_str().expect("utf8"),
        "-out",
        d.join("cert.pem").to_str().expect("utf8"),
    ]));
    // TLS servers on every upstream address (443), on an arbitrary port (4443), and a
    // listener on the proxy port that reads what it is sent (3128).
    for port in ["443", "4443", "3128"] {
        net.spawn(
            &upstream,
            &[
                "openssl",
                "s_server",
                "-quiet",
                "-accept",
                port,
                "-cert",
                d.join("cert.pem").to_str().expect("utf8"),
                "-key",
                d.join("key.pem").to_str().expect("utf8"),
            ],
            &d.join(format!("s_server_{port}.log")),
        );
    }

    let rules = d.join("rules");
    copy_rules(&rules);
    let store = d.join("incidents.db");
    let config = d.join("aiwarden.toml");
    std::fs::write(
        &config,
        format!(
            "mode = \"enforce\"\nrules = \"{}\"\n[capture]\ninterfaces = [\"g0\"]\n\
             [dns]\nlisten = [\"10.77.1.1:53\", \"[fd77:1::1]:53\"]\nupstreams = [\"10.77.2.2\"]\n\
             [store]\npath = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:9747\"\n[devices]\nrefresh_secs = 1\n",
            rules.display(),
            store.display()
        ),
    )
    .expect("config");
    let log = d.join("daemon.log");
    start_daemon(&mut net, &config, &log);
    let client_mac = net
        .in_ns(&client, &["cat", "/sys/class/net/c0/address"])
        .trim()
        .to_string();
    let in_client = |args: &[&str]| {
        // Exit codes are the tools' business (refused, certificate errors): what matters is
        // what crossed the gateway.
        let _ = net.exec(&client, args).output();
    };

    // 1. A dual-stack device: DNS over IPv4 (A and AAAA), then TLS and QUIC over IPv6 to
    // the AAAA address aiwarden forwarded. One incident for the device, none unresolved.
    let host = "contoso-ai.openai.azure.com";
    assert!(net.dig(&["+short", host]).contains("203.0.113.10"));
    assert!(net
        .dig(&["+short", "AAAA", host])
        .contains("2001:db8:77::10"));
    in_client(&[probe, "tls", "[2001:db8:77::10]:443", "--sni", host]);
    in_client(&[
        probe,
        "quic",
        "[2001:db8:77::10]:443",
        "--sni",
        host,
        "--timeout-ms",
        "500",
    ]);
    wait_for(
        "TLS and QUIC over IPv6 in the azure incident",
        Duration::from_secs(15),
        || {
            let all = incidents(&store);
            of(&all, "azure-openai").first().is_some_and(|i| {
                let h = hows(i);
                h.contains(&"tls".to_string()) && h.contains(&"quic".to_string())
            })
        },
    );
    let all = incidents(&store);
    let azure = of(&all, "azure-openai");
    assert_eq!(azure.len(), 1, "one incident for the device: {azure:#?}");
    assert_eq!(azure[0]["client_mac"], client_mac.as_str());
    assert_eq!(
        hows(azure[0]),
        ["dns", "quic", "tls"],
        "none unresolved: {azure:#?}"
    );
    assert!(
        azure[0]["count"].as_u64().is_some_and(|c| c >= 3),
        "{azure:#?}"
    );

    // 2. A hard-coded IPv6 address nobody resolved.
    in_client(&[
        probe,
        "tls",
        "[2001:db8:77::99]:443",
        "--sni",
        "www.perplexity.ai",
    ]);
    // 3. DNS over TLS to a literal address (nothing listens on 853: refused).
    in_client(&[
        "dig",
        "+tls",
        "@203.0.113.53",
        "+time=1",
        "+tries=1",
        "example.org",
    ]);
    // 4. HTTPS to an IP-literal URL: a ClientHello without SNI.
    in_client(&["curl", "-sk", "--max-time", "3", "https://203.0.113.20/"]);
    // 5. A CONNECT proxy on port 3128 to an AI host.
    in_client(&[
        "curl",
        "-s",
        "--max-time",
        "3",
        "-x",
        "http://10.77.2.2:3128",
        "https://chatgpt.com/",
    ]);
    // 6. TLS on an arbitrary port.
    let mut s_client = net
        .exec(
            &client,
            &[
                "openssl",
                "s_client",
                "-connect",
                "10.77.2.2:4443",
                "-servername",
                "gemini.google.com",
            ],
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("s_client");
    drop(s_client.stdin.take());
    let _ = s_client.wait();
    // 7. DoH to a literal resolver address (Chromium's and curl's secure DNS).
    in_client(&[
        "curl",
        "-sk",
        "--max-time",
        "3",
        "--doh-insecure",
        "--doh-url",
        "https://8.8.8.8/dns-query",
        "https://example.org/",
    ]);
    // 8. A Chromium-style GREASE ECH ClientHello: the name is visible, nothing hidden.
    in_client(&[
        probe,
        "tls",
        "10.77.2.2:443",
        "--sni",
        "claude.ai",
        "--grease-ech",
    ]);

    let want: [(&str, &str); 7] = [
        ("perplexity", "tls,unresolved"),
        ("dns-port-853", "tcp,unresolved,port_853"),
        ("tls-without-name", "tls,unresolved,no_sni"),
        ("chatgpt", "connect"),
        ("gemini", "tls,unresolved"),
        ("doh-resolvers", "tls,unresolved,no_sni,addr"),
        ("claude", "tls,unresolved"),
    ];
    wait_for(
        "every bypass path's incident",
        Duration::from_secs(20),
        || {
            let all = incidents(&store);
            want.iter().all(|(svc, how)| {
                of(&all, svc)
                    .iter()
                    .any(|i| hows(i).iter().any(|h| h == how))
            })
        },
    );
    let all = incidents(&store);
    for i in &all {
        println!(
            "incident {}: {} {} {} host={} hows={:?} mac={}",
            i["id"],
            i["client_ip"],
            i["service"],
            i["verdict"],
            i["host"],
            i["hows"],
            i["client_mac"]
        );
        assert!(
            hows(i).iter().all(|h| !h.split(',').any(|q| q == "ech")),
            "GREASE ECH must not read as hidden: {i}"
        );
    }
    let gemini = of(&all, "gemini");
    assert_eq!(gemini.len(), 1);
    let doh = of(&all, "doh-resolvers");
    assert_eq!(doh[0]["host"], "8.8.8.8", "named by its address: {doh:#?}");

    // 9. What an admin sees: counters for every path, and log lines without colour codes.
    let wanted = [
        "aiwarden_events_total{kind=\"client_hello_without_sni\"}",
        "aiwarden_events_total{kind=\"http_connect\"}",
        "aiwarden_events_total{kind=\"tcp_nameless\"}",
        "aiwarden_events_total{kind=\"quic_client_hello\"}",
        "aiwarden_pipeline_total{kind=\"ech_grease\"} 1",
        "aiwarden_pipeline_total{kind=\"attempt\"}",
    ];
    // Detection publishes its counters once a second.
    wait_for(
        "the detector's counters in /metrics",
        Duration::from_secs(5),
        || {
            let m = metrics(&net);
            wanted.iter().all(|w| m.contains(w))
        },
    );
    let m = metrics(&net);
    for l in m.lines().filter(|l| {
        l.starts_with("aiwarden_events")
            || l.starts_with("aiwarden_pipeline")
            || l.starts_with("aiwarden_skipped")
    }) {
        println!("metrics: {l}");
    }
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("aiwarden running"), "{text}");
    assert!(
        text.contains("dns=[10.77.1.1:53, [fd77:1::1]:53]"),
        "{text}"
    );
    assert!(
        text.contains(" incident "),
        "one line per new incident:\n{text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "no colour codes in a log file:\n{text}"
    );
}
