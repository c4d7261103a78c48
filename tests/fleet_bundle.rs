//! Signed rule bundles end to end: a real HTTPS server on 127.0.0.1 (rustls, a certificate
//! from a CA made here with rcgen) serves bundles built and signed with real minisign
//! Ed25519 keys; the updater fetches, verifies and swaps them into a live rule set. A good
//! bundle's verdicts are live; a tampered one, one signed by an unknown key and an older
//! one are each refused and the rules in force stay; a second key is accepted after
//! rotation; a server the CA did not certify is not trusted.

#[path = "support/pki.rs"]
mod pki;
#[path = "support/static_https.rs"]
mod static_https;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiwarden::fleet::bundle::{self, Built};
use aiwarden::fleet::update::{self, Outcome, Source};
use aiwarden::policy::{Client, Live, Mode, RuleDirs, Verdict};
use aiwarden::Error;
use minisign::KeyPair;
use static_https::Static;

fn catalog(id: &str, hosts: &[&str]) -> String {
    let patterns: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
    format!(
        r#"
[[service]]
id = "{id}"
name = "{id}"
vendor = "Example"
category = "chat"
sources = ["https://example.org/source"]
reviewed = "2026-12-02"
[[service.hosts]]
tier = "consumer"
patterns = [{}]
"#,
        patterns.join(", ")
    )
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn verdict(live: &Live, host: &str) -> Verdict {
    live.current()
        .judge(host, &Client::NONE, Mode::Enforce)
        .verdict
}

fn built(version: u64, hosts: &[&str], key: &KeyPair) -> Built {
    let files = vec![("catalog/fleet.toml".to_string(), catalog("fleet-ai", hosts))];
    let at = "2026-12-02T04:00:00Z".parse().expect("time");
    bundle::build(&files, version, at, &key.sk).expect("built")
}

/// A box: shipped rules (chatgpt.com in the catalog; the site allows
/// site-allowed.example), a live rule set, a state directory.
struct Appliance {
    _dir: tempfile::TempDir,
    live: Arc<Live>,
    state: PathBuf,
    shipped: PathBuf,
    ca_file: PathBuf,
}

fn a_box(dir: tempfile::TempDir, ca_file: PathBuf) -> Appliance {
    let rules = dir.path().join("rules");
    write(
        &rules.join("catalog/shipped.toml"),
        &catalog("chatgpt", &["chatgpt.com"]),
    );
    write(&rules.join("site/allow.list"), "site-allowed.example\n");
    let live = Arc::new(Live::load(&RuleDirs::under(&rules)).expect("shipped rules"));
    Appliance {
        state: dir.path().join("state"),
        shipped: rules.join("catalog"),
        live,
        _dir: dir,
        ca_file,
    }
}

impl Appliance {
    fn poll(&self, server: &Static, keys: &[&KeyPair]) -> aiwarden::Result<Outcome> {
        let source = Source {
            url: server.url(),
            ca_file: Some(self.ca_file.clone()),
            timeout: Duration::from_secs(20),
        };
        let keys: Vec<_> = keys.iter().map(|k| k.pk.clone()).collect();
        update::poll_once(&source, &keys, &self.state, &self.live)
    }

    /// The rules in force are those of bundle `version` (or the shipped ones).
    fn assert_in_force(&self, version: Option<u64>, rules_version: u64) {
        assert_eq!(self.live.version(), rules_version);
        assert_eq!(
            update::version_in_force(&self.state).expect("state"),
            version
        );
        let catalog = match version {
            Some(v) => self.state.join(format!("bundles/{v}/catalog")),
            None => self.shipped.clone(),
        };
        assert_eq!(self.live.dirs().catalog, catalog);
    }
}

fn setup() -> (Static, Appliance) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki::pki(dir.path(), "msp-ca", &["127.0.0.1"]);
    let server = Static::start(pki.server.clone());
    (server, a_box(dir, pki.ca_file))
}

