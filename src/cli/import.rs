//! `aiwarden rules import`: appends third-party block lists to the admin's deny list.
//! The shell around [`crate::policy::import`]: reads the lists and `site/deny.list`,
//! checks that the whole rule set still loads with the new lines, and only then replaces
//! the file (write a temporary file, then rename), so a failed import changes nothing.

use std::io::Write;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::policy::import::{import_list, ListFormat};
use crate::policy::{RuleDirs, RuleSet};

/// What to import and where.
#[derive(Debug, Clone)]
pub(super) struct Options {
    /// The rules (the site directory's `deny.list` receives the entries).
    pub rules: RuleDirs,
    /// The lists' format, or auto-detect.
    pub format: ListFormat,
    /// Scope every entry to this client group.
    pub group: Option<String>,
    /// Print the lines that would be appended; write nothing.
    pub dry_run: bool,
    /// Print every skipped line, not just the first ten.
    pub show_skipped: bool,
    /// The date written in the header comment (`2026-11-25`).
    pub date: String,
}

/// Counts for the summary line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Summary {
    /// Lines appended.
    pub added: usize,
    /// Entries the deny list already covered.
    pub already_listed: usize,
    /// Lines skipped with a reason.
    pub skipped: usize,
    /// Duplicates and entries shadowed by broader ones within the lists.
    pub redundant: usize,
}

/// Imports `lists` into `opts.rules/site/deny.list`. Skipped lines are reported on
/// `report` as `list:line: skipped (reason): text`.
pub(super) fn run(
    lists: &[PathBuf],
    opts: &Options,
    out: &mut impl Write,
    report: &mut impl Write,
) -> Result<Summary> {
    let mut files = RuleSet::read_sources(&opts.rules)?;
    let rules = RuleSet::from_sources(&files)?;
    if let Some(g) = &opts.group {
        if !rules.groups().iter().any(|d| &d.name == g) {
            return Err(Error::Usage(format!(
                "unknown group {g:?}: define it in {} first",
                opts.rules.site.join("groups.toml").display()
            )));
        }
    }
    let deny_path = opts.rules.site.join("deny.list");
    let old = files
        .iter()
        .find(|(p, _)| *p == deny_path)
        .map(|(_, t)| t.clone())
        .unwrap_or_default();
    let suffix = opts
        .group
        .as_ref()
        .map(|g| format!(" @{g}"))
        .unwrap_or_default();
    let mut summary = Summary::default();
    let mut added = String::new();
    let mut seen = rustc_hash::FxHashSet::default();
    for list in lists {
        let text = std::fs::read(list).map_err(|source| Error::Io {
            path: list.clone(),
            source,
        })?;
        let text = String::from_utf8_lossy(&text);
        let imported = import_list(&text, opts.format);
        let mut block = String::new();
        let mut count = 0;
        let mut already = 0;
        for e in &imported.entries {
            if rules.deny_covers(&e.pattern, opts.group.as_deref())
                || !seen.insert(e.pattern.clone())
            {
                already += 1;
                continue;
            }
            block.push_str(&e.pattern.display());
            block.push_str(&suffix);
            block.push('\n');
            count += 1;
        }
        for (i, s) in imported.skipped.iter().enumerate() {
            if i < 10 || opts.show_skipped {
                writeln!(
                    report,
                    "{}:{}: skipped ({}): {}",
                    list.display(),
                    s.line,
                    s.reason,
                    s.text
                )?;
            }
        }
        if imported.skipped.len() > 10 && !opts.show_skipped {
            writeln!(
                report,
                "{}: {} more skipped lines (--show-skipped lists them)",
                list.display(),
                imported.skipped.len() - 10
            )?;
        }
        let redundant = imported.duplicates + imported.shadowed;
        writeln!(
            report,
            "{}: {} format, {count} new entries; {already} already listed, {redundant} duplicate or covered by a broader entry, {} skipped, {} local names",
            list.display(),
            imported.format.as_str(),
            imported.skipped.len(),
            imported.local_names
        )?;
        if count > 0 {
            added.push_str(&format!(
                "\n# imported from {} ({} format) on {}: {count} entries\n",
                list.file_name().map_or_else(
                    || list.display().to_string(),
                    |n| n.to_string_lossy().into_owned()
                ),
                imported.format.as_str(),
                opts.date
            ));
            added.push_str(&block);
        }
        summary.added += count;
        summary.already_listed += already;
        summary.skipped += imported.skipped.len();
        summary.redundant += redundant;
    }
    if opts.dry_run || summary.added == 0 {
        if opts.dry_run {
            out.write_all(added.as_bytes())?;
        }
        return Ok(summary);
    }
    let mut new = old;
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str(&added);
    // The whole rule set must still load with the new list before the file is replaced.
    files.retain(|(p, _)| *p != deny_path);
    files.push((deny_path.clone(), new.clone()));
    RuleSet::from_sources(&files)?;
    super::write_atomic(&deny_path, |w| {
        w.write_all(new.as_bytes()).map_err(|source| Error::Io {
            path: deny_path.clone(),
            source,
        })
    })?;
    Ok(summary)
}
