//! The shell: reads the neighbour table, the lease files and the inventory, runs
//! `ip -6 neigh show`, and hands the text to the parsers. Only a bad or missing inventory
//! fails a load; every other source is best effort, logged and skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{parse_ip_neigh, parse_proc_arp, DeviceMap, Inventory, Lease, LeaseFormat};
use crate::error::{Error, Result};

/// Where [`load`] looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// The IPv4 neighbour table, `/proc/net/arp` by default.
    pub arp: PathBuf,
    /// Run `ip -6 neigh show` for IPv6 neighbours (on by default).
    pub ip6_neigh: bool,
    /// The DHCP server's lease files, none by default.
    pub leases: Vec<(LeaseFormat, PathBuf)>,
    /// The admin's `devices.toml`, if there is one.
    pub inventory: Option<PathBuf>,
}

impl Default for Sources {
    fn default() -> Sources {
        Sources {
            arp: PathBuf::from("/proc/net/arp"),
            ip6_neigh: true,
            leases: Vec::new(),
            inventory: None,
        }
    }
}

impl Inventory {
    /// Reads and parses `devices.toml`.
    pub fn load(path: &Path) -> Result<Inventory> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Inventory::parse(path, &text)
    }
}

/// Reads every source once and builds a map; leases that ended by `now` are ignored.
/// Blocking (file reads, one short-lived `ip` process): from async code, call it on a
/// blocking thread. An unreadable neighbour table or lease file, or a failing `ip`, is a
/// warning and contributes nothing; an unreadable or invalid inventory is an error naming
/// file and line, so the caller keeps its previous map.
pub fn load(sources: &Sources, now: SystemTime) -> Result<DeviceMap> {
    let inventory = match &sources.inventory {
        Some(path) => Inventory::load(path)?,
        None => Inventory::default(),
    };
    let mut neighbours =
        read_or_warn(&sources.arp, "neighbour table").map_or_else(Vec::new, |t| parse_proc_arp(&t));
    if sources.ip6_neigh {
        neighbours.extend(ip6_neighbours());
    }
    let mut leases = Vec::new();
    for (format, path) in &sources.leases {
        if let Some(text) = read_or_warn(path, "lease file") {
            let found = format.parse(&text);
            tracing::debug!(path = %path.display(), %format, leases = found.len(), "leases read");
            leases.extend(found);
        }
    }
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let map = DeviceMap::new(inventory, neighbours, leases, now);
    let counts = map.counts();
    tracing::debug!(
        neighbours = counts.neighbours,
        leases = counts.leases,
        devices = counts.devices,
        "device map loaded"
    );
    Ok(map)
}

/// The file's text (invalid UTF-8 replaced), or `None` after a warning; `source` says what
/// the file was to provide.
fn read_or_warn(path: &Path, source: &str) -> Option<String> {
    match std::fs::read(path) {
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Err(error) => {
            tracing::warn!(path = %path.display(), source, %error, "device source unreadable, skipped");
            None
        }
    }
}

/// The IPv6 neighbour table, from `ip`; empty after a warning when `ip` fails.
fn ip6_neighbours() -> Vec<Lease> {
    let output = Command::new("ip")
        .args(["-6", "neigh", "show"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    match output {
        Ok(out) if out.status.success() => parse_ip_neigh(&String::from_utf8_lossy(&out.stdout)),
        Ok(out) => {
            tracing::warn!(command = "ip -6 neigh show", status = %out.status, "no IPv6 neighbours");
            Vec::new()
        }
        Err(error) => {
            tracing::warn!(command = "ip -6 neigh show", %error, "no IPv6 neighbours");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn loads_every_source_and_skips_missing_leases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            path
        };
        let sources = Sources {
            arp: write(
                "arp",
                "IP address       HW type     Flags       HW address            Mask     Device\n\
                 10.0.0.21        0x1         0x2         52:54:00:12:34:56     *        eth0\n",
            ),
            ip6_neigh: false,
            leases: vec![
                (
                    LeaseFormat::Dnsmasq,
                    write(
                        "dnsmasq.leases",
                        "1795687200 52:54:00:12:34:56 10.0.0.21 reception-1 *\n",
                    ),
                ),
                (LeaseFormat::Kea, dir.path().join("missing.csv")),
            ],
            inventory: Some(write(
                "devices.toml",
                "[[device]]\nname = \"reception-1\"\nlabel = \"Front desk PC 1\"\nowner = \"Alice\"\n",
            )),
        };
        let map = load(&sources, at(1_795_680_000)).expect("loads");
        let id = map.identify(ip("10.0.0.21"));
        assert_eq!(id.hostname.as_deref(), Some("reception-1"));
        assert_eq!(id.label.as_deref(), Some("Front desk PC 1"));
        assert_eq!(id.owner.as_deref(), Some("Alice"));

        // After the lease ends only the neighbour entry and the MAC address are left.
        let later = load(&sources, at(1_795_687_200)).expect("loads");
        let id = later.identify(ip("10.0.0.21"));
        assert_eq!((id.hostname, id.label), (None, None));
        assert!(id.mac.is_some());

        let missing_arp = Sources {
            arp: dir.path().join("no-arp"),
            ..sources.clone()
        };
        assert_eq!(
            load(&missing_arp, at(0))
                .expect("loads")
                .counts()
                .neighbours,
            0
        );
    }

    #[test]
    fn a_bad_or_missing_inventory_fails_the_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("devices.toml");
        std::fs::write(
            &path,
            "[[device]]\nmac = \"52:54:00:12:34:56\"\nlabel = \"PC\"\ncolour = \"red\"\n",
        )
        .expect("write");
        let sources = Sources {
            arp: dir.path().join("arp"),
            ip6_neigh: false,
            leases: Vec::new(),
            inventory: Some(path.clone()),
        };
        let err = load(&sources, at(0)).expect_err("bad inventory");
        assert_eq!(
            err.to_string(),
            format!(
                "{}:4: unknown field `colour`, expected one of `mac`, `ip`, `name`, `label`, `owner`",
                path.display()
            )
        );
        std::fs::remove_file(&path).expect("remove");
        let err = load(&sources, at(0)).expect_err("missing inventory");
        assert!(matches!(err, Error::Io { .. }), "{err}");
    }

    #[test]
    fn reads_this_machines_neighbour_table() {
        // The table may be empty (or absent in a container), and `ip` may be missing; the
        // load must succeed all the same.
        let map = load(&Sources::default(), SystemTime::now()).expect("loads");
        if let Ok(text) = std::fs::read_to_string("/proc/net/arp") {
            for n in parse_proc_arp(&text) {
                assert!(n.mac.is_some_and(|m| m.0 != [0; 6]), "{n:?}");
            }
        }
        assert_eq!(map.counts().leases, 0);
    }

    #[test]
    fn default_sources() {
        let s = Sources::default();
        assert_eq!(s.arp, Path::new("/proc/net/arp"));
        assert!(s.ip6_neigh && s.leases.is_empty() && s.inventory.is_none());
    }
}
