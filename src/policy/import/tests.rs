//! The list importer's tests: every format and every reason a line is skipped. Long: one
//! case per format, modifier and skip reason, each with its own input text.
use super::*;

/// `(line, pattern as written)` for each entry.
fn shown(imported: &Imported) -> Vec<(usize, String)> {
    imported
        .entries
        .iter()
        .map(|e| (e.line, e.pattern.display()))
        .collect()
}

/// `(line, reason)` for each skipped line or name.
fn reasons(imported: &Imported) -> Vec<(usize, &str)> {
    imported
        .skipped
        .iter()
        .map(|s| (s.line, s.reason.as_str()))
        .collect()
}

fn owned(pairs: &[(usize, &str)]) -> Vec<(usize, String)> {
    pairs.iter().map(|(l, p)| (*l, p.to_string())).collect()
}

/// The one pattern `rule` imports to in adblock format, or the reason it is skipped.
fn adblock_one(rule: &str) -> Result<String, String> {
    let imported = import_list(rule, ListFormat::Adblock);
    match (imported.entries.as_slice(), imported.skipped.as_slice()) {
        ([entry], []) => Ok(entry.pattern.display()),
        ([], [skipped]) => Err(skipped.reason.clone()),
        _ => Err(format!("unexpected result for {rule:?}: {imported:?}")),
    }
}

/// In the shape of the StevenBlack unified hosts file.
const STEVENBLACK: &str = "\
# Title: StevenBlack/hosts
#
# This hosts file is a merged collection of hosts from reputable sources,
# with a dash of crowd sourcing via GitHub
#
# Date: 14 March 2025 17:10:32 (UTC)
# Number of unique domains: 4
#
# ===============================================================

127.0.0.1 localhost
127.0.0.1 localhost.localdomain
127.0.0.1 local
255.255.255.255 broadcasthost
::1 localhost
::1 ip6-localhost
::1 ip6-loopback
fe80::1%lo0 localhost
ff00::0 ip6-localnet
ff00::0 ip6-mcastprefix
ff02::1 ip6-allnodes
ff02::2 ip6-allrouters
ff02::3 ip6-allhosts
0.0.0.0 0.0.0.0

# Custom host records are listed here.


# End of custom host records.
# Start StevenBlack

#=====================================
# Title: Hosts contributed by Steven Black
# http://stevenblack.com

0.0.0.0 ck.getcookiestxt.com
0.0.0.0 eu1.clevertap-prod.com
0.0.0.0 wizhumpgyros.com
0.0.0.0 coccyxwickimp.com
";

/// In the shape of the AdGuard DNS filter.
const ADGUARD_DNS: &str = "\
! Title: AdGuard DNS filter
! Description: Filter composed of several other filters (AdGuard Base filter, Social media filter, Tracking Protection filter, Mobile Ads filter, EasyList and EasyPrivacy) and simplified specifically to be better compatible with DNS-level ad blocking.
! Homepage: https://github.com/AdguardTeam/AdGuardSDNSFilter
! License: https://github.com/AdguardTeam/AdGuardSDNSFilter/blob/master/LICENSE
! Last modified: 2025-03-14T10:22:41.316Z
!
! Compiled by @adguard/hostlist-compiler v1.0.26
!
||0020.pl^
||00404850.xyz^
||*.ad-delivery.net^
@@||cdn.adsafeprotected.com^|
||adservice.google.com^$important
||ad.doubleclick.net^
||googleadservices.com^
||doubleclick.net^
||metrics.example.org^$dnstype=AAAA
";

/// A plain domain list in the shape of the ones Pi-hole and dnsmasq users share.
const PLAIN: &str = "\
# AI assistants this clinic does not allow
# one domain per line

chatgpt.com
claude.ai
Gemini.Google.com.
*.perplexity.ai
.character.ai
poe.com # Quora's
";

