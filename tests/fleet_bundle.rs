//! Signed rule bundles end to end: a real HTTPS server on 127.0.0.1 (rustls, a certificate
//! from a CA made here with rcgen) serves bundles built and signed with real minisign
//! Ed25519 keys; the updater fetches, verifies and swaps them into a live rule set. A good
//! bundle's verdicts are live; a tampered one, one signed by an unknown key and an older
//! one are each refused and the rules in force stay; a second key is accepted after
//! rotation; a server the CA did not certify is not trusted.

#[path = "support/pki.rs"]
mod pki;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aiwarden::fleet::bundle::{self, Built};
use aiwarden::fleet::update::{self, Outcome, Source};
use aiwarden::policy::{Client, Live, Mode, RuleDirs, Verdict};
use aiwarden::Error;
use minisign::KeyPair;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_rustls::TlsAcceptor;

/// A static HTTPS file server: GET PATH answers the bytes last published at PATH, or 404.
struct Static {
    addr: SocketAddr,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Static {
    fn start(tls: Arc<rustls::ServerConfig>) -> Static {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let files = Arc::new(Mutex::new(HashMap::<String, Vec<u8>>::new()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = files.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let acceptor = TlsAcceptor::from(tls);
                loop {
                    tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => {
                            let Ok((tcp, _)) = accepted else { continue };
                            let (acceptor, files) = (acceptor.clone(), shared.clone());
                            tokio::spawn(async move {
                                let Ok(tls) = acceptor.accept(tcp).await else { return };
                                let mut io = BufReader::new(tls);
                                let mut line = String::new();
                                if io.read_line(&mut line).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                                loop {
                                    let mut h = String::new();
                                    if io.read_line(&mut h).await.unwrap_or(0) == 0 || h.trim().is_empty() {
                                        break;
                                    }
                                }
                                let body = files.lock().expect("lock").get(&path).cloned();
                                let (status, body) = match body {
                                    Some(b) => ("200 OK", b),
                                    None => ("404 Not Found", b"not here".to_vec()),
                                };
                                let head = format!(
                                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                    body.len()
                                );
                                let mut s = io.into_inner();
                                let _ = s.write_all(head.as_bytes()).await;
                                let _ = s.write_all(&body).await;
                                let _ = s.shutdown().await;
                            });
                        }
                    }
                }
            });
        });
        Static {
            addr,
            files,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Publishes a bundle at /rules.bundle and its signature beside it.
    fn publish(&self, bundle: &[u8], signature: &str) {
        let mut f = self.files.lock().expect("lock");
        f.insert("/rules.bundle".into(), bundle.to_vec());
        f.insert(
            "/rules.bundle.minisig".into(),
            signature.as_bytes().to_vec(),
        );
    }

    fn url(&self) -> String {
        format!("https://{}/rules.bundle", self.addr)
    }
}

impl Drop for Static {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

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
    live: Live,
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
    let live = Live::load(&RuleDirs::under(&rules)).expect("shipped rules");
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
