//! The `aiwarden` binary as a user runs it: output fields, exit codes, error messages.

use std::path::Path;
use std::process::Command;

fn aiwarden() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aiwarden"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

#[test]
fn replay_prints_json_lines_and_a_summary() {
    let out = aiwarden()
        .args([
            "replay",
            "--no-progress",
            "tests/fixtures/tls_ech_grease.pcap",
        ])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2);
    let tls = &lines[1];
    for field in [
        "ts",
        "client",
        "client_port",
        "server",
        "server_port",
        "proto",
        "host",
        "service",
        "tier",
        "verdict",
        "rule",
        "how",
        "ech",
        "unresolved",
    ] {
        assert!(tls.get(field).is_some(), "missing {field}: {tls}");
    }
    assert_eq!(tls["proto"], "tls");
    assert_eq!(tls["host"], "claude.ai");
    // A GREASE ECH extension hides nothing: the SNI is the name the device looked up.
    assert_eq!(tls["ech"], false);
    assert_eq!(tls["how"], "tls");
    assert_eq!(tls["ts"], "2026-11-23T08:05:00.001750Z");
    let stderr = String::from_utf8(out.stderr).expect("utf8");
    assert!(stderr.contains("packets: "), "{stderr}");
    assert!(
        stderr.contains("detections by service: claude=2"),
        "{stderr}"
    );
}

#[test]
fn all_prints_hosts_no_rule_matches() {
    let run = |all: bool| {
        let mut c = aiwarden();
        c.args(["replay", "--no-progress", "tests/fixtures/lookalikes.pcap"]);
        if all {
            c.arg("--all");
        }
        let out = c.output().expect("runs");
        assert!(out.status.success());
        String::from_utf8(out.stdout).expect("utf8").lines().count()
    };
    assert_eq!(run(false), 0);
    assert_eq!(run(true), 12);
}

#[test]
fn monitor_mode_flags_instead_of_blocking() {
    let out = aiwarden()
        .args([
            "replay",
            "--no-progress",
            "--mode",
            "monitor",
            "tests/fixtures/quic_v1_chatgpt.pcap",
        ])
        .output()
        .expect("runs");
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    assert!(
        stdout.lines().all(|l| l.contains("\"verdict\":\"flag\"")),
        "{stdout}"
    );
}

#[test]
fn incidents_group_per_client_and_service() {
    let out = aiwarden()
        .args([
            "replay",
            "--no-progress",
            "--incidents",
            "--site",
            "samples/site",
            "samples/clinic-morning.pcap",
        ])
        .output()
        .expect("runs");
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let incidents: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let find = |client: &str, service: &str| {
        incidents
            .iter()
            .filter(|i| i["client_ip"] == client && i["service"] == service)
            .count()
    };
    // Front desk: ChatGPT at 09:30 (QUIC, TLS, DNS grouped) and again after 11:00.
    assert_eq!(find("10.0.0.21", "chatgpt"), 2, "{stdout}");
    assert_eq!(find("10.0.0.22", "claude"), 1);
    assert_eq!(find("10.0.0.25", "azure-openai"), 1);
    // DoH to two public resolvers, then ChatGPT at a hard-coded address.
    assert_eq!(find("10.0.0.26", "doh-resolvers"), 1);
    assert_eq!(find("10.0.0.26", "chatgpt"), 1);
    assert_eq!(incidents.len(), 8);
    // The clinic's own Azure tenant is allowed: no incident.
    assert_eq!(find("10.0.0.24", "azure-openai"), 0);
}