#[test]
fn imports_a_stevenblack_hosts_file() {
    let imported = import_list(STEVENBLACK, ListFormat::Hosts);
    assert_eq!(imported.format, ListFormat::Hosts);
    assert_eq!(
        shown(&imported),
        owned(&[
            (36, "ck.getcookiestxt.com"),
            (37, "eu1.clevertap-prod.com"),
            (38, "wizhumpgyros.com"),
            (39, "coccyxwickimp.com"),
        ])
    );
    assert_eq!(imported.local_names, 14);
    assert!(imported.skipped.is_empty(), "{:?}", imported.skipped);
    assert_eq!((imported.duplicates, imported.shadowed), (0, 0));
}

#[test]
fn hosts_lines_with_several_names_and_a_comment() {
    let imported = import_list(
        "127.0.0.1 a.example.com b.example.net  # trackers\n0.0.0.0 c.example.org#note\n",
        ListFormat::Hosts,
    );
    assert_eq!(
        shown(&imported),
        owned(&[
            (1, "a.example.com"),
            (1, "b.example.net"),
            (2, "c.example.org")
        ])
    );
}

#[test]
fn hosts_separators_may_be_tabs() {
    let imported = import_list(
        "0.0.0.0\tads.example.com\n0.0.0.0 \t  tracker.example.net\t\tpixel.example.org\t\n",
        ListFormat::Hosts,
    );
    assert_eq!(
        shown(&imported),
        owned(&[
            (1, "ads.example.com"),
            (2, "tracker.example.net"),
            (2, "pixel.example.org"),
        ])
    );
    assert!(imported.skipped.is_empty());
}

#[test]
fn hosts_addresses_may_be_ipv6() {
    let imported = import_list(
        ":: a.example.com\n::1 b.example.com\n2001:db8::1 c.example.com\nfe80::1%eth0 d.example.com\n",
        ListFormat::Hosts,
    );
    assert_eq!(
        shown(&imported),
        owned(&[
            (1, "a.example.com"),
            (2, "b.example.com"),
            (3, "c.example.com"),
            (4, "d.example.com"),
        ])
    );
}

#[test]
fn hosts_lines_that_cannot_be_imported_say_why() {
    let text = "\
ads.example.com
0.0.0.0
0.0.0.0 1.2.3.4 ok.example.com
0.0.0.0 bad!name.example.com
0.0.0.0 *.wild.example.com
0.0.0.0 router
";
    let imported = import_list(text, ListFormat::Hosts);
    assert_eq!(
        shown(&imported),
        owned(&[(3, "ok.example.com"), (5, "*.wild.example.com")])
    );
    let r = reasons(&imported);
    assert_eq!(r.len(), 5, "{r:?}");
    assert_eq!(
        r[0],
        (1, "not a hosts line: the first word is not an ip address")
    );
    assert_eq!(r[1], (2, "no host name after the address"));
    assert_eq!(r[2], (3, "an ip address, not a host name"));
    assert_eq!(imported.skipped[2].text, "0.0.0.0 1.2.3.4 ok.example.com");
    assert_eq!(r[3].0, 4);
    assert!(r[3].1.contains("invalid character '!'"), "{}", r[3].1);
    // A single label on a hosts line is a machine on the list author's network.
    assert_eq!(r[4].0, 6);
    assert!(r[4].1.starts_with("single-label name"), "{}", r[4].1);
}

#[test]
fn local_names_are_counted_not_skipped_in_every_format() {
    let all = LOCAL_NAMES.join(" ");
    let imported = import_list(&format!("127.0.0.1 {all}\n"), ListFormat::Hosts);
    assert_eq!(imported.local_names, LOCAL_NAMES.len());
    assert!(imported.entries.is_empty() && imported.skipped.is_empty());

    let imported = import_list("LOCALHOST\nlocalhost.localdomain.\n", ListFormat::Domains);
    assert_eq!(imported.local_names, 2);
    assert!(imported.skipped.is_empty());

    let imported = import_list("||localhost^\n", ListFormat::Adblock);
    assert_eq!(imported.local_names, 1);
    assert!(imported.skipped.is_empty());
}

