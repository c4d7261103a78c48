//! Shell: sends a report that is already rendered, by email (SMTP, `email.rs`) and to a
//! webhook (a JSON POST, `webhook.rs`), each channel on its own and each retried with the
//! waits of `[report.retry]`. It only sends: what a report says is `crate::report`'s.
//!
//! Blocking on purpose: it runs in the one-shot `aiwarden report --deliver` process that
//! the weekly timer starts, never in the daemon, so a slow or dead mail server can never
//! hold up detection or DNS.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use crate::config::{Delivery, Retry};
use crate::error::Error;
use crate::tls::{error_chain as chain, roots};

mod email;
mod webhook;

/// A rendered report, ready to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// What the email's subject says after the configured prefix.
    pub subject: String,
    /// The HTML body. Charts are `<img src="cid:NAME">` naming one of `images`: mail
    /// clients drop inline SVG.
    pub html: String,
    /// The plain-text body, for clients that show no HTML.
    pub text: String,
    /// The PDF attached to the email: file name and bytes.
    pub pdf: Option<(String, Vec<u8>)>,
    /// Images the HTML refers to by Content-ID.
    pub images: Vec<Inline>,
    /// What the webhook receives.
    pub json: serde_json::Value,
}

/// An image sent inside the email, shown where the HTML says `cid:` + [`Inline::cid`].
#[derive(Debug, Clone)]
pub struct Inline {
    /// The Content-ID, without angle brackets: letters, digits and `.`, `_`, `-`, `@`.
    pub cid: String,
    /// The PNG's bytes.
    pub png: Vec<u8>,
}

/// A way a report is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// `[report.email]`.
    Email,
    /// `[report.webhook]`.
    Webhook,
}

impl Channel {
    /// `email` or `webhook`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
        }
    }
}

/// How one channel fared.
#[derive(Debug)]
pub struct Sent {
    /// Which channel.
    pub channel: Channel,
    /// Attempts made: 0 when nothing could be tried (a secret file missing or readable by
    /// others, a CA file that does not load).
    pub attempts: u32,
    /// Delivered, or why not ([`Error::Deliver`]).
    pub result: Result<(), Error>,
}

impl Sent {
    /// Whether the report arrived.
    pub fn ok(&self) -> bool {
        self.result.is_ok()
    }
}

/// Sends `out` on every channel `cfg` configures (none: an empty list), the channels side by
/// side so a mail server that keeps failing does not hold up the webhook. Returns when
/// each has delivered or given up; failures are logged as they happen.
pub fn send(cfg: &Delivery, out: &Outgoing) -> Vec<Sent> {
    std::thread::scope(|scope| {
        let email = cfg.email.as_ref().map(|e| {
            std::thread::Builder::new()
                .name("deliver-email".into())
                .spawn_scoped(scope, move || email::send(e, &cfg.retry, out))
                .map_err(|_| e)
        });
        let webhook = cfg
            .webhook
            .as_ref()
            .map(|w| webhook::send(w, &cfg.retry, out));
        let email = email.map(|spawned| match spawned {
            Ok(handle) => handle.join().unwrap_or_else(|_| {
                given_up(
                    Channel::Email,
                    "smtp",
                    0,
                    "the sending thread panicked".into(),
                )
            }),
            // No thread to be had: send in turn instead.
            Err(e) => email::send(e, &cfg.retry, out),
        });
        email.into_iter().chain(webhook).collect()
    })
}

/// Why one attempt failed, and whether another could go better.
#[derive(Debug)]
struct Failure {
    message: String,
    retry: bool,
}

impl Failure {
    /// A failure another attempt could mend (a refused connection, a timeout, a 5xx).
    fn transient(message: String) -> Failure {
        Failure {
            message,
            retry: true,
        }
    }

    /// A failure the same attempt would meet again (a 4xx, a permanent refusal).
    fn permanent(message: String) -> Failure {
        Failure {
            message,
            retry: false,
        }
    }
}

