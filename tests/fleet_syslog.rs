//! Syslog over TLS to a SIEM, against a receiver on 127.0.0.1 that the tests start
//! (`support/syslog_receiver.rs`: real TLS with a CA made by rcgen, and a strict RFC 5424
//! and RFC 5425 parser whose JSON must carry the documented OCSF fields). Incidents are
//! written through the store's own API, or recorded by `aiwarden run` from DNS queries.

#[path = "support/pki.rs"]
mod pki;
#[path = "support/syslog_receiver.rs"]
mod syslog_receiver;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use aiwarden::fleet::syslog_send::{read_cursor, send_watched, Watch};
use aiwarden::fleet::{send_pending, Confirm, Source, Target};
use aiwarden::health::Health;
use aiwarden::incident::IncidentRecord;
use aiwarden::metrics::Metrics;
use aiwarden::policy::{Baa, Mode, Tier, Verdict};
use aiwarden::store::Store;
use syslog_receiver::{parse, read_frame, Got, Plan, Receiver};

/// A site name that needs every SD escape.
const SITE: &str = r#"Elm "North" [B]\2"#;

fn incident(i: i64) -> IncidentRecord {
    IncidentRecord {
        ts: 1_764_650_000_000_000 + i * 1_000_000,
        client_ip: format!("10.0.0.{}", 10 + i % 200).parse().expect("ip"),
        client_mac: Some("52:54:00:12:34:56".parse().expect("mac")),
        device: Some(format!("pc-{i}")),
        label: (i % 2 == 0).then(|| format!("Front desk {i}")),
        group: None,
        service: "chatgpt".into(),
        service_name: "ChatGPT".into(),
        category: Some("chat".into()),
        tier: Some(Tier::Consumer),
        verdict: if i % 3 == 0 {
            Verdict::Flag
        } else {
            Verdict::Block
        },
        mode: Mode::Enforce,
        how: "dns".parse().expect("how"),
        host: "chatgpt.com".into(),
        rule: "catalog/openai.toml:chatgpt".into(),
    }
}

fn append(db: &Path, range: std::ops::RangeInclusive<i64>) -> Vec<i64> {
    let mut store = Store::open(db).expect("store");
    let recs: Vec<_> = range.map(incident).collect();
    store.append_incidents(&recs).expect("append")
}

fn target(addr: SocketAddr, ca: &Path) -> Target {
    let mut t = Target::new(&addr.ip().to_string(), addr.port());
    t.ca_file = Some(ca.to_path_buf());
    t.batch = 10;
    t.timeout = Duration::from_secs(10);
    t.backoff = Duration::from_millis(10);
    t
}

fn baa(service: &str) -> Option<Baa> {
    (service == "chatgpt").then_some(Baa::EnterpriseOnly)
}

fn source<'a>(db: &'a Path, cursor: &'a Path) -> Source<'a> {
    Source {
        store: db,
        cursor,
        site: SITE,
        hostname: "aiwarden-elm",
        baa: &baa,
    }
}

/// Row id -> how many times it arrived.
fn tally(got: &[Got]) -> BTreeMap<i64, usize> {
    let mut m = BTreeMap::new();
    for g in got {
        *m.entry(g.row).or_default() += 1;
    }
    m
}

