//! Reassembly tests: order, duplicates, overlaps under each policy, every bound.
use super::*;
use etherparse::PacketBuilder;

/// An IPv4 UDP datagram from etherparse (no link header).
pub(crate) fn udp_v4(payload: &[u8], id: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 23], [10, 0, 0, 1], 64)
        .udp(40000, 53)
        .write(&mut out, payload)
        .expect("write");
    out[4..6].copy_from_slice(&id.to_be_bytes());
    set_v4(&mut out, 0, false);
    out
}

pub(crate) fn udp_v6(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv6([0x20; 16], [0x21; 16], 64)
        .udp(40000, 53)
        .write(&mut out, payload)
        .expect("write");
    out
}

/// Splits an IPv4 datagram's payload at `cuts` (multiples of 8) into fragments.
pub(crate) fn fragment_v4(datagram: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let ihl = usize::from(datagram[0] & 0x0f) * 4;
    let payload = &datagram[ihl..];
    pieces(payload.len(), cuts)
        .into_iter()
        .map(|(s, e)| {
            let mut f = datagram[..ihl].to_vec();
            f.extend_from_slice(&payload[s..e]);
            set_v4(&mut f, s, e < payload.len());
            f
        })
        .collect()
}

/// Rewrites an IPv4 fragment's offset, MF flag, length and checksum (DF is kept).
pub(crate) fn set_v4(f: &mut [u8], offset: usize, more: bool) {
    let len = f.len() as u16;
    f[2..4].copy_from_slice(&len.to_be_bytes());
    let df = u16::from(f[6] & 0x40) << 8;
    let fo = df | (offset / 8) as u16 | if more { 0x2000 } else { 0 };
    f[6..8].copy_from_slice(&fo.to_be_bytes());
    f[10] = 0;
    f[11] = 0;
    let ihl = usize::from(f[0] & 0x0f) * 4;
    let sum = ipv4_checksum(&f[..ihl]);
    f[10..12].copy_from_slice(&sum.to_be_bytes());
}

/// Splits an IPv6 datagram (no extension headers) into fragments with identification
/// `id`.
pub(crate) fn fragment_v6(datagram: &[u8], cuts: &[usize], id: u32) -> Vec<Vec<u8>> {
    let payload = &datagram[40..];
    pieces(payload.len(), cuts)
        .into_iter()
        .map(|(s, e)| v6_fragment(datagram, id, s, e < payload.len(), &payload[s..e]))
        .collect()
}

/// One IPv6 fragment of `datagram` carrying `data` at `offset`.
pub(crate) fn v6_fragment(
    datagram: &[u8],
    id: u32,
    offset: usize,
    more: bool,
    data: &[u8],
) -> Vec<u8> {
    let mut f = datagram[..40].to_vec();
    let next = f[6];
    f[6] = 44;
    f[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    let fo = offset as u16 | u16::from(more);
    f.extend_from_slice(&[next, 0]);
    f.extend_from_slice(&fo.to_be_bytes());
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(data);
    f
}

fn pieces(len: usize, cuts: &[usize]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for &c in cuts.iter().chain(std::iter::once(&len)) {
        out.push((start, c));
        start = c;
    }
    out
}

fn t(micros: i64) -> Timestamp {
    Timestamp::from_micros(micros)
}

fn feed(r: &mut Reassembler, frags: &[Vec<u8>]) -> Vec<Reassembly> {
    frags.iter().map(|f| r.push(t(0), f)).collect()
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

fn complete(out: &[Reassembly]) -> Option<&Vec<u8>> {
    out.iter().find_map(|r| match r {
        Reassembly::Complete(d) => Some(d),
        _ => None,
    })
}

#[test]
fn ipv4_in_order_reversed_and_shuffled() {
    let dg = udp_v4(&payload(1000), 7);
    let frags = fragment_v4(&dg, &[256, 512, 768]);
    for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]] {
        let mut r = Reassembler::new(FragConfig::default());
        let ordered: Vec<_> = order.iter().map(|&i| frags[i].clone()).collect();
        let out = feed(&mut r, &ordered);
        assert!(out[..3].iter().all(|r| *r == Reassembly::Held));
        assert_eq!(complete(&out), Some(&dg), "{order:?}");
        assert_eq!(r.count(FragEvent::Held), 3);
        assert_eq!(r.count(FragEvent::Reassembled), 1);
        assert!(r.is_empty());
        assert_eq!(r.buffered_bytes(), 0);
    }
}