/// Runs `once` until it succeeds, fails for good, or `retry.attempts` are used, waiting
/// `retry`'s delays in between; logs every failure.
fn with_retries(
    channel: Channel,
    to: &str,
    retry: &Retry,
    mut once: impl FnMut() -> Result<(), Failure>,
) -> Sent {
    let mut n = 0;
    loop {
        n += 1;
        let started = Instant::now();
        let failure = match once() {
            Ok(()) => {
                tracing::info!(
                    channel = channel.as_str(),
                    to,
                    attempt = n,
                    ms = started.elapsed().as_millis() as u64,
                    "report delivered"
                );
                return Sent {
                    channel,
                    attempts: n,
                    result: Ok(()),
                };
            }
            Err(f) => f,
        };
        if !failure.retry || n >= retry.attempts {
            tracing::error!(
                channel = channel.as_str(),
                to,
                attempt = n,
                attempts = retry.attempts,
                retryable = failure.retry,
                error = %failure.message,
                "report not delivered"
            );
            let message = if n > 1 {
                format!("{} (after {n} attempts)", failure.message)
            } else {
                failure.message
            };
            return given_up(channel, to, n, message);
        }
        let wait = retry.delay_after(n);
        tracing::warn!(
            channel = channel.as_str(),
            to,
            attempt = n,
            attempts = retry.attempts,
            wait_ms = wait.as_millis() as u64,
            error = %failure.message,
            "report delivery failed; retrying"
        );
        std::thread::sleep(wait);
    }
}

/// A channel that gave up (or could not start) after `attempts`.
fn given_up(channel: Channel, to: &str, attempts: u32, message: String) -> Sent {
    Sent {
        channel,
        attempts,
        result: Err(Error::Deliver {
            channel: channel.as_str(),
            to: to.to_string(),
            message,
        }),
    }
}

/// The first line of a secret file (a password, a token), read now so the secret is not in
/// the config file nor in the process longer than a delivery. Refused when others may
/// read or write the file.
fn read_secret(path: &Path, what: &str) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let name = path.display();
    let mut file = std::fs::File::open(path).map_err(|e| format!("{what} {name}: {e}"))?;
    let mode = file
        .metadata()
        .map_err(|e| format!("{what} {name}: {e}"))?
        .permissions()
        .mode();
    if mode & 0o006 != 0 {
        return Err(format!(
            "{what} {name} is open to other users (mode {:03o}); chmod o-rw it",
            mode & 0o777
        ));
    }
    let mut text = String::new();
    // A secret is a line; a huge file is a mistake, not a password.
    file.by_ref()
        .take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|e| format!("{what} {name}: {e}"))?;
    let secret = text.lines().next().unwrap_or("").to_string();
    if secret.is_empty() {
        return Err(format!("{what} {name} is empty"));
    }
    Ok(secret)
}

/// Whether `e` (or a cause) is rustls refusing the server's certificate: another attempt
/// would meet the same certificate, so it is not retried.
fn certificate_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    crate::tls::rustls_refused(e, &|r| {
        matches!(
            r,
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    #[test]
    fn secrets_are_the_first_line_of_a_private_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("secret");
        let write = |text: &str, mode: u32| {
            std::fs::write(&p, text).expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        };
        write(" two words \nsecond line\n", 0o600);
        assert_eq!(
            read_secret(&p, "password_file").as_deref(),
            Ok(" two words ")
        );
        write("crlf\r\n", 0o640);
        assert_eq!(
            read_secret(&p, "password_file").as_deref(),
            Ok("crlf"),
            "group may read"
        );
        for mode in [0o604, 0o602, 0o644, 0o666] {
            write("pw\n", mode);
            let e = read_secret(&p, "password_file").expect_err("open to others");
            assert!(e.contains("is open to other users"), "{mode:o}: {e}");
        }
        write("\n", 0o600);
        let e = read_secret(&p, "bearer_token_file").expect_err("empty");
        assert!(
            e.starts_with("bearer_token_file ") && e.ends_with(" is empty"),
            "{e}"
        );
    }

    #[test]
    fn retries_stop_at_success_at_a_final_failure_or_at_the_limit() {
        let retry = Retry {
            attempts: 4,
            delays: vec![Duration::from_millis(1)],
        };
        let mut calls = 0;
        let sent = with_retries(Channel::Webhook, "t", &retry, || {
            calls += 1;
            if calls < 3 {
                Err(Failure::transient("503".into()))
            } else {
                Ok(())
            }
        });
        assert!(sent.ok());
        assert_eq!((sent.attempts, calls), (3, 3));

        let mut calls = 0;
        let sent = with_retries(Channel::Email, "t", &retry, || {
            calls += 1;
            Err(Failure::permanent("550 no".into()))
        });
        assert_eq!((sent.attempts, calls), (1, 1));
        assert_eq!(
            sent.result.expect_err("failed").to_string(),
            "deliver email to t: 550 no"
        );

        let sent = with_retries(Channel::Email, "t", &retry, || {
            Err(Failure::transient("timed out".into()))
        });
        assert_eq!(sent.attempts, 4);
        assert_eq!(
            sent.result.expect_err("failed").to_string(),
            "deliver email to t: timed out (after 4 attempts)"
        );
    }
}