#[test]
fn imports_a_plain_domain_list() {
    let imported = import_list(PLAIN, ListFormat::Domains);
    assert_eq!(imported.format, ListFormat::Domains);
    assert_eq!(
        shown(&imported),
        owned(&[
            (4, "chatgpt.com"),
            (5, "claude.ai"),
            (6, "gemini.google.com"),
            (7, "*.perplexity.ai"),
            (8, "character.ai"),
            (9, "poe.com"),
        ])
    );
    assert!(imported.skipped.is_empty(), "{:?}", imported.skipped);
}

#[test]
fn domain_lists_skip_addresses_and_extra_words() {
    let text = "1.2.3.4\n2001:db8::1\n[2001:db8::2]\n*.10.0.0.1\n0.0.0.0 ads.example.com\nads.example.com extra\n";
    let imported = import_list(text, ListFormat::Domains);
    assert!(imported.entries.is_empty());
    assert_eq!(
        reasons(&imported),
        vec![
            (1, "an ip address, not a host name"),
            (2, "an ip address, not a host name"),
            (3, "an ip address, not a host name"),
            (4, "an ip address, not a host name"),
            (5, "more than one word on the line"),
            (6, "more than one word on the line"),
        ]
    );
}

#[test]
fn domain_lists_skip_wildcards_inside_names_and_urls() {
    let imported = import_list(
        "ad*.example.com\n*example.com\nhttps://example.com/path\n",
        ListFormat::Domains,
    );
    assert!(imported.entries.is_empty());
    assert_eq!(
        reasons(&imported),
        vec![
            (1, "wildcard inside a name"),
            (2, "wildcard inside a name"),
            (3, PATH_RULE),
        ]
    );
}

#[test]
fn imports_an_adguard_dns_filter() {
    let imported = import_list(ADGUARD_DNS, ListFormat::Adblock);
    assert_eq!(imported.format, ListFormat::Adblock);
    assert_eq!(
        shown(&imported),
        owned(&[
            (9, "0020.pl"),
            (10, "00404850.xyz"),
            (11, "*.ad-delivery.net"),
            (13, "adservice.google.com"),
            (15, "googleadservices.com"),
            (16, "doubleclick.net"),
        ])
    );
    // `ad.doubleclick.net` (line 14) is covered by `doubleclick.net` (line 16).
    assert_eq!(imported.shadowed, 1);
    assert_eq!(
        reasons(&imported),
        vec![
            (12, "exception rule: put it in allow.list"),
            (17, "$dnstype limits the rule to some query types"),
        ]
    );
}

#[test]
fn adblock_host_rules() {
    for (rule, want) in [
        ("||example.com^", "example.com"),
        ("||Example.COM^", "example.com"),
        ("||example.com", "example.com"),
        ("||example.com^|", "example.com"),
        ("||example.com.^", "example.com"),
        ("||*.example.com^", "*.example.com"),
        ("example.com^", "example.com"),
        ("example.com", "example.com"),
        ("*.example.com^", "*.example.com"),
        ("||xn--chtgpt-wxa.com^", "xn--chtgpt-wxa.com"),
    ] {
        assert_eq!(adblock_one(rule), Ok(want.to_string()), "{rule}");
    }
}

#[test]
fn adblock_modifiers_that_keep_a_host_block() {
    for rule in [
        "||example.com^$important",
        "||example.com^$IMPORTANT",
        "||example.com^$all",
        "||example.com^$document",
        "||example.com^$doc,important",
        "||example.com^$match-case",
    ] {
        assert_eq!(adblock_one(rule), Ok("example.com".to_string()), "{rule}");
    }
}

