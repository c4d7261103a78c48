//! The policy: the shipped catalog of AI services, the admin's allow and deny lists, and
//! the verdict for a host. Pure: rule text in, decisions out; [`RuleSet::load_dir`] is the
//! one function that reads files.
//!
//! Precedence: an admin allow entry beats an admin deny entry, which beats the catalog.
//! Within each, the most specific pattern wins.

pub mod import;
pub mod pattern;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use pattern::{Pattern, SuffixMap};

/// Monitor flags what enforce would block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Flag only: nothing is blocked.
    Monitor,
    /// Block what the rules say to block.
    Enforce,
}

/// Which customers a host serves, as far as a name can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Consumer product: no BAA.
    Consumer,
    /// Enterprise product that can be covered by a BAA.
    Enterprise,
    /// Used by consumer and enterprise tiers alike: DNS and SNI cannot tell them apart.
    Shared,
}

impl Tier {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Consumer => "consumer",
            Tier::Enterprise => "enterprise",
            Tier::Shared => "shared",
        }
    }
}

/// What to do with a connection or query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Let it through, record nothing.
    Allow,
    /// Let it through and record an incident.
    Flag,
    /// Stop it and record an incident.
    Block,
}

impl Verdict {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Flag => "flag",
            Verdict::Block => "block",
        }
    }
}

/// Business Associate Agreement availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Baa {
    /// The vendor signs none.
    None,
    /// Only for enterprise plans.
    EnterpriseOnly,
    /// Available.
    Available,
    /// Not known.
    Unknown,
}

/// Whether the consumer tier trains on user data by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainsOnData {
    /// Yes.
    Yes,
    /// No.
    No,
    /// Yes unless the user opts out.
    OptOut,
    /// Not known.
    Unknown,
}

/// Hosts of one tier of a service.
#[derive(Debug, Clone, Serialize)]
pub struct HostGroup {
    /// The tier these hosts serve.
    pub tier: Tier,
    /// What the host name says about the customer.
    pub tenant: Tenant,
    /// Patterns as written.
    pub patterns: Vec<String>,
}

/// What a host name says about which customer (tenant) uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tenant {
    /// Nothing (one host serves every customer).
    #[default]
    Unknown,
    /// The host carries the customer's own resource name (`<resource>.openai.azure.com`):
    /// the clinic's resources are allowed by name, any other is another organisation's.
    InHost,
    /// Region-only hosts (Bedrock runtime): the account cannot be told, so enterprise use
    /// is allowed and marked as not attributable.
    NotAttributable,
}

/// One AI service of the catalog.
#[derive(Debug, Clone, Serialize)]
pub struct Service {
    /// Unique id, e.g. `chatgpt`.
    pub id: Arc<str>,
    /// Display name.
    pub name: Arc<str>,
    /// Vendor.
    pub vendor: String,
    /// Category (chat, api, scribe...).
    pub category: String,
    /// BAA availability.
    pub baa: Option<Baa>,
    /// Training on data by default.
    pub trains_on_data: Option<TrainsOnData>,
    /// Where data is kept.
    pub data_residency: Option<String>,
    /// Free text.
    pub notes: Option<String>,
    /// Where the facts come from.
    pub sources: Vec<String>,
    /// Host groups by tier.
    pub hosts: Vec<HostGroup>,
    /// The file that defines it, for explanations.
    pub file: PathBuf,
}

/// The outcome for a host.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// What to do.
    pub verdict: Verdict,
    /// The catalog service the host belongs to, if any.
    pub service: Option<Arc<Service>>,
    /// The tier of the matching catalog hosts.
    pub tier: Option<Tier>,
    /// The rule that decided: `site/allow.list:3`, `catalog/openai.toml:chatgpt`.
    pub rule: Option<Arc<str>>,
    /// Why, in a few words.
    pub reason: &'static str,
}

