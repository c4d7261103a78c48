//! `provision.toml` read and validated: every problem found is listed with the file, the
//! line and the key (`lan.address`), so an MSP fixes the file in one go on a laptop, and
//! unknown keys are refused. Nothing here needs the appliance: names of NICs are resolved
//! to MACs at first boot ([`Provision::macs`]).

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use ipnet::Ipv4Net;
use serde::Deserialize;
use toml::Spanned;

use super::credentials::{check_key, check_phc};
use super::{Addressing, Admin, DhcpServer, Mac, Nic, NicMatch, Provision, Role, Ssh};
use crate::config::Upstream;
use crate::error::{Error, Result};
use crate::policy::{line_of, Mode};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    site_name: Spanned<String>,
    role: Spanned<String>,
    mode: Option<Spanned<String>>,
    timezone: Spanned<String>,
    hostname: Option<Spanned<String>>,
    wan: Option<Spanned<RawNic>>,
    lan: Spanned<RawNic>,
    dns: RawDns,
    console: RawConsole,
    ssh: Option<RawSsh>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNic {
    interface: Option<Spanned<String>>,
    mac: Option<Spanned<String>>,
    address: Option<Spanned<String>>,
    gateway: Option<Spanned<String>>,
    dhcp_range: Option<Spanned<Vec<Spanned<String>>>>,
    lease_hours: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    upstreams: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsole {
    admin_user: Spanned<String>,
    admin_password_hash: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSsh {
    enabled: Option<bool>,
    authorized_keys: Option<Vec<Spanned<String>>>,
}

/// The longest lease an MSP may set: a month.
const MAX_LEASE_HOURS: u32 = 720;

/// The private IPv4 networks a clinic LAN is numbered from (RFC 1918).
const PRIVATE: [(Ipv4Addr, u8); 3] = [
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
];

/// Problems found so far, each at a byte offset of the text.
struct Problems<'a> {
    path: &'a Path,
    text: &'a str,
    found: Vec<Error>,
}

impl Problems<'_> {
    fn add(&mut self, at: usize, message: String) {
        self.found.push(Error::Config {
            path: self.path.to_path_buf(),
            line: line_of(self.text, at),
            message,
        });
    }

    /// The byte offset of `[table]`'s header, for problems of a whole table.
    fn table(&self, name: &str) -> usize {
        self.text.find(&format!("[{name}]")).unwrap_or(0)
    }
}

impl Provision {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Provision> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Provision::parse(path, &text)
    }

    /// Parses and validates `text`, naming `path` in errors; every problem is listed
    /// ([`Error::Provision`]).
    pub fn parse(path: &Path, text: &str) -> Result<Provision> {
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |s| line_of(text, s.start));
            Error::Provision(vec![Error::Config {
                path: path.to_path_buf(),
                line,
                message: e.message().trim().to_lowercase(),
            }])
        })?;
        let mut p = Problems {
            path,
            text,
            found: Vec::new(),
        };
        let out = validate(raw, &mut p);
        match out {
            Some(prov) if p.found.is_empty() => Ok(prov),
            _ => Err(Error::Provision(p.found)),
        }
    }
}

