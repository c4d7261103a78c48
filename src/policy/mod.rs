//! The policy: the shipped catalog of AI services, the admin's allow and deny lists, and
//! the verdict for a host. Pure: rule text in, decisions out; [`RuleSet::load_dir`] is the
//! one function that reads files.
//!
//! Precedence: an admin allow entry beats an admin deny entry, which beats the catalog.
//! Within each, the most specific pattern wins.

pub mod docs;
pub mod groups;
pub mod import;
mod lint;
mod live;
pub mod pattern;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use groups::{AiPolicy, Client, Group, Mac, Membership};
pub use lint::Lint;
pub use live::{Live, Reload};
use pattern::{Pattern, SuffixMap};

/// The site files, in the order they are read (groups first: lists name them).
const SITE_FILES: [&str; 3] = ["groups.toml", "allow.list", "deny.list"];

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
    /// Index of that file in the rule set.
    #[serde(skip)]
    file_index: u32,
    /// 1-based line of its `id`.
    pub line: u32,
}

/// Where a deciding rule is written: `site/allow.list:9`, `catalog/openai.toml:chatgpt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleRef {
    /// A line of a site file (allow, deny or groups).
    Line {
        /// The file's short name (`site/allow.list`).
        file: Arc<str>,
        /// 1-based line.
        line: u32,
    },
    /// A catalog service.
    Service {
        /// The file's short name (`catalog/openai.toml`).
        file: Arc<str>,
        /// The service id.
        id: Arc<str>,
    },
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleRef::Line { file, line } => write!(f, "{file}:{line}"),
            RuleRef::Service { file, id } => write!(f, "{file}:{id}"),
        }
    }
}

impl Serialize for RuleRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
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
    /// The rule that decided.
    pub rule: Option<RuleRef>,
    /// The client's group, if it is in one.
    pub group: Option<Arc<str>>,
    /// Why, in a few words.
    pub reason: &'static str,
}

impl PartialEq for Service {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

/// One allow or deny line: 32 bytes plus the name, so 100,000 of them stay small.
#[derive(Debug, Clone)]
struct SiteEntry {
    pattern: Pattern,
    file: u32,
    line: u32,
}

/// One catalog host pattern.
#[derive(Debug, Clone)]
struct CatalogEntry {
    service: Arc<Service>,
    tier: Tier,
    tenant: Tenant,
    line: u32,
}

const ALLOW: usize = 0;
const DENY: usize = 1;
const CATALOG: usize = 2;

/// The allow and deny entries scoped to one client group (`pattern @group`).
#[derive(Debug, Default)]
struct GroupRules {
    name: Arc<str>,
    allow: Vec<SiteEntry>,
    deny: Vec<SiteEntry>,
    map: SuffixMap,
}

/// A validated, immutable rule set. Build a new one to change rules; swap it in whole
/// (see [`Live`]).
#[derive(Debug, Default)]
pub struct RuleSet {
    /// Every file read: full path and short name.
    files: Vec<(PathBuf, Arc<str>)>,
    services: Vec<Arc<Service>>,
    allow: Vec<SiteEntry>,
    deny: Vec<SiteEntry>,
    catalog: Vec<CatalogEntry>,
    map: SuffixMap,
    /// Client groups from `site/groups.toml`, and the file they came from.
    group_defs: Vec<Group>,
    groups_file: Option<u32>,
    /// Per group, same order as `group_defs`.
    groups: Vec<GroupRules>,
    /// Problems that do not stop loading (duplicates), reported by [`RuleSet::lint`].
    notes: Vec<Lint>,
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

/// The 1-based line of byte `offset` in `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map_or(0, |t| t.bytes().filter(|&b| b == b'\n').count())
        + 1
}

/// An [`Error::Rule`] for `path` at `line`.
pub(crate) fn rule_err(path: &Path, line: usize, message: impl Into<String>) -> Error {
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
    /// Reads `dir/catalog/*.toml` and the site files `dir/site/groups.toml`,
    /// `dir/site/allow.list` and `dir/site/deny.list` (each may be missing) and validates
    /// them. Every problem in every file is reported.
    pub fn load_dir(dir: &Path) -> Result<RuleSet> {
        RuleSet::from_sources(&RuleSet::read_sources(dir)?)
    }

    /// The (path, text) of every rule file [`RuleSet::load_dir`] reads, in its order.
    pub fn read_sources(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
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
        for name in SITE_FILES {
            let p = dir.join("site").join(name);
            if p.exists() {
                paths.push(p);
            }
        }
        let mut files = Vec::with_capacity(paths.len());
        for p in paths {
            let text = std::fs::read_to_string(&p).map_err(|source| Error::Io {
                path: p.clone(),
                source,
            })?;
            files.push((p, text));
        }
        Ok(files)
    }

    /// Builds a rule set from (path, text) pairs. A path ending in `groups.toml`,
    /// `allow.list` or `deny.list` is a site file; anything else is a catalog TOML file.
    /// Groups are read first, so list entries can name them in any file order.
    pub fn from_sources(files: &[(PathBuf, String)]) -> Result<RuleSet> {
        let mut rs = RuleSet::default();
        let mut errors = Vec::new();
        let name_of = |p: &Path| {
            p.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string()
        };
        let mut order: Vec<&(PathBuf, String)> = files.iter().collect();
        order.sort_by_key(|(p, _)| match name_of(p).as_str() {
            "groups.toml" => 0,
            "allow.list" | "deny.list" => 2,
            _ => 1,
        });
        for (path, text) in order {
            let file = rs.files.len() as u32;
            rs.files.push((path.clone(), Arc::from(short(path))));
            match name_of(path).as_str() {
                "groups.toml" => rs.add_groups(path, text, file, &mut errors),
                "allow.list" => rs.add_list(path, text, file, ALLOW, &mut errors),
                "deny.list" => rs.add_list(path, text, file, DENY, &mut errors),
                _ => rs.add_catalog(path, text, file, &mut errors),
            }
        }
        match errors.len() {
            0 => Ok(rs),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Rules(errors)),
        }
    }

