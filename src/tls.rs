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
