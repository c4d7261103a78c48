//! The policy: the shipped catalog of AI services, the admin's allow and deny lists, and
//! the verdict for a host. Pure: rule text in, decisions out; [`RuleSet::load_dir`] is the
//! one function that reads files.
//!
//! Precedence: an admin allow entry beats an admin deny entry, which beats the catalog.
//! Within each, the most specific pattern wins.
//!
//! | file | concern |
//! |---|---|
//! | `mod.rs` | the types, the rule set, loading |
//! | `catalog.rs` | the shipped catalog's TOML (services, host patterns, addresses, signals) |
//! | `lists.rs` | the admin's `groups.toml`, `allow.list`, `deny.list` |
//! | `judge.rs` | verdicts for a host, an address, a signal |
//! | `explain.rs` | `rules explain`: every rule consulted |
//! | `groups.rs`, `pattern.rs`, `lint.rs`, `live.rs`, `docs.rs`, `import.rs` | client groups, host patterns, advice, atomic reload, docs/catalog.md, list import |
//! | `unblock.rs` | time-limited exceptions (`aiwarden unblock`): the table enforcement asks before a block |

pub mod catalog;
pub mod docs;
mod explain;
pub mod groups;
pub mod import;
mod judge;
mod lint;
mod lists;
mod live;
pub mod pattern;
pub mod unblock;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::error::{Error, Result};
pub use explain::{Explanation, Step};
pub use groups::{AiPolicy, Client, Group, Mac, Membership};
pub use lint::Lint;
pub use live::{Live, Reload};
use pattern::{Pattern, SuffixMap};

/// Where the rules are read from: the shipped catalog (replaced by upgrades) and the
/// admin's site files (kept), which may live apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDirs {
    /// The directory of `*.toml` catalog files.
    pub catalog: PathBuf,
    /// The directory of `groups.toml`, `allow.list` and `deny.list`.
    pub site: PathBuf,
}

impl RuleDirs {
    /// `dir/catalog` and `dir/site`.
    pub fn under(dir: &Path) -> RuleDirs {
        RuleDirs {
            catalog: dir.join("catalog"),
            site: dir.join("site"),
        }
    }

    /// The installed rules: the shipped catalog and the admin's site directory, as
    /// compiled in ([`crate::paths`]): apart in a package, side by side in a checkout.
    pub fn installed() -> RuleDirs {
        RuleDirs {
            catalog: crate::paths::rules().join("catalog"),
            site: crate::paths::site(),
        }
    }

    /// `dir/catalog`, and `site` when given; else the installed site directory when `dir`
    /// is the installed rules directory (a package keeps the two apart), else `dir/site`.
    pub fn with_site(dir: &Path, site: Option<&Path>) -> RuleDirs {
        let mut d = if dir == crate::paths::rules() {
            RuleDirs::installed()
        } else {
            RuleDirs::under(dir)
        };
        if let Some(s) = site {
            d.site = s.to_path_buf();
        }
        d
    }
}

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

impl Mode {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Monitor => "monitor",
            Mode::Enforce => "enforce",
        }
    }
}

/// Parses the lowercase names `as_str` gives (for values read back from the store).
macro_rules! from_str_by_name {
    ($t:ty, $($v:expr),+) => {
        impl std::str::FromStr for $t {
            type Err = String;

            fn from_str(s: &str) -> std::result::Result<$t, String> {
                [$($v),+]
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| format!("unknown {} {s:?}", stringify!($t).to_lowercase()))
            }
        }
    };
}

from_str_by_name!(Mode, Mode::Monitor, Mode::Enforce);
from_str_by_name!(Tier, Tier::Consumer, Tier::Enterprise, Tier::Shared);
from_str_by_name!(Verdict, Verdict::Allow, Verdict::Flag, Verdict::Block);

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

