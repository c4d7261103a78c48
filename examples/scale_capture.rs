//! Makes a large capture for throughput comparisons by repeating a pcap file N times,
//! each copy shifted later in time by the input's duration plus one hour, so flows of one
//! copy have long expired when the next begins (every tool sees fresh connections).
//!
//! `cargo run --release --example scale_capture -- IN.pcap OUT.pcap N`

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::time::Duration;

use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output, copies] = args.as_slice() else {
        return Err("usage: scale_capture IN.pcap OUT.pcap COPIES".into());
    };
    let copies: u32 = copies.parse()?;
    let mut packets = Vec::new();
    let mut reader = PcapReader::new(BufReader::new(File::open(input)?))?;
    let header = reader.header();
    while let Some(p) = reader.next_packet() {
        packets.push(p?.into_owned());
    }
    let first = packets.first().map(|p| p.timestamp).unwrap_or_default();
    let last = packets.last().map(|p| p.timestamp).unwrap_or_default();
    let shift = last.saturating_sub(first) + Duration::from_secs(3600);
    let mut writer = PcapWriter::with_header(BufWriter::new(File::create(output)?), header)?;
    for copy in 0..copies {
        for p in &packets {
            let ts = p.timestamp + shift * copy;
            writer.write_packet(&PcapPacket::new(ts, p.orig_len, &p.data))?;
        }
    }
    eprintln!(
        "wrote {} packets to {output}",
        packets.len() as u64 * u64::from(copies)
    );
    Ok(())
}
