//! `aiwarden provision --check FILE` (on the MSP's laptop: validate and say what it would
//! do) and `aiwarden provision --apply FILE [--root DIR]` (at first boot: the shell around
//! `crate::provision`). Apply renders everything first, adds the console's admin to the
//! store, then writes each file atomically (a synced temporary file renamed into place, the
//! directory synced) and removes FILE. A missing or invalid FILE, or any failure on the
//! way, writes the safe state instead, keeps FILE as `FILE.rejected` and exits non-zero.

use std::cell::Cell;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::CmdResult;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::provision::{render, render_safe, Mac, Plan, Provision, RECORD};
use crate::store::{Role, Store};

/// `aiwarden provision`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["check", "apply"])))]
pub(super) struct Args {
    /// Validate FILE and print what it would do; needs nothing of the appliance (for the
    /// MSP's laptop). Exit 2 listing every problem with its line.
    #[arg(long, value_name = "FILE")]
    check: Option<PathBuf>,
    /// Apply FILE (the first-boot unit runs this): write the network, DHCP, firewall and
    /// aiwarden configuration under --root, add the console's admin, then remove FILE. A
    /// missing or invalid FILE leaves the safe state, keeps FILE as FILE.rejected, exits 2.
    #[arg(long, value_name = "FILE")]
    apply: Option<PathBuf>,
    /// The appliance's root directory (for building an image or testing).
    #[arg(long, default_value = "/", requires = "apply")]
    root: PathBuf,
    /// Where NIC names are looked up (`NAME/address`).
    #[arg(long, default_value = "/sys/class/net", hide = true)]
    sys_class_net: PathBuf,
}

pub(super) fn run(a: Args) -> CmdResult {
    match (a.check, a.apply) {
        (Some(file), _) => check(&file),
        (None, Some(file)) => apply(&file, &a.root, &a.sys_class_net),
        (None, None) => Err(Error::Usage("--check FILE or --apply FILE".into())),
    }
}

fn check(file: &Path) -> CmdResult {
    let p = Provision::load(file)?;
    // No NIC is at hand: stand-in MACs (locally administered, one per lookup) let the plan
    // be rendered and its aiwarden configuration checked.
    let n = Cell::new(0u8);
    let macs = p.macs(|_| {
        n.set(n.get() + 1);
        Some(Mac([0x02, 0, 0, 0, 0, n.get()]))
    })?;
    let plan = render(&p, &macs, jiff::Timestamp::now())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}: ok", file.display())?;
    for line in p.summary() {
        writeln!(out, "  {line}")?;
    }
    writeln!(out, "at first boot it writes:")?;
    for f in &plan.files {
        writeln!(out, "  {}", f.path)?;
    }
    for l in &plan.links {
        writeln!(out, "  {} -> {}", l.path, l.target)?;
    }
    writeln!(
        out,
        "  the console account {} (admin) in the incident store",
        p.admin.user
    )?;
    Ok(())
}

fn apply(file: &Path, root: &Path, sys: &Path) -> CmdResult {
    let now = jiff::Timestamp::now();
    if !file.exists() && rooted(root, RECORD).exists() {
        println!(
            "{}: none, and the appliance is provisioned ({}): nothing to do",
            file.display(),
            RECORD
        );
        return Ok(());
    }
    match provision(file, root, sys, now) {
        Ok(p) => {
            println!("{}: applied", file.display());
            for line in p.summary() {
                println!("  {line}");
            }
            Ok(())
        }
        Err(e) => {
            let reason = e.to_string();
            eprintln!(
                "aiwarden provision: {} rejected, entering the safe state",
                file.display()
            );
            match render_safe(&reason, now).and_then(|plan| write_plan(root, &plan)) {
                Ok(()) => {}
                Err(w) => eprintln!("aiwarden provision: the safe state could not be written: {w}"),
            }
            if file.exists() {
                let rejected = PathBuf::from(format!("{}.rejected", file.display()));
                match fs::rename(file, &rejected).and_then(|()| sync_dir(file)) {
                    Ok(()) => eprintln!("aiwarden provision: kept as {}", rejected.display()),
                    Err(r) => eprintln!(
                        "aiwarden provision: cannot rename {} to {}: {r}",
                        file.display(),
                        rejected.display()
                    ),
                }
            }
            Err(e)
        }
    }
}

