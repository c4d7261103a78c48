//! Makes a bulk-heavy capture for throughput comparisons: many clients, many interleaved
//! connections, most bytes in a few long downloads, like the pipeline bench's clinic mix.
//!
//! Each visit is taken from the project's own captures (the bundled sample and the ECH and
//! lookalike fixtures): its DNS query and answer, its real rustls ClientHello or quinn
//! Initials and its server address, re-addressed to one of 600 clients. A TCP connection
//! then has the SYN/SYN-ACK/ACK handshake, the ClientHello cut at the MSS, a TLS 1.3
//! shaped server flight (ServerHello, ChangeCipherSpec, an encrypted-handshake record),
//! the client's second flight and request, a download of whole 16 KB application-data
//! records in 1448-byte segments with an ACK every second segment, and FIN both ways. A
//! QUIC visit sends its Initials, then 1252-byte short-header datagrams down with an ACK
//! datagram up every fourth. Download sizes: 80% of visits 1–6 records, 17% 15–120,
//! 3% 1,000–3,000 (16–49 MB), so the long ones carry about three quarters of the bytes.
//! With `short`, every download is 1–6 records: a new connection every 70 or so frames,
//! about the density of the pipeline bench's clinic mix (the live line-rate bench uses it,
//! so detection has as much to do per second as the bytes allow).
//!
//! Everything, random-looking payloads included, comes from a fixed-seed generator: the
//! same inputs give the same file. Frames are written as they are made (48 connections
//! open at a time), so memory stays small whatever the size.
//!
//! `cargo run --release --example bulk_capture -- OUT.pcap [GIB] [short]` (default 1.1 GiB)

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::time::Duration;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::DataLink;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Where visits come from, relative to the repository root.
const SOURCES: [&str; 4] = [
    "samples/clinic-morning.pcap",
    "tests/fixtures/tls_ech_grease.pcap",
    "tests/fixtures/tls_ech_real.pcap",
    "tests/fixtures/lookalikes.pcap",
];
const MSS: usize = 1448;
/// A full TLS 1.3 application-data record on the wire: header, 16,384 bytes of data, the
/// content type byte and the AEAD tag.
const RECORD: usize = 5 + 16_384 + 1 + 16;
const QUIC_DATAGRAM: usize = 1252;
const OPEN: usize = 48;
const CLIENTS: u32 = 600;
const GATEWAY_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
/// 2026-11-23T10:00:00Z.
const START_SECS: u64 = 1_795_428_000;

/// One visit as a source capture shows it; the client address is dropped.
struct Visit {
    dns: Option<Dns>,
    server: Ipv4Addr,
    kind: Kind,
}

struct Dns {
    resolver: SocketAddrV4,
    query: Vec<u8>,
    answer: Vec<u8>,
}

enum Kind {
    /// The client's first flight (the ClientHello records).
    Tls(Vec<u8>),
    /// The client's Initial datagrams.
    Quic(Vec<Vec<u8>>),
}

