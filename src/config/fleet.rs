//! `[fleet]`: signed rule bundles an MSP publishes for its boxes (see `crate::fleet`):
//! where to poll, the pinned public keys, how often, and the CA to check the server with.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Signed rule bundles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    /// The bundle's HTTPS URL (its signature at the same URL plus `.minisig`); none: no
    /// polling.
    pub bundle_url: Option<String>,
    /// Pinned minisign public keys (`RW...` lines): a bundle signed by any of them is
    /// accepted, so a key is rotated by pinning the new one beside the old first.
    pub bundle_keys: Vec<String>,
    /// Time between polls.
    pub poll_interval: Duration,
    /// CA certificates (PEM) for the bundle server instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// Where bundles are unpacked and the version in force kept.
    pub state_dir: PathBuf,
    /// For each request, whole.
    pub timeout: Duration,
}

impl Fleet {
    /// The defaults, the state kept in `store_dir/fleet`.
    pub fn defaults(store_dir: PathBuf) -> Fleet {
        Fleet {
            bundle_url: None,
            bundle_keys: Vec::new(),
            poll_interval: Duration::from_secs(3600),
            ca_file: None,
            state_dir: store_dir.join("fleet"),
            timeout: Duration::from_secs(60),
        }
    }

    /// The pinned keys, parsed (they were validated when the file was read).
    pub fn keys(&self) -> Vec<minisign::PublicKey> {
        self.bundle_keys
            .iter()
            .filter_map(|k| parse_public_key(k).ok())
            .collect()
    }
}

/// `[fleet]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFleet {
    bundle_url: Option<toml::Spanned<String>>,
    #[serde(default)]
    bundle_keys: Vec<toml::Spanned<String>>,
    poll_interval: Option<toml::Spanned<String>>,
    ca_file: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    timeout_secs: Option<toml::Spanned<u64>>,
    /// `[fleet.syslog]`, validated by [`super::syslog::build`].
    pub(super) syslog: Option<super::syslog::RawSyslog>,
    /// `[fleet.postgres]`, validated by [`super::postgres::build`].
    pub(super) postgres: Option<super::postgres::RawPostgres>,
}

/// The shortest poll interval: a static file server is not to be hammered by hundreds of
/// boxes.
const MIN_POLL: Duration = Duration::from_secs(10);

impl RawFleet {
    /// The section validated, or the defaults when it is absent (state beside the store).
    pub(super) fn build(
        raw: Option<RawFleet>,
        text: &str,
        store: &std::path::Path,
        rel: impl Fn(PathBuf) -> PathBuf,
        err: impl Fn(usize, String) -> crate::Error,
    ) -> crate::Result<Fleet> {
        let d = Fleet::defaults(
            store
                .parent()
                .map_or_else(|| PathBuf::from("."), Into::into),
        );
        match raw {
            None => Ok(d),
            Some(f) => f.validate(text, d, rel, err),
        }
    }

    /// Validates; `err(offset, message)` names the line; relative paths are resolved by
    /// `rel`.
    pub(super) fn validate(
        self,
        text: &str,
        defaults: Fleet,
        rel: impl Fn(PathBuf) -> PathBuf,
        err: impl Fn(usize, String) -> crate::Error,
    ) -> crate::Result<Fleet> {
        let section = text.find("[fleet]").unwrap_or(0);
        let bundle_url = match &self.bundle_url {
            None => None,
            Some(u) => {
                let v = u.get_ref().trim();
                let host = v.strip_prefix("https://").unwrap_or("");
                if host.is_empty() || host.starts_with('/') || v.contains(char::is_whitespace) {
                    return Err(err(
                        u.span().start,
                        format!("fleet.bundle_url {v:?} is not an https:// url"),
                    ));
                }
                Some(v.to_string())
            }
        };
        for k in &self.bundle_keys {
            if let Err(m) = parse_public_key(k.get_ref()) {
                return Err(err(k.span().start, format!("fleet.bundle_keys: {m}")));
            }
        }
        if bundle_url.is_some() && self.bundle_keys.is_empty() {
            return Err(err(
                section,
                "fleet: bundle_url needs at least one key in bundle_keys".into(),
            ));
        }
        let poll_interval = match &self.poll_interval {
            None => defaults.poll_interval,
            Some(p) => {
                let d = humantime::parse_duration(p.get_ref()).map_err(|e| {
                    err(
                        p.span().start,
                        format!(
                            "fleet.poll_interval {:?}: {e} (e.g. \"15m\", \"1h\")",
                            p.get_ref()
                        ),
                    )
                })?;
                if d < MIN_POLL {
                    return Err(err(
                        p.span().start,
                        format!(
                            "fleet.poll_interval must be at least {}s",
                            MIN_POLL.as_secs()
                        ),
                    ));
                }
                d
            }
        };
        let timeout = match &self.timeout_secs {
            None => defaults.timeout,
            Some(t) if (1..=3600).contains(t.get_ref()) => Duration::from_secs(*t.get_ref()),
            Some(t) => {
                return Err(err(
                    t.span().start,
                    "fleet.timeout_secs must be 1 to 3600".into(),
                ))
            }
        };
        Ok(Fleet {
            bundle_url,
            bundle_keys: self
                .bundle_keys
                .into_iter()
                .map(|k| k.into_inner().trim().to_string())
                .collect(),
            poll_interval,
            ca_file: self.ca_file.map(&rel),
            state_dir: self.state_dir.map_or(defaults.state_dir, &rel),
            timeout,
        })
    }
}

