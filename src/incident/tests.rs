//! The pipeline step: judging every kind of observation, attempts, devices, incidents.

use std::net::IpAddr;
use std::path::Path;

use super::*;
use crate::detect::Proto;
use crate::devices::DeviceMap;
use crate::policy::RuleSet;

fn rules() -> RuleSet {
    RuleSet::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")).expect("rules")
}

const PC: Mac = Mac([2, 0, 0, 0, 0, 0x21]);

fn obs(proto: Proto, client: &str, server: &str, host: Option<&str>, secs: i64) -> Observation {
    Observation {
        ts: Timestamp::from_secs_micros(1_795_420_800 + secs, 0),
        client: client.parse().expect("client"),
        client_mac: None,
        server: server.parse().expect("server"),
        proto,
        host: host.map(|h| Host::parse(h.as_bytes()).expect("host")),
        asked: None,
        ech_offered: false,
        unresolved: false,
        incomplete: false,
        alpn: Vec::new(),
        qtype: None,
        answers: Vec::new(),
        tcp: None,
    }
}

fn who(o: &Observation) -> Identity {
    DeviceMap::default().identify_with(o.client.ip(), o.client_mac)
}

fn decide(rs: &RuleSet, o: &Observation) -> Judged {
    judge(rs, o, &who(o).client(), Mode::Enforce)
}

fn service(j: &Judged) -> Option<&str> {
    j.decision.service.as_ref().map(|s| &*s.id)
}

#[test]
fn how_round_trips() {
    for s in [
        "dns",
        "tls,unresolved",
        "tls,unresolved,ech",
        "tls,no_sni,addr",
        "dns,spoofed",
        "tcp,port_853",
        "tcp,unresolved,incomplete",
        "tcp,unresolved,port_853,addr,incomplete",
        "connect",
    ] {
        let h: How = s.parse().expect(s);
        assert_eq!(h.to_string(), s);
    }
    assert!("tls,loud".parse::<How>().is_err());
    assert!("ftp".parse::<How>().is_err());
}

#[test]
fn every_kind_of_observation_is_judged() {
    let rs = rules();
    // A name: the catalog decides.
    let j = decide(
        &rs,
        &obs(
            Proto::Tls,
            "10.0.0.21:50000",
            "104.18.32.47:443",
            Some("chatgpt.com"),
            0,
        ),
    );
    assert_eq!(
        (service(&j), j.decision.verdict),
        (Some("chatgpt"), Verdict::Block)
    );
    // A CONNECT to a proxy names the tunnel's target.
    let j = decide(
        &rs,
        &obs(
            Proto::Connect,
            "10.0.0.21:50000",
            "10.0.0.1:3128",
            Some("claude.ai"),
            0,
        ),
    );
    assert_eq!(
        (service(&j), j.how.to_string().as_str()),
        (Some("claude"), "connect")
    );
    // DNS over TLS to any address, by its port.
    let j = decide(
        &rs,
        &obs(Proto::Tcp, "10.0.0.21:50000", "203.0.113.53:853", None, 0),
    );
    assert_eq!(
        (service(&j), j.how.to_string().as_str()),
        (Some("dns-port-853"), "tcp,port_853")
    );
    // DoT with a resolver's name: the name wins, the port is recorded.
    let j = decide(
        &rs,
        &obs(
            Proto::Tls,
            "10.0.0.21:50000",
            "203.0.113.53:853",
            Some("dns.google"),
            0,
        ),
    );
    assert_eq!((service(&j), j.how.port_853), (Some("doh-resolvers"), true));
    // DoH to a resolver's address without a name (https://8.8.8.8/dns-query).
    let mut doh = obs(Proto::Tls, "10.0.0.21:50000", "8.8.8.8:443", None, 0);
    doh.unresolved = true;
    let j = decide(&rs, &doh);
    assert_eq!(service(&j), Some("doh-resolvers"));
    assert_eq!(j.how.to_string(), "tls,unresolved,no_sni,addr");
    assert_eq!(j.decision.verdict, Verdict::Block);
    let j = decide(
        &rs,
        &obs(
            Proto::Quic,
            "10.0.0.21:50000",
            "[2001:4860:4860::8888]:443",
            None,
            0,
        ),
    );
    assert_eq!(service(&j), Some("doh-resolvers"));
    // TLS without a name to an internet address nobody resolved: flagged, never blocked.
    let mut literal = obs(Proto::Tls, "10.0.0.21:50000", "203.0.113.9:443", None, 0);
    literal.unresolved = true;
    let j = decide(&rs, &literal);
    assert_eq!(
        (service(&j), j.decision.verdict),
        (Some("tls-without-name"), Verdict::Flag)
    );
    // ... but not to the clinic's own printer, nor when DNS explained the address.
    let mut local = obs(Proto::Tls, "10.0.0.21:50000", "10.0.0.40:443", None, 0);
    local.unresolved = true;
    assert!(!decide(&rs, &local).matched());
    literal.unresolved = false;
    assert!(!decide(&rs, &literal).matched());
    // A canary query is the device checking the network, not AI use.
    let j = decide(
        &rs,
        &obs(
            Proto::Dns,
            "10.0.0.21:50000",
            "10.0.0.1:53",
            Some("use-application-dns.net"),
            0,
        ),
    );
    assert!(!j.matched());
    // A connection that named nothing to an ordinary address: nothing.
    assert!(!decide(
        &rs,
        &obs(Proto::Tcp, "10.0.0.21:50000", "203.0.113.9:22", None, 0)
    )
    .matched());
}

