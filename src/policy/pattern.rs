//! Host patterns and the suffix map that matches hosts against 100,000 of them with one
//! hash lookup per label of the host, and no allocation.
//!
//! Four forms, as an admin or the catalog writes them:
//!
//! | written | matches |
//! |---|---|
//! | `example.com` | the name and every subdomain |
//! | `*.example.com` | subdomains only |
//! | `=www.example.com` | that host only |
//! | `async-*.example.com` | any first label with that prefix and suffix, and the names under it |
//!
//! The last two say what shared platforms need: `=bing.com` is not `www.bing.com`, and
//! ChatGPT's push channel is `chatgpt-async-webps-prod-<n>.webpubsub.azure.com` on a cloud
//! suffix that carries every Azure customer's traffic.

use rustc_hash::FxHashMap;

/// A validated pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    /// The fixed part, lowercase, without `*.`, `=` or a trailing dot; for a label
    /// wildcard, the labels right of the wildcard label.
    pub name: Box<str>,
    /// Which hosts under `name` the pattern covers.
    pub form: Form,
}

/// How a [`Pattern`] covers the hosts around its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Form {
    /// `example.com`: the name and every subdomain.
    Domain,
    /// `*.example.com`: subdomains only; the name itself does not match.
    Subdomains,
    /// `=www.example.com`: the name only.
    Exact,
    /// `prefix*suffix.example.com`: a name one label longer than `name` whose first label
    /// matches, and every subdomain of it.
    Label(Box<LabelGlob>),
}

/// The wildcard label of a [`Form::Label`] pattern: `*` stands for one or more characters
/// of one label (never a dot).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LabelGlob {
    /// What the label starts with.
    pub prefix: Box<str>,
    /// What the label ends with.
    pub suffix: Box<str>,
}

impl LabelGlob {
    /// True when `label` is the prefix, one or more characters, then the suffix.
    pub fn matches(&self, label: &str) -> bool {
        label.len() > self.prefix.len() + self.suffix.len()
            && label.starts_with(&*self.prefix)
            && label.ends_with(&*self.suffix)
    }

    /// True when every label this glob matches, `other` matches too.
    fn within(&self, other: &LabelGlob) -> bool {
        self.prefix.starts_with(&*other.prefix) && self.suffix.ends_with(&*other.suffix)
    }
}

fn check_label(label: &str, text: &str) -> Result<(), String> {
    if label.is_empty() || label.len() > 63 {
        return Err(format!("invalid label in host pattern {text:?}"));
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        let why = if c == '*' {
            ": a * may stand only in the first label (`*.example.com`, `async-*.example.com`)"
        } else {
            ""
        };
        return Err(format!(
            "invalid character {c:?} in host pattern {text:?}{why}"
        ));
    }
    Ok(())
}

