//! Reports built by hand, for the render tests, the render benchmark and the sample
//! screenshot: [`known`] with small figures a test can check one by one (several devices
//! and services, acknowledgements, a bypass, an allowed enterprise service, a truncated
//! list), and [`at_caps`] with every list at its cap.

#![allow(dead_code)]

use aiwarden::report::model::{
    AckEntry, Bypass, Continuity, Count, DeviceRow, Evidence, Followup, HeadRef, Headline, HeatDay,
    InventoryRow, Report, RulesInForce, ServiceRow, Truncated,
};
use aiwarden::report::period::{zone, Period, Which};

/// The chain head at the end of the known period.
pub(crate) const HEAD_HASH: &str =
    "9f2c4b7e1a0d3c5b8e6f4a2d1c0b9a8f7e6d5c4b3a29180f7e6d5c4b3a291807";
/// Last period's head.
pub(crate) const PREVIOUS_HASH: &str =
    "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";

fn period(which: Which) -> (Period, Period) {
    let tz = zone("America/New_York").expect("zone");
    // 2026-12-01, after every period used here.
    let now = 1_796_083_200_000_000;
    let p = Period::resolve(&which, &tz, now).expect("period");
    let prev = p.previous(&tz).expect("previous");
    (p, prev)
}

fn service(id: &str, name: &str, category: &str, n: [u64; 4]) -> ServiceRow {
    ServiceRow {
        service: id.into(),
        name: name.into(),
        category: category.into(),
        incidents: n[0],
        attempts: n[1],
        blocked: n[2],
        devices: n[3],
    }
}

#[allow(clippy::too_many_arguments)]
fn inventory(
    service: &str,
    name: &str,
    vendor: &str,
    category: &str,
    baa: &str,
    trains: &str,
    residency: &str,
    n: [u64; 3],
) -> InventoryRow {
    InventoryRow {
        service: service.into(),
        name: name.into(),
        vendor: vendor.into(),
        category: category.into(),
        baa: baa.into(),
        trains_on_data: trains.into(),
        residency: residency.into(),
        allowed: n[0],
        flagged: n[1],
        blocked: n[2],
    }
}

fn hours(cells: &[(usize, u64)]) -> ([u64; 24], u64) {
    let mut h = [0u64; 24];
    for (i, n) in cells {
        h[*i] = *n;
    }
    (h, h.iter().sum())
}

/// A small clinic's week with figures a test checks one by one.
pub(crate) fn known() -> Report {
    let (period, previous_period) = period(Which::Week("2026-W48".into()));
    let days = period.days().collect::<Vec<_>>();
    let day_cells: [&[(usize, u64)]; 7] = [
        &[(9, 2), (10, 1)],
        &[(14, 3)],
        &[(8, 1), (16, 1)],
        &[],
        &[(11, 2), (12, 1)],
        &[(22, 1)],
        &[],
    ];
    let heat = days
        .iter()
        .zip(day_cells)
        .map(|(day, cells)| {
            let (hours, total) = hours(cells);
            HeatDay {
                day: day.clone(),
                hours,
                total,
            }
        })
        .collect();
    Report {
        site: "Riverside Family Clinic".into(),
        period,
        previous_period,
        generated: "2026-11-30 06:00".into(),
        version: "0.1.0".into(),
        headline: Headline {
            incidents: 12,
            attempts: 1234,
            devices: 6,
            staff: 2,
            services: 3,
            blocked: 8,
            flagged: 4,
            bypass: 2,
            open: 9,
        },
        previous: Headline {
            incidents: 9,
            attempts: 1000,
            devices: 4,
            staff: 2,
            services: 2,
            blocked: 9,
            flagged: 0,
            bypass: 0,
            open: 3,
        },
        services: vec![
            service("chatgpt", "ChatGPT", "chatbot", [7, 1100, 5, 3]),
            service("claude", "Claude", "chatbot", [3, 120, 3, 2]),
            service("deepl", "DeepL Translator", "translation", [2, 14, 0, 1]),
        ],
        categories: vec![
            Count {
                name: "chatbot".into(),
                count: 10,
            },
            Count {
                name: "translation".into(),
                count: 2,
            },
        ],
        devices: vec![
            DeviceRow {
                device: "front-desk-1".into(),
                staff: Some("Zoë Müller".into()),
                incidents: 6,
                attempts: 930,
                services: vec!["ChatGPT".into(), "Claude".into()],
                open: 4,
                acknowledged: 2,
            },
            DeviceRow {
                device: "exam-room-3".into(),
                staff: Some("Dr. Ana Patel".into()),
                incidents: 4,
                attempts: 290,
                services: vec!["ChatGPT".into(), "DeepL Translator".into()],
                open: 3,
                acknowledged: 1,
            },
            DeviceRow {
                device: "aa:bb:cc:dd:ee:01".into(),
                staff: None,
                incidents: 2,
                attempts: 14,
                services: vec!["Claude".into()],
                open: 0,
                acknowledged: 2,
            },
        ],
        heat,
        bypass: Bypass {
            doh_dot: 1,
            ech: 0,
            unexplained: 1,
            proxy: 0,
            quic: 1,
        },
        inventory: vec![
            inventory(
                "azure-openai",
                "Azure OpenAI (clinic tenant)",
                "Microsoft",
                "chatbot",
                "available",
                "no",
                "US (customer-chosen region)",
                [480, 0, 0],
            ),
            inventory(
                "chatgpt",
                "ChatGPT",
                "OpenAI",
                "chatbot",
                "enterprise_only",
                "opt_out",
                "US",
                [0, 300, 800],
            ),
            inventory(
                "claude",
                "Claude",
                "Anthropic",
                "chatbot",
                "enterprise_only",
                "no",
                "US",
                [0, 0, 120],
            ),
            inventory(
                "deepl",
                "DeepL Translator",
                "DeepL SE",
                "translation",
                "none",
                "unknown",
                "EU",
                [0, 14, 0],
            ),
        ],
        open_followups: vec![
            Followup {
                device: "front-desk-1".into(),
                staff: Some("Zoë Müller".into()),
                service: "ChatGPT".into(),
                incidents: 3,
                first_seen: "2026-11-23 09:12".into(),
                last_seen: "2026-11-27 11:40".into(),
                incident: 4101,
            },
            Followup {
                device: "exam-room-3".into(),
                staff: Some("Dr. Ana Patel".into()),
                service: "DeepL Translator".into(),
                incidents: 2,
                first_seen: "2026-11-24 14:05".into(),
                last_seen: "2026-11-24 14:31".into(),
                incident: 4107,
            },
        ],
        acknowledged: vec![
            AckEntry {
                incident: 4090,
                device: "aa:bb:cc:dd:ee:01".into(),
                service: "Claude".into(),
                by: "compliance-jane".into(),
                at: "2026-11-25 10:02".into(),
                note: "Spoke with the locum; personal device, removed from the clinic Wi-Fi."
                    .into(),
            },
            AckEntry {
                incident: 4102,
                device: "front-desk-1".into(),
                service: "Claude".into(),
                by: "compliance-jane".into(),
                at: "2026-11-26 15:30".into(),
                note: "Reminded of the AI policy; use the clinic's Azure OpenAI.".into(),
            },
        ],
        truncated: Truncated {
            devices: 3,
            open_followups: 4,
            acknowledged: 0,
        },
        rules: RulesInForce {
            version: "3f9c2a1b4d5e6f70".into(),
            services: 142,
            allow: 3,
            deny: 2,
            mode: "enforce".into(),
            enforcement: vec![
                "dns: blocked names answered 0.0.0.0 and ::".into(),
                "firewall: TLS and QUIC to blocked addresses refused".into(),
            ],
            changes: vec![Count {
                name: "2026-11-25 14:02 rules 3f9c2a1b4d5e6f70".into(),
                count: 1,
            }],
        },
        evidence: Evidence {
            verified: true,
            summary: "chain intact: 5021 rows".into(),
            rows: 5021,
            keyed: true,
            head: Some(HeadRef {
                id: 5020,
                hash: HEAD_HASH.into(),
            }),
            previous_head: Some(Continuity {
                head: HeadRef {
                    id: 4012,
                    hash: PREVIOUS_HASH.into(),
                },
                source: "2026-W47.json".into(),
                status: "present".into(),
            }),
        },
    }
}

