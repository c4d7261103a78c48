//! The admin's site files: `site/groups.toml` (client groups) and `site/allow.list`,
//! `site/deny.list` (one host pattern per line, an optional `@group`).

use std::path::Path;
use std::sync::Arc;

use super::lint::Lint;
use super::pattern::Pattern;
use super::{groups, rule_err, GroupRules, RuleSet, SiteEntry, ALLOW};
use crate::error::Error;

impl RuleSet {
    pub(super) fn add_groups(
        &mut self,
        path: &Path,
        text: &str,
        file: u32,
        errors: &mut Vec<Error>,
    ) {
        if self.groups_file.is_some() {
            errors.push(rule_err(path, 0, "a second groups file; merge the two"));
            return;
        }
        self.groups_file = Some(file);
        self.group_defs = groups::Groups::new(groups::parse(path, text, errors));
        self.groups = self
            .group_defs
            .iter()
            .map(|g| GroupRules {
                name: Arc::from(g.name.as_str()),
                ..GroupRules::default()
            })
            .collect();
    }

    pub(super) fn add_list(
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
}
