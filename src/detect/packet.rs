//! Frame decoding: a borrowed view of the IP addresses, ports and payload of a captured
//! frame, and of the innermost Ethernet addresses.
//!
//! Link layers: Ethernet II (with 802.1Q and QinQ tags), Linux cooked capture v1 and v2
//! (`tcpdump -i any`), raw IP, BSD loopback, PPP (bare, in HDLC-like framing, and over
//! Ethernet without the Ethernet header) and Cisco HDLC.
//!
//! Tunnels are opened, because a monitor on a switch's remote mirror (ERSPAN) or a cloud
//! mirror (VXLAN, Geneve) sees nothing else: GRE (IP, transparent Ethernet bridging,
//! ERSPAN types I, II and III), VXLAN, Geneve, IPv4/IPv6 in IPv4/IPv6, PPPoE sessions and
//! MPLS. At most [`MAX_TUNNELS`] are opened per frame.
//!
//! [`decode`] is stateless: an IP fragment is skipped. [`Decoder`] owns a bounded
//! [`Reassembler`] and returns the reassembled datagram when its last fragment arrives.

use std::net::IpAddr;

use etherparse::err::ip::LaxHeaderSliceError;
use etherparse::{EtherType, IpNumber, LaxIpSlice, TcpSlice, UdpSlice};

use super::frag::{FragConfig, Reassembler, Reassembly};
use super::time::Timestamp;

/// Tunnels opened inside one frame (GRE with or without ERSPAN, VXLAN, Geneve, IP in IP,
/// PPPoE, MPLS each count one); a frame nested deeper is [`Skip::TunnelTooDeep`].
pub const MAX_TUNNELS: u8 = 4;

/// VXLAN's UDP port (RFC 7348).
const VXLAN_PORT: u16 = 4789;
/// Geneve's UDP port (RFC 8926).
const GENEVE_PORT: u16 = 6081;
/// Transparent Ethernet bridging: an Ethernet frame follows (GRE, Geneve).
const TEB: u16 = 0x6558;
/// ERSPAN types I and II (GRE protocol type).
const ERSPAN_1_2: u16 = 0x88be;
/// ERSPAN type III (GRE protocol type).
const ERSPAN_3: u16 = 0x22eb;
const PPPOE_SESSION: u16 = 0x8864;
const MPLS_UNICAST: u16 = 0x8847;
const MPLS_MULTICAST: u16 = 0x8848;

/// The link layer of a capture, from its pcap link type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// LINKTYPE_ETHERNET (1).
    Ethernet,
    /// LINKTYPE_LINUX_SLL (113): 16-byte cooked header.
    LinuxSll,
    /// LINKTYPE_LINUX_SLL2 (276): 20-byte cooked header.
    LinuxSll2,
    /// LINKTYPE_RAW (101, also DLT 12 and 14): the frame starts with the IP header.
    RawIp,
    /// LINKTYPE_NULL (0) and LINKTYPE_LOOP (108): a 4-byte address family first.
    Loopback,
    /// LINKTYPE_PPP (9): an optional 0xFF 0x03 address and control, then the PPP protocol.
    Ppp,
    /// LINKTYPE_PPP_HDLC (50): PPP in HDLC-like framing, or Cisco HDLC (first byte 0x0F
    /// or 0x8F), as libpcap documents.
    PppHdlc,
    /// LINKTYPE_PPP_ETHER (51): a PPPoE header without the Ethernet header.
    PppEther,
    /// LINKTYPE_C_HDLC (104): Cisco HDLC: address, control, EtherType.
    CiscoHdlc,
}

impl LinkType {
    /// Maps a pcap data link type number; `None` when aiwarden cannot decode it.
    pub fn from_pcap(linktype: i32) -> Option<LinkType> {
        match linktype {
            1 => Some(LinkType::Ethernet),
            113 => Some(LinkType::LinuxSll),
            276 => Some(LinkType::LinuxSll2),
            101 | 12 | 14 | 228 | 229 => Some(LinkType::RawIp),
            0 | 108 => Some(LinkType::Loopback),
            9 => Some(LinkType::Ppp),
            50 => Some(LinkType::PppHdlc),
            51 => Some(LinkType::PppEther),
            104 => Some(LinkType::CiscoHdlc),
            _ => None,
        }
    }
}

