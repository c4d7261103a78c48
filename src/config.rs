//! The daemon's configuration file: parsed from `&str`, loaded from a path, validated once,
//! unknown keys rejected with file and line. `config.example.toml` at the top of the
//! repository documents every option; a test loads it. The file is long because the
//! top-level sections without a room of their own (capture, dns, enforcement, store) and
//! the one place that reads the file and hands each section to its room sit here; the
//! larger sections live in `config/` (console, report, fleet, syslog).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::policy::{line_of, Mode};

mod console;
mod enforcement;
mod fleet;
mod postgres;
mod report;
mod syslog;

pub use console::Console;
pub use enforcement::{Enforcement, Placement, QuicBlock, TcpBlock};
pub use fleet::{parse_public_key, Fleet};
pub use postgres::{read_password, Postgres};
pub use report::{Delivery, Email, Report, Retry, SmtpTls, Webhook};
pub use syslog::{Syslog, SyslogConfirm};

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from (for messages).
    pub path: PathBuf,
    /// The clinic's name, as reports print it.
    pub site_name: String,
    /// The clinic's IANA time zone (`America/Chicago`): reports' days and hours are local.
    pub timezone: String,
    /// Monitor records; enforce blocks.
    pub mode: Mode,
    /// The rules directory (catalog/ and site/); default the installed rules.
    pub rules: PathBuf,
    /// The admin's site files, when set; else see [`Config::rule_dirs`].
    pub site: Option<PathBuf>,
    /// The log filter: a level (`info`) or `tracing` directives (`info,aiwarden=debug`).
    pub log: String,
    /// Live capture.
    pub capture: Capture,
    /// The filtering DNS resolver.
    pub dns: Dns,
    /// The incident store.
    pub store: Store,
    /// Metrics and health.
    pub metrics: Metrics,
    /// Device identity.
    pub devices: Devices,
    /// Incident grouping window, seconds.
    pub incident_window_secs: u64,
    /// Where aiwarden sits and how it blocks beyond DNS.
    pub enforcement: Enforcement,
    /// Where reports are archived and how they are delivered.
    pub report: Report,
    /// The compliance web console.
    pub console: Console,
    /// Signed rule bundles from the MSP.
    pub fleet: Fleet,
    /// `[fleet.syslog]`: the SIEM incidents are sent to, if any.
    pub fleet_syslog: Option<Syslog>,
    /// `[fleet.postgres]`: the central PostgreSQL rows are copied to, if any.
    pub fleet_postgres: Option<Postgres>,
}

/// Live capture settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capture {
    /// Interfaces to capture on; empty runs the DNS resolver alone.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Kernel ring buffer per interface, MiB.
    #[serde(default = "default_buffer_mib")]
    pub buffer_mib: u32,
    /// Bytes kept per frame.
    #[serde(default = "default_snaplen")]
    pub snaplen: u32,
    /// Frames queued between capture and detection; beyond it frames are dropped and
    /// counted.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// The BPF filter: what detection needs (DNS, ClientHellos, QUIC Initials).
    #[serde(default = "default_filter")]
    pub filter: String,
}

/// What a blocked name gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockAnswer {
    /// NXDOMAIN: the name does not exist.
    Nxdomain,
    /// An A answer with this address (and `::` for AAAA), e.g. a block page.
    Address(IpAddr),
}

/// Which HTTPS/SVCB answers lose their `ech` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StripEch {
    /// Never.
    Off,
    /// Names a rule matches (AI services), so their SNI stays visible.
    Ai,
    /// Every answer.
    All,
}

/// One upstream resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// Plain DNS over UDP, falling back to TCP on truncation.
    Plain(SocketAddr),
    /// DNS over TLS, with the name its certificate must carry.
    Tls {
        /// Address and port (853).
        addr: SocketAddr,
        /// The server name to verify.
        name: String,
    },
}

