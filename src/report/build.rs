//! Figures from incidents: a [`Tally`] takes incidents one at a time (a period of a
//! million is read as a stream, never held), and [`Tally::finish`] turns what it counted into
//! a [`Report`] with the catalog's facts, the daily usage and the store's evidence.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use jiff::tz::TimeZone;

use super::model::{
    AckEntry, Bypass, Count, DeviceRow, Evidence, Followup, Headline, HeatDay, InventoryRow,
    Report, RulesInForce, ServiceRow, Truncated,
};
use super::period::{local, slot, Period};
use crate::devices::Inventory;
use crate::incident::How;
use crate::policy::{RuleSet, Service, Verdict};
use crate::store::{IncidentRow, UsageRow};

/// The most devices a report lists (the rest are counted in `truncated`).
pub const MAX_DEVICES: usize = 200;
/// The most open follow-ups a report lists.
pub const MAX_FOLLOWUPS: usize = 300;
/// The most acknowledgements a report lists.
pub const MAX_ACKS: usize = 300;

/// What a report is made for and with.
pub struct Context<'a> {
    /// The clinic's name.
    pub site: &'a str,
    /// The clinic's time zone.
    pub tz: &'a TimeZone,
    /// The rules in force (the catalog's facts about each service).
    pub rules: &'a RuleSet,
    /// The device inventory (who owns a device).
    pub inventory: &'a Inventory,
}

/// What one device, how reports call it, and its owner.
#[derive(Default)]
struct DeviceTally {
    staff: Option<String>,
    incidents: u64,
    attempts: u64,
    services: HashSet<Arc<str>>,
    open: u64,
    acknowledged: u64,
}

#[derive(Default)]
struct ServiceTally {
    name: String,
    category: String,
    incidents: u64,
    attempts: u64,
    blocked: u64,
    devices: HashSet<Arc<str>>,
}

struct Open {
    staff: Option<String>,
    incidents: u64,
    first: i64,
    last: i64,
    oldest: (i64, i64),
}

/// Counts incidents of one period as they stream by.
pub struct Tally<'a> {
    ctx: &'a Context<'a>,
    period: Period,
    headline: Headline,
    devices: HashMap<Arc<str>, DeviceTally>,
    staff: HashSet<String>,
    services: HashMap<Arc<str>, ServiceTally>,
    heat: Vec<[u64; 24]>,
    bypass: Bypass,
    open: HashMap<(Arc<str>, Arc<str>), Open>,
    acks: Vec<AckEntry>,
    acks_total: u64,
    names: HashMap<String, Arc<str>>,
}

