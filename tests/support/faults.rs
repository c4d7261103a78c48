//! Support for `tests/store_faults.rs`: a fake upstream, `dig` as client and probe, a private
//! mount namespace, and the daemon started per phase with its config, health, metrics and
//! the `aiwarden` commands an operator would run against its store.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[path = "fakedns.rs"]
mod fakedns;
#[path = "netns.rs"]
mod netns;

pub(crate) use netns::{copy_rules, is_root, wait_for, BIN};

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The fault suites' fake upstream on loopback (`A 198.51.100.7` for every name), stopped
/// when dropped.
pub(crate) struct Upstream {
    pub(crate) addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

pub(crate) fn upstream() -> Upstream {
    let stop = Arc::new(AtomicBool::new(false));
    let (addr, _) = fakedns::serve("127.0.0.1:0".parse().expect("addr"), stop.clone());
    Upstream { addr, stop }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What `dig` said: the response code (`NOERROR`, `NXDOMAIN`, ...) and the query time it
/// measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: String,
    pub(crate) took: Duration,
}

/// Asks `server` for `name` (A) from `from` with `dig` (one try, 2 s); `None` when nothing
/// came back.
pub(crate) fn ask(server: SocketAddr, from: Ipv4Addr, name: &str) -> Option<Answer> {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "-b", &from.to_string()])
        .args([
            "+tries=1",
            "+time=2",
            "+noall",
            "+comments",
            "+stats",
            name,
            "A",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let status = text
        .split("status: ")
        .nth(1)?
        .split(',')
        .next()?
        .trim()
        .to_string();
    let msec: u64 = text
        .split(";; Query time: ")
        .nth(1)?
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    Some(Answer {
        status,
        took: Duration::from_millis(msec),
    })
}

/// Latencies of the probe's answers (`None`: unanswered), cached then uncached.
type Latencies = (Vec<Option<Duration>>, Vec<Option<Duration>>);

/// Asks a cached and an uncached name every 25 ms until finished.
pub(crate) struct Probe {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicUsize>,
    thread: Option<JoinHandle<Latencies>>,
}

/// The fewest rounds a probe asks before it may finish (a short fault still gets asked).
const MIN_ROUNDS: usize = 10;

pub(crate) fn probe(server: SocketAddr, tag: &'static str) -> Probe {
    assert!(
        ask(server, Ipv4Addr::LOCALHOST, "cached.example").is_some(),
        "{tag}: the resolver answers before the probe starts"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let (flag, done) = (stop.clone(), rounds.clone());
    let thread = std::thread::spawn(move || {
        let (mut cached, mut uncached) = (Vec::new(), Vec::new());
        let mut n = 0u32;
        while !flag.load(Ordering::Relaxed) {
            cached.push(ask(server, Ipv4Addr::LOCALHOST, "cached.example").map(|a| a.took));
            n += 1;
            uncached.push(
                ask(server, Ipv4Addr::LOCALHOST, &format!("u{n}.{tag}.example")).map(|a| a.took),
            );
            done.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(25));
        }
        (cached, uncached)
    });
    Probe {
        stop,
        rounds,
        thread: Some(thread),
    }
}

impl Probe {
    /// Stops the probe (once it has asked [`MIN_ROUNDS`] rounds) and checks every question
    /// was answered, 99% of the cached ones within 100 ms.
    pub(crate) fn finish(mut self, phase: &str) {
        wait_for(
            &format!("{phase}: {MIN_ROUNDS} probe rounds"),
            Duration::from_secs(30),
            || self.rounds.load(Ordering::Relaxed) >= MIN_ROUNDS,
        );
        self.stop.store(true, Ordering::Relaxed);
        let (cached, uncached) = self
            .thread
            .take()
            .map(|t| t.join().expect("probe"))
            .unwrap_or_default();
        let lost = |v: &[Option<Duration>]| v.iter().filter(|d| d.is_none()).count();
        let max = |v: &[Option<Duration>]| v.iter().flatten().max().copied().unwrap_or_default();
        let fast = cached
            .iter()
            .flatten()
            .filter(|d| **d <= Duration::from_millis(100))
            .count();
        println!(
            "{phase}: probe {} cached (max {:?}), {} uncached (max {:?})",
            cached.len(),
            max(&cached),
            uncached.len(),
            max(&uncached)
        );
        assert!(cached.len() >= MIN_ROUNDS, "{phase}: the probe ran");
        assert_eq!(lost(&cached), 0, "{phase}: cached names unanswered");
        assert_eq!(lost(&uncached), 0, "{phase}: uncached names unanswered");
        assert!(
            fast * 100 >= cached.len() * 99,
            "{phase}: only {fast} of {} cached answers within 100 ms",
            cached.len()
        );
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A private mount namespace, held by a `sleep` this test started (killed on drop: the
/// namespace and its mounts go with it).
pub(crate) struct Ns {
    holder: Child,
}

impl Ns {
    pub(crate) fn new() -> Ns {
        let holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sleep", "600"])
            .spawn()
            .expect("unshare");
        let ns = Ns { holder };
        let mine = std::fs::read_link("/proc/self/ns/mnt").expect("my namespace");
        let theirs = format!("/proc/{}/ns/mnt", ns.holder.id());
        wait_for("the mount namespace", Duration::from_secs(5), || {
            std::fs::read_link(&theirs).is_ok_and(|l| l != mine)
        });
        ns
    }

    pub(crate) fn sh(&self, script: &str) -> Output {
        let out = command(Some(self), "sh")
            .args(["-c", script])
            .output()
            .expect("nsenter");
        assert!(out.status.success(), "{script}: {out:?}");
        out
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// `prog`, inside `ns` when there is one.
pub(crate) fn command(ns: Option<&Ns>, prog: &str) -> Command {
    match ns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.args([
                "--target",
                &ns.holder.id().to_string(),
                "--mount",
                "--",
                prog,
            ]);
            c
        }
        None => Command::new(prog),
    }
}

/// One phase's directory: its config, its log and its store in `state/`.
pub(crate) struct Phase<'a> {
    pub(crate) name: &'static str,
    pub(crate) dir: PathBuf,
    pub(crate) ns: Option<&'a Ns>,
    pub(crate) upstream: SocketAddr,
    pub(crate) rules: PathBuf,
    /// `[store] keyed`: the head file signed with `<store>.key`.
    pub(crate) keyed: bool,
}

impl Phase<'_> {
    pub(crate) fn store(&self) -> PathBuf {
        self.dir.join("state/incidents.db")
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.dir.join("aiwarden.toml")
    }

    pub(crate) fn aiwarden(&self, args: &[&str]) -> Output {
        command(self.ns, BIN).args(args).output().expect("aiwarden")
    }

    pub(crate) fn check(&self) -> Output {
        self.aiwarden(&["check", "--config", &self.config().to_string_lossy()])
    }

    /// `aiwarden check` exits 2 with a problem that says `what`; prints that line.
    pub(crate) fn check_fails(&self, what: &str) {
        let out = self.check();
        let said = text(&out);
        assert_eq!(out.status.code(), Some(2), "{}: check: {said}", self.name);
        let line = said.lines().find(|l| l.contains(what));
        assert!(
            line.is_some(),
            "{}: check names {what:?}: {said}",
            self.name
        );
        println!("{}: check exits 2: {}", self.name, line.unwrap_or_default());
    }

    pub(crate) fn verify(&self, store: &Path) -> Output {
        let store = store.to_string_lossy();
        let mut args = vec!["verify", "--store", &store];
        if self.keyed {
            args.push("--keyed");
        }
        self.aiwarden(&args)
    }

    /// The incidents in `store`, as `incidents list --json` prints them.
    pub(crate) fn incidents(&self, store: &Path) -> Vec<serde_json::Value> {
        let out = self.aiwarden(&[
            "incidents",
            "list",
            "--json",
            "--store",
            &store.to_string_lossy(),
        ]);
        if !out.status.success() {
            return Vec::new();
        }
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    pub(crate) fn start(&self) -> Daemon {
        let (dns, http) = (free_port(), free_port());
        std::fs::write(
            self.config(),
            format!(
                "mode = \"enforce\"\nrules = \"{}\"\nincident_window_secs = 3600\n\
                 [dns]\nlisten = [\"127.0.0.1:{dns}\"]\nupstreams = [\"{}\"]\ntimeout_ms = 500\n\
                 [store]\npath = \"{}\"\nkeyed = {}\n[metrics]\nlisten = \"127.0.0.1:{http}\"\n",
                self.rules.display(),
                self.upstream,
                self.store().display(),
                self.keyed
            ),
        )
        .expect("config");
        let log = self.dir.join(format!("daemon-{dns}.log"));
        let child = command(self.ns, "sh")
            .args([
                "-c",
                &format!(
                    "umask 000; exec {BIN} run --config '{}'",
                    self.config().display()
                ),
            ])
            .env("AIWARDEN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("daemon");
        let d = Daemon {
            child,
            dns: SocketAddr::from(([127, 0, 0, 1], dns)),
            http,
            log,
        };
        wait_for(
            &format!("{}: the daemon to answer", self.name),
            Duration::from_secs(15),
            || {
                d.http("/healthz").starts_with("HTTP/1.1 200")
                    && ask(d.dns, Ipv4Addr::LOCALHOST, "cached.example").is_some()
            },
        );
        d
    }

    /// Clients 127.0.0.`n` each ask for chatgpt.com, then chat.openai.com (the same
    /// service: a touch of the incident the first opened); both are refused.
    pub(crate) fn make_incidents(&self, d: &Daemon, clients: &[u8]) {
        for &n in clients {
            let from = Ipv4Addr::new(127, 0, 0, n);
            for name in ["chatgpt.com", "chat.openai.com"] {
                let a = ask(d.dns, from, name);
                assert_eq!(
                    a.map(|a| a.status).as_deref(),
                    Some("NXDOMAIN"),
                    "{}: {name} from {from} is blocked",
                    self.name
                );
            }
        }
    }

    /// Waits until `store` holds an incident for every client in `clients` with both names
    /// (the open and the touch may be committed apart), then checks each is there exactly
    /// once. Returns how many were found.
    pub(crate) fn assert_recorded(&self, store: &Path, clients: &[u8]) -> usize {
        let ips: Vec<String> = clients.iter().map(|n| format!("127.0.0.{n}")).collect();
        let mine = || -> Vec<serde_json::Value> {
            self.incidents(store)
                .into_iter()
                .filter(|r| ips.iter().any(|ip| r["client_ip"] == ip.as_str()))
                .collect()
        };
        let touched = |r: &serde_json::Value| {
            let hosts: Vec<&str> = r["hosts"]
                .as_array()
                .map(|h| h.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            hosts.contains(&"chatgpt.com") && hosts.contains(&"chat.openai.com")
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let last = loop {
            let last = mine();
            if last.iter().filter(|r| touched(r)).count() >= ips.len() {
                break last;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {} incidents, each with the touch that followed it, in {}: {last:#?}",
                self.name,
                ips.len(),
                store.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(
            last.len(),
            ips.len(),
            "{}: each client exactly once: {last:#?}",
            self.name
        );
        last.len()
    }

    /// [`Phase::assert_recorded`] for the incidents made during a fault, saying how many
    /// were made and how many were found once the store was back.
    pub(crate) fn assert_kept(&self, store: &Path, clients: &[u8]) {
        let found = self.assert_recorded(store, clients);
        println!(
            "{}: {} incidents made during the fault, {found} in {} afterwards",
            self.name,
            clients.len(),
            store
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
    }
}

pub(crate) struct Daemon {
    pub(crate) child: Child,
    pub(crate) dns: SocketAddr,
    pub(crate) http: u16,
    pub(crate) log: PathBuf,
}

impl Daemon {
    pub(crate) fn http(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", self.http)) else {
            return String::new();
        };
        let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        let mut s = String::new();
        let _ = c.read_to_string(&mut s);
        s
    }

    /// The value of the metric line that starts with `name`.
    pub(crate) fn metric(&self, name: &str) -> Option<f64> {
        self.http("/metrics")
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// SIGTERM; waits for the exit. Returns how long it took and the log.
    pub(crate) fn stop(mut self) -> (Duration, String) {
        let t = Instant::now();
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "SIGTERM did not stop the daemon"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let took = t.elapsed();
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(status.success(), "{status:?}\n{log}");
        (took, log)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub(crate) fn set_aside(dir: &Path, tag: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    let n = p
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    n.starts_with(&format!("incidents.db.{tag}-"))
                        && !n.ends_with(".head")
                        && !n.ends_with(".key")
                        && !n.ends_with("-wal")
                        && !n.ends_with("-shm")
                        && !n.contains(".orphan")
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub(crate) fn clobber_header(path: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    f.seek(SeekFrom::Start(0)).expect("seek");
    f.write_all(&[0x5a; 100]).expect("clobber");
    f.sync_all().expect("sync");
}
