//! The central roll-up's pure parts: the PostgreSQL schema every box writes into (one
//! database for the whole fleet, rows keyed by site, chain and row id, the log partitioned
//! by month), the walk that verifies one site's copied chain, and the fleet report's
//! figures from the grouped rows the database hands back. The shell that talks to the
//! server is `rollup_pg.rs`.
//!
//! A box's chain can begin again (its store set aside as corrupt, or replaced): row ids
//! start over, so the copy keeps each chain apart under an `epoch`, the first 16 hex
//! digits of the hash of the first row the box held when the copy of that chain began.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::report::build::bypass_of;
use crate::store::{export_columns, LogRow, INTEGER_COLUMNS};

/// The schema, created if missing (under an advisory lock: many boxes start at once).
/// `aiwarden_log` holds every chained column of the box's `log` as it is there (times in
/// unix microseconds, so the hashes can be recomputed), then the incident's activity as
/// last copied (not chained: it grows after the row is written).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS aiwarden_site (
    site text PRIMARY KEY,
    epoch text NOT NULL,
    head_id bigint NOT NULL DEFAULT 0,
    head_hash bytea,
    activity_mark bigint NOT NULL DEFAULT 0,
    usage_day text,
    first_push timestamptz NOT NULL DEFAULT now(),
    last_push timestamptz,
    version text,
    rules text,
    health jsonb
);
CREATE TABLE IF NOT EXISTS aiwarden_log (
    site text NOT NULL,
    epoch text NOT NULL,
    id bigint NOT NULL,
    kind text NOT NULL,
    ts bigint NOT NULL,
    client_ip text,
    client_mac text,
    device text,
    label text,
    client_group text,
    service text,
    service_name text,
    category text,
    tier text,
    verdict text,
    mode text,
    how text,
    host text,
    rule text,
    incident_id bigint,
    ack_by text,
    ack_note text,
    break_reason text,
    break_prev_id bigint,
    break_prev_hash bytea,
    break_file text,
    unblock_until bigint,
    event text,
    actor text,
    detail text,
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL,
    attempts bigint,
    last_seen bigint,
    hows text[],
    seen_mac text,
    PRIMARY KEY (site, epoch, id, ts)
) PARTITION BY RANGE (ts);
CREATE INDEX IF NOT EXISTS aiwarden_log_incident_ts ON aiwarden_log (ts) WHERE kind = 'incident';
CREATE INDEX IF NOT EXISTS aiwarden_log_ack ON aiwarden_log (site, epoch, incident_id) WHERE kind = 'ack';
CREATE TABLE IF NOT EXISTS aiwarden_usage (
    site text NOT NULL,
    day text NOT NULL,
    service text NOT NULL,
    verdict text NOT NULL,
    count bigint NOT NULL,
    PRIMARY KEY (site, day, service, verdict)
);
";

/// The advisory lock key schema and partition changes are made under.
pub const SCHEMA_LOCK: i64 = 0x4149_5744_5043;

/// The columns of `aiwarden_log` a box copies, in COPY order: [`export_columns`], the two
/// hashes, then the activity.
pub fn copy_columns() -> Vec<&'static str> {
    let mut c = export_columns();
    c.extend([
        "prev_hash",
        "hash",
        "attempts",
        "last_seen",
        "hows",
        "seen_mac",
    ]);
    c
}

/// Whether `column` of `aiwarden_log` holds an integer.
pub fn is_integer(column: &str) -> bool {
    INTEGER_COLUMNS.contains(&column) || column == "attempts" || column == "last_seen"
}

/// The monthly partition holding `ts` (unix microseconds, UTC): its table name and its
/// bounds `[from, to)`.
pub fn month_partition(ts: i64) -> (String, i64, i64) {
    let secs = ts.div_euclid(1_000_000);
    let (y, m) = match jiff::Timestamp::from_second(secs) {
        Ok(t) => {
            let d = t.to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
            (i32::from(d.year()), i32::from(d.month()))
        }
        Err(_) => (1970, 1),
    };
    let start = |y: i32, m: i32| -> i64 {
        jiff::civil::date(y as i16, m as i8, 1)
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .map_or(0, |z| z.timestamp().as_microsecond())
    };
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (
        format!("aiwarden_log_{y:04}_{m:02}"),
        start(y, m),
        start(ny, nm),
    )
}

