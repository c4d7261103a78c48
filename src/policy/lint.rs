//! Advice on rule files that load but probably do not do what the admin meant:
//! duplicates, entries a broader entry already covers, deny entries an allow entry always
//! beats, allow entries that override nothing, host names no real host has, groups that
//! change nothing. `aiwarden rules check` prints these with file and line; they never
//! stop a rule set from loading.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use rustc_hash::{FxHashMap, FxHashSet};

use super::pattern::{stored, Glob, Pattern, Slots, SuffixMap};
use super::{AiPolicy, RuleSet, SiteEntry, ALLOW, CATALOG, DENY};

/// One piece of advice about a rule file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lint {
    /// The file.
    pub path: PathBuf,
    /// 1-based line (0 for the whole file).
    pub line: usize,
    /// What is probably wrong, lowercase.
    pub message: String,
}

impl fmt::Display for Lint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: warning: {}",
            self.path.display(),
            self.line,
            self.message
        )
    }
}

/// The first entry of `kind` in `map` that covers every host `p` covers, if any (most
/// specific first). With `equal`, an entry of exactly `p`'s pattern counts (an entry of
/// another kind, or another list, written the same); without, only a broader one does:
/// `example.com` covers `*.example.com`, not the reverse.
fn covering(map: &SuffixMap, p: &Pattern, kind: usize, equal: bool) -> Option<u32> {
    let mut found = None;
    map.walk(&p.name, |hit| {
        if found.is_some() {
            return;
        }
        found = hit
            .patterns(kind)
            .into_iter()
            .find(|(_, q)| q.covers(p) && (equal || q != p))
            .map(|(i, _)| i);
    });
    found
}

fn covered_by(map: &SuffixMap, p: &Pattern, kind: usize) -> Option<u32> {
    covering(map, p, kind, false)
}

fn covered_or_equal(map: &SuffixMap, p: &Pattern, kind: usize) -> Option<u32> {
    covering(map, p, kind, true)
}

