//! The shell that runs `nft` (through the `nftables` crate: JSON on `nft -j -f -`, one
//! kernel transaction per batch) and, where the kernel has no nft `queue` expression,
//! `iptables`/`ip6tables` for the NFQUEUE hook. [`Firewall`] is the seam tests use: [`Nft`]
//! changes the kernel, [`DryRun`] records what would have been sent.

use std::process::Command;

use serde_json::Value;

use super::ruleset::{self, QueueRule, MARKS, MARK_ALLOW, TABLE};
use crate::error::{Error, Result};

/// What changes the kernel's firewall.
pub trait Firewall: Send {
    /// Applies `commands` as one atomic batch.
    fn apply(&mut self, commands: Vec<Value>) -> Result<()>;
    /// Checks `commands` with the kernel without applying them (`nft -c`).
    fn check(&mut self, commands: Vec<Value>) -> Result<()>;
    /// Elements in one of the table's sets now, when it can be read.
    fn set_len(&mut self, set: &str) -> Option<usize>;
    /// Installs the iptables NFQUEUE hook (the kernel lacks the nft `queue` expression)
    /// for `lan`, replacing a stale one.
    fn install_xt(&mut self, lan: &[String], queue: QueueRule) -> Result<()>;
    /// Removes the iptables hook, if any.
    fn remove_xt(&mut self);
    /// Packets the queue rules have sent to the queue so far (nft's and iptables'
    /// counters), when they can be read: against the verdicts given, what fail-open let
    /// pass unjudged.
    fn queued_packets(&mut self) -> Option<u64> {
        None
    }
}

/// The real firewall: `nft` and `iptables` on the PATH.
#[derive(Debug, Default)]
pub struct Nft;

fn nft_error(what: &str, e: nftables::helper::NftablesError) -> Error {
    Error::Firewall {
        what: what.to_string(),
        message: e.to_string().trim().to_string(),
    }
}

fn doc(commands: Vec<Value>) -> Result<nftables::schema::Nftables<'static>> {
    ruleset::document(commands).map_err(|message| Error::Firewall {
        what: "nft batch".into(),
        message,
    })
}

/// The chain aiwarden owns in iptables' `mangle` tables (IPv4 and IPv6).
pub const XT_CHAIN: &str = "AIWARDEN";

