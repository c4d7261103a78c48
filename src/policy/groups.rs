//! Client groups: which devices a group-scoped rule or a group policy applies to.
//!
//! `site/groups.toml` names groups by CIDR, MAC address or device name. A client belongs
//! to the first group that names its device, else the first that names its MAC address,
//! else the group with the longest CIDR prefix that contains its address (the first such
//! group on a tie). A client in no group gets the site-wide rules only.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

use ipnet::IpNet;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::{line_of, rule_err, Lines, Tier, Verdict};
pub use crate::detect::Mac;
use crate::error::Error;

/// What is known about the device asking: the address always, the MAC address and the
/// device name when the daemon could learn them. Built only by [`Client::new`] (or
/// [`Client::ip`]), which canonicalises the address: a dual-stack socket's
/// `::ffff:10.0.0.21` is 10.0.0.21, so it lands in the IPv4 groups like every other view
/// of that device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Client<'a> {
    ip: Option<IpAddr>,
    mac: Option<Mac>,
    device: Option<&'a str>,
}

impl<'a> Client<'a> {
    /// No client: site-wide rules only.
    pub const NONE: Client<'static> = Client {
        ip: None,
        mac: None,
        device: None,
    };

    /// A client with what is known of it.
    pub fn new(ip: Option<IpAddr>, mac: Option<Mac>, device: Option<&'a str>) -> Client<'a> {
        Client {
            ip: ip.map(|ip| ip.to_canonical()),
            mac,
            device,
        }
    }

    /// A client known by address only.
    pub fn ip(ip: IpAddr) -> Client<'static> {
        Client::new(Some(ip), None, None)
    }

    /// Its address, canonical.
    pub fn addr(&self) -> Option<IpAddr> {
        self.ip
    }

    /// Its Ethernet address.
    pub fn mac(&self) -> Option<Mac> {
        self.mac
    }

    /// Its device name.
    pub fn device(&self) -> Option<&'a str> {
        self.device
    }
}

/// Whether a group may use AI services at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AiPolicy {
    /// The site-wide rules apply.
    #[default]
    Default,
    /// Every catalog AI service and every site-wide allow entry is blocked; only the
    /// group's own `@group` allow entries let anything through.
    None,
}

/// One client group as the admin wrote it.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// The name used after `@` in allow and deny lists.
    pub name: String,
    /// Free text for explanations and reports.
    pub description: Option<String>,
    /// Address ranges.
    pub cidrs: Vec<IpNet>,
    /// Ethernet addresses.
    pub macs: Vec<Mac>,
    /// Device names, lowercase.
    pub devices: Vec<String>,
    /// `ai = "none"` blocks every AI service for the group.
    pub ai: AiPolicy,
    /// Verdicts for catalog hosts of each tier that no allow or deny entry decides, in
    /// place of the defaults (consumer and shared block, enterprise flags).
    pub tiers: TierActions,
    /// 1-based line of the `[[group]]` table.
    pub line: usize,
}

/// Per-tier verdict overrides of a group.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct TierActions {
    /// For consumer-tier hosts.
    pub consumer: Option<Verdict>,
    /// For hosts shared by consumer and enterprise tiers.
    pub shared: Option<Verdict>,
    /// For enterprise hosts the allow list does not name.
    pub enterprise: Option<Verdict>,
}

impl TierActions {
    /// The override for `tier`, if any.
    pub fn get(&self, tier: Tier) -> Option<Verdict> {
        match tier {
            Tier::Consumer => self.consumer,
            Tier::Shared => self.shared,
            Tier::Enterprise => self.enterprise,
        }
    }
}

