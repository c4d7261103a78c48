//! The console's TLS: the certificate the admin supplies (`cert_file`, `key_file`), or one
//! generated with rcgen at first start into the state directory (`console-cert.pem`,
//! `console-key.pem` mode 0600) and reused after, so a browser's stored exception keeps
//! holding. rustls with the ring provider; HTTP/1.1 only.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::{Error, Result};

/// The generated certificate's file in the state directory.
pub const CERT_FILE: &str = "console-cert.pem";
/// The generated key's file in the state directory.
pub const KEY_FILE: &str = "console-key.pem";

/// Where the certificate in use came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The admin's files.
    Supplied(PathBuf),
    /// Generated now, at this path.
    Generated(PathBuf),
    /// Generated at an earlier start, reused.
    Reused(PathBuf),
}

/// The rustls server configuration for `cert`/`key`, or for the self-signed certificate in
/// `state_dir` (made when missing, naming `listen`'s address, `localhost` and this host).
pub(super) fn server_config(
    cert: Option<&Path>,
    key: Option<&Path>,
    state_dir: &Path,
    listen: SocketAddr,
) -> Result<(Arc<rustls::ServerConfig>, Source)> {
    let (cert_path, key_path, source) = match (cert, key) {
        (Some(c), Some(k)) => (
            c.to_path_buf(),
            k.to_path_buf(),
            Source::Supplied(c.to_path_buf()),
        ),
        _ => {
            let c = state_dir.join(CERT_FILE);
            let k = state_dir.join(KEY_FILE);
            if c.exists() && k.exists() {
                (c.clone(), k, Source::Reused(c))
            } else {
                generate(&c, &k, listen)?;
                (c.clone(), k, Source::Generated(c))
            }
        }
    };
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|i| i.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::Console(format!("{}: {e}", cert_path.display())))?;
    if certs.is_empty() {
        return Err(Error::Console(format!(
            "{}: no certificate in it",
            cert_path.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| Error::Console(format!("{}: {e}", key_path.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Console(format!("tls: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            Error::Console(format!(
                "{} and {}: {e}",
                cert_path.display(),
                key_path.display()
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), source))
}

/// Makes a self-signed certificate for `listen`'s address (unless it is a wildcard),
/// `localhost`, `127.0.0.1` and this host's name, writing the key 0600 before anything is
/// in it.
fn generate(cert: &Path, key: &Path, listen: SocketAddr) -> Result<()> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if !listen.ip().is_unspecified() && !listen.ip().is_loopback() {
        names.push(listen.ip().to_string());
    }
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim();
        if !h.is_empty() && h != "localhost" {
            names.push(h.to_string());
        }
    }
    let made = rcgen::generate_simple_self_signed(names)
        .map_err(|e| Error::Console(format!("cannot make a certificate: {e}")))?;
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e: std::io::Error| Error::Console(format!("cannot write {}: {e}", p.display()))
    };
    if let Some(dir) = key.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    // The key first, created 0600 whatever the umask; the certificate names it.
    let tmp = key.with_extension("pem.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(made.signing_key.serialize_pem().as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, key).map_err(io(key))?;
    std::fs::write(cert, made.cert.pem()).map_err(io(cert))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_certificate_is_made_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let listen: SocketAddr = "127.0.0.1:8443".parse().expect("addr");
        let (_, first) = server_config(None, None, dir.path(), listen).expect("generated");
        assert_eq!(first, Source::Generated(dir.path().join(CERT_FILE)));
        let key = dir.path().join(KEY_FILE);
        let mode = std::fs::metadata(&key).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let pem = std::fs::read(dir.path().join(CERT_FILE)).expect("cert");
        let (_, again) = server_config(None, None, dir.path(), listen).expect("reused");
        assert_eq!(again, Source::Reused(dir.path().join(CERT_FILE)));
        assert_eq!(
            std::fs::read(dir.path().join(CERT_FILE)).expect("cert"),
            pem
        );
        // Supplied files are used as they are; a broken one is named.
        let (_, s) = server_config(
            Some(&dir.path().join(CERT_FILE)),
            Some(&key),
            Path::new("/nonexistent"),
            listen,
        )
        .expect("supplied");
        assert!(matches!(s, Source::Supplied(_)));
        std::fs::write(dir.path().join("bad.pem"), "not pem").expect("write");
        let e = server_config(
            Some(&dir.path().join("bad.pem")),
            Some(&key),
            dir.path(),
            listen,
        )
        .expect_err("bad cert");
        assert!(e.to_string().contains("bad.pem"), "{e}");
    }
}
