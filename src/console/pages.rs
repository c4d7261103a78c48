//! The console's pages: askama templates (under `templates/console/`, compiled in and
//! HTML-escaped throughout: host and device names come off the wire and are hostile) and
//! the values they show, built from store rows. Who may see what is decided here too: a
//! viewer gets device names, never an address or a MAC, unless the configuration says so.

use askama::Template;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::store::{DeviceCount, IncidentRow, Role, Tally};

/// What every page after login shows in its header.
#[derive(Debug, Clone)]
pub(super) struct Nav {
    /// The user.
    pub(super) user: String,
    /// Their role.
    pub(super) role: Role,
    /// The session's CSRF token (the logout form carries it).
    pub(super) csrf: String,
    /// Which page is open (`dashboard`, `incidents`, `reports`, `rules`).
    pub(super) page: &'static str,
}

/// The login form.
#[derive(Template)]
#[template(path = "console/login.html")]
pub(super) struct Login {
    pub(super) title: &'static str,
    pub(super) nav: Option<Nav>,
    /// The login form's token (also in the login cookie).
    pub(super) csrf: String,
    /// The name typed, shown again after a failure.
    pub(super) user: String,
    /// Why the last attempt failed.
    pub(super) message: Option<String>,
}

/// An error page.
#[derive(Template)]
#[template(path = "console/error.html")]
pub(super) struct ErrorPage {
    pub(super) title: String,
    pub(super) nav: Option<Nav>,
    pub(super) message: String,
}

/// One day's bar.
#[derive(Debug, Clone)]
pub(super) struct Day {
    pub(super) label: String,
    pub(super) count: u64,
}

/// A service in the dashboard's top list.
#[derive(Debug, Clone)]
pub(super) struct TopService {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) incidents: u64,
    pub(super) blocked: u64,
}

/// A device in the dashboard's top list.
#[derive(Debug, Clone)]
pub(super) struct TopDevice {
    pub(super) name: String,
    /// What the incidents filter takes for it (`None` when the viewer may not filter by
    /// what names it).
    pub(super) filter: Option<String>,
    pub(super) incidents: u64,
    pub(super) open: u64,
}

/// This week's dashboard.
#[derive(Template)]
#[template(path = "console/dashboard.html")]
pub(super) struct Dashboard {
    pub(super) title: &'static str,
    pub(super) nav: Option<Nav>,
    /// `Week 2026-W48`.
    pub(super) week: String,
    /// `Mon 23 Nov 2026 – Sun 29 Nov 2026`.
    pub(super) range: String,
    /// The time zone's name.
    pub(super) zone: String,
    pub(super) weeks_ago: u32,
    /// The week's first and last day, for links to the incidents list.
    pub(super) from: String,
    pub(super) to: String,
    pub(super) t: Tally,
    pub(super) days: Vec<Day>,
    pub(super) day_max: u64,
    pub(super) services: Vec<TopService>,
    pub(super) devices: Vec<TopDevice>,
}

/// The incidents list's filters as typed (empty strings for none).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub(super) struct Query {
    pub(super) device: String,
    pub(super) service: String,
    pub(super) status: String,
    pub(super) from: String,
    pub(super) to: String,
    /// `ts.id` of the last row of the page before.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(super) before: String,
    /// Incidents just acknowledged (shown once).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(super) acked: String,
}

/// One incident as listed.
#[derive(Debug, Clone)]
pub(super) struct Row {
    pub(super) id: i64,
    pub(super) first: String,
    pub(super) device: String,
    /// Address and MAC (empty when not shown).
    pub(super) address: String,
    pub(super) service: String,
    pub(super) verdict: &'static str,
    pub(super) count: u64,
    /// The first host, and how many more.
    pub(super) host: String,
    /// `open` or `acknowledged` (a CSS class).
    pub(super) status: &'static str,
    /// `who on when: note`, oldest first.
    pub(super) acks: Vec<String>,
}

