//! Replays every fixture capture (made by `examples/make_captures.rs` from rustls and
//! quinn) and asserts the exact detections.

#[path = "support/expect.rs"]
mod expect;

use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn check(name: &str, want: &[&str]) {
    assert_eq!(expect::lines(&fixture(name)), want, "{name}");
}

const CLAUDE_V4: [&str; 2] = [
    "dns 10.0.0.23:40030 10.0.0.1:53 claude.ai claude block",
    "tls 10.0.0.23:50030 160.79.104.10:443 claude.ai claude block",
];

#[test]
fn rustls_client_hello_in_one_segment() {
    check(
        "tls_rustls_single.pcap",
        &[
            "dns 10.0.0.23:40001 10.0.0.1:53 claude.ai claude block",
            "tls 10.0.0.23:50001 160.79.104.10:443 claude.ai claude block",
        ],
    );
}

#[test]
fn pcapng_reads_like_pcap() {
    assert_eq!(
        expect::lines(&fixture("tls_rustls_single.pcapng")),
        expect::lines(&fixture("tls_rustls_single.pcap"))
    );
}

#[test]
fn sni_in_the_second_segment() {
    check(
        "tls_split_sni_second.pcap",
        &[
            "dns 10.0.0.23:40002 10.0.0.1:53 chatgpt.com chatgpt block",
            "tls 10.0.0.23:50002 104.18.32.47:443 chatgpt.com chatgpt block",
        ],
    );
}

#[test]
fn out_of_order_segments_with_retransmission() {
    check(
        "tls_out_of_order.pcap",
        &[
            "dns 10.0.0.23:40003 10.0.0.1:53 gemini.google.com gemini block",
            "tls 10.0.0.23:50003 142.250.72.110:443 gemini.google.com gemini block",
        ],
    );
}

#[test]
fn one_byte_segments_and_no_dns() {
    check(
        "tls_one_byte_segments.pcap",
        &["tls 10.0.0.23:50004 162.159.140.245:443 api.openai.com openai-api block unresolved"],
    );
}

#[test]
fn client_hello_across_tls_records() {
    check(
        "tls_multi_record.pcap",
        &[
            "dns 10.0.0.23:40005 10.0.0.1:53 www.perplexity.ai perplexity block",
            "tls 10.0.0.23:50005 104.18.26.48:443 www.perplexity.ai perplexity block",
        ],
    );
}

#[test]
fn grease_ech_is_not_hidden_ech() {
    // rustls sends a GREASE encrypted_client_hello extension the way Chromium does when it
    // has no ECH config: the SNI is the name the device looked up, so nothing was hidden.
    check(
        "tls_ech_grease.pcap",
        &[
            "dns 10.0.0.23:40006 10.0.0.1:53 claude.ai claude block",
            "tls 10.0.0.23:50006 160.79.104.10:443 claude.ai claude block",
        ],
    );
    let (obs, _) = expect::observations(&fixture("tls_ech_grease.pcap"));
    let hello = obs
        .iter()
        .find(|o| o.proto == aiwarden::detect::Proto::Tls)
        .expect("hello");
    assert!(hello.ech_offered, "the extension is there");
    assert_eq!(
        hello.asked, None,
        "and the device asked for the name it sent"
    );
}

#[test]
fn quinn_initials_in_order_and_reversed() {
    let want = [
        "dns 10.0.0.23:40007 10.0.0.1:53 chatgpt.com chatgpt block",
        "quic 10.0.0.23:50007 104.18.32.47:443 chatgpt.com chatgpt block",
    ];
    check("quic_v1_chatgpt.pcap", &want);
    check("quic_two_initials_reversed.pcap", &want);
}