#[test]
fn good_bundle_applied_and_bad_ones_refused_with_the_rules_kept() {
    let (server, b) = setup();
    let (key, stranger) = (
        KeyPair::generate_unencrypted_keypair().expect("key"),
        KeyPair::generate_unencrypted_keypair().expect("key"),
    );
    assert_eq!(verdict(&b.live, "chatgpt.com"), Verdict::Block);
    assert_eq!(verdict(&b.live, "new-ai.example"), Verdict::Allow);

    // A good bundle: only it lists new-ai.example; the site's allow list still wins.
    let v2 = built(2, &["new-ai.example", "site-allowed.example"], &key);
    server.publish(&v2.bundle, &v2.signature);
    let r = b.poll(&server, &[&key]);
    assert_eq!(update::event_of(&r).map(|(e, _)| e), Some("bundle_applied"));
    let Ok(Outcome::Applied(a)) = r else {
        panic!("not applied: {r:?}")
    };
    assert_eq!((a.version, a.previous, a.services), (2, None, 1));
    assert_eq!(a.key_id, bundle::key_id(key.pk.keynum()));
    b.assert_in_force(Some(2), 2);
    assert_eq!(verdict(&b.live, "new-ai.example"), Verdict::Block);
    assert_eq!(verdict(&b.live, "chatgpt.com"), Verdict::Allow);
    assert_eq!(verdict(&b.live, "site-allowed.example"), Verdict::Allow);
    // A reload reads the bundle's catalog, not the shipped one.
    b.live.reload().expect("reload");
    assert_eq!(verdict(&b.live, "new-ai.example"), Verdict::Block);
    b.assert_in_force(Some(2), 3);

    // The same bundle again: nothing to do.
    assert_eq!(
        b.poll(&server, &[&key]).expect("current"),
        Outcome::Current { version: 2 }
    );

    let refused = |r: aiwarden::Result<Outcome>, what: &str| -> Error {
        let ev = update::event_of(&r).expect("an event");
        assert_eq!(ev.0, "bundle_refused", "{what}");
        assert!(
            ev.1.starts_with(&format!("bundle {}: ", server.url())),
            "{what}: {}",
            ev.1
        );
        // The rules in force stay.
        b.assert_in_force(Some(2), 3);
        assert_eq!(verdict(&b.live, "new-ai.example"), Verdict::Block);
        assert_eq!(verdict(&b.live, "other-ai.example"), Verdict::Allow);
        r.expect_err(what)
    };

    // Tampered: one byte of a newer, well-signed bundle changed.
    let mut v3 = built(3, &["new-ai.example", "other-ai.example"], &key);
    let at = v3.bundle.len() / 2;
    v3.bundle[at] ^= 0x20;
    server.publish(&v3.bundle, &v3.signature);
    let e = refused(b.poll(&server, &[&key]), "tampered");
    assert!(matches!(e, Error::BundleBadSignature { .. }), "{e}");
    assert!(e.to_string().contains("altered or damaged"), "{e}");

    // Signed by a key that is not pinned.
    let v3 = built(3, &["new-ai.example", "other-ai.example"], &stranger);
    server.publish(&v3.bundle, &v3.signature);
    let e = refused(b.poll(&server, &[&key]), "unknown key");
    assert!(matches!(e, Error::BundleUnknownKey { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&bundle::key_id(stranger.pk.keynum())),
        "{e}"
    );

    // Older than the one in force, well signed.
    let v1 = built(1, &["other-ai.example"], &key);
    server.publish(&v1.bundle, &v1.signature);
    let e = refused(b.poll(&server, &[&key]), "rollback");
    assert!(
        matches!(
            e,
            Error::BundleRollback {
                version: 1,
                in_force: 2,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("rollback refused"), "{e}");

    // A signature file that is not one.
    server.publish(&v1.bundle, "not a signature");
    let e = refused(b.poll(&server, &[&key]), "no signature");
    assert!(matches!(e, Error::BundleMalformed { .. }), "{e}");

    // Nothing published: a fetch failure, not a refusal, and nothing changes.
    server.files.lock().expect("lock").clear();
    let r = b.poll(&server, &[&key]);
    assert!(matches!(r, Err(Error::BundleFetch { .. })), "{r:?}");
    assert!(
        r.as_ref().is_err_and(|e| e.to_string().contains("404")),
        "{r:?}"
    );
    assert_eq!(update::event_of(&r), None);
    b.assert_in_force(Some(2), 3);
}

#[test]
fn a_second_key_is_accepted_after_rotation() {
    let (server, b) = setup();
    let (old, new) = (
        KeyPair::generate_unencrypted_keypair().expect("key"),
        KeyPair::generate_unencrypted_keypair().expect("key"),
    );
    let v5 = built(5, &["five.example"], &old);
    server.publish(&v5.bundle, &v5.signature);
    assert!(matches!(b.poll(&server, &[&old]), Ok(Outcome::Applied(_))));
    // Rotation, step 1: the boxes pin both keys; the new key signs from now on.
    let v6 = built(6, &["six.example"], &new);
    server.publish(&v6.bundle, &v6.signature);
    let r = b.poll(&server, &[&old, &new]).expect("new key pinned");
    let Outcome::Applied(a) = r else {
        panic!("{r:?}")
    };
    assert_eq!((a.version, a.previous), (6, Some(5)));
    assert_eq!(a.key_id, bundle::key_id(new.pk.keynum()));
    assert_eq!(verdict(&b.live, "six.example"), Verdict::Block);
    assert_eq!(verdict(&b.live, "five.example"), Verdict::Allow);
    // Step 2: the old key is dropped; a bundle it signs is refused.
    let v7 = built(7, &["seven.example"], &old);
    server.publish(&v7.bundle, &v7.signature);
    let e = b.poll(&server, &[&new]).expect_err("old key dropped");
    assert!(matches!(e, Error::BundleUnknownKey { .. }), "{e}");
    b.assert_in_force(Some(6), 3);
    // The bundle before the one in force is kept, older ones removed.
    let v8 = built(8, &["eight.example"], &new);
    server.publish(&v8.bundle, &v8.signature);
    b.poll(&server, &[&new]).expect("v8");
    let mut kept: Vec<String> = std::fs::read_dir(b.state.join("bundles"))
        .expect("bundles")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    assert_eq!(kept, ["6", "8", "in-force"]);
    // What a restart reads.
    let f = update::in_force(&b.state)
        .expect("state")
        .expect("in force");
    assert_eq!(
        (f.version, f.catalog),
        (8, b.state.join("bundles/8/catalog"))
    );
}

#[test]
fn only_a_certified_https_server_is_trusted() {
    let (server, b) = setup();
    let key = KeyPair::generate_unencrypted_keypair().expect("key");
    let v2 = built(2, &["new-ai.example"], &key);
    server.publish(&v2.bundle, &v2.signature);
    // A CA that did not sign the server's certificate.
    let other = tempfile::tempdir().expect("tempdir");
    let other_ca = pki::pki(other.path(), "other-ca", &["127.0.0.1"]).ca_file;
    let keys = [key.pk.clone()];
    let source = |url: String, ca: &Path| Source {
        url,
        ca_file: Some(ca.to_path_buf()),
        timeout: Duration::from_secs(20),
    };
    let r = update::poll_once(&source(server.url(), &other_ca), &keys, &b.state, &b.live);
    assert!(matches!(r, Err(Error::BundleFetch { .. })), "{r:?}");
    let text = r.expect_err("untrusted").to_string();
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    // Plain http is never fetched.
    let plain = server.url().replace("https://", "http://");
    let r = update::poll_once(&source(plain, &b.ca_file), &keys, &b.state, &b.live);
    assert!(r.is_err_and(|e| e.to_string().contains("only https")));
    b.assert_in_force(None, 1);
    // The right CA: applied.
    let r = update::poll_once(&source(server.url(), &b.ca_file), &keys, &b.state, &b.live);
    assert!(matches!(r, Ok(Outcome::Applied(_))), "{r:?}");
}

#[test]
fn a_good_bundle_is_live_within_one_poll_interval() {
    let (server, b) = setup();
    let key = KeyPair::generate_unencrypted_keypair().expect("key");
    let v2 = built(2, &["two.example"], &key);
    server.publish(&v2.bundle, &v2.signature);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let interval = Duration::from_millis(800);
    let source = Source {
        url: server.url(),
        ca_file: Some(b.ca_file.clone()),
        timeout: Duration::from_secs(20),
    };
    let task = rt.spawn(update::run(
        source,
        vec![key.pk.clone()],
        b.state.clone(),
        b.live.clone(),
        interval,
        stopped,
        move |r: &aiwarden::Result<Outcome>| {
            let r = match r {
                Ok(o) => Ok(o.clone()),
                Err(e) => Err(e.to_string()),
            };
            let _ = tx.send((Instant::now(), r));
        },
    ));
    // The first poll is at once.
    let (_, first) = rx.recv_timeout(Duration::from_secs(20)).expect("a poll");
    assert!(
        matches!(first, Ok(Outcome::Applied(ref a)) if a.version == 2),
        "{first:?}"
    );
    assert_eq!(verdict(&b.live, "two.example"), Verdict::Block);

    // A newer bundle is in force by the next poll: within one interval of publishing.
    let published = Instant::now();
    let v3 = built(3, &["three.example"], &key);
    server.publish(&v3.bundle, &v3.signature);
    loop {
        let (at, r) = rx.recv_timeout(interval * 3).expect("polls go on");
        match r {
            Ok(Outcome::Applied(a)) => {
                assert_eq!(a.version, 3);
                let took = at - published;
                // One interval, plus the fetch and swap itself.
                assert!(took <= interval + Duration::from_secs(2), "{took:?}");
                break;
            }
            Ok(Outcome::Current { version: 2 }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(verdict(&b.live, "three.example"), Verdict::Block);
    assert_eq!(verdict(&b.live, "two.example"), Verdict::Allow);

    // The shutdown signal ends the task.
    stop.send(true).expect("signal");
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(20), task).await })
        .expect("the task ends")
        .expect("no panic");
}

const BIN: &str = env!("CARGO_BIN_EXE_aiwarden");

fn aiwarden(args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(args)
        .output()
        .expect("aiwarden runs")
}

#[test]
fn the_cli_makes_keys_builds_and_verifies_the_shipped_catalog() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let d = |p: &str| dir.path().join(p).to_string_lossy().into_owned();
    for k in ["old", "new"] {
        let out = aiwarden(&["bundle", "keygen", "--out", &d(k)]);
        assert!(out.status.success(), "{out:?}");
        let mode = std::fs::metadata(d(&format!("{k}/aiwarden-bundle.key")))
            .expect("secret key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A signing key is never overwritten.
    let again = aiwarden(&["bundle", "keygen", "--out", &d("old")]);
    assert_eq!(again.status.code(), Some(2));
    // The repository's whole catalog, as an MSP would ship it.
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let out = aiwarden(&[
        "bundle",
        "build",
        &rules.to_string_lossy(),
        "--key",
        &d("new/aiwarden-bundle.key"),
        "--version",
        "12",
        "--out",
        &d("rules.bundle"),
        "--created",
        "2026-12-02T05:00:00Z",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(Path::new(&d("rules.bundle.minisig")).exists());
    // Verified with the old and the new key pinned (rotation), the new key given as its
    // `RW...` line.
    let new_pub = std::fs::read_to_string(d("new/aiwarden-bundle.pub")).expect("pub");
    let new_line = new_pub.lines().nth(1).expect("key line").to_string();
    let (bundle_path, old_pub) = (d("rules.bundle"), d("old/aiwarden-bundle.pub"));
    let verify = |extra: &[&str]| {
        let mut args = vec!["bundle", "verify", &bundle_path, "--pubkey", &old_pub];
        args.extend_from_slice(extra);
        aiwarden(&args)
    };
    let ok = verify(&["--pubkey", &new_line, "--in-force", "11"]);
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{ok:?}");
    assert!(
        text.contains("version 12, created 2026-12-02T05:00:00Z"),
        "{text}"
    );
    assert!(text.contains("newer than version 11 in force"), "{text}");
    let services = aiwarden::policy::RuleSet::load_dir(&rules)
        .expect("shipped rules")
        .services()
        .count();
    assert!(text.contains(&format!(" {services} services")), "{text}");
    let same = verify(&["--pubkey", &new_line, "--in-force", "12"]);
    assert!(String::from_utf8_lossy(&same.stdout).contains("nothing to do"));
    // Refusals: exit 2 and the reason.
    let older = verify(&["--pubkey", &new_line, "--in-force", "13"]);
    assert_eq!(older.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&older.stderr).contains("rollback refused"));
    let unknown = verify(&[]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not one of the pinned keys"));
    let mut bytes = std::fs::read(d("rules.bundle")).expect("bundle");
    bytes[700] ^= 1;
    std::fs::write(d("rules.bundle"), bytes).expect("write");
    let tampered = verify(&["--pubkey", &new_line]);
    assert_eq!(tampered.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&tampered.stderr).contains("altered or damaged"));
}

/// One DNS query over UDP; the answer's RCODE (3: NXDOMAIN, the block answer).
fn rcode(port: u16, name: &str) -> u8 {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    sock.send_to(&q, ("127.0.0.1", port)).expect("send");
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("an answer");
    assert!(n >= 12);
    buf[3] & 0x0f
}

fn metric_line(port: u16, name: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut s = String::new();
    c.read_to_string(&mut s).ok()?;
    s.lines()
        .find(|l| l.starts_with(name))
        .map(ToString::to_string)
}

#[test]
fn the_daemon_polls_applies_records_and_restarts_on_the_bundle_in_force() {
    let (server, b) = setup();
    let key = KeyPair::generate_unencrypted_keypair().expect("key");
    let v2 = built(2, &["fleet-only.example"], &key);
    server.publish(&v2.bundle, &v2.signature);
    let d = b.state.parent().expect("dir").to_path_buf();
    let free = || {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .expect("port")
    };
    let (dns, http) = (free(), {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    });
    let config = d.join("aiwarden.toml");
    std::fs::write(
        &config,
        format!(
            "mode = \"enforce\"\nrules = \"rules\"\n[dns]\nlisten = [\"127.0.0.1:{dns}\"]\n\
             upstreams = [\"127.0.0.1:9\"]\ntimeout_ms = 200\n[store]\npath = \"incidents.db\"\n\
             [metrics]\nlisten = \"127.0.0.1:{http}\"\n[fleet]\nbundle_url = \"{}\"\n\
             bundle_keys = [\"{}\"]\npoll_interval = \"10s\"\nca_file = \"{}\"\nstate_dir = \"state\"\n",
            server.url(),
            key.pk.to_base64(),
            b.ca_file.display()
        ),
    )
    .expect("config");
    let start = || {
        std::process::Command::new(BIN)
            .args(["run", "--config"])
            .arg(&config)
            .env("AIWARDEN_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("daemon starts")
    };
    let wait_for = |what: &str, f: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let stop = |mut child: std::process::Child| {
        let pid = child.id().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(killed.success());
        let status = child.wait().expect("wait");
        let mut log = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut log);
        }
        assert!(status.success(), "{status:?}\n{log}");
        log
    };

    let child = start();
    // The first poll is at start: version 2 of the rules is the bundle.
    wait_for("the bundle applied", &|| {
        metric_line(http, "aiwarden_rules_version").as_deref() == Some("aiwarden_rules_version 2")
    });
    assert_eq!(rcode(dns, "fleet-only.example"), 3);
    // A newer bundle: in force within one poll interval (10 s) of publishing.
    let published = Instant::now();
    let v3 = built(3, &["fleet-only.example", "fleet-three.example"], &key);
    server.publish(&v3.bundle, &v3.signature);
    wait_for("the second bundle applied", &|| {
        metric_line(http, "aiwarden_rules_version").as_deref() == Some("aiwarden_rules_version 3")
    });
    assert!(
        published.elapsed() <= Duration::from_secs(12),
        "{:?}",
        published.elapsed()
    );
    assert_eq!(rcode(dns, "fleet-three.example"), 3);
    assert_eq!(
        metric_line(http, "aiwarden_bundle_version").as_deref(),
        Some("aiwarden_bundle_version 3")
    );
    assert_eq!(
        metric_line(http, "aiwarden_bundle_polls_total{result=\"applied\"}").as_deref(),
        Some("aiwarden_bundle_polls_total{result=\"applied\"} 2")
    );
    // Each swap is also the rules' own change, recorded as a reload's would be (by the
    // housekeeping thread, within a second).
    let rules_loaded = || {
        aiwarden::store::Store::open_read_only(&d.join("incidents.db"))
            .and_then(|s| s.events(0, i64::MAX))
            .map(|e| e.into_iter().filter(|e| e.event == "rules_loaded").count())
            .unwrap_or(0)
    };
    wait_for("the new rules recorded", &|| rules_loaded() >= 2);
    let log = stop(child);
    assert!(log.contains("rule bundle applied"), "{log}");

    // The chained log holds both updates.
    let store = aiwarden::store::Store::open_read_only(&d.join("incidents.db")).expect("store");
    let applied: Vec<String> = store
        .events(0, i64::MAX)
        .expect("events")
        .into_iter()
        .filter(|e| e.event == "bundle_applied")
        .map(|e| e.detail)
        .collect();
    assert_eq!(applied.len(), 2, "{applied:?}");
    assert!(
        applied[1].starts_with("version 3, signed by"),
        "{applied:?}"
    );
    drop(store);

    // A restart with the server gone starts on the bundle in force, not the shipped catalog.
    drop(server);
    let child = start();
    wait_for("the daemon up", &|| {
        metric_line(http, "aiwarden_rules_version").is_some()
    });
    assert_eq!(rcode(dns, "fleet-three.example"), 3);
    assert_eq!(
        metric_line(http, "aiwarden_bundle_version").as_deref(),
        Some("aiwarden_bundle_version 3")
    );
    wait_for("the failed poll counted", &|| {
        metric_line(http, "aiwarden_bundle_polls_total{result=\"unreachable\"}").as_deref()
            == Some("aiwarden_bundle_polls_total{result=\"unreachable\"} 1")
    });
    let log = stop(child);
    assert!(log.contains("the signed bundle in force"), "{log}");
}

/// The stock `minisign` tool (scripts/setup-debian.sh installs it) verifies a bundle
/// `aiwarden bundle build` signed, and `aiwarden bundle build` signs with a key it made.
#[test]
fn the_stock_minisign_tool_agrees() {
    let Ok(v) = std::process::Command::new("minisign").arg("-v").output() else {
        println!(
            "skipped: the minisign tool is not installed (scripts/setup-debian.sh installs it)"
        );
        return;
    };
    assert!(v.status.success());
    let dir = tempfile::tempdir().expect("tempdir");
    let d = |p: &str| dir.path().join(p).to_string_lossy().into_owned();
    // A key pair made by minisign, without a password (-W).
    let made = std::process::Command::new("minisign")
        .args(["-G", "-W", "-p", &d("msp.pub"), "-s", &d("msp.key")])
        .output()
        .expect("minisign -G");
    assert!(made.status.success(), "{made:?}");
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let out = aiwarden(&[
        "bundle",
        "build",
        &rules.to_string_lossy(),
        "--key",
        &d("msp.key"),
        "--version",
        "1",
        "--out",
        &d("rules.bundle"),
    ]);
    assert!(out.status.success(), "{out:?}");
    let checked = std::process::Command::new("minisign")
        .args(["-V", "-p", &d("msp.pub"), "-m", &d("rules.bundle")])
        .output()
        .expect("minisign -V");
    let said = String::from_utf8_lossy(&checked.stdout).into_owned()
        + &String::from_utf8_lossy(&checked.stderr);
    assert!(checked.status.success(), "{said}");
    assert!(
        said.contains("Trusted comment: aiwarden-bundle format:1 version:1 created:"),
        "{said}"
    );
    let ours = aiwarden(&[
        "bundle",
        "verify",
        &d("rules.bundle"),
        "--pubkey",
        &d("msp.pub"),
    ]);
    assert!(ours.status.success(), "{ours:?}");
    // And minisign refuses the bundle once a byte changes, as aiwarden does.
    let mut bytes = std::fs::read(d("rules.bundle")).expect("bundle");
    bytes[900] ^= 1;
    std::fs::write(d("rules.bundle"), bytes).expect("write");
    let refused = std::process::Command::new("minisign")
        .args(["-V", "-p", &d("msp.pub"), "-m", &d("rules.bundle")])
        .output()
        .expect("minisign -V");
    assert!(!refused.status.success());
}