impl Pattern {
    /// Parses and validates a pattern as written in a rule file. International names
    /// are accepted in Unicode and stored in punycode (IDNA/UTS 46, as browsers resolve
    /// them), so `bücher.example` matches the `xn--bcher-kva.example` a device asks for.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let t = text.trim();
        let (exact, t) = match t.strip_prefix('=') {
            Some(r) => (true, r),
            None => (false, t),
        };
        let (subdomains, rest) = match t.strip_prefix("*.") {
            Some(r) => (true, r),
            None => (false, t),
        };
        if exact && subdomains {
            return Err(format!(
                "host pattern {text:?}: `=` names one host and `*.` its subdomains; use one"
            ));
        }
        let rest = rest.strip_suffix('.').unwrap_or(rest);
        // A wildcard inside the first label: split it off before IDNA, which knows no `*`.
        let (glob, rest) = match rest.split_once('.') {
            Some((first, tail)) if first.contains('*') && !subdomains => {
                if exact {
                    return Err(format!(
                        "host pattern {text:?}: `=` names one host; it cannot hold a *"
                    ));
                }
                let (prefix, suffix) = first.split_once('*').unwrap_or((first, ""));
                for part in [prefix, suffix] {
                    if !part.is_empty() {
                        check_label(part, text)?;
                    }
                }
                if prefix.len() + suffix.len() >= 63 {
                    return Err(format!("invalid label in host pattern {text:?}"));
                }
                let glob = LabelGlob {
                    prefix: prefix.to_ascii_lowercase().into(),
                    suffix: suffix.to_ascii_lowercase().into(),
                };
                (Some(glob), tail)
            }
            _ => (None, rest),
        };
        let ascii;
        let rest = if rest.is_ascii() {
            rest
        } else {
            ascii = idna::domain_to_ascii(rest)
                .map_err(|_| format!("invalid international name in host pattern {text:?}"))?;
            ascii.as_str()
        };
        if rest.is_empty() {
            return Err(format!("empty host pattern {text:?}"));
        }
        if rest.len() > 253 {
            return Err(format!("host pattern longer than 253 characters: {text:?}"));
        }
        for label in rest.split('.') {
            check_label(label, text)?;
        }
        let form = match (glob, subdomains, exact) {
            (Some(g), _, _) => Form::Label(Box::new(g)),
            (None, true, _) => Form::Subdomains,
            (None, false, true) => Form::Exact,
            (None, false, false) => Form::Domain,
        };
        Ok(Pattern {
            name: rest.to_ascii_lowercase().into_boxed_str(),
            form,
        })
    }

    /// True when the pattern matches `host` (lowercase, no trailing dot).
    pub fn matches(&self, host: &str) -> bool {
        let under = host
            .strip_suffix(&*self.name)
            .and_then(|h| h.strip_suffix('.'));
        match &self.form {
            Form::Domain => host == &*self.name || under.is_some(),
            Form::Subdomains => under.is_some(),
            Form::Exact => host == &*self.name,
            Form::Label(g) => {
                under.is_some_and(|left| g.matches(left.rsplit('.').next().unwrap_or(left)))
            }
        }
    }

    /// A host the pattern matches, for tests and explanations: the name itself, or
    /// `probe` put where the pattern wants a label.
    pub fn example(&self) -> String {
        match &self.form {
            Form::Domain | Form::Exact => self.name.to_string(),
            Form::Subdomains => format!("probe.{}", self.name),
            Form::Label(g) => format!("{}probe{}.{}", g.prefix, g.suffix, self.name),
        }
    }

    /// Advice for a pattern that parses but is probably not what the admin meant.
    pub fn advice(&self) -> Option<String> {
        let labels: Vec<&str> = self.name.split('.').collect();
        let numeric = |l: &&str| l.bytes().all(|b| b.is_ascii_digit());
        if labels.len() == 4 && labels.iter().all(numeric) && !matches!(self.form, Form::Label(_)) {
            return Some(format!(
                "{} is an IP address, not a host name: DNS and SNI rules match names only",
                self.name
            ));
        }
        if labels.len() == 1 && !matches!(self.form, Form::Exact) {
            return Some(format!(
                "{} is a single label: it covers a whole top-level domain",
                self.display()
            ));
        }
        if labels.last().is_some_and(numeric) {
            return Some(format!(
                "{}: a top-level domain is never all digits",
                self.display()
            ));
        }
        if let Some(l) = labels
            .iter()
            .find(|l| l.starts_with('-') || l.ends_with('-'))
        {
            return Some(format!(
                "{}: label {l:?} starts or ends with a hyphen, which no host name does",
                self.display()
            ));
        }
        if labels.iter().any(|l| l.starts_with("xn--")) {
            let (_, checked) = idna::domain_to_unicode(&self.name);
            if checked.is_err() {
                return Some(format!("{}: a label is not valid punycode", self.display()));
            }
        }
        None
    }

    /// The pattern as an admin writes it.
    pub fn display(&self) -> String {
        match &self.form {
            Form::Domain => self.name.to_string(),
            Form::Subdomains => format!("*.{}", self.name),
            Form::Exact => format!("={}", self.name),
            Form::Label(g) => format!("{}*{}.{}", g.prefix, g.suffix, self.name),
        }
    }

    /// True when every host `other` matches, this pattern matches too (`example.com`
    /// covers `*.example.com`, `=www.example.com` and `a-*.example.com`).
    pub fn covers(&self, other: &Pattern) -> bool {
        if self.name == other.name {
            return match (&self.form, &other.form) {
                (Form::Domain, _) => true,
                (Form::Subdomains, Form::Subdomains | Form::Label(_)) => true,
                (Form::Exact, Form::Exact) => true,
                (Form::Label(a), Form::Label(b)) => b.within(a),
                _ => false,
            };
        }
        // `other` lies strictly under this pattern's name: every host it matches is a
        // subdomain of `other.name` or `other.name` itself (or, for a label wildcard, a
        // subdomain of it).
        let Some(left) = other
            .name
            .strip_suffix(&*self.name)
            .and_then(|h| h.strip_suffix('.'))
        else {
            return false;
        };
        match &self.form {
            Form::Domain | Form::Subdomains => true,
            Form::Exact => false,
            Form::Label(g) => g.matches(left.rsplit('.').next().unwrap_or(left)),
        }
    }
}