fn xt(tool: &str, args: &[&str]) -> std::result::Result<(), String> {
    let out = Command::new(tool)
        .arg("-w")
        .args(args)
        .output()
        .map_err(|e| format!("{tool}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The iptables rules that queue the first packets of each new connection from `lan`:
/// every TCP port and UDP 443, packets not yet marked by a verdict, connections not yet
/// judged. `--queue-bypass`: with nobody bound to the queue, packets pass.
pub fn xt_rules(lan: &[String], q: QueueRule) -> Vec<Vec<String>> {
    let mut rules = Vec::new();
    for iface in lan {
        for proto in [&["-p", "tcp"][..], &["-p", "udp", "--dport", "443"][..]] {
            let mut r: Vec<String> = vec!["-A".into(), XT_CHAIN.into(), "-i".into(), iface.clone()];
            r.extend(proto.iter().map(|s| s.to_string()));
            r.extend(
                [
                    "-m",
                    "mark",
                    "--mark",
                    &format!("0/{MARKS:#x}"),
                    "-m",
                    "connmark",
                    "--mark",
                    &format!("0/{MARK_ALLOW:#x}"),
                    "-m",
                    "connbytes",
                    "--connbytes",
                    &format!("0:{}", q.packets),
                    "--connbytes-dir",
                    "original",
                    "--connbytes-mode",
                    "packets",
                    "-j",
                    "NFQUEUE",
                    "--queue-num",
                    &q.num.to_string(),
                    "--queue-bypass",
                ]
                .iter()
                .map(|s| s.to_string()),
            );
            rules.push(r);
        }
    }
    rules
}

impl Firewall for Nft {
    fn apply(&mut self, commands: Vec<Value>) -> Result<()> {
        let d = doc(commands)?;
        nftables::helper::apply_ruleset(&d).map_err(|e| nft_error("nft -j -f -", e))
    }

    fn check(&mut self, commands: Vec<Value>) -> Result<()> {
        let d = doc(commands)?;
        nftables::helper::apply_ruleset_with_args(&d, nftables::helper::DEFAULT_NFT, ["-c"])
            .map_err(|e| nft_error("nft -c -j -f -", e))
    }

    fn set_len(&mut self, set: &str) -> Option<usize> {
        let out = Command::new("nft")
            .args(["-j", "list", "set", "inet", TABLE, set])
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        let objects = v.get("nftables")?.as_array()?;
        Some(
            objects
                .iter()
                .filter_map(|o| o.get("set"))
                .map(|s| s.get("elem").and_then(Value::as_array).map_or(0, Vec::len))
                .sum(),
        )
    }

    fn install_xt(&mut self, lan: &[String], queue: QueueRule) -> Result<()> {
        self.remove_xt();
        for tool in ["iptables", "ip6tables"] {
            let fail = |message: String| Error::Firewall {
                what: format!("{tool} -t mangle"),
                message,
            };
            xt(tool, &["-t", "mangle", "-N", XT_CHAIN]).map_err(fail)?;
            for r in xt_rules(lan, queue) {
                let mut args = vec!["-t", "mangle"];
                args.extend(r.iter().map(String::as_str));
                xt(tool, &args).map_err(fail)?;
            }
            xt(
                tool,
                &["-t", "mangle", "-I", "FORWARD", "1", "-j", XT_CHAIN],
            )
            .map_err(fail)?;
        }
        Ok(())
    }

    fn queued_packets(&mut self) -> Option<u64> {
        let mut total = 0u64;
        let mut seen = false;
        // iptables' NFQUEUE rules: `-nvxL` prints exact packet counts first on each line.
        for tool in ["iptables", "ip6tables"] {
            if let Ok(out) = Command::new(tool)
                .args(["-w", "-t", "mangle", "-nvxL", XT_CHAIN])
                .output()
            {
                for l in String::from_utf8_lossy(&out.stdout).lines() {
                    if l.contains("NFQUEUE") {
                        if let Some(n) = l
                            .split_whitespace()
                            .next()
                            .and_then(|n| n.parse::<u64>().ok())
                        {
                            total += n;
                            seen = true;
                        }
                    }
                }
            }
        }
        // The native queue rules carry counters too.
        if let Ok(out) = Command::new("nft")
            .args(["-j", "list", "chain", "inet", TABLE, "forward_filter"])
            .output()
        {
            if let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) {
                for r in v["nftables"].as_array().into_iter().flatten() {
                    let expr = r["rule"]["expr"].as_array();
                    if expr.is_some_and(|e| e.iter().any(|x| x.get("queue").is_some())) {
                        for x in expr.into_iter().flatten() {
                            if let Some(n) = x["counter"]["packets"].as_u64() {
                                total += n;
                                seen = true;
                            }
                        }
                    }
                }
            }
        }
        seen.then_some(total)
    }

    fn remove_xt(&mut self) {
        for tool in ["iptables", "ip6tables"] {
            // Every jump to the chain (a crash between two starts could leave more than one).
            for _ in 0..16 {
                if xt(tool, &["-t", "mangle", "-D", "FORWARD", "-j", XT_CHAIN]).is_err() {
                    break;
                }
            }
            let _ = xt(tool, &["-t", "mangle", "-F", XT_CHAIN]);
            let _ = xt(tool, &["-t", "mangle", "-X", XT_CHAIN]);
        }
    }
}

/// What a [`DryRun`] was asked to do.
#[derive(Debug, Default)]
pub struct DryLog {
    /// Batches applied, in order.
    pub applied: Vec<Vec<Value>>,
    /// The iptables hook installed, if any.
    pub xt: Option<Vec<Vec<String>>>,
}

/// Records batches instead of sending them (shared, so a test can read them while the
/// firewall thread owns the `DryRun`); can be told to refuse the native queue (a kernel
/// without it) or the iptables hook (no iptables).
#[derive(Debug, Default, Clone)]
pub struct DryRun {
    /// What was done.
    pub log: std::sync::Arc<std::sync::Mutex<DryLog>>,
    /// Refuse batches holding an nft `queue` statement, as a kernel without it does.
    pub no_native_queue: bool,
    /// Refuse the iptables hook, as a machine without iptables does.
    pub no_xt: bool,
}

fn has_queue(commands: &[Value]) -> bool {
    commands.iter().any(|c| c.to_string().contains("\"queue\""))
}

impl DryRun {
    fn with_log<T>(&self, f: impl FnOnce(&mut DryLog) -> T) -> T {
        let mut log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut log)
    }
}

impl Firewall for DryRun {
    fn apply(&mut self, commands: Vec<Value>) -> Result<()> {
        doc(commands.clone())?;
        if self.no_native_queue && has_queue(&commands) {
            return Err(Error::Firewall {
                what: "nft -j -f -".into(),
                message: "Could not process rule: No such file or directory".into(),
            });
        }
        self.with_log(|l| l.applied.push(commands));
        Ok(())
    }

    fn check(&mut self, commands: Vec<Value>) -> Result<()> {
        doc(commands).map(|_| ())
    }

    fn set_len(&mut self, _set: &str) -> Option<usize> {
        None
    }

    fn install_xt(&mut self, lan: &[String], queue: QueueRule) -> Result<()> {
        if self.no_xt {
            return Err(Error::Firewall {
                what: "iptables -t mangle".into(),
                message: "not found".into(),
            });
        }
        self.with_log(|l| l.xt = Some(xt_rules(lan, queue)));
        Ok(())
    }

    fn remove_xt(&mut self) {
        self.with_log(|l| l.xt = None);
    }
}
