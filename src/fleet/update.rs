//! The bundle updater, a shell: fetches a signed rule bundle and its `.minisig` over HTTPS
//! (ureq, rustls on ring, the server's certificate checked against the system's CAs or
//! `ca_file`, https only, redirects too), verifies it ([`super::bundle::verify`]), unpacks
//! it into the state directory and puts it in force through [`Live::swap_catalog`], the
//! same atomic swap a reload uses. On any refusal the rules in force stay.
//!
//! The state directory holds:
//!
//! | path | what |
//! |---|---|
//! | `bundles/<version>/catalog/*.toml` | a bundle's catalog, unpacked (written under `bundles/.tmp-*` and renamed) |
//! | `bundles/<version>/manifest.toml`, `bundle.minisig` | its manifest and signature, kept for audit |
//! | `bundles/in-force` | the version in force, one line (written to a temporary file and renamed) |
//!
//! The bundle in force and the one before it are kept; older ones are removed. Every
//! bundle applied or refused is a tracing event here; [`event_of`] gives the caller the
//! `bundle_applied` or `bundle_refused` row for the store's chained log (the store is a
//! shell above this one: the daemon writes it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use minisign::PublicKey;

use super::bundle::{self, Freshness, Verified, MANIFEST, MAX_BUNDLE_BYTES};
use crate::error::{Error, Result};
use crate::policy::Live;

/// Where bundles come from. Its `Debug` shows the URL redacted ([`redact_url`]).
#[derive(Clone)]
pub struct Source {
    /// The bundle's HTTPS URL; its signature is at the same URL with `.minisig` added to
    /// the path ([`signature_url`]). May carry a secret (a token in the query, a user and
    /// password): shown only through [`redact_url`].
    pub url: String,
    /// CA certificates (PEM) the server's certificate is checked against instead of the
    /// system's.
    pub ca_file: Option<PathBuf>,
    /// For each request, whole.
    pub timeout: Duration,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("url", &redact_url(&self.url))
            .field("ca_file", &self.ca_file)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// `url` as a log line, an error, the chained log or `/healthz` may show it: a user and
/// password (`https://user:pw@host/`) and everything from the query or fragment on
/// (`?X-Amz-Signature=...`, a presigned object-store URL's token) become `***`. Scheme,
/// host, port and path stay: enough to tell which server and file, nothing to replay.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let (before, after) = rest.split_at(end);
    let host_end = before.find('/').unwrap_or(before.len());
    let (authority, path) = before.split_at(host_end);
    let host = match authority.rfind('@') {
        Some(at) => format!("***@{}", &authority[at + 1..]),
        None => authority.to_string(),
    };
    let tail = match after.chars().next() {
        Some(c) => format!("{c}***"),
        None => String::new(),
    };
    format!("{scheme}{host}{path}{tail}")
}

/// Where the signature of the bundle at `url` is: `.minisig` added to the path, before
/// any query or fragment (`https://h/rules.bundle?token=T` -> `https://h/rules.bundle.minisig?token=T`).
pub fn signature_url(url: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let end = url[scheme_end..]
        .find(['?', '#'])
        .map_or(url.len(), |i| scheme_end + i);
    format!("{}.minisig{}", &url[..end], &url[end..])
}

/// What one poll did (refusals are errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A newer bundle is in force now.
    Applied(Applied),
    /// The bundle offered is the one in force: nothing to do.
    Current {
        /// Its version.
        version: u64,
    },
}

/// A bundle put in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Its version.
    pub version: u64,
    /// The version it replaced, if any.
    pub previous: Option<u64>,
    /// The key that signed it.
    pub key_id: String,
    /// Catalog services in force now.
    pub services: usize,
    /// Host patterns in force now.
    pub patterns: usize,
    /// Its catalog directory, where reloads now read the catalog.
    pub catalog: PathBuf,
}

/// The bundle in force, as the state directory records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InForce {
    /// Its version.
    pub version: u64,
    /// Its catalog directory.
    pub catalog: PathBuf,
}

fn bundles(state_dir: &Path) -> PathBuf {
    state_dir.join("bundles")
}

