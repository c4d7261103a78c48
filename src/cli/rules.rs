//! `aiwarden rules check | list | explain | import | docs`.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use super::import::{self as rules_import};
use super::{CmdResult, ModeArg, RulesArgs};
use crate::error::Error;
use crate::policy::import::ListFormat;
use crate::policy::{Client, Mac, RuleDirs, RuleSet};

/// A rules directory given as an optional positional argument.
#[derive(clap::Args)]
pub(super) struct DirArg {
    /// The rules directory (catalog/ and site/). Default: the shipped rules.
    #[arg(env = "AIWARDEN_RULES", default_value_os_t = crate::paths::rules())]
    dir: PathBuf,
    /// The site files. Default: the installed site directory with the shipped rules,
    /// else the rules directory's site/.
    #[arg(long)]
    site: Option<PathBuf>,
}

impl DirArg {
    fn load(&self) -> crate::Result<RuleSet> {
        RuleSet::load(&RuleDirs::with_site(&self.dir, self.site.as_deref()))
    }
}

/// `aiwarden rules ...`.
#[derive(clap::Subcommand)]
pub(super) enum Command {
    /// Check every rule file: errors and warnings name file and line.
    Check {
        #[command(flatten)]
        dir: DirArg,
        /// Exit with status 2 on warnings too (for CI of an MSP's rule repository).
        #[arg(long)]
        strict: bool,
    },
    /// List the catalog's services with their healthcare attributes.
    List {
        #[command(flatten)]
        dir: DirArg,
        /// One JSON array, for reports and MSP tooling.
        #[arg(long)]
        json: bool,
    },
    /// Append hosts files, plain domain lists or AdGuard/ABP lists to site/deny.list.
    Import {
        /// The lists to import.
        #[arg(required = true)]
        lists: Vec<PathBuf>,
        /// The lists' format.
        #[arg(long, value_enum, default_value = "auto")]
        format: ListFormat,
        #[command(flatten)]
        rules: RulesArgs,
        /// Scope every imported entry to this client group (`@group`).
        #[arg(long)]
        group: Option<String>,
        /// Print the lines that would be appended; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// List every skipped line, not just the first ten per list.
        #[arg(long)]
        show_skipped: bool,
    },
    /// Print the catalog as Markdown (docs/catalog.md is this output).
    Docs {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Show which rule decides a host and why.
    Explain {
        /// Host name to look up.
        host: String,
        /// The client's address (picks its group by CIDR).
        #[arg(long)]
        client: Option<IpAddr>,
        /// The client's MAC address (picks its group by MAC).
        #[arg(long)]
        mac: Option<Mac>,
        /// The client's device name (picks its group by name).
        #[arg(long)]
        device: Option<String>,
        #[command(flatten)]
        rules: RulesArgs,
        /// Mode to decide in.
        #[arg(long, value_enum, default_value = "enforce")]
        mode: ModeArg,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn run(c: Command) -> CmdResult {
    let mut out = std::io::stdout().lock();
    match c {
        Command::Check { dir, strict } => {
            let rules = dir.load()?;
            let warnings = rules.lint();
            for w in &warnings {
                writeln!(out, "{w}")?;
            }
            writeln!(
                out,
                "{}: ok ({} services, {} patterns, {} client groups, {} warnings)",
                dir.dir.display(),
                rules.services().count(),
                rules.pattern_count(),
                rules.groups().len(),
                warnings.len()
            )?;
            if strict && !warnings.is_empty() {
                return Err(Error::Usage(format!(
                    "{} warnings with --strict",
                    warnings.len()
                )));
            }
            Ok(())
        }
        Command::List { dir, json } => {
            let rules = dir.load()?;
            let summary = rules.catalog_summary();
            if json {
                #[derive(serde::Serialize)]
                struct Listing<'a> {
                    summary: &'a crate::policy::catalog::Summary,
                    services: Vec<&'a std::sync::Arc<crate::policy::Service>>,
                }
                let listing = Listing {
                    summary: &summary,
                    services: rules.services().collect(),
                };
                serde_json::to_writer_pretty(&mut out, &listing).map_err(std::io::Error::from)?;
                writeln!(out)?;
                return Ok(());
            }
            writeln!(
                out,
                "{:<20} {:<34} {:<14} {:<26} {:<16} TRAINS ON DATA",
                "ID", "NAME", "CATEGORY", "TIERS", "BAA"
            )?;
            for s in rules.services() {
                let mut tiers: Vec<&str> = s.hosts.iter().map(|h| h.tier.as_str()).collect();
                tiers.dedup();
                if !s.addresses.is_empty() {
                    tiers.push("addresses");
                }
                tiers.extend(s.signals.iter().map(|s| s.as_str()));
                let attr = |v: Option<serde_json::Value>| {
                    v.and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_else(|| "-".into())
                };
                writeln!(
                    out,
                    "{:<20} {:<34} {:<14} {:<26} {:<16} {}",
                    &*s.id,
                    &*s.name,
                    s.category,
                    tiers.join(","),
                    attr(s.baa.and_then(|b| serde_json::to_value(b).ok())),
                    attr(s.trains_on_data.and_then(|t| serde_json::to_value(t).ok())),
                )?;
            }
            writeln!(out)?;
            for c in summary.categories.iter().filter(|c| c.services > 0) {
                writeln!(out, "{:>4}  {}", c.services, c.name)?;
            }
            writeln!(
                out,
                "{:>4}  services, {} host patterns; last reviewed {}, oldest review {}{}",
                summary.services,
                summary.patterns,
                summary.last_reviewed.as_deref().unwrap_or("never"),
                summary.oldest_reviewed.as_deref().unwrap_or("never"),
                match summary.unreviewed {
                    0 => String::new(),
                    n => format!(", {n} never reviewed"),
                }
            )?;
            Ok(())
        }
        Command::Import {
            lists,
            format,
            rules,
            group,
            dry_run,
            show_skipped,
        } => {
            let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
            let dirs = rules.dirs();
            let opts = rules_import::Options {
                rules: dirs.clone(),
                format,
                group,
                dry_run,
                show_skipped,
                date: now.get(..10).unwrap_or(&now).to_string(),
            };
            let s = rules_import::run(&lists, &opts, &mut out, &mut std::io::stderr().lock())?;
            eprintln!(
                "{} {} entries to {}",
                if dry_run { "would add" } else { "added" },
                s.added,
                dirs.site.join("deny.list").display()
            );
            Ok(())
        }
        Command::Docs { dir } => {
            let rules = dir.load()?;
            out.write_all(crate::policy::docs::catalog_markdown(&rules).as_bytes())?;
            Ok(())
        }
        Command::Explain {
            host,
            client,
            mac,
            device,
            rules,
            mode,
            json,
        } => {
            let rules = RuleSet::load(&rules.dirs())?;
            let who = Client::new(client, mac, device.as_deref());
            let explanation = rules.explain(&host, &who, mode.into());
            if json {
                serde_json::to_writer_pretty(&mut out, &explanation)
                    .map_err(std::io::Error::from)?;
                writeln!(out)?;
            } else {
                write!(out, "{explanation}")?;
            }
            Ok(())
        }
    }
}
