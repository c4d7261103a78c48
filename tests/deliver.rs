//! Report delivery against real servers on 127.0.0.1 that the tests start: an SMTP server
//! (STARTTLS and TLS by rustls with a CA made here, AUTH PLAIN and LOGIN) and an HTTP(S)
//! webhook. The configuration is parsed from TOML as an admin writes it; the message the
//! server received is parsed back with mail-parser, part by part.

#[path = "support/hook.rs"]
mod hook;
#[path = "support/pki.rs"]
mod pki;
#[path = "support/smtp.rs"]
mod smtp;

#[path = "support/sample_store.rs"]
mod sample_store;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use aiwarden::config::{Config, Delivery};
use aiwarden::deliver::{send, Channel, Inline, Outgoing, Sent};
use mail_parser::{MessageParser, MessagePart, MimeHeaders};

use smtp::{Fail, Options};

/// Waits between attempts: short, so retries are quick, but real sleeps.
const RETRY: &str = "[report.retry]\nattempts = 3\ndelays_secs = [0.01, 0.02]\n";

fn delivery(dir: &Path, toml: &str) -> Delivery {
    let path = dir.join("aiwarden.toml");
    std::fs::write(&path, toml).expect("write config");
    Config::load(&path).expect("config").report.delivery
}

fn secret(dir: &Path, name: &str, text: &str, mode: u32) {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write secret");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A real PNG (stored deflate, CRC and Adler checksums), `size` pixels square of one colour.
fn png(size: u32, rgb: [u8; 3]) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    }
    // Each row: filter type 0, then the pixels.
    let row: Vec<u8> = std::iter::once(0)
        .chain(rgb.iter().copied().cycle().take(3 * size as usize))
        .collect();
    let raw = row.repeat(size as usize);
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &raw {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    let len = raw.len() as u16;
    let mut zlib = vec![0x78, 0x01, 1];
    zlib.extend_from_slice(&len.to_le_bytes());
    zlib.extend_from_slice(&(!len).to_le_bytes());
    zlib.extend_from_slice(&raw);
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = size.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&size.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn report() -> Outgoing {
    let mut pdf = b"%PDF-1.7\n".to_vec();
    // Every byte value, so a transfer encoding that mangles binary shows.
    pdf.extend((0..=255u8).cycle().take(3000));
    pdf.extend_from_slice(b"\n%%EOF\n");
    Outgoing {
        subject: "Shadow AI report 2026-W48".into(),
        html: concat!(
            "<html><body><h1>Week 2026-W48</h1>",
            "<p>Attempts: 42 (\u{2191} 5)</p>",
            "<img src=\"cid:services.png\" alt=\"by service\">",
            "<img src=\"cid:heat.png\" alt=\"by hour\">",
            "<p>.a line that starts with a dot</p></body></html>"
        )
        .into(),
        text: "Week 2026-W48\nAttempts: 42 (up 5)\n.a line that starts with a dot\n".into(),
        pdf: Some(("aiwarden-2026-W48.pdf".into(), pdf)),
        images: vec![
            Inline {
                cid: "services.png".into(),
                png: png(4, [200, 30, 30]),
            },
            Inline {
                cid: "heat.png".into(),
                png: png(6, [30, 30, 200]),
            },
        ],
        json: serde_json::json!({
            "period": {"week": "2026-W48"},
            "attempts": 42,
            "services": [{"name": "ChatGPT", "attempts": 30}, {"name": "Claude \"quoted\" <b>", "attempts": 12}],
            "note": "caf\u{e9} \u{1F600}"
        }),
    }
}

fn email_config(dir: &Path, server: &smtp::Server, ca_file: &Path, extra: &str) -> Delivery {
    secret(dir, "smtp-password", "p\u{e4}ss word:1\n", 0o600);
    delivery(
        dir,
        &format!(
            "[report.email]\nserver = \"127.0.0.1\"\nport = {}\nusername = \"reports@clinic.example\"\n\
             password_file = \"smtp-password\"\nfrom = \"aiwarden <reports@clinic.example>\"\n\
             to = [\"compliance@clinic.example\", \"Dr Ann Lee <ann@clinic.example>\"]\n\
             ca_file = \"{}\"\n{extra}\n{RETRY}",
            server.addr.port(),
            ca_file.display()
        ),
    )
}

fn only(sent: Vec<Sent>, channel: Channel) -> Sent {
    assert_eq!(sent.len(), 1, "{sent:?}");
    let s = sent.into_iter().next().expect("one");
    assert_eq!(s.channel, channel);
    s
}

fn kind(p: &MessagePart) -> String {
    p.content_type().map_or(String::new(), |c| {
        format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")).to_ascii_lowercase()
    })
}

fn children<'a>(m: &'a mail_parser::Message<'a>, p: &MessagePart) -> Vec<&'a MessagePart<'a>> {
    p.sub_parts()
        .unwrap_or(&[])
        .iter()
        .map(|&i| &m.parts[i as usize])
        .collect()
}

