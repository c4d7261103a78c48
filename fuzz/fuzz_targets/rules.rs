//! The rule parser on arbitrary text as a catalog file, an allow list and a deny list;
//! when a rule set loads, judging and explaining arbitrary hosts must not panic.
#![no_main]

use std::path::PathBuf;

use aiwarden::policy::{Client, Mode, RuleSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for name in [
        "rules/catalog/fuzz.toml",
        "rules/site/allow.list",
        "rules/site/deny.list",
    ] {
        let files = vec![(PathBuf::from(name), text.to_string())];
        if let Ok(rules) = RuleSet::from_sources(&files) {
            for host in text.split_whitespace().take(8) {
                let _ = rules.judge(host, &Client::NONE, Mode::Enforce);
                let _ = rules.explain(host, &Client::NONE, Mode::Monitor);
            }
        }
    }
});
