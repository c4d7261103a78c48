//! Validation (every class of problem, with its line) and rendering (router, sensor, safe
//! state) of `provision.toml`.

use std::net::Ipv4Addr;
use std::path::Path;

use super::*;
use crate::config::{Config, Placement};

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$8Zgj3OSvSz3nhHqvj4o+jw$eGYpF9vmBCxeVyQOEWMYqD4LU+rjuqyT7apTWqIKbpE";
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN7Ns1tLRCc9MOlmiHIp2woAlaKpJwMcpWJarBvTgXP9 msp@example";

fn router() -> String {
    format!(
        "site_name = \"Riverside Family Clinic\"\n\
         role = \"router\"\n\
         mode = \"enforce\"\n\
         timezone = \"America/Chicago\"\n\
         hostname = \"aiwarden-riverside\"\n\
         \n\
         [wan]\n\
         mac = \"52:54:00:12:34:56\"\n\
         \n\
         [lan]\n\
         interface = \"enp2s0\"\n\
         address = \"192.168.50.1/24\"\n\
         dhcp_range = [\"192.168.50.100\", \"192.168.50.250\"]\n\
         lease_hours = 12\n\
         \n\
         [dns]\n\
         upstreams = [\"9.9.9.9\", \"tls://149.112.112.112#dns.quad9.net\"]\n\
         \n\
         [console]\n\
         admin_user = \"compliance\"\n\
         admin_password_hash = \"{HASH}\"\n\
         \n\
         [ssh]\n\
         enabled = true\n\
         authorized_keys = [\"{KEY}\"]\n"
    )
}

fn sensor() -> String {
    format!(
        "site_name = \"Oak Street Dental\"\n\
         role = \"sensor\"\n\
         timezone = \"Europe/Berlin\"\n\
         \n\
         [lan]\n\
         mac = \"52:54:00:aa:bb:cc\"\n\
         \n\
         [dns]\n\
         upstreams = [\"9.9.9.9\"]\n\
         \n\
         [console]\n\
         admin_user = \"office\"\n\
         admin_password_hash = \"{HASH}\"\n"
    )
}

fn parse(text: &str) -> crate::Result<Provision> {
    Provision::parse(Path::new("/boot/efi/provision.toml"), text)
}

/// The problems of `text`, one `line: message` string each.
fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => Vec::new(),
        Err(crate::Error::Provision(list)) => list
            .iter()
            .map(|e| {
                e.to_string()
                    .strip_prefix("/boot/efi/provision.toml:")
                    .unwrap_or_else(|| panic!("names the file: {e}"))
                    .to_string()
            })
            .collect(),
        Err(e) => panic!("not a provisioning error: {e}"),
    }
}

/// `text` with `from` replaced by `to` (which must be there).
fn with(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not in the base file");
    text.replacen(from, to, 1)
}

#[test]
fn the_samples_are_valid() {
    let p = parse(&router()).expect("router");
    assert_eq!(p.role, Role::Router);
    assert_eq!(p.mode, crate::policy::Mode::Enforce);
    assert_eq!(p.lan.matched, NicMatch::Name("enp2s0".into()));
    assert_eq!(
        p.wan.as_ref().map(|w| &w.matched),
        Some(&NicMatch::Mac(Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56])))
    );
    assert_eq!(
        p.dhcp,
        Some(DhcpServer {
            start: Ipv4Addr::new(192, 168, 50, 100),
            end: Ipv4Addr::new(192, 168, 50, 250),
            lease_hours: 12
        })
    );
    let s = parse(&sensor()).expect("sensor");
    assert_eq!(s.role, Role::Sensor);
    assert_eq!(s.mode, crate::policy::Mode::Monitor, "monitor by default");
    assert_eq!(s.lan.addressing, Addressing::Dhcp);
    assert!(s.wan.is_none() && s.dhcp.is_none() && !s.ssh.enabled);
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/provision.toml");
    let shipped = Provision::load(&shipped).expect("samples/provision.toml");
    assert!(
        crate::console::verify_password("correct horse battery", &shipped.admin.password_hash),
        "samples/README.md names the sample's password"
    );
}