/// What the walk of one site's chain found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainCheck {
    /// The site.
    pub site: String,
    /// The chain.
    pub epoch: String,
    /// Rows walked.
    pub rows: u64,
    /// The first and last row ids.
    pub first: Option<i64>,
    /// The newest row: id and hash (hex).
    pub last: Option<(i64, String)>,
    /// Where the chain breaks, first.
    pub broken: Option<(i64, String)>,
}

/// Walks one site's chain, rows in id order.
#[derive(Debug)]
pub struct Walk {
    check: ChainCheck,
    prev: Option<(i64, [u8; 32])>,
}

impl Walk {
    /// A walk of `site`'s chain `epoch`.
    pub fn new(site: &str, epoch: &str) -> Walk {
        Walk {
            check: ChainCheck {
                site: site.into(),
                epoch: epoch.into(),
                rows: 0,
                first: None,
                last: None,
                broken: None,
            },
            prev: None,
        }
    }

    /// Takes the next row. The first row's `prev_hash` is taken as it is (the box may have
    /// purged what came before); every later one must follow the row before with no gap,
    /// and each row's hash must be its contents'.
    pub fn row(&mut self, row: &LogRow) {
        if self.check.broken.is_some() {
            return;
        }
        let id = row.id();
        let mut fail = |why: String| self.check.broken = Some((id, why));
        if let Some((pid, phash)) = self.prev {
            if id != pid + 1 {
                return fail(format!("rows {} to {} are missing", pid + 1, id - 1));
            }
            if row.prev_hash != phash {
                return fail(format!("prev_hash does not match row {pid}'s hash"));
            }
        }
        if row.recompute(&row.prev_hash) != row.hash {
            return fail("hash does not match the row's contents (edited?)".into());
        }
        self.check.rows += 1;
        self.check.first.get_or_insert(id);
        self.check.last = Some((id, hex(&row.hash)));
        self.prev = Some((id, row.hash));
    }

    /// What was found.
    pub fn finish(self) -> ChainCheck {
        self.check
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The epoch of a chain whose first row (when the copy began) has hash `first`.
pub fn epoch_of(first: &[u8; 32]) -> String {
    hex(&first[..8])
}

/// One group of incidents as the database counts them: same site, service, verdict,
/// acknowledged or not, and set of `how`s (the devices are counted apart: see
/// [`FleetTally::device`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The site.
    pub site: String,
    /// Service id, name, category.
    pub service: String,
    /// The service's name as recorded.
    pub service_name: String,
    /// The category as recorded.
    pub category: Option<String>,
    /// `block` or `flag`.
    pub verdict: String,
    /// Acknowledged at least once.
    pub acked: bool,
    /// Every `how` the incidents were seen by.
    pub hows: Vec<String>,
    /// Incidents.
    pub incidents: u64,
    /// Attempts.
    pub attempts: u64,
}

/// One site's figures for the period (or the fleet's, summed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Figures {
    /// Incidents opened in the period.
    pub incidents: u64,
    /// Attempts counted in them.
    pub attempts: u64,
    /// Of the incidents, blocked.
    pub blocked: u64,
    /// Of the incidents, flagged.
    pub flagged: u64,
    /// Of the incidents, not acknowledged.
    pub open: u64,
    /// Of the incidents, ones that went around the resolver.
    pub bypass: u64,
    /// Devices (per site; the total sums sites).
    pub devices: u64,
    /// Distinct services.
    pub services: u64,
    /// Acknowledgements made in the period.
    pub acks: u64,
}

/// A site in the fleet report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteRow {
    /// The site.
    pub site: String,
    /// Its figures.
    pub figures: Figures,
    /// The last push (RFC 3339), if any.
    pub last_push: Option<String>,
    /// The newest row copied: id and chain.
    pub head_id: i64,
    /// The chain being copied.
    pub epoch: String,
}

/// A service across the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceRow {
    /// Its id.
    pub service: String,
    /// Its name.
    pub name: String,
    /// Its category.
    pub category: String,
    /// Incidents, attempts, blocked.
    pub incidents: u64,
    /// Attempts.
    pub attempts: u64,
    /// Incidents blocked.
    pub blocked: u64,
    /// Sites it was met at.
    pub sites: u64,
}

