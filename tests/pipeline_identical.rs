//! `aiwarden replay --incidents` and the daemon (`aiwarden run --read`, the same capture
//! through the daemon's capture, detection and store threads) record identical incidents:
//! the pipeline is written once. No root needed: the daemon reads a file and serves no
//! socket.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_aiwarden");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The incidents the daemon stored, oldest first, as replay prints them (no row id, no
/// acknowledgements).
fn daemon_rows(captures: &[PathBuf], mode: &str) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("incidents.db");
    let empty = dir.path().join("arp");
    std::fs::write(&empty, "").expect("write");
    let cfg = dir.path().join("aiwarden.toml");
    std::fs::write(
        &cfg,
        format!(
            "mode = \"{mode}\"\nlog = \"warn\"\nrules = \"{}\"\nsite = \"{}\"\n\
             [store]\npath = \"{}\"\n[metrics]\nlisten = \"off\"\n[devices]\nneighbours = \"{}\"\n",
            root().join("rules").display(),
            root().join("samples/site").display(),
            store.display(),
            empty.display()
        ),
    )
    .expect("config");
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .args(
            captures
                .iter()
                .flat_map(|c| [Path::new("--read"), c.as_path()]),
        )
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    let out = Command::new(BIN)
        .args(["incidents", "list", "--json", "--store"])
        .arg(&store)
        .output()
        .expect("list");
    assert!(out.status.success(), "{out:?}");
    let mut rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    for r in &mut rows {
        let o = r.as_object_mut().expect("object");
        o.remove("id");
        o.remove("acks");
    }
    rows.reverse();
    rows
}

fn replay_rows(captures: &[PathBuf], mode: &str) -> Vec<serde_json::Value> {
    let out = Command::new(BIN)
        .args([
            "replay",
            "--no-progress",
            "--incidents",
            "--mode",
            mode,
            "--site",
        ])
        .arg(root().join("samples/site"))
        .args(captures)
        .output()
        .expect("replay");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

#[test]
fn replay_and_the_daemon_record_the_same_incidents() {
    let paths: Vec<&str> = [
        "http_host",
        "connect_proxy",
        "dot_853",
        "tls_no_sni",
        "any_port",
        "dual_stack",
        "tls_ech_real",
        "tls_ech_grease",
        "tls_slow_flights",
        "tls_given_up",
        "tls_giant_segment",
    ]
    .iter()
    .map(|f| Box::leak(format!("tests/fixtures/{f}.pcap").into_boxed_str()) as &str)
    .collect();
    for (captures, mode, at_least) in [
        (vec!["samples/clinic-morning.pcap"], "enforce", 8),
        (vec!["samples/clinic-morning.pcap"], "monitor", 8),
        (paths, "enforce", 6),
    ] {
        let captures: Vec<PathBuf> = captures.iter().map(|c| root().join(c)).collect();
        let daemon = daemon_rows(&captures, mode);
        let replay = replay_rows(&captures, mode);
        assert!(daemon.len() >= at_least, "{daemon:#?}");
        assert_eq!(daemon, replay, "{captures:?} in {mode} mode");
    }
}