fn validate(raw: Raw, p: &mut Problems<'_>) -> Option<Provision> {
    let site_name = raw.site_name.get_ref().trim().to_string();
    if site_name.is_empty() || site_name.len() > 200 || site_name.chars().any(char::is_control) {
        p.add(
            raw.site_name.span().start,
            "site_name: 1 to 200 printable characters".into(),
        );
    }
    let role = match raw.role.get_ref().as_str() {
        "router" => Some(Role::Router),
        "sensor" => Some(Role::Sensor),
        other => {
            p.add(
                raw.role.span().start,
                format!("role {other:?}: expected \"router\" (two NICs) or \"sensor\" (one NIC)"),
            );
            None
        }
    };
    let mode = match &raw.mode {
        None => Mode::Monitor,
        Some(m) => match m.get_ref().as_str() {
            "monitor" => Mode::Monitor,
            "enforce" => Mode::Enforce,
            other => {
                p.add(
                    m.span().start,
                    format!("mode {other:?}: expected \"monitor\" or \"enforce\""),
                );
                Mode::Monitor
            }
        },
    };
    let timezone = raw.timezone.get_ref().trim().to_string();
    timezone_ok(&timezone, raw.timezone.span().start, p);
    let hostname = raw.hostname.as_ref().map(|h| {
        let v = h.get_ref().trim().to_ascii_lowercase();
        if !is_label(&v) {
            p.add(
                h.span().start,
                format!("hostname {v:?}: 1 to 63 letters, digits and '-', not starting or ending with '-'"),
            );
        }
        v
    });
    let role = role?;
    let lan_at = raw.lan.span().start;
    let lan_raw = raw.lan.into_inner();
    let lan = nic("lan", &lan_raw, p);
    let (lan_addressing, dhcp) = match role {
        Role::Router => router_lan(&lan_raw, lan_at, p),
        Role::Sensor => {
            for (key, given) in [
                (
                    "dhcp_range",
                    lan_raw.dhcp_range.as_ref().map(|s| s.span().start),
                ),
                (
                    "lease_hours",
                    lan_raw.lease_hours.as_ref().map(|s| s.span().start),
                ),
            ] {
                if let Some(at) = given {
                    p.add(at, format!("lan.{key}: a sensor serves no DHCP (the clinic's router does); remove it"));
                }
            }
            (static_or_dhcp("lan", &lan_raw, true, p), None)
        }
    };
    let wan = match (role, raw.wan) {
        (Role::Router, None) => {
            p.add(
                p.table("lan"),
                "wan: a router needs [wan] (the uplink NIC) as well as [lan]".into(),
            );
            None
        }
        (Role::Router, Some(w)) => {
            let w = w.into_inner();
            for (key, given) in [
                ("dhcp_range", w.dhcp_range.as_ref().map(|s| s.span().start)),
                (
                    "lease_hours",
                    w.lease_hours.as_ref().map(|s| s.span().start),
                ),
            ] {
                if let Some(at) = given {
                    p.add(
                        at,
                        format!("wan.{key}: DHCP is served on the LAN only; move it to [lan]"),
                    );
                }
            }
            let addressing = static_or_dhcp("wan", &w, true, p);
            nic("wan", &w, p).map(|matched| (matched, addressing, w))
        }
        (Role::Sensor, Some(w)) => {
            p.add(
                w.span().start,
                "wan: a sensor has one NIC, described in [lan]; remove [wan]".into(),
            );
            None
        }
        (Role::Sensor, None) => None,
    };
    let wan = wan.map(|(matched, addressing, w)| {
        if lan.as_ref() == Some(&matched) {
            let at = w
                .interface
                .as_ref()
                .or(w.mac.as_ref())
                .map_or(0, |s| s.span().start);
            p.add(
                at,
                format!("wan: the same NIC as lan ({matched}); a router needs two"),
            );
        }
        if let (Addressing::Static { address: w_net, .. }, Addressing::Static { address: l_net, .. }) =
            (addressing, lan_addressing)
        {
            if w_net.trunc().contains(&l_net.trunc()) || l_net.trunc().contains(&w_net.trunc()) {
                p.add(
                    w.address.as_ref().map_or(0, |s| s.span().start),
                    format!("wan.address: {w_net} overlaps the LAN {}; number the LAN from another private network", l_net.trunc()),
                );
            }
        }
        Nic {
            matched,
            addressing,
        }
    });
    let upstreams = upstreams(&raw.dns, lan_addressing.address(), p);
    let admin = admin(&raw.console, p);
    let ssh = ssh(raw.ssh, p);
    Some(Provision {
        path: p.path.to_path_buf(),
        site_name,
        role,
        mode,
        timezone,
        hostname,
        wan,
        lan: Nic {
            matched: lan?,
            addressing: lan_addressing,
        },
        dhcp,
        upstreams,
        admin,
        ssh,
    })
}

