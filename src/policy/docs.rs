//! `docs/catalog.md`: the catalog as compliance staff and MSPs read it, rendered from the
//! rule files by `aiwarden rules docs`, so the document never drifts from what is enforced.

use std::fmt::Write;

use serde::Serialize;

use super::catalog::{category_label, CATEGORIES};
use super::{RuleSet, Service, Tenant, Tier};

fn word<T: Serialize>(v: Option<T>) -> String {
    v.and_then(|v| serde_json::to_value(v).ok())
        .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
        .unwrap_or_else(|| "-".into())
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn tiers(s: &Service) -> String {
    let mut t: Vec<&str> = Vec::new();
    for h in &s.hosts {
        if !t.contains(&h.tier.as_str()) {
            t.push(h.tier.as_str());
        }
    }
    t.join(", ")
}

fn default_action(s: &Service, tier: Tier, tenant: Tenant) -> &'static str {
    if s.category == "bypass" {
        return "block";
    }
    match (tier, tenant) {
        (Tier::Consumer | Tier::Shared, _) => "block",
        (Tier::Enterprise, Tenant::NotAttributable) => "allow (tenant not attributable)",
        (Tier::Enterprise, Tenant::InHost) => {
            "allow when site/allow.list names the clinic's resource, else flag"
        }
        (Tier::Enterprise, Tenant::Unknown) => "allow when site/allow.list lists it, else flag",
    }
}

/// The whole catalog as Markdown.
pub fn catalog_markdown(rules: &RuleSet) -> String {
    let mut out = String::new();
    let mut services: Vec<&Service> = rules.services().map(|s| &**s).collect();
    // By category, in the catalog's category order; file order within one.
    services.sort_by_key(|s| CATEGORIES.iter().position(|(c, _)| *c == s.category));
    let (bypass, ai): (Vec<&Service>, Vec<&Service>) = services
        .iter()
        .partition(|s| matches!(s.category.as_str(), "bypass" | "unexplained"));
    let patterns: usize = services
        .iter()
        .flat_map(|s| &s.hosts)
        .map(|h| h.patterns.len())
        .sum();
    let _ = writeln!(
        out,
        "# The AI service catalog\n\n\
         Generated from `rules/catalog/*.toml` by `aiwarden rules docs > docs/catalog.md`; \
         edit the TOML files, not this page (a test checks that the two agree).\n\n\
         {} AI services and {} bypass and review lists, {} host patterns. A pattern `example.com` covers \
         the name and every subdomain; `*.example.com` covers subdomains only; `=www.example.com` \
         that one host; `async-*.example.com` any first label with that prefix (and suffix) and \
         the names under it.\n\n\
         **Tiers.** `consumer`: a consumer product, no BAA. `enterprise`: a product that can \
         be covered by a BAA. `shared`: the same hosts serve consumer and enterprise accounts, \
         so DNS and SNI cannot tell which one a device uses. Default actions: consumer and \
         shared are blocked, enterprise is allowed when the clinic lists it in \
         `rules/site/allow.list` and flagged otherwise, bypass is always blocked, traffic \
         in `unexplained` is flagged for review. Services no name reveals are matched by \
         their addresses (a resolver's anycast addresses: any connection to them) or by a \
         signal (`port_853`: TCP or UDP to port 853; `no_sni`: a ClientHello without a name \
         to an internet address no DNS answer explains; `ech_public_name`: the hosts are ECH \
         public names, so an outer SNI equal to one hides the real destination). Monitor \
         mode flags instead of blocking; client groups (`rules/site/groups.toml`) can change \
         the action per group. `aiwarden rules explain HOST` shows the decision for a host.\n\n\
         **BAA**: whether the vendor signs a Business Associate Agreement (`enterprise only`: \
         only on enterprise plans; `none`: the vendor says it signs none, or a consumer product \
         shows no BAA offer anywhere in its terms; `unknown`: the sources are silent). **Trains on data**: the consumer tier's default \
         (`opt out`: yes unless the user turns it off).\n",
        ai.len(),
        bypass.len(),
        patterns
    );
    let summary = rules.catalog_summary();
    let _ = writeln!(
        out,
        "## Coverage\n\n\
         Last review {}; oldest review {}{}. Each service's review date is under its name below.\n\n\
         | Category | Services |\n|---|---|",
        summary.last_reviewed.as_deref().unwrap_or("never"),
        summary.oldest_reviewed.as_deref().unwrap_or("never"),
        match summary.unreviewed {
            0 => String::new(),
            n => format!("; {n} services never reviewed"),
        }
    );
    for c in summary.categories.iter().filter(|c| c.services > 0) {
        let _ = writeln!(out, "| {} (`{}`) | {} |", c.name, c.id, c.services);
    }
    let _ = writeln!(out, "| **All** | **{}** |\n", summary.services);
    out.push_str(METHOD);
    let _ = writeln!(
        out,
        "\n## Summary\n\n\
         | Service | Vendor | Category | Tiers | BAA | Trains on data | Data residency |\n\
         |---|---|---|---|---|---|---|"
    );
    for s in &ai {
        let _ = writeln!(
            out,
            "| [{}](#{}) | {} | {} | {} | {} | {} | {} |",
            cell(&s.name),
            s.id,
            cell(&s.vendor),
            category_label(&s.category),
            tiers(s),
            word(s.baa),
            word(s.trains_on_data),
            cell(s.data_residency.as_deref().unwrap_or("-")),
        );
    }
    let _ = writeln!(out, "\n## Services\n");
    for s in ai.iter().chain(&bypass) {
        let _ = writeln!(out, "### {}\n", s.id);
        let _ = writeln!(
            out,
            "**{}** ({}), category {}; BAA: {}; trains on data: {}; data residency: {}. \
             Defined in `rules/catalog/{}`; reviewed {}.\n",
            s.name,
            s.vendor,
            category_label(&s.category).to_lowercase(),
            word(s.baa),
            word(s.trains_on_data),
            s.data_residency.as_deref().unwrap_or("-"),
            s.file
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            s.reviewed.as_deref().unwrap_or("never"),
        );
        let action = if s.category == "bypass" {
            "block"
        } else {
            "flag"
        };
        let by_value = !s.addresses.is_empty() || !s.signals.is_empty();
        if by_value {
            let addrs: Vec<String> = s
                .addresses
                .iter()
                .map(|a| match a.prefix_len() == a.max_prefix_len() {
                    true => format!("`{}`", a.addr()),
                    false => format!("`{a}`"),
                })
                .collect();
            let signals: Vec<String> = s
                .signals
                .iter()
                .map(|g| format!("`{}`", g.as_str()))
                .collect();
            let _ = writeln!(
                out,
                "| Matched by | Default action | Values |\n|---|---|---|"
            );
            if !addrs.is_empty() {
                let _ = writeln!(out, "| addresses | {action} | {} |", addrs.join(" "));
            }
            if !signals.is_empty() {
                let _ = writeln!(out, "| signals | {action} | {} |", signals.join(" "));
            }
        }
        if !s.hosts.is_empty() {
            if by_value {
                let _ = writeln!(out);
            }
            let _ = writeln!(out, "| Tier | Default action | Hosts |\n|---|---|---|");
        }
        for h in &s.hosts {
            let hosts: Vec<String> = h.patterns.iter().map(|p| format!("`{p}`")).collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                h.tier.as_str(),
                default_action(s, h.tier, h.tenant),
                hosts.join(" ")
            );
        }
        if let Some(n) = &s.notes {
            let _ = writeln!(out, "\n{}", n.trim());
        }
        if !s.sources.is_empty() {
            let _ = writeln!(out, "\nSources:");
            for src in &s.sources {
                let _ = writeln!(out, "- <{src}>");
            }
        }
        let _ = writeln!(out);
    }
    out
}

