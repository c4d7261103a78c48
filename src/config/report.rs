//! `[report]`: where `aiwarden report --archive` keeps reports, and how `--deliver` sends
//! them (`[report.email]` over SMTP, `[report.webhook]` as a JSON POST, `[report.retry]`).
//! Checked here once, with file and line; the `deliver` shell takes [`Delivery`] as it is.
//! Secrets are never in this file: it names files read at send time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;
use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};
use crate::policy::line_of;

/// The `[report]` section, validated.
#[derive(Debug, Clone)]
pub struct Report {
    /// Where archived reports are written: `reports/` beside the store file (the state
    /// directory) unless configured.
    pub dir: PathBuf,
    /// Where `--deliver` sends a report.
    pub delivery: Delivery,
}

/// What `crate::deliver::send` takes: the channels configured (none, one or both) and how
/// failures are retried.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `[report.email]`, when present.
    pub email: Option<Email>,
    /// `[report.webhook]`, when present.
    pub webhook: Option<Webhook>,
    /// `[report.retry]`.
    pub retry: Retry,
}

/// How the SMTP connection is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS before anything else is said; a server
    /// that does not offer it is an error, never a plaintext fallback (port 587).
    #[serde(rename = "starttls")]
    Starttls,
    /// TLS from the first byte (port 465).
    #[serde(rename = "tls")]
    Implicit,
    /// No encryption (port 25): only for a relay on the same host or a trusted segment;
    /// refused together with a username, so a password never crosses in clear.
    #[serde(rename = "none")]
    Off,
}

impl SmtpTls {
    /// The configured form.
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpTls::Starttls => "starttls",
            SmtpTls::Implicit => "tls",
            SmtpTls::Off => "none",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            SmtpTls::Starttls => 587,
            SmtpTls::Implicit => 465,
            SmtpTls::Off => 25,
        }
    }
}

/// `[report.email]`: one message to every address in `to`, with the PDF attached.
#[derive(Debug, Clone)]
pub struct Email {
    /// The SMTP server's host name (what its certificate must name) or address.
    pub server: String,
    /// Its port: by default 587 for `starttls`, 465 for `tls`, 25 for `none`.
    pub port: u16,
    /// How the connection is encrypted.
    pub tls: SmtpTls,
    /// The account to log in as (AUTH PLAIN or LOGIN), with `password_file`.
    pub username: Option<String>,
    /// A file holding the password (its first line), read at send time; refused when
    /// others may read it.
    pub password_file: Option<PathBuf>,
    /// The sender.
    pub from: Mailbox,
    /// The recipients (at least one).
    pub to: Vec<Mailbox>,
    /// PEM CA certificates the server's certificate is checked against, in place of the
    /// system's (a private CA); verification is never off.
    pub ca_file: Option<PathBuf>,
    /// Put before each report's own subject, e.g. `[aiwarden]`.
    pub subject: String,
    /// Seconds one SMTP command may take.
    pub timeout_secs: u64,
}

impl Email {
    /// `server:port`, for messages and logs.
    pub fn target(&self) -> String {
        if self.server.contains(':') {
            format!("[{}]:{}", self.server, self.port)
        } else {
            format!("{}:{}", self.server, self.port)
        }
    }
}

/// `[report.webhook]`: the report's JSON, POSTed.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// `http://` or `https://` (certificate verified). Its path often holds a secret (many
    /// ticketing systems put the token there), so only [`Webhook::target`] is logged.
    pub url: String,
    /// A file holding a token sent as `Authorization: Bearer` (first line), read at send
    /// time; refused when others may read it, and refused with an `http://` URL.
    pub bearer_token_file: Option<PathBuf>,
    /// PEM CA certificates for an `https` URL, in place of the system's.
    pub ca_file: Option<PathBuf>,
    /// Seconds one POST may take in all (connect, send, answer).
    pub timeout_secs: u64,
}

impl Webhook {
    /// The URL's scheme, host and port: what logs and errors print.
    pub fn target(&self) -> String {
        match self.url.parse::<ureq::http::Uri>() {
            Ok(u) => format!(
                "{}://{}",
                u.scheme_str().unwrap_or("?"),
                u.authority().map_or("?", |a| a.as_str())
            ),
            Err(_) => "webhook".to_string(),
        }
    }
}