#[test]
fn ipv4_reassembly_clears_fragment_fields_and_keeps_df() {
    let mut dg = udp_v4(&payload(100), 9);
    dg[6] |= 0x40;
    set_v4(&mut dg, 0, false);
    let frags = fragment_v4(&dg, &[48]);
    assert_eq!(frags[0][6], 0x60);
    let mut r = Reassembler::new(FragConfig::default());
    let out = feed(&mut r, &frags);
    assert_eq!(complete(&out), Some(&dg));
    assert_eq!(ipv4_checksum(&dg[..20]), 0);
}

#[test]
fn ipv6_in_order_and_reversed() {
    let dg = udp_v6(&payload(1500));
    let frags = fragment_v6(&dg, &[600, 1200], 0x1234_5678);
    let mut r = Reassembler::new(FragConfig::default());
    assert_eq!(complete(&feed(&mut r, &frags)), Some(&dg));
    let rev: Vec<_> = frags.iter().rev().cloned().collect();
    assert_eq!(complete(&feed(&mut r, &rev)), Some(&dg));
    assert_eq!(r.count(FragEvent::Reassembled), 2);
}

#[test]
fn ipv6_keeps_the_unfragmentable_part() {
    // Hop-by-hop options before the Fragment header stay in the reassembled datagram.
    let dg = udp_v6(&payload(200));
    let mut with_hbh = dg[..40].to_vec();
    with_hbh[6] = 0;
    with_hbh.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
    with_hbh.extend_from_slice(&dg[40..]);
    let plen = (with_hbh.len() - 40) as u16;
    with_hbh[4..6].copy_from_slice(&plen.to_be_bytes());
    let upper = &dg[40..];
    let frag = |off: usize, more: bool, data: &[u8]| {
        let mut f = with_hbh[..48].to_vec();
        f[40] = 44;
        f.extend_from_slice(&[17, 0]);
        f.extend_from_slice(&(off as u16 | u16::from(more)).to_be_bytes());
        f.extend_from_slice(&9u32.to_be_bytes());
        f.extend_from_slice(data);
        let plen = (f.len() - 40) as u16;
        f[4..6].copy_from_slice(&plen.to_be_bytes());
        f
    };
    let mut r = Reassembler::new(FragConfig::default());
    assert_eq!(
        r.push(t(0), &frag(104, false, &upper[104..])),
        Reassembly::Held
    );
    assert_eq!(
        r.push(t(1), &frag(0, true, &upper[..104])),
        Reassembly::Complete(with_hbh)
    );
}

#[test]
fn duplicates_are_ignored_under_every_policy() {
    let dg = udp_v4(&payload(300), 3);
    let frags = fragment_v4(&dg, &[104, 200]);
    for policy in [FragPolicy::Linux, FragPolicy::First, FragPolicy::Last] {
        let mut r = Reassembler::new(FragConfig {
            policy,
            ..FragConfig::default()
        });
        let seq = [&frags[0], &frags[0], &frags[1], &frags[1], &frags[2]];
        let out: Vec<_> = seq.iter().map(|f| r.push(t(0), f)).collect();
        assert_eq!(out[1], Reassembly::Dropped(FragEvent::Duplicate));
        assert_eq!(out[3], Reassembly::Dropped(FragEvent::Duplicate));
        assert_eq!(complete(&out), Some(&dg), "{policy:?}");
        assert_eq!(r.count(FragEvent::Duplicate), 2);
    }
    let v6 = udp_v6(&payload(300));
    let frags = fragment_v6(&v6, &[104], 1);
    let mut r = Reassembler::new(FragConfig::default());
    let out = feed(
        &mut r,
        &[frags[0].clone(), frags[0].clone(), frags[1].clone()],
    );
    assert_eq!(out[1], Reassembly::Dropped(FragEvent::Duplicate));
    assert_eq!(complete(&out), Some(&v6));
}

/// Fragments A 0..48, B 48..96, C 96..end of a datagram, and a rogue R 24..64 of
/// 0xee bytes.
fn overlapping() -> (Vec<u8>, Vec<Vec<u8>>, Vec<u8>) {
    let dg = udp_v4(&payload(120), 5);
    let frags = fragment_v4(&dg, &[48, 96]);
    let mut rogue = dg[..20].to_vec();
    rogue.extend_from_slice(&[0xee; 40]);
    set_v4(&mut rogue, 24, true);
    (dg, frags, rogue)
}