#[test]
fn an_incomplete_first_flight_is_judged_like_a_nameless_connection() {
    let rs = rules();
    let given_up = |server: &str| {
        let mut o = obs(Proto::Tcp, "10.0.0.21:50000", server, None, 0);
        o.unresolved = true;
        o.incomplete = true;
        o
    };
    // To an address no rule knows: nothing, as for any connection that named nothing.
    let j = decide(&rs, &given_up("203.0.113.9:443"));
    assert!(!j.matched());
    assert_eq!(j.how.to_string(), "tcp,unresolved,incomplete");
    // To a public resolver's address: decided by the address, and marked.
    let j = decide(&rs, &given_up("8.8.8.8:443"));
    assert_eq!(service(&j), Some("doh-resolvers"));
    assert_eq!(j.how.to_string(), "tcp,unresolved,addr,incomplete");
    // To port 853: the port's signal.
    let j = decide(&rs, &given_up("203.0.113.53:853"));
    assert_eq!(service(&j), Some("dns-port-853"));
    assert_eq!(j.how.to_string(), "tcp,unresolved,port_853,incomplete");
}

#[test]
fn grease_is_counted_and_real_ech_is_judged_by_the_name_asked() {
    let rs = rules();
    // GREASE: the SNI is the real name.
    let mut grease = obs(
        Proto::Tls,
        "10.0.0.21:50000",
        "104.18.32.47:443",
        Some("chatgpt.com"),
        0,
    );
    grease.ech_offered = true;
    let j = decide(&rs, &grease);
    assert!(j.ech_grease && !j.how.ech);
    assert_eq!(j.how.to_string(), "tls");
    assert_eq!(service(&j), Some("chatgpt"));
    // Real ECH: the outer SNI is a public name; the device asked DNS for chatgpt.com.
    let mut real = obs(
        Proto::Tls,
        "10.0.0.21:50000",
        "104.18.32.47:443",
        Some("public.example.net"),
        0,
    );
    real.ech_offered = true;
    real.asked = Some(Host::parse(b"chatgpt.com").expect("host"));
    let j = decide(&rs, &real);
    assert!(j.how.ech && !j.ech_grease);
    assert_eq!(service(&j), Some("chatgpt"));
    assert_eq!(j.host.as_ref().map(|h| h.as_str()), Some("chatgpt.com"));
    // Real ECH to a known public name, nothing resolved: the public name's service.
    let mut public = obs(
        Proto::Tls,
        "10.0.0.21:50000",
        "104.18.32.47:443",
        Some("cloudflare-ech.com"),
        0,
    );
    public.ech_offered = true;
    let j = decide(&rs, &public);
    assert!(j.how.ech);
    assert_eq!(service(&j), Some("ech-public-names"));
    // An ECH public name without the extension is just a name.
    public.ech_offered = false;
    assert!(!decide(&rs, &public).how.ech);
}

