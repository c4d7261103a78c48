//! The report by email: the message built ([`message`], no I/O) and sent over SMTP with
//! lettre on rustls. Encryption is what `tls` says, with no fallback: `starttls` fails
//! against a server that does not offer STARTTLS rather than log in in clear.
//!
//! The message: `multipart/mixed` [ `multipart/alternative` [ text, `multipart/related`
//! [ html, PNGs by Content-ID ] ], the PDF ].

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use super::{
    certificate_refused, chain, given_up, read_secret, roots, with_retries, Channel, Failure,
    Outgoing, Sent,
};
use crate::config::{Email, Retry, SmtpTls};

/// Builds the message, then tries the server until it takes it or `retry` gives up.
pub(super) fn send(cfg: &Email, retry: &Retry, out: &Outgoing) -> Sent {
    let to = cfg.target();
    let prepared = message(cfg, out).and_then(|m| Ok((m, transport(cfg)?)));
    let (message, transport) = match prepared {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(channel = "email", to, error = %e, "report not delivered");
            return given_up(Channel::Email, &to, 0, e);
        }
    };
    tracing::debug!(
        channel = "email",
        to,
        recipients = cfg.to.len(),
        bytes = message.formatted().len(),
        "sending report"
    );
    with_retries(Channel::Email, &to, retry, || {
        transport.send(&message).map(drop).map_err(|e| {
            let text = chain(&e);
            // 5xx: the server refuses this message or these credentials and will again;
            // a certificate that does not verify will not verify in a minute either.
            if e.is_permanent() || certificate_refused(&e) {
                Failure::permanent(text)
            } else {
                Failure::transient(text)
            }
        })
    })
}

/// The whole message for `out`, addressed as `cfg` says.
fn message(cfg: &Email, out: &Outgoing) -> Result<Message, String> {
    let png = ContentType::parse("image/png").map_err(|e| e.to_string())?;
    let pdf = ContentType::parse("application/pdf").map_err(|e| e.to_string())?;
    let html = SinglePart::html(out.html.clone());
    let body = if out.images.is_empty() {
        MultiPart::alternative()
            .singlepart(SinglePart::plain(out.text.clone()))
            .singlepart(html)
    } else {
        let mut related = MultiPart::related().singlepart(html);
        for image in &out.images {
            let ok = |c: char| c.is_ascii_alphanumeric() || ".-_@".contains(c);
            if image.cid.is_empty() || !image.cid.chars().all(ok) {
                return Err(format!(
                    "image content-id {:?}: only letters, digits and . - _ @",
                    image.cid
                ));
            }
            related = related.singlepart(
                Attachment::new_inline(image.cid.clone()).body(image.png.clone(), png.clone()),
            );
        }
        MultiPart::alternative()
            .singlepart(SinglePart::plain(out.text.clone()))
            .multipart(related)
    };
    let mut mixed = MultiPart::mixed().multipart(body);
    if let Some((name, bytes)) = &out.pdf {
        mixed = mixed.singlepart(Attachment::new(name.clone()).body(bytes.clone(), pdf));
    }
    let subject = format!("{} {}", cfg.subject, out.subject);
    let mut builder = Message::builder()
        .from(cfg.from.clone())
        .subject(subject.trim())
        .message_id(None);
    for to in &cfg.to {
        builder = builder.to(to.clone());
    }
    builder
        .multipart(mixed)
        .map_err(|e| format!("cannot build the message: {e}"))
}

/// The SMTP client: TLS as configured, verified against `ca_file` or the system's CAs,
/// logged in when a username is set (the password read now).
fn transport(cfg: &Email) -> Result<SmtpTransport, String> {
    let tls = match cfg.tls {
        SmtpTls::Off => Tls::None,
        SmtpTls::Starttls => Tls::Required(tls_parameters(cfg)?),
        SmtpTls::Implicit => Tls::Wrapper(tls_parameters(cfg)?),
    };
    let mut builder = SmtpTransport::builder_dangerous(&cfg.server)
        .port(cfg.port)
        .tls(tls)
        .timeout(Some(Duration::from_secs(cfg.timeout_secs)));
    if let (Some(user), Some(file)) = (&cfg.username, &cfg.password_file) {
        let password = read_secret(file, "password_file")?;
        builder = builder.credentials(Credentials::new(user.clone(), password));
    }
    Ok(builder.build())
}

fn tls_parameters(cfg: &Email) -> Result<TlsParameters, String> {
    let mut builder =
        TlsParameters::builder(cfg.server.clone()).certificate_store(CertificateStore::None);
    for der in roots(cfg.ca_file.as_deref())? {
        let cert = Certificate::from_der(der.to_vec()).map_err(|e| chain(&e))?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build_rustls().map_err(|e| chain(&e))
}
