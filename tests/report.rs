//! `aiwarden report` on a store holding a known week: every figure of the JSON form is
//! checked against what was written (local days and hours in New York, the week before
//! for the change, acknowledgements, bypasses, allowed enterprise use in the inventory,
//! the chain evidence and continuity from the archived report before); the CSV form
//! round-trips through a CSV reader with spreadsheet formulas defused. A long file: the
//! known week's fixture is shared by every check of the report's forms.

#[path = "support/sample_store.rs"]
mod sample_store;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aiwarden::incident::{IncidentRecord, Touch};
use aiwarden::policy::{Mode, Tier, Verdict};
use aiwarden::store::Store;
use serde_json::Value;

/// Unix microseconds of a New York local time in late November 2026 (UTC-5).
fn ny(day: u32, hh: u32, mm: u32) -> i64 {
    let t: jiff::Timestamp = format!("2026-11-{day:02}T{:02}:{mm:02}:00Z", hh + 5)
        .parse()
        .or_else(|_| {
            // Past midnight UTC: the next UTC day.
            format!("2026-11-{:02}T{:02}:{mm:02}:00Z", day + 1, hh + 5 - 24).parse()
        })
        .expect("time");
    t.as_microsecond()
}

struct Dev {
    ip: &'static str,
    mac: Option<&'static str>,
    name: Option<&'static str>,
    label: Option<&'static str>,
}

const FRONT: Dev = Dev {
    ip: "10.0.0.21",
    mac: Some("52:54:00:00:00:21"),
    name: Some("reception-1"),
    label: Some("Front desk PC"),
};
const LEE: Dev = Dev {
    ip: "10.0.0.22",
    mac: Some("52:54:00:00:00:22"),
    name: Some("lee-laptop"),
    label: Some("Dr Lee laptop"),
};
const UNKNOWN: Dev = Dev {
    ip: "10.0.0.99",
    mac: None,
    name: None,
    label: None,
};
/// A device named by its DHCP lease with a hostile name.
const HOSTILE: Dev = Dev {
    ip: "10.0.0.66",
    mac: Some("52:54:00:00:00:66"),
    name: Some("=cmd|' /C calc'!A0"),
    label: None,
};

fn record(
    d: &Dev,
    ts: i64,
    service: &str,
    name: &str,
    category: &str,
    verdict: Verdict,
    how: &str,
) -> IncidentRecord {
    IncidentRecord {
        ts,
        client_ip: d.ip.parse().expect("ip"),
        client_mac: d.mac.map(|m| m.parse().expect("mac")),
        device: d.name.map(String::from),
        label: d.label.map(String::from),
        group: None,
        service: service.into(),
        service_name: name.into(),
        category: Some(category.into()),
        tier: Some(Tier::Consumer),
        verdict,
        mode: if verdict == Verdict::Block {
            Mode::Enforce
        } else {
            Mode::Monitor
        },
        how: how.parse().expect("how"),
        host: format!("{service}.example"),
        rule: format!("catalog/test.toml:{service}"),
    }
}