#[test]
fn every_problem_names_its_line_and_key() {
    let r = router();
    let cases: Vec<(String, &str)> = vec![
        (with(&r, "lease_hours = 12", "lease_hours = 12\nleases = 3"), "15: unknown field `leases`"),
        (with(&r, "role = \"router\"", "role = \"gateway\""), "2: role \"gateway\": expected \"router\""),
        (with(&r, "mode = \"enforce\"", "mode = \"block\""), "3: mode \"block\": expected"),
        (with(&r, "America/Chicago", "America/Springfield"), "4: timezone \"America/Springfield\" is not an IANA time zone"),
        (with(&r, "America/Chicago", "../../etc/passwd"), "4: timezone \"../../etc/passwd\" is not an IANA"),
        (with(&r, "aiwarden-riverside", "aiwarden_riverside"), "5: hostname \"aiwarden_riverside\""),
        (with(&r, "mac = \"52:54:00:12:34:56\"", "mac = \"52:54:00:12:34\""), "8: wan.mac: \"52:54:00:12:34\" is not a MAC address"),
        (with(&r, "mac = \"52:54:00:12:34:56\"", "mac = \"01:00:5e:00:00:01\""), "8: wan.mac: \"01:00:5e:00:00:01\" is a multicast"),
        (with(&r, "mac = \"52:54:00:12:34:56\"", "mac = \"52:54:00:12:34:56\"\ninterface = \"eth0\""), "9: wan: give interface or mac, not both"),
        (with(&r, "mac = \"52:54:00:12:34:56\"", "address = \"203.0.113.2/24\"\ngateway = \"203.0.113.1\""), "7: wan: say which NIC"),
        (with(&r, "mac = \"52:54:00:12:34:56\"", "interface = \"enp2s0\""), "8: wan: the same NIC as lan (interface enp2s0)"),
        (with(&r, "interface = \"enp2s0\"", "interface = \"a b\""), "11: lan.interface: \"a b\" is not an interface name"),
        (with(&r, "192.168.50.1/24", "192.168.50.0/24"), "12: lan.address: 192.168.50.0/24 is the network address, not a host address"),
        (with(&r, "192.168.50.1/24", "192.168.50.255/24"), "12: lan.address: 192.168.50.255/24 is the broadcast address"),
        (with(&r, "192.168.50.1/24", "192.168.50.1"), "12: lan.address: \"192.168.50.1\" is not an IPv4 address with a prefix length (it needs its prefix length, e.g. \"192.168.50.1/24\")"),
        (with(&r, "192.168.50.1/24", "192.168.50.1/31"), "12: lan.address: 192.168.50.1/31: the prefix length must be 8 to 30"),
        (with(&r, "address = \"192.168.50.1/24\"\ndhcp_range = [\"192.168.50.100\", \"192.168.50.250\"]", "address = \"8.8.8.1/24\""), "12: lan.address: 8.8.8.1/24 is not in a private network"),
        (with(&r, "address = \"192.168.50.1/24\"\n", ""), "10: lan.address: a router needs its LAN address"),
        (with(&r, "lease_hours = 12", "lease_hours = 12\ngateway = \"192.168.50.254\""), "15: lan.gateway: the router is the LAN's gateway"),
        (with(&r, "\"192.168.50.250\"]", "\"192.168.51.250\"]"), "13: lan.dhcp_range: 192.168.51.250 is not a host of the LAN 192.168.50.0/24"),
        (with(&r, "\"192.168.50.100\", ", "\"192.168.50.1\", "), "13: lan.dhcp_range: 192.168.50.1-192.168.50.250 contains the appliance's own address 192.168.50.1"),
        (with(&r, "\"192.168.50.100\", \"192.168.50.250\"", "\"192.168.50.250\", \"192.168.50.100\""), "13: lan.dhcp_range: 192.168.50.250 comes after 192.168.50.100"),
        (with(&r, ", \"192.168.50.250\"]", "]"), "13: lan.dhcp_range: two addresses"),
        (with(&r, "lease_hours = 12", "lease_hours = 0"), "14: lan.lease_hours: 0 is not 1 to 720"),
        (with(&r, "mac = \"52:54:00:12:34:56\"", "mac = \"52:54:00:12:34:56\"\naddress = \"203.0.113.2/24\""), "9: wan: a static address needs its gateway"),
        (with(&r, "mac = \"52:54:00:12:34:56\"", "mac = \"52:54:00:12:34:56\"\naddress = \"203.0.113.2/24\"\ngateway = \"198.51.100.1\""), "10: wan.gateway: 198.51.100.1 is not a host of 203.0.113.0/24"),
        (with(&r, "mac = \"52:54:00:12:34:56\"", "mac = \"52:54:00:12:34:56\"\naddress = \"192.168.50.2/23\"\ngateway = \"192.168.50.254\""), "9: wan.address: 192.168.50.2/23 overlaps the LAN 192.168.50.0/24"),
        (with(&r, "\"9.9.9.9\", ", "\"tls://9.9.9.9\", "), "17: dns.upstreams: upstream \"tls://9.9.9.9\": DNS over TLS needs the server's name"),
        (with(&r, "\"9.9.9.9\", ", "\"127.0.0.1\", "), "17: dns.upstreams: \"127.0.0.1\" is the appliance itself"),
        (with(&r, "\"9.9.9.9\", ", "\"192.168.50.1\", "), "17: dns.upstreams: \"192.168.50.1\" is the appliance itself"),
        (with(&r, "upstreams = [\"9.9.9.9\", \"tls://149.112.112.112#dns.quad9.net\"]", "upstreams = []"), "17: dns.upstreams: at least one"),
        (with(&r, "admin_user = \"compliance\"", "admin_user = \"Dr Who\""), "20: console.admin_user: user name \"Dr Who\": use 1 to 64 letters"),
        (with(&r, HASH, "$argon2id$v=19$m=19456,t=2,p=1$bad"), "21: console.admin_password_hash: a malformed argon2id PHC string"),
        (with(&r, &format!("authorized_keys = [\"{KEY}\"]"), "authorized_keys = []"), "23: ssh: enabled without authorized_keys"),
        (with(&r, "ssh-ed25519 AAAA", "from=\\\"10.0.0.0/8\\\" ssh-ed25519 AAAA"), "25: ssh.authorized_keys: \"from=\\\"10.0.0.0/8\\\" ssh-ed\" does not start with a key type"),
        (with(&r, "ssh-ed25519 AAAA", "ssh-rsa AAAA"), "25: ssh.authorized_keys: the key's data is not an ssh-rsa key"),
        (with(&r, "ssh-ed25519 AAAAC3", "ssh-ed25519 AAAA!3"), "25: ssh.authorized_keys: the ssh-ed25519 key's data is not base64"),
        (with(&r, "[wan]\nmac = \"52:54:00:12:34:56\"\n", ""), "8: wan: a router needs [wan]"),
    ];
    for (text, want) in &cases {
        let found = problems(text);
        assert!(
            found.iter().any(|f| f.starts_with(want)),
            "want {want:?}, found {found:?}"
        );
    }
    let s = sensor();
    let cases: Vec<(String, &str)> = vec![
        (
            with(&s, "[lan]", "[wan]\ninterface = \"eth1\"\n\n[lan]"),
            "5: wan: a sensor has one NIC",
        ),
        (
            with(
                &s,
                "mac = \"52:54:00:aa:bb:cc\"",
                "mac = \"52:54:00:aa:bb:cc\"\ndhcp_range = [\"10.0.0.100\", \"10.0.0.200\"]",
            ),
            "7: lan.dhcp_range: a sensor serves no DHCP",
        ),
        (
            with(
                &s,
                "mac = \"52:54:00:aa:bb:cc\"",
                "mac = \"52:54:00:aa:bb:cc\"\ngateway = \"10.0.0.1\"",
            ),
            "7: lan.gateway: given without lan.address",
        ),
        (
            with(&s, "site_name = \"Oak Street Dental\"\n", ""),
            "1: missing field `site_name`",
        ),
    ];
    for (text, want) in &cases {
        let found = problems(text);
        assert!(
            found.iter().any(|f| f.starts_with(want)),
            "want {want:?}, found {found:?}"
        );
    }
}

