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
fn ech_extension_marks_the_outer_name() {
    check(
        "tls_ech_grease.pcap",
        &[
            "dns 10.0.0.23:40006 10.0.0.1:53 claude.ai claude block",
            "tls 10.0.0.23:50006 160.79.104.10:443 claude.ai claude block ech",
        ],
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
            "dns 10.0.0.23:40011 10.0.0.1:53 claude.ai claude block ech",
            "dns 10.0.0.23:40012 10.0.0.1:53 gemini.google.com gemini block",
        ],
    );
}

#[test]
fn dns_over_tcp_split_across_segments() {
    let (obs, det) = expect::observations(&fixture("dns_tcp_split.pcap"));
    assert_eq!(obs.len(), 1);
    assert_eq!(obs[0].host.as_str(), "gemini.google.com");
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
    let hosts: Vec<&str> = obs.iter().map(|o| o.host.as_str()).collect();
    assert_eq!(hosts, vec!["claude.ai"]);
    let skipped: u64 = det.stats().skipped.values().sum();
    assert!(skipped >= 3, "{:?}", det.stats());
    assert!(
        det.stats().get("client_hello_malformed") >= 1,
        "{:?}",
        det.stats()
    );
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
                out.push(o.host.to_string());
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
