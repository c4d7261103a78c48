//! Deciding: the verdict for a host name (the group's entries, the site's lists, then the
//! catalog), for a connection to a listed address, and for a traffic signal.

use std::net::IpAddr;
use std::sync::Arc;

use super::{
    groups, AiPolicy, Client, Decision, Mode, RuleRef, RuleSet, Service, Signal, Tenant, Tier,
    Verdict, ALLOW,
};

impl RuleSet {
    /// The verdict for `host` (lowercase, no trailing dot, as [`crate::detect::Host`]
    /// gives it) asked by `client`. Does not allocate.
    pub fn judge(&self, host: &str, client: &Client<'_>, mode: Mode) -> Decision {
        let group = groups::classify(&self.group_defs, client).map(|(i, _)| i);
        self.judge_in(host, group, mode)
    }

    pub(super) fn judge_in(&self, host: &str, group: Option<usize>, mode: Mode) -> Decision {
        let [allow, deny, catalog] = self.map.lookup(host);
        let cat = catalog.map(|i| &self.catalog[i as usize]);
        let group_name = group.map(|g| self.groups[g].name.clone());
        let decided = |verdict: Verdict, rule: RuleRef, reason: &'static str| {
            let verdict = match (verdict, mode) {
                (Verdict::Block, Mode::Monitor) => Verdict::Flag,
                (v, _) => v,
            };
            Decision {
                verdict,
                service: cat.map(|c| c.service.clone()),
                tier: cat.map(|c| c.tier),
                rule: Some(rule),
                group: group_name.clone(),
                reason,
            }
        };
        if let Some(g) = group {
            let rules = &self.groups[g];
            let [gallow, gdeny, _] = rules.map.lookup(host);
            if let Some(i) = gallow {
                let e = &rules.allow[i as usize];
                return decided(Verdict::Allow, self.line_ref(e), "group allow entry");
            }
            if let Some(i) = gdeny {
                let e = &rules.deny[i as usize];
                return decided(Verdict::Block, self.line_ref(e), "group deny entry");
            }
            if self.group_defs[g].ai == AiPolicy::None && (cat.is_some() || allow.is_some()) {
                return decided(
                    Verdict::Block,
                    self.group_ref(g),
                    "the client's group may use no AI service (ai = \"none\")",
                );
            }
        }
        if let Some(i) = allow {
            return decided(
                Verdict::Allow,
                self.line_ref(&self.allow[i as usize]),
                "admin allow list",
            );
        }
        if let Some(i) = deny {
            return decided(
                Verdict::Block,
                self.line_ref(&self.deny[i as usize]),
                "admin deny list",
            );
        }
        let Some(c) = cat else {
            return Decision {
                verdict: Verdict::Allow,
                service: None,
                tier: None,
                rule: None,
                group: group_name,
                reason: "no rule matches",
            };
        };
        let rule = self.service_ref(&c.service);
        if c.service.category == "bypass" {
            return decided(
                Verdict::Block,
                rule,
                "resolver or SNI bypass: hides the device's DNS or destination from the clinic",
            );
        }
        if let Some((g, v)) =
            group.and_then(|g| self.group_defs[g].tiers.get(c.tier).map(|v| (g, v)))
        {
            return decided(
                v,
                self.group_ref(g),
                "the client group's policy for this tier",
            );
        }
        match c.tier {
            Tier::Consumer => decided(Verdict::Block, rule, "consumer AI service: no BAA"),
            Tier::Shared => decided(
                Verdict::Block,
                rule,
                "host shared by consumer and enterprise tiers: DNS and SNI cannot tell them apart",
            ),
            Tier::Enterprise => match c.tenant {
                Tenant::InHost if self.groups.iter().any(|g| g.map.lookup(host)[ALLOW].is_some()) => {
                    decided(
                        Verdict::Flag,
                        rule,
                        "the clinic's own resource, but allowed only for other client groups",
                    )
                }
                Tenant::InHost => decided(
                    Verdict::Flag,
                    rule,
                    "another organisation's tenant: the clinic's own resources are listed in site/allow.list",
                ),
                Tenant::NotAttributable => decided(
                    Verdict::Allow,
                    rule,
                    "enterprise service; tenant not attributable (the host names only a region)",
                ),
                Tenant::Unknown => decided(
                    Verdict::Flag,
                    rule,
                    "enterprise AI service not on the admin allow list",
                ),
            },
        }
    }

    /// The verdict for a connection to `addr` when a catalog service owns the address (a
    /// public DoH/DoT resolver's anycast address); `None` when none does. The most specific
    /// range wins.
    pub fn judge_address(&self, addr: IpAddr, client: &Client<'_>, mode: Mode) -> Option<Decision> {
        let addr = addr.to_canonical();
        let (_, svc) = self
            .addresses
            .iter()
            .filter(|(net, _)| net.contains(&addr))
            .max_by_key(|(net, _)| net.prefix_len())?;
        Some(self.judge_service(svc, client, mode, "traffic to an address the catalog lists"))
    }

    /// The verdict for traffic that shows `signal` when a catalog service claims it;
    /// `None` when none does.
    pub fn judge_signal(
        &self,
        signal: Signal,
        client: &Client<'_>,
        mode: Mode,
    ) -> Option<Decision> {
        let (_, svc) = self.signals.iter().find(|(s, _)| *s == signal)?;
        Some(self.judge_service(svc, client, mode, signal.reason()))
    }

    /// True when `host` is a name a catalog service lists as an ECH public name: an outer
    /// SNI that hides the real destination.
    pub fn is_ech_public_name(&self, host: &str) -> bool {
        let [_, _, catalog] = self.map.lookup(host);
        catalog.is_some_and(|i| {
            self.catalog[i as usize]
                .service
                .signals
                .contains(&Signal::EchPublicName)
        })
    }

    /// A decision for a whole service matched without a name: `bypass` blocks,
    /// `unexplained` (and anything else) flags.
    fn judge_service(
        &self,
        svc: &Arc<Service>,
        client: &Client<'_>,
        mode: Mode,
        reason: &'static str,
    ) -> Decision {
        let group = groups::classify(&self.group_defs, client).map(|(i, _)| i);
        let verdict = match (svc.category.as_str(), mode) {
            ("bypass", Mode::Enforce) => Verdict::Block,
            _ => Verdict::Flag,
        };
        Decision {
            verdict,
            service: Some(svc.clone()),
            tier: None,
            rule: Some(self.service_ref(svc)),
            group: group.map(|g| self.groups[g].name.clone()),
            reason,
        }
    }
}