fn version_file(state_dir: &Path) -> PathBuf {
    bundles(state_dir).join("in-force")
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The version in force in `state_dir`, none when no bundle was ever applied. A version
/// file that cannot be read or parsed is an error: an old bundle must not get in because
/// the record of the newer one is damaged.
pub fn version_in_force(state_dir: &Path) -> Result<Option<u64>> {
    let path = version_file(state_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path)(e)),
    };
    text.trim().parse().map(Some).map_err(|_| Error::Config {
        path: path.clone(),
        line: 1,
        message: format!("not a bundle version: {:?}", text.trim()),
    })
}

/// The bundle in force in `state_dir` and its catalog directory, for the daemon's start:
/// none when no bundle was ever applied; an error when its catalog is missing (the daemon
/// then starts on the shipped catalog and says why).
pub fn in_force(state_dir: &Path) -> Result<Option<InForce>> {
    let Some(version) = version_in_force(state_dir)? else {
        return Ok(None);
    };
    let catalog = bundles(state_dir).join(version.to_string()).join("catalog");
    if !catalog.is_dir() {
        return Err(Error::Config {
            path: version_file(state_dir),
            line: 1,
            message: format!(
                "bundle {version} is in force but {} is missing",
                catalog.display()
            ),
        });
    }
    Ok(Some(InForce { version, catalog }))
}

/// Polls `source` at once and then every `interval` until `stop` turns true (the daemon's
/// one shutdown signal), each poll on a blocking thread; `on_result` sees every poll's
/// result there (the daemon records it in the store and its metrics). A poll under way
/// when the signal comes is finished first (it is bounded by `source.timeout`).
pub async fn run<F>(
    source: Source,
    keys: Vec<PublicKey>,
    state_dir: PathBuf,
    live: Arc<Live>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    on_result: F,
) where
    F: FnMut(&Result<Outcome>) + Send + 'static,
{
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let shared = Arc::new((source, keys, state_dir, live));
    let mut on_result = Some(on_result);
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
            _ = tick.tick() => {}
        }
        let (shared, Some(mut f)) = (shared.clone(), on_result.take()) else {
            return;
        };
        let joined = tokio::task::spawn_blocking(move || {
            let (source, keys, state_dir, live) = &*shared;
            let r = poll_once(source, keys, state_dir, live);
            f(&r);
            f
        })
        .await;
        match joined {
            Ok(f) => on_result = Some(f),
            Err(e) => {
                tracing::error!(error = %e, "the bundle poll panicked; polling stops");
                return;
            }
        }
    }
}

/// Fetches the bundle at `source` and applies it as [`apply`] does.
pub fn poll_once(
    source: &Source,
    keys: &[PublicKey],
    state_dir: &Path,
    live: &Live,
) -> Result<Outcome> {
    // Every error, log line and chained-log row names the bundle by this.
    let shown = redact_url(&source.url);
    let fetched = agent(source).and_then(|agent| {
        let bundle = fetch(&agent, &source.url)?;
        let signature = fetch(&agent, &signature_url(&source.url))?;
        Ok((bundle, signature))
    });
    let (bundle, signature) = match fetched {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(bundle = %shown, error = %e,
                "cannot fetch the rule bundle; the rules in force stay");
            return Err(e);
        }
    };
    // A signature that is not text fails to parse as one: a refusal like any other.
    let signature = String::from_utf8_lossy(&signature);
    apply(&shown, &bundle, &signature, keys, state_dir, live)
}

/// Verifies `bundle` (named `name`) against `signature` and `keys`, refuses it if older
/// than the bundle in force, else unpacks it into `state_dir` and puts it in force. Every
/// refusal leaves the rules in force and is logged.
pub fn apply(
    name: &str,
    bundle: &[u8],
    signature: &str,
    keys: &[PublicKey],
    state_dir: &Path,
    live: &Live,
) -> Result<Outcome> {
    let result = check_and_swap(name, bundle, signature, keys, state_dir, live);
    match &result {
        Ok(Outcome::Applied(a)) => {
            tracing::info!(bundle = name, version = a.version, previous = ?a.previous,
                key = %a.key_id, services = a.services, patterns = a.patterns,
                "rule bundle applied");
        }
        Ok(Outcome::Current { version }) => {
            tracing::debug!(bundle = name, version, "rule bundle already in force");
        }
        Err(e) => {
            tracing::error!(bundle = name, error = %e,
                "rule bundle refused; the rules in force stay");
        }
    }
    result
}

