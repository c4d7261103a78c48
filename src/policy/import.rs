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

use super::pattern::Pattern;

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
            let seen = if c.pattern.subdomains_only {
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
    if p.subdomains_only && forms.get(&*p.name).is_some_and(|f| f.apex) {
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
mod tests {
    use super::*;

    /// `(line, pattern as written)` for each entry.
    fn shown(imported: &Imported) -> Vec<(usize, String)> {
        imported
            .entries
            .iter()
            .map(|e| (e.line, e.pattern.display()))
            .collect()
    }

    /// `(line, reason)` for each skipped line or name.
    fn reasons(imported: &Imported) -> Vec<(usize, &str)> {
        imported
            .skipped
            .iter()
            .map(|s| (s.line, s.reason.as_str()))
            .collect()
    }

    fn owned(pairs: &[(usize, &str)]) -> Vec<(usize, String)> {
        pairs.iter().map(|(l, p)| (*l, p.to_string())).collect()
    }

    /// The one pattern `rule` imports to in adblock format, or the reason it is skipped.
    fn adblock_one(rule: &str) -> Result<String, String> {
        let imported = import_list(rule, ListFormat::Adblock);
        match (imported.entries.as_slice(), imported.skipped.as_slice()) {
            ([entry], []) => Ok(entry.pattern.display()),
            ([], [skipped]) => Err(skipped.reason.clone()),
            _ => Err(format!("unexpected result for {rule:?}: {imported:?}")),
        }
    }

    /// In the shape of the StevenBlack unified hosts file.
    const STEVENBLACK: &str = "\
# Title: StevenBlack/hosts
#
# This hosts file is a merged collection of hosts from reputable sources,
# with a dash of crowd sourcing via GitHub
#
# Date: 14 March 2025 17:10:32 (UTC)
# Number of unique domains: 4
#
# ===============================================================

127.0.0.1 localhost
127.0.0.1 localhost.localdomain
127.0.0.1 local
255.255.255.255 broadcasthost
::1 localhost
::1 ip6-localhost
::1 ip6-loopback
fe80::1%lo0 localhost
ff00::0 ip6-localnet
ff00::0 ip6-mcastprefix
ff02::1 ip6-allnodes
ff02::2 ip6-allrouters
ff02::3 ip6-allhosts
0.0.0.0 0.0.0.0

# Custom host records are listed here.


# End of custom host records.
# Start StevenBlack

#=====================================
# Title: Hosts contributed by Steven Black
# http://stevenblack.com

0.0.0.0 ck.getcookiestxt.com
0.0.0.0 eu1.clevertap-prod.com
0.0.0.0 wizhumpgyros.com
0.0.0.0 coccyxwickimp.com
";

    /// In the shape of the AdGuard DNS filter.
    const ADGUARD_DNS: &str = "\
! Title: AdGuard DNS filter
! Description: Filter composed of several other filters (AdGuard Base filter, Social media filter, Tracking Protection filter, Mobile Ads filter, EasyList and EasyPrivacy) and simplified specifically to be better compatible with DNS-level ad blocking.
! Homepage: https://github.com/AdguardTeam/AdGuardSDNSFilter
! License: https://github.com/AdguardTeam/AdGuardSDNSFilter/blob/master/LICENSE
! Last modified: 2025-03-14T10:22:41.316Z
!
! Compiled by @adguard/hostlist-compiler v1.0.26
!
||0020.pl^
||00404850.xyz^
||*.ad-delivery.net^
@@||cdn.adsafeprotected.com^|
||adservice.google.com^$important
||ad.doubleclick.net^
||googleadservices.com^
||doubleclick.net^
||metrics.example.org^$dnstype=AAAA
";

    /// A plain domain list in the shape of the ones Pi-hole and dnsmasq users share.
    const PLAIN: &str = "\
# AI assistants this clinic does not allow
# one domain per line

chatgpt.com
claude.ai
Gemini.Google.com.
*.perplexity.ai
.character.ai
poe.com # Quora's
";

    #[test]
    fn imports_a_stevenblack_hosts_file() {
        let imported = import_list(STEVENBLACK, ListFormat::Hosts);
        assert_eq!(imported.format, ListFormat::Hosts);
        assert_eq!(
            shown(&imported),
            owned(&[
                (36, "ck.getcookiestxt.com"),
                (37, "eu1.clevertap-prod.com"),
                (38, "wizhumpgyros.com"),
                (39, "coccyxwickimp.com"),
            ])
        );
        assert_eq!(imported.local_names, 14);
        assert!(imported.skipped.is_empty(), "{:?}", imported.skipped);
        assert_eq!((imported.duplicates, imported.shadowed), (0, 0));
    }

    #[test]
    fn hosts_lines_with_several_names_and_a_comment() {
        let imported = import_list(
            "127.0.0.1 a.example.com b.example.net  # trackers\n0.0.0.0 c.example.org#note\n",
            ListFormat::Hosts,
        );
        assert_eq!(
            shown(&imported),
            owned(&[
                (1, "a.example.com"),
                (1, "b.example.net"),
                (2, "c.example.org")
            ])
        );
    }

    #[test]
    fn hosts_separators_may_be_tabs() {
        let imported = import_list(
            "0.0.0.0\tads.example.com\n0.0.0.0 \t  tracker.example.net\t\tpixel.example.org\t\n",
            ListFormat::Hosts,
        );
        assert_eq!(
            shown(&imported),
            owned(&[
                (1, "ads.example.com"),
                (2, "tracker.example.net"),
                (2, "pixel.example.org"),
            ])
        );
        assert!(imported.skipped.is_empty());
    }

    #[test]
    fn hosts_addresses_may_be_ipv6() {
        let imported = import_list(
            ":: a.example.com\n::1 b.example.com\n2001:db8::1 c.example.com\nfe80::1%eth0 d.example.com\n",
            ListFormat::Hosts,
        );
        assert_eq!(
            shown(&imported),
            owned(&[
                (1, "a.example.com"),
                (2, "b.example.com"),
                (3, "c.example.com"),
                (4, "d.example.com"),
            ])
        );
    }

    #[test]
    fn hosts_lines_that_cannot_be_imported_say_why() {
        let text = "\
ads.example.com
0.0.0.0
0.0.0.0 1.2.3.4 ok.example.com
0.0.0.0 bad!name.example.com
0.0.0.0 *.wild.example.com
0.0.0.0 router
";
        let imported = import_list(text, ListFormat::Hosts);
        assert_eq!(
            shown(&imported),
            owned(&[(3, "ok.example.com"), (5, "*.wild.example.com")])
        );
        let r = reasons(&imported);
        assert_eq!(r.len(), 5, "{r:?}");
        assert_eq!(
            r[0],
            (1, "not a hosts line: the first word is not an ip address")
        );
        assert_eq!(r[1], (2, "no host name after the address"));
        assert_eq!(r[2], (3, "an ip address, not a host name"));
        assert_eq!(imported.skipped[2].text, "0.0.0.0 1.2.3.4 ok.example.com");
        assert_eq!(r[3].0, 4);
        assert!(r[3].1.contains("invalid character '!'"), "{}", r[3].1);
        // A single label on a hosts line is a machine on the list author's network.
        assert_eq!(r[4].0, 6);
        assert!(r[4].1.starts_with("single-label name"), "{}", r[4].1);
    }

    #[test]
    fn local_names_are_counted_not_skipped_in_every_format() {
        let all = LOCAL_NAMES.join(" ");
        let imported = import_list(&format!("127.0.0.1 {all}\n"), ListFormat::Hosts);
        assert_eq!(imported.local_names, LOCAL_NAMES.len());
        assert!(imported.entries.is_empty() && imported.skipped.is_empty());

        let imported = import_list("LOCALHOST\nlocalhost.localdomain.\n", ListFormat::Domains);
        assert_eq!(imported.local_names, 2);
        assert!(imported.skipped.is_empty());

        let imported = import_list("||localhost^\n", ListFormat::Adblock);
        assert_eq!(imported.local_names, 1);
        assert!(imported.skipped.is_empty());
    }

    #[test]
    fn imports_a_plain_domain_list() {
        let imported = import_list(PLAIN, ListFormat::Domains);
        assert_eq!(imported.format, ListFormat::Domains);
        assert_eq!(
            shown(&imported),
            owned(&[
                (4, "chatgpt.com"),
                (5, "claude.ai"),
                (6, "gemini.google.com"),
                (7, "*.perplexity.ai"),
                (8, "character.ai"),
                (9, "poe.com"),
            ])
        );
        assert!(imported.skipped.is_empty(), "{:?}", imported.skipped);
    }

    #[test]
    fn domain_lists_skip_addresses_and_extra_words() {
        let text = "1.2.3.4\n2001:db8::1\n[2001:db8::2]\n*.10.0.0.1\n0.0.0.0 ads.example.com\nads.example.com extra\n";
        let imported = import_list(text, ListFormat::Domains);
        assert!(imported.entries.is_empty());
        assert_eq!(
            reasons(&imported),
            vec![
                (1, "an ip address, not a host name"),
                (2, "an ip address, not a host name"),
                (3, "an ip address, not a host name"),
                (4, "an ip address, not a host name"),
                (5, "more than one word on the line"),
                (6, "more than one word on the line"),
            ]
        );
    }

    #[test]
    fn domain_lists_skip_wildcards_inside_names_and_urls() {
        let imported = import_list(
            "ad*.example.com\n*example.com\nhttps://example.com/path\n",
            ListFormat::Domains,
        );
        assert!(imported.entries.is_empty());
        assert_eq!(
            reasons(&imported),
            vec![
                (1, "wildcard inside a name"),
                (2, "wildcard inside a name"),
                (3, PATH_RULE),
            ]
        );
    }

    #[test]
    fn imports_an_adguard_dns_filter() {
        let imported = import_list(ADGUARD_DNS, ListFormat::Adblock);
        assert_eq!(imported.format, ListFormat::Adblock);
        assert_eq!(
            shown(&imported),
            owned(&[
                (9, "0020.pl"),
                (10, "00404850.xyz"),
                (11, "*.ad-delivery.net"),
                (13, "adservice.google.com"),
                (15, "googleadservices.com"),
                (16, "doubleclick.net"),
            ])
        );
        // `ad.doubleclick.net` (line 14) is covered by `doubleclick.net` (line 16).
        assert_eq!(imported.shadowed, 1);
        assert_eq!(
            reasons(&imported),
            vec![
                (12, "exception rule: put it in allow.list"),
                (17, "$dnstype limits the rule to some query types"),
            ]
        );
    }

    #[test]
    fn adblock_host_rules() {
        for (rule, want) in [
            ("||example.com^", "example.com"),
            ("||Example.COM^", "example.com"),
            ("||example.com", "example.com"),
            ("||example.com^|", "example.com"),
            ("||example.com.^", "example.com"),
            ("||*.example.com^", "*.example.com"),
            ("example.com^", "example.com"),
            ("example.com", "example.com"),
            ("*.example.com^", "*.example.com"),
            ("||xn--chtgpt-wxa.com^", "xn--chtgpt-wxa.com"),
        ] {
            assert_eq!(adblock_one(rule), Ok(want.to_string()), "{rule}");
        }
    }

    #[test]
    fn adblock_modifiers_that_keep_a_host_block() {
        for rule in [
            "||example.com^$important",
            "||example.com^$IMPORTANT",
            "||example.com^$all",
            "||example.com^$document",
            "||example.com^$doc,important",
            "||example.com^$match-case",
        ] {
            assert_eq!(adblock_one(rule), Ok("example.com".to_string()), "{rule}");
        }
    }

    #[test]
    fn adblock_modifiers_that_narrow_the_rule_are_skipped() {
        for (rule, want) in [
            (
                "||example.com^$badfilter",
                "$badfilter rule: it turns another rule off",
            ),
            (
                "||example.com^$client=192.168.1.5",
                "$client limits the rule to some clients",
            ),
            (
                "||example.com^$ctag=device_phone",
                "$ctag limits the rule to some clients",
            ),
            (
                "||example.com^$dnstype=AAAA",
                "$dnstype limits the rule to some query types",
            ),
            (
                "||com^$denyallow=example.com",
                "$denyallow exempts names a pattern cannot express",
            ),
            (
                "||example.com^$dnsrewrite=NOERROR;A;1.2.3.4",
                "$dnsrewrite rewrites answers instead of blocking",
            ),
            (
                "||example.com^$important,dnsrewrite",
                "$dnsrewrite rewrites answers instead of blocking",
            ),
            (
                "||example.com^$script",
                "browser-only modifier $script: the rule does not block the whole host",
            ),
            (
                "||example.com^$third-party",
                "browser-only modifier $third-party: the rule does not block the whole host",
            ),
            (
                "||example.com^$3p",
                "browser-only modifier $3p: the rule does not block the whole host",
            ),
            (
                "||example.com^$~third-party",
                "browser-only modifier $~third-party: the rule does not block the whole host",
            ),
            (
                "||example.com^$popup",
                "browser-only modifier $popup: the rule does not block the whole host",
            ),
            (
                "||example.com^$domain=a.example|b.example",
                "browser-only modifier $domain: the rule does not block the whole host",
            ),
            (
                "||example.com^$~document",
                "browser-only modifier $~document: the rule does not block the whole host",
            ),
            ("||example.com^$frobnicate", "unknown modifier $frobnicate"),
            ("||example.com^$", "empty modifier list after $"),
            ("$script,domain=example.com", "no host name in the rule"),
        ] {
            assert_eq!(adblock_one(rule), Err(want.to_string()), "{rule}");
        }
    }

    #[test]
    fn adblock_exception_rules_belong_in_the_allow_list() {
        for rule in [
            "@@||example.com^",
            "@@||example.com^$important",
            "@@example.com",
        ] {
            assert_eq!(
                adblock_one(rule),
                Err("exception rule: put it in allow.list".to_string()),
                "{rule}"
            );
        }
    }

    #[test]
    fn adblock_cosmetic_rules_are_skipped_and_comments_ignored() {
        for rule in [
            "##.ad-banner",
            "###sponsored",
            "example.com##.ad-banner",
            "example.com#@#.ad-banner",
            "example.com#$#body { padding: 0 }",
            "example.com#?#div:has(> .ad)",
            "example.com#%#//scriptlet('abort-on-property-read', 'ads')",
            "example.com$$script[tag-content=\"ads\"]",
        ] {
            assert_eq!(
                adblock_one(rule),
                Err("cosmetic rule".to_string()),
                "{rule}"
            );
        }
        let imported = import_list(
            "[Adblock Plus 2.0]\n! comment\n# comment\n## section\n### Section\n####\n# see ## below\n!\n\n",
            ListFormat::Adblock,
        );
        assert!(imported.entries.is_empty() && imported.skipped.is_empty());
    }

    #[test]
    fn adblock_paths_urls_and_regexes_are_skipped() {
        for (rule, want) in [
            ("||example.com/ads/banner.js", PATH_RULE),
            ("||example.com^ads", PATH_RULE),
            ("||example.com^*", PATH_RULE),
            ("||example.com?utm_source=x", PATH_RULE),
            ("/ads/banner.gif", PATH_RULE),
            (
                "|https://example.com/path",
                "url rule: DNS sees only host names",
            ),
            (
                "|https://example.com^",
                "url rule: DNS sees only host names",
            ),
            ("://ads.", "url rule: DNS sees only host names"),
            ("|example.com^", "url rule: DNS sees only host names"),
            ("/^ads?[0-9]+\\.example\\.com$/", "regular expression"),
            ("/banner\\d+/$important", "regular expression"),
            ("||example.com:8080^", "port rule: DNS sees no ports"),
            ("||^", "no host name in the rule"),
            ("||ad*.example.com^", "wildcard inside a name"),
            ("||example.*^", "wildcard inside a name"),
            ("||1.2.3.4^", "an ip address, not a host name"),
            ("||example.com^ # note", "not a rule: it contains spaces"),
        ] {
            assert_eq!(adblock_one(rule), Err(want.to_string()), "{rule}");
        }
    }

    #[test]
    fn adblock_lists_may_mix_in_hosts_lines() {
        let imported = import_list(
            "||a.example.com^\n0.0.0.0 b.example.com c.example.com\n127.0.0.1 localhost\n",
            ListFormat::Adblock,
        );
        assert_eq!(
            shown(&imported),
            owned(&[
                (1, "a.example.com"),
                (2, "b.example.com"),
                (2, "c.example.com")
            ])
        );
        assert_eq!(imported.local_names, 1);
    }

    #[test]
    fn auto_detects_each_format() {
        assert_eq!(
            import_list(STEVENBLACK, ListFormat::Auto).format,
            ListFormat::Hosts
        );
        assert_eq!(
            import_list(ADGUARD_DNS, ListFormat::Auto).format,
            ListFormat::Adblock
        );
        assert_eq!(
            import_list(PLAIN, ListFormat::Auto).format,
            ListFormat::Domains
        );
        let cases = [
            ("[Adblock Plus 2.0]\nexample.com\n", ListFormat::Adblock),
            ("[AdGuard]\nexample.com\n", ListFormat::Adblock),
            (
                "example.com\nexample.net\n||example.org^\n",
                ListFormat::Adblock,
            ),
            ("example.com^\n", ListFormat::Adblock),
            ("@@||example.com^\n", ListFormat::Adblock),
            ("! title\nexample.com\n", ListFormat::Adblock),
            ("example.com##.ad\n", ListFormat::Adblock),
            ("##.ad\n", ListFormat::Adblock),
            ("# title\n## section\nexample.com\n", ListFormat::Domains),
            ("0.0.0.0 a.example.com ## not cosmetic\n", ListFormat::Hosts),
            ("::1 a.example.com\n", ListFormat::Hosts),
            ("1.2.3.4\n5.6.7.8\n", ListFormat::Domains),
            ("", ListFormat::Domains),
        ];
        for (text, want) in cases {
            assert_eq!(import_list(text, ListFormat::Auto).format, want, "{text:?}");
        }
    }

    #[test]
    fn auto_detection_looks_at_the_first_200_meaningful_lines() {
        let mut text = "# header\n\n".repeat(300);
        text.push_str(&"0.0.0.0 a.example.com\n".repeat(DETECT_LINES));
        text.push_str("||example.org^\n");
        let imported = import_list(&text, ListFormat::Auto);
        assert_eq!(imported.format, ListFormat::Hosts);
        // Read as hosts, the adblock line is one a hosts file cannot hold.
        assert_eq!(
            reasons(&imported),
            vec![(
                601 + DETECT_LINES,
                "not a hosts line: the first word is not an ip address"
            )]
        );
    }

    #[test]
    fn an_explicit_format_is_not_second_guessed() {
        let imported = import_list(STEVENBLACK, ListFormat::Domains);
        assert_eq!(imported.format, ListFormat::Domains);
        assert!(imported.entries.is_empty());
        assert!(imported
            .skipped
            .iter()
            .all(|s| s.reason == "more than one word on the line"));
    }

    #[test]
    fn crlf_line_endings() {
        let hosts = import_list(
            "# hosts\r\n0.0.0.0 a.example.com\r\n0.0.0.0 b.example.com\r\n",
            ListFormat::Auto,
        );
        assert_eq!(hosts.format, ListFormat::Hosts);
        assert_eq!(
            shown(&hosts),
            owned(&[(2, "a.example.com"), (3, "b.example.com")])
        );
        let domains = import_list("a.example.com\r\n\r\nb.example.com\r\n", ListFormat::Auto);
        assert_eq!(domains.format, ListFormat::Domains);
        assert_eq!(
            shown(&domains),
            owned(&[(1, "a.example.com"), (3, "b.example.com")])
        );
        let adblock = import_list(
            "! list\r\n||a.example.com^\r\n||b.example.com^$important\r\n@@||c.example.com^\r\n",
            ListFormat::Auto,
        );
        assert_eq!(adblock.format, ListFormat::Adblock);
        assert_eq!(
            shown(&adblock),
            owned(&[(2, "a.example.com"), (3, "b.example.com")])
        );
        assert_eq!(adblock.skipped[0].text, "@@||c.example.com^");
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        let domains = import_list("\u{feff}a.example.com\nb.example.com\n", ListFormat::Auto);
        assert_eq!(
            shown(&domains),
            owned(&[(1, "a.example.com"), (2, "b.example.com")])
        );
        assert!(domains.skipped.is_empty());
        let hosts = import_list("\u{feff}0.0.0.0 a.example.com\r\n", ListFormat::Auto);
        assert_eq!(hosts.format, ListFormat::Hosts);
        assert_eq!(shown(&hosts), owned(&[(1, "a.example.com")]));
        let adblock = import_list(
            "\u{feff}[Adblock Plus 2.0]\r\n||a.example.com^\r\n",
            ListFormat::Auto,
        );
        assert_eq!(adblock.format, ListFormat::Adblock);
        assert_eq!(shown(&adblock), owned(&[(2, "a.example.com")]));
    }

    #[test]
    fn line_numbers_count_blank_and_comment_lines() {
        let text = "\n# one\n\n  a.example.com  \n\n# two\nbad name\n\nb.example.com\n";
        let imported = import_list(text, ListFormat::Domains);
        assert_eq!(
            shown(&imported),
            owned(&[(4, "a.example.com"), (9, "b.example.com")])
        );
        assert_eq!(
            reasons(&imported),
            vec![(7, "more than one word on the line")]
        );
        assert_eq!(imported.skipped[0].text, "bad name");
    }

    #[test]
    fn duplicates_keep_the_first() {
        let text = "a.example.com\nA.Example.com.\n*.b.example.com\nb.example.net\n*.b.example.com\na.example.com\n";
        let imported = import_list(text, ListFormat::Domains);
        assert_eq!(
            shown(&imported),
            owned(&[
                (1, "a.example.com"),
                (3, "*.b.example.com"),
                (4, "b.example.net")
            ])
        );
        assert_eq!((imported.duplicates, imported.shadowed), (3, 0));
    }

    #[test]
    fn broader_entries_shadow_narrower_ones_in_any_order() {
        let text = "\
ads.example.com
x.y.example.com
example.com
*.example.com
*.cdn.example.net
a.cdn.example.net
*.b.cdn.example.net
cdn.example.net
notexample.com
example.org
*.sub.example.org
*.other.example
other.example
";
        let imported = import_list(text, ListFormat::Domains);
        assert_eq!(
            shown(&imported),
            owned(&[
                (3, "example.com"),
                (8, "cdn.example.net"),
                (9, "notexample.com"),
                (10, "example.org"),
                (13, "other.example"),
            ])
        );
        assert_eq!(imported.shadowed, 8);
        assert_eq!(imported.duplicates, 0);
    }

    #[test]
    fn a_subdomains_only_entry_does_not_cover_its_apex() {
        let imported = import_list(
            "*.example.com\nexample.com.evil\na.example.com\n",
            ListFormat::Domains,
        );
        assert_eq!(
            shown(&imported),
            owned(&[(1, "*.example.com"), (2, "example.com.evil")])
        );
        assert_eq!(imported.shadowed, 1);
        let imported = import_list("*.example.com\nexample.com\n", ListFormat::Domains);
        assert_eq!(shown(&imported), owned(&[(2, "example.com")]));
        assert_eq!(imported.shadowed, 1);
    }

    #[test]
    fn international_names_become_punycode() {
        for (text, format) in [
            ("bücher.example\n", ListFormat::Domains),
            ("0.0.0.0 bücher.example\n", ListFormat::Hosts),
            ("||bücher.example^\n", ListFormat::Adblock),
        ] {
            let imported = import_list(text, format);
            assert_eq!(
                shown(&imported),
                owned(&[(1, "xn--bcher-kva.example")]),
                "{text}"
            );
        }
        let imported = import_list("a\u{e000}b.example\n", ListFormat::Domains);
        assert_eq!(imported.skipped.len(), 1);
        assert_eq!(
            Some(imported.skipped[0].reason.clone()),
            Pattern::parse("a\u{e000}b.example").err()
        );
    }

    #[test]
    fn single_label_names_are_not_imported() {
        for (text, format) in [
            ("com\n", ListFormat::Domains),
            ("*.ai\n", ListFormat::Domains),
            ("||zip^\n", ListFormat::Adblock),
            ("0.0.0.0 nas\n", ListFormat::Hosts),
        ] {
            let imported = import_list(text, format);
            assert!(imported.entries.is_empty(), "{text}");
            assert!(
                imported.skipped[0].reason.starts_with("single-label name"),
                "{text}"
            );
        }
    }

    #[test]
    fn invalid_names_carry_the_pattern_message() {
        let imported = import_list("a..example.com\n-\n", ListFormat::Domains);
        assert_eq!(
            Some(imported.skipped[0].reason.clone()),
            Pattern::parse("a..example.com").err()
        );
        assert_eq!(imported.skipped[1].line, 2);
        let long = format!("{}.example.com", "a".repeat(64));
        let imported = import_list(&long, ListFormat::Domains);
        assert_eq!(
            Some(imported.skipped[0].reason.clone()),
            Pattern::parse(&long).err()
        );
    }

    #[test]
    fn skipped_text_is_cut_to_120_characters() {
        let line = format!("||example.com/{}", "é".repeat(300));
        let imported = import_list(&line, ListFormat::Adblock);
        let text = &imported.skipped[0].text;
        assert_eq!(text.chars().count(), MAX_TEXT);
        assert!(text.starts_with("||example.com/é") && text.ends_with('…'));
        let exact = format!("||example.com/{}", "x".repeat(MAX_TEXT - 14));
        let imported = import_list(&exact, ListFormat::Adblock);
        assert_eq!(imported.skipped[0].text, exact);
    }

    #[test]
    fn every_name_is_accounted_for() {
        let text = format!("{STEVENBLACK}{ADGUARD_DNS}{PLAIN}0.0.0.0 ck.getcookiestxt.com\n");
        let imported = import_list(&text, ListFormat::Adblock);
        // Hosts, plain and adblock lines in one list: 4 + 14 local names on hosts lines,
        // 1 repeat, 9 adblock rules and 6 plain names.
        let names = 4 + 14 + 1 + 9 + 6;
        assert_eq!(
            imported.entries.len()
                + imported.skipped.len()
                + imported.duplicates
                + imported.shadowed
                + imported.local_names,
            names
        );
        assert_eq!(imported.duplicates, 1);
    }

    #[test]
    fn a_200000_line_list_imports() {
        use std::fmt::Write;

        // 1,000 parent domains, 200 subdomains each (shadowed by the parent that ends the
        // list), every 50th subdomain repeated, and comment lines between.
        let mut text = String::from("# synthetic\n");
        let mut lines = 1;
        let mut duplicates = 0;
        'outer: for parent in 0..1_000 {
            for child in 0..200 {
                if lines >= 199_000 {
                    break 'outer;
                }
                let _ = writeln!(text, "0.0.0.0 host{child}.ads{parent}.example");
                lines += 1;
                if child % 50 == 0 {
                    let _ = writeln!(text, "0.0.0.0\thost{child}.ads{parent}.example # again");
                    lines += 1;
                    duplicates += 1;
                }
            }
        }
        let children = lines - 1 - duplicates;
        for parent in 0..1_000 {
            let _ = writeln!(text, "0.0.0.0 ads{parent}.example");
            lines += 1;
        }
        assert_eq!(lines, 200_000);

        let imported = import_list(&text, ListFormat::Auto);
        assert_eq!(imported.format, ListFormat::Hosts);
        assert_eq!(imported.entries.len(), 1_000);
        assert_eq!(imported.duplicates, duplicates);
        assert_eq!(imported.shadowed, children);
        assert!(imported.skipped.is_empty());
        assert_eq!(imported.entries[0].pattern.display(), "ads0.example");
        assert_eq!(imported.entries[0].line, 200_000 - 999);
    }

    #[test]
    fn formats_have_command_line_names() {
        use clap::ValueEnum;

        for format in ListFormat::value_variants() {
            let parsed = ListFormat::from_str(format.as_str(), true);
            assert_eq!(parsed, Ok(*format));
        }
    }
}
