//! TLS client pieces every shell that dials out shares (report delivery, DNS upstreams,
//! the fleet's bundle updater and syslog sender): the roots a server's certificate is
//! checked against, whether a failure is rustls refusing a certificate, and an error's
//! causes on one line.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// The CA certificates a server's certificate is checked against: `ca_file`, else the
/// system's bundle. Certificates rustls cannot use as a root are skipped, as in a system
/// bundle; a file with none is an error.
pub fn roots(ca_file: Option<&Path>) -> Result<Vec<CertificateDer<'static>>, String> {
    let path = ca_file.unwrap_or(Path::new(crate::paths::CA_CERTIFICATES));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read CA certificates {}: {e}", path.display()))?;
    let usable: Vec<_> = certs
        .flatten()
        .filter(|c| rustls::RootCertStore::empty().add(c.clone()).is_ok())
        .collect();
    if usable.is_empty() {
        return Err(format!("no CA certificates in {}", path.display()));
    }
    Ok(usable)
}

/// [`roots`] as a rustls root store.
pub fn root_store(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, String> {
    let mut store = rustls::RootCertStore::empty();
    for c in roots(ca_file)? {
        // Every one was added to an empty store above.
        let _ = store.add(c);
    }
    Ok(store)
}

/// A client configuration on ring: roots from `ca_file` or the system bundle, and the
/// client certificate chain and key (PEM files) when `client` names them.
pub fn client_config(
    ca_file: Option<&Path>,
    client: Option<(&Path, &Path)>,
) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::PrivateKeyDer;
    let roots = root_store(ca_file)?;
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("tls: {e}"))?
    .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read client certificate {}: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("cannot read client key {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate {}: {e}", cert.display()))?
        }
    };
    Ok(std::sync::Arc::new(config))
}

/// Whether the first rustls error in `e` or its causes is one `refused` names. An
/// `io::Error` shows its inner error's text but skips it as a source, so the inner error is
/// searched too.
pub fn rustls_refused(
    e: &(dyn std::error::Error + 'static),
    refused: &dyn Fn(&rustls::Error) -> bool,
) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return refused(r);
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            if rustls_refused(inner, refused) {
                return true;
            }
        }
        next = e.source();
    }
    false
}

/// An error and its causes on one line (`a: b: c`), skipping a cause the text already
/// ends with.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.ends_with(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    text
}