/// A public key from a minisign public key file's text, or from its base64 line alone
/// (`RW...`, as a config file pins it).
pub fn parse_public_key(text: &str) -> std::result::Result<minisign::PublicKey, String> {
    let text = text.trim();
    let parsed = if text.contains('\n') {
        minisign::PublicKeyBox::from_string(text).and_then(minisign::PublicKeyBox::into_public_key)
    } else {
        minisign::PublicKey::from_base64(text)
    };
    parsed.map_err(|e| format!("not a minisign public key: {e}"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::Config;

    fn parse(text: &str) -> crate::Result<Config> {
        Config::parse(Path::new("/etc/aiwarden/aiwarden.toml"), text)
    }

    fn key() -> String {
        let k = minisign::KeyPair::generate_unencrypted_keypair().expect("key");
        k.pk.to_base64()
    }

    #[test]
    fn defaults_poll_nothing() {
        let c = parse("[store]\npath = \"/var/lib/aiwarden/incidents.db\"\n").expect("ok");
        assert_eq!(c.fleet.bundle_url, None);
        assert_eq!(c.fleet.poll_interval, Duration::from_secs(3600));
        assert_eq!(c.fleet.state_dir, Path::new("/var/lib/aiwarden/fleet"));
    }

    #[test]
    fn a_fleet_section_loads() {
        let (k1, k2) = (key(), key());
        let c = parse(&format!(
            "[fleet]\nbundle_url = \"https://rules.msp.example/clinics/rules.bundle\"\n\
             bundle_keys = [\"{k1}\", \"{k2}\"]\npoll_interval = \"15m\"\n\
             ca_file = \"msp-ca.pem\"\nstate_dir = \"/var/lib/aiwarden/fleet2\"\ntimeout_secs = 30\n"
        ))
        .expect("ok");
        let f = &c.fleet;
        assert_eq!(
            f.bundle_url.as_deref(),
            Some("https://rules.msp.example/clinics/rules.bundle")
        );
        assert_eq!(f.bundle_keys, [k1, k2]);
        assert_eq!(f.keys().len(), 2);
        assert_eq!(f.poll_interval, Duration::from_secs(900));
        assert_eq!(
            f.ca_file.as_deref(),
            Some(Path::new("/etc/aiwarden/msp-ca.pem"))
        );
        assert_eq!(f.state_dir, Path::new("/var/lib/aiwarden/fleet2"));
        assert_eq!(f.timeout, Duration::from_secs(30));
    }

    #[test]
    fn the_shipped_example_parses_when_uncommented() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
        let text = std::fs::read_to_string(&p).expect("example");
        let at = text.find("\n# [fleet]\n").expect("a [fleet] section");
        let mut uncommented = text[..at].to_string();
        for l in text[at..].lines() {
            let bare = l.trim_start_matches("# ");
            let is_key = bare.starts_with("[fleet")
                || bare
                    .split_once(" = ")
                    .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            uncommented.push_str(if is_key { bare } else { l });
            uncommented.push('\n');
        }
        let c = Config::parse(&p, &uncommented).expect("the uncommented example parses");
        let f = &c.fleet;
        assert!(f
            .bundle_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://")));
        assert_eq!(f.keys().len(), 1);
        assert_eq!(f.poll_interval, Duration::from_secs(3600));
        assert_eq!(
            f.timeout,
            Duration::from_secs(60),
            "the example shows the default"
        );
        assert_eq!(f.state_dir, Path::new("/var/lib/aiwarden/fleet"));
        let pg = c.fleet_postgres.as_ref().expect("[fleet.postgres]");
        assert_eq!(
            pg.password_file.as_deref(),
            Some(Path::new("/etc/aiwarden/fleet-pg.pass"))
        );
        assert_eq!(
            (pg.interval_secs, pg.batch),
            (300, 5000),
            "the example shows the defaults"
        );
        // As shipped (commented out): nothing is polled.
        assert_eq!(Config::load(&p).expect("example").fleet.bundle_url, None);
    }

    #[test]
    fn bad_fleet_sections_say_where() {
        let k = key();
        for (text, want) in [
            (
                "[fleet]\nbundle_url = \"http://x.example/b\"\n".to_string(),
                "aiwarden.toml:2: fleet.bundle_url \"http://x.example/b\" is not an https:// url",
            ),
            (
                "[fleet]\nbundle_url = \"https://x.example/b\"\n".to_string(),
                "aiwarden.toml:1: fleet: bundle_url needs at least one key",
            ),
            (
                "[fleet]\nbundle_keys = [\"RWQnotakey\"]\n".to_string(),
                "aiwarden.toml:2: fleet.bundle_keys: not a minisign public key",
            ),
            (
                format!("[fleet]\nbundle_keys = [\"{k}\"]\npoll_interval = \"5s\"\n"),
                "aiwarden.toml:3: fleet.poll_interval must be at least 10s",
            ),
            (
                "[fleet]\npoll_interval = \"often\"\n".to_string(),
                "aiwarden.toml:2: fleet.poll_interval \"often\":",
            ),
            (
                "[fleet]\ntimeout_secs = 0\n".to_string(),
                "aiwarden.toml:2: fleet.timeout_secs must be 1 to 3600",
            ),
            (
                "[fleet]\nbundle_key = \"x\"\n".to_string(),
                "unknown field `bundle_key`",
            ),
        ] {
            let e = parse(&text).expect_err(want).to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