#[test]
fn adblock_modifiers_that_narrow_the_rule_are_skipped() {
    for (rule, want) in [
        (
            "||example.com^$badfilter",
            "$badfilter rule: it turns another rule off",
        ),
        (
            "||example.com^$client=192.168.1.5",
            "$client limits the rule to some clients",
        ),
        (
            "||example.com^$ctag=device_phone",
            "$ctag limits the rule to some clients",
        ),
        (
            "||example.com^$dnstype=AAAA",
            "$dnstype limits the rule to some query types",
        ),
        (
            "||com^$denyallow=example.com",
            "$denyallow exempts names a pattern cannot express",
        ),
        (
            "||example.com^$dnsrewrite=NOERROR;A;1.2.3.4",
            "$dnsrewrite rewrites answers instead of blocking",
        ),
        (
            "||example.com^$important,dnsrewrite",
            "$dnsrewrite rewrites answers instead of blocking",
        ),
        (
            "||example.com^$script",
            "browser-only modifier $script: the rule does not block the whole host",
        ),
        (
            "||example.com^$third-party",
            "browser-only modifier $third-party: the rule does not block the whole host",
        ),
        (
            "||example.com^$3p",
            "browser-only modifier $3p: the rule does not block the whole host",
        ),
        (
            "||example.com^$~third-party",
            "browser-only modifier $~third-party: the rule does not block the whole host",
        ),
        (
            "||example.com^$popup",
            "browser-only modifier $popup: the rule does not block the whole host",
        ),
        (
            "||example.com^$domain=a.example|b.example",
            "browser-only modifier $domain: the rule does not block the whole host",
        ),
        (
            "||example.com^$~document",
            "browser-only modifier $~document: the rule does not block the whole host",
        ),
        ("||example.com^$frobnicate", "unknown modifier $frobnicate"),
        ("||example.com^$", "empty modifier list after $"),
        ("$script,domain=example.com", "no host name in the rule"),
    ] {
        assert_eq!(adblock_one(rule), Err(want.to_string()), "{rule}");
    }
}

#[test]
fn adblock_exception_rules_belong_in_the_allow_list() {
    for rule in [
        "@@||example.com^",
        "@@||example.com^$important",
        "@@example.com",
    ] {
        assert_eq!(
            adblock_one(rule),
            Err("exception rule: put it in allow.list".to_string()),
            "{rule}"
        );
    }
}

#[test]
fn adblock_cosmetic_rules_are_skipped_and_comments_ignored() {
    for rule in [
        "##.ad-banner",
        "###sponsored",
        "example.com##.ad-banner",
        "example.com#@#.ad-banner",
        "example.com#$#body { padding: 0 }",
        "example.com#?#div:has(> .ad)",
        "example.com#%#//scriptlet('abort-on-property-read', 'ads')",
        "example.com$$script[tag-content=\"ads\"]",
    ] {
        assert_eq!(
            adblock_one(rule),
            Err("cosmetic rule".to_string()),
            "{rule}"
        );
    }
    let imported = import_list(
        "[Adblock Plus 2.0]\n! comment\n# comment\n## section\n### Section\n####\n# see ## below\n!\n\n",
        ListFormat::Adblock,
    );
    assert!(imported.entries.is_empty() && imported.skipped.is_empty());
}

#[test]
fn adblock_paths_urls_and_regexes_are_skipped() {
    for (rule, want) in [
        ("||example.com/ads/banner.js", PATH_RULE),
        ("||example.com^ads", PATH_RULE),
        ("||example.com^*", PATH_RULE),
        ("||example.com?utm_source=x", PATH_RULE),
        ("/ads/banner.gif", PATH_RULE),
        (
            "|https://example.com/path",
            "url rule: DNS sees only host names",
        ),
        (
            "|https://example.com^",
            "url rule: DNS sees only host names",
        ),
        ("://ads.", "url rule: DNS sees only host names"),
        ("|example.com^", "url rule: DNS sees only host names"),
        ("/^ads?[0-9]+\\.example\\.com$/", "regular expression"),
        ("/banner\\d+/$important", "regular expression"),
        ("||example.com:8080^", "port rule: DNS sees no ports"),
        ("||^", "no host name in the rule"),
        ("||ad*.example.com^", "wildcard inside a name"),
        ("||example.*^", "wildcard inside a name"),
        ("||1.2.3.4^", "an ip address, not a host name"),
        ("||example.com^ # note", "not a rule: it contains spaces"),
    ] {
        assert_eq!(adblock_one(rule), Err(want.to_string()), "{rule}");
    }
}