impl RuleSet {
    /// Every piece of advice about the loaded files, sorted by file and line.
    pub fn lint(&self) -> Vec<Lint> {
        let mut out = self.notes.clone();
        let at = |e: &SiteEntry, message: String| Lint {
            path: self.files[e.file as usize].0.clone(),
            line: e.line as usize,
            message,
        };
        let where_ = |e: &SiteEntry| format!("{}:{}", self.files[e.file as usize].1, e.line);

        // Host names no real host has, in every file.
        let site = self.allow.iter().chain(&self.deny).chain(
            self.groups
                .iter()
                .flat_map(|g| g.allow.iter().chain(&g.deny)),
        );
        for e in site {
            if let Some(a) = e.pattern.advice() {
                out.push(at(e, a));
            }
        }
        for (name, slots, globs) in self.map.iter() {
            for (i, p) in stored(name, slots, globs, CATALOG) {
                let c = &self.catalog[i as usize];
                if let Some(a) = p.advice() {
                    out.push(Lint {
                        path: c.service.file.clone(),
                        line: c.line as usize,
                        message: a,
                    });
                }
            }
        }

        // Entries a broader entry of the same list already covers, and deny entries an
        // allow entry of the same scope always beats.
        let scopes = std::iter::once((&self.map, &self.allow, &self.deny))
            .chain(self.groups.iter().map(|g| (&g.map, &g.allow, &g.deny)));
        for (map, allow, deny) in scopes {
            for (kind, list) in [(ALLOW, allow), (DENY, deny)] {
                for e in list {
                    if let Some(i) = covered_by(map, &e.pattern, kind) {
                        let by = &list[i as usize];
                        out.push(at(
                            e,
                            format!(
                                "{} is already covered by {} ({}); this line has no effect",
                                e.pattern.display(),
                                by.pattern.display(),
                                where_(by)
                            ),
                        ));
                    }
                }
            }
            for e in deny {
                if let Some(i) = covered_or_equal(map, &e.pattern, ALLOW) {
                    let by = &allow[i as usize];
                    out.push(at(
                        e,
                        format!(
                            "{} never applies: allow entry {} ({}) covers it and allow beats deny",
                            e.pattern.display(),
                            by.pattern.display(),
                            where_(by)
                        ),
                    ));
                }
            }
        }

        // Allow entries that override nothing: no catalog or deny pattern covers them or
        // lies under them.
        let blocking = |slots: &Slots, globs: &[Glob]| {
            [DENY, CATALOG]
                .iter()
                .any(|&k| slots.any(k) || globs.iter().any(|g| g.get(k).is_some()))
        };
        let mut used: FxHashSet<&str> = FxHashSet::default();
        let allow_names: FxHashSet<&str> = self
            .allow
            .iter()
            .chain(self.groups.iter().flat_map(|g| &g.allow))
            .map(|e| &*e.pattern.name)
            .collect();
        let maps = std::iter::once(&self.map).chain(self.groups.iter().map(|g| &g.map));
        for map in maps {
            for (name, slots, globs) in map.iter() {
                if !blocking(slots, globs) {
                    continue;
                }
                // Every allow name that is this blocking name or one of its parents.
                let mut rest = name;
                loop {
                    if let Some(n) = allow_names.get(rest) {
                        used.insert(n);
                    }
                    match rest.find('.') {
                        Some(i) => rest = &rest[i + 1..],
                        None => break,
                    }
                }
            }
        }
        let allows = self
            .allow
            .iter()
            .chain(self.groups.iter().flat_map(|g| &g.allow));
        for e in allows {
            if used.contains(&*e.pattern.name) {
                continue;
            }
            let mut covered = false;
            let mut check = |map: &SuffixMap| {
                map.walk(&e.pattern.name, |hit| {
                    covered |= blocking(hit.slots, hit.globs());
                });
            };
            check(&self.map);
            for g in &self.groups {
                check(&g.map);
            }
            if !covered {
                out.push(at(
                    e,
                    format!(
                        "{} matches nothing in the catalog or the deny lists: an allow entry only overrides a block (a typo?)",
                        e.pattern.display()
                    ),
                ));
            }
        }

        // Groups that change nothing, and members listed in two groups.
        if let Some(f) = self.groups_file {
            let path = &self.files[f as usize].0;
            let gl = |line: usize, message: String| Lint {
                path: path.clone(),
                line,
                message,
            };
            for (i, g) in self.group_defs.iter().enumerate() {
                let r = &self.groups[i];
                let t = g.tiers;
                if r.allow.is_empty()
                    && r.deny.is_empty()
                    && g.ai == AiPolicy::Default
                    && t.consumer.is_none()
                    && t.shared.is_none()
                    && t.enterprise.is_none()
                {
                    out.push(gl(
                        g.line,
                        format!(
                            "group {:?} changes nothing: no @{} entries, no ai or tier policy",
                            g.name, g.name
                        ),
                    ));
                }
            }
            // Members named by more than one group: one pass, each member's groups in
            // file order (a pairwise comparison of 20,000 groups took seconds).
            let mut owners: FxHashMap<String, Vec<usize>> = FxHashMap::default();
            let mut dups: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
            for (i, g) in self.group_defs.iter().enumerate() {
                let members = g
                    .cidrs
                    .iter()
                    .map(ToString::to_string)
                    .chain(g.macs.iter().map(ToString::to_string))
                    .chain(g.devices.iter().cloned());
                let mut mine: Vec<String> = members.collect();
                mine.dedup();
                for m in mine {
                    let earlier = owners.entry(m.clone()).or_default();
                    for &e in earlier.iter().filter(|&&e| e != i) {
                        dups.entry((i, e)).or_default().push(m.clone());
                    }
                    if earlier.last() != Some(&i) {
                        earlier.push(i);
                    }
                }
            }
            for ((i, e), members) in dups {
                let (g, earlier) = (&self.group_defs[i], &self.group_defs[e]);
                out.push(gl(
                    g.line,
                    format!(
                        "{} also in group {:?} (line {}), which comes first and wins",
                        members.join(", "),
                        earlier.name,
                        earlier.line
                    ),
                ));
            }
        }

        for s in &self.services {
            if s.sources.is_empty() {
                out.push(Lint {
                    path: s.file.clone(),
                    line: s.line as usize,
                    message: format!("service {:?} cites no sources", &*s.id),
                });
            }
            if s.reviewed.is_none() {
                out.push(Lint {
                    path: s.file.clone(),
                    line: s.line as usize,
                    message: format!(
                        "service {:?} has no review date (reviewed = \"YYYY-MM-DD\"): when were its hosts and facts last checked?",
                        &*s.id
                    ),
                });
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

impl RuleSet {
    /// True when a deny entry of the site (or of `group`) already blocks every host `p`
    /// covers: importing `p` again would change nothing.
    pub fn deny_covers(&self, p: &Pattern, group: Option<&str>) -> bool {
        match group {
            None => covered_or_equal(&self.map, p, DENY).is_some(),
            Some(g) => self
                .groups
                .iter()
                .find(|r| &*r.name == g)
                .is_some_and(|r| covered_or_equal(&r.map, p, DENY).is_some()),
        }
    }
}