#[test]
fn every_incident_arrives_once_and_a_second_send_only_the_new_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("incidents.db");
    let cursor = dir.path().join("syslog.cursor");
    let ids = append(&db, 1..=25);
    // Rows that are not incidents in between: an ack is never sent.
    Store::open(&db)
        .expect("store")
        .ack(ids[3], 1_764_660_000_000_000, "Dr Rivera", "trained")
        .expect("ack");
    let pki = pki::pki(dir.path(), "syslog-ca", &["127.0.0.1"]);
    let rx = Receiver::start(pki.server.clone(), vec![]);
    let stop = AtomicBool::new(false);

    let report =
        send_pending(&source(&db, &cursor), &target(rx.addr, &pki.ca_file), &stop).expect("send");
    assert_eq!(rx.violations(), Vec::<String>::new());
    let got = rx.got();
    let counts = tally(&got);
    assert_eq!(
        counts.keys().copied().collect::<Vec<_>>(),
        ids,
        "every incident"
    );
    assert!(counts.values().all(|&n| n == 1), "exactly once: {counts:?}");
    assert_eq!(
        (report.sent, report.batches, report.connections),
        (25, 3, 3)
    );
    assert_eq!(report.cursor, *ids.last().expect("ids"));
    let store = Store::open_read_only(&db).expect("store");
    assert_eq!(
        read_cursor(&cursor).expect("cursor"),
        (report.cursor, store.row_hash(report.cursor).expect("hash"))
    );
    // The copy can be checked against the chain: each hash is the store's for that row.
    let chained = store.incidents_after(0, 100).expect("feed");
    for g in &got {
        let c = chained.iter().find(|c| c.row.id == g.row).expect("row");
        assert_eq!(g.hash, c.hash);
        assert_eq!(g.site, SITE);
    }
    let first = got.iter().find(|g| g.row == ids[3]).expect("acked row");
    assert_eq!(first.json["unmapped"]["aiwarden"]["acknowledged"], true);
    assert_eq!(
        first.json["unmapped"]["aiwarden"]["service"]["baa"],
        "enterprise_only"
    );

    // Nothing new: nothing sent, no connection.
    let again =
        send_pending(&source(&db, &cursor), &target(rx.addr, &pki.ca_file), &stop).expect("send");
    assert_eq!((again.sent, again.connections), (0, 0));

    let new = append(&db, 26..=32);
    let report =
        send_pending(&source(&db, &cursor), &target(rx.addr, &pki.ca_file), &stop).expect("send");
    assert_eq!(report.sent, 7);
    let later: Vec<i64> = rx.got()[got.len()..].iter().map(|g| g.row).collect();
    assert_eq!(later, new, "only the new ones, in order");
    assert_eq!(rx.violations(), Vec::<String>::new());
}

/// A store set aside and begun anew numbers its rows from 1 again: the cursor (row 8 of
/// the old chain) is not in the new chain, and the new chain is sent from its start, each
/// row with a uid no row of the old chain had.
#[test]
fn a_store_begun_anew_is_sent_from_its_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("incidents.db");
    let cursor = dir.path().join("syslog.cursor");
    let pki = pki::pki(dir.path(), "syslog-ca", &["127.0.0.1"]);
    let rx = Receiver::start(pki.server.clone(), vec![]);
    let stop = AtomicBool::new(false);
    let t = target(rx.addr, &pki.ca_file);
    append(&db, 1..=8);
    let first = send_pending(&source(&db, &cursor), &t, &stop).expect("send");
    assert_eq!((first.sent, first.restarted), (8, false));

    // As the writer does with a corrupt file: set aside, a new one in its place. Once with
    // fewer rows than the cursor, once with more (the row at the cursor then differs).
    // (A real new chain opens with a break row naming the file set aside; other incidents
    // here stand in for it: a chain of the same rows would have the same hashes.)
    for (from, n, round) in [(100, 3, "shorter"), (200, 12, "longer")] {
        let before = rx.got().len();
        for ext in ["", "-wal", "-shm", ".head"] {
            let p = dir.path().join(format!("incidents.db{ext}"));
            if p.exists() {
                std::fs::rename(&p, dir.path().join(format!("old-{round}{ext}"))).expect("rename");
            }
        }
        let ids = append(&db, from..=from + n - 1);
        let r = send_pending(&source(&db, &cursor), &t, &stop).expect("send");
        assert!(r.restarted, "{round}");
        assert_eq!(r.sent, n as u64, "{round}");
        let got = rx.got();
        let new: Vec<i64> = got[before..].iter().map(|g| g.row).collect();
        assert_eq!(new, ids, "{round}: the new chain from its start");
        let uids: std::collections::BTreeSet<String> = got
            .iter()
            .map(|g| g.json["metadata"]["uid"].as_str().expect("uid").to_string())
            .collect();
        assert_eq!(
            uids.len(),
            got.len(),
            "{round}: a uid per row of either chain"
        );
        let again = send_pending(&source(&db, &cursor), &t, &stop).expect("send");
        assert_eq!((again.sent, again.restarted), (0, false), "{round}");
    }
    assert_eq!(rx.violations(), Vec::<String>::new());
}