/// What is known about one suffix: an index into the owner's list for each kind of rule,
/// for each form of pattern on that name. `u32::MAX` is "none", which keeps a slot at 40
/// bytes.
#[derive(Debug, Clone, Copy)]
pub struct Slots {
    apex: [u32; 3],
    sub: [u32; 3],
    exact: [u32; 3],
    /// Index into [`SuffixMap::globs`] of the label wildcards on this name.
    globs: u32,
}

const NONE: u32 = u32::MAX;

impl Default for Slots {
    fn default() -> Slots {
        Slots {
            apex: [NONE; 3],
            sub: [NONE; 3],
            exact: [NONE; 3],
            globs: NONE,
        }
    }
}

fn some(i: Option<&u32>) -> Option<u32> {
    i.copied().filter(|&i| i != NONE)
}

impl Slots {
    /// The pattern of `kind` that matches the name itself and its subdomains.
    pub fn apex(&self, kind: usize) -> Option<u32> {
        some(self.apex.get(kind))
    }

    /// The `*.` pattern of `kind` (subdomains only).
    pub fn sub(&self, kind: usize) -> Option<u32> {
        some(self.sub.get(kind))
    }

    /// The `=` pattern of `kind` (the name only).
    pub fn exact(&self, kind: usize) -> Option<u32> {
        some(self.exact.get(kind))
    }

    /// True when some pattern of `kind`, of any form, is on this name.
    pub fn any(&self, kind: usize) -> bool {
        self.apex(kind).is_some() || self.sub(kind).is_some() || self.exact(kind).is_some()
    }
}

/// A label wildcard stored under its fixed name, with the caller's index per kind.
#[derive(Debug, Clone)]
pub struct Glob {
    /// The wildcard label.
    pub label: LabelGlob,
    idx: [u32; 3],
}

impl Glob {
    /// The index of `kind`, if a pattern of that kind is this wildcard.
    pub fn get(&self, kind: usize) -> Option<u32> {
        some(self.idx.get(kind))
    }
}

/// One suffix of a host that has patterns, as [`SuffixMap::walk`] visits it.
#[derive(Debug, Clone, Copy)]
pub struct Hit<'a> {
    /// The suffix of the host (the stored name).
    pub suffix: &'a str,
    /// The host's label just left of the suffix; `None` when the suffix is the whole host.
    pub left: Option<&'a str>,
    /// The patterns on this name.
    pub slots: &'a Slots,
    globs: &'a [Glob],
}

impl<'a> Hit<'a> {
    /// True when the suffix is the whole host.
    pub fn whole(&self) -> bool {
        self.left.is_none()
    }

