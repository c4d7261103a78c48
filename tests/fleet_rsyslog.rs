//! Syslog over TLS to a real rsyslog (Debian's `rsyslog` and `rsyslog-gnutls`, installed
//! by scripts/setup-debian.sh), started by the test on a loopback port with imtcp and the
//! GnuTLS driver: `aiwarden fleet syslog-send` delivers every incident exactly once, rsyslog
//! parses each as RFC 5424 (version, APP-NAME, MSGID, structured data), and its answer to
//! the sender's close_notify is what confirms a batch.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aiwarden::incident::IncidentRecord;
use aiwarden::policy::{Mode, Tier, Verdict};
use aiwarden::store::Store;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

const SITE: &str = r#"Elm "North" [B]\2"#;

fn incident(i: i64) -> IncidentRecord {
    IncidentRecord {
        ts: 1_764_650_000_000_000 + i * 1_000_000,
        client_ip: "10.0.0.21".parse().expect("ip"),
        client_mac: None,
        device: Some(format!("pc-{i}")),
        label: None,
        group: None,
        service: "chatgpt".into(),
        service_name: "ChatGPT".into(),
        category: Some("chat".into()),
        tier: Some(Tier::Consumer),
        verdict: Verdict::Block,
        mode: Mode::Enforce,
        how: "dns".parse().expect("how"),
        host: "chatgpt.com".into(),
        rule: "catalog/openai.toml:chatgpt".into(),
    }
}

/// A CA (PEM file) and a certificate and key for 127.0.0.1 it signed (PEM files).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "siem-ca");
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("key");
    let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("params");
    leaf.distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    leaf.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
    let cert = leaf.signed_by(&key, &issuer).expect("signed");
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).expect("write");
    std::fs::write(&paths.1, cert.pem()).expect("write");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write");
    paths
}

/// rsyslogd in the foreground on `port`, writing what it parsed of each message to `out`,
/// one line each: version, app-name, msgid, structured data, msg (tab-separated).
struct Rsyslog(Child);

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rsyslog(dir: &Path, port: u16, out: &Path) -> Rsyslog {
    let rsyslogd = Path::new("/usr/sbin/rsyslogd");
    assert!(
        rsyslogd.exists(),
        "rsyslogd missing: install rsyslog and rsyslog-gnutls (scripts/setup-debian.sh)"
    );
    let (ca, cert, key) = certificates(dir);
    let work = dir.join("rsyslog");
    std::fs::create_dir_all(&work).expect("mkdir");
    let conf = dir.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{work}"
       defaultNetstreamDriver="gtls"
       defaultNetstreamDriverCAFile="{ca}"
       defaultNetstreamDriverCertFile="{cert}"
       defaultNetstreamDriverKeyFile="{key}")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" address="127.0.0.1" port="{port}")
template(name="parsed" type="string"
         string="%protocol-version%\t%app-name%\t%msgid%\t%structured-data%\t%msg%\n")
action(type="omfile" file="{out}" template="parsed")
"#,
            work = work.display(),
            ca = ca.display(),
            cert = cert.display(),
            key = key.display(),
            out = out.display(),
        ),
    )
    .expect("conf");
    let child = Command::new(rsyslogd)
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rsyslogd starts");
    let r = Rsyslog(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "rsyslogd does not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    r
}

#[test]
fn rsyslog_receives_every_incident_once_and_parses_it_as_rfc5424() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let db = d.join("incidents.db");
    let ids = Store::open(&db)
        .expect("store")
        .append_incidents(&(1..=12).map(incident).collect::<Vec<_>>())
        .expect("append");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let out = d.join("received.log");
    let _rsyslog = rsyslog(d, port, &out);
    let send = || {
        Command::new(env!("CARGO_BIN_EXE_aiwarden"))
            .args([
                "fleet",
                "syslog-send",
                "--host",
                "127.0.0.1",
                "--batch",
                "5",
            ])
            .args([
                "--port",
                &port.to_string(),
                "--site",
                SITE,
                "--timeout-secs",
                "10",
            ])
            .arg("--store")
            .arg(&db)
            .arg("--ca-file")
            .arg(d.join("ca.pem"))
            .output()
            .expect("runs")
    };
    let o = send();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!(
            "sent 12 incidents in 3 batches (3 connections); cursor {}\n",
            ids[11]
        )
    );
    // rsyslog writes asynchronously: wait for the lines.
    let lines = |want: usize| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if text.lines().count() >= want || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let text = lines(12);
    let mut rows = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.splitn(5, '\t').collect();
        assert_eq!(f.len(), 5, "{l}");
        assert_eq!(
            &f[..3],
            ["1", "aiwarden", "incident"],
            "parsed as RFC 5424: {l}"
        );
        assert!(
            f[3].starts_with(r#"[aiwarden@32473 site="Elm \"North\" [B\]\\2" row=""#),
            "{}",
            f[3]
        );
        let json = f[4].trim_start_matches('\u{feff}');
        let v: serde_json::Value = serde_json::from_str(json).expect("json");
        assert_eq!(v["class_uid"], 2004);
        assert_eq!(v["unmapped"]["aiwarden"]["site"], SITE);
        rows.push(v["unmapped"]["aiwarden"]["row_id"].as_i64().expect("row"));
    }
    assert_eq!(rows, ids, "each once, in order");

    // A second pass after more incidents sends only those.
    let more = Store::open(&db)
        .expect("store")
        .append_incidents(&(13..=14).map(incident).collect::<Vec<_>>())
        .expect("append");
    let o = send();
    assert!(o.status.success(), "{o:?}");
    let text = lines(14);
    assert_eq!(text.lines().count(), 14, "{text}");
    let last: Vec<i64> = text
        .lines()
        .skip(12)
        .map(|l| {
            let json = l
                .splitn(5, '\t')
                .nth(4)
                .expect("msg")
                .trim_start_matches('\u{feff}');
            serde_json::from_str::<serde_json::Value>(json).expect("json")["unmapped"]["aiwarden"]
                ["row_id"]
                .as_i64()
                .expect("row")
        })
        .collect();
    assert_eq!(last, more);

    // rsyslog closes without answering close_notify: the strict confirmation refuses that
    // (and says which setting accepts it), and the cursor stays where it was.
    Store::open(&db)
        .expect("store")
        .append_incidents(&[incident(15)])
        .expect("append");
    let o = Command::new(env!("CARGO_BIN_EXE_aiwarden"))
        .args([
            "fleet",
            "syslog-send",
            "--host",
            "127.0.0.1",
            "--confirm",
            "close-notify",
        ])
        .args([
            "--port",
            &port.to_string(),
            "--site",
            SITE,
            "--attempts",
            "1",
        ])
        .arg("--store")
        .arg(&db)
        .arg("--ca-file")
        .arg(d.join("ca.pem"))
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("the receiver closed the connection without close_notify")
            && err.contains("confirm = \"close\" accepts that"),
        "{err}"
    );
    let cursor = aiwarden::fleet::syslog_send::read_cursor(&d.join("fleet-syslog.cursor"));
    assert_eq!(cursor.expect("cursor").0, more[1]);
}