/// Why a frame was skipped. Counted, never an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// Shorter than its headers claim.
    Truncated,
    /// Not IPv4 or IPv6 (ARP, LLDP...).
    NotIp,
    /// An IP fragment. [`Decoder`] holds it for reassembly (or drops it: its `frag_*`
    /// counters say why); the stateless [`decode`] skips every fragment.
    Fragment,
    /// Not TCP or UDP (ICMP...), or a GRE version or option aiwarden does not open.
    NotTcpUdp,
    /// The IP or transport header is malformed.
    BadHeader,
    /// A link type aiwarden does not decode.
    UnsupportedLink,
    /// Tunnels nested deeper than [`MAX_TUNNELS`].
    TunnelTooDeep,
}

impl Skip {
    /// Every reason, for summaries and metrics.
    pub const ALL: [Skip; 7] = [
        Skip::Truncated,
        Skip::NotIp,
        Skip::Fragment,
        Skip::NotTcpUdp,
        Skip::BadHeader,
        Skip::UnsupportedLink,
        Skip::TunnelTooDeep,
    ];

    /// snake_case name for output and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Truncated => "truncated",
            Skip::NotIp => "not_ip",
            Skip::Fragment => "fragment",
            Skip::NotTcpUdp => "not_tcp_udp",
            Skip::BadHeader => "bad_header",
            Skip::UnsupportedLink => "unsupported_link",
            Skip::TunnelTooDeep => "tunnel_too_deep",
        }
    }
}

/// The transport part of a decoded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    /// A TCP segment.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Sequence number.
        seq: u32,
        /// SYN flag.
        syn: bool,
        /// ACK flag.
        ack: bool,
        /// FIN or RST flag: the flow is ending.
        fin_or_rst: bool,
        /// Acknowledgement number (meaningful when `ack` is set).
        ack_number: u32,
        /// Advertised window, unscaled.
        window: u16,
        /// Segment payload (may be shorter than sent if the capture was truncated).
        payload: &'a [u8],
    },
    /// A UDP datagram.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Datagram payload.
        payload: &'a [u8],
    },
}

/// A decoded packet: addresses and transport, borrowing the frame (or the decoder's
/// buffer for a datagram it just reassembled). For tunnelled traffic every field is the
/// innermost packet's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Source IP address.
    pub src: IpAddr,
    /// Destination IP address.
    pub dst: IpAddr,
    /// TCP or UDP.
    pub transport: Transport<'a>,
    /// Source MAC of the innermost Ethernet header (for Linux cooked captures, the
    /// sender's address when it is 6 bytes long); `None` on links without one (raw IP,
    /// loopback, PPP, Cisco HDLC).
    pub link_src: Option<[u8; 6]>,
    /// Destination MAC of the innermost Ethernet header.
    pub link_dst: Option<[u8; 6]>,
    /// The VLAN ID of the first 802.1Q/802.1ad tag after the innermost Ethernet header.
    pub vlan: Option<u16>,
    /// A tunnel was opened on the way to the packet: the link addresses may be the
    /// tunnel's, not the packet's own.
    pub tunnelled: bool,
}

/// Tunnels opened, counted under stable snake_case names.
#[derive(Debug, Clone, Copy)]
enum Encap {
    Gre,
    Erspan,
    Vxlan,
    Geneve,
    IpInIp,
    Pppoe,
    Mpls,
}

const ENCAP_NAMES: [&str; 7] = [
    "encap_gre",
    "encap_erspan",
    "encap_vxlan",
    "encap_geneve",
    "encap_ip_in_ip",
    "encap_pppoe",
    "encap_mpls",
];