    fn add_groups(&mut self, path: &Path, text: &str, file: u32, errors: &mut Vec<Error>) {
        if self.groups_file.is_some() {
            errors.push(rule_err(path, 0, "a second groups file; merge the two"));
            return;
        }
        self.groups_file = Some(file);
        self.group_defs = groups::parse(path, text, errors);
        self.groups = self
            .group_defs
            .iter()
            .map(|g| GroupRules {
                name: Arc::from(g.name.as_str()),
                ..GroupRules::default()
            })
            .collect();
    }

    fn add_catalog(&mut self, path: &Path, text: &str, file: u32, errors: &mut Vec<Error>) {
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
            self.services.push(service);
        }
    }

    fn add_list(
        &mut self,
        path: &Path,
        text: &str,
        file: u32,
        kind: usize,
        errors: &mut Vec<Error>,
    ) {
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
            let mut bad = false;
            for w in words {
                match w.strip_prefix('@') {
                    Some(g) if !g.is_empty() && group.is_none() => group = Some(g),
                    _ => {
                        bad = true;
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
            if bad {
                continue;
            }
            let entry = SiteEntry {
                pattern,
                file,
                line: line as u32,
            };
            let (map, list) = match group {
                None => (
                    &mut self.map,
                    if kind == ALLOW {
                        &mut self.allow
                    } else {
                        &mut self.deny
                    },
                ),
                Some(g) => {
                    let Some(gr) = self.groups.iter_mut().find(|r| &*r.name == g) else {
                        let known: Vec<&str> =
                            self.group_defs.iter().map(|d| d.name.as_str()).collect();
                        errors.push(rule_err(
                            path,
                            line,
                            if known.is_empty() {
                                format!("unknown group @{g}: no site/groups.toml defines groups")
                            } else {
                                format!("unknown group @{g} (groups: {})", known.join(", "))
                            },
                        ));
                        continue;
                    };
                    (
                        &mut gr.map,
                        if kind == ALLOW {
                            &mut gr.allow
                        } else {
                            &mut gr.deny
                        },
                    )
                }
            };
            let idx = list.len() as u32;
            if let Some(prev) = map.insert(&entry.pattern, kind, idx) {
                let first = &list[prev as usize];
                self.notes.push(Lint {
                    path: path.to_path_buf(),
                    line,
                    message: format!(
                        "duplicate of line {} ({}); this line has no effect",
                        first.line,
                        entry.pattern.display()
                    ),
                });
                continue;
            }
            list.push(entry);
        }
    }

    fn line_ref(&self, e: &SiteEntry) -> RuleRef {
        RuleRef::Line {
            file: self.files[e.file as usize].1.clone(),
            line: e.line,
        }
    }

    fn service_ref(&self, s: &Service) -> RuleRef {
        RuleRef::Service {
            file: self.files[s.file_index as usize].1.clone(),
            id: s.id.clone(),
        }
    }

    fn group_ref(&self, g: usize) -> RuleRef {
        RuleRef::Line {
            file: self.groups_file.map_or_else(
                || Arc::from("site/groups.toml"),
                |f| self.files[f as usize].1.clone(),
            ),
            line: self.group_defs[g].line as u32,
        }
    }

    /// The group `client` belongs to, and how it was placed there.
    pub fn group_of(&self, client: &Client<'_>) -> Option<(&Group, Membership)> {
        groups::classify(&self.group_defs, client).map(|(i, m)| (&self.group_defs[i], m))
    }

    /// The verdict for `host` (lowercase, no trailing dot, as [`crate::detect::Host`]
    /// gives it) asked by `client`. Does not allocate.
    pub fn judge(&self, host: &str, client: &Client<'_>, mode: Mode) -> Decision {
        let group = groups::classify(&self.group_defs, client).map(|(i, _)| i);
        self.judge_in(host, group, mode)
    }

    fn judge_in(&self, host: &str, group: Option<usize>, mode: Mode) -> Decision {
        let [allow, deny, catalog] = self.map.lookup(host);
        let cat = catalog.map(|(i, _)| &self.catalog[i as usize]);
        let group_name = group.map(|g| self.groups[g].name.clone());
        let decided = |verdict: Verdict, rule: RuleRef, reason: &'static str| {
            let verdict = match (verdict, mode) {
                (Verdict::Block, Mode::Monitor) => Verdict::Flag,
                (v, _) => v,
            };
            Decision {
                verdict,
                service: cat.map(|c| c.service.clone()),
                tier: cat.map(|c| c.tier),
                rule: Some(rule),
                group: group_name.clone(),
                reason,
            }
        };
        if let Some(g) = group {
            let rules = &self.groups[g];
            let [gallow, gdeny, _] = rules.map.lookup(host);
            if let Some((i, _)) = gallow {
                let e = &rules.allow[i as usize];
                return decided(Verdict::Allow, self.line_ref(e), "group allow entry");
            }
            if let Some((i, _)) = gdeny {
                let e = &rules.deny[i as usize];
                return decided(Verdict::Block, self.line_ref(e), "group deny entry");
            }
            if self.group_defs[g].ai == AiPolicy::None && (cat.is_some() || allow.is_some()) {
                return decided(
                    Verdict::Block,
                    self.group_ref(g),
                    "the client's group may use no AI service (ai = \"none\")",
                );
            }
        }
        if let Some((i, _)) = allow {
            return decided(
                Verdict::Allow,
                self.line_ref(&self.allow[i as usize]),
                "admin allow list",
            );
        }
        if let Some((i, _)) = deny {
            return decided(
                Verdict::Block,
                self.line_ref(&self.deny[i as usize]),
                "admin deny list",
            );
        }
        let Some(c) = cat else {
            return Decision {
                verdict: Verdict::Allow,
                service: None,
                tier: None,
                rule: None,
                group: group_name,
                reason: "no rule matches",
            };
        };
        let rule = self.service_ref(&c.service);
        if c.service.category == "bypass" {
            return decided(
                Verdict::Block,
                rule,
                "resolver or SNI bypass: hides the device's DNS or destination from the clinic",
            );
        }
        if let Some((g, v)) =
            group.and_then(|g| self.group_defs[g].tiers.get(c.tier).map(|v| (g, v)))
        {
            return decided(
                v,
                self.group_ref(g),
                "the client group's policy for this tier",
            );
        }
        match c.tier {
            Tier::Consumer => decided(Verdict::Block, rule, "consumer AI service: no BAA"),
            Tier::Shared => decided(
                Verdict::Block,
                rule,
                "host shared by consumer and enterprise tiers: DNS and SNI cannot tell them apart",
            ),
            Tier::Enterprise => match c.tenant {
                Tenant::InHost if self.groups.iter().any(|g| g.map.lookup(host)[ALLOW].is_some()) => {
                    decided(
                        Verdict::Flag,
                        rule,
                        "the clinic's own resource, but allowed only for other client groups",
                    )
                }
                Tenant::InHost => decided(
                    Verdict::Flag,
                    rule,
                    "another organisation's tenant: the clinic's own resources are listed in site/allow.list",
                ),
                Tenant::NotAttributable => decided(
                    Verdict::Allow,
                    rule,
                    "enterprise service; tenant not attributable (the host names only a region)",
                ),
                Tenant::Unknown => decided(
                    Verdict::Flag,
                    rule,
                    "enterprise AI service not on the admin allow list",
                ),
            },
        }
    }

    /// Every rule consulted for `host` asked by `client`, in order, and which one decided.
    /// Accepts what an admin types: any case, a trailing dot, Unicode names.
    pub fn explain(&self, host: &str, client: &Client<'_>, mode: Mode) -> Explanation {
        let trimmed = host.trim().trim_end_matches('.');
        let normalised = Pattern::parse(trimmed)
            .map(|p| p.name.to_string())
            .unwrap_or_else(|_| trimmed.to_ascii_lowercase());
        let membership = groups::classify(&self.group_defs, client);
        let group = membership.as_ref().map(|(i, _)| *i);
        let mut consulted = Vec::new();
        let kinds = ["allow", "deny", "catalog"];
        let mut walk = |map: &SuffixMap, scope: Option<usize>, applies_scope: bool| {
            map.walk(&normalised, |suffix, whole, slots| {
                for (k, kind) in kinds.iter().enumerate() {
                    for (idx, sub) in [(slots.apex(k), false), (slots.sub(k), true)] {
                        let Some(i) = idx else { continue };
                        let rule = match (k, scope) {
                            (ALLOW, None) => self.line_ref(&self.allow[i as usize]),
                            (DENY, None) => self.line_ref(&self.deny[i as usize]),
                            (ALLOW, Some(g)) => self.line_ref(&self.groups[g].allow[i as usize]),
                            (DENY, Some(g)) => self.line_ref(&self.groups[g].deny[i as usize]),
                            _ => self.service_ref(&self.catalog[i as usize].service),
                        };
                        let mut pattern = if sub {
                            format!("*.{suffix}")
                        } else {
                            suffix.to_string()
                        };
                        if let Some(g) = scope {
                            pattern = format!("{pattern} @{}", self.groups[g].name);
                        }
                        consulted.push(Step {
                            kind,
                            pattern,
                            rule: rule.to_string(),
                            applies: !(sub && whole) && applies_scope,
                        });
                    }
                }
            });
        };
        if let Some(g) = group {
            walk(&self.groups[g].map, Some(g), true);
        }
        walk(&self.map, None, true);
        for g in 0..self.groups.len() {
            if Some(g) != group {
                walk(&self.groups[g].map, Some(g), false);
            }
        }
        let d = self.judge_in(&normalised, group, mode);
        let unicode = normalised
            .split('.')
            .any(|l| l.starts_with("xn--"))
            .then(|| idna::domain_to_unicode(&normalised))
            .and_then(|(u, ok)| ok.is_ok().then_some(u))
            .filter(|u| *u != normalised);
        Explanation {
            host: normalised,
            unicode,
            client: client.ip,
            group: group.map(|g| self.group_defs[g].name.clone()),
            membership: membership.map(|(_, m)| m.to_string()),
            mode,
            service: d.service.as_ref().map(|s| s.id.to_string()),
            service_name: d.service.as_ref().map(|s| s.name.to_string()),
            category: d.service.as_ref().map(|s| s.category.clone()),
            tier: d.tier,
            verdict: d.verdict,
            rule: d.rule.as_ref().map(|r| r.to_string()),
            reason: d.reason,
            baa: d.service.as_ref().and_then(|s| s.baa),
            trains_on_data: d.service.as_ref().and_then(|s| s.trains_on_data),
            data_residency: d.service.as_ref().and_then(|s| s.data_residency.clone()),
            notes: d.service.as_ref().and_then(|s| s.notes.clone()),
            consulted,
        }
    }

    /// Every catalog service, in file order.
    pub fn services(&self) -> impl Iterator<Item = &Arc<Service>> {
        self.services.iter()
    }

    /// The client groups, in file order.
    pub fn groups(&self) -> &[Group] {
        &self.group_defs
    }

    /// True when some group names members by MAC address or device name, so a decision
    /// needs more than the client's address.
    pub fn needs_device_identity(&self) -> bool {
        self.group_defs
            .iter()
            .any(|g| !g.macs.is_empty() || !g.devices.is_empty())
    }

    /// Host patterns loaded (catalog and site lists, group-scoped entries included).
    pub fn pattern_count(&self) -> usize {
        self.catalog.len()
            + self.allow.len()
            + self.deny.len()
            + self
                .groups
                .iter()
                .map(|g| g.allow.len() + g.deny.len())
                .sum::<usize>()
    }
}