/// Sends `n` incidents in batches of `batch` with `confirm` to a receiver that confirms
/// the first batch and drops the second's connection after 4 messages; checks there is no
/// gap and that the only duplicates are those 4.
fn drop_mid_batch(confirm: Confirm, n: i64, batch: u32) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("incidents.db");
    let cursor = dir.path().join("syslog.cursor");
    let ids = append(&db, 1..=n);
    let pki = pki::pki(dir.path(), "syslog-ca", &["127.0.0.1"]);
    let rx = Receiver::start(pki.server.clone(), vec![Plan::Full, Plan::DropAfter(4)]);
    let stop = AtomicBool::new(false);
    let mut t = target(rx.addr, &pki.ca_file);
    t.batch = batch;
    t.confirm = confirm;
    let report = send_pending(&source(&db, &cursor), &t, &stop).expect("send");
    assert_eq!(rx.violations(), Vec::<String>::new());
    let got = rx.got();
    let counts = tally(&got);
    assert_eq!(counts.keys().copied().collect::<Vec<_>>(), ids, "no gaps");
    // The only duplicates possible are the messages of the batch that was not confirmed
    // (the second) that the receiver read before it dropped the connection: here its
    // first 4. Confirmed batches are never sent twice.
    let b = batch as usize;
    let twice: Vec<i64> = counts
        .iter()
        .filter(|(_, &n)| n > 1)
        .map(|(&r, _)| r)
        .collect();
    assert_eq!(twice, ids[b..b + 4].to_vec(), "{counts:?}");
    assert!(counts.values().all(|&n| n <= 2));
    assert_eq!(got.iter().filter(|g| g.conn == 1).count(), 4);
    let batches = ids.len().div_ceil(b) as u32;
    assert_eq!(
        (report.sent, report.batches, report.connections),
        (n as u64, batches, batches + 1)
    );
    assert_eq!(rx.conns(), batches as usize + 1);
    assert_eq!(report.cursor, n);
}

/// Strict confirmation: the receiver's close_notify. Dropped without one, the batch is
/// resent whatever the receiver had read.
#[test]
fn a_receiver_that_drops_mid_batch_gets_the_batch_again_with_no_gaps() {
    drop_mid_batch(Confirm::CloseNotify, 30, 10);
}

/// The default confirmation (a clean close, as rsyslog gives): a receiver that drops the
/// connection with part of the batch unread resets it, and the batch is resent. (A batch
/// of 50 is far more than the receiver's TLS layer reads ahead of the 4 messages it takes.)
#[test]
fn with_the_default_confirmation_a_dropped_batch_is_resent_too() {
    drop_mid_batch(Confirm::default(), 120, 50);
}

#[test]
fn a_receiver_whose_certificate_is_not_trusted_is_refused_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("incidents.db");
    let cursor = dir.path().join("syslog.cursor");
    append(&db, 1..=3);
    let trusted = pki::pki(dir.path(), "trusted-ca", &["127.0.0.1"]);
    let other = pki::pki(dir.path(), "other-ca", &["127.0.0.1"]);
    let rx = Receiver::start(other.server.clone(), vec![]);
    let stop = AtomicBool::new(false);
    // As the daemon sends: the refusal is counted as `tls` and `siem` says it.
    let (metrics, health) = (Metrics::new(), Health::new());
    let watch = Watch {
        metrics: &metrics,
        health: &health,
    };
    let e = send_watched(
        &source(&db, &cursor),
        &target(rx.addr, &trusted.ca_file),
        &stop,
        Some(watch),
    )
    .expect_err("refused");
    let count = |r: &str| metrics.syslog_failures.with_label_values(&[r]).get();
    assert_eq!((count("tls"), count("connect"), count("write")), (1, 0, 0));
    assert_eq!(metrics.syslog_lag.get(), 3, "three incidents waiting");
    assert_eq!(metrics.syslog_sent.get(), 0);
    let said = health.report().to_string();
    assert!(
        said.starts_with("degraded\n")
            && said.contains("siem: degraded: syslog to ")
            && said.contains("UnknownIssuer")
            && said.ends_with("(3 incidents waiting)\n"),
        "{said}"
    );
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("syslog to {}: send: ", rx.addr))
            && text.contains("invalid peer certificate")
            && text.contains("UnknownIssuer"),
        "{text}"
    );
    assert!(!text.contains("gave up"), "not retried: {text}");
    assert_eq!(rx.conns(), 1);
    assert!(rx.got().is_empty());
    assert!(!cursor.exists(), "the cursor does not move");
}