/// A month with every list at its cap: 200 devices, 300 open follow-ups, 300
/// acknowledgements, 60 services, 31 days of heat.
pub(crate) fn at_caps() -> Report {
    let mut r = known();
    let (period, previous_period) = period(Which::Range {
        from: "2026-10-01".into(),
        to: "2026-10-31".into(),
    });
    r.heat = period
        .days()
        .enumerate()
        .map(|(d, day)| {
            let mut hours = [0u64; 24];
            for (h, n) in hours.iter_mut().enumerate() {
                *n = ((d * 7 + h * 13) % 40) as u64 * u64::from((7..19).contains(&h));
            }
            HeatDay {
                day,
                total: hours.iter().sum(),
                hours,
            }
        })
        .collect();
    r.period = period;
    r.previous_period = previous_period;
    r.services = (0..60)
        .map(|i| {
            service(
                &format!("svc-{i}"),
                &format!("AI service number {i}"),
                ["chatbot", "coding", "image", "translation", "transcription"][i % 5],
                [
                    600 - i as u64 * 9,
                    9000 - i as u64 * 100,
                    300 - i as u64 * 4,
                    1 + i as u64 % 40,
                ],
            )
        })
        .collect();
    r.categories = ["chatbot", "coding", "image", "translation", "transcription"]
        .iter()
        .enumerate()
        .map(|(i, c)| Count {
            name: (*c).into(),
            count: 4000 - i as u64 * 500,
        })
        .collect();
    r.devices = (0..200)
        .map(|i| DeviceRow {
            device: format!("workstation-{i:03}.clinic.lan"),
            staff: (i % 3 != 0).then(|| format!("Staff member {i}")),
            incidents: 500 - i as u64,
            attempts: 5000 - i as u64 * 7,
            services: vec![
                "ChatGPT".into(),
                "Claude".into(),
                format!("AI service number {}", i % 60),
            ],
            open: (i % 5) as u64,
            acknowledged: 500 - i as u64 - (i % 5) as u64,
        })
        .collect();
    r.open_followups = (0..300)
        .map(|i| Followup {
            device: format!("workstation-{:03}.clinic.lan", i % 200),
            staff: Some(format!("Staff member {}", i % 200)),
            service: format!("AI service number {}", i % 60),
            incidents: 1 + (i % 7) as u64,
            first_seen: format!("2026-10-{:02} 09:{:02}", 1 + i % 28, i % 60),
            last_seen: format!("2026-10-{:02} 17:{:02}", 1 + i % 28, i % 60),
            incident: 100_000 + i as i64,
        })
        .collect();
    r.acknowledged = (0..300)
        .map(|i| AckEntry {
            incident: 90_000 + i as i64,
            device: format!("workstation-{:03}.clinic.lan", i % 200),
            service: format!("AI service number {}", i % 60),
            by: "compliance-jane".into(),
            at: format!("2026-10-{:02} 12:{:02}", 1 + i % 30, i % 60),
            note: "Talked to the staff member about the AI policy and the approved tool.".into(),
        })
        .collect();
    r.truncated = Truncated {
        devices: 40,
        open_followups: 1200,
        acknowledged: 75,
    };
    r
}
