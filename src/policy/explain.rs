//! Explaining: every rule consulted for a host, which one decided and why, with the
//! service's healthcare attributes, for `aiwarden rules explain`.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use super::pattern::{Pattern, SuffixMap};
use super::{groups, Baa, Client, Mode, RuleSet, Tier, TrainsOnData, Verdict, ALLOW, DENY};

impl RuleSet {
    /// Every rule consulted for `host` asked by `client`, in order, and which one decided.
    /// Accepts what an admin types: any case, a trailing dot, Unicode names.
    pub fn explain(&self, host: &str, client: &Client<'_>, mode: Mode) -> Explanation {
        let trimmed = host.trim().trim_end_matches('.');
        let normalised = Pattern::parse(trimmed)
            .map(|p| p.name.to_string())
            .unwrap_or_else(|_| trimmed.to_ascii_lowercase());
        let membership = groups::classify(&self.group_defs, client);
        let group = membership.as_ref().map(|(i, _)| *i);
        let mut consulted = Vec::new();
        let kinds = ["allow", "deny", "catalog"];
        let mut walk = |map: &SuffixMap, scope: Option<usize>, applies_scope: bool| {
            map.walk(&normalised, |hit| {
                let whole = hit.whole();
                for (k, kind) in kinds.iter().enumerate() {
                    // Every form on this name, whether it applies to the host or not
                    // (a `*.` name on its own apex, an `=` name under a longer host).
                    let globs = hit.globs().iter().filter_map(|g| {
                        let applies = hit.left.is_some_and(|l| g.label.matches(l));
                        let text = format!("{}*{}.{}", g.label.prefix, g.label.suffix, hit.suffix);
                        g.get(k).filter(|_| applies).map(|i| (i, text, true))
                    });
                    let forms = [
                        (hit.slots.exact(k), format!("={}", hit.suffix), whole),
                        (hit.slots.apex(k), hit.suffix.to_string(), true),
                        (hit.slots.sub(k), format!("*.{}", hit.suffix), !whole),
                    ];
                    let forms = forms
                        .into_iter()
                        .filter_map(|(i, text, applies)| i.map(|i| (i, text, applies)));
                    for (i, mut pattern, applies) in globs.chain(forms) {
                        let rule = match (k, scope) {
                            (ALLOW, None) => self.line_ref(&self.allow[i as usize]),
                            (DENY, None) => self.line_ref(&self.deny[i as usize]),
                            (ALLOW, Some(g)) => self.line_ref(&self.groups[g].allow[i as usize]),
                            (DENY, Some(g)) => self.line_ref(&self.groups[g].deny[i as usize]),
                            _ => self.service_ref(&self.catalog[i as usize].service),
                        };
                        if let Some(g) = scope {
                            pattern = format!("{pattern} @{}", self.groups[g].name);
                        }
                        consulted.push(Step {
                            kind,
                            pattern,
                            rule: rule.to_string(),
                            applies: applies && applies_scope,
                        });
                    }
                }
            });
        };
        if let Some(g) = group {
            walk(&self.groups[g].map, Some(g), true);
        }
        walk(&self.map, None, true);
        for g in 0..self.groups.len() {
            if Some(g) != group {
                walk(&self.groups[g].map, Some(g), false);
            }
        }
        let d = self.judge_in(&normalised, group, mode);
        let unicode = normalised
            .split('.')
            .any(|l| l.starts_with("xn--"))
            .then(|| idna::domain_to_unicode(&normalised))
            .and_then(|(u, ok)| ok.is_ok().then_some(u))
            .filter(|u| *u != normalised);
        Explanation {
            host: normalised,
            unicode,
            client: client.addr(),
            group: group.map(|g| self.group_defs[g].name.clone()),
            membership: membership.map(|(_, m)| m.to_string()),
            mode,
            service: d.service.as_ref().map(|s| s.id.to_string()),
            service_name: d.service.as_ref().map(|s| s.name.to_string()),
            category: d.service.as_ref().map(|s| s.category.clone()),
            tier: d.tier,
            verdict: d.verdict,
            rule: d.rule.as_ref().map(|r| r.to_string()),
            reason: d.reason,
            baa: d.service.as_ref().and_then(|s| s.baa),
            trains_on_data: d.service.as_ref().and_then(|s| s.trains_on_data),
            data_residency: d.service.as_ref().and_then(|s| s.data_residency.clone()),
            notes: d.service.as_ref().and_then(|s| s.notes.clone()),
            consulted,
        }
    }
}

