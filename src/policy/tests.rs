//! Tests of the policy against the shipped rule files and small inline rule sets.

use std::path::{Path, PathBuf};

use super::*;
use crate::policy::Client;

fn shipped() -> RuleSet {
    RuleSet::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"))
        .expect("shipped rules load")
}

/// The shipped catalog with the bundled sample clinic's site files (samples/site).
fn sample() -> RuleSet {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    RuleSet::load(&RuleDirs::with_site(
        &root.join("rules"),
        Some(&root.join("samples/site")),
    ))
    .expect("sample rules load")
}

/// Each rule an explanation consulted: kind, pattern, whether it applies.
fn steps(ex: &Explanation) -> Vec<(&str, &str, bool)> {
    ex.consulted
        .iter()
        .map(|s| (s.kind, s.pattern.as_str(), s.applies))
        .collect()
}

fn set(files: &[(&str, &str)]) -> Result<RuleSet> {
    let files: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), t.to_string()))
        .collect();
    RuleSet::from_sources(&files)
}

const MINI: &str = r#"
[[service]]
id = "chatgpt"
name = "ChatGPT"
vendor = "OpenAI"
category = "chat"
[[service.hosts]]
tier = "shared"
patterns = ["chatgpt.com"]

[[service]]
id = "azure-openai"
name = "Azure OpenAI"
vendor = "Microsoft"
category = "api"
reviewed = "2026-11-30"
[[service.hosts]]
tier = "enterprise"
tenant = "in_host"
patterns = ["*.openai.azure.com"]
"#;

#[test]
fn shipped_rules_load_and_decide() {
    let rs = sample();
    assert!(rs.services().count() >= 45);
    let d = rs.judge("chatgpt.com", &Client::NONE, Mode::Enforce);
    assert_eq!(d.verdict, Verdict::Block);
    assert_eq!(d.tier, Some(Tier::Shared));
    assert_eq!(d.service.as_ref().map(|s| &*s.id), Some("chatgpt"));
    let own = rs.judge(
        "sunrise-clinic.openai.azure.com",
        &client("10.0.0.24"),
        Mode::Enforce,
    );
    assert_eq!(own.verdict, Verdict::Allow);
    assert_eq!(own.service.as_ref().map(|s| &*s.id), Some("azure-openai"));
    assert_eq!(
        own.rule.as_ref().map(|r| r.to_string()).as_deref(),
        Some("site/allow.list:10")
    );
    let other = rs.judge("contoso-ai.openai.azure.com", &Client::NONE, Mode::Enforce);
    assert_eq!(other.verdict, Verdict::Flag);
    assert!(
        other.reason.contains("another organisation's tenant"),
        "{}",
        other.reason
    );
    let bedrock = rs.judge(
        "bedrock-runtime.us-east-1.amazonaws.com",
        &Client::NONE,
        Mode::Enforce,
    );
    assert_eq!(bedrock.verdict, Verdict::Allow);
    assert!(
        bedrock.reason.contains("tenant not attributable"),
        "{}",
        bedrock.reason
    );
    let doh = rs.judge("dns.google", &Client::NONE, Mode::Enforce);
    assert_eq!(
        (doh.verdict, doh.service.as_ref().map(|s| &*s.id)),
        (Verdict::Block, Some("doh-resolvers"))
    );
    assert!(doh.reason.contains("bypass"));
    for canary in [
        "use-application-dns.net",
        "mask.icloud.com",
        "_dns.resolver.arpa",
        "cloudflare-ech.com",
    ] {
        assert_eq!(
            rs.judge(canary, &Client::NONE, Mode::Enforce).verdict,
            Verdict::Block,
            "{canary}"
        );
    }
}

#[test]
fn lookalikes_and_shared_infrastructure_do_not_match() {
    let rs = shipped();
    for host in [
        "notchatgpt.com",
        "chatgpt.com.example.net",
        "americanphilanthropic.com",
        "xn--chtgpt-9za.com",
        "gemini.com",
        "docs.google.com",
        "mail.google.com",
        "sentry.io",
        "openai.azure.com",
    ] {
        let d = rs.judge(host, &Client::NONE, Mode::Enforce);
        assert_eq!(
            (host, d.verdict, d.service.is_none()),
            (host, Verdict::Allow, true)
        );
    }
}

