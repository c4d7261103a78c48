//! Host patterns and the suffix map that matches hosts against 100,000 of them with one
//! hash lookup per label of the host, and no allocation.

use rustc_hash::FxHashMap;

/// A validated pattern: `example.com` (the name and every subdomain) or `*.example.com`
/// (subdomains only).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    /// The name part, lowercase, without `*.` or a trailing dot.
    pub name: Box<str>,
    /// `*.` form: the apex itself does not match.
    pub subdomains_only: bool,
}

impl Pattern {
    /// Parses and validates a pattern as written in a rule file. International names
    /// are accepted in Unicode and stored in punycode (IDNA/UTS 46, as browsers resolve
    /// them), so `bücher.example` matches the `xn--bcher-kva.example` a device asks for.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let t = text.trim();
        let (subdomains_only, rest) = match t.strip_prefix("*.") {
            Some(r) => (true, r),
            None => (false, t),
        };
        let rest = rest.strip_suffix('.').unwrap_or(rest);
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
            if label.is_empty() || label.len() > 63 {
                return Err(format!("invalid label in host pattern {text:?}"));
            }
            if let Some(c) = label
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
            {
                return Err(format!("invalid character {c:?} in host pattern {text:?}"));
            }
        }
        Ok(Pattern {
            name: rest.to_ascii_lowercase().into_boxed_str(),
            subdomains_only,
        })
    }

    /// Advice for a pattern that parses but is probably not what the admin meant.
    pub fn advice(&self) -> Option<String> {
        let labels: Vec<&str> = self.name.split('.').collect();
        let numeric = |l: &&str| l.bytes().all(|b| b.is_ascii_digit());
        if labels.len() == 4 && labels.iter().all(numeric) {
            return Some(format!(
                "{} is an IP address, not a host name: DNS and SNI rules match names only",
                self.name
            ));
        }
        if labels.len() == 1 {
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
        if self.subdomains_only {
            format!("*.{}", self.name)
        } else {
            self.name.to_string()
        }
    }
}

/// What is known about one suffix: an index into the owner's list for each kind of rule,
/// for the name-and-subdomains form and the subdomains-only form. `u32::MAX` is "none",
/// which keeps a slot at 24 bytes instead of 48.
#[derive(Debug, Clone, Copy)]
pub struct Slots {
    apex: [u32; 3],
    sub: [u32; 3],
}

const NONE: u32 = u32::MAX;

impl Default for Slots {
    fn default() -> Slots {
        Slots {
            apex: [NONE; 3],
            sub: [NONE; 3],
        }
    }
}

impl Slots {
    /// The pattern of `kind` that matches the name itself and its subdomains.
    pub fn apex(&self, kind: usize) -> Option<u32> {
        self.apex.get(kind).copied().filter(|&i| i != NONE)
    }

    /// The `*.` pattern of `kind` (subdomains only).
    pub fn sub(&self, kind: usize) -> Option<u32> {
        self.sub.get(kind).copied().filter(|&i| i != NONE)
    }
}

/// Map from pattern name to [`Slots`]; the kind index (0, 1, 2) is the caller's.
#[derive(Debug, Default)]
pub struct SuffixMap {
    map: FxHashMap<Box<str>, Slots>,
}

impl SuffixMap {
    /// Records `pattern` for `kind` with the caller's index `idx`. Returns the index
    /// already recorded for the same pattern and kind, if any (a duplicate); the first wins.
    pub fn insert(&mut self, pattern: &Pattern, kind: usize, idx: u32) -> Option<u32> {
        let slots = self.map.entry(pattern.name.clone()).or_default();
        let slot = if pattern.subdomains_only {
            &mut slots.sub[kind]
        } else {
            &mut slots.apex[kind]
        };
        if *slot == NONE {
            *slot = idx;
            None
        } else {
            Some(*slot)
        }
    }

    /// Calls `f(suffix, is_whole_host, slots)` for each suffix of `host` that has rules,
    /// most specific first. `host` must be lowercase without a trailing dot.
    pub fn walk<'a>(&'a self, host: &'a str, mut f: impl FnMut(&'a str, bool, &'a Slots)) {
        let mut rest = host;
        let mut whole = true;
        loop {
            if let Some(s) = self.map.get(rest) {
                f(rest, whole, s);
            }
            match rest.find('.') {
                Some(i) => rest = &rest[i + 1..],
                None => break,
            }
            whole = false;
        }
    }

    /// First index per kind, most specific suffix first, honouring `*.` patterns.
    pub fn lookup<'a>(&'a self, host: &'a str) -> [Option<(u32, &'a str)>; 3] {
        let mut found: [Option<(u32, &str)>; 3] = [None; 3];
        self.walk(host, |suffix, whole, slots| {
            for (k, slot) in found.iter_mut().enumerate() {
                if slot.is_none() {
                    let hit = slots.apex(k).or(if whole { None } else { slots.sub(k) });
                    if let Some(i) = hit {
                        *slot = Some((i, suffix));
                    }
                }
            }
        });
        found
    }

    /// Every stored name and its slots, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Slots)> {
        self.map.iter().map(|(k, v)| (&**k, v))
    }

    /// Patterns stored.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no pattern is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
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
    }
}
