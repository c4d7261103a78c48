//! Runs a capture file through the detector and the shipped rules (the same steps as
//! `aiwarden replay`: `incident::judge` with the device the frames show) and renders each
//! detection as one short line, so tests can compare exact lists.

#![allow(dead_code)]

use std::path::Path;

use aiwarden::detect::{Detector, DetectorConfig, LinkType, Observation};
use aiwarden::devices::DeviceMap;
use aiwarden::incident::judge;
use aiwarden::policy::{Mode, RuleSet};

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
    out.extend(det.finish());
    (out, det)
}

/// `proto client server host service verdict [qualifiers]` per detection a rule matches or
/// that names a host (nameless connections no rule matches are left out, as replay does);
/// the qualifiers are `how`'s: `unresolved`, `ech`, `no_sni`, `port_853`, `addr`,
/// `incomplete`, and `ech_offered` for a DNS answer whose HTTPS record offers ECH.
pub(crate) fn lines(path: &Path) -> Vec<String> {
    let rules = rules();
    let devices = DeviceMap::default();
    observations(path)
        .0
        .iter()
        .filter_map(|o| {
            let who = devices.identify_with(o.client.ip(), o.client_mac);
            let j = judge(&rules, o, &who.client(), Mode::Enforce);
            if !j.matched() && o.host.is_none() {
                return None;
            }
            let how = j.how.to_string();
            let mut s = format!(
                "{} {} {} {} {} {}",
                o.proto,
                o.client,
                o.server,
                o.host.as_ref().map_or("-", |h| h.as_str()),
                j.decision.service.as_ref().map_or("-", |s| &*s.id),
                j.decision.verdict.as_str()
            );
            for q in how.split(',').skip(1) {
                s.push(' ');
                s.push_str(q);
            }
            if o.proto == aiwarden::detect::Proto::Dns && o.ech_offered {
                s.push_str(" ech_offered");
            }
            Some(s)
        })
        .collect()
}