#[test]
fn adblock_lists_may_mix_in_hosts_lines() {
    let imported = import_list(
        "||a.example.com^\n0.0.0.0 b.example.com c.example.com\n127.0.0.1 localhost\n",
        ListFormat::Adblock,
    );
    assert_eq!(
        shown(&imported),
        owned(&[
            (1, "a.example.com"),
            (2, "b.example.com"),
            (2, "c.example.com")
        ])
    );
    assert_eq!(imported.local_names, 1);
}

#[test]
fn auto_detects_each_format() {
    assert_eq!(
        import_list(STEVENBLACK, ListFormat::Auto).format,
        ListFormat::Hosts
    );
    assert_eq!(
        import_list(ADGUARD_DNS, ListFormat::Auto).format,
        ListFormat::Adblock
    );
    assert_eq!(
        import_list(PLAIN, ListFormat::Auto).format,
        ListFormat::Domains
    );
    let cases = [
        ("[Adblock Plus 2.0]\nexample.com\n", ListFormat::Adblock),
        ("[AdGuard]\nexample.com\n", ListFormat::Adblock),
        (
            "example.com\nexample.net\n||example.org^\n",
            ListFormat::Adblock,
        ),
        ("example.com^\n", ListFormat::Adblock),
        ("@@||example.com^\n", ListFormat::Adblock),
        ("! title\nexample.com\n", ListFormat::Adblock),
        ("example.com##.ad\n", ListFormat::Adblock),
        ("##.ad\n", ListFormat::Adblock),
        ("# title\n## section\nexample.com\n", ListFormat::Domains),
        ("0.0.0.0 a.example.com ## not cosmetic\n", ListFormat::Hosts),
        ("::1 a.example.com\n", ListFormat::Hosts),
        ("1.2.3.4\n5.6.7.8\n", ListFormat::Domains),
        ("", ListFormat::Domains),
    ];
    for (text, want) in cases {
        assert_eq!(import_list(text, ListFormat::Auto).format, want, "{text:?}");
    }
}

#[test]
fn auto_detection_looks_at_the_first_200_meaningful_lines() {
    let mut text = "# header\n\n".repeat(300);
    text.push_str(&"0.0.0.0 a.example.com\n".repeat(DETECT_LINES));
    text.push_str("||example.org^\n");
    let imported = import_list(&text, ListFormat::Auto);
    assert_eq!(imported.format, ListFormat::Hosts);
    // Read as hosts, the adblock line is one a hosts file cannot hold.
    assert_eq!(
        reasons(&imported),
        vec![(
            601 + DETECT_LINES,
            "not a hosts line: the first word is not an ip address"
        )]
    );
}

#[test]
fn an_explicit_format_is_not_second_guessed() {
    let imported = import_list(STEVENBLACK, ListFormat::Domains);
    assert_eq!(imported.format, ListFormat::Domains);
    assert!(imported.entries.is_empty());
    assert!(imported
        .skipped
        .iter()
        .all(|s| s.reason == "more than one word on the line"));
}

#[test]
fn crlf_line_endings() {
    let hosts = import_list(
        "# hosts\r\n0.0.0.0 a.example.com\r\n0.0.0.0 b.example.com\r\n",
        ListFormat::Auto,
    );
    assert_eq!(hosts.format, ListFormat::Hosts);
    assert_eq!(
        shown(&hosts),
        owned(&[(2, "a.example.com"), (3, "b.example.com")])
    );
    let domains = import_list("a.example.com\r\n\r\nb.example.com\r\n", ListFormat::Auto);
    assert_eq!(domains.format, ListFormat::Domains);
    assert_eq!(
        shown(&domains),
        owned(&[(1, "a.example.com"), (3, "b.example.com")])
    );
    let adblock = import_list(
        "! list\r\n||a.example.com^\r\n||b.example.com^$important\r\n@@||c.example.com^\r\n",
        ListFormat::Auto,
    );
    assert_eq!(adblock.format, ListFormat::Adblock);
    assert_eq!(
        shown(&adblock),
        owned(&[(2, "a.example.com"), (3, "b.example.com")])
    );
    assert_eq!(adblock.skipped[0].text, "@@||c.example.com^");
}

