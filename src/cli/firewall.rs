//! `aiwarden firewall plan|down|failopen` and `aiwarden status`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::daemon::ConfigArg;
use super::CmdResult;
use crate::config::{Config, Placement};
use crate::firewall::router::{failopen_upstreams, plan};
use crate::firewall::ruleset::{self, QueueRule};
use crate::firewall::{Firewall, Nft};
use crate::policy::RuleSet;

/// `aiwarden firewall ...`.
#[derive(clap::Subcommand)]
pub(super) enum Command {
    /// Print the nftables batch a router would install (JSON for `nft -j -f -`), without
    /// changing anything.
    Plan {
        #[command(flatten)]
        config: ConfigArg,
        /// Include the native nft queue rule (kernels with the nft `queue` expression).
        #[arg(long)]
        native_queue: bool,
    },
    /// Remove everything aiwarden put in the firewall (table inet aiwarden, the iptables
    /// NFQUEUE hook).
    Down,
    /// Run by the unit's ExecStopPost: after a clean stop (SERVICE_RESULT=success) the same
    /// as `down`; after a crash, a kill or a watchdog timeout, leave only a table that sends
    /// DNS to the gateway straight to the first upstream, so the clinic keeps resolving
    /// until aiwarden is back.
    Failopen {
        #[command(flatten)]
        config: ConfigArg,
    },
}

pub(super) fn run(c: Command) -> CmdResult {
    match c {
        Command::Plan {
            config,
            native_queue,
        } => {
            let cfg = Config::load(&config.config)?;
            let rules = RuleSet::load(&cfg.rule_dirs())?;
            let mut p = plan(&cfg, &rules);
            if native_queue {
                p.queue = Some(QueueRule {
                    num: cfg.enforcement.queue,
                    packets: cfg.enforcement.queue_packets,
                });
            }
            let doc = serde_json::json!({ "nftables": p.commands() });
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &doc).map_err(std::io::Error::from)?;
            writeln!(out)?;
            if !native_queue {
                writeln!(
                    out,
                    "# without the nft queue expression, iptables rules in mangle chain {}:",
                    crate::firewall::nft::XT_CHAIN
                )?;
                let q = QueueRule {
                    num: cfg.enforcement.queue,
                    packets: cfg.enforcement.queue_packets,
                };
                for r in
                    crate::firewall::nft::xt_rules(cfg.enforcement.lan_interfaces(&cfg.capture), q)
                {
                    writeln!(out, "# iptables -t mangle {}", r.join(" "))?;
                }
            }
            Ok(())
        }
        Command::Down => {
            let mut fw = Nft;
            fw.remove_xt();
            fw.apply(ruleset::remove_commands())?;
            println!("firewall: table inet aiwarden and the iptables hook removed");
            Ok(())
        }
        Command::Failopen { config } => {
            let mut fw = Nft;
            let clean = std::env::var("SERVICE_RESULT").is_ok_and(|r| r == "success");
            let cfg = Config::load(&config.config);
            let failopen = match &cfg {
                Ok(c) if !clean && c.enforcement.placement == Placement::Router => Some(c),
                _ => None,
            };
            // DNS first (one nft transaction), then the iptables hook, which passes packets
            // by itself once nobody reads the queue.
            let applied = match failopen {
                Some(c) => {
                    let ups = failopen_upstreams(c);
                    fw.apply(ruleset::failopen_commands(
                        c.enforcement.lan_interfaces(&c.capture),
                        &ups,
                    ))
                    .map(|()| {
                        println!(
                            "firewall: fail-open: DNS to this gateway goes to {ups:?} until aiwarden is back"
                        )
                    })
                }
                None => fw
                    .apply(ruleset::remove_commands())
                    .map(|()| println!("firewall: table inet aiwarden removed")),
            };
            fw.remove_xt();
            applied
        }
    }
}

/// `aiwarden status`.
#[derive(clap::Args)]
pub(super) struct StatusArgs {
    #[command(flatten)]
    config: ConfigArg,
}

fn get(addr: std::net::SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: aiwarden\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// The value of the first sample of `name` whose labels contain `label`, as text.
fn sample<'a>(metrics: &'a str, name: &str, label: &str) -> Option<&'a str> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(name) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next())
}

pub(super) fn status(a: StatusArgs) -> CmdResult {
    let cfg = Config::load(&a.config.config)?;
    println!("config: {}", cfg.path.display());
    println!("mode: {}", cfg.mode.as_str());
    let addr = match cfg.metrics.listen {
        Some(a) => a,
        None => {
            println!("daemon: unknown ([metrics] listen is off)");
            return Ok(());
        }
    };
    let (health, metrics) = match (get(addr, "/healthz"), get(addr, "/metrics")) {
        (Some(h), Some(m)) => (h, m),
        _ => {
            println!("daemon: not answering on {addr}");
            return Err(crate::Error::Usage(format!(
                "aiwarden is not running (nothing answers on {addr})"
            )));
        }
    };
    println!("health: {}", health.trim().replace('\n', "\n  "));
    if let Some(info) = metrics
        .lines()
        .find(|l| l.starts_with("aiwarden_enforcement_info{"))
    {
        let labels = info
            .split_once('{')
            .and_then(|(_, r)| r.split_once('}'))
            .map_or("", |(l, _)| l);
        println!("enforcement: {}", labels.replace('"', ""));
    }
    for (what, name, label) in [
        ("blocked: nxdomain", "aiwarden_enforced_total", "nxdomain"),
        ("blocked: reset", "aiwarden_enforced_total", "\"reset\""),
        ("blocked: quic_drop", "aiwarden_enforced_total", "quic_drop"),
        (
            "blocked: redirected",
            "aiwarden_enforced_total",
            "redirected",
        ),
        (
            "queue verdicts: accept",
            "aiwarden_queue_verdicts_total",
            "accept",
        ),
        (
            "queue verdicts: deny",
            "aiwarden_queue_verdicts_total",
            "\"deny\"",
        ),
        (
            "queue verdicts: quic_deny",
            "aiwarden_queue_verdicts_total",
            "quic_deny",
        ),
        ("queue: waiting", "aiwarden_queue_kernel", "waiting"),
        (
            "queue: dropped when full",
            "aiwarden_queue_kernel",
            "\"dropped\"",
        ),
        (
            "queue: passed unjudged (fail-open)",
            "aiwarden_queue_kernel",
            "passed_unjudged",
        ),
        ("set deny4", "aiwarden_firewall_set_elements", "deny4"),
        ("set deny6", "aiwarden_firewall_set_elements", "deny6"),
        ("set quic4", "aiwarden_firewall_set_elements", "quic4"),
        ("set quic6", "aiwarden_firewall_set_elements", "quic6"),
        ("resets sent (sensor)", "aiwarden_resets_total", "sent"),
    ] {
        if let Some(v) = sample(&metrics, name, label) {
            println!("{what}: {v}");
        }
    }
    Ok(())
}