impl Upstream {
    /// `9.9.9.9`, `9.9.9.9:53`, `[2620:fe::fe]:53`, `tls://9.9.9.9#dns.quad9.net`,
    /// `tls://9.9.9.9:853#dns.quad9.net`.
    pub fn parse(text: &str) -> std::result::Result<Upstream, String> {
        let addr = |s: &str, port: u16| {
            socket_addr(s, port).ok_or_else(|| format!("invalid upstream address {s:?}"))
        };
        match text.strip_prefix("tls://") {
            Some(rest) => {
                let (a, name) = rest.split_once('#').ok_or_else(|| {
                    format!("upstream {text:?}: DNS over TLS needs the server's name after '#', e.g. tls://9.9.9.9#dns.quad9.net")
                })?;
                if name.is_empty() {
                    return Err(format!("upstream {text:?}: empty server name"));
                }
                Ok(Upstream::Tls {
                    addr: addr(a, 853)?,
                    name: name.to_string(),
                })
            }
            None => Ok(Upstream::Plain(addr(text, 53)?)),
        }
    }
}

/// The filtering resolver.
#[derive(Debug, Clone)]
pub struct Dns {
    /// Addresses to answer on (UDP and TCP); empty disables the resolver.
    pub listen: Vec<SocketAddr>,
    /// Where allowed names are forwarded, tried in order.
    pub upstreams: Vec<Upstream>,
    /// What blocked names get.
    pub block_answer: BlockAnswer,
    /// TTL of block answers, seconds.
    pub block_ttl: u32,
    /// ECH stripping.
    pub strip_ech: StripEch,
    /// Cached answers kept.
    pub cache_size: usize,
    /// Upstream timeout, milliseconds.
    pub timeout_ms: u64,
    /// A PEM file of CA certificates for DNS-over-TLS upstreams (default: the system's).
    pub ca_file: Option<PathBuf>,
    /// Who may use the resolver; `None`: the networks of the listen addresses' interfaces
    /// (every interface's for a wildcard address) and loopback. Others get REFUSED.
    pub allow_clients: Option<Vec<IpNet>>,
    /// Queries per second one client address may send (a token bucket); 0: no limit.
    /// Queries beyond it are dropped and counted.
    pub rate_limit: u32,
    /// How many queries a client may send at once above its rate.
    pub rate_burst: u32,
    /// Memory the answer cache may use, MiB (entries are bounded by `cache_size` too).
    pub cache_mib: usize,
    /// DNS-over-TCP connections open at once, in all.
    pub max_tcp_clients: usize,
    /// DNS-over-TCP connections open at once from one client address.
    pub max_tcp_per_client: usize,
    /// Seconds an idle DNS-over-TCP connection is kept.
    pub tcp_idle_secs: u64,
    /// Queries waiting for an upstream at once; beyond it SERVFAIL, counted.
    pub max_upstream_inflight: usize,
    /// Queries one client address may have waiting for an upstream at once; beyond it
    /// SERVFAIL, counted (a client asking slow names cannot take every upstream slot).
    pub max_upstream_per_client: usize,
}

/// The incident store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Store {
    /// The SQLite file.
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    /// Days incidents are kept (HIPAA documentation: six years).
    #[serde(default = "default_retention")]
    pub retention_days: u32,
    /// Sign the head file with an HMAC key kept beside the store (`<path>.key`, created on
    /// start), so a rewrite of the whole tail together with the head file shows. A key
    /// that exists is used whatever this says.
    #[serde(default)]
    pub keyed: bool,
}

/// Metrics and health endpoint.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Address of `/metrics` and `/healthz`; none disables it.
    pub listen: Option<SocketAddr>,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
}

/// Where device identity comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Devices {
    /// The admin's inventory (labels, owners).
    pub inventory: Option<PathBuf>,
    /// DHCP leases files.
    #[serde(default)]
    pub leases: Vec<LeasesFile>,
    /// The kernel's IPv4 neighbour table.
    #[serde(default = "default_arp")]
    pub neighbours: PathBuf,
    /// Seconds between re-reads.
    #[serde(default = "default_refresh")]
    pub refresh_secs: u64,
}

/// One DHCP leases file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeasesFile {
    /// `dnsmasq`, `dhcpd` or `kea`.
    pub format: String,
    /// Its path.
    pub path: PathBuf,
}

fn default_buffer_mib() -> u32 {
    16
}
fn default_snaplen() -> u32 {
    65_535
}
fn default_queue() -> usize {
    65_536
}
fn default_filter() -> String {
    crate::capture::DEFAULT_FILTER.to_string()
}
fn default_store_path() -> PathBuf {
    PathBuf::from(crate::paths::STORE)
}
fn default_retention() -> u32 {
    6 * 366
}
fn default_arp() -> PathBuf {
    PathBuf::from(crate::paths::ARP)
}
fn default_refresh() -> u64 {
    30
}

