//! The house rules of `src/lib.rs`, checked: everything flows frame -> observation ->
//! decision -> incident -> store -> report, and no module imports one above it in that
//! flow; within a module directory no two files import each other (no cycles); and no
//! source file runs over ~700 lines unless its opening comment says why.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module's place in the flow: a module may use modules of a lower layer
/// (and `error`, `paths`), never one of its own layer or above.
const LAYERS: [(&str, u8); 24] = [
    ("error", 0),
    ("health", 0),
    ("paths", 0),
    ("limit", 0),
    ("tls", 0),
    ("detect", 1),
    ("policy", 2),
    ("devices", 3),
    ("incident", 4),
    ("metrics", 5),
    ("capture", 6),
    ("store", 6),
    ("config", 7),
    ("report", 7),
    ("resolver", 8),
    ("firewall", 8),
    ("deliver", 8),
    ("fleet", 8),
    ("console", 8),
    ("provision", 8),
    ("daemon", 9),
    ("cli", 10),
    ("lib", 11),
    ("main", 11),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("src") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `detect::quic` for src/detect/quic.rs, `detect::dns` for src/detect/dns/mod.rs.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    parts
}

/// Test files and test modules are not part of the layering.
fn is_test(module: &[String]) -> bool {
    module.iter().any(|l| l == "tests")
}

/// Module paths a file refers to: `crate::a::b...` and `super::b...` (resolved).
fn references(module: &[String], text: &str) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    // Code only: stop at the file's test module.
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    for line in code.lines() {
        let line = line.trim();
        if line.starts_with("//") {
            continue;
        }
        for (at, _) in line.match_indices("crate::") {
            let path: Vec<String> = line[at + 7..]
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or("")
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if !path.is_empty() {
                out.insert(path);
            }
        }
        for (at, _) in line.match_indices("super::") {
            if at > 0 && line.as_bytes()[at - 1] == b':' {
                continue;
            }
            let mut base: Vec<String> = module.to_vec();
            base.pop();
            let mut rest = &line[at..];
            while let Some(r) = rest.strip_prefix("super::") {
                rest = r;
            }
            let hops = (line[at..].len() - rest.len()) / 7;
            for _ in 1..hops {
                base.pop();
            }
            let tail: Vec<String> = rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or("")
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            base.extend(tail);
            out.insert(base);
        }
    }
    out
}

fn layer(top: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == top).map(|(_, l)| *l)
}

#[test]
fn no_module_imports_one_above_it_and_no_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    // Edges between files of the same top-level directory, for cycle detection.
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let known: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(&src, f).join("::"))
        .collect();
    for f in &files {
        let module = module_of(&src, f);
        if is_test(&module) {
            continue;
        }
        let text = std::fs::read_to_string(f).expect("read");
        let top = module[0].as_str();
        let my_layer = layer(top).unwrap_or_else(|| panic!("{top} has no layer in LAYERS"));
        for r in references(&module, &text) {
            let Some(their) = layer(&r[0]) else { continue };
            if r[0] != top && their >= my_layer && their != 0 {
                wrong.push(format!(
                    "{} uses crate::{}",
                    module.join("::"),
                    r.join("::")
                ));
            }
            // Within a directory: the longest known module the path names.
            if r[0] == top && module.len() > 1 {
                let target = (1..=r.len())
                    .rev()
                    .map(|n| r[..n].join("::"))
                    .find(|m| known.contains(m));
                if let Some(t) = target {
                    let me = module.join("::");
                    // A parent's items used by its children are the parent's API, not a
                    // cycle: only sibling and cousin files count.
                    if t != me
                        && !me.starts_with(&format!("{t}::"))
                        && !t.starts_with(&format!("{me}::"))
                    {
                        edges.entry(me).or_default().insert(t);
                    }
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the flow:\n{}",
        wrong.join("\n")
    );
    // Depth-first search for a cycle among sibling files.
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|s| s == n) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        if let Some(c) = visit(n, &edges, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", c.join(" -> "));
        }
    }
}

#[test]
fn long_files_say_why() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches", "examples"] {
        sources(&root.join(dir), &mut files);
    }
    let mut long = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        let lines = text.lines().count();
        let head: String = text
            .lines()
            .take_while(|l| l.starts_with("//"))
            .collect::<String>()
            .to_lowercase();
        if lines > 750 && !head.contains("long") {
            long.push(format!("{} ({lines} lines)", f.display()));
        }
    }
    assert!(
        long.is_empty(),
        "files over ~700 lines whose opening comment does not say why:\n{}",
        long.join("\n")
    );
}