fn check_and_swap(
    name: &str,
    bundle: &[u8],
    signature: &str,
    keys: &[PublicKey],
    state_dir: &Path,
    live: &Live,
) -> Result<Outcome> {
    let verified = bundle::verify(name, bundle, signature, keys)?;
    // A version file that cannot be read must not let an old bundle in: refuse.
    let previous = version_in_force(state_dir)?;
    let version = verified.version();
    if verified.against(name, previous)? == Freshness::Current {
        return Ok(Outcome::Current { version });
    }
    let dir = unpack(state_dir, &verified, signature)?;
    let catalog = dir.join("catalog");
    let reload = match live.swap_catalog(catalog.clone()) {
        Ok(r) => r,
        Err(e) => {
            // The site's own files do not load with this catalog: keep what is in force.
            let _ = std::fs::remove_dir_all(&dir);
            return Err(Error::BundleRules {
                bundle: name.to_string(),
                version,
                source: Box::new(e),
            });
        }
    };
    for w in &reload.warnings {
        tracing::warn!(%w, bundle = name, "rules");
    }
    write_version(state_dir, version)?;
    prune(state_dir, version, previous);
    Ok(Outcome::Applied(Applied {
        version,
        previous,
        key_id: verified.key_id,
        services: reload.services,
        patterns: reload.patterns,
        catalog,
    }))
}

/// Writes the bundle's files under `bundles/.tmp-<version>-<pid>` and renames it to
/// `bundles/<version>`, replacing a leftover of an earlier attempt (never the bundle in
/// force: its version is lower).
fn unpack(state_dir: &Path, v: &Verified, signature: &str) -> Result<PathBuf> {
    let root = bundles(state_dir);
    let tmp = root.join(format!(".tmp-{}-{}", v.version(), std::process::id()));
    let dir = root.join(v.version().to_string());
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.join("catalog")).map_err(io_err(&tmp))?;
    let manifest = toml::to_string(&v.manifest).map_err(|e| Error::BundleMalformed {
        bundle: dir.display().to_string(),
        message: format!("manifest: {e}"),
    })?;
    let mut files: Vec<(PathBuf, &[u8])> = vec![
        (tmp.join(MANIFEST), manifest.as_bytes()),
        (tmp.join("bundle.minisig"), signature.as_bytes()),
    ];
    // Paths were checked by `verify`: `catalog/NAME.toml` only.
    files.extend(v.files.iter().map(|(p, t)| (tmp.join(p), t.as_bytes())));
    for (path, bytes) in files {
        write_synced(&path, bytes)?;
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
    }
    std::fs::rename(&tmp, &dir).map_err(io_err(&dir))?;
    Ok(dir)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// Records `version` as in force: a temporary file renamed over the old one.
fn write_version(state_dir: &Path, version: u64) -> Result<()> {
    let path = version_file(state_dir);
    let tmp = path.with_extension("tmp");
    write_synced(&tmp, format!("{version}\n").as_bytes())?;
    std::fs::rename(&tmp, &path).map_err(io_err(&path))
}

/// Removes every bundle directory but `keep` and `previous`, and leftover temporaries.
fn prune(state_dir: &Path, keep: u64, previous: Option<u64>) {
    let Ok(entries) = std::fs::read_dir(bundles(state_dir)) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let stale = match name.parse::<u64>() {
            Ok(v) => v != keep && Some(v) != previous,
            Err(_) => name.starts_with(".tmp-"),
        };
        if stale {
            if let Err(err) = std::fs::remove_dir_all(e.path()) {
                tracing::warn!(path = %e.path().display(), error = %err, "cannot remove an old bundle");
            }
        }
    }
}

/// The chained-log event for a poll's result: `bundle_applied` or `bundle_refused` and
/// its detail; none when nothing changed or the bundle could not be fetched (not a
/// bundle refused: the next poll tries again).
pub fn event_of(result: &Result<Outcome>) -> Option<(&'static str, String)> {
    match result {
        Ok(Outcome::Applied(a)) => Some((
            "bundle_applied",
            format!(
                "version {}, signed by {}: {} services (was {})",
                a.version,
                a.key_id,
                a.services,
                a.previous.map_or_else(
                    || "the shipped catalog".to_string(),
                    |v| format!("version {v}")
                )
            ),
        )),
        Ok(Outcome::Current { .. }) | Err(Error::BundleFetch { .. }) => None,
        Err(e) => Some(("bundle_refused", e.to_string())),
    }
}

