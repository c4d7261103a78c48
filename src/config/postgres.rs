//! `[fleet.postgres]`: the MSP's PostgreSQL server the daemon copies its chained rows,
//! activity, daily usage and health to (see `crate::fleet::rollup` and docs/fleet.md).
//! Absent: nothing is copied. The connection always uses TLS and checks the server's
//! certificate; the password, if any, sits in a file of its own (mode 0600), never here.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A configured central PostgreSQL, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Postgres {
    /// A libpq connection string or `postgresql://` URL without a password (`host`, `port`,
    /// `dbname`, `user`).
    pub url: String,
    /// A file holding the password alone (mode 0600); `None`: a client certificate or the
    /// server's trust.
    pub password_file: Option<PathBuf>,
    /// CA certificates (PEM) the server is checked against; `None`: the system's bundle.
    pub ca_file: Option<PathBuf>,
    /// A client certificate chain (PEM), with `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// The client certificate's key (PEM).
    pub client_key_file: Option<PathBuf>,
    /// Seconds between pushes.
    pub interval_secs: u64,
    /// Rows per transaction.
    pub batch: u32,
    /// Connect and statement timeout, seconds.
    pub timeout_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPostgres {
    url: toml::Spanned<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    client_cert_file: Option<PathBuf>,
    client_key_file: Option<PathBuf>,
    interval_secs: Option<toml::Spanned<u64>>,
    batch: Option<toml::Spanned<u64>>,
    timeout_secs: Option<toml::Spanned<u64>>,
}

/// `[fleet.postgres]` validated; `err(offset, message)` names the line; relative paths are
/// resolved by `rel`.
pub(super) fn build(
    raw: Option<RawPostgres>,
    rel: impl Fn(PathBuf) -> PathBuf,
    err: impl Fn(usize, String) -> crate::Error,
) -> crate::Result<Option<Postgres>> {
    let Some(p) = raw else {
        return Ok(None);
    };
    let url = p.url.get_ref().trim();
    if let Err(e) = url.parse::<tokio_postgres::Config>() {
        return Err(err(p.url.span().start, format!("fleet.postgres.url: {e}")));
    }
    if let Ok(c) = url.parse::<tokio_postgres::Config>() {
        if c.get_password().is_some() {
            return Err(err(
                p.url.span().start,
                "fleet.postgres.url holds a password: put it in password_file (mode 0600)".into(),
            ));
        }
        if c.get_hosts().is_empty() {
            return Err(err(
                p.url.span().start,
                "fleet.postgres.url names no host".into(),
            ));
        }
    }
    if p.client_cert_file.is_some() != p.client_key_file.is_some() {
        return Err(err(
            p.url.span().start,
            "fleet.postgres: client_cert_file and client_key_file go together".into(),
        ));
    }
    let ranged = |v: Option<toml::Spanned<u64>>, key: &str, d: u64, max: u64| match v {
        None => Ok(d),
        Some(v) if (1..=max).contains(v.get_ref()) => Ok(*v.get_ref()),
        Some(v) => Err(err(
            v.span().start,
            format!("fleet.postgres.{key} must be 1 to {max}"),
        )),
    };
    Ok(Some(Postgres {
        url: url.to_string(),
        password_file: p.password_file.map(&rel),
        ca_file: p.ca_file.map(&rel),
        client_cert_file: p.client_cert_file.map(&rel),
        client_key_file: p.client_key_file.map(&rel),
        interval_secs: ranged(p.interval_secs, "interval_secs", 300, 86_400)?,
        batch: ranged(p.batch, "batch", 5_000, u64::from(crate::store::MAX_EXPORT))? as u32,
        timeout_secs: ranged(p.timeout_secs, "timeout_secs", 30, 3_600)?,
    }))
}

/// The password in `path`: its first line; refused when others can read the file.
pub fn read_password(path: &Path) -> std::result::Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{}: mode {:o}: a password file must be 0600 (chmod 600)",
            path.display(),
            meta.permissions().mode() & 0o777
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let pw = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if pw.is_empty() {
        return Err(format!("{}: empty", path.display()));
    }
    Ok(pw.to_string())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn parse(text: &str) -> crate::Result<Config> {
        Config::parse(Path::new("/etc/aiwarden/aiwarden.toml"), text)
    }

    #[test]
    fn parses_defaults_and_refuses_with_the_line() {
        assert_eq!(parse("").expect("empty").fleet_postgres, None);
        let c = parse(
            "[fleet.postgres]\nurl = \"host=db.msp.example port=5433 dbname=fleet user=box\"\n\
             password_file = \"pg.pass\"\n",
        )
        .expect("parses");
        let p = c.fleet_postgres.expect("set");
        assert_eq!(p.interval_secs, 300);
        assert_eq!(p.batch, 5_000);
        assert_eq!(
            p.password_file.as_deref(),
            Some(Path::new("/etc/aiwarden/pg.pass"))
        );
        for (text, says) in [
            (
                "[fleet.postgres]\nurl = \"postgresql://box:secret@db/fleet\"\n",
                "aiwarden.toml:2: fleet.postgres.url holds a password",
            ),
            (
                "[fleet.postgres]\nurl = \"host=db port=x\"\n",
                "aiwarden.toml:2: fleet.postgres.url:",
            ),
            (
                "[fleet.postgres]\nurl = \"host=db\"\nbatch = 0\n",
                "aiwarden.toml:3: fleet.postgres.batch must be 1 to",
            ),
            (
                "[fleet.postgres]\nurl = \"host=db\"\nclient_cert_file = \"c.pem\"\n",
                "client_cert_file and client_key_file go together",
            ),
        ] {
            let e = parse(text).expect_err(text).to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn a_password_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret\nignored\n").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = super::read_password(&f).expect_err("0644");
        assert!(e.contains("must be 0600"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(super::read_password(&f).as_deref(), Ok("s3cret"));
    }
}