/// Checks the received message against what was sent: the MIME tree, the text, the HTML
/// with every `cid:` image present as a PNG, and the PDF byte for byte.
fn check_message(data: &[u8], out: &Outgoing) {
    let m = MessageParser::default()
        .parse(data)
        .expect("message parses");
    assert_eq!(m.subject(), Some("[aiwarden] Shadow AI report 2026-W48"));
    let to: Vec<_> = m
        .to()
        .expect("to")
        .iter()
        .filter_map(|a| a.address())
        .collect();
    assert_eq!(to, ["compliance@clinic.example", "ann@clinic.example"]);
    assert!(m.message_id().is_some_and(|id| !id.is_empty()));

    let root = m.root_part();
    assert_eq!(kind(root), "multipart/mixed");
    let mixed = children(&m, root);
    assert_eq!(mixed.len(), 2, "the body and the PDF");
    assert_eq!(kind(mixed[0]), "multipart/alternative");
    let alternative = children(&m, mixed[0]);
    assert_eq!(
        alternative.iter().map(|p| kind(p)).collect::<Vec<_>>(),
        ["text/plain", "multipart/related"]
    );
    // Text travels with CRLF line ends, as MIME wants.
    let text = alternative[0]
        .text_contents()
        .expect("text")
        .replace("\r\n", "\n");
    assert_eq!(text, out.text);
    let related = children(&m, alternative[1]);
    assert_eq!(kind(related[0]), "text/html");
    assert_eq!(related[0].text_contents(), Some(out.html.as_str()));

    // Every image the HTML names is a PNG part with that Content-ID and the bytes sent.
    let cids: Vec<&str> = out
        .html
        .split("src=\"cid:")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    assert_eq!(cids, ["services.png", "heat.png"]);
    for cid in cids {
        let part = related[1..]
            .iter()
            .find(|p| p.content_id().map(|c| c.trim_matches(['<', '>'])) == Some(cid))
            .unwrap_or_else(|| panic!("no part with content-id {cid}"));
        assert_eq!(kind(part), "image/png");
        assert!(
            part.contents().starts_with(b"\x89PNG\r\n\x1a\n"),
            "{cid}: png magic"
        );
        let sent = &out.images.iter().find(|i| i.cid == cid).expect("sent").png;
        assert_eq!(part.contents(), &sent[..], "{cid}: bytes");
    }
    assert_eq!(related.len(), 3);

    let pdf = mixed[1];
    assert_eq!(kind(pdf), "application/pdf");
    assert_eq!(pdf.attachment_name(), Some("aiwarden-2026-W48.pdf"));
    let (_, bytes) = out.pdf.as_ref().expect("pdf");
    assert_eq!(pdf.contents(), &bytes[..], "the PDF arrives byte for byte");
}