/// Reads, validates, renders, adds the admin, writes, removes `file`.
fn provision(file: &Path, root: &Path, sys: &Path, now: jiff::Timestamp) -> Result<Provision> {
    let p = Provision::load(file)?;
    let macs = p.macs(|name| nic_mac(sys, name))?;
    let plan = render(&p, &macs, now)?;
    // The store the rendered configuration names (under the root).
    let config = plan
        .file(crate::paths::CONFIG)
        .map(|f| Config::parse(Path::new(crate::paths::CONFIG), &f.contents))
        .transpose()?
        .ok_or_else(|| Error::Usage("the plan has no aiwarden configuration".into()))?;
    let store = rooted(root, &config.store.path.to_string_lossy());
    if let Some(dir) = store.parent() {
        fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let mut st = Store::open(&store)?;
    let ts = crate::store::now_micros();
    let actor = "cli:provision";
    if st.user(&p.admin.user)?.is_some() {
        st.set_password(ts, &p.admin.user, &p.admin.password_hash, actor)?;
    } else {
        st.add_user(
            ts,
            &p.admin.user,
            Role::Admin,
            &p.admin.password_hash,
            actor,
        )?;
    }
    drop(st);
    write_plan(root, &plan)?;
    fs::remove_file(file)
        .and_then(|()| sync_dir(file))
        .map_err(|source| Error::Io {
            path: file.to_path_buf(),
            source,
        })?;
    Ok(p)
}

/// The MAC of the NIC called `name` now (`SYS/NAME/address`); none for a missing NIC or
/// one that is not ethernet.
fn nic_mac(sys: &Path, name: &str) -> Option<Mac> {
    if name.contains('/') || name.starts_with('.') {
        return None;
    }
    let text = fs::read_to_string(sys.join(name).join("address")).ok()?;
    Mac::parse(text.trim()).ok()
}

/// `path` (absolute on the appliance) under `root`.
fn rooted(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

/// A hidden temporary name beside `path`.
fn temporary(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.provision-tmp"))
}

/// Writes `plan` under `root`: directories, then each file and link atomically, then the
/// removals.
fn write_plan(root: &Path, plan: &Plan) -> Result<()> {
    for (dir, mode) in &plan.dirs {
        let d = rooted(root, dir);
        fs::create_dir_all(&d).map_err(io(&d))?;
        fs::set_permissions(&d, fs::Permissions::from_mode(*mode)).map_err(io(&d))?;
    }
    for f in &plan.files {
        let path = rooted(root, &f.path);
        let dir = path.parent().unwrap_or(root);
        fs::create_dir_all(dir).map_err(io(dir))?;
        let tmp = temporary(&path);
        let mut w = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(f.mode)
            .open(&tmp)
            .map_err(io(&tmp))?;
        w.set_permissions(fs::Permissions::from_mode(f.mode))
            .map_err(io(&tmp))?;
        w.write_all(f.contents.as_bytes()).map_err(io(&tmp))?;
        w.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        sync_dir(&path).map_err(io(&path))?;
    }
    for l in &plan.links {
        let path = rooted(root, &l.path);
        let dir = path.parent().unwrap_or(root);
        fs::create_dir_all(dir).map_err(io(dir))?;
        let tmp = temporary(&path);
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&tmp)(e)),
        }
        std::os::unix::fs::symlink(&l.target, &tmp).map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        sync_dir(&path).map_err(io(&path))?;
    }
    for r in &plan.remove {
        let path = rooted(root, r);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&path).map_err(io(&path))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }
    }
    Ok(())
}