#[test]
fn overlaps_follow_the_policy() {
    let (dg, f, rogue) = overlapping();
    let run = |policy, order: &[&Vec<u8>]| {
        let mut r = Reassembler::new(FragConfig {
            policy,
            ..FragConfig::default()
        });
        let out: Vec<_> = order.iter().map(|p| r.push(t(0), p)).collect();
        (complete(&out).cloned(), r)
    };
    // R straddles A's end before B arrives: Linux discards the datagram.
    let (linux, r) = run(FragPolicy::Linux, &[&f[0], &rogue, &f[1], &f[2]]);
    assert_eq!(linux, None);
    assert_eq!(r.count(FragEvent::OverlapDiscarded), 1);
    // B and C arrived after the discard and wait for an A that will not come again.
    assert_eq!(r.len(), 1);

    // R inside the run A+B: Linux drops R and keeps the original bytes.
    let late = [&f[0], &f[1], &rogue, &f[2]];
    let (linux, r) = run(FragPolicy::Linux, &late);
    assert_eq!(linux.as_ref(), Some(&dg));
    assert_eq!(r.count(FragEvent::Duplicate), 1);

    let (first, r) = run(FragPolicy::First, &late);
    assert_eq!(first.as_ref(), Some(&dg));
    assert_eq!(r.count(FragEvent::OverlapResolved), 1);

    let (last, _) = run(FragPolicy::Last, &late);
    let mut want = dg.clone();
    want[20 + 24..20 + 64].fill(0xee);
    assert_eq!(last.map(|l| l[20..].to_vec()), Some(want[20..].to_vec()));

    // First wins where R came first: its bytes fill 48..64 before B.
    let (first, _) = run(FragPolicy::First, &[&f[0], &rogue, &f[1], &f[2]]);
    let mut want = dg.clone();
    want[20 + 48..20 + 64].fill(0xee);
    assert_eq!(first.map(|l| l[20..].to_vec()), Some(want[20..].to_vec()));
}

#[test]
fn linux_drops_a_contained_copy_without_comparing_it() {
    // A second copy of the first fragment with other bytes lies inside held data:
    // Linux keeps the first copy, so the server reads the original bytes.
    let dg = udp_v4(&payload(120), 6);
    let frags = fragment_v4(&dg, &[48]);
    let mut changed = frags[0].clone();
    changed[30] ^= 0xff;
    let mut r = Reassembler::new(FragConfig::default());
    let out = feed(&mut r, &[frags[0].clone(), changed, frags[1].clone()]);
    assert_eq!(out[1], Reassembly::Dropped(FragEvent::Duplicate));
    assert_eq!(complete(&out), Some(&dg));
}

#[test]
fn ipv6_overlaps_always_discard() {
    let dg = udp_v6(&payload(200));
    let frags = fragment_v6(&dg, &[96], 77);
    let rogue = v6_fragment(&dg, 77, 48, true, &[0xee; 80]);
    let mut r = Reassembler::new(FragConfig {
        policy: FragPolicy::First,
        ..FragConfig::default()
    });
    let out = feed(&mut r, &[frags[0].clone(), rogue, frags[1].clone()]);
    assert_eq!(out[1], Reassembly::Dropped(FragEvent::OverlapDiscarded));
    assert_eq!(complete(&out), None);
}

#[test]
fn timed_out_datagrams_are_abandoned() {
    let dg = udp_v4(&payload(200), 11);
    let frags = fragment_v4(&dg, &[96]);
    let mut r = Reassembler::new(FragConfig::default());
    assert_eq!(r.push(t(0), &frags[0]), Reassembly::Held);
    // 31 s later the first half is gone: the second half starts a new datagram.
    assert_eq!(r.push(t(31_000_000), &frags[1]), Reassembly::Held);
    assert_eq!(r.count(FragEvent::TimedOut), 1);
    r.expire(t(62_000_000));
    assert!(r.is_empty());
    assert_eq!(r.count(FragEvent::TimedOut), 2);
    assert_eq!(r.buffered_bytes(), 0);
    // Within the timeout it completes.
    assert_eq!(r.push(t(70_000_000), &frags[0]), Reassembly::Held);
    assert_eq!(
        r.push(t(99_000_000), &frags[1]),
        Reassembly::Complete(dg.clone())
    );
}

#[test]
fn too_many_fragments() {
    let dg = udp_v4(&payload(800), 12);
    let cuts: Vec<usize> = (1..100).map(|i| i * 8).collect();
    let frags = fragment_v4(&dg, &cuts);
    let mut r = Reassembler::new(FragConfig {
        max_fragments: 10,
        ..FragConfig::default()
    });
    let out = feed(&mut r, &frags);
    assert_eq!(out[10], Reassembly::Dropped(FragEvent::TooMany));
    assert_eq!(complete(&out), None);
    assert!(r.count(FragEvent::TooMany) >= 1);
}