/// The fleet report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetReport {
    /// The period's label (`2026-W48`).
    pub period: String,
    /// Its bounds, unix microseconds.
    pub from: i64,
    /// End, exclusive.
    pub to: i64,
    /// Every site, by name.
    pub sites: Vec<SiteRow>,
    /// The sum over sites.
    pub total: Figures,
    /// Services, most incidents first.
    pub services: Vec<ServiceRow>,
}

#[derive(Default)]
struct SiteTally {
    f: Figures,
    devices: BTreeSet<String>,
    services: BTreeSet<String>,
}

#[derive(Default)]
struct ServiceTally {
    name: String,
    category: String,
    incidents: u64,
    attempts: u64,
    blocked: u64,
    sites: BTreeSet<String>,
}

/// Counts groups into per-site figures and fleet totals.
#[derive(Default)]
pub struct FleetTally {
    sites: BTreeMap<String, SiteTally>,
    services: BTreeMap<String, ServiceTally>,
}

impl FleetTally {
    /// Counts one group (the same rules as a box's own report: see `report::build`).
    pub fn add(&mut self, g: &Group) {
        let s = self.sites.entry(g.site.clone()).or_default();
        s.f.incidents += g.incidents;
        s.f.attempts += g.attempts;
        if g.verdict == "block" {
            s.f.blocked += g.incidents;
        } else {
            s.f.flagged += g.incidents;
        }
        if !g.acked {
            s.f.open += g.incidents;
        }
        if bypass_of(&g.hows, g.category.as_deref()).any() {
            s.f.bypass += g.incidents;
        }
        if !s.services.contains(&g.service) {
            s.services.insert(g.service.clone());
        }
        let v = self
            .services
            .entry(g.service.clone())
            .or_insert_with(|| ServiceTally {
                name: g.service_name.clone(),
                category: g.category.clone().unwrap_or_else(|| "other".into()),
                ..ServiceTally::default()
            });
        v.incidents += g.incidents;
        v.attempts += g.attempts;
        if g.verdict == "block" {
            v.blocked += g.incidents;
        }
        if !v.sites.contains(&g.site) {
            v.sites.insert(g.site.clone());
        }
    }

    /// Counts a device met at `site` in the period (what reports call it: label, DHCP name,
    /// MAC, address).
    pub fn device(&mut self, site: &str, device: &str) {
        let s = self.sites.entry(site.to_string()).or_default();
        if !s.devices.contains(device) {
            s.devices.insert(device.to_string());
        }
    }

    /// Counts `n` acknowledgements made in the period at `site`.
    pub fn acks(&mut self, site: &str, n: u64) {
        self.sites.entry(site.to_string()).or_default().f.acks += n;
    }

    /// The report; `known` lists every site the database holds (with its last push, head
    /// and chain), so a site with nothing in the period shows with zeros.
    pub fn finish(
        mut self,
        period: &str,
        (from, to): (i64, i64),
        known: Vec<(String, Option<String>, i64, String)>,
    ) -> FleetReport {
        let mut total = Figures::default();
        let mut sites = Vec::new();
        let mut push = |site: String, t: SiteTally, last_push, head_id, epoch| {
            let mut f = t.f;
            f.devices = t.devices.len() as u64;
            f.services = t.services.len() as u64;
            total.incidents += f.incidents;
            total.attempts += f.attempts;
            total.blocked += f.blocked;
            total.flagged += f.flagged;
            total.open += f.open;
            total.bypass += f.bypass;
            total.devices += f.devices;
            total.acks += f.acks;
            sites.push(SiteRow {
                site,
                figures: f,
                last_push,
                head_id,
                epoch,
            });
        };
        for (site, last_push, head_id, epoch) in known {
            let t = self.sites.remove(&site).unwrap_or_default();
            push(site, t, last_push, head_id, epoch);
        }
        for (site, t) in std::mem::take(&mut self.sites) {
            push(site, t, None, 0, String::new());
        }
        sites.sort_by(|a, b| a.site.cmp(&b.site));
        total.services = self.services.len() as u64;
        let mut services: Vec<ServiceRow> = self
            .services
            .into_iter()
            .map(|(service, s)| ServiceRow {
                service,
                name: s.name,
                category: s.category,
                incidents: s.incidents,
                attempts: s.attempts,
                blocked: s.blocked,
                sites: s.sites.len() as u64,
            })
            .collect();
        services.sort_by(|a, b| {
            b.incidents
                .cmp(&a.incidents)
                .then_with(|| a.service.cmp(&b.service))
        });
        FleetReport {
            period: period.to_string(),
            from,
            to,
            sites,
            total,
            services,
        }
    }
}

