//! Writes an incident store for benchmarks and demos: N incidents (default 1,000,000) spread
//! over a week ending now, from ~50 devices (labelled, with addresses and MACs) to ~40
//! catalog services, flagged and blocked, some acknowledged, with the daily usage rows, all
//! through the store's own write API, so the chain is the real one and `aiwarden verify`
//! passes.
//!
//! ```text
//! cargo run --release --example gen_store -- OUT.db [--incidents N] [--devices 50]
//!     [--services 40] [--days 7] [--end UNIX_SECONDS] [--ack-every 40]
//! ```
//!
//! The incidents go in through [`Store::append_bulk`] (one transaction, the real chain);
//! acks after them through `ack_many`, one transaction per 10,000. The web console's page bench (`benches/console_pages.rs`) and
//! the weekly report's use it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use aiwarden::incident::IncidentRecord;
use aiwarden::policy::{Mac, Mode, RuleSet, Tier, Verdict};
use aiwarden::store::Store;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Options {
    pub incidents: u64,
    pub devices: u32,
    pub services: u32,
    pub days: u32,
    /// The end of the period, unix seconds.
    pub end: i64,
    /// Acknowledge one incident in this many (0: none).
    pub ack_every: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            incidents: 1_000_000,
            devices: 50,
            services: 40,
            days: 7,
            end: aiwarden::store::now_micros() / 1_000_000,
            ack_every: 40,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Copy)]
pub struct Generated {
    pub incidents: u64,
    /// Of `secs`, the incidents' bulk append.
    pub bulk_secs: f64,
    pub acks: u64,
    pub secs: f64,
}

/// A small deterministic generator (xorshift64*): the same store every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The device labels the generator uses (`Device 01` ... ), for benches that filter.
pub fn device_label(i: u32) -> String {
    format!("Device {:02}", i + 1)
}

/// Writes `opts.incidents` incidents to the store at `path` (created; it must not exist).
pub fn generate(path: &Path, opts: &Options) -> Result<Generated, Box<dyn std::error::Error>> {
    if path.exists() {
        return Err(format!("{} exists; give a new file", path.display()).into());
    }
    let started = Instant::now();
    let rules = RuleSet::load(&aiwarden::policy::RuleDirs::under(&aiwarden::paths::rules()))?;
    let mut services: Vec<(String, String, String)> = rules
        .services()
        .filter(|s| !s.hosts.is_empty())
        .map(|s| {
            let host = s
                .hosts
                .first()
                .and_then(|h| h.patterns.first())
                .map(|p| p.trim_start_matches("*.").to_string())
                .unwrap_or_else(|| format!("{}.example", s.id));
            (s.id.to_string(), s.name.to_string(), host)
        })
        .collect();
    services.truncate(opts.services.max(1) as usize);
    let mut store = Store::open(path)?;
    let tls: aiwarden::incident::How = "tls".parse()?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let period = i64::from(opts.days.max(1)) * 86_400 * 1_000_000;
    let start = opts.end * 1_000_000 - period;
    let n = opts.incidents;
    let mut usage: std::collections::BTreeMap<(i64, usize, bool), u64> = Default::default();
    let rows = (0..n).map(|i| {
        // Evenly spread over the period, in order.
        let ts = start + (i128::from(period) * i128::from(i) / i128::from(n.max(1))) as i64;
        // Some devices and services much busier than others, as in a real clinic.
        let d = (rng.below(u64::from(opts.devices)) * rng.below(u64::from(opts.devices))
            / u64::from(opts.devices.max(1))) as u32;
        let s = (rng.below(services.len() as u64) * rng.below(services.len() as u64)
            / services.len() as u64) as usize;
        let (id, name, host) = &services[s];
        let block = rng.below(3) == 0;
        let dev = d + 1;
        *usage
            .entry((ts.div_euclid(86_400_000_000), s, block))
            .or_default() += 1;
        IncidentRecord {
            ts,
            client_ip: std::net::IpAddr::from([10, 0, (dev / 250) as u8, (dev % 250 + 2) as u8]),
            client_mac: Some(Mac([0x52, 0x54, 0, 0xa1, (dev >> 8) as u8, dev as u8])),
            device: Some(format!("pc-{dev:02}")),
            label: (d % 10 != 9).then(|| device_label(d)),
            group: Some("staff".into()),
            service: id.clone(),
            service_name: name.clone(),
            category: Some("chat".into()),
            tier: Some(Tier::Consumer),
            verdict: if block { Verdict::Block } else { Verdict::Flag },
            mode: if block { Mode::Enforce } else { Mode::Monitor },
            how: tls,
            host: host.clone(),
            rule: format!("catalog:{id}"),
        }
    });
    let t = Instant::now();
    let written = store.append_bulk(rows)?;
    let bulk_secs = t.elapsed().as_secs_f64();
    let day = |d: i64| -> Result<String, Box<dyn std::error::Error>> {
        Ok(jiff::Timestamp::from_second(d * 86_400)?
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .date()
            .to_string())
    };
    let mut rows = Vec::new();
    for ((d, s, block), c) in usage {
        let verdict = if block { Verdict::Block } else { Verdict::Flag };
        rows.push((day(d)?, services[s].0.clone(), verdict, c));
    }
    store.add_usage_batch(&rows)?;
    let mut acks = 0u64;
    if opts.ack_every > 0 {
        let ids: Vec<i64> = (1..=written as i64)
            .filter(|id| *id as u64 % opts.ack_every == 0)
            .collect();
        for chunk in ids.chunks(10_000) {
            acks += store
                .ack_many(
                    chunk,
                    opts.end * 1_000_000,
                    "dr.lee",
                    "trained on the AI policy",
                )?
                .len() as u64;
        }
    }
    Ok(Generated {
        incidents: written,
        bulk_secs,
        acks,
        secs: started.elapsed().as_secs_f64(),
    })
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut out: Option<PathBuf> = None;
    let mut o = Options::default();
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--incidents" => o.incidents = val()?.parse()?,
            "--devices" => o.devices = val()?.parse()?,
            "--services" => o.services = val()?.parse()?,
            "--days" => o.days = val()?.parse()?,
            "--end" => o.end = val()?.parse()?,
            "--ack-every" => o.ack_every = val()?.parse()?,
            _ if out.is_none() && !a.starts_with("--") => out = Some(PathBuf::from(&a)),
            _ => return Err(format!("unknown argument {a:?}").into()),
        }
    }
    let out = out.ok_or("usage: gen_store OUT.db [--incidents N] [--devices 50] [--services 40] [--days 7] [--end UNIX_SECONDS] [--ack-every 40]")?;
    let g = generate(&out, &o)?;
    println!(
        "{}: {} incidents and {} acks in {:.1} s (the incidents' append {:.1} s: {:.0} incidents/s)",
        out.display(),
        g.incidents,
        g.acks,
        g.secs,
        g.bulk_secs,
        g.incidents as f64 / g.bulk_secs
    );
    Ok(())
}
