//! The daemon's default capture filter keeps every frame detection reads: each fixture
//! capture (every link type libpcap can filter for us as Ethernet) gives the same
//! detections through libpcap's own filter engine as without it, while the bulk of a
//! download is dropped.

#[path = "support/expect.rs"]
mod expect;

use std::path::Path;

use aiwarden::capture::DEFAULT_FILTER;
use aiwarden::detect::{Detector, DetectorConfig, LinkType, Timestamp};

fn detections(path: &Path, keep: impl Fn(&[u8]) -> bool) -> (Vec<String>, usize, usize) {
    let mut cap = pcap::Capture::from_file(path).expect("capture opens");
    let link = LinkType::from_pcap(cap.get_datalink().0).expect("link type");
    let mut det = Detector::new(DetectorConfig::default());
    let (mut frames, mut kept) = (0, 0);
    let mut out = Vec::new();
    while let Ok(p) = cap.next_packet() {
        frames += 1;
        if !keep(p.data) {
            continue;
        }
        kept += 1;
        let ts = Timestamp::from_secs_micros(p.header.ts.tv_sec, p.header.ts.tv_usec);
        out.extend(det.process(ts, link, p.data));
    }
    out.extend(det.finish());
    let lines = out
        .iter()
        .map(|o| {
            format!(
                "{} {} {} {:?} {}",
                o.proto, o.client, o.server, o.host, o.unresolved
            )
        })
        .collect();
    (lines, frames, kept)
}

#[test]
fn the_default_filter_keeps_what_detection_reads() {
    let program = pcap::Capture::dead(pcap::Linktype::ETHERNET)
        .and_then(|c| c.compile(DEFAULT_FILTER, true))
        .expect("the filter compiles");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut checked = 0;
    let (mut all, mut kept_total) = (0, 0);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    files.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/clinic-morning.pcap"));
    files.sort();
    for path in files {
        let is_ethernet = pcap::Capture::from_file(&path)
            .map(|c| c.get_datalink() == pcap::Linktype::ETHERNET)
            .unwrap_or(false);
        if !is_ethernet {
            continue;
        }
        let (plain, frames, _) = detections(&path, |_| true);
        let (filtered, _, kept) = detections(&path, |f| program.filter(f));
        assert_eq!(filtered, plain, "{}", path.display());
        checked += 1;
        if path.ends_with("clinic-morning.pcap") {
            (all, kept_total) = (frames, kept);
        }
    }
    assert!(checked >= 30, "checked {checked} captures");
    // The sample's downloads are most of its frames: the filter drops them.
    println!("the default filter kept {kept_total} of the sample's {all} frames; {checked} captures checked");
    assert!(
        kept_total * 2 < all,
        "the filter kept {kept_total} of {all} frames"
    );
}
