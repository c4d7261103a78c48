//! `aiwarden generate-docs DIR` (hidden): the man pages and shell completions the Debian
//! package ships, generated from this binary's own command line, so they never drift from
//! it and show the defaults compiled into this build (the package's paths).
//! `scripts/build-deb.sh` runs it before `cargo deb` packs the files.

use std::path::{Path, PathBuf};

use clap_complete::Shell;

use super::CmdResult;
use crate::error::Error;

/// `aiwarden generate-docs`.
#[derive(clap::Args)]
pub(super) struct Args {
    /// Where to write `man/` (aiwarden.1 and one page per subcommand) and `completions/`
    /// (bash `aiwarden`, zsh `_aiwarden`, fish `aiwarden.fish`).
    dir: PathBuf,
}

/// The completion file each shell looks for, by the name Debian installs it under.
const COMPLETIONS: [(Shell, &str); 3] = [
    (Shell::Bash, "aiwarden"),
    (Shell::Zsh, "_aiwarden"),
    (Shell::Fish, "aiwarden.fish"),
];

pub(super) fn run(a: Args, cmd: clap::Command) -> CmdResult {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let man = a.dir.join("man");
    let completions = a.dir.join("completions");
    for d in [&man, &completions] {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    clap_mangen::generate_to(cmd.clone(), &man).map_err(io(&man))?;
    for (shell, name) in COMPLETIONS {
        let path = completions.join(name);
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "aiwarden", &mut out);
        std::fs::write(&path, out).map_err(io(&path))?;
    }
    println!(
        "{}: man pages in man/, completions in completions/",
        a.dir.display()
    );
    Ok(())
}
