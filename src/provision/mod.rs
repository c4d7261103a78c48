//! Keyboard-less first-boot provisioning: the `provision.toml` an MSP writes onto the
//! appliance image's boot partition, read into a validated [`Provision`] ([`parse`]), and the
//! files it becomes ([`render`]: systemd-networkd, dnsmasq, nftables, aiwarden's own
//! configuration, ssh, hostname and time zone), or the safe state when it is missing or bad
//! ([`render_safe`]).
//!
//! Pure: text in, values and file contents out; the time and the NICs' MAC addresses are
//! passed in. `aiwarden provision` (`crate::cli`) is the shell that reads the file, writes
//! the plan under a root directory and adds the console's admin to the store.
//! docs/provisioning.md documents every key.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;

use crate::policy::Mode;

mod credentials;
mod nft;
mod parse;
mod render;

pub use render::{render, render_safe, FileOut, Link, Plan, MANAGED};

/// The stable name the router's uplink NIC is given.
pub const WAN: &str = "wan0";
/// The stable name of the LAN NIC (a router's LAN side, a sensor's only NIC).
pub const LAN: &str = "lan0";
/// The console's port on the management address.
pub const CONSOLE_PORT: u16 = 8443;
/// The metrics and `/healthz` port on the management address.
pub const METRICS_PORT: u16 = 9747;
/// Where dnsmasq keeps its leases, read by aiwarden for device identity.
pub const LEASES: &str = "/var/lib/misc/dnsmasq.leases";
/// The record of what was applied (the file without secrets, with the time).
pub const RECORD: &str = "/var/lib/aiwarden/provisioned.toml";
/// Why the last provisioning failed, for support.
pub const ERROR_FILE: &str = "/var/lib/aiwarden/provision-error.txt";
/// Shown at the console's login prompt (agetty reads /etc/issue.d).
pub const ISSUE: &str = "/etc/issue.d/aiwarden-provision.issue";

/// A validated provisioning file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provision {
    /// Where it was read from (for messages and the record).
    pub path: PathBuf,
    /// The clinic's name, as reports print it.
    pub site_name: String,
    /// Router or sensor.
    pub role: Role,
    /// Monitor or enforce.
    pub mode: Mode,
    /// IANA time zone.
    pub timezone: String,
    /// The host name, when given.
    pub hostname: Option<String>,
    /// The router's uplink (`None` on a sensor).
    pub wan: Option<Nic>,
    /// The LAN NIC: the router's LAN side, the sensor's only NIC.
    pub lan: Nic,
    /// The router's DHCP server on the LAN (`None` on a sensor).
    pub dhcp: Option<DhcpServer>,
    /// Upstream resolvers, as written (config syntax, already parsed once).
    pub upstreams: Vec<String>,
    /// The console's first admin.
    pub admin: Admin,
    /// The MSP's SSH access.
    pub ssh: Ssh,
}

/// Where the appliance sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The clinic's gateway: two NICs, NAT, DHCP for the LAN, enforcement by nftables.
    Router,
    /// One NIC beside the router or on a mirror port: the LAN's resolver plus resets.
    Sensor,
}

impl Role {
    /// The written form.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Router => "router",
            Role::Sensor => "sensor",
        }
    }
}

/// How a NIC is found at first boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NicMatch {
    /// By its name at first boot (`enp1s0`); its MAC is read then and the rename matches
    /// that, because a name-based match would not survive the next boot's naming.
    Name(String),
    /// By its MAC address.
    Mac(Mac),
}

impl fmt::Display for NicMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NicMatch::Name(n) => write!(f, "interface {n}"),
            NicMatch::Mac(m) => write!(f, "mac {m}"),
        }
    }
}

/// One NIC and its addressing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// How it is found.
    pub matched: NicMatch,
    /// DHCP client or a static address.
    pub addressing: Addressing,
}

/// How a NIC gets its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// DHCP client.
    Dhcp,
    /// A static address with its prefix, and a default gateway (none on a router's LAN).
    Static {
        /// The appliance's address and prefix (`192.168.50.1/24`).
        address: Ipv4Net,
        /// The default gateway.
        gateway: Option<Ipv4Addr>,
    },
}

impl Addressing {
    /// The static address, if any.
    pub fn address(&self) -> Option<Ipv4Net> {
        match self {
            Addressing::Dhcp => None,
            Addressing::Static { address, .. } => Some(*address),
        }
    }
}

/// The router's DHCP server on the LAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpServer {
    /// First address handed out.
    pub start: Ipv4Addr,
    /// Last address handed out.
    pub end: Ipv4Addr,
    /// Lease time, hours.
    pub lease_hours: u32,
}

/// The console's first admin account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// The login name.
    pub user: String,
    /// An argon2id PHC string (never a password).
    pub password_hash: String,
}