/// The incidents list.
#[derive(Template)]
#[template(path = "console/incidents.html")]
pub(super) struct Incidents {
    pub(super) title: &'static str,
    pub(super) nav: Option<Nav>,
    pub(super) csrf: String,
    pub(super) q: Query,
    /// `(id, name)` of every catalog service, by name.
    pub(super) services: Vec<(String, String)>,
    pub(super) rows: Vec<Row>,
    pub(super) can_ack: bool,
    pub(super) show_addresses: bool,
    /// The query string the acknowledge form returns to.
    pub(super) back: String,
    pub(super) flash: Option<String>,
    /// Said when a page is short because its walk stopped, not because nothing is left.
    pub(super) searched: Option<String>,
    /// Links to the first and the next page.
    pub(super) first: Option<String>,
    pub(super) next: Option<String>,
}

/// A report file.
#[derive(Debug, Clone)]
pub(super) struct ReportFile {
    pub(super) name: String,
    pub(super) size: String,
    pub(super) modified: String,
}

/// The report archive.
#[derive(Template)]
#[template(path = "console/reports.html")]
pub(super) struct Reports {
    pub(super) title: &'static str,
    pub(super) nav: Option<Nav>,
    pub(super) dir: String,
    pub(super) rows: Vec<ReportFile>,
    pub(super) can_download: bool,
}

/// A catalog service as the rules page lists it.
#[derive(Debug, Clone)]
pub(super) struct ServiceLine {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) category: String,
    pub(super) baa: String,
    pub(super) trains: String,
    pub(super) residency: String,
}

/// The rules in force, and an explanation for a host.
#[derive(Template)]
#[template(path = "console/rules.html")]
pub(super) struct Rules {
    pub(super) title: &'static str,
    pub(super) nav: Option<Nav>,
    pub(super) mode: &'static str,
    pub(super) host: String,
    pub(super) explanation: Option<String>,
    pub(super) services: Vec<ServiceLine>,
    /// `(line, entry)` of the site files, comments left out.
    pub(super) allow: Vec<(usize, String)>,
    pub(super) deny: Vec<(usize, String)>,
}

/// `2026-11-23 09:40` in `tz`.
pub(super) fn local_time(us: i64, tz: &TimeZone) -> String {
    match Timestamp::from_microsecond(us) {
        Ok(t) => t
            .to_zoned_datetime(tz.clone())
            .strftime("%Y-%m-%d %H:%M")
            .to_string(),
        Err(_) => "?".into(),
    }
}

/// The name a device goes by: its label, else its DHCP host name, else (when addresses may
/// be shown) its MAC or address, else a placeholder.
pub(super) fn device_name(
    label: Option<&str>,
    device: Option<&str>,
    mac: Option<&str>,
    ip: &str,
    addresses: bool,
) -> String {
    label
        .or(device)
        .map(str::to_string)
        .or_else(|| addresses.then(|| mac.unwrap_or(ip).to_string()))
        .unwrap_or_else(|| "unlabelled device".into())
}

/// A dashboard device line.
pub(super) fn top_device(d: &DeviceCount, addresses: bool) -> TopDevice {
    let name = device_name(
        d.label.as_deref(),
        d.device.as_deref(),
        d.mac.as_deref(),
        &d.ip,
        addresses,
    );
    let filter = d
        .label
        .clone()
        .or_else(|| d.device.clone())
        .or_else(|| addresses.then(|| d.mac.clone().unwrap_or_else(|| d.ip.clone())));
    TopDevice {
        name,
        filter,
        incidents: d.incidents,
        open: d.open,
    }
}

