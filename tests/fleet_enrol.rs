//! `aiwarden fleet enrol` against a real HTTPS enrolment server on loopback (rustls, a
//! certificate from a CA the test makes, a bearer token required): a wrong token and an
//! untrusted certificate are refused with nothing written; a good enrolment writes
//! `fleet.toml` (0600, no secret in it) and the password (0600) and CA files, and the
//! configuration then loads with the site name, the bundle URL and key, and the roll-up
//! targets; a site name that differs from aiwarden.toml's is refused, the enrolment before
//! it kept. With root and the `postgresql` package, the enrolled box then pushes into a real
//! PostgreSQL with the credentials it was given (TLS checked against the enrolled CA).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

#[path = "support/pg.rs"]
#[allow(dead_code)]
mod pg;
#[path = "support/pki.rs"]
mod pki;
#[path = "support/static_https.rs"]
#[allow(dead_code)]
mod static_https;

const BIN: &str = env!("CARGO_BIN_EXE_aiwarden");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("aiwarden runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn enrol_writes_the_fleet_settings_and_the_box_uses_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let pki = pki::pki(root, "msp-enrol-ca", &["127.0.0.1"]);
    let srv = static_https::Static::start(pki.server.clone());
    *srv.token.lock().expect("lock") = Some("t0k3n-elm-street".into());

    // The MSP's bundle key.
    let keys = root.join("keys");
    let k = run(&["bundle", "keygen", "--out", keys.to_str().expect("utf-8")]);
    assert!(k.status.success(), "{}", text(&k));
    let pubkey = std::fs::read_to_string(keys.join("aiwarden-bundle.pub")).expect("pub");
    let pubkey = pubkey
        .lines()
        .find(|l| l.starts_with("RW"))
        .expect("a key line")
        .to_string();

    // A real PostgreSQL when the machine can run one; else a name only (no push).
    let pg = match pg::unavailable() {
        None => Some(pg::Pg::start()),
        Some(why) => {
            println!("the push with the enrolled credentials is skipped: {why}");
            None
        }
    };
    let mut ca_pem = std::fs::read_to_string(&pki.ca_file).expect("ca");
    let (pg_url, pg_password) = match &pg {
        Some(p) => {
            ca_pem += &std::fs::read_to_string(&p.ca_file).expect("pg ca");
            (
                p.url(),
                std::fs::read_to_string(&p.password_file)
                    .expect("pw")
                    .trim()
                    .to_string(),
            )
        }
        None => (
            "host=db.msp.example dbname=fleet user=elm".to_string(),
            "not-used".to_string(),
        ),
    };
    let doc = format!(
        "site_name = \"Elm Street Family Practice\"\n\
         [fleet]\nbundle_url = \"{}\"\nbundle_keys = [\"{pubkey}\"]\npoll_interval = \"15m\"\n\
         ca_pem = '''\n{ca_pem}'''\n\
         [fleet.postgres]\nurl = \"{pg_url}\"\npassword = \"{pg_password}\"\ninterval_secs = 60\n",
        srv.url()
    );
    srv.files
        .lock()
        .expect("lock")
        .insert("/enrol/elm".into(), doc.into_bytes());
    let url = format!("https://{}/enrol/elm", srv.addr);

    let etc = root.join("etc");
    std::fs::create_dir_all(&etc).expect("etc");
    let config = etc.join("aiwarden.toml");
    let state = root.join("state");
    let base = format!(
        "timezone = \"UTC\"\n[store]\npath = \"{}\"\n",
        state.join("incidents.db").display()
    );
    std::fs::write(&config, &base).expect("config");
    let fleet_toml = etc.join("fleet.toml");
    let cfg = config.to_str().expect("utf-8");
    let ca = pki.ca_file.to_str().expect("utf-8");

    // A wrong token: the server says 401; nothing is written.
    let o = run(&[
        "fleet",
        "enrol",
        &url,
        "--token",
        "wrong",
        "--ca-file",
        ca,
        "--config",
        cfg,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("enrolment https://127.0.0.1:") && text(&o).contains("401"),
        "{}",
        text(&o)
    );
    assert!(!fleet_toml.exists());

    // The server's certificate checked against the system's roots: refused.
    let tok = root.join("token");
    std::fs::write(&tok, "t0k3n-elm-street\n").expect("token");
    let tokf = tok.to_str().expect("utf-8");
    let o = run(&[
        "fleet",
        "enrol",
        &url,
        "--token-file",
        tokf,
        "--config",
        cfg,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).to_lowercase().contains("certificate"),
        "{}",
        text(&o)
    );
    assert!(!fleet_toml.exists());

    // Enrolled.
    let o = run(&[
        "fleet",
        "enrol",
        &url,
        "--token-file",
        tokf,
        "--ca-file",
        ca,
        "--config",
        cfg,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("site      Elm Street Family Practice"),
        "{}",
        text(&o)
    );
    assert_eq!(mode(&fleet_toml), 0o600);
    let written = std::fs::read_to_string(&fleet_toml).expect("fleet.toml");
    assert!(
        !written.contains(&pg_password),
        "no password in fleet.toml: {written}"
    );
    assert!(!written.contains("BEGIN CERTIFICATE"), "{written}");
    let pass = state.join("fleet").join("fleet-pg.pass");
    assert_eq!(mode(&pass), 0o600);
    assert_eq!(
        std::fs::read_to_string(&pass).expect("pass").trim(),
        pg_password
    );
    let c = aiwarden::config::Config::load(&config).expect("the configuration loads");
    assert_eq!(c.site_name, "Elm Street Family Practice");
    assert_eq!(c.fleet.bundle_url.as_deref(), Some(srv.url().as_str()));
    assert_eq!(c.fleet.bundle_keys, std::slice::from_ref(&pubkey));
    assert_eq!(c.fleet.poll_interval.as_secs(), 900);
    let p = c.fleet_postgres.as_ref().expect("postgres");
    assert_eq!(p.password_file.as_deref(), Some(pass.as_path()));
    let enrolled_ca = state.join("fleet").join("fleet-ca.pem");
    assert_eq!(p.ca_file.as_deref(), Some(enrolled_ca.as_path()));
    assert_eq!(c.fleet.ca_file.as_deref(), Some(enrolled_ca.as_path()));

    // A site name that differs from aiwarden.toml's: refused naming both; the enrolment
    // in force stays.
    std::fs::write(&config, format!("site_name = \"Oak Lane\"\n{base}")).expect("config");
    let o = run(&[
        "fleet",
        "enrol",
        &url,
        "--token-file",
        tokf,
        "--ca-file",
        ca,
        "--config",
        cfg,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(
            "aiwarden.toml:1: site_name \"Oak Lane\" here, \"Elm Street Family Practice\" in"
        ),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read_to_string(&fleet_toml).expect("kept"), written);
    std::fs::write(&config, &base).expect("config");

    // The enrolled box pushes with what it was given.
    if let Some(pg) = &pg {
        let mut s = aiwarden::store::Store::open(&state.join("incidents.db")).expect("store");
        s.record_event(
            aiwarden::store::now_micros(),
            "rules_loaded",
            "aiwarden",
            "enrolled",
        )
        .expect("a row");
        drop(s);
        let o = run(&["fleet", "push", "--config", cfg]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(
            text(&o).contains("site Elm Street Family Practice: copied 1 rows"),
            "{}",
            text(&o)
        );
        assert_eq!(
            pg.psql("fleet", "SELECT site FROM aiwarden_site"),
            "Elm Street Family Practice"
        );
    }
}
