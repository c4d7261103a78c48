//! Enrolment: what an MSP's enrolment server hands a box for a token (`aiwarden fleet enrol
//! URL --token T`), made into the box's `fleet.toml` and its secret files. Pure: the
//! document's text in, the files' contents out; the shell (`crate::cli`) fetches it over
//! HTTPS, checks the result against the configuration and writes the files.
//!
//! The document is TOML: an optional `site_name` and a `[fleet]` table as `aiwarden.toml`
//! takes it (`bundle_url`, `bundle_keys`, `[fleet.postgres]`, `[fleet.syslog]`, ...), plus
//! what never goes into a configuration file: `fleet.ca_pem` (the MSP's CA, PEM; written to
//! `fleet-ca.pem` and named as `ca_file` wherever one is not set) and
//! `fleet.postgres.password` (written to `fleet-pg.pass`, mode 0600, named as
//! `password_file`). The configuration loader reads `fleet.toml` beside `aiwarden.toml`
//! (see `crate::config`), so the admin's own file is never rewritten.

use std::path::{Path, PathBuf};

/// The most bytes an enrolment document may have.
pub const MAX_DOCUMENT: u64 = 64 * 1024;

/// A file to write: its path, its contents and its mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    /// Where.
    pub path: PathBuf,
    /// What.
    pub contents: String,
    /// Its mode (0600 for a secret, 0644 for a CA).
    pub mode: u32,
}

/// What an enrolment document becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    /// The site's name, when the document gives one.
    pub site_name: Option<String>,
    /// `fleet.toml`'s contents (no secrets).
    pub fleet_toml: String,
    /// The files the secrets go to (written before `fleet.toml`).
    pub secrets: Vec<Secret>,
}

