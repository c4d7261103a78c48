//! Converts third-party block lists (hosts files, plain domain lists, AdGuard and Adblock
//! Plus filters) into deny-list patterns. Pure: list text in, an [`Imported`] report out;
//! the caller reads the file and writes `deny.list`.
//!
//! Every name on a line that is neither blank nor a comment ends up in exactly one place:
//! [`Imported::entries`], [`Imported::skipped`] (with the reason), or one of the counts
//! `duplicates`, `shadowed` and `local_names`. A hosts line with several names can add to
//! several of them.
//!
//! A pattern covers a name and all its subdomains, so `0.0.0.0 ads.example.com`, which
//! blocks one exact name, imports as `ads.example.com` with its subdomains. For a block
//! list that is the intent, and it is what AdGuard Home does with `||ads.example.com^`.
//! Rules a pattern cannot express faithfully (paths, regular expressions, exceptions,
//! modifiers that narrow the rule) are skipped rather than widened into a broader block.

use std::net::IpAddr;

use rustc_hash::FxHashMap;

use super::pattern::{Form, Pattern};

/// How many meaningful lines auto-detection looks at.
const DETECT_LINES: usize = 200;

/// Longest [`Skipped::text`], in characters.
const MAX_TEXT: usize = 120;

/// Names hosts files map to local addresses. They are part of every hosts file and say
/// nothing about what to block.
const LOCAL_NAMES: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
    "0.0.0.0",
];

/// Separators of cosmetic and HTML-filtering rules (element hiding, CSS and scriptlet
/// injection, and their exceptions), which act inside a page, never on a name.
const COSMETIC: &[&str] = &[
    "##", "#@#", "#$#", "#@$#", "#?#", "#@?#", "#$?#", "#@$?#", "#%#", "#@%#", "$$", "$@$",
];

/// `$` modifiers that leave a rule a plain block of the host: `important` only raises its
/// priority, `match-case` means nothing for case-insensitive names, and `document` and
/// `all` block the whole site, which is what a DNS block does.
const SAFE_MODIFIERS: &[&str] = &["important", "match-case", "document", "doc", "all"];

/// Modifiers only a browser can evaluate (request types, first or third party, the page's
/// domain, content changes). Blocking the whole host would block more than such a rule
/// does: `||facebook.com^$third-party` is not meant to block facebook.com itself.
const BROWSER_MODIFIERS: &[&str] = &[
    "third-party",
    "3p",
    "first-party",
    "1p",
    "strict-third-party",
    "strict3p",
    "strict-first-party",
    "strict1p",
    "popup",
    "popunder",
    "domain",
    "from",
    "to",
    "method",
    "header",
    "app",
    "script",
    "image",
    "stylesheet",
    "css",
    "xmlhttprequest",
    "xhr",
    "subdocument",
    "frame",
    "media",
    "font",
    "object",
    "ping",
    "beacon",
    "websocket",
    "webrtc",
    "other",
    "inline-script",
    "inline-font",
    "redirect",
    "redirect-rule",
    "rewrite",
    "removeparam",
    "queryprune",
    "removeheader",
    "csp",
    "permissions",
    "replace",
    "cookie",
    "hls",
    "jsonprune",
    "xmlprune",
    "empty",
    "mp4",
    "network",
    "content",
    "elemhide",
    "ehide",
    "generichide",
    "ghide",
    "specifichide",
    "shide",
    "genericblock",
    "jsinject",
    "urlblock",
    "extension",
    "stealth",
    "cname",
];

/// The syntax of a block list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    /// Detect the format from the first 200 lines that are not blank or comments.
    Auto,
    /// Hosts file: an address, then one or more names (`0.0.0.0 ads.example.com`).
    Hosts,
    /// One name per line (`ads.example.com`, `*.example.com`, `.example.com`).
    Domains,
    /// AdGuard and Adblock Plus filter syntax (`||ads.example.com^`).
    Adblock,
}

