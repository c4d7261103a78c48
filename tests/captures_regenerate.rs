//! The capture generator still runs and its output still yields the same detections as the
//! committed fixtures (the stacks' randoms differ; what they mean must not).

#[path = "support/captures.rs"]
mod captures;
#[path = "support/expect.rs"]
mod expect;

use std::path::Path;

#[test]
fn regenerated_captures_match_committed_fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().expect("tempdir");
    let fixtures = tmp.path().join("fixtures");
    let samples = tmp.path().join("samples");
    std::fs::create_dir_all(fixtures.join("quic")).expect("mkdir");
    std::fs::create_dir_all(&samples).expect("mkdir");
    for f in std::fs::read_dir(root.join("tests/fixtures/quic")).expect("quic vectors") {
        let f = f.expect("entry").path();
        std::fs::copy(&f, fixtures.join("quic").join(f.file_name().expect("name"))).expect("copy");
    }
    captures::write_all(&fixtures, &samples).expect("generator runs");
    let mut compared = 0;
    for entry in std::fs::read_dir(root.join("tests/fixtures")).expect("fixtures") {
        let committed = entry.expect("entry").path();
        let name = committed
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        if !(name.ends_with(".pcap") || name.ends_with(".pcapng")) {
            continue;
        }
        let fresh = fixtures.join(&name);
        assert!(fresh.exists(), "generator no longer writes {name}");
        assert_eq!(expect::lines(&fresh), expect::lines(&committed), "{name}");
        compared += 1;
    }
    assert!(compared >= 18, "compared {compared} fixtures");
    assert_eq!(
        expect::lines(&samples.join("clinic-morning.pcap")),
        expect::lines(&root.join("samples/clinic-morning.pcap"))
    );
}
