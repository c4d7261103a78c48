//! The admin's device inventory, `devices.toml`: what reports call a device and whose it
//! is, keyed by MAC address, host name or IP address.
//!
//! ```toml
//! [[device]]
//! mac = "52:54:00:12:34:56"     # or ip = "10.0.0.21", or name = "reception-1"
//! label = "Front desk PC 1"     # what reports show
//! owner = "Alice (reception)"   # optional: who gets the training follow-up
//! ```
//!
//! An entry may give several keys; any of them identifies the device. A MAC address, IP
//! address or name given twice is an error: a report could not tell which entry is meant.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::policy::{line_of, rule_err, Mac};

/// One `[[device]]` entry, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    /// Its Ethernet address.
    pub mac: Option<Mac>,
    /// Its fixed IP address.
    pub ip: Option<IpAddr>,
    /// Its host name as its DHCP lease records it, as written (matched ignoring case).
    pub name: Option<String>,
    /// What reports call it.
    pub label: String,
    /// The staff member it belongs to.
    pub owner: Option<String>,
    /// 1-based line of its `[[device]]` header.
    pub line: usize,
}

/// The parsed `devices.toml`, indexed for lookups.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    devices: Vec<Device>,
    by_mac: HashMap<Mac, usize>,
    /// Lowercase names.
    by_name: HashMap<String, usize>,
    by_ip: HashMap<IpAddr, usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryFile {
    #[serde(default)]
    device: Vec<toml::Spanned<DeviceToml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceToml {
    mac: Option<toml::Spanned<String>>,
    ip: Option<toml::Spanned<String>>,
    name: Option<toml::Spanned<String>>,
    label: toml::Spanned<String>,
    owner: Option<toml::Spanned<String>>,
}

impl Inventory {
    /// Parses `devices.toml`; `path` only names the file in errors. Every problem is
    /// reported with its line, all of them at once.
    pub fn parse(path: &Path, text: &str) -> Result<Inventory> {
        let file: InventoryFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |s| line_of(text, s.start));
            rule_err(path, line, e.message().to_lowercase())
        })?;
        let mut errors = Vec::new();
        let mut inv = Inventory::default();
        for entry in file.device {
            let line = line_of(text, entry.span().start);
            let d = entry.into_inner();
            let at = |s: &toml::Spanned<String>| line_of(text, s.span().start);
            // A value that must not be empty, trimmed.
            let mut non_empty = |s: &toml::Spanned<String>, key: &str| {
                let t = s.get_ref().trim();
                if t.is_empty() {
                    errors.push(rule_err(path, at(s), format!("empty {key}")));
                    None
                } else {
                    Some(t.to_string())
                }
            };
            let label = non_empty(&d.label, "label");
            let owner = d.owner.as_ref().and_then(|o| non_empty(o, "owner"));
            let name = d.name.as_ref().and_then(|n| non_empty(n, "name"));
            let name = name.map(|n| n.trim_end_matches('.').to_string());
            let mac = d.mac.as_ref().and_then(|m| {
                m.get_ref()
                    .trim()
                    .parse::<Mac>()
                    .map_err(|msg| errors.push(rule_err(path, at(m), msg)))
                    .ok()
            });
            let ip = d.ip.as_ref().and_then(|i| {
                i.get_ref()
                    .trim()
                    .parse::<IpAddr>()
                    .map_err(|_| {
                        errors.push(rule_err(
                            path,
                            at(i),
                            format!("invalid ip address {:?}", i.get_ref()),
                        ))
                    })
                    .ok()
            });
            if d.mac.is_none() && d.ip.is_none() && d.name.is_none() {
                errors.push(rule_err(
                    path,
                    line,
                    "device has no mac, ip or name: nothing can match it",
                ));
            }
            let Some(label) = label else { continue };
            let index = inv.devices.len();
            let mut duplicates = Vec::new();
            if let (Some(m), Some(s)) = (mac, &d.mac) {
                let first = first_or_insert(&mut inv.by_mac, m, index);
                duplicates.extend(first.map(|f| (f, at(s), format!("mac {m}"))));
            }
            if let (Some(i), Some(s)) = (ip, &d.ip) {
                let first = first_or_insert(&mut inv.by_ip, i, index);
                duplicates.extend(first.map(|f| (f, at(s), format!("ip {i}"))));
            }
            if let (Some(n), Some(s)) = (&name, &d.name) {
                let first = first_or_insert(&mut inv.by_name, n.to_lowercase(), index);
                duplicates.extend(first.map(|f| (f, at(s), format!("name {n:?}"))));
            }
            for (first, at, what) in duplicates {
                let first_line = inv.devices.get(first).map_or(0, |d| d.line);
                errors.push(rule_err(
                    path,
                    at,
                    format!("duplicate {what} (first at line {first_line})"),
                ));
            }
            inv.devices.push(Device {
                mac,
                ip,
                name,
                label,
                owner,
                line,
            });
        }
        match errors.len() {
            0 => Ok(inv),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Rules(errors)),
        }
    }

    /// Every entry, in file order.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// The entry that names `mac`, else `hostname` (ignoring case; a name without dots
    /// also matches the first label of a qualified host name, as Kea records
    /// `reception-1.clinic.lan`), else `ip`.
    pub fn find(&self, mac: Option<Mac>, hostname: Option<&str>, ip: IpAddr) -> Option<&Device> {
        let by_name = || {
            let host = hostname?.trim_end_matches('.');
            // Lease names are mostly lowercase already: allocate only when they are not.
            let host: Cow<'_, str> = if host.chars().any(char::is_uppercase) {
                Cow::Owned(host.to_lowercase())
            } else {
                Cow::Borrowed(host)
            };
            self.by_name.get(host.as_ref()).or_else(|| {
                let (first, _) = host.split_once('.')?;
                self.by_name.get(first)
            })
        };
        mac.and_then(|m| self.by_mac.get(&m))
            .or_else(by_name)
            .or_else(|| self.by_ip.get(&ip))
            .and_then(|&i| self.devices.get(i))
    }
}