/// Reads the visits of an Ethernet/IPv4 capture in the order they start: a DNS exchange
/// belongs to the next connection its client opens.
fn visits(path: &Path) -> Res<Vec<Visit>> {
    let mut reader = PcapReader::new(BufReader::new(File::open(path)?))?;
    let mut out: Vec<Visit> = Vec::new();
    let mut query: HashMap<Ipv4Addr, (SocketAddrV4, Vec<u8>)> = HashMap::new();
    let mut dns: HashMap<Ipv4Addr, Dns> = HashMap::new();
    // flow (client, server) -> visit index, and the client's segments by sequence number
    let mut flows: HashMap<(SocketAddrV4, SocketAddrV4), usize> = HashMap::new();
    let mut segments: HashMap<usize, Vec<(u32, Vec<u8>)>> = HashMap::new();
    let mut answered: Vec<bool> = Vec::new();
    while let Some(p) = reader.next_packet() {
        let p = p?;
        let Ok(s) = SlicedPacket::from_ethernet(&p.data) else {
            continue;
        };
        let Some(NetSlice::Ipv4(ip)) = s.net else {
            continue;
        };
        let (src, dst) = (ip.header().source_addr(), ip.header().destination_addr());
        match s.transport {
            Some(TransportSlice::Udp(u)) => {
                let (a, b) = (
                    SocketAddrV4::new(src, u.source_port()),
                    SocketAddrV4::new(dst, u.destination_port()),
                );
                let payload = u.payload().to_vec();
                if b.port() == 53 {
                    query.insert(src, (b, payload));
                } else if a.port() == 53 {
                    if let Some((resolver, q)) = query.remove(&dst) {
                        dns.insert(
                            dst,
                            Dns {
                                resolver,
                                query: q,
                                answer: payload,
                            },
                        );
                    }
                } else if b.port() == 443 {
                    let i = *flows.entry((a, b)).or_insert_with(|| {
                        out.push(Visit {
                            dns: dns.remove(&src),
                            server: dst,
                            kind: Kind::Quic(Vec::new()),
                        });
                        answered.push(false);
                        out.len() - 1
                    });
                    if let Kind::Quic(d) = &mut out[i].kind {
                        d.push(payload);
                    }
                }
            }
            Some(TransportSlice::Tcp(t)) => {
                let (a, b) = (
                    SocketAddrV4::new(src, t.source_port()),
                    SocketAddrV4::new(dst, t.destination_port()),
                );
                if b.port() == 443 {
                    let i = *flows.entry((a, b)).or_insert_with(|| {
                        out.push(Visit {
                            dns: dns.remove(&src),
                            server: dst,
                            kind: Kind::Tls(Vec::new()),
                        });
                        answered.push(false);
                        out.len() - 1
                    });
                    if !t.payload().is_empty() && !answered[i] {
                        segments
                            .entry(i)
                            .or_default()
                            .push((t.sequence_number(), t.payload().to_vec()));
                    }
                } else if a.port() == 443 && !t.payload().is_empty() {
                    if let Some(&i) = flows.get(&(b, a)) {
                        answered[i] = true;
                    }
                }
            }
            _ => {}
        }
    }
    // The first flight in sequence order, each byte once (fixtures reorder and resend).
    for (i, mut segs) in segments {
        segs.sort_by_key(|(seq, _)| *seq);
        let start = segs[0].0;
        let mut flight = Vec::new();
        for (seq, data) in segs {
            let off = seq.wrapping_sub(start) as usize;
            if off + data.len() > flight.len() && off <= flight.len() {
                flight.extend_from_slice(&data[flight.len() - off..]);
            }
        }
        out[i].kind = Kind::Tls(flight);
    }
    out.retain(|v| match &v.kind {
        Kind::Tls(f) => !f.is_empty(),
        Kind::Quic(d) => !d.is_empty(),
    });
    Ok(out)
}

/// SplitMix64: a fixed seed gives the same capture every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Streams frames into the pcap file and keeps the capture clock: each frame takes its
/// length at 1 Gbit/s.
struct Out {
    w: PcapWriter<BufWriter<File>>,
    now: Duration,
    frame: Vec<u8>,
    packets: u64,
    bytes: u64,
}

#[derive(Clone, Copy)]
enum Flags {
    Syn,
    SynAck,
    Ack,
    PshAck,
    FinAck,
}

impl Out {
    fn emit(&mut self) -> Res<()> {
        self.w.write_packet(&PcapPacket::new(
            self.now,
            self.frame.len() as u32,
            &self.frame,
        ))?;
        self.packets += 1;
        self.bytes += self.frame.len() as u64 + 16;
        self.now += Duration::from_nanos(self.frame.len() as u64 * 8);
        Ok(())
    }

    fn macs(src: SocketAddrV4, dst: SocketAddrV4, from_client: bool) -> ([u8; 6], [u8; 6]) {
        let host = |a: SocketAddrV4| {
            let o = a.ip().octets();
            [2, 0, o[0], o[1], o[2], o[3]]
        };
        if from_client {
            (host(src), GATEWAY_MAC)
        } else {
            (GATEWAY_MAC, host(dst))
        }
    }

