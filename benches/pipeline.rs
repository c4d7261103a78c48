//! Throughput of the whole pure pipeline (decode, reassembly, TLS/QUIC/DNS, rule
//! judgement) on a realistic clinic mix, and QUIC Initial decryption on its own.
//!
//! The mix is built from the project's fixture captures (real rustls ClientHellos and
//! quinn QUIC Initials) re-addressed per flow, plus bulk data: per cycle of 96 frames,
//! 64 full-size download segments, 24 bare ACKs, a SYN, a DNS query and answer, a
//! ClientHello and a QUIC Initial. Most bytes are bulk; a few percent of frames carry
//! something detection reads.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use etherparse::PacketBuilder;

use aiwarden::detect::packet::{decode, Transport};
use aiwarden::detect::{quic, Detector, DetectorConfig, LinkType, Timestamp};
use aiwarden::devices::DeviceMap;
use aiwarden::incident::{judge, Pipeline, DEFAULT_WINDOW_MICROS};
use aiwarden::policy::{Mode, RuleSet};

fn fixture(name: &str) -> Vec<(LinkType, Vec<u8>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let mut cap = pcap::Capture::from_file(&path).expect("fixture opens");
    let link = LinkType::from_pcap(cap.get_datalink().0).expect("link type");
    let mut out = Vec::new();
    while let Ok(p) = cap.next_packet() {
        out.push((link, p.data.to_vec()));
    }
    out
}

/// Payloads of the first TCP segment to port 443 that carries data, and the first UDP
/// datagram to port 443.
fn handshake_payloads() -> (Vec<u8>, Vec<u8>, Vec<Vec<u8>>) {
    let mut client_hello = None;
    for (link, f) in fixture("tls_rustls_single.pcap") {
        if let Ok(p) = decode(link, &f) {
            if let Transport::Tcp {
                dport: 443,
                payload,
                ..
            } = p.transport
            {
                if !payload.is_empty() && client_hello.is_none() {
                    client_hello = Some(payload.to_vec());
                }
            }
        }
    }
    let mut initial = None;
    for (link, f) in fixture("quic_v1_chatgpt.pcap") {
        if let Ok(p) = decode(link, &f) {
            if let Transport::Udp {
                dport: 443,
                payload,
                ..
            } = p.transport
            {
                if initial.is_none() {
                    initial = Some(payload.to_vec());
                }
            }
        }
    }
    let dns: Vec<Vec<u8>> = fixture("dns_udp.pcap")
        .into_iter()
        .filter_map(|(link, f)| match decode(link, &f).ok()?.transport {
            Transport::Udp { payload, .. } => Some(payload.to_vec()),
            _ => None,
        })
        .take(2)
        .collect();
    (
        client_hello.expect("a ClientHello in the fixture"),
        initial.expect("a QUIC Initial in the fixture"),
        dns,
    )
}

fn frame(
    src: [u8; 4],
    dst: [u8; 4],
    tcp: Option<(u16, u16, u32, bool)>,
    udp: Option<(u16, u16)>,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4(src, dst, 64);
    let mut out = Vec::with_capacity(payload.len() + 64);
    match (tcp, udp) {
        (Some((sp, dp, seq, syn)), _) => {
            let t = b.tcp(sp, dp, seq, 64_240);
            let t = if syn { t.syn() } else { t.ack(1) };
            t.write(&mut out, payload).expect("write");
        }
        (None, Some((sp, dp))) => b.udp(sp, dp).write(&mut out, payload).expect("write"),
        _ => unreachable!("tcp or udp"),
    }
    out
}

/// The clinic mix: `cycles` x 96 frames.
fn clinic_mix(cycles: u32) -> Vec<Vec<u8>> {
    let (ch, initial, dns) = handshake_payloads();
    let bulk = vec![0x17u8; 1448];
    let server = [104, 18, 32, 47];
    let resolver = [10, 0, 0, 1];
    let mut frames = Vec::new();
    for i in 0..cycles {
        let client = [10, 0, (i / 250 % 250) as u8, (i % 250) as u8 + 2];
        let port = 10_000 + (i % 50_000) as u16;
        frames.push(frame(client, resolver, None, Some((port, 53)), &dns[0]));
        frames.push(frame(
            resolver,
            client,
            None,
            Some((53, port)),
            &dns[1 % dns.len()],
        ));
        frames.push(frame(
            client,
            server,
            Some((port, 443, 1_000, true)),
            None,
            &[],
        ));
        frames.push(frame(
            client,
            server,
            Some((port, 443, 1_001, false)),
            None,
            &ch,
        ));
        frames.push(frame(client, server, None, Some((port, 443)), &initial));
        for k in 0..88u32 {
            if k % 11 < 8 {
                frames.push(frame(
                    server,
                    client,
                    Some((443, port, 5_000 + k * 1448, false)),
                    None,
                    &bulk,
                ));
            } else {
                frames.push(frame(
                    client,
                    server,
                    Some((port, 443, 1_001 + ch.len() as u32, false)),
                    None,
                    &[],
                ));
            }
        }
        frames.push(frame(
            client,
            server,
            Some((port.wrapping_add(1), 8443, 1, false)),
            None,
            &bulk[..200],
        ));
        frames.push(frame(
            server,
            client,
            Some((8443, port.wrapping_add(1), 1, false)),
            None,
            &bulk[..52],
        ));
        frames.push(frame(
            client,
            server,
            None,
            Some((port, 443)),
            &[0x40, 1, 2, 3, 4, 5, 6, 7],
        ));
    }
    frames
}

fn rules() -> RuleSet {
    RuleSet::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"))
        .expect("shipped rules load")
}

fn pipeline(c: &mut Criterion) {
    let frames = clinic_mix(2_000);
    let bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();
    let rules = rules();
    // The daemon's and replay's steps: detector, device, rules, incident pipeline.
    let devices = DeviceMap::default();
    let run = |frames: &[Vec<u8>]| {
        let mut det = Detector::new(DetectorConfig::default());
        let mut pipeline = Pipeline::new(Mode::Enforce, DEFAULT_WINDOW_MICROS);
        let mut flagged = 0usize;
        for (i, f) in frames.iter().enumerate() {
            for o in det.process(Timestamp::from_micros(i as i64 * 10), LinkType::Ethernet, f) {
                let ip = o.client.ip();
                let who = devices.identify_with(ip, o.client_mac.or_else(|| det.mac_of(ip)));
                let j = judge(&rules, &o, &who.client(), Mode::Enforce);
                if j.decision.service.is_some() {
                    flagged += 1;
                }
                black_box(pipeline.step(&o, &who, &j));
            }
        }
        flagged
    };
    // The mix must really exercise detection: every cycle yields DNS, TLS and QUIC.
    let found = run(&frames);
    assert!(found >= 2 * 2_000, "detections in the mix: {found}");
    let mut g = c.benchmark_group("pipeline_packets");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function("clinic_mix", |b| {
        b.iter(|| black_box(run(black_box(&frames))))
    });
    g.finish();
    let mut g = c.benchmark_group("pipeline_bytes");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("clinic_mix", |b| {
        b.iter(|| black_box(run(black_box(&frames))))
    });
    g.finish();
}

fn quic_initial(c: &mut Criterion) {
    let (_, initial, _) = handshake_payloads();
    assert!(
        quic::decrypt_client_initial(&initial).is_some(),
        "fixture Initial decrypts"
    );
    let mut g = c.benchmark_group("quic");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decrypt_client_initial", |b| {
        b.iter_batched(
            || initial.clone(),
            |d| black_box(quic::decrypt_client_initial(&d)),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, pipeline, quic_initial);
criterion_main!(benches);
