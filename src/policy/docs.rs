//! `docs/catalog.md`: the catalog as compliance staff and MSPs read it, rendered from the
//! rule files by `aiwarden rules docs`, so the document never drifts from what is enforced.

use std::fmt::Write;

use serde::Serialize;

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
    let services: Vec<&Service> = rules.services().map(|s| &**s).collect();
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
         the name and every subdomain; `*.example.com` covers subdomains only.\n\n\
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
         only on enterprise plans). **Trains on data**: the consumer tier's default \
         (`opt out`: yes unless the user turns it off).\n",
        ai.len(),
        bypass.len(),
        patterns
    );
    let _ = writeln!(
        out,
        "| Service | Vendor | Category | Tiers | BAA | Trains on data | Data residency |\n\
         |---|---|---|---|---|---|---|"
    );
    for s in &ai {
        let _ = writeln!(
            out,
            "| [{}](#{}) | {} | {} | {} | {} | {} | {} |",
            cell(&s.name),
            s.id,
            cell(&s.vendor),
            s.category,
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
             Defined in `rules/catalog/{}`.\n",
            s.name,
            s.vendor,
            s.category,
            word(s.baa),
            word(s.trains_on_data),
            s.data_residency.as_deref().unwrap_or("-"),
            s.file
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
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