#[test]
fn email_over_starttls_logs_in_after_the_upgrade_and_carries_charts_and_pdf() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki::pki(dir.path(), "clinic-ca", &["127.0.0.1"]);
    for mechanism in ["PLAIN", "LOGIN"] {
        let server = smtp::Server::start(
            Options {
                auth: vec![mechanism],
                ..Options::default()
            },
            pki.server.clone(),
        );
        let cfg = email_config(dir.path(), &server, &pki.ca_file, "");
        let out = report();
        let sent = only(send(&cfg, &out), Channel::Email);
        assert!(sent.ok(), "{:?}", sent.result);
        assert_eq!(sent.attempts, 1);

        let sessions = server.sessions();
        assert_eq!(sessions.len(), 1);
        let s = &sessions[0];
        assert!(s.tls, "the session was upgraded");
        // In clear: only the greeting exchange and STARTTLS; everything else over TLS.
        let clear: Vec<&str> = s
            .commands
            .iter()
            .filter(|(_, tls)| !tls)
            .map(|(c, _)| c.as_str())
            .collect();
        assert_eq!(clear, ["EHLO", "STARTTLS"], "{:?}", s.commands);
        let auth = s.auth.as_ref().expect("logged in");
        assert_eq!(auth.mechanism, mechanism);
        assert!(auth.tls, "AUTH came over TLS");
        assert_eq!(auth.user, "reports@clinic.example");
        assert_eq!(
            auth.password, "p\u{e4}ss word:1",
            "the password file's first line"
        );
        assert_eq!(
            s.mail_from,
            Some(("reports@clinic.example".to_string(), true)),
            "MAIL over TLS"
        );
        assert_eq!(s.rcpt, ["compliance@clinic.example", "ann@clinic.example"]);
        check_message(s.data.as_deref().expect("data"), &out);
    }
}

#[test]
fn email_over_implicit_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki::pki(dir.path(), "clinic-ca", &["127.0.0.1"]);
    let server = smtp::Server::start(
        Options {
            implicit_tls: true,
            starttls: false,
            ..Options::default()
        },
        pki.server.clone(),
    );
    let cfg = email_config(dir.path(), &server, &pki.ca_file, "tls = \"tls\"");
    let out = report();
    let sent = only(send(&cfg, &out), Channel::Email);
    assert!(sent.ok(), "{:?}", sent.result);
    let s = &server.sessions()[0];
    assert!(s.commands.iter().all(|(_, tls)| *tls), "{:?}", s.commands);
    assert!(s.auth.as_ref().is_some_and(|a| a.tls));
    check_message(s.data.as_deref().expect("data"), &out);
}

#[test]
fn starttls_is_required_no_plaintext_fallback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki::pki(dir.path(), "clinic-ca", &["127.0.0.1"]);
    // A server without STARTTLS that would happily take AUTH and MAIL in clear.
    let server = smtp::Server::start(
        Options {
            starttls: false,
            ..Options::default()
        },
        pki.server.clone(),
    );
    let cfg = email_config(dir.path(), &server, &pki.ca_file, "");
    let sent = only(send(&cfg, &report()), Channel::Email);
    let e = sent.result.expect_err("refused").to_string();
    assert!(e.starts_with("deliver email to 127.0.0.1:"), "{e}");
    assert!(e.to_lowercase().contains("starttls"), "{e}");
    let sessions = server.sessions();
    assert_eq!(sessions.len() as u32, sent.attempts);
    assert!(sent.attempts >= 1);
    for s in &sessions {
        assert!(!s.tls);
        let said: Vec<&str> = s.commands.iter().map(|(c, _)| c.as_str()).collect();
        assert!(
            said.iter()
                .all(|c| ["EHLO", "HELO", "QUIT", "RSET"].contains(c)),
            "nothing but greetings in clear: {said:?}"
        );
        assert!(s.auth.is_none() && s.mail_from.is_none() && s.data.is_none());
    }
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trusted = pki::pki(dir.path(), "clinic-ca", &["127.0.0.1"]);
    let other = pki::pki(dir.path(), "other-ca", &["127.0.0.1"]);
    let server = smtp::Server::start(Options::default(), other.server.clone());
    let cfg = email_config(dir.path(), &server, &trusted.ca_file, "");
    let sent = only(send(&cfg, &report()), Channel::Email);
    let e = sent.result.expect_err("refused").to_string();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    assert_eq!(
        sent.attempts, 1,
        "a certificate that fails now fails again: {e}"
    );
    for s in server.sessions() {
        assert!(!s.tls && s.auth.is_none() && s.mail_from.is_none(), "{s:?}");
    }
    // And the name counts: a certificate of the right CA for another host is refused too.
    let wrong_name = pki::pki(dir.path(), "clinic-ca2", &["mail.clinic.example"]);
    let server = smtp::Server::start(Options::default(), wrong_name.server.clone());
    let cfg = email_config(dir.path(), &server, &wrong_name.ca_file, "");
    let sent = only(send(&cfg, &report()), Channel::Email);
    assert!(!sent.ok());
    assert!(server.sessions().iter().all(|s| s.auth.is_none()));
}