    fn tcp(&mut self, f: &Frame<'_>, seq: u32, ack: u32, flags: Flags) -> Res<()> {
        let (smac, dmac) = Out::macs(f.src, f.dst, f.from_client);
        let b = PacketBuilder::ethernet2(smac, dmac)
            .ipv4(f.src.ip().octets(), f.dst.ip().octets(), 64)
            .tcp(f.src.port(), f.dst.port(), seq, 64_240);
        let b = match flags {
            Flags::Syn => b.syn(),
            Flags::SynAck => b.syn().ack(ack),
            Flags::Ack => b.ack(ack),
            Flags::PshAck => b.psh().ack(ack),
            Flags::FinAck => b.fin().ack(ack),
        };
        self.frame.clear();
        b.write(&mut self.frame, f.payload)?;
        self.emit()
    }

    fn udp(&mut self, f: &Frame<'_>) -> Res<()> {
        let (smac, dmac) = Out::macs(f.src, f.dst, f.from_client);
        let b = PacketBuilder::ethernet2(smac, dmac)
            .ipv4(f.src.ip().octets(), f.dst.ip().octets(), 64)
            .udp(f.src.port(), f.dst.port());
        self.frame.clear();
        b.write(&mut self.frame, f.payload)?;
        self.emit()
    }
}

struct Frame<'a> {
    src: SocketAddrV4,
    dst: SocketAddrV4,
    from_client: bool,
    payload: &'a [u8],
}

impl Frame<'_> {
    fn between(
        client: SocketAddrV4,
        server: SocketAddrV4,
        from_client: bool,
        payload: &[u8],
    ) -> Frame<'_> {
        let (src, dst) = if from_client {
            (client, server)
        } else {
            (server, client)
        };
        Frame {
            src,
            dst,
            from_client,
            payload,
        }
    }
}

/// A frame a connection will send, before the download or after it.
struct Step {
    from_client: bool,
    /// `None` for UDP.
    tcp: Option<(u32, u32, Flags)>,
    /// Port the client uses for this step (DNS uses its own).
    client_port: u16,
    /// The peer: the server, or the resolver for DNS.
    peer: SocketAddrV4,
    payload: Vec<u8>,
}

/// The download: TCP segments of an application-data record stream, or QUIC datagrams.
struct Download {
    quic: bool,
    /// Bytes (TCP) or datagrams (QUIC) in all.
    total: u64,
    sent: u64,
    /// Server and client sequence numbers at the start (TCP).
    sseq: u32,
    cseq: u32,
    /// Connection IDs for QUIC short headers: the client's (down) and the server's (up).
    cid_down: Vec<u8>,
    cid_up: Vec<u8>,
    /// Where this connection's pseudo-random bytes start in the shared pool.
    salt: usize,
}

struct Conn {
    client: SocketAddrV4,
    server: SocketAddrV4,
    head: VecDeque<Step>,
    download: Download,
    tail: VecDeque<Step>,
}

/// A TLS 1.3 server first flight for `client_hello`: ServerHello (TLS_AES_128_GCM_SHA256,
/// X25519 key share, the client's session ID echoed), ChangeCipherSpec, and one record of
/// encrypted handshake (EncryptedExtensions, Certificate, CertificateVerify, Finished).
fn server_flight(client_hello: &[u8], rng: &mut Rng) -> Vec<u8> {
    let at = 5 + 4 + 2 + 32;
    let sid: &[u8] = client_hello
        .get(at)
        .and_then(|&n| client_hello.get(at + 1..at + 1 + usize::from(n)))
        .unwrap_or(&[]);
    let mut body = vec![3, 3];
    body.extend_from_slice(&rng.bytes(32));
    body.push(sid.len() as u8);
    body.extend_from_slice(sid);
    body.extend_from_slice(&[0x13, 0x01, 0]);
    let mut ext = vec![0, 0x2b, 0, 2, 3, 4, 0, 0x33, 0, 36, 0, 0x1d, 0, 32];
    ext.extend_from_slice(&rng.bytes(32));
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![2, 0];
    hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
    hs.extend_from_slice(&body);
    let mut out = record(22, &hs);
    out.extend_from_slice(&[20, 3, 3, 0, 1, 1]);
    let encrypted = rng.range(2_400, 4_600) as usize;
    out.extend_from_slice(&record(23, &rng.bytes(encrypted)));
    out
}

