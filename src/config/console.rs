//! `[console]`: the compliance web console on the management address (see
//! `crate::console`): where it listens, its TLS certificate, and the bounds of its sessions,
//! logins and connections.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// The web console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Console {
    /// The daemon serves it (`aiwarden console` serves it whatever this says).
    pub enabled: bool,
    /// Address and port (HTTPS only).
    pub listen: SocketAddr,
    /// A PEM certificate chain; with `key_file`. Without both, a self-signed certificate
    /// is made at first start in `state_dir` and reused.
    pub cert_file: Option<PathBuf>,
    /// The PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Where the generated certificate and key are kept (default: the store's directory).
    pub state_dir: Option<PathBuf>,
    /// Viewers see client addresses and MACs too (by default only device labels).
    pub show_addresses_to_viewers: bool,
    /// A session unused this long ends, seconds.
    pub session_idle_secs: u64,
    /// A session ends this long after login whatever its use, seconds.
    pub session_max_secs: u64,
    /// Sessions kept at once; beyond it the least recently used ends.
    pub max_sessions: usize,
    /// Failed logins per user name, and per client address, within `login_window_secs`
    /// before further attempts get 429.
    pub login_failures: u32,
    /// The window failed logins are counted in, seconds.
    pub login_window_secs: u64,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
}

impl Default for Console {
    fn default() -> Console {
        Console {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            cert_file: None,
            key_file: None,
            state_dir: None,
            show_addresses_to_viewers: false,
            session_idle_secs: 30 * 60,
            session_max_secs: 12 * 3600,
            max_sessions: 256,
            login_failures: 5,
            login_window_secs: 15 * 60,
            max_connections: 64,
        }
    }
}

/// `[console]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsole {
    enabled: Option<bool>,
    listen: Option<toml::Spanned<String>>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    show_addresses_to_viewers: Option<bool>,
    session_idle_secs: Option<u64>,
    session_max_secs: Option<u64>,
    max_sessions: Option<usize>,
    login_failures: Option<u32>,
    login_window_secs: Option<u64>,
    max_connections: Option<usize>,
}

impl RawConsole {
    /// Validates; `err(offset, message)` names the line. Relative paths are resolved by
    /// `rel`.
    pub(super) fn validate(
        self,
        text: &str,
        rel: impl Fn(PathBuf) -> PathBuf,
        err: impl Fn(usize, String) -> crate::Error,
    ) -> crate::Result<Console> {
        let d = Console::default();
        let at = |key: &str| {
            text.find("[console]")
                .and_then(|c| text[c..].find(key).map(|k| c + k))
                .unwrap_or(0)
        };
        let listen = match &self.listen {
            None => d.listen,
            Some(l) => super::socket(l.get_ref(), 8443)
                .map_err(|m| err(l.span().start, format!("console.listen: {m}")))?,
        };
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(err(
                at(if self.cert_file.is_some() {
                    "cert_file"
                } else {
                    "key_file"
                }),
                "console: cert_file and key_file go together (or neither, for a self-signed \
                 certificate)"
                    .into(),
            ));
        }
        let positive = |v: u64, key: &str| {
            if v == 0 {
                Err(err(at(key), format!("console.{key} must be at least 1")))
            } else {
                Ok(v)
            }
        };
        let idle = positive(
            self.session_idle_secs.unwrap_or(d.session_idle_secs),
            "session_idle_secs",
        )?;
        let max = positive(
            self.session_max_secs.unwrap_or(d.session_max_secs),
            "session_max_secs",
        )?;
        Ok(Console {
            enabled: self.enabled.unwrap_or(d.enabled),
            listen,
            cert_file: self.cert_file.map(&rel),
            key_file: self.key_file.map(&rel),
            state_dir: self.state_dir.map(&rel),
            show_addresses_to_viewers: self
                .show_addresses_to_viewers
                .unwrap_or(d.show_addresses_to_viewers),
            session_idle_secs: idle,
            session_max_secs: max.max(idle),
            max_sessions: positive(
                self.max_sessions.unwrap_or(d.max_sessions) as u64,
                "max_sessions",
            )? as usize,
            login_failures: positive(
                u64::from(self.login_failures.unwrap_or(d.login_failures)),
                "login_failures",
            )? as u32,
            login_window_secs: positive(
                self.login_window_secs.unwrap_or(d.login_window_secs),
                "login_window_secs",
            )?,
            max_connections: positive(
                self.max_connections.unwrap_or(d.max_connections) as u64,
                "max_connections",
            )? as usize,
        })
    }
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
        let c = parse("").expect("empty").console;
        assert!(!c.enabled);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8443");
        assert_eq!((c.login_failures, c.login_window_secs), (5, 900));
        let c = parse(
            "[console]\nenabled = true\nlisten = \"10.0.0.1\"\ncert_file = \"tls/c.pem\"\n\
             key_file = \"/k.pem\"\nshow_addresses_to_viewers = true\n",
        )
        .expect("console")
        .console;
        assert!(c.enabled && c.show_addresses_to_viewers);
        assert_eq!(c.listen.to_string(), "10.0.0.1:8443");
        assert_eq!(
            c.cert_file.as_deref(),
            Some(Path::new("/etc/aiwarden/tls/c.pem"))
        );
        for (text, want) in [
            ("[console]\nlisten = \"nowhere\"\n", ":2: console.listen"),
            (
                "[console]\n\ncert_file = \"c.pem\"\n",
                ":3: console: cert_file and key_file",
            ),
            (
                "[console]\nsession_idle_secs = 0\n",
                ":2: console.session_idle_secs",
            ),
            ("[console]\nport = 1\n", ":2: unknown field `port`"),
        ] {
            let e = parse(text).expect_err(text).to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
