//! Runs `aiwarden console` for a test: a configuration in a temporary directory, a store
//! seeded through the library, accounts added with `aiwarden user add`, the binary started
//! on 127.0.0.1 port 0 and its address read from what it prints; stopped (by its PID) when
//! dropped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use aiwarden::incident::IncidentRecord;
use aiwarden::policy::{Mac, Mode, Verdict};
use aiwarden::store::Store;

/// Every test account's password.
pub(crate) const PASSWORD: &str = "correct horse battery";

/// A console serving a store of its own.
pub(crate) struct Running {
    child: Child,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) addr: SocketAddr,
    pub(crate) config: PathBuf,
    pub(crate) store: PathBuf,
}

impl Running {
    /// Starts a console with `console_toml` appended to its `[console]` section, the
    /// accounts `(name, role)` and the store `seed` fills.
    pub(crate) fn start(
        console_toml: &str,
        users: &[(&str, &str)],
        seed: impl FnOnce(&mut Store),
    ) -> Running {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("state/incidents.db");
        std::fs::create_dir_all(store.parent().expect("dir")).expect("state dir");
        let config = dir.path().join("aiwarden.toml");
        std::fs::write(
            &config,
            format!(
                "[store]\npath = \"state/incidents.db\"\n\n[console]\nlisten = \"127.0.0.1:0\"\n{console_toml}\n"
            ),
        )
        .expect("config");
        {
            let mut s = Store::open(&store).expect("store");
            seed(&mut s);
        }
        let pw = dir.path().join("password");
        std::fs::write(&pw, format!("{PASSWORD}\n")).expect("password file");
        for (name, role) in users {
            let out = aiwarden(
                &config,
                &["user", "add", name, "--role", role, "--password-file"],
                &[pw.as_path()],
            );
            assert!(out.status.success(), "user add {name}: {out:?}");
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_aiwarden"))
            .args(["console", "--timezone", "UTC", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("aiwarden console starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("its address");
        let addr: SocketAddr = line
            .split("https://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Running {
            child,
            dir,
            addr,
            config,
            store,
        }
    }

    /// The console's generated certificate.
    pub(crate) fn cert(&self) -> PathBuf {
        self.dir.path().join("state/console-cert.pem")
    }

    /// `https://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The reports directory (`reports/` beside the store).
    pub(crate) fn reports(&self) -> PathBuf {
        self.dir.path().join("state/reports")
    }

    /// Runs `aiwarden ARGS --config <its config>`.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        aiwarden(&self.config, args, &[])
    }

    /// The store, read-only.
    pub(crate) fn read(&self) -> Store {
        Store::open_read_only(&self.store).expect("store")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `aiwarden ARGS EXTRA --config CONFIG`.
pub(crate) fn aiwarden(config: &Path, args: &[&str], extra: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aiwarden"))
        .args(args)
        .args(extra)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .expect("aiwarden runs")
}

/// An incident at `ts_s` seconds from `device` (a label when `label`) to `service`.
pub(crate) fn incident(
    ts_s: i64,
    n: u8,
    label: Option<&str>,
    service: &str,
    block: bool,
) -> IncidentRecord {
    IncidentRecord {
        ts: ts_s * 1_000_000,
        client_ip: format!("10.0.0.{n}").parse().expect("ip"),
        client_mac: Some(Mac([0x52, 0x54, 0, 0, 0, n])),
        device: Some(format!("pc-{n}")),
        label: label.map(str::to_string),
        group: None,
        service: service.into(),
        service_name: format!("{service} (name)"),
        category: Some("chat".into()),
        tier: None,
        verdict: if block { Verdict::Block } else { Verdict::Flag },
        mode: if block { Mode::Enforce } else { Mode::Monitor },
        how: "tls".parse().expect("how"),
        host: format!("{service}.example"),
        rule: "catalog/test.toml:x".into(),
    }
}

/// Now in whole seconds.
pub(crate) fn now_s() -> i64 {
    aiwarden::store::now_micros() / 1_000_000
}