/// `fleet.toml` as `aiwarden fleet enrol` writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnrolled {
    site_name: Option<toml::Spanned<String>>,
    fleet: Option<fleet::RawFleet>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    mode: Option<toml::Spanned<String>>,
    rules: Option<PathBuf>,
    site: Option<PathBuf>,
    log: Option<toml::Spanned<String>>,
    incident_window_secs: Option<u64>,
    capture: Option<Capture>,
    dns: Option<RawDns>,
    store: Option<Store>,
    metrics: Option<RawMetrics>,
    devices: Option<Devices>,
    enforcement: Option<Enforcement>,
    site_name: Option<toml::Spanned<String>>,
    timezone: Option<toml::Spanned<String>>,
    report: Option<report::RawReport>,
    console: Option<console::RawConsole>,
    fleet: Option<fleet::RawFleet>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    #[serde(default)]
    listen: Vec<toml::Spanned<String>>,
    #[serde(default)]
    upstreams: Vec<toml::Spanned<String>>,
    block_answer: Option<toml::Spanned<String>>,
    block_ttl: Option<u32>,
    strip_ech: Option<StripEch>,
    cache_size: Option<usize>,
    timeout_ms: Option<u64>,
    ca_file: Option<PathBuf>,
    allow_clients: Option<Vec<toml::Spanned<String>>>,
    rate_limit: Option<u32>,
    rate_burst: Option<u32>,
    cache_mib: Option<usize>,
    max_tcp_clients: Option<usize>,
    max_tcp_per_client: Option<usize>,
    tcp_idle_secs: Option<u64>,
    max_upstream_inflight: Option<usize>,
    max_upstream_per_client: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<toml::Spanned<String>>,
    max_connections: Option<usize>,
}

/// `addr:port`, or an address alone (`9.9.9.9`, `::1`, `[::1]`) with `port`.
fn socket_addr(s: &str, port: u16) -> Option<SocketAddr> {
    s.parse::<SocketAddr>().ok().or_else(|| {
        s.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port))
    })
}

/// Queries per second per client by default: a busy workstation asks a few dozen names
/// a second at most (a page load); 200 with a burst of 1,000 leaves room for a small
/// office behind one NAT address while one flooding device cannot starve the rest.
pub const DEFAULT_RATE_LIMIT: u32 = 200;

/// `10.0.0.0/24`, `fd00::/64`, or an address alone (a /32 or /128).
fn parse_net(s: &str) -> std::result::Result<IpNet, String> {
    s.parse::<IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is not a network (expected e.g. \"192.168.1.0/24\")"))
}

fn socket(s: &str, port: u16) -> std::result::Result<SocketAddr, String> {
    socket_addr(s, port)
        .ok_or_else(|| format!("invalid address {s:?} (expected e.g. 0.0.0.0:53 or [::]:53)"))
}

impl Config {
    /// Where the rules are read from: `site`, else the installed site directory with the
    /// installed rules (`/etc/aiwarden/site` in a package), else `rules/site`.
    pub fn rule_dirs(&self) -> crate::policy::RuleDirs {
        crate::policy::RuleDirs::with_site(&self.rules, self.site.as_deref())
    }