#[test]
fn ipv4_mapped_clients_land_in_their_ipv4_group() {
    let text = "[[group]]\nname = \"frontdesk\"\ncidrs = [\"10.0.0.0/24\"]\nai = \"none\"\n";
    let mut files = RuleSet::read_sources(&crate::policy::RuleDirs::under(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"),
    ))
    .expect("read");
    files.retain(|(p, _)| !p.ends_with("groups.toml") && !p.ends_with("allow.list"));
    files.push(("site/groups.toml".into(), text.into()));
    let rs = RuleSet::from_sources(&files).expect("rules");
    for client in ["10.0.0.21:40000", "[::ffff:10.0.0.21]:40000"] {
        let o = obs(
            Proto::Dns,
            client,
            "10.0.0.1:53",
            Some("contoso-ai.openai.azure.com"),
            0,
        );
        let ip: IpAddr = o.client.ip();
        let j = judge(&rs, &o, &Client::ip(ip), Mode::Enforce);
        assert_eq!(
            (j.decision.verdict, j.decision.group.as_deref()),
            (Verdict::Block, Some("frontdesk")),
            "{client}"
        );
    }
}

fn step(p: &mut Pipeline, rs: &RuleSet, o: &Observation) -> Outcome {
    let w = who(o);
    let j = judge(rs, o, &w.client(), Mode::Enforce);
    p.step(o, &w, &j)
}

#[test]
fn a_dual_stack_device_is_one_incident_and_counts_attempts() {
    let rs = rules();
    let mut p = Pipeline::new(Mode::Enforce, DEFAULT_WINDOW_MICROS);
    let mut rows = Incidents::default();
    let mut apply = |p: &mut Pipeline, o: Observation| {
        let out = step(p, &rs, &o);
        if let Some(op) = &out.incident {
            rows.apply(op);
        }
        out
    };
    let v4 = |proto, server: &str, host, secs| {
        let mut o = obs(proto, "10.0.0.21:40000", server, host, secs);
        o.client_mac = Some(PC);
        o
    };
    // One lookup: A, AAAA and HTTPS queries, and a retry: one attempt.
    let first = apply(
        &mut p,
        v4(Proto::Dns, "10.0.0.1:53", Some("chatgpt.com"), 0),
    );
    assert!(first.attempt && matches!(first.incident, Some(IncidentOp::Open { .. })));
    for _ in 0..3 {
        assert!(
            !apply(
                &mut p,
                v4(Proto::Dns, "10.0.0.1:53", Some("chatgpt.com"), 1)
            )
            .attempt
        );
    }
    // The connection over IPv6 from a privacy address: the same device (by MAC).
    let mut v6 = obs(
        Proto::Tls,
        "[2001:db8::a1]:50000",
        "[2606:4700::6812:2f]:443",
        Some("chatgpt.com"),
        2,
    );
    v6.client_mac = Some(PC);
    let out = apply(&mut p, v6.clone());
    assert!(out.attempt);
    assert!(matches!(out.incident, Some(IncidentOp::Touch { .. })));
    // Its retransmitted ClientHello, or a second observation of the same connection, is
    // not another attempt; a second connection is.
    assert!(!apply(&mut p, v6.clone()).attempt);
    v6.client.set_port(50001);
    assert!(apply(&mut p, v6).attempt);
    // A minute later the same name is a new attempt.
    assert!(
        apply(
            &mut p,
            v4(Proto::Dns, "10.0.0.1:53", Some("chatgpt.com"), 61)
        )
        .attempt
    );
    let rows = rows.into_rows();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let r = &rows[0];
    assert_eq!(
        (r.record.client_ip.to_string().as_str(), r.record.client_mac),
        ("10.0.0.21", Some(PC))
    );
    assert_eq!(r.count, 4);
    assert_eq!(r.hows, ["dns", "tls"]);
    assert_eq!(p.stats().attempts, 4);
    assert_eq!(p.stats().repeats, 4);
}