/// The fleet report as text: one line per site, the total, the services.
pub fn render_text(r: &FleetReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "aiwarden fleet report, {}: {} sites",
        r.period,
        r.sites.len()
    );
    let _ = writeln!(
        out,
        "\n{:<24} {:>9} {:>9} {:>8} {:>8} {:>7} {:>7} {:>7} {:>8} {:>5}  last push",
        "site",
        "incidents",
        "attempts",
        "blocked",
        "flagged",
        "open",
        "bypass",
        "devices",
        "services",
        "acks"
    );
    let line = |out: &mut String, name: &str, f: &Figures, push: &str| {
        let _ = writeln!(
            out,
            "{:<24} {:>9} {:>9} {:>8} {:>8} {:>7} {:>7} {:>7} {:>8} {:>5}  {push}",
            name,
            f.incidents,
            f.attempts,
            f.blocked,
            f.flagged,
            f.open,
            f.bypass,
            f.devices,
            f.services,
            f.acks
        );
    };
    for s in &r.sites {
        line(
            &mut out,
            &s.site,
            &s.figures,
            s.last_push.as_deref().unwrap_or("never"),
        );
    }
    line(&mut out, "all sites", &r.total, "");
    let _ = writeln!(
        out,
        "\n{:<32} {:<22} {:>9} {:>9} {:>8} {:>6}",
        "service", "category", "incidents", "attempts", "blocked", "sites"
    );
    for s in &r.services {
        let _ = writeln!(
            out,
            "{:<32} {:<22} {:>9} {:>9} {:>8} {:>6}",
            s.name, s.category, s.incidents, s.attempts, s.blocked, s.sites
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_partitions_cover_their_month() {
        // 2026-12-02T07:00:00Z.
        let ts = 1_796_194_800_000_000;
        let (name, from, to) = month_partition(ts);
        assert_eq!(name, "aiwarden_log_2026_12");
        assert!(from <= ts && ts < to);
        let (next, nfrom, _) = month_partition(to);
        assert_eq!(next, "aiwarden_log_2027_01");
        assert_eq!(nfrom, to);
        assert_eq!(month_partition(to - 1).0, name);
    }

    fn group(site: &str, service: &str, verdict: &str, acked: bool) -> Group {
        Group {
            site: site.into(),
            service: service.into(),
            service_name: service.to_uppercase(),
            category: Some("chat".into()),
            verdict: verdict.into(),
            acked,
            hows: vec!["dns,nxdomain".into()],
            incidents: 2,
            attempts: 5,
        }
    }

    #[test]
    fn tally_counts_per_site_and_sums_sites() {
        let mut t = FleetTally::default();
        t.add(&group("a", "chatgpt", "block", false));
        t.add(&group("a", "claude", "flag", true));
        t.add(&group("b", "chatgpt", "block", false));
        for (site, dev) in [("a", "pc1"), ("a", "pc1"), ("b", "pc1"), ("b", "pc2")] {
            t.device(site, dev);
        }
        let mut quic = group("b", "gemini", "block", false);
        quic.hows = vec!["quic".into()];
        t.add(&quic);
        t.acks("b", 3);
        let r = t.finish(
            "2026-W48",
            (0, 1),
            vec![
                ("a".into(), None, 4, "e1".into()),
                ("c".into(), None, 0, "e3".into()),
            ],
        );
        let names: Vec<_> = r.sites.iter().map(|s| s.site.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let a = &r.sites[0].figures;
        assert_eq!(
            (a.incidents, a.attempts, a.blocked, a.flagged, a.open),
            (4, 10, 2, 2, 2)
        );
        assert_eq!((a.devices, a.services), (1, 2));
        let b = &r.sites[1].figures;
        assert_eq!((b.bypass, b.devices, b.acks), (2, 2, 3));
        assert_eq!(r.sites[2].figures, Figures::default());
        assert_eq!(r.total.incidents, 8);
        assert_eq!(
            r.total.devices, 3,
            "devices are per site: pc1 at a and at b are two"
        );
        assert_eq!(r.total.services, 3);
        assert_eq!(r.services[0].service, "chatgpt");
        assert_eq!(r.services[0].sites, 2);
        assert!(render_text(&r).contains("all sites"));
    }
}
