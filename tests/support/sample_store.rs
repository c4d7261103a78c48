//! The bundled sample's morning recorded in a store as the daemon would
//! (`aiwarden replay --store`), for tests of what is made from a store: the report, its
//! delivery, the report in a browser.

use std::path::Path;
use std::process::Command;

/// Replays `samples/clinic-morning.pcap` with the sample clinic's site files into the
/// store at `db`, with the binary under test.
pub(crate) fn record_sample(db: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_aiwarden"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "replay",
            "--site",
            "samples/site",
            "--no-progress",
            "--store",
        ])
        .arg(db)
        .arg("samples/clinic-morning.pcap")
        .output()
        .expect("replay runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