/// An incident as listed, for `role` (`addresses`: may see client addresses and MACs).
pub(super) fn row(r: &IncidentRow, tz: &TimeZone, addresses: bool) -> Row {
    let i = &r.summary.record;
    let mac = i.client_mac.map(|m| m.to_string());
    let more = r.summary.hosts.len().saturating_sub(1);
    Row {
        id: r.id,
        first: local_time(i.ts, tz),
        device: device_name(
            i.label.as_deref(),
            i.device.as_deref(),
            mac.as_deref(),
            &i.client_ip.to_string(),
            addresses,
        ),
        address: if addresses {
            match &mac {
                Some(m) => format!("{} {m}", i.client_ip),
                None => i.client_ip.to_string(),
            }
        } else {
            String::new()
        },
        service: i.service_name.clone(),
        verdict: i.verdict.as_str(),
        count: r.summary.count,
        host: if more > 0 {
            format!("{} (+{more})", i.host)
        } else {
            i.host.clone()
        },
        status: if r.acks.is_empty() {
            "open"
        } else {
            "acknowledged"
        },
        acks: r
            .acks
            .iter()
            .map(|a| format!("{} on {}: {}", a.by, local_time(a.ts, tz), a.note))
            .collect(),
    }
}

/// `1.2 MB`.
pub(super) fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{:.1} kB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{How, IncidentRecord, IncidentSummary};
    use crate::policy::{Mac, Mode, Verdict};
    use crate::store::AckRow;

    fn hostile() -> IncidentRow {
        IncidentRow {
            id: 7,
            summary: IncidentSummary {
                record: IncidentRecord {
                    ts: 1_763_888_400_000_000,
                    client_ip: "10.0.0.9".parse().expect("ip"),
                    client_mac: Some(Mac([0x52, 0x54, 0, 0xab, 0xcd, 0xef])),
                    device: Some("<script>alert(1)</script>".into()),
                    label: None,
                    group: None,
                    service: "chatgpt".into(),
                    service_name: "ChatGPT \"quoted\"".into(),
                    category: None,
                    tier: None,
                    verdict: Verdict::Block,
                    mode: Mode::Enforce,
                    how: How::of(crate::detect::Proto::Tls),
                    host: "evil.example\"><img src=x onerror=alert(1)>".into(),
                    rule: "r".into(),
                },
                last_seen: 1_763_888_400_000_000,
                count: 3,
                hosts: vec!["a".into(), "b".into()],
                hows: vec![],
            },
            acks: vec![AckRow {
                id: 8,
                incident_id: 7,
                ts: 1_763_888_500_000_000,
                by: "ada".into(),
                note: "<b>trained</b>".into(),
            }],
        }
    }

    #[test]
    fn hostile_names_are_escaped_and_viewers_see_no_addresses() {
        let tz = TimeZone::UTC;
        let page = |addresses: bool| {
            Incidents {
                title: "Incidents",
                nav: None,
                csrf: "t\"ok".into(),
                q: Query::default(),
                services: vec![("x\"".into(), "<i>X</i>".into())],
                rows: vec![row(&hostile(), &tz, addresses)],
                can_ack: true,
                show_addresses: addresses,
                back: "device=%22".into(),
                flash: None,
                searched: Some("<b>".into()),
                first: None,
                next: Some("/incidents?before=1.2&device=a".into()),
            }
            .render()
            .expect("render")
        };
        let html = page(false);
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
                || html.contains("&lt;script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(!html.contains("<b>trained"), "{html}");
        assert!(!html.contains("<i>X</i>"), "{html}");
        assert!(
            !html.contains("10.0.0.9") && !html.contains("52:54:00"),
            "a viewer sees no address"
        );
        assert!(
            html.contains("acknowledged by ada on 2025-11-23 09:01: &#60;b&#62;trained"),
            "{html}"
        );
        let html = page(true);
        assert!(html.contains("10.0.0.9 52:54:00:ab:cd:ef"), "{html}");
    }

    #[test]
    fn devices_are_named_without_addresses_for_viewers() {
        assert_eq!(
            device_name(None, None, Some("m"), "10.0.0.1", false),
            "unlabelled device"
        );
        assert_eq!(device_name(None, None, Some("m"), "10.0.0.1", true), "m");
        assert_eq!(
            device_name(Some("Front"), Some("pc"), None, "i", false),
            "Front"
        );
        assert_eq!(size(2048), "2.0 kB");
        assert_eq!(local_time(0, &TimeZone::UTC), "1970-01-01 00:00");
    }
}