#[test]
fn a_failed_first_attempt_is_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki::pki(dir.path(), "clinic-ca", &["127.0.0.1"]);
    for fail in [Fail::Temporary, Fail::Drop] {
        let server = smtp::Server::start(
            Options {
                fail_first: Some(fail),
                ..Options::default()
            },
            pki.server.clone(),
        );
        let cfg = email_config(dir.path(), &server, &pki.ca_file, "");
        let out = report();
        let sent = only(send(&cfg, &out), Channel::Email);
        assert!(sent.ok(), "{fail:?}: {:?}", sent.result);
        assert_eq!(sent.attempts, 2, "{fail:?}");
        let sessions = server.sessions();
        assert_eq!(sessions.len(), 2, "{fail:?}");
        assert!(sessions[0].data.is_none());
        check_message(sessions[1].data.as_deref().expect("data"), &out);
    }
    // A permanent refusal (5xx) is final: no second attempt.
    let server = smtp::Server::start(
        Options {
            fail_first: Some(Fail::Permanent),
            ..Options::default()
        },
        pki.server.clone(),
    );
    let cfg = email_config(dir.path(), &server, &pki.ca_file, "");
    let sent = only(send(&cfg, &report()), Channel::Email);
    let e = sent.result.expect_err("refused").to_string();
    assert_eq!(sent.attempts, 1, "{e}");
    assert!(e.contains("550"), "{e}");
    assert_eq!(server.sessions().len(), 1);
}

#[test]
fn a_password_file_others_can_read_is_refused_before_connecting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki::pki(dir.path(), "clinic-ca", &["127.0.0.1"]);
    let server = smtp::Server::start(Options::default(), pki.server.clone());
    let cfg = email_config(dir.path(), &server, &pki.ca_file, "");
    // email_config wrote it 0600; loosen it after.
    let p = dir.path().join("smtp-password");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let sent = only(send(&cfg, &report()), Channel::Email);
    let e = sent.result.expect_err("refused").to_string();
    assert!(
        e.contains("smtp-password is open to other users (mode 644)"),
        "{e}"
    );
    assert_eq!(sent.attempts, 0);
    assert!(server.sessions().is_empty(), "no connection was made");
    std::fs::remove_file(&p).expect("rm");
    let sent = only(send(&cfg, &report()), Channel::Email);
    let e = sent.result.expect_err("missing").to_string();
    assert!(
        e.contains("password_file") && e.contains("smtp-password"),
        "{e}"
    );
}

fn webhook_config(dir: &Path, url: &str, extra: &str) -> Delivery {
    delivery(
        dir,
        &format!("[report.webhook]\nurl = \"{url}\"\ntimeout_secs = 5\n{extra}\n{RETRY}"),
    )
}

#[test]
fn webhook_retries_a_5xx_and_the_json_arrives_intact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hook = hook::Hook::start(vec![500, 429, 200], None);
    let url = format!(
        "http://127.0.0.1:{}/hooks/aiwarden?site=clinic",
        hook.addr.port()
    );
    let cfg = webhook_config(dir.path(), &url, "");
    let out = report();
    let sent = only(send(&cfg, &out), Channel::Webhook);
    assert!(sent.ok(), "{:?}", sent.result);
    assert_eq!(sent.attempts, 3, "500 and 429 are retried");
    let requests = hook.requests();
    assert_eq!(requests.len(), 3);
    for r in &requests {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/hooks/aiwarden?site=clinic");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("authorization"), None);
        let json: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(json, out.json);
    }
}

