//! Tests of the policy against the shipped rule files and small inline rule sets.

use std::path::{Path, PathBuf};

use super::*;

fn shipped() -> RuleSet {
    RuleSet::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"))
        .expect("shipped rules load")
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
[[service.hosts]]
tier = "enterprise"
patterns = ["*.openai.azure.com"]
"#;

#[test]
fn shipped_rules_load_and_decide() {
    let rs = shipped();
    assert!(rs.services().count() >= 45);
    let d = rs.judge("chatgpt.com", None, Mode::Enforce);
    assert_eq!(d.verdict, Verdict::Block);
    assert_eq!(d.tier, Some(Tier::Shared));
    assert_eq!(d.service.as_ref().map(|s| &*s.id), Some("chatgpt"));
    let own = rs.judge("sunrise-clinic.openai.azure.com", None, Mode::Enforce);
    assert_eq!(own.verdict, Verdict::Allow);
    assert_eq!(own.service.as_ref().map(|s| &*s.id), Some("azure-openai"));
    assert_eq!(own.rule.as_deref(), Some("site/allow.list:9"));
    let other = rs.judge("contoso-ai.openai.azure.com", None, Mode::Enforce);
    assert_eq!(other.verdict, Verdict::Flag);
    assert!(
        other.reason.contains("another organisation's tenant"),
        "{}",
        other.reason
    );
    let bedrock = rs.judge(
        "bedrock-runtime.us-east-1.amazonaws.com",
        None,
        Mode::Enforce,
    );
    assert_eq!(bedrock.verdict, Verdict::Allow);
    assert!(
        bedrock.reason.contains("tenant not attributable"),
        "{}",
        bedrock.reason
    );
    let doh = rs.judge("dns.google", None, Mode::Enforce);
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
            rs.judge(canary, None, Mode::Enforce).verdict,
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
        let d = rs.judge(host, None, Mode::Enforce);
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
        rs.judge("www.chatgpt.com", None, Mode::Monitor).verdict,
        Verdict::Flag
    );
    assert_eq!(
        rs.judge("www.chatgpt.com", None, Mode::Enforce).verdict,
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
    let d = rs.judge("work.chatgpt.com", None, Mode::Enforce);
    assert_eq!(
        (d.verdict, d.rule.as_deref()),
        (Verdict::Allow, Some("site/allow.list:2"))
    );
    assert_eq!(d.service.as_ref().map(|s| &*s.id), Some("chatgpt"));
    let d = rs.judge("chatgpt.com", None, Mode::Enforce);
    assert_eq!(
        (d.verdict, d.rule.as_deref()),
        (Verdict::Block, Some("site/deny.list:1"))
    );
    let d = rs.judge("a.example.org", None, Mode::Enforce);
    assert_eq!((d.verdict, d.service.is_none()), (Verdict::Block, true));
}

#[test]
fn errors_name_file_and_line() {
    let e = set(&[("site/deny.list", "# ok\nfine.example\nbad host!\n")]).expect_err("bad");
    assert_eq!(
        e.to_string(),
        "site/deny.list:3: unexpected \"host!\": a line is a host pattern and an optional @group"
    );
    let e = set(&[("site/deny.list", "ok.example\nbä.example\n")]).expect_err("bad");
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

#[test]
fn scoped_entries_wait_for_groups() {
    let rs = set(&[
        ("catalog/x.toml", MINI),
        ("site/allow.list", "chatgpt.com @billing\n"),
    ])
    .expect("loads");
    assert_eq!(
        rs.judge("chatgpt.com", None, Mode::Enforce).verdict,
        Verdict::Block
    );
    let ex = rs.explain("chatgpt.com", None, Mode::Enforce);
    assert!(ex
        .consulted
        .iter()
        .any(|s| s.pattern == "chatgpt.com @billing" && !s.applies));
}

#[test]
fn explain_walks_every_rule() {
    let rs = shipped();
    let ex = rs.explain("Sunrise-Clinic.OpenAI.Azure.com.", None, Mode::Enforce);
    assert_eq!(ex.host, "sunrise-clinic.openai.azure.com");
    assert_eq!(ex.verdict, Verdict::Allow);
    let kinds: Vec<&str> = ex.consulted.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, vec!["allow", "catalog"]);
    let text = ex.to_string();
    assert!(text.contains("Azure OpenAI"), "{text}");
    let shared = rs.explain("claude.ai", None, Mode::Enforce).to_string();
    assert!(shared.contains("cannot tell"), "{shared}");
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
        rs.judge("a.host99999.blocked89.example", None, Mode::Enforce)
            .verdict,
        Verdict::Block
    );
    assert_eq!(
        rs.judge("host99999.blocked88.example", None, Mode::Enforce)
            .verdict,
        Verdict::Allow
    );
}