#[test]
fn monitor_turns_block_into_flag() {
    let rs = set(&[("catalog/x.toml", MINI)]).expect("loads");
    assert_eq!(
        rs.judge("www.chatgpt.com", &Client::NONE, Mode::Monitor)
            .verdict,
        Verdict::Flag
    );
    assert_eq!(
        rs.judge("www.chatgpt.com", &Client::NONE, Mode::Enforce)
            .verdict,
        Verdict::Block
    );
}

#[test]
fn allow_beats_deny_beats_catalog() {
    let rs = set(&[
        ("catalog/x.toml", MINI),
        ("site/deny.list", "chatgpt.com\nexample.org\n"),
        (
            "site/allow.list",
            "# the clinic's tenant\nwork.chatgpt.com\n",
        ),
    ])
    .expect("loads");
    let d = rs.judge("work.chatgpt.com", &Client::NONE, Mode::Enforce);
    assert_eq!(
        (d.verdict, d.rule.as_ref().map(|r| r.to_string()).as_deref()),
        (Verdict::Allow, Some("site/allow.list:2"))
    );
    assert_eq!(d.service.as_ref().map(|s| &*s.id), Some("chatgpt"));
    let d = rs.judge("chatgpt.com", &Client::NONE, Mode::Enforce);
    assert_eq!(
        (d.verdict, d.rule.as_ref().map(|r| r.to_string()).as_deref()),
        (Verdict::Block, Some("site/deny.list:1"))
    );
    let d = rs.judge("a.example.org", &Client::NONE, Mode::Enforce);
    assert_eq!((d.verdict, d.service.is_none()), (Verdict::Block, true));
}

#[test]
fn a_megabyte_line_is_cut_in_the_error() {
    // A 10 MB line (a paste gone wrong) is named by file and line, and the message is cut,
    // not copied whole into the log.
    let line = format!("bad!{}.example\n", "x".repeat(10 << 20));
    let e = set(&[("site/deny.list", &format!("fine.example\n{line}"))]).expect_err("bad");
    let text = e.to_string();
    assert!(text.starts_with("site/deny.list:2: "), "{}", &text[..200]);
    assert!(
        text.len() < crate::error::MAX_MESSAGE + 100,
        "{} bytes",
        text.len()
    );
}

#[test]
fn errors_name_file_and_line() {
    let e = set(&[("site/deny.list", "# ok\nfine.example\nbad host!\n")]).expect_err("bad");
    assert_eq!(
        e.to_string(),
        "site/deny.list:3: unexpected \"host!\": a line is a host pattern and an optional @group"
    );
    let e = set(&[("site/deny.list", "ok.example\nbad!.example\n")]).expect_err("bad");
    assert!(
        e.to_string()
            .starts_with("site/deny.list:2: invalid character"),
        "{e}"
    );
    let e = set(&[("catalog/a.toml", "[[service]]\nid = \"x\"\nname = \"X\"\nvendor = \"V\"\ncategory = \"chat\"\ncolour = \"red\"\nhosts = []\n")])
        .expect_err("unknown key");
    assert!(
        e.to_string()
            .starts_with("catalog/a.toml:6: unknown field `colour`"),
        "{e}"
    );
    let e = set(&[("catalog/a.toml", "[[service]\n")]).expect_err("bad toml");
    assert!(e.to_string().starts_with("catalog/a.toml:1:"), "{e}");
    let e = set(&[("catalog/a.toml", MINI), ("catalog/b.toml", MINI)]).expect_err("duplicate ids");
    assert!(
        e.to_string()
            .contains("catalog/b.toml:3: duplicate service id \"chatgpt\""),
        "{e}"
    );
}

const GROUPS: &str = r#"
[[group]]
name = "billing"
cidrs = ["10.0.0.24/32"]

[[group]]
name = "frontdesk"
cidrs = ["10.0.0.16/28"]
devices = ["reception-1"]
ai = "none"

[[group]]
name = "clinicians"
cidrs = ["10.0.0.0/24"]
shared = "flag"
"#;

fn client(ip: &str) -> Client<'static> {
    Client::ip(ip.parse().expect("ip"))
}