#[test]
fn the_strict_parser_refuses_what_the_rfcs_do_not_allow() {
    use aiwarden::fleet::syslog::{frame, message, Header, Severity};
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("incidents.db");
    append(&db, 1..=1);
    let store = Store::open_read_only(&db).expect("store");
    let inc = &store.incidents_after(0, 1).expect("feed")[0];
    let origin = aiwarden::fleet::ocsf::Origin {
        site: SITE,
        appliance: "box",
    };
    let json = aiwarden::fleet::ocsf::finding(inc, origin, None).to_string();
    let h = Header {
        facility: 16,
        hostname: "box".into(),
        procid: None,
    };
    let row = inc.row.id.to_string();
    let good = message(
        &h,
        Severity::Notice,
        inc.row.summary.record.ts,
        "incident",
        &[("site", SITE), ("row", &row), ("hash", &inc.hash)],
        &json,
    );
    parse(&good).expect("the sender's own message passes");
    let text = String::from_utf8(good.clone()).expect("utf8");
    let bad: Vec<(&str, String)> = vec![
        ("PRI", text.replacen("<133>", "<192>", 1)),
        ("PRI", text.replacen("<133>", "<0133>", 1)),
        ("VERSION", text.replacen(">1 ", ">2 ", 1)),
        ("timestamp", text.replacen(".000000Z", ".0000001Z", 1)),
        ("timestamp", text.replacen("T", " ", 1)),
        ("SD-ID", text.replacen("aiwarden@32473", "aiwarden@x", 1)),
        ("unescaped ]", text.replacen(r"[B\]", "[B]", 1)),
        ("BOM", text.replacen('\u{feff}', "", 1)),
        (
            "OCSF",
            text.replacen("\"class_uid\":2004", "\"class_uid\":4001", 1),
        ),
        (
            "OCSF",
            text.replacen(&format!("\"row_id\":{row}"), "\"row_id\":999", 1),
        ),
        ("syslog severity", text.replacen("<133>", "<132>", 1)),
    ];
    for (what, m) in bad {
        assert_ne!(m, text, "{what}: the case must change the message");
        assert!(parse(m.as_bytes()).is_err(), "{what} accepted: {m}");
    }
    // Framing: the length must match.
    let f = frame(&good);
    assert_eq!(read_frame(&mut &f[..]).expect("frame").expect("one"), good);
    let mut short = f.clone();
    short.pop();
    assert!(read_frame(&mut &short[..]).is_err());
    assert!(read_frame(&mut &b"0123 x"[..]).is_err());
    assert!(read_frame(&mut &b"12x"[..]).is_err());
    assert!(read_frame(&mut &b""[..]).expect("clean end").is_none());
}

#[test]
fn the_cli_sends_one_pass_with_the_catalogs_baa_and_a_client_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("incidents.db");
    let ids = append(&db, 1..=5);
    let (server, ca_file, client_cert, client_key) = mutual_tls(dir.path());
    let rx = Receiver::start(server, vec![]);
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_aiwarden"))
            .args([
                "fleet",
                "syslog-send",
                "--host",
                "127.0.0.1",
                "--hostname",
                "aiwarden-elm",
            ])
            .args([
                "--port",
                &rx.addr.port().to_string(),
                "--site",
                SITE,
                "--batch",
                "2",
            ])
            .arg("--store")
            .arg(&db)
            .arg("--ca-file")
            .arg(&ca_file)
            .args(extra)
            .output()
            .expect("runs")
    };
    // Without the client certificate the receiver refuses the session.
    // (TLS 1.3: the refusal is an alert after the handshake; the sender reports it, and
    // does not retry, whichever of its writes and reads meets it.)
    let out = run(&["--attempts", "3"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("aiwarden: syslog to 127.0.0.1:")
            && err.contains("received fatal alert: CertificateRequired")
            && !err.contains("gave up"),
        "{err}"
    );
    assert_eq!(rx.conns(), 1, "not retried");

    let cert = client_cert.to_str().expect("utf8");
    let key = client_key.to_str().expect("utf8");
    let out = run(&["--client-cert", cert, "--client-key", key]);
    assert!(out.status.success(), "{out:?}");
    let ids_last = ids.last().expect("ids");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("sent 5 incidents in 3 batches (3 connections); cursor {ids_last}\n")
    );
    assert_eq!(rx.violations(), Vec::<String>::new());
    let got = rx.got();
    assert_eq!(got.iter().map(|g| g.row).collect::<Vec<_>>(), ids);
    // chatgpt's BAA as the shipped catalog says.
    assert_eq!(
        got[0].json["unmapped"]["aiwarden"]["service"]["baa"],
        "enterprise_only"
    );
    assert_eq!(
        read_cursor(&dir.path().join("fleet-syslog.cursor"))
            .expect("cursor")
            .0,
        *ids_last,
        "the default cursor beside the store"
    );
    let out = run(&["--client-cert", cert, "--client-key", key]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("sent 0 incidents in 0 batches (0 connections); cursor {ids_last}\n")
    );
}

