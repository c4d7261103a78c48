//! The report to a webhook: its JSON POSTed with ureq (rustls on ring, the system's CAs or
//! `ca_file`, no proxy, no redirects). Connection failures, timeouts, 5xx and 429 are
//! retried; any other answer outside 2xx is final, since the same request would get it
//! again. Only the URL's scheme, host and port are ever logged.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use super::{
    certificate_refused, chain, given_up, read_secret, roots, with_retries, Channel, Failure,
    Outgoing, Sent,
};
use crate::config::{Retry, Webhook};

/// POSTs `out.json` until it is taken or `retry` gives up.
pub(super) fn send(cfg: &Webhook, retry: &Retry, out: &Outgoing) -> Sent {
    let to = cfg.target();
    let prepared = prepare(cfg, out);
    let (agent, token, body) = match prepared {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(channel = "webhook", to, error = %e, "report not delivered");
            return given_up(Channel::Webhook, &to, 0, e);
        }
    };
    with_retries(Channel::Webhook, &to, retry, || {
        let mut request = agent
            .post(&cfg.url)
            .header("content-type", "application/json");
        if let Some(t) = &token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        let mut response = request.send(&body[..]).map_err(|e| {
            // ureq's error names no source: look inside it by hand.
            let refused = match &e {
                ureq::Error::Io(io) => certificate_refused(io),
                ureq::Error::Rustls(r) => certificate_refused(r),
                _ => false,
            };
            if refused {
                Failure::permanent(chain(&e))
            } else {
                Failure::transient(chain(&e))
            }
        })?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let message = format!("http {status}{}", excerpt(response.body_mut().as_reader()));
        if status >= 500 || status == 429 {
            Err(Failure::transient(message))
        } else {
            Err(Failure::permanent(message))
        }
    })
}

type Prepared = (ureq::Agent, Option<String>, Vec<u8>);

/// The client, the token (read now) and the body.
fn prepare(cfg: &Webhook, out: &Outgoing) -> Result<Prepared, String> {
    let token = cfg
        .bearer_token_file
        .as_deref()
        .map(|f| read_secret(f, "bearer_token_file"))
        .transpose()?;
    let body = serde_json::to_vec(&out.json).map_err(|e| format!("json: {e}"))?;
    let mut tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()));
    // Roots only for https: a plain-http hook on the LAN works without a CA bundle.
    if cfg.url.starts_with("https:") {
        let certs: Vec<_> = roots(cfg.ca_file.as_deref())?
            .iter()
            .map(|der| ureq::tls::Certificate::from_der(der).to_owned())
            .collect();
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
    }
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(cfg.timeout_secs)))
        .http_status_as_error(false)
        // A redirect is an answer to read, not to follow with the token and the report.
        .max_redirects(0)
        .max_redirects_will_error(false)
        .proxy(None)
        .user_agent(concat!("aiwarden/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls.build())
        .build()
        .new_agent();
    Ok((agent, token, body))
}

/// The start of an error answer's body, printable, for the log: `: text` or nothing.
fn excerpt(body: impl Read) -> String {
    let mut bytes = Vec::new();
    if body.take(300).read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    let text: String = String::from_utf8_lossy(&bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}