#[test]
fn groups_scope_entries_and_policies() {
    let rs = set(&[
        ("catalog/x.toml", MINI),
        (
            "site/allow.list",
            "clinic.openai.azure.com @billing
chatgpt.com @frontdesk
",
        ),
        (
            "site/deny.list",
            "clinic.openai.azure.com @clinicians
",
        ),
        ("site/groups.toml", GROUPS),
    ])
    .expect("loads");
    let v = |host: &str, ip: &str| {
        let d = rs.judge(host, &client(ip), Mode::Enforce);
        (
            d.verdict,
            d.group.as_deref().map(str::to_string),
            d.rule.map(|r| r.to_string()),
        )
    };
    let azure = "clinic.openai.azure.com";
    assert_eq!(
        v(azure, "10.0.0.24"),
        (
            Verdict::Allow,
            Some("billing".into()),
            Some("site/allow.list:1".into())
        )
    );
    // The clinicians' own deny entry beats the catalog.
    assert_eq!(v(azure, "10.0.0.40").0, Verdict::Block);
    // Outside every group: the clinic's resource, allowed for other groups only.
    let outside = rs.judge(azure, &client("192.168.5.5"), Mode::Enforce);
    assert_eq!(outside.verdict, Verdict::Flag);
    assert!(
        outside.reason.contains("other client groups"),
        "{}",
        outside.reason
    );
    // ai = "none" blocks everything AI, but the group's own allow entry still wins.
    assert_eq!(
        v(azure, "10.0.0.17"),
        (
            Verdict::Block,
            Some("frontdesk".into()),
            Some("site/groups.toml:7".into())
        )
    );
    assert_eq!(v("chatgpt.com", "10.0.0.17").0, Verdict::Allow);
    assert_eq!(v("www.nih.gov", "10.0.0.17").0, Verdict::Allow);
    // The longest prefix wins; the clinicians' tier policy flags shared hosts.
    assert_eq!(
        v("chatgpt.com", "10.0.0.40"),
        (
            Verdict::Flag,
            Some("clinicians".into()),
            Some("site/groups.toml:13".into())
        )
    );
    assert_eq!(v("chatgpt.com", "192.168.5.5").0, Verdict::Block);
    // Device name beats address range; MAC beats address range.
    let by_name = Client::new(client("10.0.0.24").addr(), None, Some("Reception-1"));
    assert_eq!(
        rs.judge(azure, &by_name, Mode::Enforce).verdict,
        Verdict::Block
    );
    // Monitor mode turns a group's block into a flag too.
    assert_eq!(
        rs.judge(azure, &client("10.0.0.17"), Mode::Monitor).verdict,
        Verdict::Flag
    );
    let ex = rs.explain(azure, &client("10.0.0.24"), Mode::Enforce);
    assert_eq!(ex.group.as_deref(), Some("billing"));
    assert_eq!(ex.membership.as_deref(), Some("address range 10.0.0.24/32"));
    let steps = steps(&ex);
    assert_eq!(
        steps,
        [
            ("allow", "clinic.openai.azure.com @billing", true),
            ("catalog", "*.openai.azure.com", true),
            ("deny", "clinic.openai.azure.com @clinicians", false),
        ]
    );
}

#[test]
fn unknown_group_is_an_error_with_its_line() {
    let e = set(&[
        ("catalog/x.toml", MINI),
        (
            "site/allow.list",
            "# ok
chatgpt.com @billing
",
        ),
    ])
    .expect_err("no groups file");
    assert_eq!(
        e.to_string(),
        "site/allow.list:2: unknown group @billing: no site/groups.toml defines groups"
    );
    let e = set(&[
        ("catalog/x.toml", MINI),
        ("site/groups.toml", GROUPS),
        (
            "site/deny.list",
            "chatgpt.com @billling
",
        ),
    ])
    .expect_err("typo");
    assert_eq!(
        e.to_string(),
        "site/deny.list:1: unknown group @billling (groups: billing, frontdesk, clinicians)"
    );
}

