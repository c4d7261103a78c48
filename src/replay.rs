//! `aiwarden replay`: runs capture files through the detector and the rules and writes one
//! line per detection (or per incident). The pipeline code is the daemon's; only the source
//! of frames differs.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::capture::FileReader;
use crate::detect::{Detector, DetectorConfig, Observation, Stats};
use crate::error::Result;
use crate::incident::{Grouper, Incident, DEFAULT_WINDOW_MICROS};
use crate::policy::{Client, Decision, Mode, RuleRef, RuleSet};

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
    /// Wall-clock time spent.
    pub elapsed: Duration,
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
        writeln!(w, "incidents: {}", self.incidents)?;
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
    /// Server IP.
    pub server: IpAddr,
    /// Server port.
    pub server_port: u16,
    /// `dns`, `tls` or `quic`.
    pub proto: &'static str,
    /// Name queried or SNI.
    pub host: &'a str,
    /// Catalog service id.
    pub service: Option<&'a str>,
    /// Catalog tier.
    pub tier: Option<&'static str>,
    /// `allow`, `flag` or `block`.
    pub verdict: &'static str,
    /// The rule that decided.
    pub rule: Option<&'a RuleRef>,
    /// ECH offered (TLS/QUIC: outer SNI; DNS: HTTPS record with `ech`).
    pub ech: bool,
    /// No DNS answer to this client explained the server IP.
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
    /// Pairs an observation with its decision.
    pub fn new(o: &'a Observation, d: &'a Decision) -> Detection<'a> {
        Detection {
            ts: o.ts.rfc3339(),
            client: o.client.ip(),
            client_port: o.client.port(),
            server: o.server.ip(),
            server_port: o.server.port(),
            proto: o.proto.as_str(),
            host: o.host.as_str(),
            service: d.service.as_ref().map(|s| &*s.id),
            tier: d.tier.map(|t| t.as_str()),
            verdict: d.verdict.as_str(),
            rule: d.rule.as_ref(),
            ech: o.ech,
            unresolved: o.unresolved,
            alpn: &o.alpn,
            qtype: o.qtype.as_deref(),
            answers: &o.answers,
        }
    }
}

/// Replays `files` in order through one detector, writing to `out`.
pub fn run(
    files: &[PathBuf],
    rules: &RuleSet,
    opts: &Options,
    out: &mut impl Write,
) -> Result<Summary> {
    let started = Instant::now();
    let mut det = Detector::new(opts.detector.clone());
    let mut grouper = Grouper::new(opts.window_micros);
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
    for path in files {
        let mut reader = FileReader::open(path)?;
        let mut n = 0u64;
        while let Some(frame) = reader.next_frame()? {
            let observations = det.process(frame.ts, frame.link, frame.data);
            for o in &observations {
                let d = rules.judge(o.host.as_str(), &Client::ip(o.client.ip()), opts.mode);
                if d.service.is_none() && d.rule.is_none() && !opts.all {
                    continue;
                }
                let key = d
                    .service
                    .as_ref()
                    .map_or_else(|| "-".to_string(), |s| s.id.to_string());
                *summary.by_service.entry(key).or_insert(0) += 1;
                *summary.by_verdict.entry(d.verdict.as_str()).or_insert(0) += 1;
                if let Some(inc) = grouper.add(o, &d) {
                    summary.incidents += 1;
                    if opts.incidents {
                        write_incident(out, &inc, opts.format, &mut table_header)?;
                    }
                }
                if !opts.incidents {
                    write_detection(out, &Detection::new(o, &d), opts.format, &mut table_header)?;
                }
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
    for inc in grouper.finish() {
        summary.incidents += 1;
        if opts.incidents {
            write_incident(out, &inc, opts.format, &mut table_header)?;
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    out.flush()?;
    summary.stats = det.stats();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

fn write_detection(
    out: &mut impl Write,
    d: &Detection<'_>,
    format: Format,
    header: &mut bool,
) -> Result<()> {
    match format {
        Format::Jsonl => {
            serde_json::to_writer(&mut *out, d).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
        }
        Format::Table => {
            if std::mem::take(header) {
                writeln!(
                    out,
                    "{:<27} {:<22} {:<4} {:<40} {:<18} {:<10} {:<7} FLAGS",
                    "TIME", "CLIENT", "HOW", "HOST", "SERVICE", "TIER", "VERDICT"
                )?;
            }
            let mut flags = Vec::new();
            if d.ech {
                flags.push("ech");
            }
            if d.unresolved {
                flags.push("unresolved");
            }
            writeln!(
                out,
                "{:<27} {:<22} {:<4} {:<40} {:<18} {:<10} {:<7} {}",
                d.ts,
                format!("{}:{}", d.client, d.client_port),
                d.proto,
                d.host,
                d.service.unwrap_or("-"),
                d.tier.unwrap_or("-"),
                d.verdict,
                flags.join(",")
            )?;
        }
    }
    Ok(())
}

fn write_incident(
    out: &mut impl Write,
    i: &Incident,
    format: Format,
    header: &mut bool,
) -> Result<()> {
    match format {
        Format::Jsonl => {
            serde_json::to_writer(&mut *out, i).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
        }
        Format::Table => {
            if std::mem::take(header) {
                writeln!(
                    out,
                    "{:<27} {:<27} {:<16} {:<26} {:>5} {:<7} HOW / HOSTS",
                    "FIRST", "LAST", "CLIENT", "SERVICE", "COUNT", "VERDICT"
                )?;
            }
            let protos: Vec<&str> = i.protos.iter().map(|p| p.as_str()).collect();
            let hosts: Vec<&str> = i.hosts.iter().map(String::as_str).collect();
            writeln!(
                out,
                "{:<27} {:<27} {:<16} {:<26} {:>5} {:<7} {} / {}",
                i.first.rfc3339(),
                i.last.rfc3339(),
                i.client.to_string(),
                i.service_name,
                i.count,
                i.verdict.as_str(),
                protos.join(","),
                hosts.join(",")
            )?;
        }
    }
    Ok(())
}