#[test]
fn unreadable_capture_exits_2_naming_the_file() {
    let out = aiwarden()
        .args(["replay", "--no-progress", "Cargo.toml"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).expect("utf8");
    assert!(
        stderr.starts_with("aiwarden: capture Cargo.toml:"),
        "{stderr}"
    );
    let out = aiwarden()
        .args(["replay", "no-such.pcap"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn invalid_rules_exit_2_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("catalog")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("site")).expect("mkdir");
    std::fs::write(
        dir.path().join("site/deny.list"),
        "ok.example\nnot a host!\n",
    )
    .expect("write");
    let out = aiwarden()
        .args(["rules", "check"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).expect("utf8");
    let want = format!(
        "{}:2:",
        Path::new(dir.path()).join("site/deny.list").display()
    );
    assert!(stderr.contains(&want), "{stderr}");
    let out = aiwarden()
        .args(["replay", "--rules"])
        .arg(dir.path())
        .arg("tests/fixtures/dns_udp.pcap")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn rules_list_prints_the_catalog() {
    let out = aiwarden()
        .args(["rules", "list", "--json"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let services = v["services"].as_array().expect("array");
    assert!(services.len() >= 150);
    // The summary counts what the list holds, per category, and dates the review.
    let summary = &v["summary"];
    assert_eq!(summary["services"], services.len());
    let per_category: u64 = summary["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .map(|c| c["services"].as_u64().expect("count"))
        .sum();
    assert_eq!(per_category, services.len() as u64);
    let chat = services.iter().filter(|s| s["category"] == "chat").count();
    let listed = summary["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .find(|c| c["id"] == "chat")
        .expect("chat counted");
    assert_eq!(listed["services"], chat);
    assert_eq!(listed["name"], "Chat assistants");
    assert_eq!(summary["unreviewed"], 0);
    let last = summary["last_reviewed"].as_str().expect("a review date");
    assert!(services
        .iter()
        .all(|s| s["reviewed"].as_str() <= Some(last)));
    assert!(services
        .iter()
        .all(|s| !s["sources"].as_array().expect("sources").is_empty()));
    let azure = services
        .iter()
        .find(|s| s["id"] == "azure-openai")
        .expect("azure-openai listed");
    assert_eq!(azure["baa"], "available");
    assert_eq!(azure["hosts"][0]["tenant"], "in_host");
    let out = aiwarden().args(["rules", "list"]).output().expect("runs");
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(
        text.lines()
            .any(|l| l.starts_with("chatgpt ") && l.contains("enterprise_only")),
        "{text}"
    );
}

#[test]
fn rules_check_and_explain() {
    // The shipped site files define nothing; the sample clinic's define two groups.
    let out = aiwarden().args(["rules", "check"]).output().expect("runs");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(text.ends_with("0 client groups, 0 warnings)\n"), "{text}");
    let out = aiwarden()
        .args(["rules", "check", "--site", "samples/site"])
        .output()
        .expect("runs");
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(text.ends_with("2 client groups, 0 warnings)\n"), "{text}");
    let out = aiwarden()
        .args([
            "rules",
            "explain",
            "Chat.OpenAI.com.",
            "--json",
            "--site",
            "samples/site",
            "--client",
            "10.0.0.21",
        ])
        .output()
        .expect("runs");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["host"], "chat.openai.com");
    assert_eq!(v["service"], "chatgpt");
    assert_eq!(v["tier"], "shared");
    assert_eq!(v["verdict"], "block");
    // 10.0.0.21 is the front desk, whose group may use no AI at all.
    assert_eq!(v["group"], "frontdesk");
    assert_eq!(v["rule"], "site/groups.toml:28");
    let out = aiwarden()
        .args([
            "rules",
            "explain",
            "chat.openai.com",
            "--json",
            "--site",
            "samples/site",
            "--client",
            "10.0.0.22",
        ])
        .output()
        .expect("runs");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["group"], serde_json::Value::Null);
    assert_eq!(v["rule"], "catalog/openai.toml:chatgpt");
    let out = aiwarden()
        .args(["rules", "explain", "gemini.com", "--json"])
        .output()
        .expect("runs");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["tier"], serde_json::Value::Null);
    assert_eq!(v["verdict"], "allow");
}

#[test]
fn the_shipped_rules_are_found_from_any_directory() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = aiwarden()
        .current_dir("/")
        .args(["replay", "--no-progress"])
        .arg(root.join("tests/fixtures/tls_rustls_single.pcap"))
        .env_remove("AIWARDEN_RULES")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    let out = aiwarden()
        .current_dir("/")
        .args(["rules", "explain", "claude.ai"])
        .output()
        .expect("runs");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("verdict:   block"),
        "{out:?}"
    );
    // AIWARDEN_RULES points elsewhere: an error naming it.
    let out = aiwarden()
        .current_dir("/")
        .args(["rules", "check"])
        .env("AIWARDEN_RULES", "/nonexistent/rules")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/rules/catalog"),
        "{out:?}"
    );
}

#[test]
fn rules_check_warns_and_fails_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    std::fs::create_dir_all(dir.path().join("catalog")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("site")).expect("mkdir");
    for e in std::fs::read_dir(root.join("catalog")).expect("catalog") {
        let p = e.expect("entry").path();
        std::fs::copy(
            &p,
            dir.path()
                .join("catalog")
                .join(p.file_name().expect("name")),
        )
        .expect("copy");
    }
    let deny = dir.path().join("site/deny.list");
    std::fs::write(&deny, "ads.example\nx.ads.example\n").expect("write");
    let check = |strict: bool| {
        let mut cmd = aiwarden();
        cmd.args(["rules", "check"]).arg(dir.path());
        if strict {
            cmd.arg("--strict");
        }
        cmd.output().expect("runs")
    };
    let out = check(false);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(
        text.starts_with(&format!(
            "{}:2: warning: x.ads.example is already covered by ads.example",
            deny.display()
        )),
        "{text}"
    );
    assert_eq!(check(true).status.code(), Some(2));
    std::fs::write(&deny, "ads.example\nbad!.example\n").expect("write");
    let out = check(false);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).expect("utf8");
    assert!(
        err.contains(&format!("{}:2: invalid character '!'", deny.display())),
        "{err}"
    );
}

