//! `aiwarden replay`: runs capture files through the detector, the rules and the incident
//! pipeline and writes one line per detection (or per incident). The steps are the
//! daemon's (`incident::judge`, `incident::Pipeline`); only the source of frames and where
//! the results go differ, so `replay --incidents` prints the rows `aiwarden run --read`
//! stores.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::capture::FileReader;
use crate::detect::{Detector, DetectorConfig, Observation, Stats};
use crate::devices::DeviceMap;
use crate::error::Result;
use crate::incident::{
    judge, IncidentSummary, Incidents, Judged, Pipeline, PipelineStats, DEFAULT_WINDOW_MICROS,
};
use crate::policy::{Mode, RuleRef, RuleSet};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Aligned columns for people.
    Table,
}

/// How to replay.
#[derive(Debug, Clone)]
pub struct Options {
    /// Monitor flags what enforce would block.
    pub mode: Mode,
    /// Print every observed name, not just rule matches.
    pub all: bool,
    /// Output format.
    pub format: Format,
    /// Print incidents instead of detections.
    pub incidents: bool,
    /// Incident grouping window.
    pub window_micros: u64,
    /// Detector limits.
    pub detector: DetectorConfig,
    /// Show a progress bar on a terminal.
    pub progress: bool,
    /// Keep what the pipeline did ([`Summary::ops`], [`Summary::usage`]) for a store.
    pub record: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: Mode::Enforce,
            all: false,
            format: Format::Jsonl,
            incidents: false,
            window_micros: DEFAULT_WINDOW_MICROS,
            detector: DetectorConfig::default(),
            progress: true,
            record: false,
        }
    }
}

/// What a replay did, for the summary on stderr.
#[derive(Debug, Default)]
pub struct Summary {
    /// Detector counters (packets, bytes, skips, events).
    pub stats: Stats,
    /// Detections printed or grouped, by service id (`-` for hosts no rule knows).
    pub by_service: BTreeMap<String, u64>,
    /// Detections by verdict.
    pub by_verdict: BTreeMap<&'static str, u64>,
    /// Incidents formed.
    pub incidents: usize,
    /// Attempts, repeats and ECH counts of the incident pipeline.
    pub pipeline: PipelineStats,
    /// Wall-clock time spent.
    pub elapsed: Duration,
    /// Incident operations in order, when [`Options::record`] asked for them.
    pub ops: Vec<crate::incident::IncidentOp>,
    /// Daily usage counts in order, when [`Options::record`] asked for them.
    pub usage: Vec<crate::incident::Usage>,
}

impl Summary {
    /// A few lines for people, written to stderr by the CLI.
    pub fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        writeln!(
            w,
            "packets: {}  bytes: {}  elapsed: {:.3}s  rate: {:.0} packets/s ({:.2} Gbit/s)",
            self.stats.packets,
            self.stats.bytes,
            secs,
            self.stats.packets as f64 / secs,
            self.stats.bytes as f64 * 8.0 / secs / 1e9,
        )?;
        writeln!(w, "detections by service: {}", join(&self.by_service))?;
        writeln!(w, "detections by verdict: {}", join(&self.by_verdict))?;
        writeln!(
            w,
            "incidents: {}  attempts: {}  repeats: {}  ech: {} hidden, {} grease",
            self.incidents,
            self.pipeline.attempts,
            self.pipeline.repeats,
            self.pipeline.ech_hidden,
            self.pipeline.ech_grease
        )?;
        writeln!(w, "skipped packets: {}", join(&self.stats.skipped))?;
        writeln!(w, "events: {}", join(&self.stats.events))
    }
}

fn join<K: std::fmt::Display>(m: &BTreeMap<K, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One detection as printed.
#[derive(Debug, Serialize)]
pub struct Detection<'a> {
    /// RFC 3339 capture time.
    pub ts: String,
    /// Client IP.
    pub client: IpAddr,
    /// Client port.
    pub client_port: u16,
    /// The client's MAC address, when frames showed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_mac: Option<String>,
    /// Server IP.
    pub server: IpAddr,
    /// Server port.
    pub server_port: u16,
    /// `dns`, `tls`, `quic`, `http`, `connect` or `tcp`.
    pub proto: &'static str,
    /// Name queried, SNI, HTTP host or CONNECT target (absent when nothing was named).
    pub host: Option<&'a str>,
    /// With real ECH: the name the device asked DNS for, which the rules judged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asked: Option<&'a str>,
    /// Catalog service id.
    pub service: Option<&'a str>,
    /// Catalog tier.
    pub tier: Option<&'static str>,
    /// `allow`, `flag` or `block`.
    pub verdict: &'static str,
    /// The rule that decided.
    pub rule: Option<&'a RuleRef>,
    /// How it was seen and decided, as incidents record it (`tls,unresolved`).
    pub how: String,
    /// Real ECH hid the name (an outer public name); GREASE does not count.
    pub ech: bool,
    /// No DNS answer to this device explained the server address.
    pub unresolved: bool,
    /// ALPN offered.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub alpn: &'a [String],
    /// DNS query type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qtype: Option<&'a str>,
    /// DNS answers (CNAMEs then addresses) when the detection comes from an answer.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub answers: &'a [String],
}

