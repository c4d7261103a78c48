//! Examples that tests run as programs (the probe client): built once per test binary with
//! `cargo build --example`, since `cargo test` builds examples only as test harnesses.

use std::path::PathBuf;
use std::process::Command;

/// Builds example `name` (a no-op when it is current) and returns its path, next to this
/// test binary's target directory.
pub(crate) fn build(name: &str) -> PathBuf {
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["build", "--quiet", "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    // Drop what cargo set for this test: build scripts that watch these variables (ring's
    // watches CARGO_MANIFEST_DIR) would otherwise rebuild half the tree.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_BIN_")
            || matches!(
                &*k,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
                    | "OUT_DIR"
            )
        {
            cargo.env_remove(&*k);
        }
    }
    let status = cargo.status().expect("cargo runs");
    assert!(status.success(), "cargo build --example {name}");
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/test-HASH -> target/<profile>/examples/NAME
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join("examples")
        .join(name);
    assert!(bin.exists(), "{} missing", bin.display());
    bin
}
