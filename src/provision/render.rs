//! A [`Provision`] becomes a [`Plan`]: every file's path, contents and mode, the symbolic
//! links, and the managed files to remove (what another role or the safe state wrote).
//! Everything is rendered and checked (the aiwarden configuration is parsed back with
//! [`Config::parse`]) before the shell writes anything, so a failure leaves nothing
//! half-written.

use std::fmt::Write;
use std::net::Ipv4Addr;
use std::path::Path;

use super::nft::{nftables, Shape, PRIVATE_V4};
use super::{
    Addressing, Mac, Macs, Provision, Role, CONSOLE_PORT, ERROR_FILE, ISSUE, LAN, LEASES,
    METRICS_PORT, RECORD, WAN,
};
use crate::config::Config;
use crate::error::Result;

/// One file to write (atomically: a temporary file beside it, synced, renamed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOut {
    /// Absolute path on the appliance (the shell puts it under its root).
    pub path: String,
    /// The whole contents.
    pub contents: String,
    /// Permission bits.
    pub mode: u32,
}

/// A symbolic link to make (replacing what is there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Absolute path on the appliance.
    pub path: String,
    /// Where it points (absolute on the appliance, not put under the root).
    pub target: String,
}

/// Everything one provisioning does to the appliance's files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Directories made first, with their modes (parents of files are made 0755).
    pub dirs: Vec<(String, u32)>,
    /// Files written.
    pub files: Vec<FileOut>,
    /// Links made.
    pub links: Vec<Link>,
    /// Managed paths this plan does not write: removed when present.
    pub remove: Vec<String>,
}

impl Plan {
    /// The file at `path`, if the plan writes one.
    pub fn file(&self, path: &str) -> Option<&FileOut> {
        self.files.iter().find(|f| f.path == path)
    }

    fn add(&mut self, path: &str, contents: String, mode: u32) {
        self.files.push(FileOut {
            path: path.to_string(),
            contents,
            mode,
        });
    }

    fn link(&mut self, path: &str, target: &str) {
        self.links.push(Link {
            path: path.to_string(),
            target: target.to_string(),
        });
    }

    /// Fills `remove` with the managed paths nothing in the plan writes.
    fn finish(mut self) -> Plan {
        self.remove = MANAGED
            .iter()
            .filter(|m| {
                !self.files.iter().any(|f| f.path == **m)
                    && !self.links.iter().any(|l| l.path == **m)
            })
            .map(|m| m.to_string())
            .collect();
        self
    }
}

const WAN_LINK: &str = "/etc/systemd/network/10-aiwarden-wan.link";
const LAN_LINK: &str = "/etc/systemd/network/10-aiwarden-lan.link";
const WAN_NETWORK: &str = "/etc/systemd/network/20-aiwarden-wan.network";
const LAN_NETWORK: &str = "/etc/systemd/network/30-aiwarden-lan.network";
const SAFE_NETWORK: &str = "/etc/systemd/network/90-aiwarden-safe.network";
const SYSCTL: &str = "/etc/sysctl.d/60-aiwarden.conf";
const DNSMASQ: &str = "/etc/dnsmasq.d/aiwarden-lan.conf";
const NFTABLES: &str = "/etc/nftables.conf";
const RESOLV: &str = "/etc/resolv.conf";
const AUTHORIZED_KEYS: &str = "/root/.ssh/authorized_keys";
const SSHD: &str = "/etc/ssh/sshd_config.d/50-aiwarden.conf";
const SSH_WANTS: &str = "/etc/systemd/system/multi-user.target.wants/ssh.service";
const SSH_MASK: &str = "/etc/systemd/system/ssh.service";
const SSH_SOCKET_MASK: &str = "/etc/systemd/system/ssh.socket";
/// aiwarden's state directory (the store, the record): the unit's `StateDirectoryMode`.
const STATE_DIR: &str = "/var/lib/aiwarden";
const SSH_UNIT: &str = "/usr/lib/systemd/system/ssh.service";