/// A copy of the shipped rules in a temporary directory.
fn rules_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    for sub in ["catalog", "site"] {
        std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        for e in std::fs::read_dir(root.join(sub)).expect("dir") {
            let p = e.expect("entry").path();
            std::fs::copy(&p, dir.path().join(sub).join(p.file_name().expect("name")))
                .expect("copy");
        }
    }
    dir
}

#[test]
fn rules_import_appends_and_never_breaks_the_deny_list() {
    let dir = rules_copy();
    let rules = dir.path().to_path_buf();
    let lists = tempfile::tempdir().expect("tempdir");
    let hosts = lists.path().join("hosts");
    std::fs::write(
        &hosts,
        "127.0.0.1 localhost\n0.0.0.0 scribe.example\n0.0.0.0 a.scribe.example\n0.0.0.0 notes.example.org\n",
    )
    .expect("write");
    let abp = lists.path().join("ai.txt");
    std::fs::write(
        &abp,
        "[Adblock Plus 2.0]\n! comment\n||free-ai.example^\n||x.example/path\n@@||ok.example^\n",
    )
    .expect("write");
    let import = |extra: &[&str]| {
        let mut cmd = aiwarden();
        cmd.args(["rules", "import", "--rules"])
            .arg(&rules)
            .args(extra)
            .arg(&hosts)
            .arg(&abp);
        cmd.output().expect("runs")
    };
    let deny = rules.join("site/deny.list");
    let before = std::fs::read_to_string(&deny).expect("read");

    let out = import(&["--dry-run"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect::<Vec<_>>(),
        ["scribe.example", "notes.example.org", "free-ai.example"]
    );
    assert_eq!(std::fs::read_to_string(&deny).expect("read"), before);

    let out = import(&[]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ai.txt:4: skipped (path rule"), "{err}");
    assert!(err.contains("ai.txt:5: skipped (exception rule"), "{err}");
    let after = std::fs::read_to_string(&deny).expect("read");
    assert!(after.starts_with(&before), "existing lines kept");
    assert!(
        after.contains("\nscribe.example\nnotes.example.org\n"),
        "{after}"
    );
    let check = aiwarden()
        .args(["rules", "explain", "a.scribe.example", "--json", "--rules"])
        .arg(&rules)
        .output()
        .expect("runs");
    let v: serde_json::Value = serde_json::from_slice(&check.stdout).expect("json");
    assert_eq!(v["verdict"], "block");

    // Again: everything is already listed, nothing is added.
    let out = import(&[]);
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&deny).expect("read"), after);
    assert!(String::from_utf8_lossy(&out.stderr).contains("added 0 entries"));

    // A rule set that does not load is never rewritten.
    std::fs::write(&deny, "bad host line\n").expect("write");
    let out = import(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        std::fs::read_to_string(&deny).expect("read"),
        "bad host line\n"
    );

    // An unknown group is refused.
    std::fs::write(&deny, "").expect("write");
    let out = import(&["--group", "nobody"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&deny).expect("read"), "");
}

#[test]
fn bad_config_names_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("aiwarden.toml");
    std::fs::write(&cfg, "mode = \"enforce\"\n[dns]\nlisten = [\"127.0.0.1:5353\"]\nupstreams = [\"9.9.9.9\"]\ncache = 10\n")
        .expect("write");
    let out = aiwarden()
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:5: unknown field `cache`", cfg.display())),
        "{err}"
    );
    // A good config whose rules directory holds a bad file: the rules error names its line.
    let rules = rules_copy();
    std::fs::write(
        rules.path().join("site/deny.list"),
        "ok.example\nnot a host\n",
    )
    .expect("write");
    std::fs::write(&cfg, format!("rules = \"{}\"\n", rules.path().display())).expect("write");
    let out = aiwarden()
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("deny.list:2:"), "{err}");
    // The shipped example config is valid.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let out = aiwarden()
        .args(["check", "--files-only", "--config"])
        .arg(&example)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn check_tries_this_host_and_names_every_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("aiwarden.toml");
    let nowhere = dir.path().join("nowhere");
    std::fs::write(
        &cfg,
        format!(
            "[capture]\ninterfaces = [\"aiw-missing0\"]\n[dns]\nlisten = [\"192.0.2.53:53\"]\nupstreams = [\"9.9.9.9\"]\n\
             [store]\npath = \"{}\"\n",
            nowhere.join("incidents.db").display()
        ),
    )
    .expect("write");
    let out = aiwarden()
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3 problems"), "{err}");
    assert!(err.contains("dns.listen 192.0.2.53:53"), "{err}");
    assert!(err.contains("capture.interfaces aiw-missing0"), "{err}");
    assert!(
        err.contains(&format!("directory {} does not exist", nowhere.display())),
        "{err}"
    );
    // The same files are fine as files.
    let out = aiwarden()
        .args(["check", "--files-only", "--config"])
        .arg(&cfg)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    // A wildcard listener is allowed, with a warning.
    std::fs::write(
        &cfg,
        format!(
            "[dns]\nlisten = [\"0.0.0.0:53\"]\nupstreams = [\"9.9.9.9\"]\n[store]\npath = \"{}\"\n",
            dir.path().join("incidents.db").display()
        ),
    )
    .expect("write");
    let out = aiwarden()
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("answers on every address of this host"),
        "{text}"
    );
}