/// A server configuration that requires a client certificate from a CA made here, the
/// server's CA file, and a client certificate and key (PEM files) that CA signed.
fn mutual_tls(
    dir: &Path,
) -> (
    Arc<rustls::ServerConfig>,
    std::path::PathBuf,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "clients-ca");
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("key");
    let mut leaf = CertificateParams::new(vec!["aiwarden-elm".to_string()]).expect("params");
    leaf.distinguished_name
        .push(DnType::CommonName, "aiwarden-elm");
    let cert = leaf.signed_by(&key, &issuer).expect("signed");
    let cert_file = dir.join("client.pem");
    let key_file = dir.join("client.key");
    std::fs::write(&cert_file, cert.pem()).expect("write");
    std::fs::write(&key_file, key.serialize_pem()).expect("write");

    // The receiver: its own CA and certificate for 127.0.0.1, asking for a client's.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_cert.der().to_vec()))
        .expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("verifier");
    let skey = KeyPair::generate().expect("key");
    let s_ca_key = KeyPair::generate().expect("key");
    let mut s_ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    s_ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    s_ca.distinguished_name
        .push(DnType::CommonName, "receiver-ca");
    let s_ca_cert = s_ca.self_signed(&s_ca_key).expect("ca");
    let s_issuer = Issuer::new(s_ca, s_ca_key);
    let mut s_leaf = CertificateParams::new(Vec::<String>::new()).expect("params");
    s_leaf
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().expect("ip")));
    let s_cert = s_leaf.signed_by(&skey, &s_issuer).expect("signed");
    let ca_file = dir.join("receiver-ca.pem");
    std::fs::write(&ca_file, s_ca_cert.pem()).expect("write");
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(s_cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(skey.serialize_der())),
        )
        .expect("server");
    (Arc::new(server), ca_file, cert_file, key_file)
}

/// A DNS question for `name` (type A), as a stub resolver writes it.
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// GETs `path` from the daemon's metrics listener: the whole response.
fn http(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    let mut s = String::new();
    let _ = c.read_to_string(&mut s);
    s
}

