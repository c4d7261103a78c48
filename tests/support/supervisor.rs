//! What systemd does for the shipped unit, for tests on machines where systemd is not PID 1
//! (CI's): reads `systemd/aiwarden.service` and applies its `Restart=`, `RestartSec=`,
//! `WatchdogSec=`, `WatchdogSignal=`, `Environment=` and `ExecStopPost=` to the daemon,
//! started in a namespace through `ip netns exec`. The watchdog is sd_notify's protocol:
//! `NOTIFY_SOCKET` and `WATCHDOG_USEC` in the environment, `WATCHDOG=1` datagrams back; the
//! kill happens when none came for `WatchdogSec`. `ExecStopPost=` runs after every exit
//! with `SERVICE_RESULT` set as systemd sets it.

#![allow(dead_code)]

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The directives of the unit this emulates.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    pub(crate) restart_sec: Duration,
    pub(crate) watchdog: Duration,
    pub(crate) watchdog_signal: String,
    pub(crate) exec_stop_post: Vec<String>,
    pub(crate) environment: Vec<(String, String)>,
}

fn secs(v: &str) -> Duration {
    let v = v.trim();
    let n = v.trim_end_matches('s');
    Duration::from_secs_f64(n.parse().unwrap_or_else(|_| panic!("seconds: {v}")))
}

impl Unit {
    /// The shipped unit, with the binary and the configuration replaced by the test's.
    pub(crate) fn shipped(bin: &str, config: &Path) -> Unit {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/aiwarden.service"),
        )
        .expect("unit");
        let mut u = Unit {
            restart_sec: Duration::from_millis(100),
            watchdog: Duration::ZERO,
            watchdog_signal: "SIGABRT".into(),
            exec_stop_post: Vec::new(),
            environment: Vec::new(),
        };
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            match k.trim() {
                "RestartSec" => u.restart_sec = secs(v),
                "WatchdogSec" => u.watchdog = secs(v),
                "WatchdogSignal" => u.watchdog_signal = v.trim().to_string(),
                "ExecStopPost" => {
                    u.exec_stop_post = v
                        .replace("/usr/bin/aiwarden", bin)
                        .replace(
                            "/etc/aiwarden/aiwarden.toml",
                            config.to_str().expect("utf8"),
                        )
                        .split_whitespace()
                        .map(String::from)
                        .collect()
                }
                "Environment" => {
                    if let Some((name, value)) = v.split_once('=') {
                        // Paths under /run/aiwarden (RuntimeDirectory=) go to the test's.
                        u.environment.push((name.to_string(), value.to_string()));
                    }
                }
                _ => {}
            }
        }
        assert!(u.watchdog > Duration::ZERO, "the unit has no WatchdogSec");
        assert!(!u.exec_stop_post.is_empty(), "the unit has no ExecStopPost");
        u
    }
}

/// A running emulation: the daemon, restarted and watched as systemd would.
pub(crate) struct Supervisor {
    stop: Arc<AtomicBool>,
    pid: Arc<AtomicU32>,
    thread: Option<JoinHandle<()>>,
    /// What happened, with when: "start PID", "exit PID RESULT", "stop-post RESULT".
    pub(crate) events: Arc<Mutex<Vec<(Instant, String)>>>,
}

fn signal_number(name: &str) -> &'static str {
    match name {
        "SIGKILL" => "KILL",
        "SIGABRT" => "ABRT",
        "SIGTERM" => "TERM",
        other => panic!("signal {other}"),
    }
}

impl Supervisor {
    /// Starts `bin run --config config` in namespace `ns` under `unit`'s rules; logs go to
    /// `log` (appended across restarts). `runtime` stands in for /run/aiwarden.
    pub(crate) fn start(
        unit: Unit,
        ns: &str,
        bin: &str,
        config: &Path,
        log: &Path,
        runtime: &Path,
    ) -> Supervisor {
        std::fs::create_dir_all(runtime).expect("runtime dir");
        let notify_path = runtime.join("notify.sock");
        let _ = std::fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path).expect("notify socket");
        notify
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let pid = Arc::new(AtomicU32::new(0));
        let events = Arc::new(Mutex::new(Vec::new()));
        let (ns, bin, config, log, runtime) = (
            ns.to_string(),
            bin.to_string(),
            config.to_path_buf(),
            log.to_path_buf(),
            runtime.to_path_buf(),
        );
        let thread = {
            let (stop, pid, events) = (stop.clone(), pid.clone(), events.clone());
            std::thread::spawn(move || {
                let note = |s: String| events.lock().expect("events").push((Instant::now(), s));
                loop {
                    let mut child = spawn(&ns, &bin, &config, &log, &runtime, &notify_path, &unit);
                    pid.store(child.id(), Ordering::SeqCst);
                    note(format!("start {}", child.id()));
                    let mut last_ping = Instant::now();
                    let mut buf = [0u8; 512];
                    let result = loop {
                        if let Ok(n) = notify.recv(&mut buf) {
                            if String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1") {
                                last_ping = Instant::now();
                            }
                        }
                        if let Ok(Some(status)) = child.try_wait() {
                            break if status.success() {
                                "success"
                            } else {
                                "signal"
                            };
                        }
                        if stop.load(Ordering::SeqCst) {
                            let _ = Command::new("kill")
                                .args(["-TERM", &child.id().to_string()])
                                .status();
                            let _ = child.wait();
                            break "success";
                        }
                        if last_ping.elapsed() > unit.watchdog {
                            note(format!("watchdog {}", child.id()));
                            let _ = Command::new("kill")
                                .args([
                                    &format!("-{}", signal_number(&unit.watchdog_signal)),
                                    &child.id().to_string(),
                                ])
                                .status();
                            let _ = child.wait();
                            break "watchdog";
                        }
                    };
                    note(format!("exit {} {result}", child.id()));
                    let post = Command::new("ip")
                        .args(["netns", "exec", &ns])
                        .args(&unit.exec_stop_post)
                        .env("SERVICE_RESULT", result)
                        .output()
                        .expect("ExecStopPost");
                    note(format!(
                        "stop-post {result}: {}",
                        String::from_utf8_lossy(&post.stdout).trim()
                    ));
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(unit.restart_sec);
                }
            })
        };
        Supervisor {
            stop,
            pid,
            thread: Some(thread),
            events,
        }
    }

    /// The daemon's PID now (0 between runs).
    pub(crate) fn pid(&self) -> u32 {
        self.pid.load(Ordering::SeqCst)
    }

    /// Stops the daemon cleanly (SIGTERM) and the emulation.
    pub(crate) fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// The events so far, as text with seconds since `since`.
    pub(crate) fn events_since(&self, since: Instant) -> Vec<String> {
        self.events
            .lock()
            .expect("events")
            .iter()
            .map(|(t, s)| {
                format!(
                    "{:+.2}s {s}",
                    t.saturating_duration_since(since).as_secs_f64()
                )
            })
            .collect()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn spawn(
    ns: &str,
    bin: &str,
    config: &Path,
    log: &Path,
    runtime: &Path,
    notify: &PathBuf,
    unit: &Unit,
) -> Child {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log");
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, bin, "run", "--config"])
        .arg(config)
        .env("NOTIFY_SOCKET", notify)
        .env("WATCHDOG_USEC", unit.watchdog.as_micros().to_string())
        .stdout(f.try_clone().expect("log"))
        .stderr(f);
    for (k, v) in &unit.environment {
        c.env(
            k,
            v.replace("/run/aiwarden", runtime.to_str().expect("utf8")),
        );
    }
    c.spawn().expect("daemon")
}