#[test]
fn lints_name_file_and_line() {
    let rs = set(&[
        ("catalog/x.toml", MINI),
        ("site/groups.toml", "[[group]]\nname = \"idle\"\ncidrs = [\"10.1.0.0/16\"]\n"),
        (
            "site/allow.list",
            "chatgpt.com\nintranet.example\nwww.chatgpt.com\n",
        ),
        (
            "site/deny.list",
            "ads.example\nx.ads.example\nads.example\n*.chatgpt.com\n10.1.2.3\ncom\n-bad.example\nxn--zz.example\n",
        ),
    ])
    .expect("warnings do not stop loading");
    let lints: Vec<String> = rs.lint().iter().map(ToString::to_string).collect();
    assert_eq!(
        lints,
        [
            "catalog/x.toml:3: warning: service \"chatgpt\" cites no sources",
            "catalog/x.toml:3: warning: service \"chatgpt\" has no review date (reviewed = \"YYYY-MM-DD\"): when were its hosts and facts last checked?",
            "catalog/x.toml:12: warning: service \"azure-openai\" cites no sources",
            "site/allow.list:2: warning: intranet.example matches nothing in the catalog or the deny lists: an allow entry only overrides a block (a typo?)",
            "site/allow.list:3: warning: www.chatgpt.com is already covered by chatgpt.com (site/allow.list:1); this line has no effect",
            "site/deny.list:2: warning: x.ads.example is already covered by ads.example (site/deny.list:1); this line has no effect",
            "site/deny.list:3: warning: duplicate of line 1 (ads.example); this line has no effect",
            "site/deny.list:4: warning: *.chatgpt.com is already covered by com (site/deny.list:6); this line has no effect",
            "site/deny.list:4: warning: *.chatgpt.com never applies: allow entry chatgpt.com (site/allow.list:1) covers it and allow beats deny",
            "site/deny.list:5: warning: 10.1.2.3 is an IP address, not a host name: DNS and SNI rules match names only",
            "site/deny.list:6: warning: com is a single label: it covers a whole top-level domain",
            "site/deny.list:7: warning: -bad.example: label \"-bad\" starts or ends with a hyphen, which no host name does",
            "site/deny.list:8: warning: xn--zz.example: a label is not valid punycode",
            "site/groups.toml:2: warning: group \"idle\" changes nothing: no @idle entries, no ai or tier policy",
        ]
    );
}

#[test]
fn shipped_rules_lint_clean() {
    // The shipped site files are comments only: no group, no entry.
    let rs = shipped();
    let lints: Vec<String> = rs.lint().iter().map(ToString::to_string).collect();
    assert!(lints.is_empty(), "{lints:#?}");
    assert_eq!(
        (rs.groups().len(), rs.pattern_count() - rs.catalog.len()),
        (0, 0)
    );
    let rs = sample();
    let lints: Vec<String> = rs.lint().iter().map(ToString::to_string).collect();
    assert!(lints.is_empty(), "{lints:#?}");
    assert_eq!(rs.groups().len(), 2);
}

#[test]
fn international_names_and_homoglyphs() {
    let rs = set(&[
        ("catalog/x.toml", MINI),
        ("site/deny.list", "bücher.example\n"),
    ])
    .expect("loads");
    // A Unicode pattern is stored as the punycode a device asks for.
    assert_eq!(
        rs.judge("xn--bcher-kva.example", &Client::NONE, Mode::Enforce)
            .verdict,
        Verdict::Block
    );
    // Cyrillic a in chatgpt.com and claude.ai: other names, not the services.
    for host in [
        "xn--chtgpt-4nf.com",
        "xn--clude-5ve.ai",
        "www.xn--chtgpt-4nf.com",
    ] {
        let d = rs.judge(host, &Client::NONE, Mode::Enforce);
        assert_eq!((host, d.verdict, d.service), (host, Verdict::Allow, None));
    }
    let ex = rs.explain("chаtgpt.com", &Client::NONE, Mode::Enforce);
    assert_eq!(ex.host, "xn--chtgpt-4nf.com");
    assert_eq!(ex.unicode.as_deref(), Some("chаtgpt.com"));
    assert_eq!(ex.service, None);
    // Full-width letters are the same name once IDNA-mapped, so they do match.
    let ex = rs.explain("ｃｈａｔｇｐｔ.com", &Client::NONE, Mode::Enforce);
    assert_eq!(
        (ex.host.as_str(), ex.verdict),
        ("chatgpt.com", Verdict::Block)
    );
}

#[test]
fn explain_walks_every_rule() {
    let rs = sample();
    let ex = rs.explain(
        "Sunrise-Clinic.OpenAI.Azure.com.",
        &client("10.0.0.24"),
        Mode::Enforce,
    );
    assert_eq!(ex.host, "sunrise-clinic.openai.azure.com");
    assert_eq!(ex.verdict, Verdict::Allow);
    let kinds: Vec<&str> = ex.consulted.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, vec!["allow", "catalog"]);
    let text = ex.to_string();
    assert!(text.contains("Azure OpenAI"), "{text}");
    let shared = rs
        .explain("claude.ai", &Client::NONE, Mode::Enforce)
        .to_string();
    assert!(shared.contains("cannot tell"), "{shared}");
}

