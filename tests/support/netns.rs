//! Network namespaces for end-to-end tests: a client, a gateway running aiwarden and an
//! upstream with servers, joined by veth pairs; removed (and their processes stopped, by
//! PID) when dropped. Only traffic inside these namespaces.

#![allow(dead_code)]

#[path = "example.rs"]
mod example;

use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_aiwarden");

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

pub(crate) fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub(crate) fn sh(args: &[&str]) -> String {
    let out = run(Command::new(args[0]).args(&args[1..]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Namespaces and processes this test made; removed and stopped on drop, by PID.
pub(crate) struct Net {
    pub(crate) client: String,
    pub(crate) gateway: String,
    pub(crate) upstream: String,
    pub(crate) children: Vec<Child>,
}

/// `ip netns exec NS ARGS...`, not yet run.
pub(crate) fn ns_exec(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(args);
    c
}

/// Runs `args` in `ns` (it must succeed) and returns its output.
pub(crate) fn ns_output(ns: &str, args: &[&str]) -> String {
    String::from_utf8_lossy(&run(&mut ns_exec(ns, args)).stdout).into_owned()
}

/// Starts `args` in `ns` with stdout and stderr to `log`.
pub(crate) fn ns_spawn(ns: &str, args: &[&str], log: &Path) -> Child {
    let f = std::fs::File::create(log).expect("log file");
    ns_exec(ns, args)
        .stdout(f.try_clone().expect("clone"))
        .stderr(f)
        .spawn()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Stops the processes a test started (by PID) and removes its namespaces.
pub(crate) fn tear_down<'a>(
    children: &mut [Child],
    namespaces: impl IntoIterator<Item = &'a String>,
) {
    for c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    for ns in namespaces {
        let _ = Command::new("ip").args(["netns", "del", ns]).status();
    }
}

impl Net {
    pub(crate) fn exec(&self, ns: &str, args: &[&str]) -> Command {
        ns_exec(ns, args)
    }

    pub(crate) fn in_ns(&self, ns: &str, args: &[&str]) -> String {
        ns_output(ns, args)
    }

    pub(crate) fn spawn(&mut self, ns: &str, args: &[&str], log: &Path) -> u32 {
        let child = ns_spawn(ns, args, log);
        let pid = child.id();
        self.children.push(child);
        pid
    }

    pub(crate) fn dig(&self, args: &[&str]) -> String {
        let mut a = vec!["dig", "@10.77.1.1", "+time=2", "+tries=1"];
        a.extend_from_slice(args);
        self.in_ns(&self.client.clone(), &a)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        tear_down(
            &mut self.children,
            [&self.client, &self.gateway, &self.upstream],
        );
    }
}

/// Client, gateway and upstream namespaces joined by veth pairs. With `dual_stack` the
/// LAN and the link to the upstream carry IPv6 too, and the upstream holds "internet"
/// addresses (documentation ranges, and 8.8.8.8 for a public resolver) routed through the
/// gateway, all inside these namespaces.
pub(crate) fn setup(dual_stack: bool) -> Net {
    let pid = std::process::id();
    let net = Net {
        client: format!("aw-c-{pid}"),
        gateway: format!("aw-g-{pid}"),
        upstream: format!("aw-u-{pid}"),
        children: Vec::new(),
    };
    for ns in [&net.client, &net.gateway, &net.upstream] {
        sh(&["ip", "netns", "add", ns]);
        sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
    let (c, g, u) = (&net.client, &net.gateway, &net.upstream);
    sh(&[
        "ip", "link", "add", "c0", "netns", c, "type", "veth", "peer", "g0", "netns", g,
    ]);
    sh(&[
        "ip", "link", "add", "g1", "netns", g, "type", "veth", "peer", "u0", "netns", u,
    ]);
    for (ns, dev, addr) in [
        (c, "c0", "10.77.1.2/24"),
        (g, "g0", "10.77.1.1/24"),
        (g, "g1", "10.77.2.1/24"),
        (u, "u0", "10.77.2.2/24"),
    ] {
        sh(&["ip", "-n", ns, "addr", "add", addr, "dev", dev]);
        sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
    }
    sh(&["ip", "-n", c, "route", "add", "default", "via", "10.77.1.1"]);
    sh(&["ip", "-n", u, "route", "add", "default", "via", "10.77.2.1"]);
    net.in_ns(g, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    if dual_stack {
        for (ns, dev, addr) in [
            (c, "c0", "fd77:1::2/64"),
            (g, "g0", "fd77:1::1/64"),
            (g, "g1", "fd77:2::1/64"),
            (u, "u0", "fd77:2::2/64"),
            (u, "u0", "2001:db8:77::10/128"),
            (u, "u0", "2001:db8:77::99/128"),
        ] {
            sh(&[
                "ip", "-n", ns, "-6", "addr", "add", addr, "dev", dev, "nodad",
            ]);
        }
        for addr in [
            "203.0.113.10/32",
            "203.0.113.20/32",
            "203.0.113.53/32",
            "8.8.8.8/32",
        ] {
            sh(&["ip", "-n", u, "addr", "add", addr, "dev", "u0"]);
        }
        sh(&[
            "ip",
            "-n",
            c,
            "-6",
            "route",
            "add",
            "default",
            "via",
            "fd77:1::1",
        ]);
        sh(&[
            "ip",
            "-n",
            u,
            "-6",
            "route",
            "add",
            "default",
            "via",
            "fd77:2::1",
        ]);
        sh(&[
            "ip",
            "-n",
            g,
            "route",
            "add",
            "203.0.113.0/24",
            "via",
            "10.77.2.2",
        ]);
        sh(&[
            "ip",
            "-n",
            g,
            "route",
            "add",
            "8.8.8.8/32",
            "via",
            "10.77.2.2",
        ]);
        sh(&[
            "ip",
            "-n",
            g,
            "-6",
            "route",
            "add",
            "2001:db8:77::/48",
            "via",
            "fd77:2::2",
        ]);
        net.in_ns(g, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    }
    net
}

/// The example probe client (real rustls and quinn handshakes), built for the test.
pub(crate) fn probe() -> std::path::PathBuf {
    example::build("probe")
}

/// The example raw sender (real rustls ClientHellos as one-byte TCP segments written onto
/// an interface), built for the test.
pub(crate) fn trickle() -> std::path::PathBuf {
    example::build("trickle")
}

/// True when `tool` is on the PATH.
pub(crate) fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

pub(crate) fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn copy_rules(to: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    for sub in ["catalog", "site"] {
        std::fs::create_dir_all(to.join(sub)).expect("mkdir");
        for e in std::fs::read_dir(root.join(sub)).expect("rules") {
            let p = e.expect("entry").path();
            std::fs::copy(&p, to.join(sub).join(p.file_name().expect("name"))).expect("copy");
        }
    }
}

pub(crate) fn incidents(store: &Path) -> Vec<serde_json::Value> {
    let out = Command::new(BIN)
        .args(["incidents", "list", "--json", "--store"])
        .arg(store)
        .output()
        .expect("incidents list");
    if !out.status.success() {
        return Vec::new();
    }
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap_or_default()
}

pub(crate) fn metrics(net: &Net) -> String {
    net.in_ns(
        &net.gateway.clone(),
        &[
            "curl",
            "-s",
            "--max-time",
            "2",
            "http://127.0.0.1:9747/metrics",
        ],
    )
}

pub(crate) fn start_daemon(net: &mut Net, config: &Path, log: &Path) -> u32 {
    let gw = net.gateway.clone();
    let pid = net.spawn(
        &gw,
        &[BIN, "run", "--config", config.to_str().expect("utf8")],
        log,
    );
    wait_for("the daemon's resolver", Duration::from_secs(20), || {
        net.exec(
            &net.client,
            &[
                "dig",
                "@10.77.1.1",
                "+time=1",
                "+tries=1",
                "allowed.example",
            ],
        )
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("198.51.100.7"))
        .unwrap_or(false)
    });
    // Capture opens its interfaces in threads of its own, after DNS is up: frames sent
    // before then are not seen (a device's MAC is learned from them).
    wait_for("the daemon's capture", Duration::from_secs(20), || {
        // 503 while something is down: the body is read all the same.
        let health = net
            .exec(
                &gw,
                &[
                    "curl",
                    "-s",
                    "--max-time",
                    "2",
                    "http://127.0.0.1:9747/healthz",
                ],
            )
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        !health.is_empty()
            && health
                .lines()
                .filter(|l| l.starts_with("capture "))
                .all(|l| l.ends_with(": ok"))
    });
    pid
}

/// An example program (`examples/NAME.rs`), built for the test.
pub(crate) fn example_path(name: &str) -> std::path::PathBuf {
    example::build(name)
}

/// dnsmasq in `ns` answering on `listen` with fixed `records` (`/name/address`), and
/// nothing else: the "internet's" resolvers.
pub(crate) fn dnsmasq(
    net: &mut Net,
    ns: &str,
    listen: &[&str],
    records: &[&str],
    log: &Path,
) -> u32 {
    let mut args: Vec<String> = [
        "dnsmasq",
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        "--log-facility=-",
        "--bind-interfaces",
        "--user=root",
        "--pid-file=",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(listen.iter().map(|l| format!("--listen-address={l}")));
    args.extend(records.iter().map(|r| format!("--address={r}")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    net.spawn(ns, &args, log)
}

/// A router-placement configuration in enforce mode for the gateway of [`setup`]: capture
/// and blocking on g0, the resolver on 10.77.1.1 (and `extra_listen`), 10.77.2.2 upstream,
/// metrics on 127.0.0.1:9747; `extra` is appended (more sections).
pub(crate) fn router_config(
    rules: &Path,
    store: &Path,
    extra_listen: &[&str],
    extra: &str,
) -> String {
    let mut listen = vec!["\"10.77.1.1:53\"".to_string()];
    listen.extend(extra_listen.iter().map(|l| format!("\"{l}\"")));
    format!(
        "mode = \"enforce\"\nrules = \"{}\"\n[capture]\ninterfaces = [\"g0\"]\n\
         [dns]\nlisten = [{}]\nupstreams = [\"10.77.2.2\"]\n\
         [store]\npath = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:9747\"\n\
         [enforcement]\nplacement = \"router\"\n{extra}",
        rules.display(),
        listen.join(", "),
        store.display()
    )
}