impl PartialEq for Service {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

/// One allow or deny line.
#[derive(Debug, Clone)]
struct SiteEntry {
    pattern: Pattern,
    group: Option<String>,
    rule: Arc<str>,
}

/// One catalog host pattern.
#[derive(Debug, Clone)]
struct CatalogEntry {
    service: Arc<Service>,
    tier: Tier,
    tenant: Tenant,
    rule: Arc<str>,
}

const ALLOW: usize = 0;
const DENY: usize = 1;
const CATALOG: usize = 2;

/// A validated, immutable rule set. Build a new one to change rules; swap it in whole.
#[derive(Debug, Default)]
pub struct RuleSet {
    services: Vec<Arc<Service>>,
    allow: Vec<SiteEntry>,
    deny: Vec<SiteEntry>,
    catalog: Vec<CatalogEntry>,
    /// Entries scoped to a client group (`@group`): kept for explanations; groups are
    /// not configured yet, so they never apply.
    scoped: Vec<(usize, SiteEntry)>,
    map: SuffixMap,
}

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
    hosts: Vec<HostGroupToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostGroupToml {
    tier: Tier,
    #[serde(default)]
    tenant: Tenant,
    patterns: Vec<toml::Spanned<String>>,
}

const CATEGORIES: &[&str] = &[
    "chat",
    "search",
    "api",
    "transcription",
    "scribe",
    "writing",
    "translation",
    "image",
    "voice",
    "code",
    "companion",
    "bypass",
];

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map_or(0, |t| t.bytes().filter(|&b| b == b'\n').count())
        + 1
}

fn rule_err(path: &Path, line: usize, message: impl Into<String>) -> Error {
    Error::Rule {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    }
}