/// Every path some plan writes and another removes: what the router, the sensor and the
/// safe state differ in. `/etc/hostname`, `/etc/hosts` and the time zone are written when
/// given and otherwise left as the image has them.
pub const MANAGED: [&str; 18] = [
    WAN_LINK,
    LAN_LINK,
    WAN_NETWORK,
    LAN_NETWORK,
    SAFE_NETWORK,
    SYSCTL,
    DNSMASQ,
    NFTABLES,
    RESOLV,
    crate::paths::CONFIG,
    AUTHORIZED_KEYS,
    SSHD,
    SSH_WANTS,
    SSH_MASK,
    SSH_SOCKET_MASK,
    RECORD,
    ERROR_FILE,
    ISSUE,
];

/// `s` as a TOML string (quoted and escaped).
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// `s` with agetty's escape character removed (the issue file interprets `\`).
fn plain(s: &str) -> String {
    s.replace('\\', "/")
}

/// The plan for a valid file, its NICs found by `macs`, applied at `now`.
pub fn render(p: &Provision, macs: &Macs, now: jiff::Timestamp) -> Result<Plan> {
    let mut plan = Plan::default();
    plan.dirs.push((STATE_DIR.into(), 0o750));
    let head = |what: &str| {
        format!(
            "# Written by `aiwarden provision` for {} ({}): {what}\n",
            plain(&p.site_name),
            p.role.as_str()
        )
    };
    if let (Some(w), Some(mac)) = (&p.wan, macs.wan) {
        plan.add(
            WAN_LINK,
            link_file(&head("the uplink NIC"), mac, WAN),
            0o644,
        );
        plan.add(
            WAN_NETWORK,
            network_file(&head("the uplink"), WAN, w.addressing, false),
            0o644,
        );
    }
    plan.add(
        LAN_LINK,
        link_file(&head("the LAN NIC"), macs.lan, LAN),
        0o644,
    );
    let lan_is_router_side = p.role == Role::Router;
    plan.add(
        LAN_NETWORK,
        network_file(&head("the LAN"), LAN, p.lan.addressing, lan_is_router_side),
        0o644,
    );
    let forward = u8::from(p.role == Role::Router);
    plan.add(
        SYSCTL,
        format!(
            "{}net.ipv4.ip_forward = {forward}\n",
            head("forwarding on a router only")
        ),
        0o644,
    );
    if let (Some(d), Some(address)) = (p.dhcp, p.lan.addressing.address()) {
        let me = address.addr();
        plan.add(
            DNSMASQ,
            format!(
                "{}\
                 # DHCP only: aiwarden answers DNS on port 53.\n\
                 port=0\n\
                 interface={LAN}\n\
                 bind-dynamic\n\
                 dhcp-range={LAN},{},{},{},{}h\n\
                 dhcp-option={LAN},option:router,{me}\n\
                 dhcp-option={LAN},option:dns-server,{me}\n\
                 dhcp-authoritative\n\
                 dhcp-leasefile={LEASES}\n",
                head("the LAN's DHCP server (its leases name devices for aiwarden)"),
                d.start,
                d.end,
                address.netmask(),
                d.lease_hours
            ),
            0o644,
        );
    }
    let ssh = p.ssh.enabled;
    plan.add(
        NFTABLES,
        nftables(match p.role {
            Role::Router => Shape::Router { ssh },
            Role::Sensor => Shape::Sensor { ssh },
        }),
        0o755,
    );
    plan.add(RESOLV, resolv(), 0o644);
    plan.add(crate::paths::CONFIG, aiwarden_toml(p)?, 0o644);
    if ssh {
        plan.dirs.push(("/root/.ssh".into(), 0o700));
        let mut keys = head("the MSP's keys (ssh from the LAN only)");
        for k in &p.ssh.authorized_keys {
            keys.push_str(k);
            keys.push('\n');
        }
        plan.add(AUTHORIZED_KEYS, keys, 0o600);
        plan.add(
            SSHD,
            format!(
                "{}PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n",
                head("keys only")
            ),
            0o644,
        );
        plan.link(SSH_WANTS, SSH_UNIT);
    } else {
        mask_ssh(&mut plan);
    }
    if let Some(h) = &p.hostname {
        plan.add("/etc/hostname", format!("{h}\n"), 0o644);
        plan.add("/etc/hosts", hosts(h), 0o644);
    }
    plan.add("/etc/timezone", format!("{}\n", p.timezone), 0o644);
    plan.link(
        "/etc/localtime",
        &format!("/usr/share/zoneinfo/{}", p.timezone),
    );
    let console_at = p
        .management_address()
        .map_or_else(|| format!("\\4{{{LAN}}}"), |a| a.to_string());
    plan.add(
        ISSUE,
        format!(
            "aiwarden: provisioned as a {} for {} ({} mode)\n\
             console: https://{console_at}:{CONSOLE_PORT}/ (user {})\n\n",
            p.role.as_str(),
            plain(&p.site_name),
            p.mode.as_str(),
            p.admin.user
        ),
        0o644,
    );
    plan.add(RECORD, record(p, macs, now), 0o644);
    Ok(plan.finish())
}