/// The entry already indexed under `key`, else `None` after indexing `index` under it.
fn first_or_insert<K: Eq + Hash>(
    map: &mut HashMap<K, usize>,
    key: K,
    index: usize,
) -> Option<usize> {
    match map.entry(key) {
        Entry::Occupied(e) => Some(*e.get()),
        Entry::Vacant(e) => {
            e.insert(index);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Inventory> {
        Inventory::parse(Path::new("site/devices.toml"), text)
    }

    fn errors(text: &str) -> Vec<String> {
        match parse(text).expect_err("bad inventory") {
            Error::Rules(errs) => errs.iter().map(ToString::to_string).collect(),
            e => vec![e.to_string()],
        }
    }

    #[test]
    fn parses_entries() {
        let text = r#"# Front desk
[[device]]
mac = "52-54-00-AB-CD-EF"
label = "Front desk PC 1"
owner = "Alice (reception)"

[[device]]
name = "Exam-2."
ip = "fd00::24"
label = "  Exam room 2  "
"#;
        let inv = parse(text).expect("parses");
        assert_eq!(
            inv.devices(),
            [
                Device {
                    mac: Some("52:54:00:ab:cd:ef".parse().expect("mac")),
                    ip: None,
                    name: None,
                    label: "Front desk PC 1".into(),
                    owner: Some("Alice (reception)".into()),
                    line: 2,
                },
                Device {
                    mac: None,
                    ip: Some("fd00::24".parse().expect("ip")),
                    name: Some("Exam-2".into()),
                    label: "Exam room 2".into(),
                    owner: None,
                    line: 7,
                },
            ]
        );
        let any: IpAddr = "192.0.2.1".parse().expect("ip");
        let label = |host: &str| inv.find(None, Some(host), any).map(|d| d.label.as_str());
        assert_eq!(label("exam-2"), Some("Exam room 2"));
        assert_eq!(label("EXAM-2.clinic.lan."), Some("Exam room 2"));
        assert_eq!(label("exam-20"), None);
        assert!(parse("").expect("empty file").devices().is_empty());
    }

    #[test]
    fn a_qualified_name_matches_only_itself() {
        let inv = parse("[[device]]\nname = \"pc.clinic.lan\"\nlabel = \"PC\"\n").expect("parses");
        let any: IpAddr = "192.0.2.1".parse().expect("ip");
        assert!(inv.find(None, Some("PC.clinic.lan"), any).is_some());
        assert!(inv.find(None, Some("pc"), any).is_none());
        assert!(inv.find(None, Some("pc.other.lan"), any).is_none());
    }

    #[test]
    fn errors_name_file_and_line() {
        let text = r#"[[device]]
mac = "52:54:00:12:34:56"
label = "Front desk PC 1"

[[device]]
mac = "52:54:00:12:34:56"
label = "Front desk PC 2"

[[device]]
ip = "10.0.0.300"
label = "Printer"

[[device]]
label = "Nobody"

[[device]]
name = "exam-2"
label = ""

[[device]]
mac = "52:54:00"
label = "Short"

[[device]]
name = "Reception-1"
ip = "10.0.0.21"
label = "A"
owner = " "

[[device]]
name = "reception-1"
ip = "10.0.0.21"
label = "B"
"#;
        assert_eq!(
            errors(text),
            [
                "site/devices.toml:6: duplicate mac 52:54:00:12:34:56 (first at line 1)",
                "site/devices.toml:10: invalid ip address \"10.0.0.300\"",
                "site/devices.toml:13: device has no mac, ip or name: nothing can match it",
                "site/devices.toml:18: empty label",
                "site/devices.toml:21: invalid MAC address \"52:54:00\" (expected six hex pairs like 52:54:00:ab:cd:ef)",
                "site/devices.toml:28: empty owner",
                "site/devices.toml:32: duplicate ip 10.0.0.21 (first at line 24)",
                "site/devices.toml:31: duplicate name \"reception-1\" (first at line 24)",
            ]
        );
    }

    #[test]
    fn toml_errors_name_the_line() {
        assert_eq!(
            errors("[[device]]\nmac = \"52:54:00:12:34:56\"\nlabel = \"PC\"\nowner_name = \"Bob\"\n"),
            ["site/devices.toml:4: unknown field `owner_name`, expected one of `mac`, `ip`, `name`, `label`, `owner`"]
        );
        assert_eq!(
            errors("[[device]]\nmac = \"52:54:00:12:34:56\"\n"),
            ["site/devices.toml:1: missing field `label`"]
        );
        assert_eq!(
            errors("[[devices]]\nlabel = \"PC\"\n"),
            ["site/devices.toml:1: unknown field `devices`, expected `device`"]
        );
        assert_eq!(
            errors("[[device]]\nlabel = PC\n"),
            ["site/devices.toml:2: string values must be quoted, expected literal string"]
        );
    }
}