impl ListFormat {
    /// Lowercase name, as the command line spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ListFormat::Auto => "auto",
            ListFormat::Hosts => "hosts",
            ListFormat::Domains => "domains",
            ListFormat::Adblock => "adblock",
        }
    }
}

/// What a block list turned into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The format the list was read as: the detected one when [`ListFormat::Auto`] was asked
    /// for (never `Auto` itself).
    pub format: ListFormat,
    /// The patterns to deny, in source order, without duplicates or shadowed entries.
    pub entries: Vec<ImportedEntry>,
    /// Lines, or names on a hosts line, that could not be imported, with the reason.
    pub skipped: Vec<Skipped>,
    /// Patterns dropped because the same pattern came earlier in the list.
    pub duplicates: usize,
    /// Patterns dropped because a broader pattern of the list already covers them
    /// (`ads.example.com` when `example.com` is there, wherever it is in the list).
    pub shadowed: usize,
    /// Local names (`localhost`, `broadcasthost`, `ip6-allnodes`...) ignored: every hosts
    /// file maps them and they are not something to block.
    pub local_names: usize,
}

/// One pattern to deny.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedEntry {
    /// 1-based line number in the source list.
    pub line: usize,
    /// The validated pattern.
    pub pattern: Pattern,
}

/// A line, or one name on a hosts line, that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// 1-based line number in the source list.
    pub line: usize,
    /// The line, trimmed and cut to 120 characters.
    pub text: String,
    /// Why it was skipped, lowercase.
    pub reason: String,
}

/// Converts `text` in `format` to deny-list patterns. A UTF-8 byte order mark at the start
/// is ignored; lines may end in LF or CRLF.
pub fn import_list(text: &str, format: ListFormat) -> Imported {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let syntax = match format {
        ListFormat::Auto => detect(text),
        ListFormat::Hosts => Syntax::Hosts,
        ListFormat::Domains => Syntax::Domains,
        ListFormat::Adblock => Syntax::Adblock,
    };
    let mut candidates = Vec::new();
    let mut skipped = Vec::new();
    let mut local_names = 0;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim();
        let parsed = match syntax {
            Syntax::Hosts => hosts_line(line),
            Syntax::Domains => domains_line(line),
            Syntax::Adblock => adblock_line(line),
        };
        let names = match parsed {
            Line::Nothing => continue,
            Line::Skip(reason) => {
                skipped.push(Skipped {
                    line: number,
                    text: excerpt(line),
                    reason,
                });
                continue;
            }
            Line::Names(names) => names,
        };
        for name in names.split_whitespace() {
            match classify(name) {
                Name::Entry(pattern) => candidates.push(ImportedEntry {
                    line: number,
                    pattern,
                }),
                Name::Local => local_names += 1,
                Name::Skip(reason) => skipped.push(Skipped {
                    line: number,
                    text: excerpt(line),
                    reason,
                }),
            }
        }
    }
    let reduced = reduce(candidates);
    Imported {
        format: syntax.format(),
        entries: reduced.entries,
        skipped,
        duplicates: reduced.duplicates,
        shadowed: reduced.shadowed,
        local_names,
    }
}

/// A concrete format: what [`ListFormat::Auto`] resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syntax {
    Hosts,
    Domains,
    Adblock,
}

impl Syntax {
    fn format(self) -> ListFormat {
        match self {
            Syntax::Hosts => ListFormat::Hosts,
            Syntax::Domains => ListFormat::Domains,
            Syntax::Adblock => ListFormat::Adblock,
        }
    }
}

/// What one source line holds.
#[derive(Debug, PartialEq, Eq)]
enum Line<'a> {
    /// Blank, a comment or a header.
    Nothing,
    /// Not importable, with the reason.
    Skip(String),
    /// Host names separated by whitespace (one, except on hosts lines), each still to be
    /// checked by [`classify`].
    Names(&'a str),
}

/// What one host name becomes.
#[derive(Debug, PartialEq, Eq)]
enum Name {
    Entry(Pattern),
    Local,
    Skip(String),
}