fn timezone_ok(tz: &str, at: usize, p: &mut Problems<'_>) {
    // Checked before the lookup too: the name becomes a path under /usr/share/zoneinfo.
    let shaped = !tz.is_empty()
        && !tz.contains("..")
        && !tz.starts_with('/')
        && tz
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_-+".contains(c));
    if !shaped {
        p.add(
            at,
            format!("timezone {tz:?} is not an IANA time zone name such as \"America/Chicago\""),
        );
    } else if let Err(e) = jiff::tz::TimeZone::get(tz) {
        p.add(
            at,
            format!(
                "timezone {tz:?} is not an IANA time zone name such as \"America/Chicago\" ({e})"
            ),
        );
    }
}

/// A DNS label: what `/etc/hostname` should hold.
fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Exactly one of `interface` and `mac`.
fn nic(table: &str, n: &RawNic, p: &mut Problems<'_>) -> Option<NicMatch> {
    match (&n.interface, &n.mac) {
        (Some(i), None) => {
            let name = i.get_ref().trim();
            let ok = !name.is_empty()
                && name.len() <= 15
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
            if !ok {
                p.add(
                    i.span().start,
                    format!(
                        "{table}.interface: {name:?} is not an interface name (e.g. \"enp1s0\")"
                    ),
                );
                return None;
            }
            Some(NicMatch::Name(name.to_string()))
        }
        (None, Some(m)) => match Mac::parse(m.get_ref()) {
            Ok(mac) => Some(NicMatch::Mac(mac)),
            Err(e) => {
                p.add(m.span().start, format!("{table}.mac: {e}"));
                None
            }
        },
        (Some(i), Some(_)) => {
            p.add(
                i.span().start,
                format!("{table}: give interface or mac, not both"),
            );
            None
        }
        (None, None) => {
            p.add(
                p.table(table),
                format!(
                    "{table}: say which NIC: interface = \"enp1s0\" or mac = \"52:54:00:12:34:56\""
                ),
            );
            None
        }
    }
}

/// `192.168.50.1/24`: a host address of its network.
fn host_address(table: &str, s: &Spanned<String>, p: &mut Problems<'_>) -> Option<Ipv4Net> {
    let text = s.get_ref().trim();
    let at = s.span().start;
    let Ok(net) = text.parse::<Ipv4Net>() else {
        let hint = if text.parse::<Ipv4Addr>().is_ok() {
            format!(" (it needs its prefix length, e.g. \"{text}/24\")")
        } else {
            " (expected e.g. \"192.168.50.1/24\")".into()
        };
        p.add(
            at,
            format!("{table}.address: {text:?} is not an IPv4 address with a prefix length{hint}"),
        );
        return None;
    };
    if net.prefix_len() > 30 || net.prefix_len() < 8 {
        p.add(
            at,
            format!("{table}.address: {net}: the prefix length must be 8 to 30"),
        );
        return None;
    }
    if net.addr() == net.network() {
        p.add(
            at,
            format!("{table}.address: {net} is the network address, not a host address"),
        );
        return None;
    }
    if net.addr() == net.broadcast() {
        p.add(
            at,
            format!("{table}.address: {net} is the broadcast address, not a host address"),
        );
        return None;
    }
    Some(net)
}

