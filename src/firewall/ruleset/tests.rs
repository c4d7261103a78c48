use super::*;

fn plan() -> Plan {
    Plan {
        lan: vec!["lan0".into()],
        dns: vec![
            "192.168.1.1:53".parse().expect("addr"),
            "[fd00::1]:53".parse().expect("addr"),
        ],
        doh: vec![
            "1.1.1.1/32".parse().expect("net"),
            "2606:4700:4700::1111/128".parse().expect("net"),
        ],
        block_853: true,
        quic_all: vec!["192.168.1.64/26".parse().expect("net")],
        quic_all_macs: vec!["52:54:00:12:34:56".into()],
        quic: QuicBlock::Reject,
        block_secs: 60,
        queue: None,
        queued_packets: None,
    }
}

fn rules_of<'a>(c: &'a [Value], chain: &str) -> Vec<&'a Value> {
    c.iter()
        .filter_map(|v| v.pointer("/add/rule"))
        .filter(|r| r["chain"] == chain)
        .map(|r| &r["expr"])
        .collect()
}

#[test]
fn the_batch_fits_the_nftables_schema_and_replaces_the_table_first() {
    let c = plan().commands();
    document(c.clone()).expect("schema");
    assert_eq!(
        c[0],
        json!({"add": {"table": {"family": "inet", "name": "aiwarden"}}})
    );
    assert_eq!(
        c[1],
        json!({"delete": {"table": {"family": "inet", "name": "aiwarden"}}})
    );
    // Nothing outside the table.
    for v in &c {
        let s = v.to_string();
        assert!(s.contains("\"aiwarden\""), "{s}");
    }
    document(failopen_commands(
        &["lan0".into()],
        &["9.9.9.9".parse().expect("ip")],
    ))
    .expect("schema");
    document(vec![add_tuples(
        "deny4",
        &[(
            "192.168.1.5".parse().expect("ip"),
            "203.0.113.10".parse().expect("ip"),
            443,
        )],
    )])
    .expect("schema");
}

#[test]
fn dns_is_redirected_only_from_the_lan_and_only_when_not_for_this_host() {
    let c = plan().commands();
    let dns = rules_of(&c, "dns_redirect");
    assert_eq!(dns.len(), 4, "udp and tcp, each family");
    for r in dns {
        let s = r.to_string();
        assert!(
            s.contains("\"iifname\"") && s.contains("lan0"),
            "scoped to the LAN: {s}"
        );
        assert!(s.contains("\"fib\""), "{s}");
        assert!(s.contains("\"dnat\""), "{s}");
    }
    // A wildcard listen address redirects to the receiving interface's own address.
    let mut p = plan();
    p.dns = vec!["0.0.0.0:5353".parse().expect("addr")];
    let c = p.commands();
    let dns = rules_of(&c, "dns_redirect");
    assert_eq!(dns.len(), 2, "IPv4 only: no IPv6 resolver address");
    assert!(dns[0]
        .to_string()
        .contains("{\"redirect\":{\"port\":5353}}"));
}

#[test]
fn tcp_is_never_blocked_by_destination_address_alone() {
    let c = plan().commands();
    for r in rules_of(&c, "forward_filter") {
        let s = r.to_string();
        if !s.contains("tcp reset") {
            continue;
        }
        let by_mark = s.contains("\"mark\"");
        let by_port_853 = s.contains("853");
        let dedicated_resolver = s.contains("@doh4") || s.contains("@doh6");
        let per_connection = s.contains("@deny4") || s.contains("@deny6");
        let one_connection = s.contains("@conn4") || s.contains("@conn6");
        assert!(
            by_mark || by_port_853 || dedicated_resolver || per_connection || one_connection,
            "a TCP reset decided by something else: {s}"
        );
        if per_connection {
            assert!(s.contains("\"concat\""), "a tuple, not an address: {s}");
        }
    }
}