/// Adblock syntax wins as soon as one line shows it: such lists often hold plain names
/// too. Otherwise hosts syntax when most lines start with an address followed by a name.
fn detect(text: &str) -> Syntax {
    let mut hosts = 0usize;
    let mut other = 0usize;
    let meaningful = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && (!l.starts_with('#') || is_cosmetic(l)))
        .take(DETECT_LINES);
    for line in meaningful {
        // Checked first: a hosts line may carry a `##` comment that looks cosmetic.
        if is_hosts_line(line) {
            hosts += 1;
        } else if looks_adblock(line) {
            return Syntax::Adblock;
        } else {
            other += 1;
        }
    }
    if hosts > other {
        Syntax::Hosts
    } else {
        Syntax::Domains
    }
}

/// An address followed by at least one more word.
fn is_hosts_line(line: &str) -> bool {
    let mut words = line.split_whitespace();
    words.next().is_some_and(is_address) && words.next().is_some()
}

fn looks_adblock(line: &str) -> bool {
    let first = line.split_whitespace().next().unwrap_or(line);
    let header = line
        .get(..8)
        .is_some_and(|h| h.eq_ignore_ascii_case("[adblock") || h.eq_ignore_ascii_case("[adguard"))
        || line
            .get(..7)
            .is_some_and(|h| h.eq_ignore_ascii_case("[ublock"));
    header
        || line.starts_with('|')
        || line.starts_with("@@")
        || line.starts_with('!')
        || first.ends_with('^')
        || first.contains("^$")
        || first.contains("^|")
        || is_cosmetic(line)
}

/// The first word of a hosts line: an IPv4 or IPv6 address, the latter possibly with a
/// zone (`fe80::1%lo0`).
fn is_address(word: &str) -> bool {
    let addr = word.split_once('%').map_or(word, |(a, _)| a);
    addr.parse::<IpAddr>().is_ok()
}

/// A name that is an address literal, possibly bracketed or with a trailing dot.
fn is_ip_name(name: &str) -> bool {
    let bare = name.strip_suffix('.').unwrap_or(name);
    let bare = bare
        .strip_prefix('[')
        .and_then(|b| b.strip_suffix(']'))
        .unwrap_or(bare);
    bare.parse::<IpAddr>().is_ok()
}

/// The part of a line before a `#` comment.
fn before_comment(line: &str) -> &str {
    line.split_once('#')
        .map_or(line, |(before, _)| before)
        .trim()
}

fn hosts_line(line: &str) -> Line<'_> {
    let content = before_comment(line);
    if content.is_empty() {
        return Line::Nothing;
    }
    let (address, names) = content
        .split_once(char::is_whitespace)
        .unwrap_or((content, ""));
    if !is_address(address) {
        return Line::Skip("not a hosts line: the first word is not an ip address".into());
    }
    if names.trim().is_empty() {
        return Line::Skip("no host name after the address".into());
    }
    Line::Names(names)
}

fn domains_line(line: &str) -> Line<'_> {
    let content = before_comment(line);
    if content.is_empty() {
        return Line::Nothing;
    }
    if content.contains(char::is_whitespace) {
        return Line::Skip("more than one word on the line".into());
    }
    // `.example.com` in dnsmasq-style lists means the name and its subdomains.
    Line::Names(content.strip_prefix('.').unwrap_or(content))
}

