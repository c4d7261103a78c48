//! The rule set in force, replaceable while readers use it: a reload parses and validates
//! the whole new set first and swaps it in with one atomic pointer store, so a reader sees
//! the old set or the new one, never a mix, and a bad file leaves the old set in force.
//! A signed rule bundle moves the catalog to another directory the same way
//! ([`Live::swap_catalog`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::{Lint, RuleDirs, RuleSet};
use crate::error::Result;

/// The rule set in force and its version (1 for the first load, +1 per successful
/// reload).
#[derive(Debug)]
pub struct Live {
    /// Where the rules are read from. Held while a reload reads and swaps, so a reload and
    /// a catalog swap never interleave (readers of the rules never take it).
    dirs: Mutex<RuleDirs>,
    current: ArcSwap<RuleSet>,
    version: AtomicU64,
}

/// What a successful reload put in force.
#[derive(Debug)]
pub struct Reload {
    /// The new version.
    pub version: u64,
    /// Catalog services.
    pub services: usize,
    /// Host patterns.
    pub patterns: usize,
    /// Advice about the new files (they loaded anyway).
    pub warnings: Vec<Lint>,
}

impl Live {
    /// Loads the rules for the first time.
    pub fn load(dirs: &RuleDirs) -> Result<Live> {
        Ok(Live::new(dirs, RuleSet::load(dirs)?))
    }

    /// Starts from an already loaded set read from `dirs`.
    pub fn new(dirs: &RuleDirs, rules: RuleSet) -> Live {
        Live {
            dirs: Mutex::new(dirs.clone()),
            current: ArcSwap::from_pointee(rules),
            version: AtomicU64::new(1),
        }
    }

    /// The set in force. Cheap: a reader holds it for one decision or one batch.
    pub fn current(&self) -> Arc<RuleSet> {
        self.current.load_full()
    }

    /// The set in force without touching its reference count: for the hottest paths
    /// (a cached DNS answer); hold the guard only briefly.
    pub fn guard(&self) -> arc_swap::Guard<Arc<RuleSet>> {
        self.current.load()
    }

    /// Where the rules are read from now.
    pub fn dirs(&self) -> RuleDirs {
        self.lock_dirs().clone()
    }

    fn lock_dirs(&self) -> std::sync::MutexGuard<'_, RuleDirs> {
        // A panic while holding it leaves the directories as they were: keep using them.
        self.dirs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The version in force.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Re-reads the rules directory. On any error the old set stays in force and the
    /// error (every bad file and line) is returned.
    pub fn reload(&self) -> Result<Reload> {
        let dirs = self.lock_dirs();
        let rules = RuleSet::load(&dirs)?;
        Ok(self.replace(rules))
    }

    /// Reads the catalog from `catalog` from now on (the site files stay where they are),
    /// loading it with the site files first: on any error nothing changes, neither the
    /// set in force nor where reloads read.
    pub fn swap_catalog(&self, catalog: PathBuf) -> Result<Reload> {
        let mut dirs = self.lock_dirs();
        let next = RuleDirs {
            catalog,
            site: dirs.site.clone(),
        };
        let rules = RuleSet::load(&next)?;
        *dirs = next;
        Ok(self.replace(rules))
    }

    /// Puts an already validated set in force.
    pub fn replace(&self, rules: RuleSet) -> Reload {
        let warnings = rules.lint();
        let services = rules.services().count();
        let patterns = rules.pattern_count();
        self.current.store(Arc::new(rules));
        let version = self.version.fetch_add(1, Ordering::AcqRel) + 1;
        Reload {
            version,
            services,
            patterns,
            warnings,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::policy::{Client, Mode, Verdict};

    const CATALOG: &str = r#"
[[service]]
id = "chatgpt"
name = "ChatGPT"
vendor = "OpenAI"
category = "chat"
sources = ["https://example.org/source"]
reviewed = "2026-12-02"
[[service.hosts]]
tier = "consumer"
patterns = ["chatgpt.com"]
"#;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    fn verdict(live: &Live, host: &str) -> Verdict {
        live.current()
            .judge(host, &Client::NONE, Mode::Enforce)
            .verdict
    }

    #[test]
    fn bad_file_keeps_the_old_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "catalog/x.toml", CATALOG);
        write(dir.path(), "site/deny.list", "tracker.example\n");
        let live = Live::load(&RuleDirs::under(dir.path())).expect("loads");
        assert_eq!(live.version(), 1);
        assert_eq!(verdict(&live, "tracker.example"), Verdict::Block);

