//! The shipped catalog, judged as a clinic's traffic meets it: every host a catalog service
//! lists is judged as that service, the hosts an ordinary clinic works with
//! (`tests/fixtures/clinic-hosts.txt`) are all allowed and name no service, and the hosts
//! issue 13 named (Gemini in Workspace, apex domains, ChatGPT's push channel, Bing search,
//! the Microsoft 365 home page) get the verdicts it asked for.

use std::path::Path;

use aiwarden::policy::pattern::Pattern;
use aiwarden::policy::{Client, Mode, RuleSet, Verdict};

fn shipped() -> RuleSet {
    RuleSet::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"))
        .expect("shipped rules load")
}

/// The service `host` is judged as in enforce mode, and the verdict.
fn judged(rules: &RuleSet, host: &str) -> (Option<String>, Verdict) {
    let d = rules.judge(host, &Client::NONE, Mode::Enforce);
    (d.service.map(|s| s.id.to_string()), d.verdict)
}

#[test]
fn the_catalog_is_broad_sourced_and_dated() {
    let rules = shipped();
    let summary = rules.catalog_summary();
    assert!(summary.services >= 150, "{} services", summary.services);
    assert_eq!(summary.unreviewed, 0);
    for s in rules.services() {
        assert!(!s.sources.is_empty(), "{} has no sources", s.id);
        assert!(
            s.sources.iter().all(|u| u.starts_with("https://")),
            "{}: {:?}",
            s.id,
            s.sources
        );
    }
    // Every category the issue names holds services.
    for id in [
        "chat",
        "search",
        "writing",
        "translation",
        "transcription",
        "scribe",
        "image",
        "video",
        "audio",
        "code",
        "agents",
        "browser",
        "companion",
        "health",
        "api",
        "bypass",
    ] {
        let c = summary
            .categories
            .iter()
            .find(|c| c.id == id)
            .expect("category known");
        assert!(c.services > 0, "no service in category {id}");
    }
    // `rules check --strict` has nothing to say about the shipped files.
    let lints = rules.lint();
    assert!(lints.is_empty(), "{lints:?}");
}

#[test]
fn every_catalog_host_is_judged_as_the_service_that_lists_it() {
    let rules = shipped();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for s in rules.services() {
        for group in &s.hosts {
            for text in &group.patterns {
                let pattern = Pattern::parse(text).expect("catalog patterns parse");
                let host = pattern.example();
                assert!(pattern.matches(&host), "{text}: {host}");
                let (service, _) = judged(&rules, &host);
                checked += 1;
                if service.as_deref() != Some(&*s.id) {
                    wrong.push(format!("{host} ({text}): {service:?}, not {:?}", &*s.id));
                }
            }
        }
    }
    assert!(checked >= 400, "only {checked} patterns");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The fixture's hosts: one per line, `#` comments and blank lines skipped.
fn clinic_hosts() -> Vec<(usize, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clinic-hosts.txt");
    let text = std::fs::read_to_string(&path).expect("clinic-hosts.txt");
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(i, l)| (i, l.to_string()))
        .collect()
}

#[test]
fn an_ordinary_clinic_s_hosts_are_never_ai() {
    let rules = shipped();
    let hosts = clinic_hosts();
    assert!(hosts.len() >= 300, "only {} clinic hosts", hosts.len());
    let mut seen = std::collections::HashSet::new();
    let mut wrong = Vec::new();
    for (line, host) in &hosts {
        assert!(seen.insert(host.as_str()), "line {line}: {host} twice");
        let p = Pattern::parse(host).unwrap_or_else(|e| panic!("line {line}: {e}"));
        assert_eq!(
            &*p.name,
            host.as_str(),
            "line {line}: write hosts lowercase"
        );
        let (service, verdict) = judged(&rules, host);
        if service.is_some() || verdict != Verdict::Allow {
            wrong.push(format!(
                "clinic-hosts.txt:{line}: {host}: {verdict:?} as {service:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_hosts_issue_13_names_get_their_services() {
    let rules = shipped();
    let expect = [
        // Gemini inside Google Workspace and the Android apps.
        ("appsgenaiserver-pa.clients6.google.com", "gemini-workspace"),
        ("appsgenaiserver-pa.googleapis.com", "gemini-workspace"),
        ("proactivebackend-pa.googleapis.com", "gemini-workspace"),
        // Apex domains and what lies under them.
        ("openai.com", "chatgpt"),
        ("help.openai.com", "chatgpt"),
        ("videos.openai.com", "sora"),
        ("api.openai.com", "openai-api"),
        ("anthropic.com", "claude"),
        ("www.anthropic.com", "claude"),
        ("api.anthropic.com", "anthropic-api"),
        // ChatGPT's push channel, by label wildcard on a shared cloud suffix.
        (
            "chatgpt-async-webps-prod-eastus-0.webpubsub.azure.com",
            "chatgpt",
        ),
        ("copilot.github.com", "github-copilot"),
        // Grok's uploads and generated media, Manus's CDN.
        ("assets.grok.com", "grok"),
        ("manuscdn.com", "manus"),
        ("us-central1-aiplatform.googleapis.com", "vertex-ai"),
        ("copilot.microsoft.com", "copilot-consumer"),
        ("sydney.bing.com", "copilot-consumer"),
        ("copilot.cloud.microsoft", "m365-copilot"),
    ];
    let mut wrong = Vec::new();
    for (host, id) in expect {
        let (service, _) = judged(&rules, host);
        if service.as_deref() != Some(id) {
            wrong.push(format!("{host}: {service:?}, expected {id}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Copilot's own hosts are blocked; Bing search, Edge's new-tab images and the
    // Microsoft 365 home page are not touched; another Azure customer's Web PubSub hub
    // is not ChatGPT's.
    assert_eq!(judged(&rules, "copilot.microsoft.com").1, Verdict::Block);
    for host in [
        "www.bing.com",
        "th.bing.com",
        "bing.com",
        "m365.cloud.microsoft",
        "clinic-portal.webpubsub.azure.com",
        "webpubsub.azure.com",
    ] {
        assert_eq!(judged(&rules, host), (None, Verdict::Allow), "{host}");
    }
}

#[test]
fn services_the_issue_found_missing_are_listed() {
    let rules = shipped();
    let hosts = [
        "fathom.video",
        "krisp.ai",
        "monica.im",
        "getmerlin.in",
        "hyperwriteai.com",
        "consensus.app",
        "elicit.com",
        "scite.ai",
        "gamma.app",
        "descript.com",
        "firefly.adobe.com",
        "designer.microsoft.com",
        "leonardo.ai",
        "ideogram.ai",
        "stability.ai",
        "copilotstudio.microsoft.com",
        "replit.com",
        "qodo.ai",
        "replika.com",
        "z.ai",
        "chatglm.cn",
        "julius.ai",
        "humata.ai",
        "kimi.com",
        "chat.qwen.ai",
        "manus.im",
        "manuscdn.com",
    ];
    let missing: Vec<&str> = hosts
        .into_iter()
        .filter(|h| judged(&rules, h).0.is_none())
        .collect();
    assert!(missing.is_empty(), "no service for {missing:?}");
}