fn touch(ts: i64, how: &str) -> Touch {
    Touch {
        ts,
        host: "www.chatgpt.example".into(),
        how: how.parse().expect("how"),
        attempt: true,
        mac: None,
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    config: PathBuf,
    db: PathBuf,
}

/// The known week 2026-W48 (Mon 23 to Sun 29 November, New York) and the week before.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("incidents.db");
    let devices = dir.path().join("devices.toml");
    std::fs::write(
        &devices,
        r#"
[[device]]
mac = "52:54:00:00:00:21"
label = "Front desk PC"
owner = "Alice (reception)"

[[device]]
name = "lee-laptop"
label = "Dr Lee laptop"
owner = "Dr Lee"
"#,
    )
    .expect("devices");
    let config = dir.path().join("aiwarden.toml");
    std::fs::write(
        &config,
        format!(
            "site_name = \"Main Street Clinic\"\ntimezone = \"America/New_York\"\n\
             [store]\npath = \"{}\"\n[devices]\ninventory = \"{}\"\n",
            db.display(),
            devices.display()
        ),
    )
    .expect("config");

    let mut store = Store::open(&db).expect("store");
    use Verdict::{Block, Flag};
    // The week before (W47): two incidents of one device, one acknowledged during W48.
    let before = store
        .append_incidents(&[
            record(
                &FRONT,
                ny(17, 10, 0),
                "chatgpt",
                "ChatGPT",
                "chat",
                Flag,
                "tls",
            ),
            record(
                &FRONT,
                ny(18, 10, 0),
                "claude",
                "Claude",
                "chat",
                Flag,
                "dns",
            ),
        ])
        .expect("append");
    // W48.
    let ids = store
        .append_incidents(&[
            // Mon 14:10: QUIC, blocked.
            record(
                &FRONT,
                ny(23, 14, 10),
                "claude",
                "Claude",
                "chat",
                Block,
                "quic,quic_drop",
            ),
            // Tue 09:30: flagged, two more attempts later (3 in all), one over QUIC.
            record(
                &FRONT,
                ny(24, 9, 30),
                "chatgpt",
                "ChatGPT",
                "chat",
                Flag,
                "tls",
            ),
            // Wed 11:05: ECH and no DNS answer, reset; acknowledged on Thursday.
            record(
                &LEE,
                ny(25, 11, 5),
                "chatgpt",
                "ChatGPT",
                "chat",
                Block,
                "tls,unresolved,ech,reset",
            ),
            // Thu 16:45: an unknown device at a DoH resolver by address.
            record(
                &UNKNOWN,
                ny(26, 16, 45),
                "doh-resolvers",
                "DoH resolvers",
                "bypass",
                Flag,
                "tls,addr",
            ),
            // Fri 08:00: through a proxy.
            record(
                &LEE,
                ny(27, 8, 0),
                "gemini",
                "Gemini",
                "chat",
                Flag,
                "connect",
            ),
            // Sun 23:59: the last minute of the week.
            record(
                &HOSTILE,
                ny(29, 23, 59),
                "chatgpt",
                "ChatGPT",
                "chat",
                Flag,
                "dns",
            ),
            // Mon 30 00:30: the next week.
            record(
                &LEE,
                ny(30, 0, 30),
                "chatgpt",
                "ChatGPT",
                "chat",
                Flag,
                "dns",
            ),
        ])
        .expect("append");
    store
        .touch_incident(ids[1], &touch(ny(24, 9, 31), "tls"))
        .expect("touch");
    store
        .touch_incident(ids[1], &touch(ny(24, 9, 40), "quic"))
        .expect("touch");
    store
        .ack(
            ids[2],
            ny(26, 9, 0),
            "Pat (compliance)",
            "trained on the AI policy",
        )
        .expect("ack");
    store
        .ack(before[0], ny(23, 12, 0), "Pat (compliance)", "reminded")
        .expect("ack");
    // The inventory: flagged and blocked attempts, and the clinic's own Azure OpenAI.
    for (day, service, verdict, n) in [
        ("2026-11-24", "chatgpt", Flag, 3),
        ("2026-11-25", "chatgpt", Block, 1),
        ("2026-11-24", "azure-openai", Verdict::Allow, 25),
        ("2026-11-26", "azure-openai", Verdict::Allow, 15),
        ("2026-11-10", "azure-openai", Verdict::Allow, 99),
    ] {
        store.add_usage(day, service, verdict, n).expect("usage");
    }
    // Rules loaded twice in the week with another version in between.
    for (day, version) in [(23, "aaaa"), (25, "bbbb"), (27, "aaaa")] {
        store
            .record_event(
                ny(day, 7, 0),
                "rules_loaded",
                "aiwarden",
                &format!("version {version}: 58 services"),
            )
            .expect("event");
    }
    drop(store);
    Fixture {
        _dir: dir,
        config,
        db,
    }
}

fn aiwarden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aiwarden"))
        .args(args)
        .output()
        .expect("runs")
}