/// Traffic that belongs to a catalog service though it names no host: what a service's
/// `signals = [...]` claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// TCP or UDP to port 853: DNS over TLS or over QUIC to a resolver other than the
    /// clinic's, whatever the address.
    #[serde(rename = "port_853")]
    Port853,
    /// A TLS or QUIC ClientHello without a name to an internet address no DNS answer gave
    /// the device: an IP-literal URL, or a resolver the clinic cannot see.
    NoSni,
    /// The service's host names are ECH public names: an outer SNI that hides the real
    /// destination.
    EchPublicName,
}

impl Signal {
    /// The name written in catalog files.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Port853 => "port_853",
            Signal::NoSni => "no_sni",
            Signal::EchPublicName => "ech_public_name",
        }
    }

    /// Why a decision by this signal was made, for explanations.
    fn reason(self) -> &'static str {
        match self {
            Signal::Port853 => "encrypted DNS (port 853) to a resolver other than the clinic's",
            Signal::NoSni => "TLS without a name to an address no DNS answer explains",
            Signal::EchPublicName => "an ECH public name hides the real destination",
        }
    }
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
    /// When the hosts and facts were last checked against the sources: `YYYY-MM-DD`, a
    /// valid date (so it sorts as text).
    pub reviewed: Option<String>,
    /// Host groups by tier.
    pub hosts: Vec<HostGroup>,
    /// Addresses and ranges whose traffic is this service's.
    pub addresses: Vec<IpNet>,
    /// Nameless traffic that is this service's.
    pub signals: Vec<Signal>,
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
    group_defs: groups::Groups,
    groups_file: Option<u32>,
    /// Per group, same order as `group_defs`.
    groups: Vec<GroupRules>,
    /// Problems that do not stop loading (duplicates), reported by [`RuleSet::lint`].
    notes: Vec<Lint>,
    /// Catalog addresses and ranges, with their service.
    addresses: Vec<(IpNet, Arc<Service>)>,
    /// Catalog signals, with their service (each signal belongs to one service).
    signals: Vec<(Signal, Arc<Service>)>,
    /// SHA-256 of every file's short name and text, hex: the rules' version.
    digest: String,
}

/// The 1-based line of byte `offset` in `text`.
/// Where each line of a text starts, for finding many lines by offset in one file (a
/// groups file of 20,000 groups asks 60,000 times).
pub(crate) struct Lines(Vec<usize>);

impl Lines {
    pub(crate) fn new(text: &str) -> Lines {
        Lines(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        )
    }

    /// The 1-based line of byte `offset`, as [`line_of`] counts.
    pub(crate) fn at(&self, offset: usize) -> usize {
        self.0.partition_point(|&nl| nl < offset) + 1
    }
}

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
        RuleSet::load(&RuleDirs::under(dir))
    }

    /// Reads the catalog and the site files from where `dirs` says.
    pub fn load(dirs: &RuleDirs) -> Result<RuleSet> {
        RuleSet::from_sources(&RuleSet::read_sources(dirs)?)
    }

    /// The (path, text) of every rule file [`RuleSet::load`] reads, in its order.
    pub fn read_sources(dirs: &RuleDirs) -> Result<Vec<(PathBuf, String)>> {
        let catalog = &dirs.catalog;
        let entries = std::fs::read_dir(catalog).map_err(|source| Error::Io {
            path: catalog.clone(),
            source,
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        for name in SITE_FILES {
            let p = dirs.site.join(name);
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
        let mut digest = sha2::Sha256::new();
        for (path, text) in &order {
            for part in [short(path).as_bytes(), text.as_bytes()] {
                digest.update((part.len() as u64).to_be_bytes());
                digest.update(part);
            }
        }
        rs.digest = digest
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
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

    /// The rules' version: SHA-256 of every file's short name and text, hex.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// How many entries the site allow and deny lists hold.
    pub fn site_entries(&self) -> (usize, usize) {
        (self.allow.len(), self.deny.len())
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

#[cfg(test)]
mod tests;