/// `[report.retry]`: each channel is tried up to `attempts` times; after a failed attempt
/// n the wait is `delays[n - 1]` (the last one repeats).
#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    /// Tries per channel, at least 1.
    pub attempts: u32,
    /// Waits between tries, at least one.
    pub delays: Vec<Duration>,
}

impl Retry {
    /// The wait after failed attempt `n` (1-based).
    pub fn delay_after(&self, n: u32) -> Duration {
        let at = usize::try_from(n.saturating_sub(1)).unwrap_or(usize::MAX);
        self.delays
            .get(at)
            .or(self.delays.last())
            .copied()
            .unwrap_or_default()
    }
}

impl Default for Retry {
    /// Four tries, 2 s, 10 s and 60 s apart: a relay restarting or a greylisting server
    /// (which asks to come back after a minute or so) is waited out in about a minute and
    /// a quarter; the timer runs again next week anyway.
    fn default() -> Retry {
        Retry {
            attempts: 4,
            delays: [2, 10, 60].map(Duration::from_secs).to_vec(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReport {
    dir: Option<PathBuf>,
    email: Option<RawEmail>,
    webhook: Option<RawWebhook>,
    retry: Option<RawRetry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    server: Spanned<String>,
    port: Option<u16>,
    tls: Option<SmtpTls>,
    username: Option<Spanned<String>>,
    password_file: Option<Spanned<PathBuf>>,
    from: Spanned<String>,
    to: Spanned<Vec<Spanned<String>>>,
    ca_file: Option<PathBuf>,
    subject: Option<String>,
    timeout_secs: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: Spanned<String>,
    bearer_token_file: Option<Spanned<PathBuf>>,
    ca_file: Option<PathBuf>,
    timeout_secs: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    attempts: Option<Spanned<u32>>,
    delays_secs: Option<Spanned<Vec<f64>>>,
}

/// How `Config::parse` names a problem: the file, a line and a message.
pub(super) struct At<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
}

impl At<'_> {
    fn err<T>(&self, span_start: usize, message: String) -> Result<T> {
        Err(Error::Config {
            path: self.path.to_path_buf(),
            line: line_of(self.text, span_start),
            message,
        })
    }
}

impl RawReport {
    /// Validates the section. `store` is the store file (the default `dir` is beside it);
    /// `rel` makes a relative path relative to the config file.
    pub(super) fn build(
        raw: Option<RawReport>,
        store: &Path,
        rel: &dyn Fn(PathBuf) -> PathBuf,
        at: &At<'_>,
    ) -> Result<Report> {
        let raw = raw.unwrap_or(RawReport {
            dir: None,
            email: None,
            webhook: None,
            retry: None,
        });
        let dir = match raw.dir {
            Some(d) => rel(d),
            None => store.parent().unwrap_or(Path::new(".")).join("reports"),
        };
        let email = raw.email.map(|e| e.build(rel, at)).transpose()?;
        let webhook = raw.webhook.map(|w| w.build(rel, at)).transpose()?;
        let retry = match raw.retry {
            None => Retry::default(),
            Some(r) => r.build(at)?,
        };
        Ok(Report {
            dir,
            delivery: Delivery {
                email,
                webhook,
                retry,
            },
        })
    }
}

fn timeout(t: Option<Spanned<u64>>, default: u64, what: &str, at: &At<'_>) -> Result<u64> {
    match t {
        None => Ok(default),
        Some(t) if (1..=3600).contains(t.get_ref()) => Ok(*t.get_ref()),
        Some(t) => at.err(
            t.span().start,
            format!("{what}.timeout_secs must be 1 to 3600"),
        ),
    }
}

impl RawEmail {
    fn build(self, rel: &dyn Fn(PathBuf) -> PathBuf, at: &At<'_>) -> Result<Email> {
        let server = self.server.get_ref().trim().to_string();
        let is_ip = server.parse::<std::net::IpAddr>().is_ok();
        if server.is_empty()
            || server.contains(|c: char| c.is_whitespace() || c == '/')
            || (server.contains(':') && !is_ip)
        {
            return at.err(
                self.server.span().start,
                format!(
                    "report.email.server {server:?}: expected a host name or address (the port goes in `port`)"
                ),
            );
        }
        let tls = self.tls.unwrap_or(SmtpTls::Starttls);
        let mailbox = |s: &Spanned<String>, what: &str| -> Result<Mailbox> {
            s.get_ref().trim().parse::<Mailbox>().or_else(|e| {
                at.err(
                    s.span().start,
                    format!(
                        "report.email.{what} {:?}: not an email address ({})",
                        s.get_ref(),
                        e.to_string().to_lowercase()
                    ),
                )
            })
        };
        let from = mailbox(&self.from, "from")?;
        if self.to.get_ref().is_empty() {
            return at.err(
                self.to.span().start,
                "report.email.to: at least one recipient".into(),
            );
        }
        let to = self
            .to
            .get_ref()
            .iter()
            .map(|t| mailbox(t, "to"))
            .collect::<Result<Vec<_>>>()?;
        match (&self.username, &self.password_file) {
            (Some(u), None) => {
                return at.err(
                    u.span().start,
                    "report.email: username needs password_file".into(),
                )
            }
            (None, Some(p)) => {
                return at.err(
                    p.span().start,
                    "report.email: password_file needs username".into(),
                )
            }
            (Some(u), Some(_)) if tls == SmtpTls::Off => {
                return at.err(
                    u.span().start,
                    "report.email: tls = \"none\" would send the password in clear; use \"starttls\" or \"tls\"".into(),
                )
            }
            _ => {}
        }
        Ok(Email {
            server,
            port: self.port.unwrap_or(tls.default_port()),
            tls,
            username: self.username.map(Spanned::into_inner),
            password_file: self.password_file.map(|p| rel(p.into_inner())),
            from,
            to,
            ca_file: self.ca_file.map(rel),
            subject: self.subject.unwrap_or_else(|| "[aiwarden]".to_string()),
            timeout_secs: timeout(self.timeout_secs, 60, "report.email", at)?,
        })
    }
}

impl RawWebhook {
    fn build(self, rel: &dyn Fn(PathBuf) -> PathBuf, at: &At<'_>) -> Result<Webhook> {
        let url = self.url.get_ref().trim().to_string();
        let uri = match url.parse::<ureq::http::Uri>() {
            Ok(u) => u,
            Err(e) => {
                return at.err(
                    self.url.span().start,
                    format!("report.webhook.url: not a url ({e})"),
                )
            }
        };
        let scheme = uri.scheme_str().unwrap_or("");
        if !["http", "https"].contains(&scheme) || uri.host().is_none_or(str::is_empty) {
            return at.err(
                self.url.span().start,
                "report.webhook.url: expected http://HOST/... or https://HOST/...".into(),
            );
        }
        if let (Some(t), "http") = (&self.bearer_token_file, scheme) {
            return at.err(
                t.span().start,
                "report.webhook: a bearer token over http:// would cross in clear; use https://"
                    .into(),
            );
        }
        Ok(Webhook {
            url,
            bearer_token_file: self.bearer_token_file.map(|p| rel(p.into_inner())),
            ca_file: self.ca_file.map(rel),
            timeout_secs: timeout(self.timeout_secs, 30, "report.webhook", at)?,
        })
    }
}

impl RawRetry {
    fn build(self, at: &At<'_>) -> Result<Retry> {
        let mut retry = Retry::default();
        if let Some(a) = self.attempts {
            if !(1..=20).contains(a.get_ref()) {
                return at.err(
                    a.span().start,
                    "report.retry.attempts must be 1 to 20".into(),
                );
            }
            retry.attempts = *a.get_ref();
        }
        if let Some(d) = self.delays_secs {
            let ok = |s: &f64| s.is_finite() && (0.0..=3600.0).contains(s);
            if d.get_ref().is_empty() || !d.get_ref().iter().all(ok) {
                return at.err(
                    d.span().start,
                    "report.retry.delays_secs: one or more waits of 0 to 3600 seconds".into(),
                );
            }
            retry.delays = d
                .get_ref()
                .iter()
                .map(|s| Duration::from_secs_f64(*s))
                .collect();
        }
        Ok(retry)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(Path::new("/etc/aiwarden/aiwarden.toml"), text)
    }

    #[test]
    fn defaults_without_a_section() {
        let c = parse("[store]\npath = \"/var/lib/aiwarden/incidents.db\"\n").expect("ok");
        assert_eq!(c.report.dir, Path::new("/var/lib/aiwarden/reports"));
        assert!(c.report.delivery.email.is_none());
        assert!(c.report.delivery.webhook.is_none());
        assert_eq!(c.report.delivery.retry, Retry::default());
        let r = Retry::default();
        assert_eq!(r.attempts, 4);
        let waits: Vec<u64> = (1..=4).map(|n| r.delay_after(n).as_secs()).collect();
        assert_eq!(waits, [2, 10, 60, 60], "the last wait repeats");
        // dir follows the store, and is relative to the config file when set.
        let c = parse("[store]\npath = \"db/x.db\"\n").expect("ok");
        assert_eq!(c.report.dir, Path::new("/etc/aiwarden/db/reports"));
        let c = parse("[report]\ndir = \"out\"\n").expect("ok");
        assert_eq!(c.report.dir, Path::new("/etc/aiwarden/out"));
    }

    #[test]
    fn a_full_section() {
        let c = parse(
            r#"
[report]
dir = "/srv/reports"
[report.email]
server = "smtp.clinic.example"
username = "reports@clinic.example"
password_file = "smtp-password"
from = "aiwarden <reports@clinic.example>"
to = ["compliance@clinic.example", "Dr Who <who@clinic.example>"]
ca_file = "ca.pem"
subject = "[clinic]"
[report.webhook]
url = "https://tickets.msp.example/hooks/T0K3N"
bearer_token_file = "/etc/aiwarden/webhook-token"
timeout_secs = 5
[report.retry]
attempts = 2
delays_secs = [0.5]
"#,
        )
        .expect("ok");
        let d = &c.report.delivery;
        let e = d.email.as_ref().expect("email");
        assert_eq!(e.tls, SmtpTls::Starttls);
        assert_eq!(e.port, 587);
        assert_eq!(e.target(), "smtp.clinic.example:587");
        assert_eq!(
            e.password_file.as_deref(),
            Some(Path::new("/etc/aiwarden/smtp-password"))
        );
        assert_eq!(
            e.ca_file.as_deref(),
            Some(Path::new("/etc/aiwarden/ca.pem"))
        );
        assert_eq!(e.from.email.to_string(), "reports@clinic.example");
        assert_eq!(e.to.len(), 2);
        assert_eq!(e.to[1].name.as_deref(), Some("Dr Who"));
        assert_eq!(e.subject, "[clinic]");
        assert_eq!(e.timeout_secs, 60);
        let w = d.webhook.as_ref().expect("webhook");
        assert_eq!(
            w.target(),
            "https://tickets.msp.example",
            "the path is not logged"
        );
        assert_eq!(w.timeout_secs, 5);
        assert_eq!(d.retry.attempts, 2);
        assert_eq!(d.retry.delay_after(1), Duration::from_millis(500));
        let implicit = parse(
            "[report.email]\nserver = \"::1\"\ntls = \"tls\"\nfrom = \"a@b.example\"\nto = [\"c@d.example\"]\n",
        )
        .expect("ok");
        let e = implicit.report.delivery.email.expect("email");
        assert_eq!((e.tls, e.port), (SmtpTls::Implicit, 465));
        assert_eq!(e.target(), "[::1]:465");
    }

    /// The `[report]` keys config.example.toml shows commented out, uncommented, parse:
    /// what the admin is told to write is what the parser takes.
    #[test]
    fn the_example_section_parses_when_uncommented() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
        let text = std::fs::read_to_string(&p).expect("example");
        let at = text.find("\n# [report]\n").expect("a [report] section");
        let key = |l: &str| {
            let l = l.trim_start_matches("# ");
            // `[fleet]` follows the report's sections, commented out too.
            l.starts_with("[report")
                || l.starts_with("[fleet")
                || l.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                })
        };
        let mut uncommented = text[..at].to_string();
        for l in text[at..].lines() {
            uncommented.push_str(if key(l) {
                l.trim_start_matches("# ")
            } else {
                l
            });
            uncommented.push('\n');
        }
        let c = Config::parse(&p, &uncommented).expect("the uncommented example parses");
        assert_eq!(c.report.dir, Path::new("/var/lib/aiwarden/reports"));
        let d = &c.report.delivery;
        let e = d.email.as_ref().expect("email");
        assert_eq!((e.tls, e.port, e.to.len()), (SmtpTls::Starttls, 587, 2));
        assert!(e.username.is_some() && e.password_file.is_some() && e.ca_file.is_some());
        let w = d.webhook.as_ref().expect("webhook");
        assert!(w.bearer_token_file.is_some() && w.ca_file.is_some());
        assert_eq!(d.retry, Retry::default(), "the example shows the defaults");
        // As shipped (commented out): nothing is sent.
        let shipped = Config::load(&p).expect("example");
        assert!(
            shipped.report.delivery.email.is_none() && shipped.report.delivery.webhook.is_none()
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let email = "[report.email]\nserver = \"smtp.example\"\nfrom = \"a@b.example\"\nto = [\"c@d.example\"]\n";
        let cases = [
            ("[report]\ndir = \"x\"\nformat = \"pdf\"\n".to_string(), ":3: unknown field `format`".to_string()),
            (format!("{email}smtp_port = 25\n"), ":5: unknown field `smtp_port`".into()),
            ("[report.webhook]\nurl = \"https://h.example/\"\ntoken = \"abc\"\n".into(), ":3: unknown field `token`".into()),
            ("[report.retry]\nattempts = 3\ndelay = 1\n".into(), ":3: unknown field `delay`".into()),
            ("[report.email]\nserver = \"smtp.example\"\nto = [\"c@d.example\"]\n".into(), ":1: missing field `from`".into()),
            (format!("{email}tls = \"ssl\"\n"), ":5: unknown variant `ssl`".into()),
            ("[report.email]\nserver = \"smtp.example:587\"\nfrom = \"a@b.example\"\nto = [\"c@d.example\"]\n".into(), ":2: report.email.server \"smtp.example:587\": expected a host name".into()),
            ("[report.email]\nserver = \"smtp.example\"\nfrom = \"a@b.example\"\nto = [\"c@d.example\", \"not an address\"]\n".into(), ":4: report.email.to \"not an address\": not an email address".into()),
            ("[report.email]\nserver = \"smtp.example\"\nfrom = \"a@b.example\"\nto = []\n".into(), ":4: report.email.to: at least one recipient".into()),
            (format!("{email}username = \"u\"\n"), ":5: report.email: username needs password_file".into()),
            (format!("{email}password_file = \"p\"\n"), ":5: report.email: password_file needs username".into()),
            (format!("{email}tls = \"none\"\nusername = \"u\"\npassword_file = \"p\"\n"), ":6: report.email: tls = \"none\" would send the password in clear".into()),
            (format!("{email}timeout_secs = 0\n"), ":5: report.email.timeout_secs must be 1 to 3600".into()),
            ("[report.webhook]\nurl = \"ftp://h.example/\"\n".into(), ":2: report.webhook.url: expected http://HOST/".into()),
            ("[report.webhook]\nurl = \"not a url\"\n".into(), ":2: report.webhook.url: not a url".into()),
            ("[report.webhook]\nurl = \"http://h.example/\"\nbearer_token_file = \"t\"\n".into(), ":3: report.webhook: a bearer token over http:// would cross in clear".into()),
            ("[report.retry]\nattempts = 0\n".into(), ":2: report.retry.attempts must be 1 to 20".into()),
            ("[report.retry]\n\ndelays_secs = [1, -2]\n".into(), ":3: report.retry.delays_secs: one or more waits".into()),
            ("[report.retry]\ndelays_secs = []\n".into(), ":2: report.retry.delays_secs: one or more waits".into()),
        ];
        for (text, want) in cases {
            let e = parse(&text).expect_err(&text).to_string();
            assert!(
                e.starts_with("/etc/aiwarden/aiwarden.toml") && e.contains(&want),
                "{text:?}: {e}"
            );
        }
    }
}