        write(
            dir.path(),
            "site/deny.list",
            "tracker.example\nbad entry here\n",
        );
        let e = live.reload().expect_err("bad deny list");
        assert!(e.to_string().contains("deny.list:2:"), "{e}");
        assert_eq!(live.version(), 1);
        assert_eq!(verdict(&live, "tracker.example"), Verdict::Block);

        write(dir.path(), "site/deny.list", "other.example\n");
        write(dir.path(), "site/allow.list", "chatgpt.com\n");
        let r = live.reload().expect("good again");
        assert_eq!((r.version, live.version()), (2, 2));
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert_eq!(verdict(&live, "tracker.example"), Verdict::Allow);
        assert_eq!(verdict(&live, "other.example"), Verdict::Block);
        assert_eq!(verdict(&live, "chatgpt.com"), Verdict::Allow);
    }

    #[test]
    fn a_catalog_swap_moves_reloads_or_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "catalog/x.toml", CATALOG);
        write(dir.path(), "site/allow.list", "chatgpt.com\n");
        let live = Live::load(&RuleDirs::under(dir.path())).expect("loads");
        let other = CATALOG.replace("chatgpt.com", "other-ai.example");
        write(dir.path(), "bundle/catalog/x.toml", &other);
        // The site's allow list names chatgpt.com only: still fine with another catalog.
        let r = live
            .swap_catalog(dir.path().join("bundle/catalog"))
            .expect("swapped");
        assert_eq!(r.version, 2);
        assert_eq!(live.dirs().catalog, dir.path().join("bundle/catalog"));
        assert_eq!(live.dirs().site, dir.path().join("site"));
        assert_eq!(verdict(&live, "other-ai.example"), Verdict::Block);
        assert_eq!(verdict(&live, "chatgpt.com"), Verdict::Allow);
        // A reload reads the new catalog directory.
        live.reload().expect("reload");
        assert_eq!(verdict(&live, "other-ai.example"), Verdict::Block);
        // A bad catalog changes nothing.
        write(dir.path(), "bad/catalog/x.toml", "[[service]]\nid = 1\n");
        live.swap_catalog(dir.path().join("bad/catalog"))
            .expect_err("bad catalog");
        assert_eq!(live.dirs().catalog, dir.path().join("bundle/catalog"));
        assert_eq!(live.version(), 3);
        assert_eq!(verdict(&live, "other-ai.example"), Verdict::Block);
    }

    #[test]
    fn readers_see_whole_sets_during_reloads() {
        // Set A denies a.example only, set B denies b.example only: a reader holding one
        // snapshot must never see both or neither.
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "catalog/x.toml", CATALOG);
        write(dir.path(), "site/deny.list", "a.example\n");
        let live = Arc::new(Live::load(&RuleDirs::under(dir.path())).expect("loads"));
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (live, stop) = (live.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut seen = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let set = live.current();
                        let a = set.judge("a.example", &Client::NONE, Mode::Enforce).verdict;
                        let b = set.judge("b.example", &Client::NONE, Mode::Enforce).verdict;
                        assert_ne!(a, b, "a mixed or empty set");
                        seen += 1;
                    }
                    seen
                })
            })
            .collect();
        for i in 0..200 {
            let deny = if i % 2 == 0 {
                "b.example\n"
            } else {
                "a.example\n"
            };
            let rules = RuleSet::from_sources(&[
                (PathBuf::from("catalog/x.toml"), CATALOG.to_string()),
                (PathBuf::from("site/deny.list"), deny.to_string()),
            ])
            .expect("valid");
            live.replace(rules);
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            assert!(r.join().expect("reader") > 0);
        }
        assert_eq!(live.version(), 201);
    }
}
