use std::path::Path;
use std::time::{Duration, Instant};

use super::*;
use crate::firewall::nft::DryRun;

fn config(mode: &str, extra: &str) -> Config {
    Config::parse(
        Path::new("/etc/aiwarden/aiwarden.toml"),
        &format!(
            "mode = \"{mode}\"\n[capture]\ninterfaces = [\"lan0\"]\n[dns]\nlisten = [\"192.168.1.1:53\"]\nupstreams = [\"9.9.9.9\"]\n[enforcement]\nplacement = \"router\"\n{extra}"
        ),
    )
    .expect("config")
}

fn rules() -> RuleSet {
    RuleSet::load(&crate::policy::RuleDirs::under(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"),
    ))
    .expect("rules")
}

fn applied(fw: &DryRun) -> Vec<String> {
    fw.log
        .lock()
        .expect("log")
        .applied
        .iter()
        .map(|b| serde_json::Value::Array(b.clone()).to_string())
        .collect()
}

#[test]
fn monitor_mode_installs_nothing_that_changes_traffic() {
    let fw = DryRun::default();
    let r = Router::start(
        &config("monitor", ""),
        &rules(),
        Box::new(fw.clone()),
        Arc::new(Metrics::new()),
        None,
    )
    .expect("start");
    assert_eq!(r.tcp, TcpPath::Off);
    assert!(r.queue.is_none());
    let batches = applied(&fw);
    assert_eq!(batches.len(), 1, "{batches:?}");
    assert_eq!(
        batches[0],
        serde_json::Value::Array(ruleset::remove_commands()).to_string(),
        "only a stale table is removed"
    );
    assert!(fw.log.lock().expect("log").xt.is_none());
    r.stop();
}

#[test]
fn reactive_mode_installs_the_table_without_a_queue_and_fills_the_sets() {
    let fw = DryRun::default();
    let r = Router::start(
        &config("enforce", "tcp = \"reactive\"\n"),
        &rules(),
        Box::new(fw.clone()),
        Arc::new(Metrics::new()),
        None,
    )
    .expect("start");
    assert_eq!(r.tcp, TcpPath::Reactive);
    let batches = applied(&fw);
    assert_eq!(batches.len(), 1);
    assert!(batches[0].contains("forward_filter") && batches[0].contains("dns_redirect"));
    assert!(!batches[0].contains("\"queue\""));
    // The capture path's blocks become tuples in the sets, batched.
    let mut e = r.enforcer(&config("enforce", "tcp = \"reactive\"\n"));
    let obs = |proto, port| Observation {
        ts: crate::detect::Timestamp::from_micros(1),
        client: "192.168.1.20:50000".parse().expect("addr"),
        client_mac: None,
        server: std::net::SocketAddr::new("203.0.113.10".parse().expect("ip"), port),
        proto,
        host: Some(crate::detect::Host::parse(b"chatgpt.com").expect("host")),
        asked: None,
        ech_offered: false,
        unresolved: false,
        incomplete: false,
        alpn: Vec::new(),
        qtype: None,
        answers: Vec::new(),
        tcp: None,
    };
    assert_eq!(
        e.act(&obs(Proto::Tls, 443), Verdict::Block),
        Some(Action::Reset)
    );
    assert_eq!(
        e.act(&obs(Proto::Quic, 443), Verdict::Block),
        Some(Action::QuicDrop)
    );
    assert_eq!(e.act(&obs(Proto::Tls, 443), Verdict::Flag), None);
    let start = Instant::now();
    while applied(&fw).len() < 2 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let batches = applied(&fw);
    assert_eq!(batches.len(), 2, "{batches:?}");
    assert!(
        batches[1].contains("deny4") && batches[1].contains("quic4"),
        "{}",
        batches[1]
    );
    assert!(batches[1].contains("192.168.1.20") && batches[1].contains("203.0.113.10"));
    r.stop();
    // A clean stop removes the table.
    let last = applied(&fw).pop().expect("a batch");
    assert_eq!(
        last,
        serde_json::Value::Array(ruleset::remove_commands()).to_string()
    );
}

#[test]
fn describe_says_what_each_placement_blocks() {
    let c = config("enforce", "");
    assert_eq!(
        describe(&c, Some(TcpPath::QueueXt)),
        ["router", "queue-xt", "reject", "nxdomain+redirect"].map(String::from)
    );
    assert_eq!(describe(&config("monitor", ""), None)[1], "off");
    assert_eq!(
        failopen_upstreams(&c),
        vec!["9.9.9.9".parse::<IpAddr>().expect("ip")]
    );
}

#[test]
fn queue_stats_parse_the_kernels_table() {
    let text = "    0  12345     3 2 65535     7     1       99  1\n    1  1     0 2 65535     0     0       0  1\n";
    assert_eq!(
        QueueStats::parse(text, 0),
        Some(QueueStats {
            waiting: 3,
            dropped: 7,
            user_dropped: 1
        })
    );
    assert_eq!(QueueStats::parse(text, 5), None);
}

#[test]
fn the_table_is_rebuilt_when_the_rules_change() {
    let fw = DryRun::default();
    let cfg = config("enforce", "tcp = \"reactive\"\n");
    let dirs = crate::policy::RuleDirs::under(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"));
    let live = Arc::new(Live::new(&dirs, rules()));
    let r = Router::start(
        &cfg,
        &live.current(),
        Box::new(fw.clone()),
        Arc::new(Metrics::new()),
        Some(live.clone()),
    )
    .expect("start");
    assert_eq!(applied(&fw).len(), 1);
    live.replace(rules());
    let start = Instant::now();
    while applied(&fw).len() < 2 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let batches = applied(&fw);
    assert_eq!(batches.len(), 2, "rebuilt once");
    assert_eq!(batches[0], batches[1], "the same rules make the same table");
    r.stop();
}
