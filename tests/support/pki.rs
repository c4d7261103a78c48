//! A private CA made with rcgen for the delivery tests, and a server certificate it signs
//! for 127.0.0.1 and `localhost`: the client trusts the CA through `ca_file`, as an admin
//! with an in-house relay would.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA, its PEM file, and a server TLS configuration with a certificate it signed.
pub(crate) struct Pki {
    /// The CA certificate, PEM, written to disk for `ca_file`.
    pub ca_file: PathBuf,
    /// A rustls server configuration presenting the signed certificate.
    pub server: Arc<rustls::ServerConfig>,
}

/// A certificate for `names` (DNS names and IP addresses), signed by a CA named `ca_name`,
/// the CA's PEM written under `dir`.
pub(crate) fn pki(dir: &Path, ca_name: &str, names: &[&str]) -> Pki {
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().expect("key");
    let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("params");
    leaf.distinguished_name.push(
        DnType::CommonName,
        names.first().copied().unwrap_or("server"),
    );
    for n in names {
        leaf.subject_alt_names.push(match n.parse() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName((*n).try_into().expect("dns name")),
        });
    }
    let cert = leaf.signed_by(&key, &issuer).expect("signed");

    let ca_file = dir.join(format!("{ca_name}.pem"));
    std::fs::write(&ca_file, ca_cert.pem()).expect("write ca");
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(cert.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .expect("server config");
    Pki {
        ca_file,
        server: Arc::new(server),
    }
}