/// How a client was placed in a group, for explanations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Membership {
    /// By device name.
    Device(String),
    /// By MAC address.
    Mac(Mac),
    /// By address range.
    Cidr(IpNet),
}

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Membership::Device(d) => write!(f, "device name {d}"),
            Membership::Mac(m) => write!(f, "MAC address {m}"),
            Membership::Cidr(n) => write!(f, "address range {n}"),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupsFile {
    #[serde(default)]
    group: Vec<GroupToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupToml {
    name: toml::Spanned<String>,
    description: Option<String>,
    #[serde(default)]
    cidrs: Vec<toml::Spanned<String>>,
    #[serde(default)]
    macs: Vec<toml::Spanned<String>>,
    #[serde(default)]
    devices: Vec<toml::Spanned<String>>,
    #[serde(default)]
    ai: AiPolicy,
    consumer: Option<Verdict>,
    shared: Option<Verdict>,
    enterprise: Option<Verdict>,
}

/// Parses `groups.toml`; every problem is pushed to `errors` with its line.
pub(super) fn parse(path: &Path, text: &str, errors: &mut Vec<Error>) -> Vec<Group> {
    let file: GroupsFile = match toml::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            let line = e.span().map_or(0, |s| line_of(text, s.start));
            errors.push(rule_err(path, line, e.message().to_lowercase()));
            return Vec::new();
        }
    };
    let lines = Lines::new(text);
    let line_of = |_: &str, at: usize| lines.at(at);
    let mut groups: Vec<Group> = Vec::new();
    let mut seen: FxHashMap<String, usize> = FxHashMap::default();
    for g in file.group {
        let line = line_of(text, g.name.span().start);
        let name = g.name.get_ref().to_string();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            errors.push(rule_err(
                path,
                line,
                format!("group name {name:?} must be letters, digits, '-' or '_'"),
            ));
            continue;
        }
        if let Some(first) = seen.get(&name) {
            errors.push(rule_err(
                path,
                line,
                format!("duplicate group {name:?} (first at line {first})"),
            ));
            continue;
        }
        seen.insert(name.clone(), line);
        if g.cidrs.is_empty() && g.macs.is_empty() && g.devices.is_empty() {
            errors.push(rule_err(
                path,
                line,
                format!("group {name:?} has no members: give cidrs, macs or devices"),
            ));
        }
        let mut cidrs = Vec::new();
        for c in &g.cidrs {
            let at = line_of(text, c.span().start);
            let t = c.get_ref().trim();
            match IpNet::from_str(t).or_else(|_| IpAddr::from_str(t).map(IpNet::from)) {
                Ok(n) if n.trunc() != n => errors.push(rule_err(
                    path,
                    at,
                    format!("{t} has host bits set; did you mean {}?", n.trunc()),
                )),
                Ok(n) => cidrs.push(n),
                Err(_) => errors.push(rule_err(
                    path,
                    at,
                    format!("invalid address range {t:?} (expected e.g. 192.168.1.0/24)"),
                )),
            }
        }
        let mut macs = Vec::new();
        for m in &g.macs {
            match m.get_ref().trim().parse::<Mac>() {
                Ok(mac) => macs.push(mac),
                Err(msg) => errors.push(rule_err(path, line_of(text, m.span().start), msg)),
            }
        }
        let mut devices = Vec::new();
        for d in &g.devices {
            let t = d
                .get_ref()
                .trim()
                .trim_end_matches('.')
                .to_ascii_lowercase();
            if t.is_empty() || t.chars().any(char::is_whitespace) {
                errors.push(rule_err(
                    path,
                    line_of(text, d.span().start),
                    format!("invalid device name {:?}", d.get_ref()),
                ));
            } else {
                devices.push(t);
            }
        }
        groups.push(Group {
            name,
            description: g.description,
            cidrs,
            macs,
            devices,
            ai: g.ai,
            tiers: TierActions {
                consumer: g.consumer,
                shared: g.shared,
                enterprise: g.enterprise,
            },
            line,
        });
    }
    groups
}

/// The groups in file order, indexed by device name, MAC address and network, so finding
/// a client's group costs a few hash lookups however many groups a site defines.
#[derive(Debug, Clone, Default)]
pub struct Groups {
    defs: Vec<Group>,
    devices: FxHashMap<String, usize>,
    macs: FxHashMap<Mac, usize>,
    nets: FxHashMap<IpNet, usize>,
    /// The prefix lengths in use per family, longest first.
    v4_lens: Vec<u8>,
    v6_lens: Vec<u8>,
}

impl Groups {
    /// Indexes `defs`; where two groups name the same member, the first keeps it.
    pub(super) fn new(defs: Vec<Group>) -> Groups {
        let mut g = Groups::default();
        for (i, d) in defs.iter().enumerate() {
            for dev in &d.devices {
                g.devices.entry(dev.clone()).or_insert(i);
            }
            for m in &d.macs {
                g.macs.entry(*m).or_insert(i);
            }
            for n in &d.cidrs {
                g.nets.entry(*n).or_insert(i);
                let lens = match n {
                    IpNet::V4(_) => &mut g.v4_lens,
                    IpNet::V6(_) => &mut g.v6_lens,
                };
                lens.push(n.prefix_len());
            }
        }
        for lens in [&mut g.v4_lens, &mut g.v6_lens] {
            lens.sort_unstable_by(|a, b| b.cmp(a));
            lens.dedup();
        }
        g.defs = defs;
        g
    }
}

