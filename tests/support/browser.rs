//! Real headless Chromium for tests, driven through chromedriver with fantoccini: start a
//! browser on a fresh profile, open pages, read what the page logged to its console, save
//! screenshots under `target/test-artifacts/`. The web console's tests use it, and so can
//! any test that opens HTML aiwarden writes (the weekly report).
//!
//! ```ignore
//! let Some(b) = Browser::start().await else { return }; // prints why when skipped
//! b.goto("https://127.0.0.1:8443/login").await;
//! b.screenshot("console/login.png").await;
//! assert!(b.console_errors().await.is_empty());
//! b.close().await;
//! ```

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// The Chromium and chromedriver Debian installs.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A headless Chromium session.
pub(crate) struct Browser {
    pub(crate) client: Client,
    driver: Driver,
    _profile: tempfile::TempDir,
}

/// chromedriver, ended when dropped (also when the session could not be made).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One line the page wrote to its console (or the browser logged for it).
#[derive(Debug, Clone)]
pub(crate) struct LogLine {
    pub(crate) level: String,
    pub(crate) message: String,
}

/// chromedriver's (and Selenium's) "get log" command, which the W3C protocol lacks.
#[derive(Debug)]
struct GetLog;

impl WebDriverCompatibleCommand for GetLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or("")))
    }

    fn method_and_body(&self, _url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// Where screenshots and other test outputs go: `target/test-artifacts/`.
pub(crate) fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts directory");
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    /// Starts chromedriver on a loopback port and a headless Chromium session with a fresh
    /// profile; `None`, with the reason printed, when Chromium or chromedriver is not
    /// installed (scripts/setup-debian.sh installs both).
    pub(crate) async fn start() -> Option<Browser> {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(bin).exists() {
                eprintln!(
                    "skipped: {bin} is not installed (apt-get install chromium chromium-driver)"
                );
                return None;
            }
        }
        let port = free_port();
        let driver = Driver(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver starts"),
        );
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(20);
        // An outside process: its port answering is the only sign it is ready.
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        let profile = tempfile::tempdir().expect("profile");
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--ignore-certificate-errors".into(),
            "--window-size=1360,900".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": CHROMIUM, "args": args}),
        );
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        caps.insert("acceptInsecureCerts".into(), json!(true));
        // fantoccini's connector takes the process's default provider (chromedriver is
        // plain HTTP on loopback; this only satisfies rustls).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = ClientBuilder::rustls()
            .expect("rustls connector")
            .capabilities(caps)
            .connect(&format!("http://{addr}"))
            .await
            .expect("a Chromium session");
        Some(Browser {
            client,
            driver,
            _profile: profile,
        })
    }

    /// Opens `url` and waits for it to load.
    pub(crate) async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("goto");
    }

    /// Waits (at most 10 s) until the page's path is `path`, after a click that navigates.
    pub(crate) async fn wait_path(&self, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.url().await;
            if now.path() == path {
                return;
            }
            assert!(Instant::now() < deadline, "still at {now}, wanted {path}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks `css` and waits until a new page has replaced this one and it is at `path`.
    pub(crate) async fn click_to(&self, css: &str, path: &str) {
        let before = self.client.find(Locator::Css("html")).await.expect("page");
        self.click(css).await;
        // The old document gone (its root stale), then the new one at `path`.
        let deadline = Instant::now() + Duration::from_secs(10);
        while before.tag_name().await.is_ok() {
            assert!(Instant::now() < deadline, "{css} did not navigate");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        self.wait_path(path).await;
    }

    /// The current URL.
    pub(crate) async fn url(&self) -> url::Url {
        self.client.current_url().await.expect("url")
    }

    /// The text of the first element matching `css`, tried again for up to 5 s while a
    /// navigation replaces the page (the element not there yet, or gone stale).
    pub(crate) async fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = match self.client.find(Locator::Css(css)).await {
                Ok(e) => e.text().await,
                Err(e) => Err(e),
            };
            match got {
                Ok(t) => return t,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{css}: {e}"),
            }
        }
    }

    /// How many elements match `css`.
    pub(crate) async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .map(|v| v.len())
            .unwrap_or(0)
    }

    /// Types `text` into the field `css` (clearing it first).
    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let e = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        e.clear().await.expect("clear");
        e.send_keys(text).await.expect("type");
    }

    /// Clicks the element `css`.
    pub(crate) async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .expect("click");
    }

    /// Chooses the option with `value` of the select `css`.
    pub(crate) async fn select(&self, css: &str, value: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .select_by_value(value)
            .await
            .expect("select");
    }

    /// The page's HTML as the browser holds it now.
    pub(crate) async fn source(&self) -> String {
        self.client.source().await.expect("source")
    }

    /// Runs `script` in the page (WebDriver's own channel, not the page's CSP) and returns
    /// what it returns; an async script's last argument is its callback.
    pub(crate) async fn run_async(&self, script: &str) -> Value {
        self.client
            .execute_async(script, vec![])
            .await
            .expect("script")
    }

    /// What the browser logged since the last call, every level.
    pub(crate) async fn logs(&self) -> Vec<LogLine> {
        let v = self.client.issue_cmd(GetLog).await.expect("browser log");
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|e| LogLine {
                        level: e["level"].as_str().unwrap_or("").to_string(),
                        message: e["message"].as_str().unwrap_or("").to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The errors (`SEVERE`) the browser logged since the last call: script errors, CSP
    /// violations, resources that failed to load.
    pub(crate) async fn console_errors(&self) -> Vec<String> {
        self.logs()
            .await
            .into_iter()
            .filter(|l| l.level == "SEVERE")
            .map(|l| l.message)
            .collect()
    }

    /// Saves a PNG of the window as `target/test-artifacts/<name>` and returns its path.
    pub(crate) async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let path = artifacts().join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("directory");
        }
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Ends the session and chromedriver.
    pub(crate) async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // After a panic (or a session that did not quit): chromedriver ends (its field's
        // drop), and the Chromium processes of this profile, found by their
        // --user-data-dir, with it.
        let marker = format!("--user-data-dir={}", self._profile.path().display());
        for pid in profile_processes(&marker) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}

/// The processes whose command line carries `marker`.
fn profile_processes(marker: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.split(|b| *b == 0).any(|arg| arg == marker.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}