#[test]
fn webhook_over_https_with_a_bearer_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki::pki(dir.path(), "msp-ca", &["127.0.0.1"]);
    secret(dir.path(), "hook-token", "tok3n-abc\n", 0o400);
    let hook = hook::Hook::start(vec![202], Some(pki.server.clone()));
    let url = format!("https://127.0.0.1:{}/tickets", hook.addr.port());
    let cfg = webhook_config(
        dir.path(),
        &url,
        &format!(
            "bearer_token_file = \"hook-token\"\nca_file = \"{}\"",
            pki.ca_file.display()
        ),
    );
    let out = report();
    let sent = only(send(&cfg, &out), Channel::Webhook);
    assert!(sent.ok(), "{:?}", sent.result);
    assert_eq!(sent.attempts, 1);
    let r = &hook.requests()[0];
    assert_eq!(r.header("authorization"), Some("Bearer tok3n-abc"));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&r.body).expect("json"),
        out.json
    );
    // Without the CA the same server is refused, and no request is made.
    let other = pki::pki(dir.path(), "not-msp-ca", &["127.0.0.1"]);
    let cfg = webhook_config(
        dir.path(),
        &url,
        &format!(
            "bearer_token_file = \"hook-token\"\nca_file = \"{}\"",
            other.ca_file.display()
        ),
    );
    let sent = only(send(&cfg, &out), Channel::Webhook);
    let e = sent.result.expect_err("refused").to_string();
    assert!(
        e.starts_with(&format!(
            "deliver webhook to https://127.0.0.1:{}:",
            hook.addr.port()
        )),
        "{e}"
    );
    assert!(!e.contains("/tickets"), "the path is not printed: {e}");
    assert_eq!(sent.attempts, 1, "not retried: {e}");
    assert_eq!(hook.requests().len(), 1);
}

#[test]
fn webhook_4xx_is_not_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hook = hook::Hook::start(vec![400, 200], None);
    let url = format!("http://127.0.0.1:{}/", hook.addr.port());
    let sent = only(
        send(&webhook_config(dir.path(), &url, ""), &report()),
        Channel::Webhook,
    );
    let e = sent.result.expect_err("400").to_string();
    assert_eq!(sent.attempts, 1);
    assert!(e.contains("http 400: status 400 from the test hook"), "{e}");
    assert_eq!(hook.requests().len(), 1);
}

#[test]
fn webhook_connection_refused_is_retried_then_given_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A port nobody listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("http://127.0.0.1:{port}/");
    let sent = only(
        send(&webhook_config(dir.path(), &url, ""), &report()),
        Channel::Webhook,
    );
    let e = sent.result.expect_err("refused").to_string();
    assert_eq!(sent.attempts, 3, "{e}");
    assert!(e.ends_with("(after 3 attempts)"), "{e}");
}

#[test]
fn channels_fail_and_succeed_independently() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki::pki(dir.path(), "clinic-ca", &["127.0.0.1"]);
    let server = smtp::Server::start(
        Options {
            starttls: false,
            ..Options::default()
        },
        pki.server.clone(),
    );
    let hook = hook::Hook::start(vec![200], None);
    secret(dir.path(), "smtp-password", "pw\n", 0o600);
    let cfg = delivery(
        dir.path(),
        &format!(
            "[report.email]\nserver = \"127.0.0.1\"\nport = {}\nusername = \"u\"\n\
             password_file = \"smtp-password\"\nfrom = \"a@clinic.example\"\nto = [\"b@clinic.example\"]\n\
             ca_file = \"{}\"\n[report.webhook]\nurl = \"http://127.0.0.1:{}/\"\n{RETRY}",
            server.addr.port(),
            pki.ca_file.display(),
            hook.addr.port()
        ),
    );
    let sent = send(&cfg, &report());
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].channel, Channel::Email);
    assert!(!sent[0].ok());
    assert_eq!(sent[1].channel, Channel::Webhook);
    assert!(sent[1].ok(), "{:?}", sent[1].result);
    assert_eq!(hook.requests().len(), 1);
    // Nothing configured: nothing sent.
    assert!(send(&delivery(dir.path(), ""), &report()).is_empty());
}