impl<'a> Tally<'a> {
    /// An empty tally of `period`.
    pub fn new(ctx: &'a Context<'a>, period: Period) -> Tally<'a> {
        Tally {
            ctx,
            heat: vec![[0; 24]; period.len()],
            period,
            headline: Headline::default(),
            devices: HashMap::new(),
            staff: HashSet::new(),
            services: HashMap::new(),
            bypass: Bypass::default(),
            open: HashMap::new(),
            acks: Vec::new(),
            acks_total: 0,
            names: HashMap::new(),
        }
    }

    /// The period counted.
    pub fn period(&self) -> &Period {
        &self.period
    }

    /// Interns a name so a million incidents of fifty devices keep fifty strings.
    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.names.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.names.insert(s.to_string(), a.clone());
        a
    }

    /// Counts one incident opened in the period.
    pub fn add(&mut self, row: &IncidentRow) {
        let r = &row.summary.record;
        let h = &mut self.headline;
        h.incidents += 1;
        h.attempts += row.summary.count;
        match r.verdict {
            Verdict::Block => h.blocked += 1,
            _ => h.flagged += 1,
        }
        let acked = !row.acks.is_empty();
        if !acked {
            h.open += 1;
        }
        let bypass = bypass_of(&row.summary.hows, r.category.as_deref());
        if bypass.any() {
            self.headline.bypass += 1;
        }
        self.bypass.doh_dot += u64::from(bypass.doh_dot);
        self.bypass.ech += u64::from(bypass.ech);
        self.bypass.unexplained += u64::from(bypass.unexplained);
        self.bypass.proxy += u64::from(bypass.proxy);
        self.bypass.quic += u64::from(bypass.quic);

        let device = self.intern(&device_name(row, self.ctx.inventory));
        let service = self.intern(&r.service);
        let staff = self
            .ctx
            .inventory
            .find(r.client_mac, r.device.as_deref(), r.client_ip)
            .and_then(|d| d.owner.clone());
        if let Some(s) = &staff {
            if !self.staff.contains(s) {
                self.staff.insert(s.clone());
            }
        }
        if let Some((day, hour)) = slot(&self.period, self.ctx.tz, r.ts) {
            self.heat[day][usize::from(hour)] += 1;
        }

        let d = self.devices.entry(device.clone()).or_default();
        d.staff.clone_from(&staff);
        d.incidents += 1;
        d.attempts += row.summary.count;
        d.services.insert(service.clone());
        if acked {
            d.acknowledged += 1;
        } else {
            d.open += 1;
        }

        let s = self
            .services
            .entry(service.clone())
            .or_insert_with(|| ServiceTally {
                name: r.service_name.clone(),
                category: r.category.clone().unwrap_or_else(|| "other".into()),
                ..ServiceTally::default()
            });
        s.incidents += 1;
        s.attempts += row.summary.count;
        s.blocked += u64::from(r.verdict == Verdict::Block);
        s.devices.insert(device.clone());

        if !acked {
            let o = self.open.entry((device.clone(), service)).or_insert(Open {
                staff,
                incidents: 0,
                first: r.ts,
                last: row.summary.last_seen,
                oldest: (r.ts, row.id),
            });
            o.incidents += 1;
            o.first = o.first.min(r.ts);
            o.last = o.last.max(row.summary.last_seen);
            o.oldest = o.oldest.min((r.ts, row.id));
        }
    }

    /// Adds what `other` counted (another part of the same period, read on another
    /// connection) to this tally.
    pub fn merge(&mut self, other: Tally<'_>) {
        let (h, o) = (&mut self.headline, other.headline);
        h.incidents += o.incidents;
        h.attempts += o.attempts;
        h.blocked += o.blocked;
        h.flagged += o.flagged;
        h.bypass += o.bypass;
        h.open += o.open;
        for (k, d) in other.devices {
            let e = self.devices.entry(k).or_default();
            if e.staff.is_none() {
                e.staff = d.staff;
            }
            e.incidents += d.incidents;
            e.attempts += d.attempts;
            e.services.extend(d.services);
            e.open += d.open;
            e.acknowledged += d.acknowledged;
        }
        self.staff.extend(other.staff);
        for (k, s) in other.services {
            let e = self.services.entry(k).or_insert_with(|| ServiceTally {
                name: s.name.clone(),
                category: s.category.clone(),
                ..ServiceTally::default()
            });
            e.incidents += s.incidents;
            e.attempts += s.attempts;
            e.blocked += s.blocked;
            e.devices.extend(s.devices);
        }
        for (mine, theirs) in self.heat.iter_mut().zip(&other.heat) {
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a += b;
            }
        }
        let b = &mut self.bypass;
        b.doh_dot += other.bypass.doh_dot;
        b.ech += other.bypass.ech;
        b.unexplained += other.bypass.unexplained;
        b.proxy += other.bypass.proxy;
        b.quic += other.bypass.quic;
        for (k, o) in other.open {
            match self.open.entry(k) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(o);
                }
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    let e = e.get_mut();
                    e.incidents += o.incidents;
                    e.first = e.first.min(o.first);
                    e.last = e.last.max(o.last);
                    e.oldest = e.oldest.min(o.oldest);
                    if e.staff.is_none() {
                        e.staff = o.staff;
                    }
                }
            }
        }
        for a in other.acks {
            if self.acks.len() < MAX_ACKS {
                self.acks.push(a);
            }
        }
        self.acks_total += other.acks_total;
    }

    /// Records an acknowledgement made in the period (of an incident of any period).
    pub fn ack(&mut self, incident: &IncidentRow, ack: &crate::store::AckRow) {
        self.acks_total += 1;
        if self.acks.len() < MAX_ACKS {
            self.acks.push(AckEntry {
                incident: incident.id,
                device: device_name(incident, self.ctx.inventory),
                service: incident.summary.record.service_name.clone(),
                by: ack.by.clone(),
                at: local(self.ctx.tz, ack.ts),
                note: ack.note.clone(),
            });
        }
    }

    /// The headline figures so far.
    pub fn headline(&self) -> Headline {
        Headline {
            devices: self.devices.len() as u64,
            staff: self.staff.len() as u64,
            services: self.services.len() as u64,
            ..self.headline
        }
    }

    /// The report: this tally's figures, the previous period's headline, the daily usage
    /// of the period (every verdict), the rules and the evidence.
    pub fn finish(
        self,
        previous: &Tally<'_>,
        usage: &[UsageRow],
        rules: RulesInForce,
        evidence: Evidence,
        generated: i64,
    ) -> Report {
        let headline = self.headline();
        let ctx = self.ctx;
        let name_of = |id: &str| self.services.get(id).map(|s| s.name.clone());

        let mut services: Vec<ServiceRow> = self
            .services
            .iter()
            .map(|(id, s)| ServiceRow {
                service: id.to_string(),
                name: s.name.clone(),
                category: s.category.clone(),
                incidents: s.incidents,
                attempts: s.attempts,
                blocked: s.blocked,
                devices: s.devices.len() as u64,
            })
            .collect();
        services.sort_by(|a, b| b.incidents.cmp(&a.incidents).then(a.name.cmp(&b.name)));

        let mut cats: BTreeMap<&str, u64> = BTreeMap::new();
        for s in &services {
            *cats.entry(&s.category).or_default() += s.incidents;
        }
        let mut categories: Vec<Count> = cats
            .into_iter()
            .map(|(name, count)| Count {
                name: name.to_string(),
                count,
            })
            .collect();
        categories.sort_by(|a, b| b.count.cmp(&a.count).then(a.name.cmp(&b.name)));

        let mut devices: Vec<DeviceRow> = self
            .devices
            .iter()
            .map(|(name, d)| {
                let mut svc: Vec<String> = d
                    .services
                    .iter()
                    .map(|s| name_of(s).unwrap_or_else(|| s.to_string()))
                    .collect();
                svc.sort();
                DeviceRow {
                    device: name.to_string(),
                    staff: d.staff.clone(),
                    incidents: d.incidents,
                    attempts: d.attempts,
                    services: svc,
                    open: d.open,
                    acknowledged: d.acknowledged,
                }
            })
            .collect();
        devices.sort_by(|a, b| b.incidents.cmp(&a.incidents).then(a.device.cmp(&b.device)));
        let devices_cut = devices.len().saturating_sub(MAX_DEVICES) as u64;
        devices.truncate(MAX_DEVICES);

        let heat = self
            .period
            .days()
            .zip(&self.heat)
            .map(|(day, hours)| HeatDay {
                day,
                hours: *hours,
                total: hours.iter().sum(),
            })
            .collect();

        let mut open: Vec<_> = self.open.iter().collect();
        open.sort_by(|a, b| {
            b.1.incidents
                .cmp(&a.1.incidents)
                .then(a.1.oldest.cmp(&b.1.oldest))
        });
        let open_cut = open.len().saturating_sub(MAX_FOLLOWUPS) as u64;
        let open_followups = open
            .into_iter()
            .take(MAX_FOLLOWUPS)
            .map(|((device, service), o)| Followup {
                device: device.to_string(),
                staff: o.staff.clone(),
                service: name_of(service).unwrap_or_else(|| service.to_string()),
                incidents: o.incidents,
                first_seen: local(ctx.tz, o.first),
                last_seen: local(ctx.tz, o.last),
                incident: o.oldest.1,
            })
            .collect();

        let mut acknowledged = self.acks;
        acknowledged.sort_by(|a, b| a.at.cmp(&b.at).then(a.incident.cmp(&b.incident)));

        Report {
            site: ctx.site.to_string(),
            previous_period: previous.period.clone(),
            generated: local(ctx.tz, generated),
            version: env!("CARGO_PKG_VERSION").to_string(),
            headline,
            previous: previous.headline(),
            services,
            categories,
            devices,
            heat,
            bypass: self.bypass,
            inventory: inventory(ctx.rules, usage),
            open_followups,
            truncated: Truncated {
                devices: devices_cut,
                open_followups: open_cut,
                acknowledged: self.acks_total - acknowledged.len() as u64,
            },
            acknowledged,
            rules,
            evidence,
            period: self.period,
        }
    }
}