/// The MSP's SSH access.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ssh {
    /// ssh.service enabled (from the LAN only).
    pub enabled: bool,
    /// root's authorized keys, one line each.
    pub authorized_keys: Vec<String>,
}

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// `52:54:00:12:34:56` (or with `-`), any case. Refuses multicast and all-zero
    /// addresses: no NIC has one.
    pub fn parse(text: &str) -> std::result::Result<Mac, String> {
        let parts: Vec<&str> = text.trim().split([':', '-']).collect();
        let bad = || format!("{text:?} is not a MAC address (expected e.g. \"52:54:00:12:34:56\")");
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut out = [0u8; 6];
        for (o, p) in out.iter_mut().zip(&parts) {
            if p.len() != 2 {
                return Err(bad());
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if out == [0; 6] || out[0] & 1 == 1 {
            return Err(format!(
                "{text:?} is a multicast or all-zero address, not a NIC's"
            ));
        }
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// The MAC addresses the NICs were found by at first boot (a name resolved to its MAC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Macs {
    /// The router's uplink.
    pub wan: Option<Mac>,
    /// The LAN NIC.
    pub lan: Mac,
}

impl Provision {
    /// The NICs' MAC addresses: given ones as they are, names through `lookup` (the shell
    /// reads `/sys/class/net/NAME/address`). Refuses a name with no NIC and two roles on
    /// one NIC.
    pub fn macs(&self, lookup: impl Fn(&str) -> Option<Mac>) -> crate::Result<Macs> {
        let resolve = |table: &str, nic: &Nic| {
            match &nic.matched {
            NicMatch::Mac(m) => Ok(*m),
            NicMatch::Name(n) => lookup(n).ok_or_else(|| crate::Error::Config {
                path: self.path.clone(),
                line: 0,
                message: format!(
                    "{table}.interface: this machine has no ethernet interface {n:?} (use mac = \"...\" to match the NIC by its address)"
                ),
            }),
        }
        };
        let lan = resolve("lan", &self.lan)?;
        let wan = match &self.wan {
            None => None,
            Some(w) => Some(resolve("wan", w)?),
        };
        if wan == Some(lan) {
            return Err(crate::Error::Config {
                path: self.path.clone(),
                line: 0,
                message: format!("wan and lan are the same NIC ({lan}): a router needs two"),
            });
        }
        Ok(Macs { wan, lan })
    }

    /// The address the LAN reaches the appliance on (DNS, console, metrics), when static.
    pub fn management_address(&self) -> Option<Ipv4Addr> {
        self.lan.addressing.address().map(|a| a.addr())
    }

    /// What the file says, for `provision --check` and the log, one line per part.
    pub fn summary(&self) -> Vec<String> {
        let addressing = |a: &Addressing| match a {
            Addressing::Dhcp => "DHCP".to_string(),
            Addressing::Static {
                address,
                gateway: Some(g),
            } => format!("static {address} via {g}"),
            Addressing::Static {
                address,
                gateway: None,
            } => format!("static {address}"),
        };
        let by = |m: &NicMatch| match m {
            NicMatch::Name(n) => format!("interface {n} (its MAC read at first boot)"),
            NicMatch::Mac(m) => format!("mac {m}"),
        };
        let mut out = vec![format!(
            "site      {} ({}), role {}, mode {}{}",
            self.site_name,
            self.timezone,
            self.role.as_str(),
            self.mode.as_str(),
            self.hostname
                .as_ref()
                .map(|h| format!(", hostname {h}"))
                .unwrap_or_default()
        )];
        if let Some(w) = &self.wan {
            out.push(format!(
                "{WAN}      {}, {}",
                by(&w.matched),
                addressing(&w.addressing)
            ));
        }
        let dhcp = self
            .dhcp
            .map(|d| {
                format!(
                    ", DHCP server {}-{} ({} h leases)",
                    d.start, d.end, d.lease_hours
                )
            })
            .unwrap_or_default();
        out.push(format!(
            "{LAN}      {}, {}{dhcp}",
            by(&self.lan.matched),
            addressing(&self.lan.addressing)
        ));
        out.push(format!("dns       upstreams {}", self.upstreams.join(", ")));
        let at = self
            .management_address()
            .map_or_else(|| "<its DHCP address>".to_string(), |a| a.to_string());
        out.push(format!(
            "console   https://{at}:{CONSOLE_PORT}/ with admin {}",
            self.admin.user
        ));
        out.push(if self.ssh.enabled {
            format!(
                "ssh       on, from the LAN only, {} key(s) for root",
                self.ssh.authorized_keys.len()
            )
        } else {
            "ssh       off".to_string()
        });
        out
    }
}

#[cfg(test)]
mod tests;
