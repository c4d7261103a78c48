//! The daemon's life cycle without root: systemd readiness and watchdog notifications on a
//! socket this test binds, rules reload on SIGHUP (a bad file keeps the old rules), and a
//! clean exit on SIGTERM, with the web console (`[console] enabled`) served over HTTPS
//! meanwhile. DNS on a loopback port; no capture.

#[path = "support/https.rs"]
mod https;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_aiwarden");

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn copy_rules(to: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    for sub in ["catalog", "site"] {
        std::fs::create_dir_all(to.join(sub)).expect("mkdir");
        for e in std::fs::read_dir(root.join(sub)).expect("rules") {
            let p = e.expect("entry").path();
            std::fs::copy(&p, to.join(sub).join(p.file_name().expect("name"))).expect("copy");
        }
    }
}

/// Every notification until `want` arrives (or the deadline passes).
fn until(sock: &UnixDatagram, want: &str, seen: &mut Vec<String>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            seen.push(msg.clone());
            if msg.contains(want) {
                return true;
            }
        }
    }
    false
}

fn metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics");
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut s = String::new();
    c.read_to_string(&mut s).expect("read");
    s
}

#[test]
fn notifies_systemd_reloads_on_sighup_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    copy_rules(&d.join("rules"));
    let tcp_port = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let (dns, http, console) = (free_port(), tcp_port(), tcp_port());
    let config = d.join("aiwarden.toml");
    std::fs::write(
        &config,
        format!(
            "mode = \"enforce\"\nrules = \"rules\"\n[dns]\nlisten = [\"127.0.0.1:{dns}\"]\nupstreams = [\"127.0.0.1:9\"]\ntimeout_ms = 200\n[store]\npath = \"incidents.db\"\n[metrics]\nlisten = \"127.0.0.1:{http}\"\n\
             [console]\nenabled = true\nlisten = \"127.0.0.1:{console}\"\n"
        ),
    )
    .expect("config");
    let notify_path = d.join("notify.sock");
    let sock = UnixDatagram::bind(&notify_path).expect("notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "1000000")
        .env("AIWARDEN_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("daemon starts");
    let mut seen = Vec::new();
    assert!(until(&sock, "READY=1", &mut seen), "no READY=1: {seen:?}");
    assert!(
        until(&sock, "WATCHDOG=1", &mut seen),
        "no WATCHDOG=1: {seen:?}"
    );

    // The web console is up with the daemon (its certificate made beside the store).
    let web = https::Client::new(
        ([127, 0, 0, 1], console).into(),
        &d.join(aiwarden::console::CERT_FILE),
    );
    let login = web.get("/login", None);
    assert_eq!(login.status, 200);
    assert!(login.header("content-security-policy").is_some());

    // A bad deny list and SIGHUP: refused, the old rules stay, the metric says so.
    std::fs::write(d.join("rules/site/deny.list"), "ok.example\nbad entry\n").expect("write");
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill")
        .success());
    let deadline = Instant::now() + Duration::from_secs(15);
    while !metrics(http).contains("aiwarden_rules_reloads_total{result=\"error\"}") {
        assert!(Instant::now() < deadline, "no failed reload in metrics");
        std::thread::sleep(Duration::from_millis(50));
    }
    let m = metrics(http);
    assert!(m.contains("aiwarden_rules_last_reload_success 0"), "{m}");
    assert!(m.contains("aiwarden_rules_version 1"), "{m}");

    // A good change and SIGHUP: the new rules are in force, and recorded.
    std::fs::write(d.join("rules/site/deny.list"), "ok.example\n").expect("write");
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill")
        .success());
    let deadline = Instant::now() + Duration::from_secs(15);
    while !metrics(http).contains("aiwarden_rules_version 2") {
        assert!(
            Instant::now() < deadline,
            "no second rules version in metrics"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // SIGTERM: STOPPING=1 and a clean exit.
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    assert!(
        until(&sock, "STOPPING=1", &mut seen),
        "no STOPPING=1: {seen:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "daemon did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut log);
    }
    assert!(status.success(), "{status:?}\n{log}");
    assert!(
        log.contains("deny.list:2"),
        "the failed reload names file and line:\n{log}"
    );
    // The rules at start and after the good reload are chained `rules_loaded` events
    // (the weekly report's rule changes); the refused file left no row.
    let store = aiwarden::store::Store::open_read_only(&d.join("incidents.db")).expect("store");
    let loads: Vec<String> = store
        .events(0, i64::MAX)
        .expect("events")
        .into_iter()
        .filter(|e| e.event == "rules_loaded" && e.actor == "aiwarden")
        .map(|e| e.detail)
        .collect();
    assert_eq!(loads.len(), 2, "{loads:?}");
    assert_ne!(loads[0], loads[1]);
    assert!(loads[1].contains("1 deny entries"), "{loads:?}");
}

#[test]
fn a_busy_port_is_named_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // Something else already serves DNS on this port.
    let busy = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    let cfg = d.join("aiwarden.toml");
    std::fs::write(
        &cfg,
        format!(
            "[dns]\nlisten = [\"127.0.0.1:{port}\"]\nupstreams = [\"127.0.0.1:9\"]\n\
             [store]\npath = \"{}\"\n[metrics]\nlisten = \"off\"\n",
            d.join("incidents.db").display()
        ),
    )
    .expect("config");
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "dns: cannot listen on 127.0.0.1:{port}: Address already in use"
        )),
        "{err}"
    );
    drop(busy);
}