#[test]
fn a_password_is_never_echoed_and_every_problem_is_listed() {
    let text = with(
        &with(&router(), HASH, "hunter2-my-password"),
        "mode = \"enforce\"",
        "mode = \"block\"",
    );
    let e = parse(&text).expect_err("two problems").to_string();
    assert!(!e.contains("hunter2"), "{e}");
    assert!(e.contains("provision.toml:3: mode \"block\""), "{e}");
    assert!(
        e.contains("provision.toml:21: console.admin_password_hash: not an argon2id PHC string"),
        "{e}"
    );
    assert!(e.contains("aiwarden user hash"), "{e}");
    assert_eq!(crate::Error::Provision(Vec::new()).exit_code(), 2);
}

#[test]
fn names_are_resolved_to_macs_and_one_nic_is_not_two() {
    let p = parse(&router()).expect("router");
    let lan = Mac([2, 0, 0, 0, 0, 2]);
    let macs = p
        .macs(|n| (n == "enp2s0").then_some(lan))
        .expect("resolved");
    assert_eq!(macs.lan, lan);
    let e = p.macs(|_| None).expect_err("no such NIC").to_string();
    assert!(
        e.contains("lan.interface: this machine has no ethernet interface \"enp2s0\""),
        "{e}"
    );
    let same = Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    let e = p.macs(|_| Some(same)).expect_err("same NIC").to_string();
    assert!(e.contains("wan and lan are the same NIC"), "{e}");
}