/// The client's second flight: ChangeCipherSpec, Finished, and the request.
fn client_second_flight(rng: &mut Rng) -> Vec<u8> {
    let mut out = vec![20, 3, 3, 0, 1, 1];
    out.extend_from_slice(&record(23, &rng.bytes(53)));
    let request = rng.range(250, 900) as usize;
    out.extend_from_slice(&record(23, &rng.bytes(request)));
    out
}

fn record(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![ty, 3, 3];
    r.extend_from_slice(&(body.len() as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}

/// Download size in records (TCP) or datagrams (QUIC, about the same bytes).
fn download_records(rng: &mut Rng, short: bool) -> u64 {
    if short {
        return rng.range(1, 6);
    }
    match rng.next() % 100 {
        0..80 => rng.range(1, 6),
        80..97 => rng.range(15, 120),
        _ => rng.range(1_000, 3_000),
    }
}

/// The connection IDs in a QUIC long header: (destination, source).
fn quic_cids(initial: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let dlen = usize::from(*initial.get(5).unwrap_or(&0));
    let dcid = initial.get(6..6 + dlen).unwrap_or(&[]).to_vec();
    let slen = usize::from(*initial.get(6 + dlen).unwrap_or(&0));
    let scid = initial
        .get(7 + dlen..7 + dlen + slen)
        .unwrap_or(&[])
        .to_vec();
    (dcid, scid)
}

struct Generator {
    visits: Vec<Visit>,
    rng: Rng,
    ports: Vec<u16>,
    pool: Vec<u8>,
    /// Bytes the connections started so far will write.
    committed: u64,
    started: u64,
    long_bytes: u64,
    /// Every download short (`short` on the command line).
    short: bool,
}

impl Generator {
    fn port(&mut self, client: u32) -> u16 {
        let p = &mut self.ports[client as usize];
        *p = if *p >= 65_000 { 49_152 } else { *p + 1 };
        *p
    }

    fn conn(&mut self) -> Conn {
        let v = (self.rng.next() % self.visits.len() as u64) as usize;
        let who = (self.rng.next() % u64::from(CLIENTS)) as u32;
        let ip = Ipv4Addr::new(10, 20, (who / 250) as u8, (who % 250) as u8 + 2);
        let dns_port = self.port(who);
        let port = self.port(who);
        let client = SocketAddrV4::new(ip, port);
        let server = SocketAddrV4::new(self.visits[v].server, 443);
        let records = download_records(&mut self.rng, self.short);
        let mut head = VecDeque::new();
        let mut tail = VecDeque::new();
        let mut planned = 0u64; // the download's bytes; head and tail are added below
        let step = |from_client, tcp, client_port, peer, payload: Vec<u8>| Step {
            from_client,
            tcp,
            client_port,
            peer,
            payload,
        };
        if let Some(d) = &self.visits[v].dns {
            head.push_back(step(true, None, dns_port, d.resolver, d.query.clone()));
            head.push_back(step(false, None, dns_port, d.resolver, d.answer.clone()));
        }
        let download = match &self.visits[v].kind {
            Kind::Tls(flight) => {
                let (cisn, sisn) = (self.rng.next() as u32, self.rng.next() as u32);
                let s1 = server_flight(flight, &mut self.rng);
                let c2 = client_second_flight(&mut self.rng);
                let (c1, s1n) = (cisn.wrapping_add(1), sisn.wrapping_add(1));
                let mut tcp = |from_client, seq, ack, f, payload: &[u8]| {
                    let t = Some((seq, ack, f));
                    head.push_back(step(from_client, t, port, server, payload.to_vec()));
                };
                tcp(true, cisn, 0, Flags::Syn, &[]);
                tcp(false, sisn, c1, Flags::SynAck, &[]);
                tcp(true, c1, s1n, Flags::Ack, &[]);
                let mut cseq = c1;
                for part in flight.chunks(MSS) {
                    tcp(true, cseq, s1n, Flags::PshAck, part);
                    cseq = cseq.wrapping_add(part.len() as u32);
                }
                let mut sseq = s1n;
                for part in s1.chunks(MSS) {
                    tcp(false, sseq, cseq, Flags::PshAck, part);
                    sseq = sseq.wrapping_add(part.len() as u32);
                }
                tcp(true, cseq, sseq, Flags::PshAck, &c2);
                cseq = cseq.wrapping_add(c2.len() as u32);
                let total = records * RECORD as u64;
                let segs = total.div_ceil(MSS as u64);
                planned += total + segs * (16 + 54) + segs.div_ceil(2) * (16 + 54);
                let send = sseq.wrapping_add(total as u32);
                let (cfin, sfin) = (cseq.wrapping_add(1), send.wrapping_add(1));
                for (from_client, seq, ack, f) in [
                    (true, cseq, send, Flags::FinAck),
                    (false, send, cfin, Flags::FinAck),
                    (true, cfin, sfin, Flags::Ack),
                ] {
                    tail.push_back(step(from_client, Some((seq, ack, f)), port, server, vec![]));
                }
                Download {
                    quic: false,
                    total,
                    sent: 0,
                    sseq,
                    cseq,
                    cid_down: Vec::new(),
                    cid_up: Vec::new(),
                    salt: self.rng.next() as usize,
                }
            }
            Kind::Quic(initials) => {
                for d in initials {
                    head.push_back(step(true, None, port, server, d.clone()));
                }
                let (dcid, scid) = quic_cids(&initials[0]);
                let total = records * RECORD as u64 / QUIC_DATAGRAM as u64;
                planned +=
                    total * (QUIC_DATAGRAM as u64 + 16 + 42) + total.div_ceil(4) * (40 + 16 + 42);
                Download {
                    quic: true,
                    total,
                    sent: 0,
                    sseq: 0,
                    cseq: 0,
                    cid_down: scid,
                    cid_up: dcid,
                    salt: self.rng.next() as usize,
                }
            }
        };
        for s in head.iter().chain(&tail) {
            let headers = 16 + 14 + 20 + if s.tcp.is_some() { 20 } else { 8 };
            planned += s.payload.len() as u64 + headers;
        }
        self.committed += planned;
        self.started += 1;
        if records >= 1_000 {
            self.long_bytes += planned;
        }
        Conn {
            client,
            server,
            head,
            download,
            tail,
        }
    }
}

impl Conn {
    /// Writes the connection's next few frames; false once it has nothing left.
    fn step(&mut self, out: &mut Out, pool: &[u8], scratch: &mut Vec<u8>) -> Res<bool> {
        if let Some(s) = self.head.pop_front() {
            self.send(out, &s)?;
            return Ok(true);
        }
        let d = &mut self.download;
        if d.sent < d.total {
            let (c, sv) = (self.client, self.server);
            if d.quic {
                for _ in 0..4 {
                    if d.sent == d.total {
                        break;
                    }
                    short_header(scratch, &d.cid_down, pool, d.salt, d.sent, QUIC_DATAGRAM);
                    d.sent += 1;
                    out.udp(&Frame::between(c, sv, false, scratch))?;
                }
                short_header(scratch, &d.cid_up, pool, d.salt ^ 0x5a5a, d.sent, 40);
                out.udp(&Frame::between(c, sv, true, scratch))?;
            } else {
                for _ in 0..2 {
                    if d.sent == d.total {
                        break;
                    }
                    let len = (d.total - d.sent).min(MSS as u64) as usize;
                    records_at(scratch, pool, d.salt, d.sent, len);
                    let seq = d.sseq.wrapping_add(d.sent as u32);
                    out.tcp(
                        &Frame::between(c, sv, false, scratch),
                        seq,
                        d.cseq,
                        Flags::Ack,
                    )?;
                    d.sent += len as u64;
                }
                let ack = d.sseq.wrapping_add(d.sent as u32);
                out.tcp(&Frame::between(c, sv, true, &[]), d.cseq, ack, Flags::Ack)?;
            }
            return Ok(true);
        }
        if let Some(s) = self.tail.pop_front() {
            self.send(out, &s)?;
            return Ok(true);
        }
        Ok(false)
    }

    fn send(&self, out: &mut Out, s: &Step) -> Res<()> {
        let me = SocketAddrV4::new(*self.client.ip(), s.client_port);
        let (src, dst) = if s.from_client {
            (me, s.peer)
        } else {
            (s.peer, me)
        };
        let f = Frame {
            src,
            dst,
            from_client: s.from_client,
            payload: &s.payload,
        };
        match s.tcp {
            Some((seq, ack, flags)) => out.tcp(&f, seq, ack, flags),
            None => out.udp(&f),
        }
    }
}

/// Bytes `at..at + len` of a stream of full application-data records.
fn records_at(buf: &mut Vec<u8>, pool: &[u8], salt: usize, at: u64, len: usize) {
    buf.clear();
    let mut pos = at;
    while buf.len() < len {
        let in_record = (pos % RECORD as u64) as usize;
        let n = (RECORD - in_record).min(len - buf.len());
        if in_record < 5 {
            let header = [23, 3, 3, 0x40, 0x11]; // 16,401 bytes follow
            let h = (5 - in_record).min(n);
            buf.extend_from_slice(&header[in_record..in_record + h]);
            pos += h as u64;
            continue;
        }
        let start = (salt.wrapping_add(pos as usize * 7)) % (pool.len() - RECORD);
        buf.extend_from_slice(&pool[start..start + n]);
        pos += n as u64;
    }
}

/// A QUIC short-header packet of `len` bytes to connection ID `cid`.
fn short_header(buf: &mut Vec<u8>, cid: &[u8], pool: &[u8], salt: usize, n: u64, len: usize) {
    buf.clear();
    let start = salt.wrapping_add(n as usize * 1_361) % (pool.len() - len);
    buf.push(0x40 | (pool[start] & 0x3f));
    buf.extend_from_slice(cid);
    let rest = len.saturating_sub(buf.len());
    buf.extend_from_slice(&pool[start + 1..start + 1 + rest]);
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let (path, gib, short) = match args.as_slice() {
        [_, out] => (out.clone(), 1.1, false),
        [_, out, gib] => (out.clone(), gib.parse::<f64>()?, false),
        [_, out, gib, short] if short == "short" => (out.clone(), gib.parse::<f64>()?, true),
        _ => return Err("usage: bulk_capture OUT.pcap [GIB] [short]".into()),
    };
    let target = (gib * f64::from(1u32 << 30)) as u64;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = Vec::new();
    for s in SOURCES {
        all.extend(visits(&root.join(s))?);
    }
    if all.is_empty() {
        return Err("no visits in the source captures".into());
    }
    let mut rng = Rng(0x00c1_1a1c_b01c_0de5);
    let pool = rng.bytes(4 << 20);
    let mut g = Generator {
        visits: all,
        rng,
        ports: vec![49_152; CLIENTS as usize],
        pool,
        committed: 24,
        started: 0,
        long_bytes: 0,
        short,
    };
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ..PcapHeader::default()
    };
    let file = BufWriter::with_capacity(1 << 20, File::create(&path)?);
    let mut out = Out {
        w: PcapWriter::with_header(file, header)?,
        now: Duration::from_secs(START_SECS),
        frame: Vec::with_capacity(2048),
        packets: 0,
        bytes: 24,
    };
    let mut open: Vec<Conn> = Vec::with_capacity(OPEN);
    let mut scratch = Vec::with_capacity(2048);
    while open.len() < OPEN && g.committed < target {
        let c = g.conn();
        open.push(c);
    }
    while !open.is_empty() {
        let mut i = 0;
        while i < open.len() {
            if open[i].step(&mut out, &g.pool, &mut scratch)? {
                i += 1;
            } else if g.committed < target {
                open[i] = g.conn();
            } else {
                open.swap_remove(i);
            }
        }
    }
    drop(out.w.into_writer().into_inner()?);
    eprintln!(
        "wrote {path}: {} packets, {} bytes, {} connections from {} visits, {:.0}% of bytes in downloads of 16 MB or more",
        out.packets,
        out.bytes,
        g.started,
        g.visits.len(),
        100.0 * g.long_bytes as f64 / out.bytes as f64
    );
    Ok(())
}