/// The safe state, for a file that is missing or invalid (`reason`): a sensor in monitor
/// mode that takes every ethernet NIC's address by DHCP, answers DNS for private addresses,
/// serves no DHCP, forwards nothing, runs the console with no account and no ssh. Says why
/// on the console's login prompt and in [`ERROR_FILE`].
pub fn render_safe(reason: &str, now: jiff::Timestamp) -> Result<Plan> {
    let mut plan = Plan::default();
    plan.dirs.push((STATE_DIR.into(), 0o750));
    let head = "# Written by `aiwarden provision`: the SAFE STATE (no valid provision.toml)\n";
    plan.add(
        SAFE_NETWORK,
        format!(
            "{head}[Match]\nType=ether\n\n[Network]\nDHCP=ipv4\nIPv6AcceptRA=no\nLinkLocalAddressing=no\n\n\
             [DHCPv4]\n# aiwarden is the resolver: nothing is pushed to the host's resolv.conf\nUseDNS=no\nUseDomains=no\nClientIdentifier=mac\n"
        ),
        0o644,
    );
    plan.add(SYSCTL, format!("{head}net.ipv4.ip_forward = 0\n"), 0o644);
    plan.add(NFTABLES, nftables(Shape::Safe), 0o755);
    plan.add(RESOLV, resolv(), 0o644);
    let config = format!(
        "{head}# Provision the appliance with a valid provision.toml; see docs/provisioning.md.\n\
         site_name = \"unprovisioned appliance\"\n\
         mode = \"monitor\"\n\n\
         [capture]\n\
         # every interface: the NICs' names are not known until provisioning\n\
         interfaces = [\"any\"]\n\n\
         [dns]\n\
         listen = [\"0.0.0.0:53\"]\n\
         upstreams = [\"9.9.9.9\", \"149.112.112.112\"]\n\
         allow_clients = [{}, \"127.0.0.0/8\"]\n\n\
         [enforcement]\n\
         # nothing is blocked beyond the resolver, and the resolver only records (monitor)\n\
         placement = \"resolver\"\n\n\
         [metrics]\n\
         listen = \"0.0.0.0:{METRICS_PORT}\"\n\n\
         [console]\n\
         enabled = true\n\
         listen = \"0.0.0.0:{CONSOLE_PORT}\"\n",
        PRIVATE_V4.map(q).join(", ")
    );
    Config::parse(Path::new(crate::paths::CONFIG), &config)?;
    plan.add(crate::paths::CONFIG, config, 0o644);
    mask_ssh(&mut plan);
    let reason = plain(reason);
    plan.add(
        ISSUE,
        format!(
            "aiwarden: NOT PROVISIONED. Running in the safe state: monitor only, DHCP on every\n\
             NIC, no DHCP server, nothing forwarded, no console account, no ssh.\n\
             why: {}\n\
             fix: write a corrected provision.toml to the boot partition (a rejected one is kept\n\
             there as provision.toml.rejected) and reboot. Health: http://\\4:{METRICS_PORT}/healthz\n\n",
            reason.lines().collect::<Vec<_>>().join("\n     ")
        ),
        0o644,
    );
    plan.add(
        ERROR_FILE,
        format!("{}\n{reason}\n", now.strftime("%Y-%m-%dT%H:%M:%SZ")),
        0o644,
    );
    Ok(plan.finish())
}