#[test]
fn quinn_client_hello_really_spans_two_initials() {
    // Feed only the first Initial: the ClientHello must not be complete yet.
    let mut cap = pcap::Capture::from_file(fixture("quic_v1_chatgpt.pcap")).expect("opens");
    let mut det = aiwarden::detect::Detector::new(Default::default());
    let mut udp443 = 0;
    let mut found = 0;
    while let Ok(p) = cap.next_packet() {
        let is_quic = matches!(
            aiwarden::detect::packet::decode(aiwarden::detect::LinkType::Ethernet, p.data),
            Ok(aiwarden::detect::packet::Packet {
                transport: aiwarden::detect::packet::Transport::Udp { dport: 443, .. },
                ..
            })
        );
        let obs = det.process(
            Default::default(),
            aiwarden::detect::LinkType::Ethernet,
            p.data,
        );
        if is_quic {
            udp443 += 1;
            found += obs.len();
            if udp443 == 1 {
                assert_eq!(
                    found, 0,
                    "first Initial alone must not complete the ClientHello"
                );
            }
        }
    }
    assert_eq!((udp443, found), (2, 1));
}

#[test]
fn rfc_vectors_v1_and_v2() {
    check(
        "quic_rfc_v1_v2.pcap",
        &[
            "quic 10.0.0.23:50008 192.0.2.80:443 example.com - allow unresolved",
            "quic 10.0.0.23:50009 192.0.2.80:443 example.com - allow unresolved",
        ],
    );
}

#[test]
fn dns_over_udp_with_cname_and_ech() {
    check(
        "dns_udp.pcap",
        &[
            "dns 10.0.0.23:40010 10.0.0.1:53 chat.openai.com chatgpt block",
            "dns 10.0.0.23:40011 10.0.0.1:53 claude.ai claude block",
            "dns 10.0.0.23:40011 10.0.0.1:53 claude.ai claude block ech_offered",
            "dns 10.0.0.23:40012 10.0.0.1:53 gemini.google.com gemini block",
        ],
    );
}

#[test]
fn dns_over_tcp_split_across_segments() {
    let (obs, det) = expect::observations(&fixture("dns_tcp_split.pcap"));
    assert_eq!(obs.len(), 1);
    assert_eq!(
        obs[0].host.as_ref().map(|h| h.as_str()),
        Some("gemini.google.com")
    );
    // The answer, split in two segments, was read too.
    assert_eq!(det.stats().get("dns_response"), 1);
    assert_eq!(det.resolved_len(), 1);
}

#[test]
fn vlan_qinq_cooked_and_raw_links() {
    for name in [
        "vlan.pcap",
        "qinq.pcap",
        "linux_sll.pcap",
        "linux_sll2.pcap",
        "raw_ip.pcap",
    ] {
        check(name, &CLAUDE_V4);
    }
}

#[test]
fn ipv6_with_dns_attribution() {
    check(
        "ipv6.pcap",
        &[
            "dns [2001:db8::23]:40040 [2001:db8::1]:53 claude.ai claude block",
            "tls [2001:db8::23]:50040 [2607:6bc0::10]:443 claude.ai claude block",
        ],
    );
}

#[test]
fn lookalikes_are_not_ai() {
    let lines = expect::lines(&fixture("lookalikes.pcap"));
    assert_eq!(lines.len(), 12, "{lines:?}");
    assert!(lines.iter().all(|l| l.contains(" - allow")), "{lines:?}");
}

#[test]
fn malformed_frames_are_counted_and_capture_goes_on() {
    let (obs, det) = expect::observations(&fixture("malformed.pcap"));
    let hosts: Vec<&str> = obs
        .iter()
        .filter_map(|o| o.host.as_ref())
        .map(|h| h.as_str())
        .collect();
    assert_eq!(hosts, vec!["claude.ai"]);
    let skipped: u64 = det.stats().skipped.values().sum();
    assert!(skipped >= 3, "{:?}", det.stats());
    assert!(
        det.stats().get("client_hello_malformed") >= 1,
        "{:?}",
        det.stats()
    );
}