fn adblock_line(line: &str) -> Line<'_> {
    if line.is_empty() || line.starts_with('!') {
        return Line::Nothing;
    }
    if line.starts_with('[') && line.ends_with(']') {
        // `[Adblock Plus 2.0]` and similar headers.
        return Line::Nothing;
    }
    // AdGuard Home accepts hosts syntax in filter lists, and some lists mix it in.
    if is_hosts_line(line) {
        return hosts_line(line);
    }
    if is_cosmetic(line) {
        return Line::Skip("cosmetic rule".into());
    }
    if line.starts_with('#') {
        return Line::Nothing;
    }
    if line.starts_with("@@") {
        return Line::Skip("exception rule: put it in allow.list".into());
    }
    if let Some(body) = line.strip_prefix('/') {
        // A regex may hold `$` itself, so this comes before the modifiers are split off.
        if body.ends_with('/') || body.contains("/$") {
            return Line::Skip("regular expression".into());
        }
        return Line::Skip(PATH_RULE.into());
    }
    if line.contains(char::is_whitespace) {
        return Line::Skip("not a rule: it contains spaces".into());
    }
    let (rule, modifiers) = match line.split_once('$') {
        Some((rule, modifiers)) => (rule, Some(modifiers)),
        None => (line, None),
    };
    let host = match rule_host(rule) {
        Ok(host) => host,
        Err(reason) => return Line::Skip(reason.into()),
    };
    if let Some(reason) = modifiers.and_then(modifier_problem) {
        return Line::Skip(reason);
    }
    Line::Names(host)
}

const PATH_RULE: &str = "path rule: DNS sees only host names";

/// The host name of the pattern part of a network rule (before any `$`), or why there is
/// none a DNS filter can use.
fn rule_host(rule: &str) -> Result<&str, &'static str> {
    if rule.contains("://") {
        return Err("url rule: DNS sees only host names");
    }
    let host = match rule.strip_prefix("||") {
        Some(host) => host,
        None if rule.starts_with('|') => return Err("url rule: DNS sees only host names"),
        None => rule,
    };
    let host = host.strip_suffix('|').unwrap_or(host);
    let host = host.strip_suffix('^').unwrap_or(host);
    if host.is_empty() {
        return Err("no host name in the rule");
    }
    if host.contains(['/', '^', '?', '=', '&']) {
        return Err(PATH_RULE);
    }
    if host.contains(':') && !is_ip_name(host) {
        return Err("port rule: DNS sees no ports");
    }
    Ok(host)
}

/// Why the `$` modifiers (`important,dnstype=AAAA`) keep the rule from being a plain host
/// block, if they do.
fn modifier_problem(modifiers: &str) -> Option<String> {
    if modifiers.trim().is_empty() {
        return Some("empty modifier list after $".into());
    }
    for modifier in modifiers.split(',') {
        let written = modifier
            .split_once('=')
            .map_or(modifier, |(name, _)| name)
            .trim()
            .to_ascii_lowercase();
        let negated = written.starts_with('~');
        let name = written.trim_start_matches('~');
        if !negated && SAFE_MODIFIERS.contains(&name) {
            continue;
        }
        let reason = match name {
            "badfilter" => "$badfilter rule: it turns another rule off".to_string(),
            "client" | "ctag" => format!("${name} limits the rule to some clients"),
            "dnstype" => "$dnstype limits the rule to some query types".to_string(),
            "denyallow" => "$denyallow exempts names a pattern cannot express".to_string(),
            "dnsrewrite" => "$dnsrewrite rewrites answers instead of blocking".to_string(),
            _ if SAFE_MODIFIERS.contains(&name) || BROWSER_MODIFIERS.contains(&name) => {
                format!("browser-only modifier ${written}: the rule does not block the whole host")
            }
            _ => format!("unknown modifier ${written}"),
        };
        return Some(reason);
    }
    None
}

/// A cosmetic or HTML-filtering rule: `example.com##.banner`, `##.banner`, `###ad-box`,
/// `#@#.ad`. A line that starts with `#` is otherwise a comment (`## section`, `####`,
/// `# see ## below`).
fn is_cosmetic(line: &str) -> bool {
    let comment = line.starts_with('#');
    COSMETIC.iter().any(|sep| match line.find(sep) {
        Some(0) => {
            let mut rest = line[sep.len()..].chars();
            match rest.next() {
                // `###id` hides an element by id; `####` and `### title` are comments.
                Some('#') => rest
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                Some(c) => !c.is_whitespace(),
                None => false,
            }
        }
        Some(_) => !comment,
        None => false,
    })
}