/// The value of the metric line `name` (with its labels) in `/metrics`.
fn metric(port: u16, name: &str) -> Option<f64> {
    http(port, "/metrics")
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Waits up to 30 s for `f`.
fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `[fleet.syslog]` in the daemon: while the receiver is down, `/healthz` says `siem`
/// is degraded and why, and the failures and the incidents waiting are counted; once it is
/// up, the incidents the daemon recorded (from DNS queries it answers) reach it on the
/// daemon's own schedule, with the configured site, the metrics move and `siem` is ok
/// again; SIGTERM stops it.
#[test]
fn the_daemon_sends_the_incidents_it_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let pki = pki::pki(d, "syslog-ca", &["127.0.0.1"]);
    // The receiver's port, closed until the receiver starts on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("a free port")
            .port()
    };
    let (dns, web) = (free(), free());
    let config = d.join("aiwarden.toml");
    std::fs::write(
        &config,
        format!(
            "mode = \"enforce\"\nsite_name = \"Elm \\\"North\\\" [B]\\\\2\"\n\
             [dns]\nlisten = [\"127.0.0.1:{dns}\"]\nupstreams = [\"127.0.0.1:9\"]\ntimeout_ms = 200\n\
             [store]\npath = \"incidents.db\"\n[metrics]\nlisten = \"127.0.0.1:{web}\"\n\
             [fleet.syslog]\nhost = \"127.0.0.1\"\nport = {port}\nca_file = \"{}\"\ninterval_secs = 1\n\
             attempts = 2\nhostname = \"aiwarden-elm\"\n",
            pki.ca_file.display()
        ),
    )
    .expect("config");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_aiwarden"))
        .args(["run", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(d.join("daemon.log")).expect("log"))
        .spawn()
        .expect("daemon starts");
    let client = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    // Ask until the resolver answers (it is starting), then wait for the messages.
    let mut answered = false;
    let mut buf = [0u8; 512];
    while !answered {
        assert!(
            std::time::Instant::now() < deadline,
            "the resolver never answered"
        );
        for (i, name) in ["chatgpt.com", "claude.ai"].iter().enumerate() {
            client
                .send_to(&dns_query(i as u16 + 1, name), ("127.0.0.1", dns))
                .expect("send");
        }
        answered = client.recv_from(&mut buf).is_ok();
    }
    // The receiver is down: the sender says so, counts each failed attempt and the
    // incidents waiting (at least the two just recorded), and has sent nothing.
    until("siem degraded with the reason", || {
        let h = http(web, "/healthz");
        h.starts_with("HTTP/1.1 200") && h.contains("\r\n\r\ndegraded\n") && {
            let siem = h.lines().find(|l| l.starts_with("siem: ")).unwrap_or("");
            siem.starts_with(&format!(
                "siem: degraded: syslog to 127.0.0.1:{port}: connect: "
            )) && siem.contains("refused")
                && !siem.contains("(0 incidents waiting)")
        }
    });
    until("failures and lag counted", || {
        metric(web, "aiwarden_syslog_failures_total{reason=\"connect\"}").unwrap_or(0.0) >= 2.0
            && metric(web, "aiwarden_syslog_lag_rows").unwrap_or(0.0) >= 2.0
    });
    assert_eq!(metric(web, "aiwarden_syslog_sent_total"), Some(0.0));
    assert_eq!(
        metric(web, "aiwarden_syslog_failures_total{reason=\"tls\"}"),
        Some(0.0),
        "every reason is there from the start"
    );
    println!(
        "{}",
        http(web, "/healthz").split("\r\n\r\n").nth(1).unwrap_or("")
    );
    let rx = Receiver::start_on(
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("the receiver's port"),
        pki.server.clone(),
        vec![],
    );
    let services = |got: &[Got]| {
        got.iter()
            .filter_map(|g| g.json["unmapped"]["aiwarden"]["service"]["id"].as_str())
            .map(str::to_string)
            .collect::<std::collections::BTreeSet<String>>()
    };
    while services(&rx.got()).len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the receiver got {:?}",
            rx.got()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Delivered: counted, nothing waiting, `siem` ok again.
    until("sent counted, lag 0, siem ok", || {
        metric(web, "aiwarden_syslog_sent_total") == Some(rx.got().len() as f64)
            && metric(web, "aiwarden_syslog_lag_rows") == Some(0.0)
            && http(web, "/healthz").contains("\nsiem: ok\n")
    });
    let pid = child.id().to_string();
    let stopped = std::time::Instant::now();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let status = child.wait().expect("exits");
    assert!(status.success(), "{status:?}");
    assert!(stopped.elapsed() < Duration::from_secs(10), "a prompt stop");
    assert_eq!(rx.violations(), Vec::<String>::new());
    let got = rx.got();
    let counts = tally(&got);
    assert!(counts.values().all(|&n| n == 1), "exactly once: {counts:?}");
    for g in &got {
        assert_eq!(g.site, SITE);
        assert_eq!(g.json["unmapped"]["aiwarden"]["verdict"], "block");
    }
    let chatgpt = got
        .iter()
        .find(|g| g.json["unmapped"]["aiwarden"]["service"]["id"] == "chatgpt")
        .expect("chatgpt");
    assert_eq!(
        chatgpt.json["unmapped"]["aiwarden"]["service"]["baa"],
        "enterprise_only"
    );
    assert_eq!(
        chatgpt.json["evidences"][0]["src_endpoint"]["ip"],
        "127.0.0.1"
    );
    // The daemon's cursor, beside its store, names the last row sent.
    let cursor = read_cursor(&d.join("fleet-syslog.cursor")).expect("cursor");
    let last = counts.keys().next_back().expect("rows");
    assert_eq!(cursor.0, *last);
}