#[test]
fn real_ech_is_judged_by_the_name_the_device_asked_for() {
    // Real ECH (rustls, a hand-built ECHConfig): the outer SNI is the config's public
    // name. The first connection goes to the address DNS gave for chatgpt.com, and the
    // device never looked up cloudflare-ech.com: the real destination is chatgpt.com, and
    // that is what the rules judge. The second goes to an address nobody resolved with a
    // public name no list knows: from the wire it cannot be told from GREASE, so it is not
    // marked (it is unresolved; a rule on the name would still apply).
    check(
        "tls_ech_real.pcap",
        &[
            "dns 10.0.0.23:40070 10.0.0.1:53 chatgpt.com chatgpt block",
            "tls 10.0.0.23:50070 104.18.32.47:443 cloudflare-ech.com chatgpt block ech",
            "tls 10.0.0.23:50071 104.18.33.99:443 public.example.net - allow unresolved",
        ],
    );
    let (obs, _) = expect::observations(&fixture("tls_ech_real.pcap"));
    let asked: Vec<Option<&str>> = obs
        .iter()
        .filter(|o| o.proto == aiwarden::detect::Proto::Tls)
        .map(|o| o.asked.as_ref().map(|h| h.as_str()))
        .collect();
    assert_eq!(asked, [Some("chatgpt.com"), None]);
}

#[test]
fn plain_http_names_its_host_on_any_port() {
    check(
        "http_host.pcap",
        &[
            "http 10.0.0.23:50080 203.0.113.7:80 chatgpt.com chatgpt block unresolved",
            "http 10.0.0.23:50081 203.0.113.7:8080 claude.ai claude block unresolved",
        ],
    );
}

#[test]
fn a_connect_proxy_shows_the_tunnel_target_and_the_hello_inside() {
    check(
        "connect_proxy.pcap",
        &[
            "connect 10.0.0.23:50128 10.0.0.1:3128 chatgpt.com chatgpt block",
            "tls 10.0.0.23:50128 10.0.0.1:3128 chatgpt.com chatgpt block",
        ],
    );
}

#[test]
fn dns_over_tls_by_port_and_by_name() {
    check(
        "dot_853.pcap",
        &[
            // `dig +tls @IP` refused: the SYN alone says what it was.
            "tcp 10.0.0.23:50853 203.0.113.53:853 - dns-port-853 block unresolved port_853",
            "tls 10.0.0.23:50854 8.8.4.4:853 dns.google doh-resolvers block unresolved port_853",
        ],
    );
}

#[test]
fn tls_without_sni_by_address_and_as_unexplained() {
    check(
        "tls_no_sni.pcap",
        &[
            "tls 10.0.0.23:50443 203.0.113.9:443 - tls-without-name flag unresolved no_sni",
            "tls 10.0.0.23:50444 1.1.1.1:443 - doh-resolvers block unresolved no_sni addr",
            "quic 10.0.0.23:50445 8.8.8.8:443 - doh-resolvers block unresolved no_sni addr",
        ],
    );
}

#[test]
fn tls_and_quic_on_other_ports() {
    check(
        "any_port.pcap",
        &[
            "tls 10.0.0.23:54443 203.0.113.5:4443 claude.ai claude block unresolved",
            "quic 10.0.0.23:58443 203.0.113.6:8443 gemini.google.com gemini block unresolved",
        ],
    );
}

#[test]
fn a_dual_stack_device_is_explained_by_its_ipv4_lookup() {
    check(
        "dual_stack.pcap",
        &[
            "dns 10.0.0.23:40100 10.0.0.1:53 claude.ai claude block",
            "dns 10.0.0.23:40101 10.0.0.1:53 claude.ai claude block",
            "tls [2001:db8::23]:50600 [2607:6bc0::10]:443 claude.ai claude block",
            "tls [2001:db8::23]:50601 [2607:6bc0::99]:443 claude.ai claude block unresolved",
        ],
    );
    let (obs, _) = expect::observations(&fixture("dual_stack.pcap"));
    let macs: std::collections::BTreeSet<_> = obs.iter().map(|o| o.client_mac).collect();
    assert_eq!(macs.len(), 1, "one device: {macs:?}");
    assert!(macs.iter().all(Option::is_some));
}