#[test]
fn a_byte_order_mark_is_ignored() {
    let domains = import_list("\u{feff}a.example.com\nb.example.com\n", ListFormat::Auto);
    assert_eq!(
        shown(&domains),
        owned(&[(1, "a.example.com"), (2, "b.example.com")])
    );
    assert!(domains.skipped.is_empty());
    let hosts = import_list("\u{feff}0.0.0.0 a.example.com\r\n", ListFormat::Auto);
    assert_eq!(hosts.format, ListFormat::Hosts);
    assert_eq!(shown(&hosts), owned(&[(1, "a.example.com")]));
    let adblock = import_list(
        "\u{feff}[Adblock Plus 2.0]\r\n||a.example.com^\r\n",
        ListFormat::Auto,
    );
    assert_eq!(adblock.format, ListFormat::Adblock);
    assert_eq!(shown(&adblock), owned(&[(2, "a.example.com")]));
}

#[test]
fn line_numbers_count_blank_and_comment_lines() {
    let text = "\n# one\n\n  a.example.com  \n\n# two\nbad name\n\nb.example.com\n";
    let imported = import_list(text, ListFormat::Domains);
    assert_eq!(
        shown(&imported),
        owned(&[(4, "a.example.com"), (9, "b.example.com")])
    );
    assert_eq!(
        reasons(&imported),
        vec![(7, "more than one word on the line")]
    );
    assert_eq!(imported.skipped[0].text, "bad name");
}

#[test]
fn duplicates_keep_the_first() {
    let text = "a.example.com\nA.Example.com.\n*.b.example.com\nb.example.net\n*.b.example.com\na.example.com\n";
    let imported = import_list(text, ListFormat::Domains);
    assert_eq!(
        shown(&imported),
        owned(&[
            (1, "a.example.com"),
            (3, "*.b.example.com"),
            (4, "b.example.net")
        ])
    );
    assert_eq!((imported.duplicates, imported.shadowed), (3, 0));
}

#[test]
fn broader_entries_shadow_narrower_ones_in_any_order() {
    let text = "\
ads.example.com
x.y.example.com
example.com
*.example.com
*.cdn.example.net
a.cdn.example.net
*.b.cdn.example.net
cdn.example.net
notexample.com
example.org
*.sub.example.org
*.other.example
other.example
";
    let imported = import_list(text, ListFormat::Domains);
    assert_eq!(
        shown(&imported),
        owned(&[
            (3, "example.com"),
            (8, "cdn.example.net"),
            (9, "notexample.com"),
            (10, "example.org"),
            (13, "other.example"),
        ])
    );
    assert_eq!(imported.shadowed, 8);
    assert_eq!(imported.duplicates, 0);
}

#[test]
fn a_subdomains_only_entry_does_not_cover_its_apex() {
    let imported = import_list(
        "*.example.com\nexample.com.evil\na.example.com\n",
        ListFormat::Domains,
    );
    assert_eq!(
        shown(&imported),
        owned(&[(1, "*.example.com"), (2, "example.com.evil")])
    );
    assert_eq!(imported.shadowed, 1);
    let imported = import_list("*.example.com\nexample.com\n", ListFormat::Domains);
    assert_eq!(shown(&imported), owned(&[(2, "example.com")]));
    assert_eq!(imported.shadowed, 1);
}

#[test]
fn international_names_become_punycode() {
    for (text, format) in [
        ("bücher.example\n", ListFormat::Domains),
        ("0.0.0.0 bücher.example\n", ListFormat::Hosts),
        ("||bücher.example^\n", ListFormat::Adblock),
    ] {
        let imported = import_list(text, format);
        assert_eq!(
            shown(&imported),
            owned(&[(1, "xn--bcher-kva.example")]),
            "{text}"
        );
    }
    let imported = import_list("a\u{e000}b.example\n", ListFormat::Domains);
    assert_eq!(imported.skipped.len(), 1);
    assert_eq!(
        Some(imported.skipped[0].reason.clone()),
        Pattern::parse("a\u{e000}b.example").err()
    );
}