/// Every service with attempts in `usage`, with the catalog's facts.
fn inventory(rules: &RuleSet, usage: &[UsageRow]) -> Vec<InventoryRow> {
    let catalog: HashMap<&str, &Arc<Service>> = rules.services().map(|s| (&*s.id, s)).collect();
    let mut rows: BTreeMap<&str, InventoryRow> = BTreeMap::new();
    for u in usage {
        let row = rows.entry(&u.service).or_insert_with(|| {
            let s = catalog.get(u.service.as_str());
            let text = |v: Option<String>| v.unwrap_or_else(|| "unknown".into());
            InventoryRow {
                service: u.service.clone(),
                name: s.map_or_else(|| u.service.clone(), |s| s.name.to_string()),
                vendor: text(s.map(|s| s.vendor.clone())),
                category: text(s.map(|s| s.category.clone())),
                baa: text(s.and_then(|s| s.baa).map(|b| serde_name(&b))),
                trains_on_data: text(s.and_then(|s| s.trains_on_data).map(|t| serde_name(&t))),
                residency: text(s.and_then(|s| s.data_residency.clone())),
                allowed: 0,
                flagged: 0,
                blocked: 0,
            }
        });
        match u.verdict {
            Verdict::Allow => row.allowed += u.count,
            Verdict::Flag => row.flagged += u.count,
            Verdict::Block => row.blocked += u.count,
        }
    }
    let mut out: Vec<InventoryRow> = rows.into_values().collect();
    out.sort_by(|a, b| {
        let total = |r: &InventoryRow| r.allowed + r.flagged + r.blocked;
        total(b).cmp(&total(a)).then(a.name.cmp(&b.name))
    });
    out
}