#[test]
fn default_dhcp_range_is_half_the_lan_without_the_appliance() {
    let range = |a: &str| {
        let (s, e) = parse::default_range(a.parse().expect("net"));
        format!("{s}-{e}")
    };
    assert_eq!(range("192.168.50.1/24"), "192.168.50.128-192.168.50.254");
    assert_eq!(range("192.168.50.254/24"), "192.168.50.1-192.168.50.127");
    assert_eq!(range("10.1.0.1/16"), "10.1.128.0-10.1.255.254");
    assert_eq!(range("10.0.0.1/30"), "10.0.0.2-10.0.0.2");
    let p = parse(&with(
        &router(),
        "dhcp_range = [\"192.168.50.100\", \"192.168.50.250\"]\n",
        "",
    ))
    .expect("default range");
    assert_eq!(
        p.dhcp.map(|d| (d.start, d.end)),
        Some((
            Ipv4Addr::new(192, 168, 50, 128),
            Ipv4Addr::new(192, 168, 50, 254)
        ))
    );
}

fn now() -> jiff::Timestamp {
    "2026-11-23T08:00:00Z".parse().expect("time")
}

fn config_of(plan: &Plan) -> Config {
    let f = plan.file(crate::paths::CONFIG).expect("aiwarden.toml");
    Config::parse(Path::new(crate::paths::CONFIG), &f.contents).expect("the rendered config loads")
}

fn contents<'a>(plan: &'a Plan, path: &str) -> &'a str {
    &plan
        .file(path)
        .unwrap_or_else(|| panic!("{path} written"))
        .contents
}

