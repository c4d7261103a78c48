//! Runs a capture file through the detector and the shipped rules and renders each
//! detection as one short line, so tests can compare exact lists.

#![allow(dead_code)]

use std::path::Path;

use aiwarden::detect::{Detector, DetectorConfig, LinkType, Observation};
use aiwarden::policy::{Client, Mode, RuleSet};

pub(crate) fn rules() -> RuleSet {
    RuleSet::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")).expect("shipped rules")
}

pub(crate) fn observations(path: &Path) -> (Vec<Observation>, Detector) {
    let mut cap = pcap::Capture::from_file(path).expect("capture opens");
    let link = LinkType::from_pcap(cap.get_datalink().0).expect("supported link type");
    let mut det = Detector::new(DetectorConfig::default());
    let mut out = Vec::new();
    while let Ok(p) = cap.next_packet() {
        let ts =
            aiwarden::detect::Timestamp::from_secs_micros(p.header.ts.tv_sec, p.header.ts.tv_usec);
        out.extend(det.process(ts, link, p.data));
    }
    (out, det)
}

/// `proto client server host service verdict [ech] [unresolved]` per detection.
pub(crate) fn lines(path: &Path) -> Vec<String> {
    let rules = rules();
    observations(path)
        .0
        .iter()
        .map(|o| {
            let d = rules.judge(o.host.as_str(), &Client::ip(o.client.ip()), Mode::Enforce);
            let mut s = format!(
                "{} {} {} {} {} {}",
                o.proto,
                o.client,
                o.server,
                o.host,
                d.service.as_ref().map_or("-", |s| &*s.id),
                d.verdict.as_str()
            );
            if o.ech {
                s.push_str(" ech");
            }
            if o.unresolved {
                s.push_str(" unresolved");
            }
            s
        })
        .collect()
}