#[test]
fn single_label_names_are_not_imported() {
    for (text, format) in [
        ("com\n", ListFormat::Domains),
        ("*.ai\n", ListFormat::Domains),
        ("||zip^\n", ListFormat::Adblock),
        ("0.0.0.0 nas\n", ListFormat::Hosts),
    ] {
        let imported = import_list(text, format);
        assert!(imported.entries.is_empty(), "{text}");
        assert!(
            imported.skipped[0].reason.starts_with("single-label name"),
            "{text}"
        );
    }
}

#[test]
fn invalid_names_carry_the_pattern_message() {
    let imported = import_list("a..example.com\n-\n", ListFormat::Domains);
    assert_eq!(
        Some(imported.skipped[0].reason.clone()),
        Pattern::parse("a..example.com").err()
    );
    assert_eq!(imported.skipped[1].line, 2);
    let long = format!("{}.example.com", "a".repeat(64));
    let imported = import_list(&long, ListFormat::Domains);
    assert_eq!(
        Some(imported.skipped[0].reason.clone()),
        Pattern::parse(&long).err()
    );
}

#[test]
fn skipped_text_is_cut_to_120_characters() {
    let line = format!("||example.com/{}", "é".repeat(300));
    let imported = import_list(&line, ListFormat::Adblock);
    let text = &imported.skipped[0].text;
    assert_eq!(text.chars().count(), MAX_TEXT);
    assert!(text.starts_with("||example.com/é") && text.ends_with('…'));
    let exact = format!("||example.com/{}", "x".repeat(MAX_TEXT - 14));
    let imported = import_list(&exact, ListFormat::Adblock);
    assert_eq!(imported.skipped[0].text, exact);
}

#[test]
fn every_name_is_accounted_for() {
    let text = format!("{STEVENBLACK}{ADGUARD_DNS}{PLAIN}0.0.0.0 ck.getcookiestxt.com\n");
    let imported = import_list(&text, ListFormat::Adblock);
    // Hosts, plain and adblock lines in one list: 4 + 14 local names on hosts lines,
    // 1 repeat, 9 adblock rules and 6 plain names.
    let names = 4 + 14 + 1 + 9 + 6;
    assert_eq!(
        imported.entries.len()
            + imported.skipped.len()
            + imported.duplicates
            + imported.shadowed
            + imported.local_names,
        names
    );
    assert_eq!(imported.duplicates, 1);
}

#[test]
fn a_200000_line_list_imports() {
    use std::fmt::Write;

    // 1,000 parent domains, 200 subdomains each (shadowed by the parent that ends the
    // list), every 50th subdomain repeated, and comment lines between.
    let mut text = String::from("# synthetic\n");
    let mut lines = 1;
    let mut duplicates = 0;
    'outer: for parent in 0..1_000 {
        for child in 0..200 {
            if lines >= 199_000 {
                break 'outer;
            }
            let _ = writeln!(text, "0.0.0.0 host{child}.ads{parent}.example");
            lines += 1;
            if child % 50 == 0 {
                let _ = writeln!(text, "0.0.0.0\thost{child}.ads{parent}.example # again");
                lines += 1;
                duplicates += 1;
            }
        }
    }
    let children = lines - 1 - duplicates;
    for parent in 0..1_000 {
        let _ = writeln!(text, "0.0.0.0 ads{parent}.example");
        lines += 1;
    }
    assert_eq!(lines, 200_000);

    let imported = import_list(&text, ListFormat::Auto);
    assert_eq!(imported.format, ListFormat::Hosts);
    assert_eq!(imported.entries.len(), 1_000);
    assert_eq!(imported.duplicates, duplicates);
    assert_eq!(imported.shadowed, children);
    assert!(imported.skipped.is_empty());
    assert_eq!(imported.entries[0].pattern.display(), "ads0.example");
    assert_eq!(imported.entries[0].line, 200_000 - 999);
}

#[test]
fn formats_have_command_line_names() {
    use clap::ValueEnum;

    for format in ListFormat::value_variants() {
        let parsed = ListFormat::from_str(format.as_str(), true);
        assert_eq!(parsed, Ok(*format));
    }
}
