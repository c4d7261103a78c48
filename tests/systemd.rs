//! `systemd-analyze verify` on the shipped units (the daemon's, and the weekly report's
//! service and timer), with the binary path pointed at this build (verify checks that
//! ExecStart= exists and is executable).

use std::path::Path;
use std::process::Command;

#[test]
fn unit_verifies() {
    let have = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        have,
        "systemd-analyze is missing: run scripts/setup-debian.sh"
    );
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/aiwarden.service"),
    )
    .expect("unit");
    for want in [
        "CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN CAP_NET_BIND_SERVICE",
        "ProtectSystem=strict",
        "StateDirectory=aiwarden",
        "WatchdogSec=",
        "Restart=always",
        "Type=notify",
        "LimitNOFILE=65536",
        "ExecStartPre=-/",
    ] {
        assert!(unit.contains(want), "{want} missing");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("aiwarden.service");
    std::fs::write(
        &path,
        unit.replace("/usr/bin/aiwarden", env!("CARGO_BIN_EXE_aiwarden")),
    )
    .expect("write");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // In a container without a running systemd, verify still parses and checks the unit;
    // only messages about the unit itself count.
    let about_unit: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("aiwarden.service"))
        .collect();
    assert!(about_unit.is_empty(), "{text}");
}

#[test]
fn report_units_verify() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    let service = std::fs::read_to_string(dir.join("aiwarden-report.service")).expect("service");
    let timer = std::fs::read_to_string(dir.join("aiwarden-report.timer")).expect("timer");
    for want in [
        "Type=oneshot",
        "ExecStart=/usr/bin/aiwarden report --config /etc/aiwarden/aiwarden.toml --week last --archive --deliver",
        "Nice=19",
        "CPUSchedulingPolicy=idle",
        "IOSchedulingClass=idle",
        "DynamicUser=yes",
        "User=aiwarden",
        "StateDirectory=aiwarden",
        "CapabilityBoundingSet=\n",
        "ProtectSystem=strict",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n",
    ] {
        assert!(service.contains(want), "service: {want} missing");
    }
    assert!(!service.contains("[Install]"), "started by the timer only");
    for want in [
        "OnCalendar=Mon *-*-* 06:00:00",
        "Persistent=true",
        "RandomizedDelaySec=10min",
        "WantedBy=timers.target",
    ] {
        assert!(timer.contains(want), "timer: {want} missing");
    }
    let cal = Command::new("systemd-analyze")
        .args(["calendar", "Mon *-*-* 06:00:00"])
        .output()
        .expect("runs");
    assert!(cal.status.success(), "{cal:?}");
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("aiwarden-report.service"),
        service.replace("/usr/bin/aiwarden", env!("CARGO_BIN_EXE_aiwarden")),
    )
    .expect("write");
    std::fs::write(tmp.path().join("aiwarden-report.timer"), &timer).expect("write");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(tmp.path().join("aiwarden-report.service"))
        .arg(tmp.path().join("aiwarden-report.timer"))
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let about_units: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("aiwarden-report."))
        .collect();
    assert!(about_units.is_empty(), "{text}");
}
