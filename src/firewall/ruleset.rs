//! The nftables table aiwarden owns, as one atomic batch: pure (a plan in, nft JSON out),
//! so unit tests read exactly what the kernel will get. Nothing here runs `nft`.
//!
//! ```text
//! table inet aiwarden
//!   chain dns_redirect   nat prerouting:   LAN → port 53 of any other address → aiwarden's resolver
//!   chain forward_filter filter forward:   verdict marks → reset / ICMP; 853 and DoH addresses
//!                                          rejected; denied (client, server, port) tuples;
//!                                          UDP 443 of groups that may not use QUIC;
//!                                          the first packets of new connections → NFQUEUE
//! ```
//!
//! TCP is never blocked by destination address alone (a CDN address serves thousands of
//! names): address sets hold only per-connection tuples, the dedicated DoH/DoT resolver
//! addresses and QUIC tuples.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde_json::{json, Value};

use crate::config::QuicBlock;

/// The table's name (family `inet`).
pub const TABLE: &str = "aiwarden";

/// Packet mark the queue sets on a connection to reset (kept in the connection's mark).
pub const MARK_DENY: u32 = 0x2000_0000;
/// Packet mark the queue sets on a QUIC flow to refuse.
pub const MARK_QUIC_DENY: u32 = 0x1000_0000;
/// Packet mark the queue sets on a connection judged and allowed: its later packets are
/// not queued.
pub const MARK_ALLOW: u32 = 0x4000_0000;
/// Packet mark for a packet passed before the connection could be judged (its first flight
/// is not complete): not queued again when the verdict re-enters the hook.
pub const MARK_PASS: u32 = 0x0800_0000;
/// Packet mark for a TCP packet without payload (a SYN, a bare ACK): nothing to judge, so
/// it is not queued; the queue's detector starts a connection at its first data segment.
pub const MARK_SKIP: u32 = 0x0400_0000;
/// Every bit aiwarden uses.
pub const MARKS: u32 = MARK_DENY | MARK_QUIC_DENY | MARK_ALLOW | MARK_PASS | MARK_SKIP;

/// Where new connections' first packets go to be judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueRule {
    /// The NFQUEUE number.
    pub num: u16,
    /// Client-to-server packets of a connection queued at most.
    pub packets: u32,
}

/// What the table should do. Built from the configuration and the rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The LAN interfaces: only traffic from them is redirected or blocked.
    pub lan: Vec<String>,
    /// Where DNS to other addresses goes: aiwarden's resolver, per family. A wildcard
    /// listen address redirects to the port on the receiving interface's own address.
    pub dns: Vec<SocketAddr>,
    /// Dedicated DoH/DoT resolver addresses (the bypass catalog): TCP and UDP 443 to them
    /// rejected.
    pub doh: Vec<IpNet>,
    /// Reject TCP and UDP 853 (DNS over TLS, DNS over QUIC) to any address.
    pub block_853: bool,
    /// Client ranges whose UDP 443 is refused outright.
    pub quic_all: Vec<IpNet>,
    /// Client MACs whose UDP 443 is refused outright.
    pub quic_all_macs: Vec<String>,
    /// How a refused QUIC flow is answered.
    pub quic: QuicBlock,
    /// Seconds a denied tuple stays in its set.
    pub block_secs: u32,
    /// The native nft queue rule; `None` when the queue is iptables' (or there is none).
    pub queue: Option<QueueRule>,
    /// Packets of a connection the queue (native or iptables') holds for judging, when a
    /// queue judges connections. The tuple sets then apply only to connections the queue
    /// let pass unjudged (a full queue), past those packets: a connection judged allowed
    /// to the same server and port as a denied one (a CDN address) is never touched.
    pub queued_packets: Option<u32>,
}

/// Elements each tuple set holds at most; adding to a full set fails and is counted.
pub const SET_SIZE: u32 = 65_536;

fn m(left: Value, right: Value) -> Value {
    json!({"match": {"op": "==", "left": left, "right": right}})
}

