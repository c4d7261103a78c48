//! `aiwarden provision` as the MSP and the first-boot unit run it: `--check` on the shipped
//! sample and on bad files (exit code, messages with lines), and `--apply --root DIR` writing
//! a router's tree that the real tools accept (`aiwarden check --files-only`, `nft -c -f`
//! when root, `dnsmasq --test`), the console admin in the store, the file removed; then a
//! re-provisioning as a sensor, and a bad file leaving the safe state and saying why.
//!
//! The `.link` and `.network` files are not run through a validator: systemd has no offline
//! checker for them (`systemd-analyze verify` takes units only); their key lines are
//! asserted in the unit tests of `provision`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn aiwarden() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aiwarden"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/provision.toml")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(c: &mut Command) -> Output {
    c.output().expect("aiwarden runs")
}

fn is_root() -> bool {
    run(Command::new("id").arg("-u")).stdout.starts_with(b"0\n")
}

/// A NIC directory like /sys/class/net: `enp2s0` (the sample's LAN by name) with its MAC.
fn fake_sys(dir: &Path) -> PathBuf {
    let sys = dir.join("sys");
    std::fs::create_dir_all(sys.join("enp2s0")).expect("sys");
    std::fs::write(sys.join("enp2s0/address"), "52:54:00:65:43:21\n").expect("address");
    sys
}

fn apply(file: &Path, root: &Path, sys: &Path) -> Output {
    run(aiwarden()
        .arg("provision")
        .arg("--apply")
        .arg(file)
        .arg("--root")
        .arg(root)
        .arg("--sys-class-net")
        .arg(sys))
}

/// `nft -c -f FILE` (checks without applying; needs root for the netlink socket).
fn nft_checks(file: &Path) {
    if !is_root() {
        eprintln!("skipping nft -c: it needs root");
        return;
    }
    let out = run(Command::new("nft").arg("-c").arg("-f").arg(file));
    assert!(
        out.status.success(),
        "nft -c -f {}: {out:?}",
        file.display()
    );
}

fn aiwarden_check(config: &Path) {
    let out = run(aiwarden()
        .args(["check", "--files-only", "--config"])
        .arg(config));
    assert!(out.status.success(), "aiwarden check: {out:?}");
    assert!(text(&out.stdout).contains(": ok (mode"), "{out:?}");
}

#[test]
fn check_says_what_the_sample_does_and_lists_every_problem_of_a_bad_file() {
    let out = run(aiwarden().args(["provision", "--check"]).arg(sample()));
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    for want in [
        "provision.toml: ok",
        "role router, mode monitor",
        "lan0      interface enp2s0 (its MAC read at first boot), static 192.168.50.1/24, DHCP server 192.168.50.100-192.168.50.250 (12 h leases)",
        "console   https://192.168.50.1:8443/ with admin compliance",
        "/etc/dnsmasq.d/aiwarden-lan.conf",
        "/etc/nftables.conf",
    ] {
        assert!(stdout.contains(want), "{want:?} in {stdout}");
    }

    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("provision.toml");
    let sample_text = std::fs::read_to_string(sample()).expect("sample");
    std::fs::write(
        &bad,
        sample_text
            .replace("mode = \"monitor\"", "mode = \"block\"")
            .replace("192.168.50.1/24", "192.168.50.0/24")
            .replace(
                "admin_password_hash = \"$argon2id",
                "admin_password_hash = \"plain$argon2id",
            ),
    )
    .expect("write");
    let out = run(aiwarden().args(["provision", "--check"]).arg(&bad));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = text(&out.stderr);
    let at = |line: u32| format!("{}:{line}: ", bad.display());
    for want in [
        format!(
            "{}mode \"block\": expected \"monitor\" or \"enforce\"",
            at(7)
        ),
        format!(
            "{}lan.address: 192.168.50.0/24 is the network address, not a host address",
            at(19)
        ),
        format!(
            "{}console.admin_password_hash: not an argon2id PHC string",
            at(29)
        ),
    ] {
        assert!(stderr.contains(&want), "{want:?} in {stderr}");
    }
    assert!(
        !stderr.contains("8Zgj3OSvSz3nhHqvj4o"),
        "the hash is not echoed"
    );
    assert!(bad.exists(), "--check changes nothing");

    std::fs::write(&bad, format!("{sample_text}\nfirmware = 2\n")).expect("write");
    let out = run(aiwarden().args(["provision", "--check"]).arg(&bad));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr)
            .contains(":35: unknown field `firmware`, expected `enabled` or `authorized_keys`"),
        "{out:?}"
    );
}