/// One rule looked at while deciding.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// `allow`, `deny` or `catalog`.
    pub kind: &'static str,
    /// The pattern that matched a suffix of the host, with `@group` when scoped.
    pub pattern: String,
    /// Where it is written.
    pub rule: String,
    /// False for a `*.` pattern on its own apex, an `=` pattern on a longer host, or an
    /// entry scoped to another group.
    pub applies: bool,
}

/// Why a host gets its verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The normalised host (punycode for international names).
    pub host: String,
    /// The host in Unicode, when it is an international name: shows homoglyphs.
    pub unicode: Option<String>,
    /// The client asked about.
    pub client: Option<IpAddr>,
    /// The client's group.
    pub group: Option<String>,
    /// How the client was placed in its group.
    pub membership: Option<String>,
    /// The mode decided in.
    pub mode: Mode,
    /// Catalog service id.
    pub service: Option<String>,
    /// Catalog service name.
    pub service_name: Option<String>,
    /// Catalog category.
    pub category: Option<String>,
    /// Catalog tier.
    pub tier: Option<Tier>,
    /// The verdict.
    pub verdict: Verdict,
    /// The deciding rule.
    pub rule: Option<String>,
    /// Why.
    pub reason: &'static str,
    /// BAA availability of the service.
    pub baa: Option<Baa>,
    /// Training default of the service.
    pub trains_on_data: Option<TrainsOnData>,
    /// Where the service keeps data.
    pub data_residency: Option<String>,
    /// The catalog's notes on the service.
    pub notes: Option<String>,
    /// Every rule whose pattern matched a suffix: the client's group first, then
    /// site-wide, then other groups' (which do not apply); most specific first in each.
    pub consulted: Vec<Step>,
}

fn enum_str<T: Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "host:      {}", self.host)?;
        if let Some(u) = &self.unicode {
            writeln!(
                f,
                "unicode:   {u} (an international name: compare it letter by letter)"
            )?;
        }
        if let Some(c) = self.client {
            writeln!(f, "client:    {c}")?;
        }
        match (&self.group, &self.membership) {
            (Some(g), Some(m)) => writeln!(f, "group:     {g} (by {m})")?,
            _ if self.client.is_some() => writeln!(f, "group:     none (site-wide rules only)")?,
            _ => {}
        }
        match (&self.service, &self.service_name, self.tier) {
            (Some(id), Some(name), Some(tier)) => writeln!(
                f,
                "service:   {name} ({id}), {} tier, category {}",
                tier.as_str(),
                self.category.as_deref().unwrap_or("-")
            )?,
            _ => writeln!(f, "service:   none (no catalog entry)")?,
        }
        if let Some(b) = self.baa {
            writeln!(f, "baa:       {}", enum_str(b))?;
        }
        if let Some(t) = self.trains_on_data {
            writeln!(f, "trains:    {} (on user data, by default)", enum_str(t))?;
        }
        if let Some(r) = &self.data_residency {
            writeln!(f, "residency: {r}")?;
        }
        writeln!(
            f,
            "verdict:   {} (mode {})",
            self.verdict.as_str(),
            enum_str(self.mode)
        )?;
        writeln!(f, "rule:      {}", self.rule.as_deref().unwrap_or("-"))?;
        writeln!(f, "why:       {}", self.reason)?;
        if self.tier == Some(Tier::Shared) {
            writeln!(
                f,
                "note:      this host serves consumer and enterprise accounts alike; DNS and SNI cannot tell which one is used"
            )?;
        }
        if let Some(n) = &self.notes {
            writeln!(f, "catalog:   {n}")?;
        }
        writeln!(
            f,
            "consulted (group first, then site-wide; allow > deny > catalog; most specific first):"
        )?;
        if self.consulted.is_empty() {
            writeln!(f, "  nothing matched")?;
        }
        for s in &self.consulted {
            writeln!(
                f,
                "  {:<8} {:<44} {}{}",
                s.kind,
                s.pattern,
                s.rule,
                if s.applies { "" } else { "  (does not apply)" }
            )?;
        }
        Ok(())
    }
}
