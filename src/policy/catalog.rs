//! The shipped catalog's files: `catalog/*.toml`, one `[[service]]` table per AI service
//! with its healthcare attributes, its host patterns by tier, and for the services no name
//! reveals (encrypted DNS, TLS without a name) the addresses and traffic signals that do.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::pattern::Pattern;
use super::{
    line_of, rule_err, Baa, CatalogEntry, HostGroup, RuleSet, Service, Signal, Tenant, Tier,
    TrainsOnData, CATALOG,
};
use crate::error::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    service: Vec<ServiceToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceToml {
    id: toml::Spanned<String>,
    name: String,
    vendor: String,
    category: String,
    baa: Option<Baa>,
    trains_on_data: Option<TrainsOnData>,
    data_residency: Option<String>,
    notes: Option<String>,
    #[serde(default)]
    sources: Vec<String>,
    /// When someone last checked the service's hosts and facts against its sources.
    reviewed: Option<toml::Spanned<String>>,
    #[serde(default)]
    hosts: Vec<HostGroupToml>,
    /// Addresses and ranges whose every connection is this service's (public DoH and DoT
    /// resolvers' anycast addresses).
    #[serde(default)]
    addresses: Vec<toml::Spanned<String>>,
    /// Traffic patterns that are this service's without a name (see [`Signal`]).
    #[serde(default)]
    signals: Vec<toml::Spanned<Signal>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostGroupToml {
    tier: Tier,
    #[serde(default)]
    tenant: Tenant,
    patterns: Vec<toml::Spanned<String>>,
}

/// The catalog's categories: the id written in files and the heading reports and docs use.
pub const CATEGORIES: &[(&str, &str)] = &[
    ("chat", "Chat assistants"),
    ("search", "Search and research"),
    ("writing", "Writing and presentations"),
    ("translation", "Translation"),
    ("transcription", "Transcription and meeting notes"),
    ("scribe", "Medical scribes"),
    ("image", "Image generation"),
    ("video", "Video generation"),
    ("audio", "Voice, speech and music"),
    ("code", "Code assistants"),
    ("agents", "Agents, automation and app builders"),
    ("browser", "Browser assistants and AI browsers"),
    ("companion", "Companion apps"),
    ("health", "Health chatbots"),
    ("api", "Model hubs and APIs"),
    ("bypass", "Bypass (encrypted DNS, hidden names)"),
    ("unexplained", "Unexplained traffic"),
];

/// The heading for category `id`, or the id itself for one the catalog does not know.
pub fn category_label(id: &str) -> &str {
    CATEGORIES
        .iter()
        .find(|(c, _)| *c == id)
        .map_or(id, |(_, label)| label)
}

/// A review date as written in the catalog: `YYYY-MM-DD`, a real calendar day.
fn parse_reviewed(s: &str) -> Result<jiff::civil::Date, String> {
    let ok = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    ok.then(|| s.parse::<jiff::civil::Date>().ok())
        .flatten()
        .ok_or_else(|| format!("reviewed = {s:?}: expected a date such as \"2026-12-02\""))
}

impl RuleSet {
    pub(super) fn add_catalog(
        &mut self,
        path: &Path,
        text: &str,
        file: u32,
        errors: &mut Vec<Error>,
    ) {
        let parsed_file: CatalogFile = match toml::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                let line = e.span().map_or(0, |s| line_of(text, s.start));
                errors.push(rule_err(path, line, e.message().to_lowercase()));
                return;
            }
        };
        for svc in parsed_file.service {
            let id_line = line_of(text, svc.id.span().start);
            let id = svc.id.get_ref();
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                errors.push(rule_err(
                    path,
                    id_line,
                    format!("service id {id:?} must be [a-z0-9-]"),
                ));
                continue;
            }
            if let Some(prev) = self.services.iter().find(|s| &*s.id == id.as_str()) {
                errors.push(rule_err(
                    path,
                    id_line,
                    format!(
                        "duplicate service id {id:?} (first in {})",
                        prev.file.display()
                    ),
                ));
                continue;
            }
            if !CATEGORIES.iter().any(|(c, _)| *c == svc.category) {
                errors.push(rule_err(
                    path,
                    id_line,
                    format!(
                        "service {id:?}: unknown category {:?} (one of {})",
                        svc.category,
                        CATEGORIES
                            .iter()
                            .map(|(c, _)| *c)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
                continue;
            }
            if svc.hosts.is_empty() && svc.addresses.is_empty() && svc.signals.is_empty() {
                errors.push(rule_err(
                    path,
                    id_line,
                    format!(
                        "service {id:?} has no hosts, addresses or signals: it can match nothing"
                    ),
                ));
                continue;
            }
            let reviewed = match &svc.reviewed {
                None => None,
                Some(r) => match parse_reviewed(r.get_ref()) {
                    Ok(_) => Some(r.get_ref().clone()),
                    Err(m) => {
                        errors.push(rule_err(path, line_of(text, r.span().start), m));
                        continue;
                    }
                },
            };
            let mut addresses = Vec::new();
            for a in &svc.addresses {
                match parse_net(a.get_ref()) {
                    Ok(net) => addresses.push(net),
                    Err(m) => errors.push(rule_err(path, line_of(text, a.span().start), m)),
                }
            }
            let mut signals = Vec::new();
            for sig in &svc.signals {
                let line = line_of(text, sig.span().start);
                let sig = *sig.get_ref();
                if let Some((_, other)) = self.signals.iter().find(|(s, _)| *s == sig) {
                    errors.push(rule_err(
                        path,
                        line,
                        format!("signal {} is already {:?}'s", sig.as_str(), &*other.id),
                    ));
                    continue;
                }
                signals.push(sig);
            }
            let mut groups = Vec::new();
            let mut parsed = Vec::new();
            for g in &svc.hosts {
                let mut pats = Vec::new();
                for p in &g.patterns {
                    match Pattern::parse(p.get_ref()) {
                        Ok(pat) => {
                            pats.push(pat.display());
                            parsed.push((pat, g.tier, g.tenant, line_of(text, p.span().start)));
                        }
                        Err(m) => errors.push(rule_err(path, line_of(text, p.span().start), m)),
                    }
                }
                groups.push(HostGroup {
                    tier: g.tier,
                    tenant: g.tenant,
                    patterns: pats,
                });
            }
            let service = Arc::new(Service {
                id: Arc::from(id.as_str()),
                name: Arc::from(svc.name.as_str()),
                vendor: svc.vendor,
                category: svc.category,
                baa: svc.baa,
                trains_on_data: svc.trains_on_data,
                data_residency: svc.data_residency,
                notes: svc.notes,
                sources: svc.sources,
                reviewed,
                hosts: groups,
                addresses,
                signals,
                file: path.to_path_buf(),
                file_index: file,
                line: id_line as u32,
            });
            for (pat, tier, tenant, line) in parsed {
                let idx = self.catalog.len() as u32;
                if let Some(prev) = self.map.insert(&pat, CATALOG, idx) {
                    let other = &self.catalog[prev as usize];
                    errors.push(rule_err(
                        path,
                        line,
                        format!(
                            "pattern {} of {id:?} is already listed by {:?}",
                            pat.display(),
                            &*other.service.id
                        ),
                    ));
                    continue;
                }
                self.catalog.push(CatalogEntry {
                    service: service.clone(),
                    tier,
                    tenant,
                    line: line as u32,
                });
            }
            for net in &service.addresses {
                if let Some((_, other)) = self.addresses.iter().find(|(n, _)| n == net) {
                    errors.push(rule_err(
                        path,
                        id_line,
                        format!("address {net} of {id:?} is already {:?}'s", &*other.id),
                    ));
                    continue;
                }
                self.addresses.push((*net, service.clone()));
            }
            for sig in &service.signals {
                self.signals.push((*sig, service.clone()));
            }
            self.services.push(service);
        }
    }
}

/// `192.0.2.1`, `2001:db8::1` (one address) or `192.0.2.0/24`, `2001:db8::/32`.
fn parse_net(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("invalid address or range {s:?} (expected e.g. 8.8.8.8, 2001:4860:4860::8888 or 192.0.2.0/24)"))
}