#[test]
fn a_router_renders_names_addresses_dhcp_nat_and_its_config() {
    let p = parse(&router()).expect("router");
    let macs = Macs {
        wan: Some(Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56])),
        lan: Mac([0x52, 0x54, 0, 0x65, 0x43, 0x21]),
    };
    let plan = render(&p, &macs, now()).expect("rendered");
    let wan_link = contents(&plan, "/etc/systemd/network/10-aiwarden-wan.link");
    assert!(wan_link.contains("[Match]\nMACAddress=52:54:00:12:34:56\nType=ether\n"));
    assert!(wan_link.contains("[Link]\nName=wan0\n"));
    let lan_link = contents(&plan, "/etc/systemd/network/10-aiwarden-lan.link");
    assert!(lan_link.contains("MACAddress=52:54:00:65:43:21") && lan_link.contains("Name=lan0"));
    let wan = contents(&plan, "/etc/systemd/network/20-aiwarden-wan.network");
    assert!(wan.contains("Name=wan0") && wan.contains("DHCP=ipv4") && wan.contains("UseDNS=no"));
    let lan = contents(&plan, "/etc/systemd/network/30-aiwarden-lan.network");
    assert!(lan.contains("Address=192.168.50.1/24") && !lan.contains("DHCP="));
    assert!(lan.contains("ConfigureWithoutCarrier=yes"));
    assert!(contents(&plan, "/etc/sysctl.d/60-aiwarden.conf").contains("net.ipv4.ip_forward = 1"));
    let dnsmasq = contents(&plan, "/etc/dnsmasq.d/aiwarden-lan.conf");
    for line in [
        "port=0\n",
        "interface=lan0\n",
        "bind-dynamic\n",
        "dhcp-range=lan0,192.168.50.100,192.168.50.250,255.255.255.0,12h\n",
        "dhcp-option=lan0,option:router,192.168.50.1\n",
        "dhcp-option=lan0,option:dns-server,192.168.50.1\n",
        "dhcp-authoritative\n",
        "dhcp-leasefile=/var/lib/misc/dnsmasq.leases\n",
    ] {
        assert!(dnsmasq.contains(line), "{line}");
    }
    let nft = contents(&plan, "/etc/nftables.conf");
    for line in [
        "type filter hook input priority filter; policy drop;",
        "iifname \"lan0\" udp dport 53 accept",
        "iifname \"lan0\" tcp dport { 53, 8443, 9747 } accept",
        "iifname \"lan0\" udp dport 67 accept",
        "iifname \"lan0\" tcp dport 22 accept",
        "iifname \"wan0\" udp sport 67 udp dport 68 accept",
        "type filter hook forward priority filter; policy drop;",
        "iifname \"lan0\" oifname \"wan0\" accept",
        "oifname \"wan0\" masquerade",
    ] {
        assert!(nft.contains(line), "{line}");
    }
    assert!(
        !nft.lines().any(|l| l.trim_start().starts_with("flush")),
        "aiwarden's table survives a reload"
    );
    assert_eq!(
        contents(&plan, "/etc/resolv.conf").lines().last(),
        Some("nameserver 127.0.0.1")
    );
    let c = config_of(&plan);
    assert_eq!(c.site_name, "Riverside Family Clinic");
    assert_eq!(c.mode, crate::policy::Mode::Enforce);
    assert_eq!(c.capture.interfaces, ["lan0"]);
    assert_eq!(c.enforcement.placement, Placement::Router);
    assert_eq!(c.enforcement.lan, ["lan0"]);
    assert_eq!(
        c.dns.listen,
        [
            "192.168.50.1:53".parse().expect("a"),
            "127.0.0.1:53".parse().expect("a")
        ]
    );
    assert_eq!(c.dns.upstreams.len(), 2);
    assert_eq!(
        c.dns.allow_clients,
        Some(vec![
            "192.168.50.0/24".parse().expect("n"),
            "127.0.0.0/8".parse().expect("n")
        ])
    );
    assert_eq!(c.devices.leases.len(), 1);
    assert_eq!(
        c.metrics.listen,
        Some("192.168.50.1:9747".parse().expect("a"))
    );
    assert!(c.console.enabled);
    assert_eq!(c.console.listen, "192.168.50.1:8443".parse().expect("a"));
    assert_eq!(c.rules, crate::paths::rules(), "the compiled-in rules");
    assert!(c.site.is_none());
    let text = contents(&plan, crate::paths::CONFIG);
    assert!(
        !text.contains("rules =") && !text.contains("\nsite ="),
        "{text}"
    );
    // ssh on: the keys (0600), the unit wanted, nothing masked.
    let keys = plan.file("/root/.ssh/authorized_keys").expect("keys");
    assert_eq!(keys.mode, 0o600);
    assert!(keys.contents.contains(KEY));
    assert!(plan.dirs.contains(&("/root/.ssh".into(), 0o700)));
    assert!(plan
        .links
        .iter()
        .any(|l| l.path.ends_with("multi-user.target.wants/ssh.service")));
    assert!(plan
        .remove
        .contains(&"/etc/systemd/system/ssh.service".to_string()));
    assert!(contents(&plan, "/etc/ssh/sshd_config.d/50-aiwarden.conf")
        .contains("PasswordAuthentication no"));
    assert_eq!(contents(&plan, "/etc/hostname"), "aiwarden-riverside\n");
    assert!(plan.links.contains(&Link {
        path: "/etc/localtime".into(),
        target: "/usr/share/zoneinfo/America/Chicago".into()
    }));
    assert!(plan
        .remove
        .contains(&"/etc/systemd/network/90-aiwarden-safe.network".to_string()));
    assert!(plan.remove.contains(&ERROR_FILE.to_string()));
    let record = contents(&plan, RECORD);
    assert!(record.contains("applied_at = \"2026-11-23T08:00:00Z\""));
    assert!(record.contains("interface = \"enp2s0\"\nmac = \"52:54:00:65:43:21\""));
    assert!(!record.contains("argon2"), "no secret in the record");
    assert!(contents(&plan, ISSUE).contains("https://192.168.50.1:8443/ (user compliance)"));
    // Every managed path is either written or removed, never both.
    for m in MANAGED {
        let written = plan.file(m).is_some() || plan.links.iter().any(|l| l.path == m);
        assert_ne!(written, plan.remove.iter().any(|r| r == m), "{m}");
    }
}