/// Checks one host name and turns it into a pattern.
fn classify(name: &str) -> Name {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if LOCAL_NAMES.iter().any(|l| l.eq_ignore_ascii_case(bare)) {
        return Name::Local;
    }
    let rest = bare.strip_prefix("*.").unwrap_or(bare);
    if is_ip_name(rest) {
        return Name::Skip("an ip address, not a host name".into());
    }
    if rest.contains('*') {
        return Name::Skip("wildcard inside a name".into());
    }
    if rest.starts_with('=') {
        return Name::Skip("not a host name".into());
    }
    if rest.contains('/') {
        return Name::Skip(PATH_RULE.into());
    }
    match Pattern::parse(name) {
        Err(message) => Name::Skip(message),
        // A bare top-level domain would block a whole registry (`com`, `ai`) and shadow
        // every other entry; on hosts lines it is a machine name of the list author's LAN.
        Ok(p) if !p.name.contains('.') => Name::Skip(
            "single-label name: a top-level domain or a local machine; add it by hand if meant"
                .into(),
        ),
        Ok(p) => Name::Entry(p),
    }
}

/// The line for a [`Skipped`], cut to [`MAX_TEXT`] characters.
fn excerpt(line: &str) -> String {
    if line.char_indices().nth(MAX_TEXT).is_none() {
        return line.to_string();
    }
    let cut = line
        .char_indices()
        .nth(MAX_TEXT - 1)
        .map_or(line.len(), |(i, _)| i);
    format!("{}…", &line[..cut])
}

/// The forms of one name present in the list.
#[derive(Debug, Default, Clone, Copy)]
struct Forms {
    /// `example.com`: the name and its subdomains.
    apex: bool,
    /// `*.example.com`: subdomains only.
    sub: bool,
}

/// The candidates without duplicates and shadowed entries.
struct Reduced {
    entries: Vec<ImportedEntry>,
    duplicates: usize,
    shadowed: usize,
}

/// Drops repeated patterns (the first stays) and patterns that a broader one of the same
/// list covers. One hash lookup per label of each pattern: linear in the list size.
fn reduce(candidates: Vec<ImportedEntry>) -> Reduced {
    let mut keep = vec![false; candidates.len()];
    let mut duplicates = 0;
    let mut shadowed = 0;
    {
        let mut forms: FxHashMap<&str, Forms> = FxHashMap::default();
        forms.reserve(candidates.len());
        for (kept, c) in keep.iter_mut().zip(&candidates) {
            let f = forms.entry(&c.pattern.name).or_default();
            // Imported names are plain or `*.` (parse skips `*` inside and `=`).
            let seen = if c.pattern.form == Form::Subdomains {
                &mut f.sub
            } else {
                &mut f.apex
            };
            if *seen {
                duplicates += 1;
            } else {
                *seen = true;
                *kept = true;
            }
        }
        for (kept, c) in keep.iter_mut().zip(&candidates) {
            if *kept && covered(&forms, &c.pattern) {
                *kept = false;
                shadowed += 1;
            }
        }
    }
    let entries = candidates
        .into_iter()
        .zip(keep)
        .filter_map(|(c, kept)| kept.then_some(c))
        .collect();
    Reduced {
        entries,
        duplicates,
        shadowed,
    }
}

/// True when another pattern in `forms` matches everything `p` matches: `example.com`
/// covers `*.example.com`, and either form of a parent covers every name below it.
fn covered(forms: &FxHashMap<&str, Forms>, p: &Pattern) -> bool {
    if p.form == Form::Subdomains && forms.get(&*p.name).is_some_and(|f| f.apex) {
        return true;
    }
    let mut rest: &str = &p.name;
    while let Some(dot) = rest.find('.') {
        rest = &rest[dot + 1..];
        if forms.get(rest).is_some_and(|f| f.apex || f.sub) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests;