/// One rule looked at while deciding.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// `allow`, `deny` or `catalog`.
    pub kind: &'static str,
    /// The pattern that matched a suffix of the host, with `@group` when scoped.
    pub pattern: String,
    /// Where it is written.
    pub rule: String,
    /// False for a `*.` pattern on its own apex, or an entry scoped to another group.
    pub applies: bool,
}

/// Why a host gets its verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The normalised host (punycode for international names).
    pub host: String,
    /// The host in Unicode, when it is an international name: shows homoglyphs.
    pub unicode: Option<String>,
    /// The client asked about.
    pub client: Option<IpAddr>,
    /// The client's group.
    pub group: Option<String>,
    /// How the client was placed in its group.
    pub membership: Option<String>,
    /// The mode decided in.
    pub mode: Mode,
    /// Catalog service id.
    pub service: Option<String>,
    /// Catalog service name.
    pub service_name: Option<String>,
    /// Catalog category.
    pub category: Option<String>,
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
    /// Where the service keeps data.
    pub data_residency: Option<String>,
    /// The catalog's notes on the service.
    pub notes: Option<String>,
    /// Every rule whose pattern matched a suffix: the client's group first, then
    /// site-wide, then other groups' (which do not apply); most specific first in each.
    pub consulted: Vec<Step>,
}