    /// Every label wildcard stored on this name, matching or not.
    pub fn globs(&self) -> &'a [Glob] {
        self.globs
    }

    /// The first label wildcard of `kind` that matches the host's label left of the suffix.
    pub fn glob(&self, kind: usize) -> Option<(u32, &'a Glob)> {
        let left = self.left?;
        self.globs.iter().find_map(|g| {
            g.get(kind)
                .filter(|_| g.label.matches(left))
                .map(|i| (i, g))
        })
    }

    /// The most specific pattern of `kind` on this name that matches the host: the
    /// exact or plain name when the suffix is the whole host; otherwise a matching label
    /// wildcard (it names one more label), then the plain name, then `*.`.
    pub fn first(&self, kind: usize) -> Option<u32> {
        if self.whole() {
            self.slots.exact(kind).or(self.slots.apex(kind))
        } else {
            self.glob(kind)
                .map(|(i, _)| i)
                .or(self.slots.apex(kind))
                .or(self.slots.sub(kind))
        }
    }

    /// Every pattern of `kind` on this name, of every form, whether it matches the host
    /// or not; for lint, not for the packet path (it allocates).
    pub fn patterns(&self, kind: usize) -> Vec<(u32, Pattern)> {
        stored(self.suffix, self.slots, self.globs, kind)
    }

    /// True when a pattern of `kind`, of any form, is on this name.
    pub fn any(&self, kind: usize) -> bool {
        self.slots.any(kind) || self.globs.iter().any(|g| g.get(kind).is_some())
    }

    /// Every pattern of `kind` on this name that matches the host, most specific first.
    pub fn all(&self, kind: usize) -> impl Iterator<Item = u32> + 'a {
        let s = *self.slots;
        let whole = self.whole();
        let left = self.left;
        let globs = self.globs.iter().filter_map(move |g| {
            let l = left?;
            g.get(kind).filter(|_| g.label.matches(l))
        });
        let exact = s.exact(kind).filter(|_| whole);
        let sub = s.sub(kind).filter(|_| !whole);
        exact
            .into_iter()
            .chain(globs)
            .chain(s.apex(kind))
            .chain(sub)
    }
}

/// Every pattern of `kind` stored on `name`, rebuilt, with its index: `=`, wildcard
/// labels, plain, `*.`.
pub fn stored(name: &str, slots: &Slots, globs: &[Glob], kind: usize) -> Vec<(u32, Pattern)> {
    let make = |form| Pattern {
        name: name.into(),
        form,
    };
    let mut out = Vec::new();
    if let Some(i) = slots.exact(kind) {
        out.push((i, make(Form::Exact)));
    }
    for g in globs {
        if let Some(i) = g.get(kind) {
            out.push((i, make(Form::Label(Box::new(g.label.clone())))));
        }
    }
    if let Some(i) = slots.apex(kind) {
        out.push((i, make(Form::Domain)));
    }
    if let Some(i) = slots.sub(kind) {
        out.push((i, make(Form::Subdomains)));
    }
    out
}

/// Map from pattern name to [`Slots`]; the kind index (0, 1, 2) is the caller's.
#[derive(Debug, Default)]
pub struct SuffixMap {
    map: FxHashMap<Box<str>, Slots>,
    globs: Vec<Vec<Glob>>,
    len: usize,
}

impl SuffixMap {
    /// Records `pattern` for `kind` with the caller's index `idx`. Returns the index
    /// already recorded for the same pattern and kind, if any (a duplicate); the first wins.
    pub fn insert(&mut self, pattern: &Pattern, kind: usize, idx: u32) -> Option<u32> {
        let slots = self.map.entry(pattern.name.clone()).or_default();
        let slot = match &pattern.form {
            Form::Domain => &mut slots.apex[kind],
            Form::Subdomains => &mut slots.sub[kind],
            Form::Exact => &mut slots.exact[kind],
            Form::Label(label) => {
                if slots.globs == NONE {
                    slots.globs = self.globs.len() as u32;
                    self.globs.push(Vec::new());
                }
                let list = &mut self.globs[slots.globs as usize];
                let at = match list.iter().position(|g| g.label == **label) {
                    Some(at) => at,
                    None => {
                        list.push(Glob {
                            label: (**label).clone(),
                            idx: [NONE; 3],
                        });
                        list.len() - 1
                    }
                };
                &mut list[at].idx[kind]
            }
        };
        if *slot == NONE {
            *slot = idx;
            self.len += 1;
            None
        } else {
            Some(*slot)
        }
    }

