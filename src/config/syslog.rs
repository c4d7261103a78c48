//! `[fleet.syslog]`: the SIEM the daemon sends incidents to, by RFC 5424 syslog over TLS
//! (see `crate::fleet` and docs/fleet.md). Absent: nothing is sent.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A configured syslog-over-TLS receiver, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syslog {
    /// The receiver's host name or address; its certificate must name it.
    pub host: String,
    /// Its port (default 6514, syslog over TLS's).
    pub port: u16,
    /// CA certificates (PEM) the receiver is checked against; `None`: the system's bundle.
    pub ca_file: Option<PathBuf>,
    /// A client certificate chain (PEM), with `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// The client certificate's key (PEM).
    pub client_key_file: Option<PathBuf>,
    /// Facility number 0 to 23 (written as a name: `local0` ... `local7`, `user`, `daemon`,
    /// `auth`, `authpriv`).
    pub facility: u8,
    /// Incidents per batch (one TLS connection each), 1 to 10,000.
    pub batch: u32,
    /// When a batch counts as received.
    pub confirm: SyslogConfirm,
    /// Seconds between passes.
    pub interval_secs: u64,
    /// Connect, read and write timeout, seconds.
    pub timeout_secs: u64,
    /// Attempts at one batch per pass.
    pub attempts: u32,
    /// The cursor file (default `fleet-syslog.cursor` beside the store).
    pub cursor_file: PathBuf,
    /// The HOSTNAME in messages; `None`: the machine's host name.
    pub hostname: Option<String>,
}

/// When a batch counts as received (see `crate::fleet::Confirm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogConfirm {
    /// `close`: the receiver closed cleanly after the sender's `close_notify`.
    Close,
    /// `close_notify`: the receiver answered with its own `close_notify`.
    CloseNotify,
    /// `flush`: written and flushed.
    Flush,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSyslog {
    host: toml::Spanned<String>,
    port: Option<u16>,
    ca_file: Option<PathBuf>,
    client_cert_file: Option<PathBuf>,
    client_key_file: Option<PathBuf>,
    facility: Option<toml::Spanned<String>>,
    batch: Option<toml::Spanned<u32>>,
    confirm: Option<toml::Spanned<String>>,
    interval_secs: Option<toml::Spanned<u64>>,
    timeout_secs: Option<toml::Spanned<u64>>,
    attempts: Option<toml::Spanned<u32>>,
    cursor_file: Option<PathBuf>,
    hostname: Option<toml::Spanned<String>>,
}

/// A facility name's number.
fn facility(name: &str) -> Option<u8> {
    match name {
        "user" => Some(1),
        "daemon" => Some(3),
        "auth" => Some(4),
        "authpriv" => Some(10),
        _ => name
            .strip_prefix("local")
            .and_then(|n| n.parse::<u8>().ok())
            .filter(|n| *n <= 7)
            .map(|n| 16 + n),
    }
}