/// The stateful decoder: [`decode`] plus IP fragment reassembly, and counters of the
/// tunnels it opened and of what became of fragments.
pub struct Decoder {
    frag: Reassembler,
    /// One buffer per IP level a datagram can be reassembled at (the outer packet and
    /// each tunnel), so a packet can borrow an outer reassembled datagram while an inner
    /// one is being completed.
    slots: [Vec<u8>; MAX_TUNNELS as usize + 1],
    encap: [u64; ENCAP_NAMES.len()],
    next_expiry: Timestamp,
}

impl Decoder {
    /// A decoder whose reassembler has the given limits.
    pub fn new(cfg: FragConfig) -> Decoder {
        Decoder {
            frag: Reassembler::new(cfg),
            slots: Default::default(),
            encap: [0; ENCAP_NAMES.len()],
            next_expiry: Timestamp::default(),
        }
    }

    /// Decodes one frame captured at `ts`. A fragment that is held (the datagram is not
    /// complete yet) or dropped is `Err(Skip::Fragment)`; the fragment that completes a
    /// datagram yields the whole datagram's packet.
    pub fn decode<'a>(
        &'a mut self,
        ts: Timestamp,
        link: LinkType,
        frame: &'a [u8],
    ) -> Result<Packet<'a>, Skip> {
        if !self.frag.is_empty() && ts >= self.next_expiry {
            self.frag.expire(ts);
            self.next_expiry = ts.plus_micros(1_000_000);
        }
        let mut walk = Walk::new(ts, Some(&mut self.frag), &mut self.encap);
        walk.frame(&mut self.slots, link, frame)
    }

    /// What the decoder counted: tunnels opened (`encap_*`) and fragment outcomes
    /// (`frag_*`). Only counters that are not zero.
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ENCAP_NAMES
            .iter()
            .copied()
            .zip(self.encap.iter().copied())
            .chain(self.frag.counts())
            .filter(|&(_, n)| n > 0)
    }

    /// The reassembler, to inspect its state.
    pub fn reassembler(&self) -> &Reassembler {
        &self.frag
    }
}

/// Decodes one frame of the given link type, opening tunnels. Stateless: any IP fragment
/// is `Err(Skip::Fragment)`.
///
/// The link layer and tunnel headers (a few fixed fields) are read here; IP, its
/// extension headers, TCP and UDP are sliced by etherparse's per-layer slices, which
/// avoids building (and moving) a whole-packet struct for every frame on the hot path.
pub fn decode(link: LinkType, frame: &[u8]) -> Result<Packet<'_>, Skip> {
    let mut encap = [0; ENCAP_NAMES.len()];
    Walk::new(Timestamp::default(), None, &mut encap).frame(&mut [], link, frame)
}