/// An enum's serde name (`enterprise_only`).
fn serde_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// What reports call the device of an incident: the label it was recorded with, else
/// the inventory's label now, the DHCP name, the MAC, or the address.
pub fn device_name(row: &IncidentRow, inventory: &Inventory) -> String {
    let r = &row.summary.record;
    if let Some(l) = &r.label {
        return l.clone();
    }
    if let Some(d) = inventory.find(r.client_mac, r.device.as_deref(), r.client_ip) {
        return d.label.clone();
    }
    if let Some(d) = &r.device {
        return d.clone();
    }
    match r.client_mac {
        Some(m) => m.to_string(),
        None => r.client_ip.to_string(),
    }
}

/// Which bypass kinds one incident shows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BypassKinds {
    /// Encrypted DNS.
    pub doh_dot: bool,
    /// ECH.
    pub ech: bool,
    /// No DNS answer explains it.
    pub unexplained: bool,
    /// A proxy.
    pub proxy: bool,
    /// QUIC.
    pub quic: bool,
}

impl BypassKinds {
    /// Any of them.
    pub fn any(self) -> bool {
        self.doh_dot || self.ech || self.unexplained || self.proxy || self.quic
    }
}

/// The bypass kinds of an incident from every `how` it was seen by and its category.
pub fn bypass_of(hows: &[String], category: Option<&str>) -> BypassKinds {
    let mut k = BypassKinds {
        doh_dot: category == Some("bypass"),
        ..BypassKinds::default()
    };
    for h in hows {
        let Ok(how) = h.parse::<How>() else { continue };
        k.doh_dot |= how.port_853;
        k.ech |= how.ech;
        k.unexplained |= how.unresolved || how.by_address;
        k.proxy |= how.proto == crate::detect::Proto::Connect;
        k.quic |= how.proto == crate::detect::Proto::Quic;
    }
    k
}