/// Makes `doc` (fetched from `source`, named in the header) into `fleet.toml` and its
/// secret files under `state_dir`. Errors say what is wrong with the document.
pub fn prepare(doc: &str, source: &str, state_dir: &Path, now: &str) -> Result<Enrolment, String> {
    let mut table: toml::Table = doc.parse().map_err(|e: toml::de::Error| {
        format!("the enrolment document is not TOML: {}", e.message())
    })?;
    let site_name = match table.remove("site_name") {
        None => None,
        Some(toml::Value::String(s)) if !s.trim().is_empty() => Some(s),
        Some(_) => return Err("site_name: a non-empty string".into()),
    };
    let fleet = table.remove("fleet");
    if let Some(k) = table.keys().next() {
        return Err(format!(
            "unknown key {k:?}: an enrolment document holds site_name and [fleet]"
        ));
    }
    let Some(toml::Value::Table(mut fleet)) = fleet else {
        return Err("no [fleet] table".into());
    };
    let mut secrets = Vec::new();
    let ca_file = match fleet.remove("ca_pem") {
        None => None,
        Some(toml::Value::String(pem)) if pem.contains("-----BEGIN CERTIFICATE-----") => {
            let path = state_dir.join("fleet-ca.pem");
            secrets.push(Secret {
                path: path.clone(),
                contents: pem,
                mode: 0o644,
            });
            Some(path)
        }
        Some(_) => {
            return Err("fleet.ca_pem: PEM certificates (-----BEGIN CERTIFICATE-----)".into())
        }
    };
    let path_value = |p: &Path| toml::Value::String(p.display().to_string());
    if let Some(ca) = &ca_file {
        fleet.entry("ca_file").or_insert_with(|| path_value(ca));
    }
    for sub in ["postgres", "syslog"] {
        match fleet.get_mut(sub) {
            None => {}
            Some(toml::Value::Table(t)) => {
                if let Some(ca) = &ca_file {
                    t.entry("ca_file").or_insert_with(|| path_value(ca));
                }
                if sub == "postgres" {
                    match t.remove("password") {
                        None => {}
                        Some(toml::Value::String(pw)) if !pw.is_empty() && !pw.contains('\n') => {
                            if t.contains_key("password_file") {
                                return Err(
                                    "fleet.postgres: password and password_file both given".into(),
                                );
                            }
                            let path = state_dir.join("fleet-pg.pass");
                            secrets.push(Secret {
                                path: path.clone(),
                                contents: format!("{pw}\n"),
                                mode: 0o600,
                            });
                            t.insert("password_file".into(), path_value(&path));
                        }
                        Some(_) => return Err("fleet.postgres.password: one line of text".into()),
                    }
                }
            }
            Some(_) => return Err(format!("fleet.{sub}: a table")),
        }
    }
    let mut out = toml::Table::new();
    if let Some(s) = &site_name {
        out.insert("site_name".into(), toml::Value::String(s.clone()));
    }
    out.insert("fleet".into(), toml::Value::Table(fleet));
    let body = toml::to_string(&out).map_err(|e| format!("cannot write fleet.toml: {e}"))?;
    Ok(Enrolment {
        site_name,
        fleet_toml: format!(
            "# Written by `aiwarden fleet enrol` from {source} at {now}.\n\
             # Enrol again to replace it; aiwarden.toml must not hold a [fleet] table too.\n\
             {body}"
        ),
        secrets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"
site_name = "Elm Street Family Practice"
[fleet]
bundle_url = "https://rules.msp.example/aiwarden/rules.bundle"
bundle_keys = ["RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3"]
ca_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
[fleet.postgres]
url = "host=db.msp.example dbname=fleet user=elm"
password = "s3cret pw"
[fleet.syslog]
host = "siem.msp.example"
ca_file = "/etc/aiwarden/siem-ca.pem"
"#;

    #[test]
    fn secrets_go_to_files_and_the_rest_to_fleet_toml() {
        let e = prepare(
            DOC,
            "https://enrol.msp.example/elm",
            Path::new("/var/lib/aiwarden/fleet"),
            "2026-12-02T08:00:00Z",
        )
        .expect("prepares");
        assert_eq!(e.site_name.as_deref(), Some("Elm Street Family Practice"));
        assert!(!e.fleet_toml.contains("s3cret"), "{}", e.fleet_toml);
        assert!(
            !e.fleet_toml.contains("BEGIN CERTIFICATE"),
            "{}",
            e.fleet_toml
        );
        assert!(e
            .fleet_toml
            .contains("password_file = \"/var/lib/aiwarden/fleet/fleet-pg.pass\""));
        // The syslog section keeps the CA it names; the others get the document's.
        assert!(e
            .fleet_toml
            .contains("ca_file = \"/etc/aiwarden/siem-ca.pem\""));
        assert_eq!(
            e.fleet_toml.matches("fleet-ca.pem").count(),
            2,
            "{}",
            e.fleet_toml
        );
        let pw = e
            .secrets
            .iter()
            .find(|s| s.path.ends_with("fleet-pg.pass"))
            .expect("pw");
        assert_eq!((pw.contents.as_str(), pw.mode), ("s3cret pw\n", 0o600));
        let t: toml::Table = e.fleet_toml.parse().expect("toml");
        assert!(t["fleet"]["bundle_keys"]
            .as_array()
            .is_some_and(|k| k.len() == 1));
    }

    #[test]
    fn a_bad_document_is_refused_saying_why() {
        for (doc, says) in [
            ("[fleet", "not TOML"),
            ("site_name = \"x\"\n", "no [fleet] table"),
            ("mode = \"enforce\"\n[fleet]\n", "unknown key \"mode\""),
            ("[fleet]\nca_pem = \"hello\"\n", "fleet.ca_pem"),
            (
                "[fleet.postgres]\nurl = \"host=x\"\npassword = \"a\\nb\"\n",
                "one line",
            ),
            (
                "[fleet.postgres]\nurl = \"host=x\"\npassword = \"a\"\npassword_file = \"/p\"\n",
                "both given",
            ),
        ] {
            let e = prepare(doc, "u", Path::new("/s"), "t").expect_err(doc);
            assert!(e.contains(says), "{doc}: {e}");
        }
    }

    #[test]
    fn the_configuration_reads_fleet_toml_and_names_its_lines() {
        use crate::config::Config;
        let main = Path::new("/etc/aiwarden/aiwarden.toml");
        let enrolled = Path::new("/etc/aiwarden/fleet.toml");
        let e = prepare(DOC, "u", Path::new("/var/lib/aiwarden/fleet"), "t").expect("prepares");
        let c = Config::parse_with(
            main,
            "timezone = \"UTC\"\n",
            Some((enrolled, &e.fleet_toml)),
        )
        .expect("loads");
        assert_eq!(c.site_name, "Elm Street Family Practice");
        assert!(c.fleet_postgres.is_some() && c.fleet_syslog.is_some());
        let both = Config::parse_with(
            main,
            "timezone = \"UTC\"\n[fleet]\npoll_interval = \"1h\"\n",
            Some((enrolled, &e.fleet_toml)),
        )
        .expect_err("two [fleet]")
        .to_string();
        assert!(
            both.contains("aiwarden.toml:2: [fleet] is set here and in /etc/aiwarden/fleet.toml"),
            "{both}"
        );
        let bad = Config::parse_with(
            main,
            "",
            Some((enrolled, "[fleet]\npoll_interval = \"1s\"\n")),
        )
        .expect_err("too short")
        .to_string();
        assert!(
            bad.contains("fleet.toml:2: fleet.poll_interval must be at least"),
            "{bad}"
        );
    }
}
