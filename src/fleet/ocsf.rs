//! Pure: one incident as one OCSF event, the JSON a SIEM receives over syslog.
//!
//! Why OCSF and not ECS: OCSF (the Open Cybersecurity Schema Framework) is vendor-neutral,
//! versioned and published with numeric class and enum ids; AWS Security Lake stores it,
//! Splunk, Microsoft Sentinel, Datadog and others map it natively, and Wazuh, Graylog or
//! rsyslog pass JSON through to any of them. ECS is Elastic's own schema: a good fit for an
//! Elastic-only shop, but a mapping job everywhere else. An MSP rarely chooses its SIEM for
//! one appliance, so the neutral schema goes furthest.
//!
//! The class is Detection Finding (`class_uid` 2004, category Findings 2), activity Create:
//! an incident is a finding the appliance raised (a device reached a flagged or blocked AI
//! service), not a single connection. The Security Control profile's `action_id` and
//! `disposition_id` say whether it was let through or stopped. Fields OCSF has no place for
//! (the AI service's tier and BAA, the site, the chain hash) go under `unmapped.aiwarden`,
//! OCSF's place for a producer's own attributes. docs/fleet.md has the table.
//!
//! Metadata only, as in the store: no payloads, URLs or paths exist to be sent.

use serde_json::{json, Map, Value};

use crate::policy::{Baa, Tier, Verdict};
use crate::store::Chained;

/// Host names an event lists at most (of the [`crate::incident::MAX_SEEN_PER_INCIDENT`]
/// the store keeps; `hosts_seen` gives the count): keeps a message under rsyslog's default
/// 8 KiB `maxMessageSize`, which would cut the JSON short.
pub const MAX_HOSTS: usize = 16;

/// The OCSF schema version the events follow.
pub const OCSF_VERSION: &str = "1.3.0";
/// Detection Finding.
pub const CLASS_UID: u32 = 2004;
/// Findings.
pub const CATEGORY_UID: u32 = 2;
/// Create: a new finding.
pub const ACTIVITY_CREATE: u32 = 1;

/// The fields every event carries; a receiver can insist on them (the tests' strict
/// receiver does).
pub const REQUIRED: [&str; 12] = [
    "class_uid",
    "category_uid",
    "activity_id",
    "type_uid",
    "time",
    "severity_id",
    "action_id",
    "disposition_id",
    "metadata",
    "finding_info",
    "evidences",
    "unmapped",
];

/// OCSF severity of a verdict: a flagged incident (let through: data may have left) is
/// Medium (3), a blocked one (nothing left) Low (2).
pub fn severity_id(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::Flag => 3,
        Verdict::Block => 2,
        Verdict::Allow => 1,
    }
}

fn severity_name(id: u8) -> &'static str {
    match id {
        3 => "Medium",
        2 => "Low",
        _ => "Informational",
    }
}

/// `action_id` and its name: 1 Allowed (flag), 2 Denied (block).
fn action(verdict: Verdict) -> (u8, &'static str) {
    match verdict {
        Verdict::Block => (2, "Denied"),
        Verdict::Flag | Verdict::Allow => (1, "Allowed"),
    }
}

/// `disposition_id` and its name: 2 Blocked (block), 17 Logged (flag: let through and
/// recorded).
fn disposition(verdict: Verdict) -> (u8, &'static str) {
    match verdict {
        Verdict::Block => (2, "Blocked"),
        Verdict::Flag => (17, "Logged"),
        Verdict::Allow => (1, "Allowed"),
    }
}

fn baa_str(b: Baa) -> &'static str {
    match b {
        Baa::None => "none",
        Baa::EnterpriseOnly => "enterprise_only",
        Baa::Available => "available",
        Baa::Unknown => "unknown",
    }
}

/// Where an event comes from: the clinic and the appliance.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The clinic's `site_name`.
    pub site: &'a str,
    /// The appliance's host name (the syslog HOSTNAME too).
    pub appliance: &'a str,
}