fn m_op(op: &str, left: Value, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

fn payload(protocol: &str, field: &str) -> Value {
    json!({"payload": {"protocol": protocol, "field": field}})
}

fn masked(key: Value, bits: u32) -> Value {
    m(json!({"&": [key, bits]}), json!(bits))
}

fn ct(key: &str) -> Value {
    json!({"ct": {"key": key}})
}

fn lan(ifaces: &[String]) -> Value {
    m(meta("iifname"), json!({"set": ifaces}))
}

fn counter() -> Value {
    json!({"counter": {"packets": 0, "bytes": 0}})
}

fn tcp_reset() -> Value {
    json!({"reject": {"type": "tcp reset"}})
}

fn icmp_prohibited() -> Value {
    json!({"reject": {"type": "icmpx", "expr": "admin-prohibited"}})
}

fn rule(chain: &str, expr: Vec<Value>) -> Value {
    json!({"add": {"rule": {"family": "inet", "table": TABLE, "chain": chain, "expr": expr}}})
}

fn tuple_set(name: &str, v6: bool, secs: u32) -> Value {
    let addr = if v6 { "ipv6_addr" } else { "ipv4_addr" };
    json!({"add": {"set": {"family": "inet", "table": TABLE, "name": name,
        "type": [addr, addr, "inet_service"], "flags": ["timeout"], "timeout": secs, "size": SET_SIZE}}})
}

fn addr_set(name: &str, v6: bool, nets: &[IpNet]) -> Value {
    let mut set = json!({"family": "inet", "table": TABLE, "name": name,
        "type": if v6 { "ipv6_addr" } else { "ipv4_addr" }, "flags": ["interval"]});
    let elems: Vec<Value> = nets
        .iter()
        .filter(|n| matches!(n, IpNet::V6(_)) == v6)
        .map(|n| {
            if n.prefix_len() == n.max_prefix_len() {
                json!(n.addr().to_string())
            } else {
                json!({"prefix": {"addr": n.network().to_string(), "len": n.prefix_len()}})
            }
        })
        .collect();
    if !elems.is_empty() {
        set["elem"] = json!(elems);
    }
    json!({"add": {"set": set}})
}

/// The tuple sets, by family and protocol: (client, server, port) for TCP and QUIC, and
/// whole connections (client, client port, server, server port).
pub const TUPLE_SETS: [&str; 6] = ["deny4", "deny6", "quic4", "quic6", "conn4", "conn6"];

fn conn_set(name: &str, v6: bool, secs: u32) -> Value {
    let addr = if v6 { "ipv6_addr" } else { "ipv4_addr" };
    json!({"add": {"set": {"family": "inet", "table": TABLE, "name": name,
        "type": [addr, "inet_service", addr, "inet_service"], "flags": ["timeout"], "timeout": secs, "size": SET_SIZE}}})
}

impl Plan {
    /// The whole table as one batch: whatever `table inet aiwarden` held before (a stale
    /// copy from a crash, the fail-open table) is replaced in the same transaction.
    pub fn commands(&self) -> Vec<Value> {
        let mut c = replace_table();
        for (name, v6) in [
            ("deny4", false),
            ("deny6", true),
            ("quic4", false),
            ("quic6", true),
        ] {
            c.push(tuple_set(name, v6, self.block_secs.max(1)));
        }
        c.push(conn_set("conn4", false, self.block_secs.max(1)));
        c.push(conn_set("conn6", true, self.block_secs.max(1)));
        c.push(addr_set("doh4", false, &self.doh));
        c.push(addr_set("doh6", true, &self.doh));
        c.push(addr_set("quicall4", false, &self.quic_all));
        c.push(addr_set("quicall6", true, &self.quic_all));
        c.push(json!({"add": {"set": {"family": "inet", "table": TABLE, "name": "quicallmac", "type": "ether_addr"}}}));
        if !self.quic_all_macs.is_empty() {
            c.push(json!({"add": {"element": {"family": "inet", "table": TABLE, "name": "quicallmac", "elem": self.quic_all_macs}}}));
        }
        c.extend(self.dns_chain());
        c.extend(self.prefilter_chain());
        c.extend(self.filter_chain());
        c
    }

    /// Where a queue judges connections: TCP packets that carry no payload (the SYN, the
    /// handshake's ACK) are marked so the queue passes them over; each connection's
    /// first packets only, so bulk traffic meets one rule. Exact: no payload means the IP
    /// length is the headers' (an IPv4 header with options, or an IPv6 extension header,
    /// is queued as before). Runs before iptables' `mangle` (-150) and the filter chain.
    fn prefilter_chain(&self) -> Vec<Value> {
        let Some(n) = self.queued_packets else {
            return Vec::new();
        };
        let mut c = vec![
            json!({"add": {"chain": {"family": "inet", "table": TABLE, "name": "bare"}}}),
            json!({"add": {"chain": {"family": "inet", "table": TABLE, "name": "prefilter",
                "type": "filter", "hook": "forward", "prio": -200, "policy": "accept"}}}),
            rule(
                "prefilter",
                vec![
                    lan(&self.lan),
                    m(meta("l4proto"), json!("tcp")),
                    m_op(
                        "<",
                        json!({"ct": {"key": "packets", "dir": "original"}}),
                        json!(n + 1),
                    ),
                    json!({"jump": {"target": "bare"}}),
                ],
            ),
        ];
        let set_skip =
            json!({"mangle": {"key": meta("mark"), "value": {"|": [meta("mark"), MARK_SKIP]}}});
        // The common header lengths first: timestamps (8), a SYN's options (10), none (5).
        for doff in [8u32, 10, 5, 6, 7, 9, 11, 12, 13, 14, 15] {
            for (ip, header) in [("ip", 20u32), ("ip6", 0)] {
                c.push(rule(
                    "bare",
                    vec![
                        m(payload("tcp", "doff"), json!(doff)),
                        m(payload(ip, "length"), json!(header + doff * 4)),
                        set_skip.clone(),
                        json!({"return": null}),
                    ],
                ));
            }
        }
        c
    }

    fn dns_chain(&self) -> Vec<Value> {
        let chain = "dns_redirect";
        let mut c = vec![
            json!({"add": {"chain": {"family": "inet", "table": TABLE, "name": chain,
            "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}}}),
        ];
        for proto in ["udp", "tcp"] {
            for family in ["ipv4", "ipv6"] {
                let v6 = family == "ipv6";
                let target = self.dns.iter().find(|a| a.is_ipv6() == v6);
                let target = match target {
                    Some(t) => t,
                    None => continue,
                };
                let mut e = vec![
                    lan(&self.lan),
                    m(meta("nfproto"), json!(family)),
                    m_op(
                        "!=",
                        json!({"fib": {"result": "type", "flags": ["daddr"]}}),
                        json!("local"),
                    ),
                    m(payload(proto, "dport"), json!(53)),
                    counter(),
                ];
                e.push(if target.ip().is_unspecified() {
                    json!({"redirect": {"port": target.port()}})
                } else {
                    json!({"dnat": {"family": if v6 { "ip6" } else { "ip" },
                        "addr": target.ip().to_string(), "port": target.port()}})
                });
                c.push(rule(chain, e));
            }
        }
        c
    }

    fn filter_chain(&self) -> Vec<Value> {
        let chain = "forward_filter";
        let quic_refuse = || match self.quic {
            QuicBlock::Reject => icmp_prohibited(),
            QuicBlock::Drop => json!({"drop": null}),
        };
        let set_ct =
            |bits: u32| json!({"mangle": {"key": ct("mark"), "value": {"|": [ct("mark"), bits]}}});
        let mut c = vec![
            json!({"add": {"chain": {"family": "inet", "table": TABLE, "name": chain,
            "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}}}),
        ];
        // A connection judged and allowed: nothing more to look at, in either direction
        // (most forwarded packets end here, at the first rule).
        c.push(rule(
            chain,
            vec![masked(ct("mark"), MARK_ALLOW), json!({"accept": null})],
        ));
        // The queue's verdicts, carried in the packet's mark; kept in the connection's so
        // its retransmissions and the server's replies are answered the same way (the
        // server gets its reset when it answers).
        c.push(rule(
            chain,
            vec![
                m(meta("l4proto"), json!("tcp")),
                masked(meta("mark"), MARK_DENY),
                set_ct(MARK_DENY),
                counter(),
                tcp_reset(),
            ],
        ));
        c.push(rule(
            chain,
            vec![
                masked(meta("mark"), MARK_QUIC_DENY),
                set_ct(MARK_QUIC_DENY),
                counter(),
                quic_refuse(),
            ],
        ));
        c.push(rule(
            chain,
            vec![masked(meta("mark"), MARK_ALLOW), set_ct(MARK_ALLOW)],
        ));
        c.push(rule(
            chain,
            vec![
                masked(ct("mark"), MARK_DENY),
                m(meta("l4proto"), json!("tcp")),
                counter(),
                tcp_reset(),
            ],
        ));
        c.push(rule(
            chain,
            vec![masked(ct("mark"), MARK_QUIC_DENY), counter(), quic_refuse()],
        ));
        let lan = || lan(&self.lan);
        // Connections the capture path judged denied after they passed the queue unjudged
        // (or with no queue at all): that connection alone, its next packet.
        for (ip, set) in [("ip", "@conn4"), ("ip6", "@conn6")] {
            let tuple = json!({"concat": [payload(ip, "saddr"), payload("tcp", "sport"), payload(ip, "daddr"), payload("tcp", "dport")]});
            c.push(rule(
                chain,
                vec![
                    lan(),
                    m(tuple, json!(set)),
                    set_ct(MARK_DENY),
                    counter(),
                    tcp_reset(),
                ],
            ));
        }
        // Everything below is about traffic from the LAN: the rest (the servers' replies)
        // goes on at once.
        c.push(rule(
            chain,
            vec![
                m_op("!=", meta("iifname"), json!({"set": self.lan})),
                json!({"accept": null}),
            ],
        ));
        // Encrypted DNS the clinic cannot see: DoT and DoQ to any address, DoH to the
        // dedicated resolver addresses. Each refused on TCP (a reset) and UDP (ICMP).
        let refuse_both = |to: Option<Value>, port: u16| {
            [("tcp", tcp_reset()), ("udp", icmp_prohibited())].map(|(proto, verdict)| {
                let mut e = vec![lan()];
                e.extend(to.clone());
                e.extend([m(payload(proto, "dport"), json!(port)), counter(), verdict]);
                rule(chain, e)
            })
        };
        if self.block_853 {
            c.extend(refuse_both(None, 853));
        }
        for (ip, set) in [("ip", "@doh4"), ("ip6", "@doh6")] {
            c.extend(refuse_both(Some(m(payload(ip, "daddr"), json!(set))), 443));
        }
        // Denied connections: retries of the same (client, server, port) die at once. Never
        // a connection judged allowed: another name on the same CDN address and port.
        for (ip, set, proto) in [
            ("ip", "@deny4", "tcp"),
            ("ip6", "@deny6", "tcp"),
            ("ip", "@quic4", "udp"),
            ("ip6", "@quic6", "udp"),
        ] {
            let tuple = json!({"concat": [payload(ip, "saddr"), payload(ip, "daddr"), payload(proto, "dport")]});
            let verdict = if proto == "tcp" {
                tcp_reset()
            } else {
                quic_refuse()
            };
            let mut e = vec![lan(), m(json!({"&": [ct("mark"), MARK_ALLOW]}), json!(0))];
            // TCP: past the queued packets only (each connection is judged by name; the
            // set catches one that passed unjudged). QUIC: every packet, since a refused
            // flow's retransmissions can come on a fresh conntrack entry; refusing QUIC to
            // that server and port for a minute costs an allowed name there only its
            // HTTP/3 (browsers use TCP), never the connection.
            if let (Some(n), "tcp") = (self.queued_packets, proto) {
                e.push(m_op(
                    ">",
                    json!({"ct": {"key": "packets", "dir": "original"}}),
                    json!(n),
                ));
            }
            e.extend([m(tuple, json!(set)), counter(), verdict]);
            c.push(rule(chain, e));
        }
        // Groups that may not use QUIC at all: their browsers use TCP, where names show.
        for (ip, set) in [("ip", "@quicall4"), ("ip6", "@quicall6")] {
            c.push(rule(
                chain,
                vec![
                    lan(),
                    m(payload("udp", "dport"), json!(443)),
                    m(payload(ip, "saddr"), json!(set)),
                    counter(),
                    quic_refuse(),
                ],
            ));
        }
        c.push(rule(
            chain,
            vec![
                lan(),
                m(payload("udp", "dport"), json!(443)),
                m(payload("ether", "saddr"), json!("@quicallmac")),
                counter(),
                quic_refuse(),
            ],
        ));
        if let Some(q) = self.queue {
            // Held for a verdict: the first packets of each new connection, on every TCP
            // port and UDP 443, until it is judged. `bypass`: with nobody listening they
            // pass.
            for proto in [
                m(meta("l4proto"), json!("tcp")),
                m(payload("udp", "dport"), json!(443)),
            ] {
                c.push(rule(
                    chain,
                    vec![
                        lan(),
                        proto,
                        m(json!({"&": [meta("mark"), MARKS]}), json!(0)),
                        m(json!({"&": [ct("mark"), MARK_ALLOW]}), json!(0)),
                        m_op(
                            "<",
                            json!({"ct": {"key": "packets", "dir": "original"}}),
                            json!(q.packets + 1),
                        ),
                        counter(),
                        json!({"queue": {"num": q.num, "flags": ["bypass"]}}),
                    ],
                ));
            }
        }
        c
    }
}

/// `add table` then `delete table` then `add table`: the table exists afterwards, empty,
/// whether or not it existed before, in the same transaction as what follows.
fn replace_table() -> Vec<Value> {
    let t = json!({"family": "inet", "name": TABLE});
    vec![
        json!({"add": {"table": t}}),
        json!({"delete": {"table": t}}),
        json!({"add": {"table": t}}),
    ]
}

/// Removes the table, whether or not it exists.
pub fn remove_commands() -> Vec<Value> {
    let t = json!({"family": "inet", "name": TABLE});
    vec![
        json!({"add": {"table": t}}),
        json!({"delete": {"table": t}}),
    ]
}

/// The table left when the daemon did not stop cleanly (crashed, killed, hung and killed
/// by the watchdog): DNS to the gateway goes straight to an upstream, so the clinic's
/// devices keep resolving (unfiltered) until aiwarden is back; nothing else is changed.
pub fn failopen_commands(lan_ifaces: &[String], upstreams: &[IpAddr]) -> Vec<Value> {
    let mut c = replace_table();
    let chain = "dns_failopen";
    c.push(
        json!({"add": {"chain": {"family": "inet", "table": TABLE, "name": chain,
        "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}}}),
    );
    for (family, ip) in [("ipv4", "ip"), ("ipv6", "ip6")] {
        let up = match upstreams.iter().find(|u| u.is_ipv6() == (family == "ipv6")) {
            Some(u) => u,
            None => continue,
        };
        for proto in ["udp", "tcp"] {
            c.push(rule(
                chain,
                vec![
                    lan(lan_ifaces),
                    m(meta("nfproto"), json!(family)),
                    m(
                        json!({"fib": {"result": "type", "flags": ["daddr"]}}),
                        json!("local"),
                    ),
                    m(payload(proto, "dport"), json!(53)),
                    counter(),
                    json!({"dnat": {"family": ip, "addr": up.to_string(), "port": 53}}),
                ],
            ));
        }
    }
    c
}

/// Adds (client, server, port) tuples to a set, each with the set's timeout.
pub fn add_tuples(set: &str, tuples: &[(IpAddr, IpAddr, u16)]) -> Value {
    let elem: Vec<Value> = tuples
        .iter()
        .map(|(c, s, p)| json!({"concat": [c.to_string(), s.to_string(), p]}))
        .collect();
    json!({"add": {"element": {"family": "inet", "table": TABLE, "name": set, "elem": elem}}})
}

/// Adds whole connections (client, server sockets) to a set, each with the set's timeout.
pub fn add_connections(set: &str, conns: &[(SocketAddr, SocketAddr)]) -> Value {
    let elem: Vec<Value> = conns
        .iter()
        .map(|(c, s)| {
            json!({"concat": [c.ip().to_canonical().to_string(), c.port(), s.ip().to_canonical().to_string(), s.port()]})
        })
        .collect();
    json!({"add": {"element": {"family": "inet", "table": TABLE, "name": set, "elem": elem}}})
}

/// Wraps commands as the document `nft -j -f -` reads, checked against the `nftables`
/// crate's schema.
pub fn document(commands: Vec<Value>) -> Result<nftables::schema::Nftables<'static>, String> {
    serde_json::from_value(json!({ "nftables": commands }))
        .map_err(|e| format!("internal error: the nft batch does not fit the schema: {e}"))
}

#[cfg(test)]
mod tests;