const CHATGPT_QUIC: [&str; 2] = [
    "dns 10.0.0.23:40007 10.0.0.1:53 chatgpt.com chatgpt block",
    "quic 10.0.0.23:50007 104.18.32.47:443 chatgpt.com chatgpt block",
];

const CLAUDE_V6: [&str; 2] = [
    "dns [2001:db8::23]:40040 [2001:db8::1]:53 claude.ai claude block",
    "tls [2001:db8::23]:50040 [2607:6bc0::10]:443 claude.ai claude block",
];

#[test]
fn remote_mirrors_and_tunnels_are_opened() {
    for (name, counter) in [
        ("gre_ip.pcap", "encap_gre"),
        ("erspan2.pcap", "encap_erspan"),
        ("erspan3.pcap", "encap_erspan"),
        ("geneve.pcap", "encap_geneve"),
    ] {
        check(name, &CLAUDE_V4);
        let (_, det) = expect::observations(&fixture(name));
        assert!(det.stats().get(counter) > 0, "{name}: {:?}", det.stats());
    }
    check("vxlan.pcap", &[CLAUDE_V4, CHATGPT_QUIC].concat());
    // 4in4 and 6in4.
    check("ip_in_ip.pcap", &[CLAUDE_V4, CLAUDE_V6].concat());
}

#[test]
fn ppp_cisco_hdlc_and_pppoe_links() {
    for name in ["ppp.pcap", "chdlc.pcap", "pppoe.pcap"] {
        check(name, &CLAUDE_V4);
    }
}

#[test]
fn ip_fragments_are_reassembled() {
    // A DNS query in two fragments, the second first; a ClientHello segment in three.
    check("ip_fragments.pcap", &CLAUDE_V4);
    check("ipv6_fragments.pcap", &CLAUDE_V6);
    let (_, det) = expect::observations(&fixture("ip_fragments.pcap"));
    assert_eq!(det.stats().get("frag_reassembled"), 2);
    assert_eq!(det.stats().skipped.get("fragment"), Some(&3));
}

/// The TLS hosts seen in a capture by a detector reassembling with `policy`.
fn tls_hosts(name: &str, policy: aiwarden::detect::frag::FragPolicy) -> Vec<String> {
    let mut cap = pcap::Capture::from_file(fixture(name)).expect("opens");
    let mut cfg = aiwarden::detect::DetectorConfig::default();
    cfg.frag.policy = policy;
    let mut det = aiwarden::detect::Detector::new(cfg);
    let mut out = Vec::new();
    while let Ok(p) = cap.next_packet() {
        let ts =
            aiwarden::detect::Timestamp::from_secs_micros(p.header.ts.tv_sec, p.header.ts.tv_usec);
        for o in det.process(ts, aiwarden::detect::LinkType::Ethernet, p.data) {
            if o.proto == aiwarden::detect::Proto::Tls {
                out.extend(o.host.as_ref().map(ToString::to_string));
            }
        }
    }
    out
}

#[test]
fn overlapping_fragments_are_resolved_as_the_server_would() {
    // A rogue copy overlapping the server name: Linux (the default) discards the
    // datagram, as the server would, so only the DNS query is seen.
    check("frag_overlap.pcap", &CLAUDE_V4[..1]);
    let (_, det) = expect::observations(&fixture("frag_overlap.pcap"));
    assert_eq!(det.stats().get("frag_overlap_discarded"), 1);
    // A BSD or Windows server keeps the first bytes it got (the rogue's); a last-wins
    // stack keeps the real fragment's.
    use aiwarden::detect::frag::FragPolicy;
    assert_eq!(
        tls_hosts("frag_overlap.pcap", FragPolicy::First),
        ["zzzzzz.ai"]
    );
    assert_eq!(
        tls_hosts("frag_overlap.pcap", FragPolicy::Last),
        ["claude.ai"]
    );
}