/// `[fleet.syslog]` validated; `err(offset, message)` names the line; `store` is the
/// store's path (the default cursor sits beside it); relative paths resolved by `rel`.
pub(super) fn build(
    raw: Option<RawSyslog>,
    store: &Path,
    rel: impl Fn(PathBuf) -> PathBuf,
    err: impl Fn(usize, String) -> crate::Error,
) -> crate::Result<Option<Syslog>> {
    let Some(s) = raw else {
        return Ok(None);
    };
    let host = s.host.get_ref().trim();
    if host.is_empty() || host.len() > 253 || host.contains(|c: char| c.is_whitespace()) {
        return Err(err(
            s.host.span().start,
            "fleet.syslog.host: a host name or address".into(),
        ));
    }
    if s.client_cert_file.is_some() != s.client_key_file.is_some() {
        return Err(err(
            s.host.span().start,
            "fleet.syslog: client_cert_file and client_key_file go together".into(),
        ));
    }
    let ranged = |v: Option<toml::Spanned<u64>>, key: &str, d: u64, max: u64| match v {
        None => Ok(d),
        Some(v) if (1..=max).contains(v.get_ref()) => Ok(*v.get_ref()),
        Some(v) => Err(err(
            v.span().start,
            format!("fleet.syslog.{key} must be 1 to {max}"),
        )),
    };
    let widen = |v: Option<toml::Spanned<u32>>| {
        v.map(|v| toml::Spanned::new(v.span(), u64::from(*v.get_ref())))
    };
    let facility = match &s.facility {
            // local0, as `crate::fleet::syslog::DEFAULT_FACILITY` (config sits below fleet).
            None => 16,
            Some(f) => facility(f.get_ref()).ok_or_else(|| {
                err(
                    f.span().start,
                    format!(
                        "fleet.syslog.facility {:?}: expected local0 to local7, user, daemon, auth or authpriv",
                        f.get_ref()
                    ),
                )
            })?,
        };
    let confirm = match &s.confirm {
            None => SyslogConfirm::Close,
            Some(c) => match c.get_ref().as_str() {
                "close" => SyslogConfirm::Close,
                "close_notify" => SyslogConfirm::CloseNotify,
                "flush" => SyslogConfirm::Flush,
                other => {
                    return Err(err(
                        c.span().start,
                        format!(
                        "fleet.syslog.confirm {other:?}: expected \"close\", \"close_notify\" or \"flush\""
                    ),
                    ))
                }
            },
        };
    let hostname = match s.hostname {
        None => None,
        Some(h) if !h.get_ref().trim().is_empty() && h.get_ref().is_ascii() => {
            Some(h.get_ref().trim().to_string())
        }
        Some(h) => {
            return Err(err(
                h.span().start,
                "fleet.syslog.hostname: ASCII, not empty".into(),
            ))
        }
    };
    let cursor_file = s.cursor_file.map(&rel).unwrap_or_else(|| {
        store
            .parent()
            .unwrap_or(Path::new("."))
            .join("fleet-syslog.cursor")
    });
    Ok(Some(Syslog {
        host: host.to_string(),
        port: s.port.unwrap_or(6514),
        ca_file: s.ca_file.map(&rel),
        client_cert_file: s.client_cert_file.map(&rel),
        client_key_file: s.client_key_file.map(&rel),
        facility,
        batch: ranged(
            widen(s.batch),
            "batch",
            500,
            u64::from(crate::store::MAX_FEED),
        )? as u32,
        confirm,
        interval_secs: ranged(s.interval_secs, "interval_secs", 60, 86_400)?,
        timeout_secs: ranged(s.timeout_secs, "timeout_secs", 30, 3_600)?,
        attempts: ranged(widen(s.attempts), "attempts", 5, 100)? as u32,
        cursor_file,
        hostname,
    }))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn parse(text: &str) -> crate::Result<Config> {
        Config::parse(Path::new("/etc/aiwarden/aiwarden.toml"), text)
    }

    #[test]
    fn defaults_paths_and_errors() {
        assert_eq!(parse("").expect("empty").fleet_syslog, None);
        let s = parse(
            "[store]\npath = \"/var/lib/aiwarden/incidents.db\"\n\
             [fleet.syslog]\nhost = \"siem.msp.example\"\nca_file = \"msp-ca.pem\"\n",
        )
        .expect("syslog")
        .fleet_syslog
        .expect("set");
        assert_eq!((s.port, s.facility, s.batch), (6514, 16, 500));
        assert_eq!(s.confirm, super::SyslogConfirm::Close);
        assert_eq!(
            s.ca_file.as_deref(),
            Some(Path::new("/etc/aiwarden/msp-ca.pem"))
        );
        assert_eq!(
            s.cursor_file,
            Path::new("/var/lib/aiwarden/fleet-syslog.cursor")
        );
        let s = parse(
            "[fleet.syslog]\nhost = \"10.0.0.5\"\nfacility = \"local5\"\nconfirm = \"flush\"\n",
        )
        .expect("syslog")
        .fleet_syslog
        .expect("set");
        assert_eq!(s.facility, 21);
        assert_eq!(s.confirm, super::SyslogConfirm::Flush);
        for (text, want) in [
            ("[fleet.syslog]\nport = 6514\n", ":1: missing field `host`"),
            (
                "[fleet.syslog]\nhost = \"a\"\nfacility = \"local9\"\n",
                ":3: fleet.syslog.facility \"local9\"",
            ),
            (
                "[fleet.syslog]\nhost = \"a\"\nbatch = 0\n",
                ":3: fleet.syslog.batch must be 1 to 10000",
            ),
            (
                "[fleet.syslog]\nhost = \"a\"\nconfirm = \"ack\"\n",
                ":3: fleet.syslog.confirm \"ack\"",
            ),
            (
                "[fleet.syslog]\nhost = \"a\"\nclient_cert_file = \"c.pem\"\n",
                ":2: fleet.syslog: client_cert_file and client_key_file",
            ),
            (
                "[fleet.syslog]\nhost = \"a\"\nprot = 1\n",
                ":3: unknown field `prot`",
            ),
            ("[fleet]\nsyslog = 1\n", ":2: invalid type"),
        ] {
            let e = parse(text).expect_err(text).to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    /// The `[fleet.syslog]` keys config.example.toml shows commented out, uncommented, parse.
    #[test]
    fn the_example_section_parses_when_uncommented() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
        let text = std::fs::read_to_string(&p).expect("example");
        let at = text
            .find("\n# [fleet.syslog]\n")
            .expect("a [fleet.syslog] section");
        let end = at
            + text[at..]
                .find("\n# [report]\n")
                .expect("[report] after it");
        let mut uncommented = text[..at].to_string();
        for l in text[at..end].lines() {
            let bare = l.trim_start_matches("# ");
            let key = bare.starts_with("[fleet")
                || bare.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                });
            uncommented.push_str(if key { bare } else { l });
            uncommented.push('\n');
        }
        uncommented.push_str(&text[end..]);
        let c = Config::parse(&p, &uncommented).expect("the uncommented example parses");
        let s = c.fleet_syslog.expect("set");
        assert_eq!((s.host.as_str(), s.port), ("siem.msp.example", 6514));
        assert!(s.client_cert_file.is_some() && s.client_key_file.is_some());
        assert_eq!(
            Config::load(&p).expect("example").fleet_syslog,
            None,
            "off as shipped"
        );
    }
}