impl<'a> Detection<'a> {
    /// Pairs an observation with its judgement.
    pub fn new(o: &'a Observation, j: &'a Judged) -> Detection<'a> {
        let d = &j.decision;
        Detection {
            ts: o.ts.rfc3339(),
            client: o.client.ip(),
            client_port: o.client.port(),
            client_mac: o.client_mac.map(|m| m.to_string()),
            server: o.server.ip(),
            server_port: o.server.port(),
            proto: o.proto.as_str(),
            host: o.host.as_ref().map(|h| h.as_str()),
            asked: j
                .how
                .ech
                .then(|| o.asked.as_ref().map(|h| h.as_str()))
                .flatten(),
            service: d.service.as_ref().map(|s| &*s.id),
            tier: d.tier.map(|t| t.as_str()),
            verdict: d.verdict.as_str(),
            rule: d.rule.as_ref(),
            how: j.how.to_string(),
            ech: j.how.ech,
            unresolved: o.unresolved,
            alpn: &o.alpn,
            qtype: o.qtype.as_deref(),
            answers: &o.answers,
        }
    }
}

/// Replays `files` in order through one detector, writing to `out`.
pub fn run<W: Write>(
    files: &[PathBuf],
    rules: &RuleSet,
    opts: &Options,
    out: &mut W,
) -> Result<Summary> {
    let started = Instant::now();
    let mut det = Detector::new(opts.detector.clone());
    let mut summary = Summary::default();
    let mut table_header = opts.format == Format::Table;
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = (opts.progress && std::io::stderr().is_terminal() && total > 16 << 20).then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let mut done_bytes = 0u64;
    let devices = DeviceMap::default();
    let mut pipeline = Pipeline::new(opts.mode, opts.window_micros);
    let mut incidents = Incidents::default();
    let (mut ops, mut usage) = (Vec::new(), Vec::new());
    let mut step = |o: Observation, det: &Detector, out: &mut W| -> Result<()> {
        let ip = o.client.ip();
        let who = devices.identify_with(ip, o.client_mac.or_else(|| det.mac_of(ip)));
        let j = judge(rules, &o, &who.client(), opts.mode);
        if !(j.matched() || opts.all && o.host.is_some()) {
            return Ok(());
        }
        let outcome = pipeline.step(&o, &who, &j);
        let key = j
            .decision
            .service
            .as_ref()
            .map_or_else(|| "-".to_string(), |s| s.id.to_string());
        *summary.by_service.entry(key).or_insert(0) += 1;
        *summary
            .by_verdict
            .entry(j.decision.verdict.as_str())
            .or_insert(0) += 1;
        if let Some(op) = &outcome.incident {
            incidents.apply(op);
        }
        if opts.record {
            ops.extend(outcome.incident);
            usage.extend(outcome.usage);
        }
        if !opts.incidents {
            write_detection(out, &Detection::new(&o, &j), opts.format, &mut table_header)?;
        }
        Ok(())
    };
    for path in files {
        let mut reader = FileReader::open(path)?;
        let mut n = 0u64;
        while let Some(frame) = reader.next_frame()? {
            for o in det.process(frame.ts, frame.link, frame.data) {
                step(o, &det, out)?;
            }
            n += 1;
            if n % 65_536 == 0 {
                if let Some(b) = &bar {
                    b.set_position(done_bytes + reader.position);
                }
            }
        }
        done_bytes += reader.position;
    }
    for o in det.finish() {
        step(o, &det, out)?;
    }
    summary.incidents = incidents.len();
    if opts.incidents {
        for row in incidents.into_rows() {
            write_incident(out, &row, opts.format, &mut table_header)?;
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    out.flush()?;
    summary.stats = det.stats();
    summary.pipeline = pipeline.stats().clone();
    summary.elapsed = started.elapsed();
    summary.ops = ops;
    summary.usage = usage;
    Ok(summary)
}

/// One JSON object and a newline.
fn json_line(out: &mut impl Write, v: &impl Serialize) -> Result<()> {
    serde_json::to_writer(&mut *out, v).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    Ok(())
}

fn write_detection(
    out: &mut impl Write,
    d: &Detection<'_>,
    format: Format,
    header: &mut bool,
) -> Result<()> {
    match format {
        Format::Jsonl => json_line(out, d)?,
        Format::Table => {
            if std::mem::take(header) {
                writeln!(
                    out,
                    "{:<27} {:<22} {:<40} {:<18} {:<10} {:<7} HOW",
                    "TIME", "CLIENT", "HOST", "SERVICE", "TIER", "VERDICT"
                )?;
            }
            writeln!(
                out,
                "{:<27} {:<22} {:<40} {:<18} {:<10} {:<7} {}",
                d.ts,
                format!("{}:{}", d.client, d.client_port),
                d.asked.or(d.host).unwrap_or("-"),
                d.service.unwrap_or("-"),
                d.tier.unwrap_or("-"),
                d.verdict,
                d.how
            )?;
        }
    }
    Ok(())
}

fn write_incident(
    out: &mut impl Write,
    i: &IncidentSummary,
    format: Format,
    header: &mut bool,
) -> Result<()> {
    match format {
        Format::Jsonl => json_line(out, i)?,
        Format::Table => {
            if std::mem::take(header) {
                writeln!(
                    out,
                    "{:<20} {:<20} {:<18} {:<26} {:>5} {:<7} HOW / HOSTS",
                    "FIRST", "LAST", "DEVICE", "SERVICE", "COUNT", "VERDICT"
                )?;
            }
            let r = &i.record;
            let device = r
                .label
                .clone()
                .or_else(|| r.device.clone())
                .unwrap_or_else(|| r.client_ip.to_string());
            writeln!(
                out,
                "{:<20} {:<20} {:<18} {:<26} {:>5} {:<7} {} / {}",
                seconds(r.ts),
                seconds(i.last_seen),
                device,
                r.service_name,
                i.count,
                r.verdict.as_str(),
                i.hows.join(" "),
                i.hosts.join(",")
            )?;
        }
    }
    Ok(())
}

/// RFC 3339 to the second, UTC.
fn seconds(micros: i64) -> String {
    crate::detect::Timestamp::from_micros(micros)
        .rfc3339()
        .get(..19)
        .map_or_else(String::new, |s| format!("{s}Z"))
}