/// How the catalog is made and kept: the part of docs/catalog.md no rule file holds.
const METHOD: &str = "## Method\n\n\
**Where names come from.** Three kinds of source, cited per service: the vendor's own \
documentation (network and firewall allow-list pages such as Microsoft's Dragon Copilot URL \
list, Google's Gemini firewall settings, GitHub's Copilot allow-list reference; privacy, \
trust and HIPAA pages for the BAA and training facts); community lists kept by people outside \
this project (v2fly domain-list-community, nullgen ai-blocklist, DNS-log name lists such as \
antonme/ipnames), which show the names products actually resolve; and the product's own \
traffic: the names a browser's network log or a DNS log shows during a session with the \
product. The review of 2026-12-02 used documentation and published lists only; no session \
was recorded (the machines it ran on reach no AI service). A host is listed only when a \
cited source names it; a BAA is `available` only when a source says \
the vendor signs one, and `unknown` otherwise.\n\n\
**AI-only or shared.** A host is listed when its traffic is the AI service: the product's \
own domains, its API and CDN names, and full names on shared clouds \
(`ppl-ai-file-upload.s3.amazonaws.com`, never `amazonaws.com`; ChatGPT's push hubs by the \
label wildcard `chatgpt-async-webps-prod-*.webpubsub.azure.com`, never `webpubsub.azure.com`). \
Platforms a clinic works on are never listed by their apex: Bing search (`www.bing.com`, \
`th.bing.com`), the Microsoft 365 home page (`m365.cloud.microsoft`), Google Workspace \
(`mail.google.com`, `docs.google.com`), Apple, Zoom, EHR vendors and CDNs. Where a platform's \
AI has hosts of its own, those are listed (Gemini in Workspace: \
`appsgenaiserver-pa.clients6.google.com`; Copilot in Bing: `sydney.bing.com`); where the AI \
answers on the product's own host, the service's notes say **partial**, and the part that \
shares the host is not matched: Copilot Chat at `m365.cloud.microsoft/chat`, Copilot in Bing \
at `www.bing.com/chat`, Bing Image Creator, Copilot inside Outlook and Teams, Gemini answers \
through `mail.google.com`, Notion AI (the whole of Notion shares its hosts, so Notion is not \
listed), Zoom AI Companion inside meetings, HuggingChat at `huggingface.co/chat` (listed as the \
Hugging Face model hub). Community lists sometimes file shared infrastructure under an AI \
vendor (`sentry.io`, `stripe.com`, `host.livekit.cloud`, Google's anti-abuse hosts); those are \
left out, with a comment in the catalog file. A test holds more than 300 hosts an ordinary \
clinic uses (EHR and practice management, e-prescribing, payers, telehealth, Microsoft 365, \
Google Workspace, Apple and Android, Windows Update, security tools, CDNs, banks, shipping, \
search engines) and checks that every one is allowed and names no service; another checks \
that every catalog host is judged as the service that lists it.\n\n\
**Review.** Every service carries the date its hosts and facts were last checked against its \
sources (`reviewed`); `aiwarden rules check --strict` fails on a service without sources or \
without a date. The catalog is reviewed each quarter and whenever a vendor changes its \
product or its BAA terms: each service's sources are re-read, community lists are compared \
with the catalog for names it lacks, and the date is moved. `aiwarden rules list` prints the \
counts per category and the newest and oldest review dates; an MSP's own additions belong in \
`site/deny.list` (`aiwarden rules import` reads community lists) rather than in the shipped \
files, which an upgrade replaces.\n";