/// DHCP, or `address` with a `gateway` in its network (`gateway_needed`: the NIC carries the
/// default route).
fn static_or_dhcp(
    table: &str,
    n: &RawNic,
    gateway_needed: bool,
    p: &mut Problems<'_>,
) -> Addressing {
    match (&n.address, &n.gateway) {
        (None, None) => Addressing::Dhcp,
        (None, Some(g)) => {
            p.add(
                g.span().start,
                format!("{table}.gateway: given without {table}.address (leave both out for DHCP)"),
            );
            Addressing::Dhcp
        }
        (Some(a), g) => {
            let Some(address) = host_address(table, a, p) else {
                return Addressing::Dhcp;
            };
            let gateway = match g {
                None if gateway_needed => {
                    p.add(
                        a.span().start,
                        format!("{table}: a static address needs its gateway (gateway = \"...\")"),
                    );
                    None
                }
                None => None,
                Some(g) => match g.get_ref().trim().parse::<Ipv4Addr>() {
                    Ok(gw) if gw == address.addr() => {
                        p.add(
                            g.span().start,
                            format!("{table}.gateway: {gw} is the appliance's own address"),
                        );
                        None
                    }
                    Ok(gw)
                        if !address.contains(&gw)
                            || gw == address.network()
                            || gw == address.broadcast() =>
                    {
                        p.add(
                            g.span().start,
                            format!("{table}.gateway: {gw} is not a host of {}", address.trunc()),
                        );
                        None
                    }
                    Ok(gw) => Some(gw),
                    Err(_) => {
                        p.add(
                            g.span().start,
                            format!("{table}.gateway: {:?} is not an IPv4 address", g.get_ref()),
                        );
                        None
                    }
                },
            };
            Addressing::Static { address, gateway }
        }
    }
}

/// The router's LAN: a static private address, no gateway, and its DHCP range.
fn router_lan(
    n: &RawNic,
    table_at: usize,
    p: &mut Problems<'_>,
) -> (Addressing, Option<DhcpServer>) {
    if let Some(g) = &n.gateway {
        p.add(
            g.span().start,
            "lan.gateway: the router is the LAN's gateway; remove it".into(),
        );
    }
    let Some(a) = &n.address else {
        p.add(
            table_at,
            "lan.address: a router needs its LAN address, e.g. \"192.168.50.1/24\"".into(),
        );
        return (Addressing::Dhcp, None);
    };
    let Some(address) = host_address("lan", a, p) else {
        return (Addressing::Dhcp, None);
    };
    let addressing = Addressing::Static {
        address,
        gateway: None,
    };
    if !PRIVATE
        .iter()
        .any(|(net, len)| Ipv4Net::new(*net, *len).is_ok_and(|n| n.contains(&address.addr())))
    {
        p.add(
            a.span().start,
            format!("lan.address: {address} is not in a private network (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)"),
        );
        return (addressing, None);
    }
    let lease_hours = match &n.lease_hours {
        None => 12,
        Some(h) if (1..=MAX_LEASE_HOURS).contains(h.get_ref()) => *h.get_ref(),
        Some(h) => {
            p.add(
                h.span().start,
                format!(
                    "lan.lease_hours: {} is not 1 to {MAX_LEASE_HOURS}",
                    h.get_ref()
                ),
            );
            12
        }
    };
    let (start, end) = match &n.dhcp_range {
        None => default_range(address),
        Some(r) => match dhcp_range(r, address, p) {
            Some(range) => range,
            None => return (addressing, None),
        },
    };
    (
        addressing,
        Some(DhcpServer {
            start,
            end,
            lease_hours,
        }),
    )
}

/// The upper half of the LAN's host addresses (a /24: .128 to .254), or the lower half
/// when the appliance's address is in the upper one. A /30 has one address for clients.
pub(super) fn default_range(address: Ipv4Net) -> (Ipv4Addr, Ipv4Addr) {
    let first = u32::from(address.network()) + 1;
    let last = u32::from(address.broadcast()) - 1;
    let mid = first + (last - first).div_ceil(2);
    let me = u32::from(address.addr());
    // The appliance is in the other half, so never in the range.
    let (start, end) = if me >= mid {
        (first, mid - 1)
    } else {
        (mid, last)
    };
    (Ipv4Addr::from(start), Ipv4Addr::from(end))
}