#[test]
fn ssh_off_is_masked_and_keyless() {
    let p = parse(&with(&router(), "enabled = true", "enabled = false")).expect("router");
    let macs = p.macs(|_| Some(Mac([2, 0, 0, 0, 0, 9]))).expect("macs");
    let plan = render(&p, &macs, now()).expect("rendered");
    for mask in [
        "/etc/systemd/system/ssh.service",
        "/etc/systemd/system/ssh.socket",
    ] {
        assert!(plan.links.contains(&Link {
            path: mask.into(),
            target: "/dev/null".into()
        }));
    }
    assert!(plan
        .remove
        .contains(&"/root/.ssh/authorized_keys".to_string()));
    assert!(!contents(&plan, "/etc/nftables.conf").contains("dport 22"));
}

#[test]
fn a_sensor_renders_one_nic_by_dhcp_and_forwards_nothing() {
    let p = parse(&sensor()).expect("sensor");
    let macs = p.macs(|_| None).expect("by mac");
    let plan = render(&p, &macs, now()).expect("rendered");
    assert!(plan
        .file("/etc/systemd/network/10-aiwarden-wan.link")
        .is_none());
    assert!(plan
        .remove
        .contains(&"/etc/dnsmasq.d/aiwarden-lan.conf".to_string()));
    assert!(plan
        .remove
        .contains(&"/etc/systemd/network/20-aiwarden-wan.network".to_string()));
    let lan = contents(&plan, "/etc/systemd/network/30-aiwarden-lan.network");
    assert!(lan.contains("Name=lan0") && lan.contains("DHCP=ipv4") && lan.contains("UseDNS=no"));
    assert!(contents(&plan, "/etc/sysctl.d/60-aiwarden.conf").contains("net.ipv4.ip_forward = 0"));
    let nft = contents(&plan, "/etc/nftables.conf");
    assert!(nft.contains("iifname \"lan0\" udp dport 53 accept"));
    assert!(!nft.contains("masquerade") && !nft.contains("oifname"));
    assert!(
        nft.contains("delete table ip appliance_nat"),
        "a former router's NAT goes"
    );
    let c = config_of(&plan);
    assert_eq!(c.enforcement.placement, Placement::Sensor);
    assert_eq!(c.capture.interfaces, ["lan0"]);
    assert_eq!(c.dns.listen, ["0.0.0.0:53".parse().expect("a")]);
    assert_eq!(c.timezone, "Europe/Berlin");
    assert!(c.devices.leases.is_empty());
    assert!(contents(&plan, ISSUE).contains("https://\\4{lan0}:8443/"));
    // A static sensor answers on its address, and routes through its gateway.
    let p = parse(&with(
        &sensor(),
        "mac = \"52:54:00:aa:bb:cc\"",
        "mac = \"52:54:00:aa:bb:cc\"\naddress = \"10.0.0.5/24\"\ngateway = \"10.0.0.1\"",
    ))
    .expect("static sensor");
    let plan = render(&p, &p.macs(|_| None).expect("macs"), now()).expect("rendered");
    let lan = contents(&plan, "/etc/systemd/network/30-aiwarden-lan.network");
    assert!(lan.contains("Address=10.0.0.5/24\nGateway=10.0.0.1\n") && !lan.contains("DHCP"));
    let c = config_of(&plan);
    assert_eq!(c.console.listen, "10.0.0.5:8443".parse().expect("a"));
    assert_eq!(
        c.dns.allow_clients.map(|a| a.len()),
        Some(4),
        "private ranges and loopback"
    );
}

