//! What a report says, as plain values: every figure the HTML, PDF, CSV and JSON forms
//! show. The JSON form is this, serialised; the other forms render it and add nothing.

use serde::Serialize;

use super::period::Period;

/// A whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The clinic (config `site_name`).
    pub site: String,
    /// The period covered.
    pub period: Period,
    /// The period compared against (the one just before, as long).
    pub previous_period: Period,
    /// When it was made, local `YYYY-MM-DD HH:MM`.
    pub generated: String,
    /// The aiwarden version that made it.
    pub version: String,
    /// Headline figures of this period.
    pub headline: Headline,
    /// The same figures for the previous period.
    pub previous: Headline,
    /// Incidents by service, most first.
    pub services: Vec<ServiceRow>,
    /// Incidents by category, most first.
    pub categories: Vec<Count>,
    /// Incidents by device (and its staff member), most first.
    pub devices: Vec<DeviceRow>,
    /// Incidents opened per local day (one row per day of the period) and hour.
    pub heat: Vec<HeatDay>,
    /// Attempts to get around the rules.
    pub bypass: Bypass,
    /// Every AI service seen in the period, allowed use included.
    pub inventory: Vec<InventoryRow>,
    /// Follow-ups still open (a device and service with an unacknowledged incident).
    pub open_followups: Vec<Followup>,
    /// Follow-ups done: acknowledgements made in the period.
    pub acknowledged: Vec<AckEntry>,
    /// Rows cut from the lists above to keep the report readable, per list.
    pub truncated: Truncated,
    /// The rules in force and how aiwarden enforces them.
    pub rules: RulesInForce,
    /// The store's integrity, for filing the report as evidence.
    pub evidence: Evidence,
}

/// The headline figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Headline {
    /// Incidents opened (a device using a flagged or blocked service).
    pub incidents: u64,
    /// Attempts grouped into those incidents (connections and lookups).
    pub attempts: u64,
    /// Distinct devices.
    pub devices: u64,
    /// Distinct staff members (device owners from the inventory).
    pub staff: u64,
    /// Distinct services.
    pub services: u64,
    /// Incidents whose attempts were blocked.
    pub blocked: u64,
    /// Incidents only flagged (monitor mode or a flag rule).
    pub flagged: u64,
    /// Incidents with a bypass attempt among their ways of being seen.
    pub bypass: u64,
    /// Incidents still without an acknowledgement.
    pub open: u64,
}

/// Incidents of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceRow {
    /// Catalog id (or the deny rule).
    pub service: String,
    /// Display name.
    pub name: String,
    /// Category.
    pub category: String,
    /// Incidents.
    pub incidents: u64,
    /// Attempts.
    pub attempts: u64,
    /// Incidents blocked.
    pub blocked: u64,
    /// Distinct devices.
    pub devices: u64,
}

/// A name and a count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Count {
    /// The name.
    pub name: String,
    /// How many.
    pub count: u64,
}

/// Incidents of one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceRow {
    /// What reports call it: the inventory label, the DHCP name, the MAC or the address.
    pub device: String,
    /// Its owner from the inventory, when known.
    pub staff: Option<String>,
    /// Incidents.
    pub incidents: u64,
    /// Attempts.
    pub attempts: u64,
    /// Services used, by name, sorted.
    pub services: Vec<String>,
    /// Incidents not yet acknowledged.
    pub open: u64,
    /// Incidents acknowledged.
    pub acknowledged: u64,
}

/// One local day of the heat strip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeatDay {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Incidents opened in each local hour, 0 to 23.
    pub hours: [u64; 24],
    /// Their sum.
    pub total: u64,
}

/// Incidents with each kind of bypass attempt (one incident may count under several).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Bypass {
    /// Encrypted DNS: a DoH/DoT resolver of the catalog's bypass category, or port 853.
    pub doh_dot: u64,
    /// Encrypted Client Hello hiding the name.
    pub ech: u64,
    /// Connections no DNS answer explains, or judged by address alone.
    pub unexplained: u64,
    /// HTTP `CONNECT` through a proxy.
    pub proxy: u64,
    /// QUIC (HTTP/3).
    pub quic: u64,
}

/// One AI service seen: the asset inventory of a risk analysis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InventoryRow {
    /// Catalog id (or the deny rule).
    pub service: String,
    /// Display name.
    pub name: String,
    /// Vendor.
    pub vendor: String,
    /// Category.
    pub category: String,
    /// Whether the vendor signs a BAA.
    pub baa: String,
    /// Whether its consumer tier trains on data by default.
    pub trains_on_data: String,
    /// Where data is kept.
    pub residency: String,
    /// Attempts allowed (enterprise use, the site allow list).
    pub allowed: u64,
    /// Attempts flagged.
    pub flagged: u64,
    /// Attempts blocked.
    pub blocked: u64,
}

/// A device and service with incidents nobody acknowledged yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Followup {
    /// Device as reports call it.
    pub device: String,
    /// Its owner, when known.
    pub staff: Option<String>,
    /// Service name.
    pub service: String,
    /// Unacknowledged incidents.
    pub incidents: u64,
    /// First seen, local.
    pub first_seen: String,
    /// Last seen, local.
    pub last_seen: String,
    /// The oldest open incident's id (what `aiwarden incidents ack` takes).
    pub incident: i64,
}

/// An acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AckEntry {
    /// The incident.
    pub incident: i64,
    /// Device as reports call it.
    pub device: String,
    /// Service name.
    pub service: String,
    /// Who acknowledged.
    pub by: String,
    /// When, local.
    pub at: String,
    /// What was done.
    pub note: String,
}

/// How many rows each list lost to its cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Truncated {
    /// Devices not listed.
    pub devices: u64,
    /// Open follow-ups not listed.
    pub open_followups: u64,
    /// Acknowledgements not listed.
    pub acknowledged: u64,
}

/// The rules in force when the report was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RulesInForce {
    /// SHA-256 of the rule files' names and contents, first 16 hex digits.
    pub version: String,
    /// Catalog services.
    pub services: u64,
    /// Site allow-list entries.
    pub allow: u64,
    /// Site deny-list entries.
    pub deny: u64,
    /// Monitor or enforce.
    pub mode: String,
    /// What each enforcement path blocks, as `check` says it.
    pub enforcement: Vec<String>,
    /// Rule loads and reloads recorded in the period (local time, version).
    pub changes: Vec<Count>,
}

/// The store's integrity as the report was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// The whole chain verified.
    pub verified: bool,
    /// What `aiwarden verify` says, one line.
    pub summary: String,
    /// Rows in the chain.
    pub rows: u64,
    /// The head file is signed (keyed store).
    pub keyed: bool,
    /// The chain's last row before the period's end.
    pub head: Option<HeadRef>,
    /// The head the previous report printed, and whether it is still in the chain.
    pub previous_head: Option<Continuity>,
}

/// A row of the chain: the store's own [`Head`](crate::store::Head), as reports print it.
pub use crate::store::Head as HeadRef;

/// Whether last period's printed head is still where it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Continuity {
    /// The head as last period's report printed it.
    pub head: HeadRef,
    /// Where it was read from: the archived report's file name, or `store` when no
    /// report was archived and the head was taken from the chain itself.
    pub source: String,
    /// `present` (same id, same hash), `changed` (the row's hash differs: history was
    /// rewritten), `purged` (before the retention anchor), or `missing`.
    pub status: String,
}