fn dhcp_range(
    r: &Spanned<Vec<Spanned<String>>>,
    address: Ipv4Net,
    p: &mut Problems<'_>,
) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let items = r.get_ref();
    if items.len() != 2 {
        p.add(
            r.span().start,
            "lan.dhcp_range: two addresses, the first and the last handed out (e.g. [\"192.168.50.100\", \"192.168.50.250\"])".into(),
        );
        return None;
    }
    let mut ends = Vec::new();
    for s in items {
        let Ok(a) = s.get_ref().trim().parse::<Ipv4Addr>() else {
            p.add(
                s.span().start,
                format!("lan.dhcp_range: {:?} is not an IPv4 address", s.get_ref()),
            );
            return None;
        };
        if !address.contains(&a) || a == address.network() || a == address.broadcast() {
            p.add(
                s.span().start,
                format!(
                    "lan.dhcp_range: {a} is not a host of the LAN {}",
                    address.trunc()
                ),
            );
            return None;
        }
        ends.push(a);
    }
    let (start, end) = (ends[0], ends[1]);
    if start > end {
        p.add(
            r.span().start,
            format!("lan.dhcp_range: {start} comes after {end}"),
        );
        return None;
    }
    if (start..=end).contains(&address.addr()) {
        p.add(
            r.span().start,
            format!(
                "lan.dhcp_range: {start}-{end} contains the appliance's own address {}",
                address.addr()
            ),
        );
        return None;
    }
    Some((start, end))
}

fn upstreams(d: &RawDns, lan: Option<Ipv4Net>, p: &mut Problems<'_>) -> Vec<String> {
    if d.upstreams.get_ref().is_empty() {
        p.add(
            d.upstreams.span().start,
            "dns.upstreams: at least one resolver allowed names are forwarded to".into(),
        );
    }
    let mut out = Vec::new();
    for u in d.upstreams.get_ref() {
        let text = u.get_ref().trim();
        match Upstream::parse(text) {
            Err(e) => p.add(u.span().start, format!("dns.upstreams: {e}")),
            Ok(up) => {
                let addr = match up {
                    Upstream::Plain(a) | Upstream::Tls { addr: a, .. } => a.ip(),
                };
                let own = lan.is_some_and(|n| addr == IpAddr::V4(n.addr()));
                if addr.is_loopback() || addr.is_unspecified() || own {
                    p.add(
                        u.span().start,
                        format!("dns.upstreams: {text:?} is the appliance itself (aiwarden is the resolver); name the resolvers it forwards to"),
                    );
                }
                out.push(text.to_string());
            }
        }
    }
    out
}

fn admin(c: &RawConsole, p: &mut Problems<'_>) -> Admin {
    let user = c.admin_user.get_ref().trim().to_string();
    if let Err(e) = crate::store::check_user_name(&user) {
        let m = e.to_string();
        let m = m.strip_prefix("invalid argument: ").unwrap_or(&m);
        p.add(
            c.admin_user.span().start,
            format!("console.admin_user: {m}"),
        );
    }
    let hash = c.admin_password_hash.get_ref().trim().to_string();
    if let Err(why) = check_phc(&hash) {
        // The value is never echoed: a mistaken file may hold the password itself.
        p.add(
            c.admin_password_hash.span().start,
            format!("console.admin_password_hash: {why}; make one with `aiwarden user hash` (it reads the password and prints the string to paste here)"),
        );
    }
    Admin {
        user,
        password_hash: hash,
    }
}

fn ssh(s: Option<RawSsh>, p: &mut Problems<'_>) -> Ssh {
    let Some(s) = s else {
        return Ssh::default();
    };
    let enabled = s.enabled.unwrap_or(false);
    let mut keys = Vec::new();
    for k in s.authorized_keys.iter().flatten() {
        match check_key(k.get_ref()) {
            Ok(line) => keys.push(line),
            Err(why) => p.add(k.span().start, format!("ssh.authorized_keys: {why}")),
        }
    }
    if enabled && s.authorized_keys.as_ref().is_none_or(Vec::is_empty) {
        p.add(
            p.table("ssh"),
            "ssh: enabled without authorized_keys (passwords are never accepted over ssh)".into(),
        );
    }
    Ssh {
        enabled,
        authorized_keys: keys,
    }
}