/// Where decoding goes next.
enum Layer<'a> {
    /// An Ethernet header (destination, source, EtherType) starts here.
    Ethernet(&'a [u8]),
    /// The payload of a frame of this EtherType (VLAN tags not yet skipped).
    EtherType(u16, &'a [u8]),
    /// A PPP protocol field starts here.
    Ppp(&'a [u8]),
    /// An IPv4 or IPv6 header starts here.
    Ip(&'a [u8]),
}

/// The state of decoding one frame, layer by layer.
struct Walk<'s> {
    ts: Timestamp,
    frag: Option<&'s mut Reassembler>,
    encap: &'s mut [u64; ENCAP_NAMES.len()],
    tunnels: u8,
    vlan_tags: u8,
    vlan: Option<u16>,
    link_src: Option<[u8; 6]>,
    link_dst: Option<[u8; 6]>,
}

impl<'s> Walk<'s> {
    fn new(
        ts: Timestamp,
        frag: Option<&'s mut Reassembler>,
        encap: &'s mut [u64; ENCAP_NAMES.len()],
    ) -> Walk<'s> {
        Walk {
            ts,
            frag,
            encap,
            tunnels: 0,
            vlan_tags: 0,
            vlan: None,
            link_src: None,
            link_dst: None,
        }
    }

    fn frame<'a>(
        &mut self,
        slots: &'a mut [Vec<u8>],
        link: LinkType,
        frame: &'a [u8],
    ) -> Result<Packet<'a>, Skip> {
        // Most frames are Ethernet straight to IP: go there without the layer walk (which
        // cost about 15% more instructions per frame on the benchmark mix).
        if link == LinkType::Ethernet {
            if let Some(h) = frame.get(..14) {
                if h[12..14] == [0x08, 0x00] || h[12..14] == [0x86, 0xdd] {
                    self.link_dst = mac(h, 0);
                    self.link_src = mac(h, 6);
                    return self.ip(slots, &frame[14..]);
                }
            }
        }
        let layer = self.link(link, frame)?;
        self.layers(slots, layer)
    }

    /// Walks link and shim layers down to IP. `slots` are the buffers still free for
    /// datagrams reassembled at this IP level or deeper.
    ///
    /// `layers` and `ip` call each other once per tunnel, at most [`MAX_TUNNELS`] deep,
    /// so that `ip` builds the packet in the caller's return slot rather than handing
    /// back an enum that is copied on the way out.
    fn layers<'a>(
        &mut self,
        slots: &'a mut [Vec<u8>],
        mut layer: Layer<'a>,
    ) -> Result<Packet<'a>, Skip> {
        loop {
            layer = match layer {
                Layer::Ethernet(d) => {
                    let h = d.get(..14).ok_or(Skip::Truncated)?;
                    self.link_dst = mac(h, 0);
                    self.link_src = mac(h, 6);
                    self.vlan_tags = 0;
                    self.vlan = None;
                    Layer::EtherType(u16::from_be_bytes([h[12], h[13]]), &d[14..])
                }
                Layer::EtherType(et, d) => self.ether_type(et, d)?,
                Layer::Ppp(d) => ppp(d)?,
                Layer::Ip(d) => return self.ip(slots, d),
            }
        }
    }

    fn link<'a>(&mut self, link: LinkType, frame: &'a [u8]) -> Result<Layer<'a>, Skip> {
        Ok(match link {
            LinkType::Ethernet => Layer::Ethernet(frame),
            LinkType::RawIp => Layer::Ip(frame),
            LinkType::LinuxSll => {
                // packet type(2) ARPHRD(2) address length(2) address(8) protocol(2)
                let proto = be16(frame, 14).ok_or(Skip::Truncated)?;
                if be16(frame, 4) == Some(6) {
                    self.link_src = mac(frame, 6);
                }
                Layer::EtherType(proto, &frame[16..])
            }
            LinkType::LinuxSll2 => {
                // protocol(2) reserved(2) ifindex(4) ARPHRD(2) packet type(1)
                // address length(1) address(8)
                let proto = be16(frame, 0).ok_or(Skip::Truncated)?;
                let rest = frame.get(20..).ok_or(Skip::Truncated)?;
                if frame[11] == 6 {
                    self.link_src = mac(frame, 12);
                }
                Layer::EtherType(proto, rest)
            }
            LinkType::Loopback => {
                let family = frame.get(..4).ok_or(Skip::Truncated)?;
                // The family is in the capturing host's byte order: accept both.
                let family = u32::from_le_bytes([family[0], family[1], family[2], family[3]]);
                match family {
                    // AF_INET; AF_INET6 differs between systems: 10 (Linux), 24, 28, 30.
                    2 | 0x0200_0000 | 10 | 24 | 28 | 30 | 0x0a00_0000 | 0x1800_0000
                    | 0x1c00_0000 | 0x1e00_0000 => Layer::Ip(&frame[4..]),
                    _ => return Err(Skip::NotIp),
                }
            }
            LinkType::Ppp => Layer::Ppp(frame.strip_prefix(&[0xff, 0x03]).unwrap_or(frame)),
            LinkType::PppHdlc => match frame.first() {
                Some(0x0f | 0x8f) => cisco_hdlc(frame)?,
                _ => Layer::Ppp(frame.strip_prefix(&[0xff, 0x03]).unwrap_or(frame)),
            },
            LinkType::CiscoHdlc => cisco_hdlc(frame)?,
            LinkType::PppEther => Layer::Ppp(pppoe(frame)?),
        })
    }

    /// Counts one more tunnel, refusing to go deeper than [`MAX_TUNNELS`].
    fn enter(&mut self, kind: Encap) -> Result<(), Skip> {
        if self.tunnels >= MAX_TUNNELS {
            return Err(Skip::TunnelTooDeep);
        }
        self.tunnels += 1;
        self.encap[kind as usize] += 1;
        Ok(())
    }

    fn ether_type<'a>(&mut self, et: u16, d: &'a [u8]) -> Result<Layer<'a>, Skip> {
        match EtherType(et) {
            EtherType::IPV4 | EtherType::IPV6 => Ok(Layer::Ip(d)),
            // Up to three 802.1Q / 802.1ad / QinQ tags per Ethernet header.
            EtherType::VLAN_TAGGED_FRAME
            | EtherType::PROVIDER_BRIDGING
            | EtherType::VLAN_DOUBLE_TAGGED_FRAME
                if self.vlan_tags < 3 =>
            {
                self.vlan_tags += 1;
                let tci = be16(d, 0).ok_or(Skip::Truncated)?;
                self.vlan.get_or_insert(tci & 0x0fff);
                let inner = be16(d, 2).ok_or(Skip::Truncated)?;
                Ok(Layer::EtherType(inner, &d[4..]))
            }
            EtherType(PPPOE_SESSION) => {
                self.enter(Encap::Pppoe)?;
                Ok(Layer::Ppp(pppoe(d)?))
            }
            EtherType(MPLS_UNICAST | MPLS_MULTICAST) => {
                self.enter(Encap::Mpls)?;
                mpls(d)
            }
            _ => Err(Skip::NotIp),
        }
    }

    fn ip<'a>(&mut self, slots: &'a mut [Vec<u8>], d: &'a [u8]) -> Result<Packet<'a>, Skip> {
        let (ip, _) = LaxIpSlice::from_slice(d).map_err(|e| match e {
            LaxHeaderSliceError::Len(_) => Skip::Truncated,
            LaxHeaderSliceError::Content(_) => Skip::BadHeader,
        })?;
        let payload = ip.payload();
        if payload.fragmented {
            return self.fragment(slots, d);
        }
        let (src, dst) = (ip.source_addr(), ip.destination_addr());
        let transport = match payload.ip_number {
            IpNumber::TCP => {
                let tcp = TcpSlice::from_slice(payload.payload).map_err(|e| match e {
                    etherparse::err::tcp::HeaderSliceError::Len(_) => Skip::Truncated,
                    etherparse::err::tcp::HeaderSliceError::Content(_) => Skip::BadHeader,
                })?;
                Transport::Tcp {
                    sport: tcp.source_port(),
                    dport: tcp.destination_port(),
                    seq: tcp.sequence_number(),
                    syn: tcp.syn(),
                    ack: tcp.ack(),
                    fin_or_rst: tcp.fin() || tcp.rst(),
                    ack_number: tcp.acknowledgment_number(),
                    window: tcp.window_size(),
                    payload: tcp.payload(),
                }
            }
            IpNumber::UDP => {
                let udp = UdpSlice::from_slice_lax(payload.payload).map_err(|_| Skip::Truncated)?;
                let (sport, dport, body) =
                    (udp.source_port(), udp.destination_port(), udp.payload());
                // UDP to these ports that does not look like the tunnel stays plain UDP.
                let inner = match dport {
                    VXLAN_PORT => vxlan(body).map(|l| (Encap::Vxlan, l)),
                    GENEVE_PORT => geneve(body).map(|l| (Encap::Geneve, l)),
                    _ => None,
                };
                if let Some((kind, layer)) = inner {
                    self.enter(kind)?;
                    return self.layers(slots, layer);
                }
                Transport::Udp {
                    sport,
                    dport,
                    payload: body,
                }
            }
            IpNumber::GRE => {
                let layer = self.gre(payload.payload)?;
                return self.layers(slots, layer);
            }
            IpNumber::IPV4 | IpNumber::IPV6 => {
                let want = if payload.ip_number == IpNumber::IPV4 {
                    4
                } else {
                    6
                };
                match payload.payload.first().map(|b| b >> 4) {
                    Some(v) if v == want => {}
                    Some(_) => return Err(Skip::BadHeader),
                    None => return Err(Skip::Truncated),
                }
                self.enter(Encap::IpInIp)?;
                return self.ip(slots, payload.payload);
            }
            _ => return Err(Skip::NotTcpUdp),
        };
        Ok(Packet {
            src,
            dst,
            transport,
            link_src: self.link_src,
            link_dst: self.link_dst,
            vlan: self.vlan,
            tunnelled: self.tunnels > 0,
        })
    }

    /// Hands a fragment to the reassembler; a datagram it completes goes into the next
    /// free slot and is decoded from there (it is no longer a fragment, so this happens
    /// once per IP level at most).
    fn fragment<'a>(&mut self, slots: &'a mut [Vec<u8>], d: &'a [u8]) -> Result<Packet<'a>, Skip> {
        let Some(Reassembly::Complete(datagram)) =
            self.frag.as_deref_mut().map(|r| r.push(self.ts, d))
        else {
            return Err(Skip::Fragment);
        };
        let (slot, rest) = slots.split_first_mut().ok_or(Skip::Fragment)?;
        *slot = datagram;
        self.ip(rest, slot)
    }

    /// GRE (RFC 2784, key and sequence number from RFC 2890), version 0 only. Like Linux,
    /// a header with the routing bit is not opened (RFC 2784 retired source routing), nor
    /// version 1 (PPTP).
    fn gre<'a>(&mut self, d: &'a [u8]) -> Result<Layer<'a>, Skip> {
        let flags = be16(d, 0).ok_or(Skip::Truncated)?;
        let proto = be16(d, 2).ok_or(Skip::Truncated)?;
        if flags & 0x4007 != 0 {
            return Err(Skip::NotTcpUdp);
        }
        let sequenced = flags & 0x1000 != 0;
        // Checksum (C), key (K) and sequence number (S) add 4 bytes each.
        let len = 4 + [0x8000, 0x2000, 0x1000]
            .iter()
            .filter(|&&bit| flags & bit != 0)
            .count()
            * 4;
        let body = d.get(len..).ok_or(Skip::Truncated)?;
        match proto {
            // Type I has no ERSPAN header; a sequence number says one follows (type II,
            // or whatever its version field says, as Wireshark reads it).
            ERSPAN_1_2 if !sequenced => {
                self.enter(Encap::Erspan)?;
                Ok(Layer::Ethernet(body))
            }
            ERSPAN_1_2 | ERSPAN_3 => {
                self.enter(Encap::Erspan)?;
                erspan(body)
            }
            TEB => {
                self.enter(Encap::Gre)?;
                Ok(Layer::Ethernet(body))
            }
            et => {
                self.enter(Encap::Gre)?;
                Ok(Layer::EtherType(et, body))
            }
        }
    }
}