#[test]
fn check_says_what_is_enforced_and_warns_about_a_loopback_resolver() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("aiwarden.toml");
    let check = |text: &str| {
        std::fs::write(&cfg, text).expect("write");
        let out = aiwarden()
            .args(["check", "--files-only", "--config"])
            .arg(&cfg)
            .output()
            .expect("runs");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).expect("utf8")
    };
    let out = check(
        "mode = \"enforce\"\n[capture]\ninterfaces = [\"eth1\"]\n[dns]\nlisten = [\"127.0.0.1:53\"]\nupstreams = [\"9.9.9.9\"]\n",
    );
    assert!(
        out.contains("dns.listen is only on loopback (127.0.0.1:53): no device on the LAN can reach the resolver"),
        "{out}"
    );
    assert!(out.contains("2 warnings)"), "{out}");
    assert!(
        out.contains("enforce mode with placement \"resolver\": only names asked of aiwarden's resolver are blocked"),
        "{out}"
    );
    assert!(
        out.contains("enforcement: placement resolver (tcp off, quic off, dns nxdomain): blocked names get NXDOMAIN from the resolver; connections around it are not blocked"),
        "{out}"
    );
    let out = check(
        "mode = \"enforce\"\n[capture]\ninterfaces = [\"eth1\"]\n[dns]\nlisten = [\"192.168.1.1:53\", \"[fd00::1]:53\"]\nupstreams = [\"9.9.9.9\"]\n[enforcement]\nplacement = \"router\"\n",
    );
    assert!(out.contains("0 warnings)"), "{out}");
    assert!(
        out.contains("enforcement: placement router (tcp queue-or-reactive, quic reject, dns nxdomain+redirect)")
            && out.contains("DNS to other resolvers is redirected to aiwarden's"),
        "{out}"
    );
    let out = check(
        "[capture]\ninterfaces = [\"eth1\"]\n[dns]\nlisten = [\"192.168.1.1:53\"]\nupstreams = [\"9.9.9.9\"]\n",
    );
    assert!(out.contains("0 warnings)"), "{out}");
    assert!(out.contains("monitor mode"), "{out}");
    // A capture filter that does not compile is an error naming the file and line.
    std::fs::write(&cfg, "[capture]\nfilter = \"port 53 or\"\n").expect("write");
    let out = aiwarden()
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("{}:2: capture.filter", cfg.display())),
        "{out:?}"
    );
}