#[test]
fn the_queue_rule_holds_only_first_packets_and_passes_without_a_listener() {
    let c = plan().commands();
    assert!(!c.iter().any(|v| v.to_string().contains("\"queue\"")));
    let mut p = plan();
    p.queue = Some(QueueRule { num: 3, packets: 8 });
    p.queued_packets = Some(8);
    let c = p.commands();
    let queued: Vec<String> = rules_of(&c, "forward_filter")
        .into_iter()
        .map(ToString::to_string)
        .filter(|s| s.contains("\"queue\""))
        .collect();
    assert_eq!(queued.len(), 2, "TCP on every port, and UDP 443");
    for s in queued {
        assert!(
            s.contains("{\"queue\":{\"flags\":[\"bypass\"],\"num\":3}}"),
            "{s}"
        );
        assert!(
            s.contains("\"packets\"") && s.contains("\"original\""),
            "{s}"
        );
        assert!(s.contains("lan0"), "{s}");
    }
    document(c).expect("schema");
}

#[test]
fn quic_refusal_follows_the_configuration() {
    let mut p = plan();
    let rejected = p.commands();
    p.quic = QuicBlock::Drop;
    let dropped = p.commands();
    let count = |c: &[Value], what: &str| {
        rules_of(c, "forward_filter")
            .iter()
            .filter(|r| r.to_string().contains("udp") || r.to_string().contains("QUIC"))
            .filter(|r| r.to_string().contains(what))
            .count()
    };
    assert!(count(&rejected, "admin-prohibited") > 0);
    assert!(count(&dropped, "\"drop\"") > 0);
}

#[test]
fn tuple_sets_never_touch_a_connection_judged_allowed() {
    let mut p = plan();
    p.queued_packets = Some(8);
    let c = p.commands();
    let tuples: Vec<String> = rules_of(&c, "forward_filter")
        .into_iter()
        .map(ToString::to_string)
        .filter(|s| s.contains("@deny") || s.contains("@quic4") || s.contains("@quic6"))
        .collect();
    assert_eq!(tuples.len(), 4);
    for s in tuples {
        assert!(
            s.contains(&format!("[{{\"ct\":{{\"key\":\"mark\"}}}},{MARK_ALLOW}]")),
            "{s}"
        );
        if s.contains("@deny") {
            assert!(
                s.contains("\">\"") && s.contains("\"original\""),
                "past the queued packets: {s}"
            );
        }
    }
}

#[test]
fn packets_without_payload_are_not_queued() {
    assert!(
        rules_of(&plan().commands(), "bare").is_empty(),
        "no queue, no prefilter"
    );
    let mut p = plan();
    p.queued_packets = Some(8);
    let c = p.commands();
    let pre: Vec<String> = rules_of(&c, "prefilter")
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(pre.len(), 1);
    assert!(
        pre[0].contains("lan0") && pre[0].contains("\"jump\"") && pre[0].contains("\"original\""),
        "{}",
        pre[0]
    );
    let bare: Vec<String> = rules_of(&c, "bare").iter().map(|r| r.to_string()).collect();
    assert_eq!(
        bare.len(),
        22,
        "every TCP header length, both families: SYNs too"
    );
    // A bare IPv4 ACK with timestamps: 20 + 32 bytes; IPv6: 32 bytes of payload.
    let has = |field: &str, proto: &str, v: u32| {
        format!("{{\"left\":{{\"payload\":{{\"field\":\"{field}\",\"protocol\":\"{proto}\"}}}},\"op\":\"==\",\"right\":{v}}}")
    };
    assert!(
        bare.iter()
            .any(|r| r.contains(&has("doff", "tcp", 8)) && r.contains(&has("length", "ip", 52))),
        "{bare:?}"
    );
    assert!(
        bare.iter()
            .any(|r| r.contains(&has("doff", "tcp", 8)) && r.contains(&has("length", "ip6", 32))),
        "{bare:?}"
    );
    for r in &bare {
        assert!(
            r.contains(&format!("{MARK_SKIP}")) && r.contains("\"return\""),
            "{r}"
        );
    }
    document(c).expect("schema");
}