/// A short name for a rule file: its last two path components (`site/allow.list`).
fn short(path: &Path) -> String {
    let mut parts: Vec<_> = path.iter().rev().take(2).collect();
    parts.reverse();
    parts
        .iter()
        .map(|p| p.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

impl RuleSet {
    /// Reads `dir/catalog/*.toml`, `dir/site/allow.list` and `dir/site/deny.list` (the site
    /// files may be missing) and validates them. Every problem in every file is reported.
    pub fn load_dir(dir: &Path) -> Result<RuleSet> {
        let mut files = Vec::new();
        let catalog = dir.join("catalog");
        let entries = std::fs::read_dir(&catalog).map_err(|source| Error::Io {
            path: catalog.clone(),
            source,
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        for name in ["allow.list", "deny.list"] {
            let p = dir.join("site").join(name);
            if p.exists() {
                paths.push(p);
            }
        }
        for p in paths {
            let text = std::fs::read_to_string(&p).map_err(|source| Error::Io {
                path: p.clone(),
                source,
            })?;
            files.push((p, text));
        }
        RuleSet::from_sources(&files)
    }

    /// Builds a rule set from (path, text) pairs. A path ending in `allow.list` or
    /// `deny.list` is a site list; anything else is a catalog TOML file.
    pub fn from_sources(files: &[(PathBuf, String)]) -> Result<RuleSet> {
        let mut rs = RuleSet::default();
        let mut errors = Vec::new();
        for (path, text) in files {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            match name {
                "allow.list" => rs.add_list(path, text, ALLOW, &mut errors),
                "deny.list" => rs.add_list(path, text, DENY, &mut errors),
                _ => rs.add_catalog(path, text, &mut errors),
            }
        }
        match errors.len() {
            0 => Ok(rs),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Rules(errors)),
        }
    }

    fn add_catalog(&mut self, path: &Path, text: &str, errors: &mut Vec<Error>) {
        let file: CatalogFile = match toml::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                let line = e.span().map_or(0, |s| line_of(text, s.start));
                errors.push(rule_err(path, line, e.message().to_lowercase()));
                return;
            }
        };
        for svc in file.service {
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
            if !CATEGORIES.contains(&svc.category.as_str()) {
                errors.push(rule_err(
                    path,
                    id_line,
                    format!(
                        "service {id:?}: unknown category {:?} (one of {})",
                        svc.category,
                        CATEGORIES.join(", ")
                    ),
                ));
                continue;
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
                hosts: groups,
                file: path.to_path_buf(),
            });
            let rule: Arc<str> = Arc::from(format!("{}:{}", short(path), id));
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
                    rule: rule.clone(),
                });
            }
            self.services.push(service);
        }
    }

    fn add_list(&mut self, path: &Path, text: &str, kind: usize, errors: &mut Vec<Error>) {
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let mut words = content.split_whitespace();
            let Some(pat_text) = words.next() else {
                continue;
            };
            let mut group = None;
            for w in words {
                match w.strip_prefix('@') {
                    Some(g) if !g.is_empty() && group.is_none() => group = Some(g.to_string()),
                    _ => {
                        errors.push(rule_err(
                            path,
                            line,
                            format!(
                                "unexpected {w:?}: a line is a host pattern and an optional @group"
                            ),
                        ));
                    }
                }
            }
            let pattern = match Pattern::parse(pat_text) {
                Ok(p) => p,
                Err(m) => {
                    errors.push(rule_err(path, line, m));
                    continue;
                }
            };
            let entry = SiteEntry {
                pattern,
                group,
                rule: Arc::from(format!("{}:{line}", short(path))),
            };
            if entry.group.is_some() {
                self.scoped.push((kind, entry));
                continue;
            }
            let list = if kind == ALLOW {
                &mut self.allow
            } else {
                &mut self.deny
            };
            let idx = list.len() as u32;
            if let Some(prev) = self.map.insert(&entry.pattern, kind, idx) {
                errors.push(rule_err(
                    path,
                    line,
                    format!(
                        "duplicate pattern {} (first at {})",
                        entry.pattern.display(),
                        list[prev as usize].rule
                    ),
                ));
                continue;
            }
            list.push(entry);
        }
    }

    /// The verdict for `host` (lowercase, no trailing dot, as [`crate::detect::Host`]
    /// gives it). Does not allocate.
    pub fn judge(&self, host: &str, _client: Option<IpAddr>, mode: Mode) -> Decision {
        let [allow, deny, catalog] = self.map.lookup(host);
        let cat = catalog.map(|(i, _)| &self.catalog[i as usize]);
        let service = cat.map(|c| c.service.clone());
        let tier = cat.map(|c| c.tier);
        let (verdict, rule, reason) = if let Some((i, _)) = allow {
            (
                Verdict::Allow,
                self.allow[i as usize].rule.clone(),
                "admin allow list",
            )
        } else if let Some((i, _)) = deny {
            (
                Verdict::Block,
                self.deny[i as usize].rule.clone(),
                "admin deny list",
            )
        } else if let Some(c) = cat {
            match c.tier {
                _ if c.service.category == "bypass" => (
                    Verdict::Block,
                    c.rule.clone(),
                    "resolver or SNI bypass: hides the device's DNS or destination from the clinic",
                ),
                Tier::Consumer => (Verdict::Block, c.rule.clone(), "consumer AI service: no BAA"),
                Tier::Shared => (
                    Verdict::Block,
                    c.rule.clone(),
                    "host shared by consumer and enterprise tiers: DNS and SNI cannot tell them apart",
                ),
                Tier::Enterprise => match c.tenant {
                    Tenant::InHost => (
                        Verdict::Flag,
                        c.rule.clone(),
                        "another organisation's tenant: the clinic's own resources are listed in site/allow.list",
                    ),
                    Tenant::NotAttributable => (
                        Verdict::Allow,
                        c.rule.clone(),
                        "enterprise service; tenant not attributable (the host names only a region)",
                    ),
                    Tenant::Unknown => (
                        Verdict::Flag,
                        c.rule.clone(),
                        "enterprise AI service not on the admin allow list",
                    ),
                },
            }
        } else {
            return Decision {
                verdict: Verdict::Allow,
                service: None,
                tier: None,
                rule: None,
                reason: "no rule matches",
            };
        };
        let verdict = match (verdict, mode) {
            (Verdict::Block, Mode::Monitor) => Verdict::Flag,
            (v, _) => v,
        };
        Decision {
            verdict,
            service,
            tier,
            rule: Some(rule),
            reason,
        }
    }

    /// Every rule consulted for `host`, in order, and which one decided.
    pub fn explain(&self, host: &str, client: Option<IpAddr>, mode: Mode) -> Explanation {
        let normalised = host.trim().trim_end_matches('.').to_ascii_lowercase();
        let mut consulted = Vec::new();
        let kinds = ["allow", "deny", "catalog"];
        self.map.walk(&normalised, |suffix, whole, slots| {
            for (k, kind) in kinds.iter().enumerate() {
                for (idx, sub) in [(slots.apex[k], false), (slots.sub[k], true)] {
                    let Some(i) = idx else { continue };
                    let rule = match k {
                        ALLOW => self.allow[i as usize].rule.to_string(),
                        DENY => self.deny[i as usize].rule.to_string(),
                        _ => self.catalog[i as usize].rule.to_string(),
                    };
                    let pattern = if sub {
                        format!("*.{suffix}")
                    } else {
                        suffix.to_string()
                    };
                    consulted.push(Step {
                        kind,
                        pattern,
                        rule,
                        applies: !(sub && whole),
                    });
                }
            }
        });
        for (k, e) in &self.scoped {
            let p = &e.pattern;
            if normalised == *p.name || normalised.ends_with(&format!(".{}", p.name)) {
                consulted.push(Step {
                    kind: kinds[*k],
                    pattern: format!("{} @{}", p.display(), e.group.as_deref().unwrap_or("")),
                    rule: e.rule.to_string(),
                    applies: false,
                });
            }
        }
        let d = self.judge(&normalised, client, mode);
        Explanation {
            host: normalised,
            client,
            mode,
            service: d.service.as_ref().map(|s| s.id.to_string()),
            service_name: d.service.as_ref().map(|s| s.name.to_string()),
            tier: d.tier,
            verdict: d.verdict,
            rule: d.rule.as_ref().map(|r| r.to_string()),
            reason: d.reason,
            baa: d.service.as_ref().and_then(|s| s.baa),
            trains_on_data: d.service.as_ref().and_then(|s| s.trains_on_data),
            consulted,
        }
    }

    /// Every catalog service, in file order.
    pub fn services(&self) -> impl Iterator<Item = &Arc<Service>> {
        self.services.iter()
    }

    /// Host patterns loaded (catalog and site lists).
    pub fn pattern_count(&self) -> usize {
        self.catalog.len() + self.allow.len() + self.deny.len() + self.scoped.len()
    }
}