#[test]
fn slow_first_flights_are_read_however_long_they_take() {
    // A real hello paused 5.5 s, one sent a byte per 30 ms (about 45 s), and two
    // interleaved a byte at a time (about 9 s each): the old 5 s window missed all four.
    check(
        "tls_slow_flights.pcap",
        &[
            "dns 10.0.0.23:40150 10.0.0.1:53 claude.ai claude block",
            "tls 10.0.0.23:50150 160.79.104.10:443 claude.ai claude block",
            "tls 10.0.0.23:50151 142.250.72.110:443 gemini.google.com gemini block unresolved",
            "tls 10.0.0.23:50152 104.18.32.47:443 chatgpt.com chatgpt block unresolved",
            "tls 10.0.0.23:50153 104.18.32.47:443 chatgpt.com chatgpt block unresolved",
        ],
    );
    let (obs, det) = expect::observations(&fixture("tls_slow_flights.pcap"));
    assert!(obs.iter().all(|o| !o.incomplete));
    let given_up: u64 = det
        .stats()
        .events
        .iter()
        .filter(|(k, _)| k.starts_with("tcp_first_flight_given_up"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(given_up, 0, "{:?}", det.stats());
    assert_eq!(det.first_flights(), (0, 0), "every flight released");
}

#[test]
fn flights_given_up_are_judged_by_address_and_port() {
    // Judged like any connection that named nothing, and marked incomplete: a hello padded
    // past the 16 KiB cap and one in one-byte records that outgrows it (to resolver
    // addresses), half a hello to port 853 ended by a RST, half a hello to a resolver
    // idle for 121 s (given up when the next packet comes), and one the capture ends.
    check(
        "tls_given_up.pcap",
        &[
            "tcp 10.0.0.23:50161 1.1.1.1:443 - doh-resolvers block unresolved addr incomplete",
            "tcp 10.0.0.23:50162 1.0.0.1:443 - doh-resolvers block unresolved addr incomplete",
            "tcp 10.0.0.23:50163 203.0.113.53:853 - dns-port-853 block unresolved port_853 incomplete",
            "tcp 10.0.0.23:50160 8.8.8.8:443 - doh-resolvers block unresolved addr incomplete",
            "dns 10.0.0.23:40164 10.0.0.1:53 example.org - allow",
            "tcp 10.0.0.23:50165 8.8.4.4:443 - doh-resolvers block unresolved addr incomplete",
        ],
    );
    let (_, det) = expect::observations(&fixture("tls_given_up.pcap"));
    let s = det.stats();
    for (why, n) in [
        ("byte_cap", 2),
        ("closed", 1),
        ("idle", 1),
        ("capture_end", 1),
        ("budget", 0),
        ("holes", 0),
        ("evicted", 0),
    ] {
        assert_eq!(
            s.get(&format!("tcp_first_flight_given_up_{why}")),
            n,
            "{why}: {s:?}"
        );
    }
}

#[test]
fn a_hello_at_the_start_of_a_giant_segment_is_read() {
    // TSO/GRO on a mirror port: 60,000 and 30,000-byte segments, the second starting a
    // stream mid-capture. Only the first 16 KiB of each is kept.
    check(
        "tls_giant_segment.pcap",
        &[
            "dns 10.0.0.23:40180 10.0.0.1:53 claude.ai claude block",
            "tls 10.0.0.23:50180 160.79.104.10:443 claude.ai claude block",
            "tls 10.0.0.23:50181 104.18.32.47:443 chatgpt.com chatgpt block unresolved",
        ],
    );
    let (_, det) = expect::observations(&fixture("tls_giant_segment.pcap"));
    assert_eq!(det.stats().get("tcp_first_flight_clipped"), 2);
}