#[test]
fn apply_writes_a_router_then_a_sensor_then_the_safe_state_for_a_bad_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("root");
    let efi = dir.path().join("efi");
    std::fs::create_dir_all(&efi).expect("efi");
    let sys = fake_sys(dir.path());
    let file = efi.join("provision.toml");
    std::fs::copy(sample(), &file).expect("copy");

    // The router.
    let out = apply(&file, &root, &sys);
    assert!(out.status.success(), "{out:?}");
    assert!(
        !file.exists(),
        "the file (it holds a password hash) is removed"
    );
    let etc = |p: &str| root.join(p.trim_start_matches('/'));
    let read = |p: &str| std::fs::read_to_string(etc(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert!(
        read("/etc/systemd/network/10-aiwarden-lan.link").contains("MACAddress=52:54:00:65:43:21"),
    );
    assert!(
        read("/etc/systemd/network/10-aiwarden-wan.link").contains("MACAddress=52:54:00:12:34:56")
    );
    assert_eq!(read("/etc/hostname"), "aiwarden-riverside\n");
    assert_eq!(
        std::fs::read_link(etc("/etc/localtime")).expect("link"),
        Path::new("/usr/share/zoneinfo/America/Chicago")
    );
    aiwarden_check(&etc("/etc/aiwarden/aiwarden.toml"));
    nft_checks(&etc("/etc/nftables.conf"));
    let out = run(Command::new("dnsmasq").arg("--test").arg(format!(
        "--conf-file={}",
        etc("/etc/dnsmasq.d/aiwarden-lan.conf").display()
    )));
    assert!(out.status.success(), "dnsmasq --test: {out:?}");
    let store = etc("/var/lib/aiwarden/incidents.db");
    let users = |store: &Path| {
        let out = run(aiwarden()
            .args(["user", "list", "--json", "--store"])
            .arg(store));
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")
    };
    let list = users(&store);
    assert_eq!(list[0]["name"], "compliance");
    assert_eq!(list[0]["role"], "admin");
    let out = run(aiwarden().args(["verify", "--store"]).arg(&store));
    assert!(
        out.status.success(),
        "the chain holds the user_add: {out:?}"
    );
    let record = read("/var/lib/aiwarden/provisioned.toml");
    assert!(record.contains("role = \"router\"") && !record.contains("argon2"));
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| {
        std::fs::symlink_metadata(etc(p))
            .expect("exists")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("/etc/nftables.conf"), 0o755);
    assert_eq!(mode("/var/lib/aiwarden"), 0o750);

    // Booted again with no file: provisioned, nothing to do.
    let out = apply(&file, &root, &sys);
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out.stdout).contains("nothing to do"), "{out:?}");

    // A new file makes it a sensor with ssh: the router's files go, the admin's password
    // is replaced (not a second account).
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN7Ns1tLRCc9MOlmiHIp2woAlaKpJwMcpWJarBvTgXP9 msp@example";
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$8Zgj3OSvSz3nhHqvj4o+jw$eGYpF9vmBCxeVyQOEWMYqD4LU+rjuqyT7apTWqIKbpE";
    std::fs::write(
        &file,
        format!(
            "site_name = \"Oak Street Dental\"\nrole = \"sensor\"\ntimezone = \"Europe/Berlin\"\n\
             [lan]\ninterface = \"enp2s0\"\naddress = \"10.0.0.5/24\"\ngateway = \"10.0.0.1\"\n\
             [dns]\nupstreams = [\"9.9.9.9\"]\n\
             [console]\nadmin_user = \"compliance\"\nadmin_password_hash = \"{hash}\"\n\
             [ssh]\nenabled = true\nauthorized_keys = [\"{key}\"]\n"
        ),
    )
    .expect("write");
    let out = apply(&file, &root, &sys);
    assert!(out.status.success(), "{out:?}");
    for gone in [
        "/etc/dnsmasq.d/aiwarden-lan.conf",
        "/etc/systemd/network/10-aiwarden-wan.link",
        "/etc/systemd/network/20-aiwarden-wan.network",
        "/etc/systemd/system/ssh.service",
    ] {
        assert!(
            !etc(gone).exists() && etc(gone).symlink_metadata().is_err(),
            "{gone} removed"
        );
    }
    assert_eq!(mode("/root/.ssh"), 0o700);
    assert_eq!(mode("/root/.ssh/authorized_keys"), 0o600);
    assert_eq!(
        std::fs::read_link(etc(
            "/etc/systemd/system/multi-user.target.wants/ssh.service"
        ))
        .expect("wanted"),
        Path::new("/usr/lib/systemd/system/ssh.service")
    );
    aiwarden_check(&etc("/etc/aiwarden/aiwarden.toml"));
    nft_checks(&etc("/etc/nftables.conf"));
    assert_eq!(users(&store).as_array().map(Vec::len), Some(1));

    // A bad file: the safe state, the reason on the console and in the state directory,
    // the file kept as .rejected, exit 2.
    std::fs::write(&file, "site_name = \"x\"\nrole = \"gateway\"\n").expect("write");
    let out = apply(&file, &root, &sys);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("entering the safe state"), "{stderr}");
    assert!(stderr.contains("missing field `timezone`"), "{stderr}");
    assert!(!file.exists());
    assert!(efi.join("provision.toml.rejected").exists());
    let issue = read("/etc/issue.d/aiwarden-provision.issue");
    assert!(
        issue.contains("NOT PROVISIONED") && issue.contains("missing field `timezone`"),
        "{issue}"
    );
    assert!(read("/var/lib/aiwarden/provision-error.txt").contains("missing field `timezone`"));
    assert!(read("/etc/systemd/network/90-aiwarden-safe.network").contains("Type=ether"));
    for gone in [
        "/etc/systemd/network/30-aiwarden-lan.network",
        "/etc/systemd/network/10-aiwarden-lan.link",
        "/root/.ssh/authorized_keys",
        "/var/lib/aiwarden/provisioned.toml",
        "/etc/systemd/system/multi-user.target.wants/ssh.service",
    ] {
        assert!(etc(gone).symlink_metadata().is_err(), "{gone} removed");
    }
    aiwarden_check(&etc("/etc/aiwarden/aiwarden.toml"));
    nft_checks(&etc("/etc/nftables.conf"));

    // No file and not provisioned: the safe state too.
    std::fs::remove_file(efi.join("provision.toml.rejected")).expect("rm");
    let out = apply(&file, &root, &sys);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(read("/etc/issue.d/aiwarden-provision.issue").contains("No such file"));
}

#[test]
fn an_interface_this_machine_lacks_is_refused_at_first_boot() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("root");
    let file = dir.path().join("provision.toml");
    std::fs::copy(sample(), &file).expect("copy");
    let empty = dir.path().join("no-nics");
    std::fs::create_dir_all(&empty).expect("dir");
    let out = apply(&file, &root, &empty);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr)
            .contains("lan.interface: this machine has no ethernet interface \"enp2s0\""),
        "{out:?}"
    );
    assert!(
        !root.join("var/lib/aiwarden/incidents.db").exists(),
        "nothing of the router was written"
    );
    assert!(!root.join("etc/dnsmasq.d/aiwarden-lan.conf").exists());
    assert!(root
        .join("etc/systemd/network/90-aiwarden-safe.network")
        .exists());
}

#[test]
fn user_hash_prints_a_phc_string_the_console_accepts() {
    use std::io::Write;
    let mut child = aiwarden()
        .args(["user", "hash"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"correct horse battery\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{out:?}");
    let phc = text(&out.stdout).trim().to_string();
    assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
    assert!(aiwarden::console::verify_password(
        "correct horse battery",
        &phc
    ));
    assert!(!aiwarden::console::verify_password(
        "correct horse batterY",
        &phc
    ));
}