/// The ERSPAN header (draft-foschiano-erspan-03), by its version field: 1 (type II, 8
/// bytes) or 2 (type III, 12 bytes, plus an 8-byte platform-specific subheader when the O
/// bit is set; its frame type says Ethernet (0) or IP (2)).
fn erspan(d: &[u8]) -> Result<Layer<'_>, Skip> {
    let version = d.first().ok_or(Skip::Truncated)? >> 4;
    match version {
        1 => Ok(Layer::Ethernet(d.get(8..).ok_or(Skip::Truncated)?)),
        2 => {
            let word = be16(d, 10).ok_or(Skip::Truncated)?;
            let len = if word & 1 != 0 { 20 } else { 12 };
            let body = d.get(len..).ok_or(Skip::Truncated)?;
            match (word >> 10) & 0x1f {
                0 => Ok(Layer::Ethernet(body)),
                2 => Ok(Layer::Ip(body)),
                _ => Err(Skip::NotIp),
            }
        }
        _ => Err(Skip::BadHeader),
    }
}

/// A VXLAN header (RFC 7348) as Linux accepts it: the I flag alone in the flags word,
/// the reserved byte after the VNI zero. Then an Ethernet frame.
fn vxlan(p: &[u8]) -> Option<Layer<'_>> {
    let h = p.get(..8)?;
    (h[..4] == [0x08, 0, 0, 0] && h[7] == 0).then(|| Layer::Ethernet(&p[8..]))
}