fn mask_ssh(plan: &mut Plan) {
    plan.link(SSH_MASK, "/dev/null");
    plan.link(SSH_SOCKET_MASK, "/dev/null");
}

fn resolv() -> String {
    "# Written by `aiwarden provision`: the appliance resolves through aiwarden itself.\nnameserver 127.0.0.1\n"
        .to_string()
}

fn hosts(h: &str) -> String {
    format!(
        "127.0.0.1\tlocalhost\n127.0.1.1\t{h}\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
    )
}

/// A `.link` file giving the NIC with `mac` the stable `name`. `Type=ether` keeps VLANs and
/// bridges that inherit the MAC from matching too.
fn link_file(head: &str, mac: Mac, name: &str) -> String {
    format!("{head}[Match]\nMACAddress={mac}\nType=ether\n\n[Link]\nName={name}\n")
}

/// A `.network` file for `name`. IPv4 only: IPv6 is neither routed nor advertised (the LAN
/// gets no IPv6 prefix, so no client can go around the resolver over IPv6). Nothing is
/// pushed to the host's resolver: aiwarden is it.
fn network_file(head: &str, name: &str, a: Addressing, router_lan: bool) -> String {
    let mut s = format!(
        "{head}[Match]\nName={name}\n\n[Network]\nIPv6AcceptRA=no\nLinkLocalAddressing=no\n"
    );
    match a {
        Addressing::Dhcp => {
            s.push_str("DHCP=ipv4\n\n[DHCPv4]\nUseDNS=no\nUseDomains=no\nClientIdentifier=mac\n")
        }
        Addressing::Static { address, gateway } => {
            let _ = writeln!(s, "Address={address}");
            if let Some(g) = gateway {
                let _ = writeln!(s, "Gateway={g}");
            }
        }
    }
    if router_lan {
        // The LAN address exists with no cable in, so aiwarden can bind it at boot.
        s.push_str(
            "ConfigureWithoutCarrier=yes\nIgnoreCarrierLoss=yes\n\n[Link]\nRequiredForOnline=no\n",
        );
    }
    s
}

