//! The files the Debian package installs from the tree, checked without building it (the
//! package itself is tested end to end by tests/package.sh, as root): the packaged
//! /etc/aiwarden/aiwarden.toml and devices.toml load and use the compiled-in rule places;
//! every asset named in Cargo.toml's `[package.metadata.deb]` exists (the generated man
//! pages and completions aside); the maintainer scripts are POSIX shell that `sh -n` accepts.

use std::path::Path;

use aiwarden::config::Config;
use aiwarden::policy::{Mode, RuleDirs};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn packaged_config_loads_with_the_installed_rules() {
    let dir = root().join("debian");
    let c = Config::load(&dir.join("aiwarden.toml")).expect("debian/aiwarden.toml is valid");
    assert_eq!(c.mode, Mode::Monitor);
    // No rules= or site= line: the catalog and the site files come from the compiled-in
    // places (/usr/share/aiwarden/rules/catalog and /etc/aiwarden/site in the package).
    assert_eq!(c.rule_dirs(), RuleDirs::installed());
    assert_eq!(c.store.path, Path::new(aiwarden::paths::STORE));
    assert!(
        c.capture.interfaces.is_empty(),
        "no guessed interface names"
    );
    let inv = c.devices.inventory.as_deref().expect("names devices.toml");
    assert_eq!(inv, dir.join("devices.toml"));
    let inv = aiwarden::devices::Inventory::load(inv).expect("debian/devices.toml is valid");
    assert!(
        inv.devices().is_empty(),
        "no example devices in a clinic's inventory"
    );
}

#[test]
fn rules_default_to_the_installed_catalog_and_site() {
    let at = Path::new("/etc/aiwarden/aiwarden.toml");
    let c = Config::parse(at, "").expect("empty config");
    assert_eq!(c.rule_dirs(), RuleDirs::installed());
    let c = Config::parse(at, "rules = \"rules\"\n").expect("rules");
    assert_eq!(
        c.rule_dirs(),
        RuleDirs::under(Path::new("/etc/aiwarden/rules"))
    );
    let c = Config::parse(at, "site = \"mine\"\n").expect("site");
    assert_eq!(c.rule_dirs().site, Path::new("/etc/aiwarden/mine"));
    assert_eq!(
        c.rule_dirs().catalog,
        aiwarden::paths::rules().join("catalog")
    );
}

#[test]
fn package_assets_exist() {
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml"))
            .expect("parses");
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets = deb["assets"].as_array().expect("assets");
    let mut checked = 0;
    for a in assets {
        let src = a[0].as_str().expect("source");
        if src.starts_with("target/") {
            continue; // built by scripts/build-deb.sh
        }
        let found = if let Some((dir, pattern)) = src.split_once("/*") {
            std::fs::read_dir(root().join(dir))
                .expect("asset dir")
                .filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().ends_with(pattern))
        } else {
            root().join(src).is_file()
        };
        assert!(found, "asset {src} missing");
        checked += 1;
    }
    assert!(checked >= 10, "{checked} assets");
    let conf: Vec<&str> = deb["conf-files"]
        .as_array()
        .expect("conf-files")
        .iter()
        .map(|v| v.as_str().expect("path"))
        .collect();
    for a in assets {
        let dest = a[1].as_str().expect("dest");
        if dest.starts_with("etc/") {
            assert!(
                conf.contains(&format!("/{dest}").as_str()),
                "{dest} is not a conffile"
            );
        }
    }
}

#[test]
fn maintainer_scripts_parse() {
    for script in ["postinst", "prerm", "postrm"] {
        let path = root().join("debian").join(script);
        let out = std::process::Command::new("sh")
            .arg("-n")
            .arg(&path)
            .output()
            .expect("sh runs");
        assert!(out.status.success(), "{script}: {out:?}");
        let text = std::fs::read_to_string(&path).expect("script");
        assert!(text.starts_with("#!/bin/sh\n"), "{script}: #!/bin/sh");
        assert!(text.contains("\nset -e\n"), "{script}: set -e");
    }
}