fn report_json(f: &Fixture, week: &str) -> Value {
    let out = aiwarden(&[
        "report",
        "--config",
        f.config.to_str().expect("utf-8"),
        "--week",
        week,
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn every_figure_of_a_known_week() {
    let f = fixture();
    let r = report_json(&f, "2026-W48");
    assert_eq!(r["site"], "Main Street Clinic");
    assert_eq!(r["period"]["label"], "2026-W48");
    assert_eq!(r["period"]["first"], "2026-11-23");
    assert_eq!(r["period"]["last"], "2026-11-29");
    assert_eq!(r["period"]["timezone"], "America/New_York");
    assert_eq!(r["previous_period"]["label"], "2026-W47");

    let h = &r["headline"];
    let figures: Vec<u64> = [
        "incidents",
        "attempts",
        "devices",
        "staff",
        "services",
        "blocked",
        "flagged",
        "bypass",
        "open",
    ]
    .iter()
    .map(|k| n(&h[k]))
    .collect();
    // 6 incidents (Mon 30 is the next week); attempts 1+3+1+1+1+1; devices Front, Lee,
    // 10.0.0.99, the hostile name; staff Alice and Dr Lee; services claude, chatgpt,
    // doh-resolvers, gemini; blocked claude and Lee's chatgpt; bypass: QUIC (claude),
    // ECH+unexplained (Lee), DoH (unknown), proxy (gemini), and the Tuesday chatgpt
    // incident retried over QUIC; open: all but Lee's chatgpt.
    assert_eq!(figures, [6, 8, 4, 2, 4, 2, 4, 5, 5], "{h}");
    let p = &r["previous"];
    assert_eq!(
        (n(&p["incidents"]), n(&p["devices"]), n(&p["open"])),
        (2, 1, 1)
    );

    let services: Vec<(String, u64, u64, u64)> = r["services"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| {
            (
                s["service"].as_str().expect("id").to_string(),
                n(&s["incidents"]),
                n(&s["attempts"]),
                n(&s["blocked"]),
            )
        })
        .collect();
    assert_eq!(
        services,
        [
            ("chatgpt".to_string(), 3, 5, 1),
            ("claude".to_string(), 1, 1, 1),
            ("doh-resolvers".to_string(), 1, 1, 0),
            ("gemini".to_string(), 1, 1, 0),
        ]
    );
    assert_eq!(r["categories"][0]["name"], "chat");
    assert_eq!(n(&r["categories"][0]["count"]), 5);
    assert_eq!(r["categories"][1]["name"], "bypass");

    let devices = r["devices"].as_array().expect("devices");
    let by_name = |d: &str| {
        devices
            .iter()
            .find(|x| x["device"] == d)
            .unwrap_or_else(|| panic!("no device {d} in {devices:?}"))
    };
    let front = by_name("Front desk PC");
    assert_eq!(front["staff"], "Alice (reception)");
    assert_eq!((n(&front["incidents"]), n(&front["attempts"])), (2, 4));
    assert_eq!((n(&front["open"]), n(&front["acknowledged"])), (2, 0));
    assert_eq!(front["services"], serde_json::json!(["ChatGPT", "Claude"]));
    let lee = by_name("Dr Lee laptop");
    assert_eq!(lee["staff"], "Dr Lee");
    assert_eq!((n(&lee["open"]), n(&lee["acknowledged"])), (1, 1));
    assert!(by_name("10.0.0.99")["staff"].is_null());
    by_name("=cmd|' /C calc'!A0");

    // Heat strip: one row per local day, incidents by local hour.
    let heat = r["heat"].as_array().expect("heat");
    assert_eq!(heat.len(), 7);
    let cells: Vec<(usize, usize, u64)> = heat
        .iter()
        .enumerate()
        .flat_map(|(d, day)| {
            day["hours"]
                .as_array()
                .expect("hours")
                .iter()
                .enumerate()
                .filter(|(_, c)| n(c) > 0)
                .map(move |(h, c)| (d, h, n(c)))
        })
        .collect();
    assert_eq!(
        cells,
        [
            (0, 14, 1),
            (1, 9, 1),
            (2, 11, 1),
            (3, 16, 1),
            (4, 8, 1),
            (6, 23, 1)
        ]
    );
    assert_eq!(heat[6]["day"], "2026-11-29");

    let b = &r["bypass"];
    let bypass: Vec<u64> = ["doh_dot", "ech", "unexplained", "proxy", "quic"]
        .iter()
        .map(|k| n(&b[k]))
        .collect();
    // QUIC: claude's incident and chatgpt's touched over QUIC.
    assert_eq!(bypass, [1, 1, 2, 1, 2], "{b}");

    // The inventory: the week's usage (UTC days 23 to 30), allowed enterprise use too,
    // with the catalog's facts.
    let inv = r["inventory"].as_array().expect("inventory");
    let azure = inv
        .iter()
        .find(|i| i["service"] == "azure-openai")
        .expect("azure in the inventory");
    assert_eq!((n(&azure["allowed"]), n(&azure["flagged"])), (40, 0));
    assert_eq!(azure["baa"], "available");
    assert_eq!(azure["trains_on_data"], "no");
    assert_eq!(azure["residency"], "per resource region");
    let chatgpt = inv
        .iter()
        .find(|i| i["service"] == "chatgpt")
        .expect("chatgpt");
    assert_eq!((n(&chatgpt["flagged"]), n(&chatgpt["blocked"])), (3, 1));
    assert_eq!(chatgpt["baa"], "enterprise_only");
    assert_eq!(inv.len(), 2);

    // Follow-ups: open per device and service; acknowledgements made in the week,
    // the one of last week's incident included.
    let open = r["open_followups"].as_array().expect("open");
    assert_eq!(open.len(), 5);
    assert!(open
        .iter()
        .all(|o| !(o["device"] == "Dr Lee laptop" && o["service"] == "ChatGPT")));
    let acks = r["acknowledged"].as_array().expect("acks");
    let acks: Vec<(&str, &str, &str)> = acks
        .iter()
        .map(|a| {
            (
                a["device"].as_str().expect("device"),
                a["service"].as_str().expect("service"),
                a["at"].as_str().expect("at"),
            )
        })
        .collect();
    assert_eq!(
        acks,
        [
            ("Front desk PC", "ChatGPT", "2026-11-23 12:00"),
            ("Dr Lee laptop", "ChatGPT", "2026-11-26 09:00"),
        ]
    );

    // Rules and evidence.
    assert_eq!(r["rules"]["version"].as_str().expect("version").len(), 16);
    assert!(n(&r["rules"]["services"]) > 50);
    assert_eq!(r["rules"]["mode"], "monitor");
    assert_eq!(
        r["rules"]["changes"],
        serde_json::json!([
            {"name": "2026-11-23 07:00: version aaaa: 58 services", "count": 2},
            {"name": "2026-11-25 07:00: version bbbb: 58 services", "count": 1},
        ])
    );
    let e = &r["evidence"];
    assert_eq!(e["verified"], true);
    // 9 incidents (ids 1 to 9), 2 acks (10, 11) and 3 rule loads (12 to 14), all written
    // during the week but the Monday-30 incident: the week's last row is the last load.
    assert_eq!(n(&e["rows"]), 14);
    assert_eq!(n(&e["head"]["id"]), 14);
    assert_eq!(e["head"]["hash"].as_str().expect("hash").len(), 64);
    assert_eq!(e["previous_head"]["source"], "store");
    assert_eq!(e["previous_head"]["status"], "present");
    assert_eq!(n(&e["previous_head"]["head"]["id"]), 2);
}

#[test]
fn the_archive_carries_the_head_from_report_to_report() {
    let f = fixture();
    let dir = f.db.parent().expect("dir").join("reports");
    let out = aiwarden(&[
        "report",
        "--config",
        f.config.to_str().expect("utf-8"),
        "--week",
        "2026-W47",
        "--archive",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for ext in ["json", "csv"] {
        assert!(dir.join(format!("2026-W47.{ext}")).exists(), "{ext}");
    }
    let w47: Value =
        serde_json::from_slice(&std::fs::read(dir.join("2026-W47.json")).expect("read"))
            .expect("json");
    let printed = w47["evidence"]["head"].clone();
    assert_eq!(n(&printed["id"]), 2);

    let r = report_json(&f, "2026-W48");
    let cont = &r["evidence"]["previous_head"];
    assert_eq!(cont["source"], "2026-W47.json");
    assert_eq!(cont["status"], "present");
    assert_eq!(cont["head"], printed);

    // A printed head the chain no longer holds is reported, not hidden.
    let mut forged = w47.clone();
    forged["evidence"]["head"]["hash"] = Value::String("00".repeat(32));
    std::fs::write(
        dir.join("2026-W47.json"),
        serde_json::to_vec(&forged).expect("json"),
    )
    .expect("write");
    let r = report_json(&f, "2026-W48");
    assert_eq!(r["evidence"]["previous_head"]["status"], "changed");
}

#[test]
fn csv_round_trips_with_formulas_defused() {
    let f = fixture();
    let out = aiwarden(&[
        "report",
        "--config",
        f.config.to_str().expect("utf-8"),
        "--week",
        "2026-W48",
        "--format",
        "csv",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rd = csv::Reader::from_reader(out.stdout.as_slice());
    let header: Vec<String> = rd
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(header, aiwarden::report::CSV_COLUMNS);
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 6);
    let col = |name: &str| header.iter().position(|h| h == name).expect("column");
    let first = &rows[0];
    assert_eq!(&first[col("first_seen")], "2026-11-23 14:10");
    assert_eq!(&first[col("device")], "Front desk PC");
    assert_eq!(&first[col("staff")], "Alice (reception)");
    assert_eq!(&first[col("verdict")], "block");
    let lee = &rows[2];
    assert_eq!(&lee[col("status")], "acknowledged");
    assert_eq!(&lee[col("acknowledged_by")], "Pat (compliance)");
    assert_eq!(&lee[col("how")], "tls,unresolved,ech,reset");
    assert_eq!(&rows[1][col("attempts")], "3");
    // The hostile DHCP name is kept, but cannot run as a formula.
    let hostile = &rows[5];
    assert_eq!(&hostile[col("device")], "'=cmd|' /C calc'!A0");
    assert_eq!(&hostile[col("dhcp_name")], "'=cmd|' /C calc'!A0");
}

#[test]
fn bad_periods_and_zones_are_refused_with_the_reason() {
    let f = fixture();
    let cfg = f.config.to_str().expect("utf-8");
    let out = aiwarden(&["report", "--config", cfg, "--week", "2026-W99"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ISO week"));

    let text = std::fs::read_to_string(&f.config).expect("read");
    let bad = Path::new(&f.config).with_file_name("bad.toml");
    std::fs::write(&bad, text.replace("America/New_York", "America/Nowhere")).expect("write");
    let out = aiwarden(&["report", "--config", bad.to_str().expect("utf-8")]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:2:"), "{err}");
    assert!(err.contains("America/Nowhere"), "{err}");
}

#[test]
fn the_bundled_sample_recorded_by_replay_reports_its_morning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("incidents.db");
    let root = env!("CARGO_MANIFEST_DIR");
    sample_store::record_sample(&db);
    let out = Command::new(env!("CARGO_BIN_EXE_aiwarden"))
        .current_dir(root)
        .args([
            "report",
            "--config",
            "samples/aiwarden.toml",
            "--week",
            "2026-W48",
        ])
        .args(["--format", "json", "--store"])
        .arg(&db)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("json");
    // samples/README.md: eight incidents of five workstations, three with an owner in
    // samples/devices.toml; the billing office's own Azure OpenAI allowed, in the inventory.
    let h = &r["headline"];
    assert_eq!(
        (n(&h["incidents"]), n(&h["devices"]), n(&h["staff"])),
        (8, 5, 3),
        "{h}"
    );
    let azure = r["inventory"]
        .as_array()
        .expect("inventory")
        .iter()
        .find(|i| i["service"] == "azure-openai")
        .expect("azure");
    assert!(n(&azure["allowed"]) > 0, "{azure}");
    assert_eq!(r["evidence"]["verified"], true);
    assert!(r["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .any(|d| d["device"] == "Front desk PC" && d["staff"] == "Maria (reception)"));
}

/// Text of an HTML page without its tags and with entities decoded enough for figures.
fn html_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&#40;", "(")
        .replace("&#41;", ")")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn html_and_pdf_carry_the_json_figures() {
    let f = fixture();
    let r = report_json(&f, "2026-W48");
    let cfg = f.config.to_str().expect("utf-8");
    let dir = f.db.parent().expect("dir");
    let form = |format: &str| {
        let out = dir.join(format!("r.{format}"));
        let o = aiwarden(&[
            "report",
            "--config",
            cfg,
            "--week",
            "2026-W48",
            "--format",
            format,
            "--out",
            out.to_str().expect("utf-8"),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        out
    };
    let html = html_text(&std::fs::read_to_string(form("html")).expect("html"));
    let pdf_path = form("pdf");
    let pdf = match Command::new("pdftotext")
        .arg("-layout")
        .arg(&pdf_path)
        .arg("-")
        .output()
    {
        Ok(o) if o.status.success() => Some(
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => {
            eprintln!("skipped the PDF half: pdftotext (poppler-utils) is not installed");
            None
        }
    };
    let mut expect: Vec<String> = vec![
        r["evidence"]["head"]["hash"]
            .as_str()
            .expect("hash")
            .to_string(),
        "Pat (compliance)".into(),
        "Alice (reception)".into(),
        "Main Street Clinic".into(),
    ];
    for s in r["services"].as_array().expect("services") {
        // The service row: name, id, category, incidents, attempts, blocked, devices.
        expect.push(format!(
            "{} {} {} {} {} {} {}",
            s["name"].as_str().expect("name"),
            s["service"].as_str().expect("id"),
            s["category"].as_str().expect("category"),
            s["incidents"],
            s["attempts"],
            s["blocked"],
            s["devices"]
        ));
    }
    for d in r["devices"].as_array().expect("devices") {
        expect.push(format!(
            "{} {} {} {}",
            d["device"].as_str().expect("device"),
            d["staff"].as_str().unwrap_or("unknown"),
            d["incidents"],
            d["attempts"]
        ));
    }
    for (label, key) in [
        ("Incidents", "incidents"),
        ("Attempts", "attempts"),
        ("Blocked", "blocked"),
    ] {
        let v = &r["headline"][key];
        assert!(
            html.contains(&format!("{label} {v}")),
            "HTML headline {label} {v}: {html}"
        );
        if let Some(pdf) = &pdf {
            assert!(
                pdf.contains(&format!("{label} {v}")),
                "PDF headline {label} {v}: {pdf}"
            );
        }
    }
    for e in &expect {
        assert!(html.contains(e.as_str()), "HTML lacks {e:?}:\n{html}");
        if let Some(pdf) = &pdf {
            assert!(
                pdf.contains(e.as_str()),
                "PDF lacks {e:?}:\n{}",
                &pdf[pdf.find("device and staff").unwrap_or(0)..]
            );
        }
    }
}

/// The report reads a large period in two halves on two connections and merges the
/// tallies: merged halves give the figures of one whole scan, whatever the split point.
#[test]
fn tallies_of_halves_merge_into_the_whole() {
    use aiwarden::report::model::{Evidence, RulesInForce};
    use aiwarden::report::{period, Context, Period, Tally, Which};
    let f = fixture();
    let store = Store::open_read_only(&f.db).expect("store");
    let tz = period::zone("America/New_York").expect("zone");
    let rules = aiwarden::policy::RuleSet::load_dir(&aiwarden::paths::rules()).expect("rules");
    let inventory = aiwarden::devices::Inventory::load(&f.db.with_file_name("devices.toml"))
        .expect("inventory");
    let ctx = Context {
        site: "x",
        tz: &tz,
        rules: &rules,
        inventory: &inventory,
    };
    let p = Period::resolve(&Which::Week("2026-W48".into()), &tz, 0).expect("period");
    let prev = p.previous(&tz).expect("previous");
    let finish = |t: Tally<'_>| {
        let before = Tally::new(&ctx, prev.clone());
        let rules = RulesInForce {
            version: String::new(),
            services: 0,
            allow: 0,
            deny: 0,
            mode: String::new(),
            enforcement: Vec::new(),
            changes: Vec::new(),
        };
        let evidence = Evidence {
            verified: true,
            summary: String::new(),
            rows: 0,
            keyed: false,
            head: None,
            previous_head: None,
        };
        serde_json::to_value(t.finish(&before, &[], rules, evidence, 0)).expect("json")
    };
    let mut whole = Tally::new(&ctx, p.clone());
    store
        .scan_period(p.from, p.to, |row| whole.add(&row))
        .expect("scan");
    let whole = finish(whole);
    assert_eq!(whole["headline"]["incidents"], 6);
    let (lo, hi) = store.period_ids(p.from, p.to).expect("ids").expect("some");
    for mid in lo..hi {
        let (mut a, mut b) = (Tally::new(&ctx, p.clone()), Tally::new(&ctx, p.clone()));
        store
            .scan_ids(p.from, p.to, lo, mid, |row| a.add(&row))
            .expect("scan");
        store
            .scan_ids(p.from, p.to, mid + 1, hi, |row| b.add(&row))
            .expect("scan");
        b.merge(a);
        assert_eq!(finish(b), whole, "split after id {mid}");
    }
}