/// A Geneve header (RFC 8926): version 0, options of Opt Len x 4 bytes, then Ethernet,
/// IPv4 or IPv6 by protocol type.
fn geneve(p: &[u8]) -> Option<Layer<'_>> {
    let h = p.get(..8)?;
    if h[0] >> 6 != 0 {
        return None;
    }
    let body = p.get(8 + usize::from(h[0] & 0x3f) * 4..)?;
    match u16::from_be_bytes([h[2], h[3]]) {
        TEB => Some(Layer::Ethernet(body)),
        0x0800 | 0x86dd => Some(Layer::Ip(body)),
        _ => None,
    }
}

/// A PPPoE session header (RFC 2516: version and type 0x11, code 0), then PPP. The
/// length field trims Ethernet padding.
fn pppoe(d: &[u8]) -> Result<&[u8], Skip> {
    let h = d.get(..6).ok_or(Skip::Truncated)?;
    if h[0] != 0x11 || h[1] != 0 {
        return Err(Skip::NotIp);
    }
    let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    Ok(d.get(6..6 + len).unwrap_or(&d[6..]))
}

/// A PPP protocol field (one byte when compressed: odd first byte), then IPv4, IPv6 or
/// MPLS.
fn ppp(d: &[u8]) -> Result<Layer<'_>, Skip> {
    let first = *d.first().ok_or(Skip::Truncated)?;
    let (proto, rest) = if first & 1 == 1 {
        (u16::from(first), &d[1..])
    } else {
        (be16(d, 0).ok_or(Skip::Truncated)?, &d[2..])
    };
    match proto {
        0x0021 | 0x0057 => Ok(Layer::Ip(rest)),
        0x0281 => Ok(Layer::EtherType(MPLS_UNICAST, rest)),
        0x0283 => Ok(Layer::EtherType(MPLS_MULTICAST, rest)),
        _ => Err(Skip::NotIp),
    }
}

/// Cisco HDLC: address, control, then an EtherType.
fn cisco_hdlc(d: &[u8]) -> Result<Layer<'_>, Skip> {
    let et = be16(d, 2).ok_or(Skip::Truncated)?;
    Ok(Layer::EtherType(et, &d[4..]))
}

/// An MPLS label stack: labels up to the one with the bottom-of-stack bit, then IPv4 or
/// IPv6 by the version nibble. (Ethernet pseudowires are not opened.)
fn mpls(d: &[u8]) -> Result<Layer<'_>, Skip> {
    let mut at = 0;
    loop {
        let label = d.get(at..at + 4).ok_or(Skip::Truncated)?;
        at += 4;
        if label[2] & 1 == 1 {
            break;
        }
    }
    let rest = &d[at..];
    match rest.first().map(|b| b >> 4) {
        Some(4 | 6) => Ok(Layer::Ip(rest)),
        Some(_) => Err(Skip::NotIp),
        None => Err(Skip::Truncated),
    }
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    let b = data.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

fn mac(data: &[u8], at: usize) -> Option<[u8; 6]> {
    data.get(at..at + 6)?.try_into().ok()
}

#[cfg(test)]
mod tests;