    /// Calls `f` for each suffix of `host` that has patterns, most specific first.
    /// `host` must be lowercase without a trailing dot.
    pub fn walk<'a>(&'a self, host: &'a str, mut f: impl FnMut(Hit<'a>)) {
        let mut rest = host;
        let mut left = None;
        loop {
            if let Some(slots) = self.map.get(rest) {
                let globs = match slots.globs {
                    NONE => &[][..],
                    i => &self.globs[i as usize][..],
                };
                f(Hit {
                    suffix: rest,
                    left,
                    slots,
                    globs,
                });
            }
            match rest.find('.') {
                Some(i) => {
                    left = Some(&rest[..i]);
                    rest = &rest[i + 1..];
                }
                None => break,
            }
        }
    }

    /// The most specific pattern per kind that matches `host`.
    pub fn lookup(&self, host: &str) -> [Option<u32>; 3] {
        let mut found: [Option<u32>; 3] = [None; 3];
        self.walk(host, |hit| {
            for (k, slot) in found.iter_mut().enumerate() {
                if slot.is_none() {
                    *slot = hit.first(k);
                }
            }
        });
        found
    }

    /// Every pattern of `kind` that matches `host`, most specific first.
    pub fn each_match(&self, host: &str, kind: usize, mut f: impl FnMut(u32)) {
        self.walk(host, |hit| hit.all(kind).for_each(&mut f));
    }

    /// Every stored name, its slots and its label wildcards, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Slots, &[Glob])> {
        self.map.iter().map(|(k, v)| {
            let globs = match v.globs {
                NONE => &[][..],
                i => &self.globs[i as usize][..],
            };
            (&**k, v, globs)
        })
    }

    /// Patterns stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no pattern is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn map(patterns: &[&str]) -> SuffixMap {
        let mut m = SuffixMap::default();
        for (i, p) in patterns.iter().enumerate() {
            m.insert(&Pattern::parse(p).expect("valid"), 0, i as u32);
        }
        m
    }

    #[test]
    fn matches_on_label_boundaries_only() {
        let m = map(&["chatgpt.com"]);
        assert!(m.lookup("chatgpt.com")[0].is_some());
        assert!(m.lookup("a.b.chatgpt.com")[0].is_some());
        assert!(m.lookup("notchatgpt.com")[0].is_none());
        assert!(m.lookup("chatgpt.com.example.net")[0].is_none());
        assert!(m.lookup("com")[0].is_none());
    }

    #[test]
    fn wildcard_is_subdomains_only() {
        let m = map(&["*.openai.azure.com"]);
        assert!(m.lookup("openai.azure.com")[0].is_none());
        assert!(m.lookup("sunrise-clinic.openai.azure.com")[0].is_some());
    }

    #[test]
    fn exact_is_the_host_alone() {
        let m = map(&["=bing.com", "sydney.bing.com"]);
        assert_eq!(m.lookup("bing.com")[0], Some(0));
        assert_eq!(m.lookup("www.bing.com")[0], None);
        assert_eq!(m.lookup("th.bing.com")[0], None);
        assert_eq!(m.lookup("sydney.bing.com")[0], Some(1));
        assert_eq!(m.lookup("x.sydney.bing.com")[0], Some(1));
        // `=` beats the plain form on the same name; the plain form covers the rest.
        let m = map(&["example.com", "=example.com"]);
        assert_eq!(m.lookup("example.com")[0], Some(1));
        assert_eq!(m.lookup("www.example.com")[0], Some(0));
    }

    #[test]
    fn a_wildcard_label_matches_one_label_and_what_lies_under_it() {
        let m = map(&["chatgpt-async-webps-prod-*.webpubsub.azure.com"]);
        for host in [
            "chatgpt-async-webps-prod-eastus-0.webpubsub.azure.com",
            "chatgpt-async-webps-prod-7.webpubsub.azure.com",
            "x.chatgpt-async-webps-prod-7.webpubsub.azure.com",
        ] {
            assert_eq!(m.lookup(host)[0], Some(0), "{host}");
        }
        for host in [
            // `*` stands for at least one character, within one label.
            "chatgpt-async-webps-prod-.webpubsub.azure.com",
            "other-tenant.webpubsub.azure.com",
            "webpubsub.azure.com",
            "chatgpt-async-webps-prod-7.x.webpubsub.azure.com",
            "chatgpt-async-webps-prod-7.webpubsub.azure.com.evil.example",
        ] {
            assert_eq!(m.lookup(host)[0], None, "{host}");
        }
        let m = map(&["*-aiplatform.googleapis.com", "us-*-x.example"]);
        assert_eq!(
            m.lookup("us-central1-aiplatform.googleapis.com")[0],
            Some(0)
        );
        assert_eq!(m.lookup("aiplatform.googleapis.com")[0], None);
        assert_eq!(m.lookup("us-east-x.example")[0], Some(1));
        assert_eq!(m.lookup("eu-east-x.example")[0], None);
    }

    #[test]
    fn the_more_specific_form_wins_on_one_suffix() {
        // A wildcard label names one more label than the plain name beside it.
        let m = map(&["webpubsub.azure.com", "chatgpt-*.webpubsub.azure.com"]);
        assert_eq!(m.lookup("chatgpt-1.webpubsub.azure.com")[0], Some(1));
        assert_eq!(m.lookup("other.webpubsub.azure.com")[0], Some(0));
        // A literal name beats a wildcard label that also matches it.
        let m = map(&["chatgpt-*.example.com", "chatgpt-1.example.com"]);
        assert_eq!(m.lookup("a.chatgpt-1.example.com")[0], Some(1));
        let mut all = Vec::new();
        m.each_match("a.chatgpt-1.example.com", 0, |i| all.push(i));
        assert_eq!(all, [1, 0]);
    }

    #[test]
    fn matches_agrees_with_the_map() {
        let patterns = [
            "example.com",
            "*.example.org",
            "=www.example.net",
            "a-*.example.edu",
            "*b.example.io",
        ];
        let hosts = [
            "example.com",
            "w.example.com",
            "example.org",
            "w.example.org",
            "www.example.net",
            "x.www.example.net",
            "a-1.example.edu",
            "a-.example.edu",
            "z.a-1.example.edu",
            "ab.example.io",
            "b.example.io",
        ];
        for p in patterns {
            let pat = Pattern::parse(p).expect("valid");
            let m = map(&[p]);
            for h in hosts {
                assert_eq!(pat.matches(h), m.lookup(h)[0].is_some(), "{p} {h}");
            }
            assert!(pat.matches(&pat.example()), "{p}");
            assert_eq!(Pattern::parse(&pat.display()).as_ref(), Ok(&pat));
        }
    }

    #[test]
    fn covers_is_containment() {
        let p = |s: &str| Pattern::parse(s).expect("valid");
        let yes = [
            ("example.com", "*.example.com"),
            ("example.com", "=example.com"),
            ("example.com", "a-*.example.com"),
            ("*.example.com", "a-*.example.com"),
            ("*.example.com", "=www.example.com"),
            ("a-*.example.com", "a-b*.example.com"),
            ("a-*.example.com", "=x.a-1.example.com"),
            ("*.example.com", "x.example.com"),
        ];
        for (a, b) in yes {
            assert!(p(a).covers(&p(b)), "{a} covers {b}");
        }
        let no = [
            ("*.example.com", "example.com"),
            ("=example.com", "www.example.com"),
            ("=example.com", "example.com"),
            ("a-*.example.com", "example.com"),
            ("a-b*.example.com", "a-*.example.com"),
            ("a-*.example.com", "=b-1.example.com"),
        ];
        for (a, b) in no {
            assert!(!p(a).covers(&p(b)), "{a} does not cover {b}");
        }
    }

    #[test]
    fn validates_patterns() {
        assert_eq!(
            Pattern::parse("ChatGPT.com.").map(|p| p.name),
            Ok("chatgpt.com".into())
        );
        assert!(Pattern::parse("").is_err());
        assert!(Pattern::parse("a..b").is_err());
        assert!(Pattern::parse("bad host.com").is_err());
        assert_eq!(
            Pattern::parse("chätgpt.com").map(|p| p.name),
            Ok("xn--chtgpt-cua.com".into())
        );
        // UTS 46 drops zero-width spaces, as a browser would before resolving.
        assert_eq!(
            Pattern::parse("a\u{200b}.com").map(|p| p.name),
            Ok("a.com".into())
        );
        assert!(Pattern::parse("a\u{85}b.com").is_err());
        assert!(Pattern::parse("*.").is_err());
        for bad in [
            "=*.example.com",
            "=a-*.example.com",
            "a.b-*.example.com",
            "a-**.example.com",
            "*.a-*.example.com",
            "a-*",
            "=",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Pattern::parse("=WWW.Bing.com").map(|p| p.display()),
            Ok("=www.bing.com".into())
        );
        assert!(Pattern::parse("a.b-*.example.com")
            .is_err_and(|e| e.contains("only in the first label")));
    }
}
