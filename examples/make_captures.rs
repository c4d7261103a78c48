//! Writes the test fixtures and the bundled sample capture from real TLS and QUIC stacks.
//!
//! `cargo run --example make_captures` (from the repository root) rewrites
//! `tests/fixtures/*.pcap` and `samples/clinic-morning.pcap`.

#[path = "../tests/support/captures.rs"]
mod captures;

fn main() -> captures::Res<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    captures::write_all(&root.join("tests/fixtures"), &root.join("samples"))?;
    eprintln!("wrote tests/fixtures/*.pcap and samples/clinic-morning.pcap");
    Ok(())
}