/// `/etc/aiwarden/aiwarden.toml`: no `rules` or `site` (the package's compiled-in
/// locations), the store at its default path.
fn aiwarden_toml(p: &Provision) -> Result<String> {
    let (listen, metrics, console, clients) = match p.management_address() {
        Some(a) if p.role == Role::Router => {
            let net = p
                .lan
                .addressing
                .address()
                .map(|n| n.trunc().to_string())
                .unwrap_or_default();
            (
                format!("[\"{a}:53\", \"127.0.0.1:53\"]"),
                format!("{a}:{METRICS_PORT}"),
                format!("{a}:{CONSOLE_PORT}"),
                format!("[{}, \"127.0.0.0/8\"]", q(&net)),
            )
        }
        // A sensor's clients may be on any of the clinic's routed subnets.
        Some(a) => (
            format!("[\"{a}:53\", \"127.0.0.1:53\"]"),
            format!("{a}:{METRICS_PORT}"),
            format!("{a}:{CONSOLE_PORT}"),
            format!("[{}, \"127.0.0.0/8\"]", PRIVATE_V4.map(q).join(", ")),
        ),
        None => (
            "[\"0.0.0.0:53\"]".to_string(),
            format!("{}:{METRICS_PORT}", Ipv4Addr::UNSPECIFIED),
            format!("{}:{CONSOLE_PORT}", Ipv4Addr::UNSPECIFIED),
            format!("[{}, \"127.0.0.0/8\"]", PRIVATE_V4.map(q).join(", ")),
        ),
    };
    let mut s = format!(
        "# Written by `aiwarden provision` from {} ({}). A new provision.toml on the boot\n\
         # partition replaces it; see config.example.toml for every option.\n\
         site_name = {}\n\
         timezone = {}\n\
         mode = \"{}\"\n\n\
         [capture]\n\
         interfaces = [\"{LAN}\"]\n\n\
         [dns]\n\
         listen = {listen}\n\
         upstreams = [{}]\n\
         allow_clients = {clients}\n\n\
         [enforcement]\n",
        p.path.display(),
        p.role.as_str(),
        q(&p.site_name),
        q(&p.timezone),
        p.mode.as_str(),
        p.upstreams
            .iter()
            .map(|u| q(u))
            .collect::<Vec<_>>()
            .join(", "),
    );
    match p.role {
        Role::Router => {
            let _ = write!(
                s,
                "placement = \"router\"\nlan = [\"{LAN}\"]\n\n\
                 [devices]\n\
                 leases = [{{ format = \"dnsmasq\", path = \"{LEASES}\" }}]\n\n"
            );
        }
        Role::Sensor => s.push_str("placement = \"sensor\"\n\n"),
    }
    let _ = write!(
        s,
        "[metrics]\nlisten = \"{metrics}\"\n\n[console]\nenabled = true\nlisten = \"{console}\"\n"
    );
    Config::parse(Path::new(crate::paths::CONFIG), &s)?;
    Ok(s)
}

/// What was applied, without secrets (the password hash is left out).
fn record(p: &Provision, macs: &Macs, now: jiff::Timestamp) -> String {
    let mut s = format!(
        "# What `aiwarden provision` applied: the provisioning file without its secrets.\n\
         # Its presence tells the first-boot unit the appliance is provisioned.\n\
         applied_at = \"{}\"\n\
         source = {}\n\
         site_name = {}\n\
         role = \"{}\"\n\
         mode = \"{}\"\n\
         timezone = {}\n",
        now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        q(&p.path.display().to_string()),
        q(&p.site_name),
        p.role.as_str(),
        p.mode.as_str(),
        q(&p.timezone),
    );
    if let Some(h) = &p.hostname {
        let _ = writeln!(s, "hostname = {}", q(h));
    }
    let nic = |s: &mut String, table: &str, n: &super::Nic, mac: Mac| {
        let _ = writeln!(s, "\n[{table}]");
        if let super::NicMatch::Name(name) = &n.matched {
            let _ = writeln!(s, "interface = {}", q(name));
        }
        let _ = writeln!(s, "mac = \"{mac}\"");
        if let Addressing::Static { address, gateway } = n.addressing {
            let _ = writeln!(s, "address = \"{address}\"");
            if let Some(g) = gateway {
                let _ = writeln!(s, "gateway = \"{g}\"");
            }
        }
    };
    if let (Some(w), Some(mac)) = (&p.wan, macs.wan) {
        nic(&mut s, "wan", w, mac);
    }
    nic(&mut s, "lan", &p.lan, macs.lan);
    if let Some(d) = p.dhcp {
        let _ = writeln!(
            s,
            "dhcp_range = [\"{}\", \"{}\"]\nlease_hours = {}",
            d.start, d.end, d.lease_hours
        );
    }
    let list = |items: &[String]| items.iter().map(|u| q(u)).collect::<Vec<_>>().join(", ");
    let _ = write!(
        s,
        "\n[dns]\nupstreams = [{}]\n\n[console]\nadmin_user = {}\n\n[ssh]\nenabled = {}\nauthorized_keys = [{}]\n",
        list(&p.upstreams),
        q(&p.admin.user),
        p.ssh.enabled,
        list(&p.ssh.authorized_keys)
    );
    s
}