/// One rule looked at while deciding.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// `allow`, `deny` or `catalog`.
    pub kind: &'static str,
    /// The pattern that matched a suffix of the host.
    pub pattern: String,
    /// Where it is written.
    pub rule: String,
    /// False for a `*.` pattern on its own apex, or a group-scoped entry.
    pub applies: bool,
}

/// Why a host gets its verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The normalised host.
    pub host: String,
    /// The client asked about.
    pub client: Option<IpAddr>,
    /// The mode decided in.
    pub mode: Mode,
    /// Catalog service id.
    pub service: Option<String>,
    /// Catalog service name.
    pub service_name: Option<String>,
    /// Catalog tier.
    pub tier: Option<Tier>,
    /// The verdict.
    pub verdict: Verdict,
    /// The deciding rule.
    pub rule: Option<String>,
    /// Why.
    pub reason: &'static str,
    /// BAA availability of the service.
    pub baa: Option<Baa>,
    /// Training default of the service.
    pub trains_on_data: Option<TrainsOnData>,
    /// Every rule whose pattern matched a suffix, most specific first.
    pub consulted: Vec<Step>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "host:    {}", self.host)?;
        if let Some(c) = self.client {
            writeln!(f, "client:  {c}")?;
        }
        match (&self.service, &self.service_name, self.tier) {
            (Some(id), Some(name), Some(tier)) => {
                writeln!(f, "service: {name} ({id}), tier {}", tier.as_str())?
            }
            _ => writeln!(f, "service: none (no catalog entry)")?,
        }
        if let Some(b) = self.baa {
            writeln!(
                f,
                "baa:     {}",
                serde_json::to_value(b)
                    .map_err(|_| fmt::Error)?
                    .as_str()
                    .unwrap_or("?")
            )?;
        }
        writeln!(
            f,
            "verdict: {} (mode {})",
            self.verdict.as_str(),
            if self.mode == Mode::Monitor {
                "monitor"
            } else {
                "enforce"
            }
        )?;
        writeln!(f, "rule:    {}", self.rule.as_deref().unwrap_or("-"))?;
        writeln!(f, "why:     {}", self.reason)?;
        if self.tier == Some(Tier::Shared) {
            writeln!(
                f,
                "note:    this host serves consumer and enterprise accounts alike; DNS and SNI cannot tell which one is used"
            )?;
        }
        writeln!(
            f,
            "consulted (most specific first; allow > deny > catalog):"
        )?;
        if self.consulted.is_empty() {
            writeln!(f, "  nothing matched")?;
        }
        for s in &self.consulted {
            writeln!(
                f,
                "  {:<8} {:<40} {}{}",
                s.kind,
                s.pattern,
                s.rule,
                if s.applies { "" } else { "  (does not apply)" }
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