#[test]
fn exact_and_wildcard_label_entries_are_judged_explained_and_linted() {
    let rs = set(&[
        ("catalog/x.toml", MINI),
        ("site/allow.list", "=chatgpt.com\n"),
        (
            "site/deny.list",
            "ads.example\n=www.ads.example\n*.track.example\npush-*.track.example\n=push-1.track.example\nrelay-*.example\n",
        ),
    ])
    .expect("loads");
    let verdict = |h: &str| rs.judge(h, &Client::NONE, Mode::Enforce).verdict;
    // `=chatgpt.com` allows the name only; the catalog still blocks its subdomains.
    assert_eq!(verdict("chatgpt.com"), Verdict::Allow);
    assert_eq!(verdict("ab.chatgpt.com"), Verdict::Block);
    assert_eq!(verdict("relay-7.example"), Verdict::Block);
    assert_eq!(verdict("x.relay-7.example"), Verdict::Block);
    assert_eq!(verdict("relay.example"), Verdict::Allow);
    assert_eq!(verdict("example"), Verdict::Allow);

    let ex = rs.explain("push-2.track.example", &Client::NONE, Mode::Enforce);
    let steps = steps(&ex);
    assert_eq!(
        steps,
        [
            ("deny", "push-*.track.example", true),
            ("deny", "*.track.example", true)
        ]
    );
    assert_eq!(ex.rule.as_deref(), Some("site/deny.list:4"));
    let ex = rs.explain("a.chatgpt.com", &Client::NONE, Mode::Enforce);
    let steps: Vec<(&str, bool)> = ex
        .consulted
        .iter()
        .map(|s| (s.pattern.as_str(), s.applies))
        .collect();
    assert_eq!(steps, [("=chatgpt.com", false), ("chatgpt.com", true)]);

    let lints: Vec<String> = rs.lint().iter().map(ToString::to_string).collect();
    for expected in [
        "site/deny.list:2: warning: =www.ads.example is already covered by ads.example (site/deny.list:1); this line has no effect",
        "site/deny.list:4: warning: push-*.track.example is already covered by *.track.example (site/deny.list:3); this line has no effect",
        "site/deny.list:5: warning: =push-1.track.example is already covered by push-*.track.example (site/deny.list:4); this line has no effect",
    ] {
        assert!(lints.iter().any(|l| l == expected), "{expected}\n{lints:#?}");
    }
    // The exact allow entry overrides the catalog's chatgpt.com: not "matches nothing".
    assert!(
        !lints.iter().any(|l| l.contains("allow.list")),
        "{lints:#?}"
    );
}

#[test]
fn hundred_thousand_patterns() {
    let mut deny = String::new();
    for i in 0..100_000 {
        deny.push_str(&format!("host{i}.blocked{}.example\n", i % 97));
    }
    let rs = set(&[("catalog/x.toml", MINI), ("site/deny.list", &deny)]).expect("loads");
    assert_eq!(rs.pattern_count(), 100_002);
    assert_eq!(
        rs.judge(
            "a.host99999.blocked89.example",
            &Client::NONE,
            Mode::Enforce
        )
        .verdict,
        Verdict::Block
    );
    assert_eq!(
        rs.judge("host99999.blocked88.example", &Client::NONE, Mode::Enforce)
            .verdict,
        Verdict::Allow
    );
}

#[test]
fn docs_catalog_md_is_generated_from_the_catalog() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed = std::fs::read_to_string(root.join("docs/catalog.md")).expect("docs/catalog.md");
    let fresh = docs::catalog_markdown(&shipped());
    assert!(
        committed == fresh,
        "docs/catalog.md is stale: run `cargo run -- rules docs > docs/catalog.md`"
    );
    assert!(
        fresh.contains("| [ChatGPT](#chatgpt) | OpenAI | Chat assistants | shared"),
        "{fresh}"
    );
}

#[test]
fn rule_dirs_keep_the_installed_site_apart() {
    let installed = RuleDirs::installed();
    assert_eq!(installed.catalog, crate::paths::rules().join("catalog"));
    assert_eq!(installed.site, crate::paths::site());
    // The installed rules directory without --site: the installed site directory (in a
    // package /etc/aiwarden/site, not /usr/share/aiwarden/rules/site).
    assert_eq!(RuleDirs::with_site(&crate::paths::rules(), None), installed);
    // Any other directory keeps its own site/ unless told otherwise.
    let other = Path::new("/srv/msp/rules");
    assert_eq!(
        RuleDirs::with_site(other, None),
        RuleDirs {
            catalog: other.join("catalog"),
            site: other.join("site"),
        }
    );
    assert_eq!(
        RuleDirs::with_site(other, Some(Path::new("/etc/aiwarden/site"))).site,
        Path::new("/etc/aiwarden/site")
    );
    assert_eq!(
        RuleDirs::with_site(&crate::paths::rules(), Some(other)).site,
        other
    );
}