/// `aiwarden report --deliver` as the weekly timer runs it: the bundled sample's week,
/// recorded by replay, sent by email over STARTTLS and to a webhook; the PDF attached is
/// the report's, the HTML's charts are PNGs by Content-ID, the webhook gets the JSON
/// figures; a channel that cannot be reached fails the command (the unit shows it).
#[test]
fn the_report_command_delivers_the_sample_week() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = env!("CARGO_MANIFEST_DIR");
    let db = dir.path().join("incidents.db");
    sample_store::record_sample(&db);

    let pki = pki::pki(dir.path(), "clinic-ca", &["127.0.0.1"]);
    let server = smtp::Server::start(
        Options {
            auth: vec!["PLAIN"],
            ..Options::default()
        },
        pki.server.clone(),
    );
    let hook = hook::Hook::start(vec![200], None);
    secret(dir.path(), "smtp-password", "secret\n", 0o600);
    let config = dir.path().join("aiwarden.toml");
    let write_config = |hook_port: u16| {
        std::fs::write(
            &config,
            format!(
                "site_name = \"Sunrise Clinic\"\ntimezone = \"America/Chicago\"\n\
                 site = \"{root}/samples/site\"\n\
                 [store]\npath = \"{}\"\n[devices]\ninventory = \"{root}/samples/devices.toml\"\n\
                 [report.email]\nserver = \"127.0.0.1\"\nport = {}\nusername = \"r@clinic.example\"\n\
                 password_file = \"smtp-password\"\nfrom = \"r@clinic.example\"\n\
                 to = [\"compliance@clinic.example\"]\nca_file = \"{}\"\n\
                 [report.webhook]\nurl = \"http://127.0.0.1:{hook_port}/hook\"\n{RETRY}",
                db.display(),
                server.addr.port(),
                pki.ca_file.display()
            ),
        )
        .expect("config");
    };
    write_config(hook.addr.port());
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_aiwarden"))
            .args(["report", "--config"])
            .arg(&config)
            .args(["--week", "2026-W48", "--archive", "--deliver"])
            .output()
            .expect("report")
    };
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("reports/2026-W48.pdf").exists());

    let sessions = server.sessions();
    assert_eq!(sessions.len(), 1);
    assert!(sessions[0].tls);
    let data = sessions[0].data.clone().expect("message");
    let msg = MessageParser::default().parse(&data).expect("parse");
    assert!(msg
        .subject()
        .expect("subject")
        .contains("Sunrise Clinic shadow-AI report 2026-W48 (8 incidents"));
    let archived = std::fs::read(dir.path().join("reports/2026-W48.pdf")).expect("pdf");
    let pdf = msg
        .attachments()
        .find(|a| a.attachment_name().is_some_and(|n| n.ends_with(".pdf")))
        .expect("pdf attached");
    assert!(pdf.contents().starts_with(b"%PDF"));
    // The same report: the PDF differs from the archived one only in its creation time,
    // so compare sizes within a few bytes.
    assert!(pdf.contents().len().abs_diff(archived.len()) < 64);
    let html = msg.body_html(0).expect("html");
    let cids: Vec<&str> = html
        .match_indices("cid:")
        .map(|(i, _)| {
            let rest = &html[i + 4..];
            &rest[..rest.find('"').unwrap_or(rest.len())]
        })
        .collect();
    assert!(!cids.is_empty(), "charts by cid");
    for cid in cids {
        let part = msg
            .parts
            .iter()
            .find(|p| p.content_id() == Some(cid))
            .unwrap_or_else(|| panic!("no part for cid {cid}"));
        assert!(part.contents().starts_with(b"\x89PNG"), "{cid}");
    }
    assert!(!html.contains("<svg"), "no inline SVG in mail");

    let requests = hook.requests();
    assert_eq!(requests.len(), 1);
    let json: serde_json::Value = serde_json::from_slice(&requests[0].body).expect("json");
    assert_eq!(json["headline"]["incidents"], 8);
    assert_eq!(json["period"]["label"], "2026-W48");

    // The webhook gone: the email still goes, the command fails naming the webhook.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = gone.local_addr().expect("addr").port();
    drop(gone);
    write_config(port);
    let out = run();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not sent by webhook"), "{err}");
    assert!(err.contains("sent by email"), "{err}");
    assert_eq!(server.sessions().len(), 2);
}