impl std::ops::Deref for Groups {
    type Target = [Group];

    fn deref(&self) -> &[Group] {
        &self.defs
    }
}

/// The group `client` belongs to (index into `groups`) and why.
pub(super) fn classify(groups: &Groups, client: &Client<'_>) -> Option<(usize, Membership)> {
    if groups.is_empty() {
        return None;
    }
    if let Some(dev) = client.device() {
        let dev = dev.trim_end_matches('.').to_ascii_lowercase();
        if let Some(&i) = groups.devices.get(&dev) {
            return Some((i, Membership::Device(dev)));
        }
    }
    if let Some(mac) = client.mac() {
        if let Some(&i) = groups.macs.get(&mac) {
            return Some((i, Membership::Mac(mac)));
        }
    }
    let ip = client.addr()?;
    let lens = match ip {
        IpAddr::V4(_) => &groups.v4_lens,
        IpAddr::V6(_) => &groups.v6_lens,
    };
    lens.iter().find_map(|&len| {
        let net = IpNet::new(ip, len).ok()?.trunc();
        groups.nets.get(&net).map(|&i| (i, Membership::Cidr(net)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(text: &str) -> Result<Vec<Group>, Vec<Error>> {
        let mut errors = Vec::new();
        let g = parse(Path::new("site/groups.toml"), text, &mut errors);
        if errors.is_empty() {
            Ok(g)
        } else {
            Err(errors)
        }
    }

    const TEXT: &str = r#"
[[group]]
name = "office"
cidrs = ["10.0.0.0/24", "fd00::/64"]

[[group]]
name = "billing"
cidrs = ["10.0.0.24/32"]

[[group]]
name = "frontdesk"
devices = ["Reception-1"]
macs = ["52-54-00-AB-CD-EF"]
ai = "none"
shared = "flag"
"#;

    #[test]
    fn device_then_mac_then_longest_prefix() {
        let g = groups(TEXT).expect("parses");
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        let g = Groups::new(g);
        let name = |c: Client<'_>| classify(&g, &c).map(|(i, m)| (g[i].name.as_str(), m));
        assert_eq!(
            name(Client::ip("10.0.0.24".parse().expect("ip"))),
            Some((
                "billing",
                Membership::Cidr("10.0.0.24/32".parse().expect("net"))
            ))
        );
        assert_eq!(
            name(Client::ip("10.0.0.9".parse().expect("ip"))).map(|n| n.0),
            Some("office")
        );
        assert_eq!(
            name(Client::ip("fd00::5".parse().expect("ip"))).map(|n| n.0),
            Some("office")
        );
        assert_eq!(name(Client::ip("10.0.1.9".parse().expect("ip"))), None);
        let mac = Some("52:54:00:ab:cd:ef".parse().expect("mac"));
        let by_mac = Client::new(ip("10.0.0.24"), mac, None);
        assert_eq!(name(by_mac).map(|n| n.0), Some("frontdesk"));
        let by_name = Client::new(ip("10.0.0.24"), None, Some("reception-1."));
        assert_eq!(name(by_name).map(|n| n.0), Some("frontdesk"));
        // How a resolver bound to [::]:53 sees an IPv4 client: the same group.
        assert_eq!(
            name(Client::ip("::ffff:10.0.0.24".parse().expect("ip"))),
            name(Client::ip("10.0.0.24".parse().expect("ip")))
        );
        assert_eq!(
            name(Client::new(ip("::ffff:10.0.0.9"), None, None)).map(|n| n.0),
            Some("office")
        );
        assert_eq!(name(Client::NONE), None);
        assert_eq!(g[2].ai, AiPolicy::None);
        assert_eq!(g[2].tiers.get(Tier::Shared), Some(Verdict::Flag));
    }

    #[test]
    fn errors_name_the_line() {
        let text = "[[group]]\nname = \"a\"\ncidrs = [\"10.0.0.1/24\"]\n\n[[group]]\nname = \"b\"\nmacs = [\"52:54:00\"]\n\n[[group]]\nname = \"a\"\ndevices = [\"x\"]\n";
        let errs: Vec<String> = groups(text)
            .expect_err("bad")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            [
                "site/groups.toml:3: 10.0.0.1/24 has host bits set; did you mean 10.0.0.0/24?",
                "site/groups.toml:7: invalid MAC address \"52:54:00\" (expected six hex pairs like 52:54:00:ab:cd:ef)",
                "site/groups.toml:10: duplicate group \"a\" (first at line 2)",
            ]
        );
        let e =
            groups("[[group]]\nname = \"x\"\ncidr = [\"10.0.0.0/8\"]\n").expect_err("unknown key");
        assert!(
            e[0].to_string().starts_with("site/groups.toml:3:"),
            "{}",
            e[0]
        );
        let e = groups("[[group]]\nname = \"x\"\ndevices = [\"pc\"]\nshared = \"maybe\"\n")
            .expect_err("bad verdict");
        assert!(
            e[0].to_string().starts_with("site/groups.toml:4:"),
            "{}",
            e[0]
        );
        let e = groups("[[group]]\nname = \"empty\"\n").expect_err("no members");
        assert!(e[0].to_string().contains("no members"), "{}", e[0]);
    }

    /// The definition, written plainly: first group naming the device, else the first
    /// naming the MAC, else the longest prefix (first on a tie).
    fn by_definition(groups: &[Group], client: &Client<'_>) -> Option<(usize, Membership)> {
        if let Some(dev) = client.device() {
            let dev = dev.trim_end_matches('.');
            for (i, g) in groups.iter().enumerate() {
                if let Some(d) = g.devices.iter().find(|d| d.eq_ignore_ascii_case(dev)) {
                    return Some((i, Membership::Device(d.clone())));
                }
            }
        }
        if let Some(mac) = client.mac() {
            if let Some(i) = groups.iter().position(|g| g.macs.contains(&mac)) {
                return Some((i, Membership::Mac(mac)));
            }
        }
        let ip = client.addr()?;
        let mut best: Option<(usize, IpNet)> = None;
        for (i, g) in groups.iter().enumerate() {
            for net in &g.cidrs {
                if net.contains(&ip) && best.is_none_or(|(_, b)| net.prefix_len() > b.prefix_len())
                {
                    best = Some((i, *net));
                }
            }
        }
        best.map(|(i, n)| (i, Membership::Cidr(n)))
    }

    #[test]
    fn the_index_agrees_with_the_definition() {
        // Overlapping networks of many lengths in both families, shared MACs and device
        // names across groups, and clients inside, between and outside them.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut text = String::new();
        for i in 0..300 {
            let r = next();
            let len4 = 8 + (r % 25) as u8;
            let len6 = 32 + ((r >> 8) % 97) as u8;
            let v4: IpAddr = format!("10.{}.{}.0", (r >> 16) % 4, (r >> 24) % 256)
                .parse()
                .expect("ip");
            let v6: IpAddr = format!("fd00:{:x}::", (r >> 32) % 8).parse().expect("ip");
            let net = |ip, len| IpNet::new(ip, len).expect("net").trunc();
            text.push_str(&format!(
                "[[group]]\nname = \"g{i}\"\ncidrs = [\"{}\", \"{}\"]\nmacs = [\"02:00:00:00:00:{:02x}\"]\ndevices = [\"PC-{}\"]\n\n",
                net(v4, len4),
                net(v6, len6),
                (r >> 40) % 64,
                (r >> 48) % 50,
            ));
        }
        let defs = groups(&text).expect("parses");
        let index = Groups::new(defs.clone());
        for _ in 0..20_000 {
            let r = next();
            let ip: IpAddr = if r % 2 == 0 {
                format!(
                    "10.{}.{}.{}",
                    (r >> 8) % 5,
                    (r >> 16) % 256,
                    (r >> 24) % 256
                )
                .parse()
                .expect("ip")
            } else {
                format!("fd00:{:x}::{:x}", (r >> 8) % 9, (r >> 16) % 65536)
                    .parse()
                    .expect("ip")
            };
            let mac = (r >> 32) % 3 == 0;
            let mac = mac.then_some(Mac([2, 0, 0, 0, 0, ((r >> 40) % 80) as u8]));
            let dev = format!("pc-{}", (r >> 48) % 70);
            let device = ((r >> 56) % 3 == 0).then_some(dev.as_str());
            let c = Client::new(Some(ip), mac, device);
            assert_eq!(classify(&index, &c), by_definition(&defs, &c), "{c:?}");
        }
    }
}