#[test]
fn too_large_datagrams() {
    let dg = udp_v4(&payload(400), 13);
    let frags = fragment_v4(&dg, &[200]);
    let mut r = Reassembler::new(FragConfig {
        max_datagram_bytes: 300,
        ..FragConfig::default()
    });
    let out = feed(&mut r, &frags);
    assert_eq!(out[1], Reassembly::Dropped(FragEvent::TooLarge));
    assert!(r.is_empty());
    // An offset at the top of the range: nothing is allocated for the claimed gap.
    let mut far = frags[1].clone();
    set_v4(&mut far, 65_528, true);
    let mut r = Reassembler::new(FragConfig::default());
    assert_eq!(r.push(t(0), &far), Reassembly::Dropped(FragEvent::TooLarge));
    let mut high = frags[0].clone();
    high.truncate(20 + 8);
    set_v4(&mut high, 65_000, true);
    assert_eq!(r.push(t(0), &high), Reassembly::Held);
    assert_eq!(r.buffered_bytes(), 8 + PIECE_COST);
}

#[test]
fn eviction_when_full() {
    let mut r = Reassembler::new(FragConfig {
        max_datagrams: 8,
        ..FragConfig::default()
    });
    let mut firsts = Vec::new();
    for id in 0..20u16 {
        let dg = udp_v4(&payload(100), id);
        let frags = fragment_v4(&dg, &[48]);
        assert_eq!(r.push(t(0), &frags[0]), Reassembly::Held);
        firsts.push((dg, frags));
        assert!(r.len() <= 8);
    }
    assert_eq!(r.count(FragEvent::Evicted), 12);
    // The newest complete; the oldest were evicted.
    let (dg, frags) = &firsts[19];
    assert_eq!(r.push(t(0), &frags[1]), Reassembly::Complete(dg.clone()));
    let (_, frags) = &firsts[0];
    assert_eq!(r.push(t(0), &frags[1]), Reassembly::Held);

    // The byte budget evicts the least recently used datagrams too.
    let mut r = Reassembler::new(FragConfig {
        max_total_bytes: 1_000,
        ..FragConfig::default()
    });
    for id in 0..10u16 {
        let frags = fragment_v4(&udp_v4(&payload(600), id), &[296]);
        r.push(t(0), &frags[0]);
        assert!(r.buffered_bytes() <= 1_000);
    }
    // Each holds a 20-byte header, 296 bytes and one piece: three do not fit.
    assert_eq!(r.len(), 2);
    assert_eq!(r.count(FragEvent::Evicted), 8);
}

#[test]
fn inconsistent_ends_and_empty_fragments_discard() {
    let dg = udp_v4(&payload(200), 14);
    let frags = fragment_v4(&dg, &[96]);
    let mut r = Reassembler::new(FragConfig::default());
    r.push(t(0), &frags[1]);
    // A middle fragment reaching past the known end.
    let mut past = dg[..20].to_vec();
    past.extend_from_slice(&[1; 200]);
    set_v4(&mut past, 96, true);
    assert_eq!(
        r.push(t(0), &past),
        Reassembly::Dropped(FragEvent::Malformed)
    );
    assert!(r.is_empty());
    // An empty middle fragment (7 bytes cut to 0).
    let mut empty = dg[..27].to_vec();
    set_v4(&mut empty, 8, true);
    r.push(t(0), &frags[0]);
    assert_eq!(
        r.push(t(0), &empty),
        Reassembly::Dropped(FragEvent::Malformed)
    );
    assert!(r.is_empty());
}

#[test]
fn middle_ipv4_fragments_are_cut_to_eight_bytes() {
    // 0..52 is cut to 0..48, so the datagram needs the last fragment from 48.
    let dg = udp_v4(&payload(100), 15);
    let mut first = dg[..20 + 52].to_vec();
    set_v4(&mut first, 0, true);
    let frags = fragment_v4(&dg, &[48]);
    let mut r = Reassembler::new(FragConfig::default());
    assert_eq!(r.push(t(0), &first), Reassembly::Held);
    assert_eq!(r.push(t(0), &frags[1]), Reassembly::Complete(dg.clone()));
}

#[test]
fn garbage_never_panics() {
    let dg = udp_v4(&payload(300), 16);
    let v6 = udp_v6(&payload(300));
    let mut all = fragment_v4(&dg, &[104]);
    all.extend(fragment_v6(&v6, &[104], 3));
    for policy in [FragPolicy::Linux, FragPolicy::First, FragPolicy::Last] {
        let mut r = Reassembler::new(FragConfig {
            policy,
            max_datagrams: 4,
            max_total_bytes: 2_000,
            ..FragConfig::default()
        });
        for f in &all {
            for len in 0..=f.len() {
                let _ = r.push(t(len as i64), &f[..len]);
                let mut g = f[..len].to_vec();
                for i in 0..g.len() {
                    g[i] ^= 0x5a;
                    let _ = r.push(t(i as i64), &g);
                    g[i] ^= 0x5a;
                }
            }
        }
        assert!(r.len() <= 4);
        assert!(r.buffered_bytes() <= 2_000);
    }
}