#[test]
fn behind_a_router_devices_are_addresses_and_windows_close_incidents() {
    let rs = rules();
    let mut p = Pipeline::new(Mode::Enforce, 600 * 1_000_000);
    let a = obs(
        Proto::Dns,
        "192.168.7.10:40000",
        "10.0.0.1:53",
        Some("claude.ai"),
        0,
    );
    let b = obs(
        Proto::Dns,
        "192.168.7.11:40000",
        "10.0.0.1:53",
        Some("claude.ai"),
        0,
    );
    let opens = |o: Outcome| matches!(o.incident, Some(IncidentOp::Open { .. }));
    assert!(opens(step(&mut p, &rs, &a)));
    assert!(opens(step(&mut p, &rs, &b)), "two addresses, two devices");
    let later = obs(
        Proto::Dns,
        "192.168.7.10:40000",
        "10.0.0.1:53",
        Some("claude.ai"),
        599,
    );
    assert!(!opens(step(&mut p, &rs, &later)));
    let idle = obs(
        Proto::Dns,
        "192.168.7.10:40000",
        "10.0.0.1:53",
        Some("claude.ai"),
        1_200,
    );
    assert!(
        opens(step(&mut p, &rs, &idle)),
        "idle longer than the window: a new incident"
    );
    assert_eq!(
        p.expire(Timestamp::from_secs_micros(1_795_420_800 + 1_900, 0))
            .len(),
        2
    );
    assert_eq!(p.open_count(), 0);
}

#[test]
fn an_incident_opened_before_the_mac_was_known_carries_on_under_it() {
    let rs = rules();
    let mut p = Pipeline::new(Mode::Enforce, DEFAULT_WINDOW_MICROS);
    let opens = |o: &Outcome| matches!(o.incident, Some(IncidentOp::Open { .. }));
    // The resolver answers before any frame from the device was captured: by address.
    let query = obs(
        Proto::Dns,
        "10.0.0.21:40000",
        "10.0.0.1:53",
        Some("gemini.google.com"),
        0,
    );
    assert!(opens(&step(&mut p, &rs, &query)));
    // Its connection, from a frame that carries the MAC: the same incident.
    let mut tls = obs(
        Proto::Tls,
        "10.0.0.21:50000",
        "142.250.1.1:443",
        Some("gemini.google.com"),
        1,
    );
    tls.client_mac = Some(PC);
    let out = step(&mut p, &rs, &tls);
    assert!(
        matches!(&out.incident, Some(IncidentOp::Touch { touch, .. }) if touch.mac == Some(PC)),
        "the touch carries the MAC learned: {out:?}"
    );
    assert_eq!(p.open_count(), 1);
    // Learned once: the next touch carries none.
    let mut again = tls.clone();
    again.ts = Timestamp::from_secs_micros(1_795_420_800 + 1, 500_000);
    let out = step(&mut p, &rs, &again);
    assert!(
        matches!(&out.incident, Some(IncidentOp::Touch { touch, .. }) if touch.mac.is_none()),
        "{out:?}"
    );
    // From now on its other addresses join it too.
    let mut v6 = obs(
        Proto::Quic,
        "[2001:db8::a1]:50000",
        "[2a00:1450::1]:443",
        Some("gemini.google.com"),
        2,
    );
    v6.client_mac = Some(PC);
    assert!(!opens(&step(&mut p, &rs, &v6)));
    // Another device at another address is still its own incident.
    let mut other = tls.clone();
    other.client = "10.0.0.22:50000".parse().expect("addr");
    other.client_mac = Some(Mac([2, 0, 0, 0, 0, 0x22]));
    assert!(opens(&step(&mut p, &rs, &other)));
    assert_eq!(p.open_count(), 2);
}

/// The shipped catalog with a site deny list of `n` hosts `h0.flood.example`...: each a
/// service of its own (keyed by its rule).
fn flood_rules(n: usize) -> (RuleSet, tempfile::TempDir) {
    let site = tempfile::tempdir().expect("tempdir");
    let list: String = (0..n).map(|i| format!("h{i}.flood.example\n")).collect();
    std::fs::write(site.path().join("deny.list"), list).expect("write");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let rs = RuleSet::load(&crate::policy::RuleDirs::with_site(
        &root,
        Some(site.path()),
    ))
    .expect("rules");
    (rs, site)
}

