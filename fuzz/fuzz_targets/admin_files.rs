//! The files an admin edits or imports, on arbitrary text: block lists in every import
//! format, `site/groups.toml` (with the lists scoped to its groups), `devices.toml` and the
//! daemon's configuration. Each either loads or returns an error; none may panic.
#![no_main]

use std::path::{Path, PathBuf};

use aiwarden::config::Config;
use aiwarden::devices::Inventory;
use aiwarden::policy::import::{import_list, ListFormat};
use aiwarden::policy::{Client, Mode, RuleSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for f in [
        ListFormat::Auto,
        ListFormat::Hosts,
        ListFormat::Domains,
        ListFormat::Adblock,
    ] {
        let _ = import_list(&text, f);
    }
    let files = vec![
        (PathBuf::from("rules/site/groups.toml"), text.to_string()),
        (
            PathBuf::from("rules/site/allow.list"),
            "example.com @a\n".to_string(),
        ),
    ];
    if let Ok(rules) = RuleSet::from_sources(&files) {
        let _ = rules.lint();
        for ip in ["10.0.0.1", "fd00::1", "192.168.1.20"] {
            let c = Client::ip(ip.parse().expect("ip"));
            let _ = rules.judge("www.example.com", &c, Mode::Enforce);
        }
    }
    let _ = Inventory::parse(Path::new("devices.toml"), &text);
    let _ = Config::parse(Path::new("/etc/aiwarden/aiwarden.toml"), &text);
});