/// Services in one category, for `rules list` and docs/catalog.md.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CategoryCount {
    /// The id written in catalog files (`chat`).
    pub id: &'static str,
    /// The heading (`Chat assistants`).
    pub name: &'static str,
    /// Services in it.
    pub services: usize,
}

/// The catalog in figures: what `aiwarden rules list --json` puts beside the services.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Services in the catalog.
    pub services: usize,
    /// Host patterns the catalog lists.
    pub patterns: usize,
    /// Services per category, in the catalog's category order (empty ones included).
    pub categories: Vec<CategoryCount>,
    /// The most recent review date of any service.
    pub last_reviewed: Option<String>,
    /// The oldest review date: what is most due for another look.
    pub oldest_reviewed: Option<String>,
    /// Services with no review date.
    pub unreviewed: usize,
}

impl RuleSet {
    /// The catalog's counts per category and its review dates.
    pub fn catalog_summary(&self) -> Summary {
        let categories = CATEGORIES
            .iter()
            .map(|&(id, name)| CategoryCount {
                id,
                name,
                services: self.services.iter().filter(|s| s.category == id).count(),
            })
            .collect();
        let dates = || self.services.iter().filter_map(|s| s.reviewed.clone());
        Summary {
            services: self.services.len(),
            patterns: self.catalog.len(),
            categories,
            last_reviewed: dates().max(),
            oldest_reviewed: dates().min(),
            unreviewed: self
                .services
                .iter()
                .filter(|s| s.reviewed.is_none())
                .count(),
        }
    }
}