/// An HTTPS-only client checking the server's certificate.
fn agent(source: &Source) -> Result<ureq::Agent> {
    let fail = |message: String| Error::BundleFetch {
        url: redact_url(&source.url),
        message,
    };
    if !source.url.starts_with("https://") {
        return Err(fail("only https urls are fetched".into()));
    }
    https_agent(source.ca_file.as_deref(), source.timeout).map_err(fail)
}

/// An HTTPS-only client on ring that checks the server's certificate against `ca_file` or
/// the system's bundle, `timeout` for each request whole, at most 3 redirects.
pub fn https_agent(
    ca_file: Option<&std::path::Path>,
    timeout: std::time::Duration,
) -> std::result::Result<ureq::Agent, String> {
    let certs: Vec<_> = crate::tls::roots(ca_file)?
        .iter()
        .map(|der| ureq::tls::Certificate::from_der(der).to_owned())
        .collect();
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
        .build();
    Ok(ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .https_only(true)
        .max_redirects(3)
        .user_agent(concat!("aiwarden/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls)
        .build()
        .new_agent())
}

/// GETs `url` whole, at most [`MAX_BUNDLE_BYTES`]. Errors name it redacted, also where
/// the HTTP client's own message quotes it.
fn fetch(agent: &ureq::Agent, url: &str) -> Result<Vec<u8>> {
    let shown = redact_url(url);
    let fail = |message: String| Error::BundleFetch {
        message: message.replace(url, &shown),
        url: shown.clone(),
    };
    let mut response = agent.get(url).call().map_err(|e| fail(chain(&e)))?;
    response
        .body_mut()
        .with_config()
        .limit(MAX_BUNDLE_BYTES)
        .read_to_vec()
        .map_err(|e| fail(chain(&e)))
}

/// An error and its causes, on one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_a_url_are_redacted_and_the_rest_kept() {
        for (url, shown) in [
            (
                "https://rules.msp.example/aiwarden/rules.bundle",
                "https://rules.msp.example/aiwarden/rules.bundle",
            ),
            (
                "https://127.0.0.1:8443/rules.bundle",
                "https://127.0.0.1:8443/rules.bundle",
            ),
            (
                "https://bucket.s3.example/rules.bundle?X-Amz-Credential=AKIA%2F&X-Amz-Signature=abc",
                "https://bucket.s3.example/rules.bundle?***",
            ),
            (
                "https://msp:s3cret@rules.msp.example:8443/r/rules.bundle?token=t#frag",
                "https://***@rules.msp.example:8443/r/rules.bundle?***",
            ),
            (
                "https://user@[fd00::1]:443/b#key=x",
                "https://***@[fd00::1]:443/b#***",
            ),
            // An @ in the query is not userinfo; a host with no path keeps none.
            ("https://h.example?u=a@b", "https://h.example?***"),
            ("https://h.example", "https://h.example"),
            ("rules.bundle?sig=1", "rules.bundle?***"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn the_signature_is_beside_the_bundle_before_its_query() {
        assert_eq!(
            signature_url("https://h.example/r/rules.bundle"),
            "https://h.example/r/rules.bundle.minisig"
        );
        assert_eq!(
            signature_url("https://h.example/rules.bundle?token=T#f"),
            "https://h.example/rules.bundle.minisig?token=T#f"
        );
    }

    #[test]
    fn a_fetch_error_and_the_debug_form_name_the_url_redacted() {
        let source = Source {
            url: "http://msp:pw@h.example/rules.bundle?token=sekrit".into(),
            ca_file: None,
            timeout: Duration::from_secs(1),
        };
        let e = agent(&source).expect_err("not https");
        let said = e.to_string();
        assert_eq!(
            said,
            "bundle http://***@h.example/rules.bundle?***: cannot fetch: only https urls are fetched"
        );
        let debug = format!("{source:?}");
        assert!(
            !debug.contains("sekrit") && !debug.contains("pw@"),
            "{debug}"
        );
    }
}