fn enum_str<T: Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "host:      {}", self.host)?;
        if let Some(u) = &self.unicode {
            writeln!(
                f,
                "unicode:   {u} (an international name: compare it letter by letter)"
            )?;
        }
        if let Some(c) = self.client {
            writeln!(f, "client:    {c}")?;
        }
        match (&self.group, &self.membership) {
            (Some(g), Some(m)) => writeln!(f, "group:     {g} (by {m})")?,
            _ if self.client.is_some() => writeln!(f, "group:     none (site-wide rules only)")?,
            _ => {}
        }
        match (&self.service, &self.service_name, self.tier) {
            (Some(id), Some(name), Some(tier)) => writeln!(
                f,
                "service:   {name} ({id}), {} tier, category {}",
                tier.as_str(),
                self.category.as_deref().unwrap_or("-")
            )?,
            _ => writeln!(f, "service:   none (no catalog entry)")?,
        }
        if let Some(b) = self.baa {
            writeln!(f, "baa:       {}", enum_str(b))?;
        }
        if let Some(t) = self.trains_on_data {
            writeln!(f, "trains:    {} (on user data, by default)", enum_str(t))?;
        }
        if let Some(r) = &self.data_residency {
            writeln!(f, "residency: {r}")?;
        }
        writeln!(
            f,
            "verdict:   {} (mode {})",
            self.verdict.as_str(),
            enum_str(self.mode)
        )?;
        writeln!(f, "rule:      {}", self.rule.as_deref().unwrap_or("-"))?;
        writeln!(f, "why:       {}", self.reason)?;
        if self.tier == Some(Tier::Shared) {
            writeln!(
                f,
                "note:      this host serves consumer and enterprise accounts alike; DNS and SNI cannot tell which one is used"
            )?;
        }
        if let Some(n) = &self.notes {
            writeln!(f, "catalog:   {n}")?;
        }
        writeln!(
            f,
            "consulted (group first, then site-wide; allow > deny > catalog; most specific first):"
        )?;
        if self.consulted.is_empty() {
            writeln!(f, "  nothing matched")?;
        }
        for s in &self.consulted {
            writeln!(
                f,
                "  {:<8} {:<44} {}{}",
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