/// `inc` as an OCSF Detection Finding. `baa` is the catalog's BAA availability of the
/// service (the store does not keep it), `None` when the catalog does not know the service.
/// Absent values are left out, never sent as `null`.
pub fn finding(inc: &Chained, origin: Origin<'_>, baa: Option<Baa>) -> Value {
    let s = &inc.row.summary;
    let r = &s.record;
    let id = inc.row.id;
    let ms = |micros: i64| micros.div_euclid(1000);
    let sev = severity_id(r.verdict);
    let (action_id, action_name) = action(r.verdict);
    let (disposition_id, disposition_name) = disposition(r.verdict);
    // The same on every copy of this row, and unlike any row of another chain (a store
    // begun anew numbers its rows from 1 again): a SIEM's key for dropping duplicates.
    let uid = format!(
        "{}:{id}:{}",
        origin.site,
        inc.hash.get(..16).unwrap_or(&inc.hash)
    );
    let verb = match r.verdict {
        Verdict::Block => "blocked",
        _ => "flagged",
    };
    let device = r
        .label
        .as_deref()
        .or(r.device.as_deref())
        .map_or_else(|| r.client_ip.to_string(), str::to_string);
    let src = compact(json!({
        "ip": r.client_ip.to_string(),
        "mac": r.client_mac.map(|m| m.to_string()),
        "hostname": r.device,
        "name": r.label,
    }));
    let resource = compact(json!({
        "uid": r.service,
        "name": r.service_name,
        "type": "ai_service",
    }));
    let service = compact(json!({
        "id": r.service,
        "name": r.service_name,
        "category": r.category,
        "tier": r.tier.map(Tier::as_str),
        "baa": baa.map(baa_str),
    }));
    let own = compact(json!({
        "site": origin.site,
        "row_id": id,
        "chain_hash": inc.hash,
        "verdict": r.verdict.as_str(),
        "mode": r.mode.as_str(),
        "how": r.how.to_string(),
        "group": r.group,
        "hosts": s.hosts.iter().take(MAX_HOSTS).collect::<Vec<_>>(),
        "hosts_seen": s.hosts.len(),
        "service": service,
        "acknowledged": !inc.row.acks.is_empty(),
    }));
    let finding_info = json!({
        "uid": uid,
        "title": format!("AI service {verb}: {}", r.service_name),
        "types": ["shadow_ai"],
        "first_seen_time": ms(r.ts),
        "last_seen_time": ms(s.last_seen),
        "analytic": { "uid": r.rule, "name": r.rule, "type_id": 1, "type": "Rule" },
    });
    let metadata = json!({
        "version": OCSF_VERSION,
        "uid": uid,
        "original_time": r.ts.to_string(),
        "product": {
            "name": "aiwarden",
            "vendor_name": "aiwarden",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "log_name": "incidents",
    });
    json!({
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "type_uid": CLASS_UID * 100 + ACTIVITY_CREATE,
        "type_name": "Detection Finding: Create",
        "time": ms(r.ts),
        "start_time": ms(r.ts),
        "end_time": ms(s.last_seen),
        "count": s.count,
        "severity_id": sev,
        "severity": severity_name(sev),
        "status_id": 1,
        "status": "New",
        "action_id": action_id,
        "action": action_name,
        "disposition_id": disposition_id,
        "disposition": disposition_name,
        "message": format!("{device} reached {} ({verb})", r.service_name),
        "metadata": metadata,
        "finding_info": finding_info,
        "evidences": [{ "src_endpoint": src, "dst_endpoint": { "hostname": r.host } }],
        "resources": [resource],
        "device": { "hostname": origin.appliance, "type_id": 99, "type": "Other" },
        "unmapped": { "aiwarden": own },
    })
}

/// `v` with the object's `null` members removed (one level: nested objects are compacted
/// where they are built).
fn compact(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .collect::<Map<String, Value>>(),
        ),
        v => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{IncidentRecord, IncidentSummary};
    use crate::policy::Mode;
    use crate::store::IncidentRow;

    fn chained(verdict: Verdict, label: Option<&str>) -> Chained {
        let record = IncidentRecord {
            ts: 1_764_650_000_123_456,
            client_ip: "10.0.0.21".parse().expect("ip"),
            client_mac: Some("52:54:00:12:34:56".parse().expect("mac")),
            device: Some("reception-1".into()),
            label: label.map(Into::into),
            group: None,
            service: "chatgpt".into(),
            service_name: "ChatGPT".into(),
            category: Some("chat".into()),
            tier: Some(Tier::Consumer),
            verdict,
            mode: Mode::Enforce,
            how: "dns".parse().expect("how"),
            host: "chatgpt.com".into(),
            rule: "catalog/openai.toml:chatgpt".into(),
        };
        Chained {
            row: IncidentRow {
                id: 42,
                summary: IncidentSummary::opened(record),
                acks: Vec::new(),
            },
            hash: "ab".repeat(32),
        }
    }

    const ORIGIN: Origin<'static> = Origin {
        site: "Elm Street Clinic",
        appliance: "aiwarden-elm",
    };

    #[test]
    fn a_blocked_incident_maps_to_a_detection_finding() {
        let v = finding(
            &chained(Verdict::Block, Some("Front desk PC 1")),
            ORIGIN,
            Some(Baa::EnterpriseOnly),
        );
        for k in REQUIRED {
            assert!(v.get(k).is_some(), "{k} missing: {v}");
        }
        assert_eq!(v["type_uid"], 200_401);
        assert_eq!(v["time"], 1_764_650_000_123_i64);
        assert_eq!(v["severity_id"], 2);
        assert_eq!(
            (v["action_id"].clone(), v["disposition_id"].clone()),
            (2.into(), 2.into())
        );
        assert_eq!(
            v["finding_info"]["uid"],
            "Elm Street Clinic:42:abababababababab"
        );
        assert_eq!(v["metadata"]["uid"], v["finding_info"]["uid"]);
        assert_eq!(v["message"], "Front desk PC 1 reached ChatGPT (blocked)");
        let src = &v["evidences"][0]["src_endpoint"];
        assert_eq!(src["mac"], "52:54:00:12:34:56");
        assert_eq!(src["name"], "Front desk PC 1");
        assert_eq!(v["evidences"][0]["dst_endpoint"]["hostname"], "chatgpt.com");
        let a = &v["unmapped"]["aiwarden"];
        assert_eq!(a["row_id"], 42);
        assert_eq!(a["chain_hash"], "ab".repeat(32));
        assert_eq!(a["service"]["baa"], "enterprise_only");
        assert_eq!(a["service"]["tier"], "consumer");
        assert_eq!(a["verdict"], "block");
    }

    #[test]
    fn the_longest_incident_stays_under_8_kib_as_a_syslog_message() {
        let mut c = chained(Verdict::Block, Some(&"L".repeat(200)));
        let r = &mut c.row.summary;
        r.record.device = Some("d".repeat(200));
        r.record.host = format!("{}.example", "h".repeat(240));
        r.record.service_name = "S".repeat(100);
        r.record.rule = format!("site/deny.list:{}", "r".repeat(200));
        r.hosts = (0..crate::incident::MAX_SEEN_PER_INCIDENT)
            .map(|i| format!("{i:03}{}.example", "h".repeat(240)))
            .collect();
        let v = finding(&c, ORIGIN, Some(Baa::None));
        assert_eq!(
            v["unmapped"]["aiwarden"]["hosts"].as_array().map(Vec::len),
            Some(MAX_HOSTS)
        );
        assert_eq!(v["unmapped"]["aiwarden"]["hosts_seen"], 64);
        let json = v.to_string();
        let h = crate::fleet::syslog::Header {
            facility: 16,
            hostname: "h".repeat(255),
            procid: Some(u32::MAX),
        };
        let site = "S".repeat(200);
        let m = crate::fleet::syslog::message(
            &h,
            crate::fleet::syslog::Severity::Notice,
            c.row.summary.record.ts,
            "incident",
            &[
                ("site", &site),
                ("row", "9223372036854775807"),
                ("hash", &c.hash),
            ],
            &json,
        );
        assert!(m.len() < 8192, "{} bytes", m.len());
    }

    #[test]
    fn a_flagged_incident_is_allowed_and_logged_and_nothing_is_null() {
        let v = finding(&chained(Verdict::Flag, None), ORIGIN, None);
        assert_eq!(v["severity_id"], 3);
        assert_eq!(v["action"], "Allowed");
        assert_eq!(v["disposition_id"], 17);
        assert!(v["evidences"][0]["src_endpoint"].get("name").is_none());
        assert!(v["unmapped"]["aiwarden"]["service"].get("baa").is_none());
        assert_eq!(v["message"], "reception-1 reached ChatGPT (flagged)");
        assert!(!v.to_string().contains("null"), "{v}");
    }
}