#[test]
fn incident_openings_have_budgets_per_device_in_all_and_for_spoofed_addresses() {
    let (rs, _site) = flood_rules(1_000);
    let opens = |o: &Outcome| matches!(o.incident, Some(IncidentOp::Open { .. }));
    let flood =
        |p: &mut Pipeline, client: &str, first: usize, n: usize, secs: i64, spoofed: bool| {
            (first..first + n)
                .filter(|i| {
                    let o = obs(
                        Proto::Dns,
                        client,
                        "10.0.0.1:53",
                        Some(&format!("h{i}.flood.example")),
                        secs,
                    );
                    let w = who(&o);
                    let mut j = judge(&rs, &o, &w.client(), Mode::Enforce);
                    j.how.spoofed = spoofed;
                    let out = p.step(&o, &w, &j);
                    assert!(out.attempt && out.usage.is_some(), "usage is still counted");
                    opens(&out)
                })
                .count()
        };
    // One device asking 50 blocked names at once: 30 incidents, the rest limited.
    let mut p = Pipeline::new(Mode::Enforce, DEFAULT_WINDOW_MICROS);
    assert_eq!(flood(&mut p, "10.0.0.21:40000", 0, 50, 0, false), 30);
    assert_eq!(p.stats().opens_limited, 20);
    // Another device is not affected; a minute later the first has its budget back.
    assert_eq!(flood(&mut p, "10.0.0.22:40000", 0, 5, 0, false), 5);
    assert_eq!(flood(&mut p, "10.0.0.21:40000", 100, 50, 60, false), 30);
    // One host cycling through 700 addresses, each a device behind a router: 600 in all.
    let mut p = Pipeline::new(Mode::Enforce, DEFAULT_WINDOW_MICROS);
    let all: usize = (0..700)
        .map(|i| {
            let client = format!("192.168.{}.{}:40000", 10 + i / 250, 1 + i % 250);
            flood(&mut p, &client, i, 1, 0, false)
        })
        .sum();
    assert_eq!(all, ALL_OPENS_PER_MINUTE as usize);
    // Spoofed: 10 a minute in all, whoever they name.
    let mut p = Pipeline::new(Mode::Enforce, DEFAULT_WINDOW_MICROS);
    let spoofed: usize = (0..20)
        .map(|i| flood(&mut p, &format!("10.0.1.{}:40000", 1 + i), i, 1, 0, true))
        .sum();
    assert_eq!(spoofed, SPOOFED_OPENS_PER_MINUTE as usize);
}

#[test]
fn allowed_use_is_usage_without_incidents() {
    let rs = rules();
    let mut p = Pipeline::new(Mode::Enforce, DEFAULT_WINDOW_MICROS);
    let o = obs(
        Proto::Dns,
        "10.0.0.24:40000",
        "10.0.0.1:53",
        Some("bedrock-runtime.us-east-1.amazonaws.com"),
        0,
    );
    let out = step(&mut p, &rs, &o);
    assert_eq!(out.incident, None);
    let u = out.usage.expect("usage");
    assert_eq!(
        (u.service.as_str(), u.verdict, u.day.as_str()),
        ("bedrock", Verdict::Allow, "2026-11-23")
    );
    // Names no rule knows are neither.
    let out = step(
        &mut p,
        &rs,
        &obs(
            Proto::Dns,
            "10.0.0.24:40000",
            "10.0.0.1:53",
            Some("example.org"),
            0,
        ),
    );
    assert_eq!((out.usage, out.incident), (None, None));
}

#[test]
fn monitor_mode_is_recorded_on_the_incident() {
    let rs = rules();
    let mut p = Pipeline::new(Mode::Monitor, DEFAULT_WINDOW_MICROS);
    let o = obs(
        Proto::Dns,
        "10.0.0.23:40000",
        "10.0.0.1:53",
        Some("chatgpt.com"),
        0,
    );
    let w = who(&o);
    let j = judge(&rs, &o, &w.client(), Mode::Monitor);
    match p.step(&o, &w, &j).incident {
        Some(IncidentOp::Open { record, .. }) => {
            assert_eq!(
                (record.verdict, record.mode),
                (Verdict::Flag, Mode::Monitor)
            );
            assert_eq!(record.host, "chatgpt.com");
            assert_eq!(record.rule, "catalog/openai.toml:chatgpt");
        }
        other => panic!("{other:?}"),
    }
}
