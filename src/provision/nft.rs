//! `/etc/nftables.conf` for each shape of appliance: the box's own default-deny firewall
//! (what may reach it, what it forwards, NAT). aiwarden's enforcement table
//! (`table inet aiwarden`, `crate::firewall`) is separate: this file declares, deletes and
//! redefines only its own tables instead of `flush ruleset`, so reloading nftables.service
//! never removes aiwarden's.

use std::fmt::Write;

use super::{CONSOLE_PORT, LAN, METRICS_PORT, WAN};

/// What the firewall is for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Shape {
    /// Two NICs: the LAN may use the appliance and is forwarded and masqueraded to the WAN.
    Router {
        /// Port 22 open from the LAN.
        ssh: bool,
    },
    /// One NIC: its side may use the appliance; nothing is forwarded.
    Sensor {
        /// Port 22 open from the NIC's side.
        ssh: bool,
    },
    /// NIC names unknown: private addresses may use the appliance's DNS, console and
    /// health; nothing is forwarded, no ssh.
    Safe,
}

/// The networks a safe-state box answers (RFC 1918): a clinic's LAN, never the internet.
pub(super) const PRIVATE_V4: [&str; 3] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];

pub(super) fn nftables(shape: Shape) -> String {
    let name = match shape {
        Shape::Router { .. } => "router",
        Shape::Sensor { .. } => "sensor",
        Shape::Safe => "safe state",
    };
    let mut s = format!(
        "#!/usr/sbin/nft -f\n\
         # Written by `aiwarden provision` ({name}): the appliance's own firewall, loaded at\n\
         # boot by nftables.service. Only its own tables are replaced (declared, deleted,\n\
         # defined), never `flush ruleset`: aiwarden's enforcement table (table inet aiwarden)\n\
         # survives a reload.\n\n\
         table inet appliance\n\
         delete table inet appliance\n\
         table inet appliance {{\n\
         \tchain input {{\n\
         \t\ttype filter hook input priority filter; policy drop;\n\
         \t\tiif \"lo\" accept\n\
         \t\t# neighbour discovery and ICMP errors before conntrack judges anything\n\
         \t\ticmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert, destination-unreachable, packet-too-big, time-exceeded, parameter-problem }} accept\n\
         \t\tct state established,related accept\n\
         \t\tct state invalid drop\n\
         \t\ticmp type {{ destination-unreachable, time-exceeded, parameter-problem }} accept\n"
    );
    let services = |s: &mut String, from: &str| {
        let _ = writeln!(
            s,
            "\t\t{from}icmp type echo-request limit rate 10/second accept\n\
             \t\t{from}udp dport 53 accept\n\
             \t\t{from}tcp dport {{ 53, {CONSOLE_PORT}, {METRICS_PORT} }} accept"
        );
    };
    match shape {
        Shape::Router { ssh } => {
            let lan = format!("iifname \"{LAN}\" ");
            services(&mut s, &lan);
            let _ = writeln!(s, "\t\t{lan}udp dport 67 accept");
            if ssh {
                let _ = writeln!(s, "\t\t{lan}tcp dport 22 accept");
            }
            let _ = writeln!(
                s,
                "\t\t# the uplink's DHCP client: server replies\n\
                 \t\tiifname \"{WAN}\" udp sport 67 udp dport 68 accept"
            );
        }
        Shape::Sensor { ssh } => {
            let lan = format!("iifname \"{LAN}\" ");
            services(&mut s, &lan);
            if ssh {
                let _ = writeln!(s, "\t\t{lan}tcp dport 22 accept");
            }
            let _ = writeln!(s, "\t\t{lan}udp sport 67 udp dport 68 accept");
        }
        Shape::Safe => {
            let from = format!("ip saddr {{ {} }} ", PRIVATE_V4.join(", "));
            services(&mut s, &from);
            let _ = writeln!(s, "\t\tudp sport 67 udp dport 68 accept");
        }
    }
    s.push_str(
        "\t}\n\n\
         \tchain forward {\n\
         \t\ttype filter hook forward priority filter; policy drop;\n",
    );
    if let Shape::Router { .. } = shape {
        let _ = writeln!(
            s,
            "\t\tct state established,related accept\n\
             \t\tiifname \"{LAN}\" oifname \"{WAN}\" accept"
        );
    }
    s.push_str("\t}\n}\n");
    if let Shape::Router { .. } = shape {
        let _ = write!(
            s,
            "\ntable ip appliance_nat\n\
             delete table ip appliance_nat\n\
             table ip appliance_nat {{\n\
             \tchain postrouting {{\n\
             \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
             \t\toifname \"{WAN}\" masquerade\n\
             \t}}\n\
             }}\n"
        );
    } else {
        // A router turned sensor or safe must not keep masquerading until the next boot.
        s.push_str("\ntable ip appliance_nat\ndelete table ip appliance_nat\n");
    }
    s
}