#[test]
fn the_safe_state_is_a_monitor_on_dhcp_with_no_user_and_says_why() {
    let plan = render_safe("/boot/efi/provision.toml:3: mode \"block\"", now()).expect("safe");
    let net = contents(&plan, "/etc/systemd/network/90-aiwarden-safe.network");
    assert!(net.contains("[Match]\nType=ether\n") && net.contains("DHCP=ipv4"));
    for gone in [
        "/etc/systemd/network/10-aiwarden-wan.link",
        "/etc/systemd/network/10-aiwarden-lan.link",
        "/etc/systemd/network/30-aiwarden-lan.network",
        "/etc/dnsmasq.d/aiwarden-lan.conf",
        "/root/.ssh/authorized_keys",
        RECORD,
    ] {
        assert!(plan.remove.contains(&gone.to_string()), "{gone}");
    }
    assert!(contents(&plan, "/etc/sysctl.d/60-aiwarden.conf").contains("ip_forward = 0"));
    let nft = contents(&plan, "/etc/nftables.conf");
    assert!(
        nft.contains("policy drop") && !nft.contains("masquerade") && !nft.contains("dport 22")
    );
    assert!(
        nft.contains("ip saddr { 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 } udp dport 53 accept")
    );
    let c = config_of(&plan);
    assert_eq!(c.mode, crate::policy::Mode::Monitor);
    assert_eq!(c.dns.listen, ["0.0.0.0:53".parse().expect("a")]);
    assert!(c.console.enabled);
    assert!(plan
        .links
        .iter()
        .any(|l| l.path == "/etc/systemd/system/ssh.service" && l.target == "/dev/null"));
    let issue = contents(&plan, ISSUE);
    assert!(
        issue.contains("NOT PROVISIONED")
            && issue.contains("why: /boot/efi/provision.toml:3: mode \"block\"")
    );
    assert!(contents(&plan, ERROR_FILE).starts_with("2026-11-23T08:00:00Z\n"));
}

#[test]
fn the_examples_in_the_doc_are_valid() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/provisioning.md"))
            .expect("docs/provisioning.md");
    let blocks: Vec<&str> = doc
        .split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .filter(|b| b.contains("role ="))
        .collect();
    assert_eq!(blocks.len(), 2, "the router and the sensor");
    let roles: Vec<Role> = blocks
        .iter()
        .map(|b| parse(b).unwrap_or_else(|e| panic!("{e}\n{b}")).role)
        .collect();
    assert_eq!(roles, [Role::Router, Role::Sensor]);
}