    /// Reads and validates `path`, with the `fleet.toml` enrolment wrote beside it when
    /// there is one.
    pub fn load(path: &Path) -> Result<Config> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| Error::Io {
                path: p.to_path_buf(),
                source,
            })
        };
        let text = read(path)?;
        let enrolled = Config::enrolled_path(path);
        let fleet = match enrolled.exists() {
            true => Some((enrolled.clone(), read(&enrolled)?)),
            false => None,
        };
        Config::parse_with(
            path,
            &text,
            fleet.as_ref().map(|(p, t)| (p.as_path(), t.as_str())),
        )
    }

    /// Where `aiwarden fleet enrol` writes the fleet settings for the configuration at
    /// `path`: `fleet.toml` beside it.
    pub fn enrolled_path(path: &Path) -> PathBuf {
        path.parent()
            .unwrap_or(Path::new("."))
            .join(crate::paths::FLEET_FILE)
    }

    /// Parses and validates `text`, naming `path` in errors. Relative paths in the file
    /// are taken relative to the file's directory.
    pub fn parse(path: &Path, text: &str) -> Result<Config> {
        Config::parse_with(path, text, None)
    }

    /// [`Config::parse`], with `fleet`: the path and text of an enrolled `fleet.toml`
    /// (`site_name` and a `[fleet]` table, errors naming that file and its lines). A
    /// `[fleet]` table in both files is refused; so is a site name that differs.
    pub fn parse_with(path: &Path, text: &str, fleet: Option<(&Path, &str)>) -> Result<Config> {
        let err = |line: usize, message: String| Error::Config {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |s| line_of(text, s.start));
            err(line, e.message().trim().to_lowercase())
        })?;
        // The fleet table's own text and error closure: the enrolled file's when it
        // holds it.
        let mut fleet_text = text;
        let mut fleet_path = path;
        if let Some((fpath, ftext)) = fleet {
            let ferr = |line: usize, message: String| Error::Config {
                path: fpath.to_path_buf(),
                line,
                message,
            };
            let enrolled: RawEnrolled = toml::from_str(ftext).map_err(|e| {
                let line = e.span().map_or(0, |s| line_of(ftext, s.start));
                ferr(line, e.message().trim().to_lowercase())
            })?;
            if let Some(f) = enrolled.fleet {
                if raw.fleet.is_some() {
                    return Err(err(
                        text.find("[fleet").map_or(0, |at| line_of(text, at)),
                        format!(
                            "[fleet] is set here and in {} (written by `aiwarden fleet enrol`): keep one",
                            fpath.display()
                        ),
                    ));
                }
                raw.fleet = Some(f);
                fleet_text = ftext;
                fleet_path = fpath;
            }
            match (&raw.site_name, enrolled.site_name) {
                (_, None) => {}
                (None, Some(s)) => raw.site_name = Some(s),
                (Some(mine), Some(theirs)) if mine.get_ref().trim() == theirs.get_ref().trim() => {}
                (Some(mine), Some(theirs)) => {
                    return Err(err(
                        line_of(text, mine.span().start),
                        format!(
                            "site_name {:?} here, {:?} in {}: remove one",
                            mine.get_ref(),
                            theirs.get_ref(),
                            fpath.display()
                        ),
                    ))
                }
            }
        }
        let fleet_err = |line: usize, message: String| Error::Config {
            path: fleet_path.to_path_buf(),
            line,
            message,
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let rel = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        let mode = match raw.mode {
            None => Mode::Monitor,
            Some(m) => match m.get_ref().as_str() {
                "monitor" => Mode::Monitor,
                "enforce" => Mode::Enforce,
                other => {
                    return Err(err(
                        line_of(text, m.span().start),
                        format!("mode {other:?}: expected \"monitor\" or \"enforce\""),
                    ))
                }
            },
        };
        let capture = raw.capture.unwrap_or(Capture {
            interfaces: Vec::new(),
            buffer_mib: default_buffer_mib(),
            snaplen: default_snaplen(),
            queue: default_queue(),
            filter: default_filter(),
        });
        if capture.queue == 0 || capture.snaplen < 256 {
            return Err(err(
                0,
                "capture: queue must be above 0 and snaplen at least 256".into(),
            ));
        }
        if let Err(e) = crate::capture::check_filter(&capture.filter) {
            let line = text.find("filter").map_or(0, |at| line_of(text, at));
            return Err(err(line, format!("capture.filter: {e}")));
        }
        let log = match raw.log {
            None => "info".to_string(),
            Some(l) => {
                let v = l.get_ref().trim().to_string();
                if let Err(e) = v.parse::<tracing_subscriber::EnvFilter>() {
                    return Err(err(
                        line_of(text, l.span().start),
                        format!("log {v:?}: {e} (use a level such as \"info\" or \"debug\")"),
                    ));
                }
                v
            }
        };
        let d = raw.dns.unwrap_or(RawDns {
            listen: Vec::new(),
            upstreams: Vec::new(),
            block_answer: None,
            block_ttl: None,
            strip_ech: None,
            cache_size: None,
            timeout_ms: None,
            ca_file: None,
            allow_clients: None,
            rate_limit: None,
            rate_burst: None,
            cache_mib: None,
            max_tcp_clients: None,
            max_tcp_per_client: None,
            tcp_idle_secs: None,
            max_upstream_inflight: None,
            max_upstream_per_client: None,
        });
        let mut listen = Vec::new();
        for l in &d.listen {
            listen
                .push(socket(l.get_ref(), 53).map_err(|m| err(line_of(text, l.span().start), m))?);
        }
        let mut upstreams = Vec::new();
        for u in &d.upstreams {
            upstreams.push(
                Upstream::parse(u.get_ref()).map_err(|m| err(line_of(text, u.span().start), m))?,
            );
        }
        if !listen.is_empty() && upstreams.is_empty() {
            return Err(err(
                d.listen
                    .first()
                    .map_or(0, |l| line_of(text, l.span().start)),
                "dns: listen is set but upstreams is empty: allowed names need somewhere to go"
                    .into(),
            ));
        }
        let block_answer = match &d.block_answer {
            None => BlockAnswer::Nxdomain,
            Some(b) if b.get_ref() == "nxdomain" => BlockAnswer::Nxdomain,
            Some(b) => BlockAnswer::Address(b.get_ref().parse().map_err(|_| {
                err(
                    line_of(text, b.span().start),
                    format!(
                        "block_answer {:?}: expected \"nxdomain\" or an address such as \"0.0.0.0\"",
                        b.get_ref()
                    ),
                )
            })?),
        };
        let allow_clients = match &d.allow_clients {
            None => None,
            Some(list) => {
                let mut nets = Vec::new();
                for n in list {
                    nets.push(parse_net(n.get_ref()).map_err(|m| {
                        err(
                            line_of(text, n.span().start),
                            format!("dns.allow_clients: {m}"),
                        )
                    })?);
                }
                Some(nets)
            }
        };
        let rate_limit = d.rate_limit.unwrap_or(DEFAULT_RATE_LIMIT);
        let positive = |v: usize, what: &str| -> Result<usize> {
            if v == 0 {
                let line = text.find(what).map_or(0, |at| line_of(text, at));
                Err(err(line, format!("dns.{what} must be at least 1")))
            } else {
                Ok(v)
            }
        };
        let dns = Dns {
            listen,
            upstreams,
            block_answer,
            block_ttl: d.block_ttl.unwrap_or(60),
            strip_ech: d.strip_ech.unwrap_or(StripEch::Ai),
            cache_size: positive(d.cache_size.unwrap_or(20_000), "cache_size")?,
            timeout_ms: d.timeout_ms.unwrap_or(2_000),
            ca_file: d.ca_file.map(rel),
            allow_clients,
            rate_limit,
            rate_burst: d.rate_burst.unwrap_or(rate_limit.saturating_mul(5)),
            cache_mib: positive(d.cache_mib.unwrap_or(32), "cache_mib")?,
            max_tcp_clients: positive(d.max_tcp_clients.unwrap_or(256), "max_tcp_clients")?,
            max_tcp_per_client: positive(d.max_tcp_per_client.unwrap_or(16), "max_tcp_per_client")?,
            tcp_idle_secs: d.tcp_idle_secs.unwrap_or(10).max(1),
            max_upstream_inflight: positive(
                d.max_upstream_inflight.unwrap_or(512),
                "max_upstream_inflight",
            )?,
            max_upstream_per_client: positive(
                d.max_upstream_per_client.unwrap_or(64),
                "max_upstream_per_client",
            )?,
        };
        let raw_metrics = raw.metrics.unwrap_or(RawMetrics {
            listen: None,
            max_connections: None,
        });
        let max_connections = raw_metrics.max_connections.unwrap_or(32).max(1);
        let metrics = match raw_metrics.listen {
            None => Metrics {
                listen: Some(SocketAddr::from(([127, 0, 0, 1], 9747))),
                max_connections,
            },
            Some(l) if l.get_ref() == "off" => Metrics {
                listen: None,
                max_connections,
            },
            Some(l) => Metrics {
                listen: Some(
                    socket(l.get_ref(), 9747).map_err(|m| err(line_of(text, l.span().start), m))?,
                ),
                max_connections,
            },
        };
        let mut store = raw.store.unwrap_or(Store {
            path: default_store_path(),
            retention_days: default_retention(),
            keyed: false,
        });
        store.path = rel(store.path);
        if store.retention_days == 0 {
            return Err(err(0, "store: retention_days must be at least 1".into()));
        }
        let mut devices = raw.devices.unwrap_or(Devices {
            inventory: None,
            leases: Vec::new(),
            neighbours: default_arp(),
            refresh_secs: default_refresh(),
        });
        devices.inventory = devices.inventory.map(rel);
        for l in &mut devices.leases {
            if !["dnsmasq", "dhcpd", "kea"].contains(&l.format.as_str()) {
                return Err(err(
                    0,
                    format!(
                        "devices.leases: format {:?}: expected dnsmasq, dhcpd or kea",
                        l.format
                    ),
                ));
            }
            l.path = rel(l.path.clone());
        }
        let enforcement = raw.enforcement.unwrap_or_default();
        {
            let line = |key: &str| text.find(key).map_or(0, |at| line_of(text, at));
            if enforcement.placement == Placement::Router
                && enforcement.lan_interfaces(&capture).is_empty()
            {
                return Err(err(
                    line("placement"),
                    "enforcement: a router needs its LAN interfaces (enforcement.lan or capture.interfaces)".into(),
                ));
            }
            if enforcement.placement == Placement::Sensor
                && capture.interfaces.is_empty()
                && enforcement.reset_interface.is_none()
            {
                return Err(err(
                    line("placement"),
                    "enforcement: a sensor needs a capture interface to see connections and send resets on".into(),
                ));
            }
            if !(1..=64).contains(&enforcement.queue_packets) {
                return Err(err(
                    line("queue_packets"),
                    "enforcement.queue_packets must be 1 to 64".into(),
                ));
            }
            if !(1..=65_536).contains(&enforcement.queue_max_len) {
                return Err(err(
                    line("queue_max_len"),
                    "enforcement.queue_max_len must be 1 to 65536".into(),
                ));
            }
            for name in enforcement.lan.iter().chain(&enforcement.reset_interface) {
                if name.is_empty() || name.len() > 15 || name.contains(['"', '\\', '/', ' ']) {
                    return Err(err(
                        line(name),
                        format!("enforcement: {name:?} is not an interface name"),
                    ));
                }
            }
        }
        let site_name = match raw.site_name {
            None => "clinic".to_string(),
            Some(n) => {
                let v = n.get_ref().trim().to_string();
                if v.is_empty() || v.len() > 200 || v.chars().any(char::is_control) {
                    return Err(err(
                        line_of(text, n.span().start),
                        "site_name: 1 to 200 printable characters".into(),
                    ));
                }
                v
            }
        };
        let timezone = match raw.timezone {
            None => "UTC".to_string(),
            Some(z) => {
                let v = z.get_ref().trim().to_string();
                if let Err(e) = jiff::tz::TimeZone::get(&v) {
                    return Err(err(
                        line_of(text, z.span().start),
                        format!("timezone {v:?} is not an IANA time zone name such as \"America/Chicago\" ({e})"),
                    ));
                }
                v
            }
        };
        let report =
            report::RawReport::build(raw.report, &store.path, &rel, &report::At { path, text })?;
        let console = match raw.console {
            None => Console::default(),
            Some(c) => c.validate(text, rel, |at, m| err(line_of(text, at), m))?,
        };
        let mut raw_fleet = raw.fleet;
        let raw_syslog = raw_fleet.as_mut().and_then(|f| f.syslog.take());
        let raw_postgres = raw_fleet.as_mut().and_then(|f| f.postgres.take());
        let ft = fleet_text;
        let fleet = fleet::RawFleet::build(raw_fleet, ft, &store.path, rel, |at, m| {
            fleet_err(line_of(ft, at), m)
        })?;
        let fleet_syslog = syslog::build(raw_syslog, &store.path, rel, |at, m| {
            fleet_err(line_of(ft, at), m)
        })?;
        let fleet_postgres =
            postgres::build(raw_postgres, rel, |at, m| fleet_err(line_of(ft, at), m))?;
        Ok(Config {
            console,
            fleet,
            fleet_syslog,
            fleet_postgres,
            path: path.to_path_buf(),
            site_name,
            timezone,
            mode,
            rules: raw.rules.map_or_else(crate::paths::rules, rel),
            site: raw.site.map(rel),
            log,
            capture,
            dns,
            store,
            metrics,
            devices,
            incident_window_secs: raw.incident_window_secs.unwrap_or(600),
            enforcement,
            report,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(Path::new("/etc/aiwarden/aiwarden.toml"), text)
    }

    #[test]
    fn example_config_loads() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
        let c = Config::load(&p).expect("config.example.toml is valid");
        assert_eq!(c.mode, Mode::Monitor);
        assert!(!c.dns.listen.is_empty());
        assert!(!c.dns.upstreams.is_empty());
        assert_eq!(c.store.retention_days, 2196);
        assert!(!c.store.keyed);
        assert_eq!(
            c.console,
            crate::config::Console::default(),
            "the example says the defaults"
        );
        let inv = Path::new(env!("CARGO_MANIFEST_DIR")).join("devices.example.toml");
        let inv = crate::devices::Inventory::load(&inv).expect("devices.example.toml is valid");
        assert_eq!(inv.devices().len(), 3);
    }

    #[test]
    fn defaults_and_relative_paths() {
        let c = parse("rules = \"rules\"\n[store]\npath = \"db/incidents.db\"\n").expect("ok");
        assert_eq!(c.rules, Path::new("/etc/aiwarden/rules"));
        assert_eq!(c.store.path, Path::new("/etc/aiwarden/db/incidents.db"));
        assert!(!c.store.keyed, "the head file is not signed unless asked");
        assert!(parse("[store]\nkeyed = true\n").expect("keyed").store.keyed);
        assert_eq!(c.mode, Mode::Monitor);
        assert_eq!(c.dns.block_answer, BlockAnswer::Nxdomain);
        assert_eq!(c.dns.strip_ech, StripEch::Ai);
        assert_eq!(
            c.metrics.listen,
            Some("127.0.0.1:9747".parse().expect("addr"))
        );
    }

    #[test]
    fn upstream_forms() {
        assert_eq!(
            Upstream::parse("9.9.9.9"),
            Ok(Upstream::Plain("9.9.9.9:53".parse().expect("addr")))
        );
        assert_eq!(
            Upstream::parse("tls://[2620:fe::fe]#dns.quad9.net"),
            Ok(Upstream::Tls {
                addr: "[2620:fe::fe]:853".parse().expect("addr"),
                name: "dns.quad9.net".into()
            })
        );
        assert!(Upstream::parse("tls://9.9.9.9").is_err());
        assert!(Upstream::parse("dns.quad9.net").is_err());
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases = [
            ("mode = \"enforce\"\n\n[dns]\nlisten = [\"0.0.0.0:53\"]\nupstream = [\"9.9.9.9\"]\n", ":5: unknown field `upstream`"),
            ("mode = \"block\"\n", ":1: mode \"block\": expected \"monitor\" or \"enforce\""),
            ("[dns]\nlisten = [\"0.0.0.0:53\"]\nupstreams = [\"9.9.9.9\", \"tls://1.1.1.1\"]\n", ":3: upstream \"tls://1.1.1.1\": DNS over TLS needs"),
            ("[dns]\nlisten = [\"0.0.0.0:53\"]\n", ":2: dns: listen is set but upstreams is empty"),
            ("[dns]\nlisten = [\"localhost:53\"]\nupstreams = [\"9.9.9.9\"]\n", ":2: invalid address \"localhost:53\""),
            ("[dns]\nupstreams = [\"9.9.9.9\"]\nblock_answer = \"sinkhole\"\n", ":3: block_answer \"sinkhole\""),
            ("[capture]\ninterfaces = \"eth0\"\n", ":2: invalid type: string \"eth0\", expected a sequence"),
            ("[metrics]\nlisten = \"nowhere\"\n", ":2: invalid address \"nowhere\""),
        ];
        for (text, want) in cases {
            let e = parse(text).expect_err(text).to_string();
            assert!(
                e.starts_with("/etc/aiwarden/aiwarden.toml") && e.contains(want),
                "{text:?}: {e}"
            );
        }
    }
}
