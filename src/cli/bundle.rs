//! `aiwarden bundle keygen/build/verify`: an MSP's side of signed rule bundles. Keys are
//! minisign keys (the stock `minisign` tool reads and makes them too); a bundle is a file
//! and its detached `FILE.minisig`, ready for any static HTTPS server.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::{write_atomic, CmdResult};
use crate::error::{Error, Result};
use crate::fleet::bundle::{self, Freshness};

/// The environment variable holding the password of an encrypted secret key (as
/// `minisign -G` makes them).
pub(super) const PASSWORD_ENV: &str = "AIWARDEN_BUNDLE_KEY_PASSWORD";

/// `aiwarden bundle ...`.
#[derive(clap::Subcommand)]
pub(super) enum Command {
    /// Makes a signing key pair: DIR/aiwarden-bundle.pub (pin it in each box's `[fleet]
    /// bundle_keys`) and DIR/aiwarden-bundle.key (unencrypted, mode 0600: keep it off the
    /// web server).
    Keygen {
        /// The directory to write the two files in.
        #[arg(long)]
        out: PathBuf,
    },
    /// Packs DIR/catalog/*.toml into a signed bundle: FILE and FILE.minisig.
    Build {
        /// A rules directory holding catalog/.
        dir: PathBuf,
        /// The minisign secret key (an encrypted one takes its password from
        /// AIWARDEN_BUNDLE_KEY_PASSWORD).
        #[arg(long)]
        key: PathBuf,
        /// The bundle's version: higher than every bundle published before.
        #[arg(long)]
        version: u64,
        /// Where to write the bundle (its signature goes beside it, `.minisig` added).
        #[arg(long)]
        out: PathBuf,
        /// The creation time written in the manifest (RFC 3339); default now.
        #[arg(long)]
        created: Option<jiff::Timestamp>,
    },
    /// Checks a bundle as a box would: signature by a pinned key, manifest hashes, rules,
    /// and with --in-force, that it is not a rollback.
    Verify {
        /// The bundle (its signature is read from FILE.minisig unless --signature says).
        file: PathBuf,
        /// A pinned public key: a minisign .pub file or its `RW...` line; repeat for
        /// several (key rotation).
        #[arg(long = "pubkey", required = true)]
        pubkeys: Vec<String>,
        /// The signature file, if not FILE.minisig.
        #[arg(long)]
        signature: Option<PathBuf>,
        /// The version in force: an older bundle is refused.
        #[arg(long)]
        in_force: Option<u64>,
    },
}

pub(super) fn run(c: Command) -> CmdResult {
    match c {
        Command::Keygen { out } => keygen(&out),
        Command::Build {
            dir,
            key,
            version,
            out,
            created,
        } => build(
            &dir,
            &key,
            version,
            &out,
            created.unwrap_or_else(jiff::Timestamp::now),
        ),
        Command::Verify {
            file,
            pubkeys,
            signature,
            in_force,
        } => verify(&file, &pubkeys, signature.as_deref(), in_force),
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// `path` with `.minisig` added.
fn sig_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".minisig");
    PathBuf::from(s)
}

fn keygen(out: &Path) -> CmdResult {
    let pk_path = out.join("aiwarden-bundle.pub");
    let sk_path = out.join("aiwarden-bundle.key");
    if sk_path.exists() {
        return Err(Error::Usage(format!(
            "{} exists: a signing key is never overwritten",
            sk_path.display()
        )));
    }
    let pair = minisign::KeyPair::generate_unencrypted_keypair()
        .map_err(|e| Error::Usage(format!("cannot make a key pair: {e}")))?;
    let pk_text = bundle::public_key_file(&pair.pk).map_err(Error::Usage)?;
    let sk_text = bundle::secret_key_file(&pair.sk).map_err(Error::Usage)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // Created 0600, never widened for a moment.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&sk_path)
            .map_err(io(&sk_path))?;
        f.write_all(sk_text.as_bytes()).map_err(io(&sk_path))?;
        f.sync_all().map_err(io(&sk_path))?;
    }
    write_atomic(&pk_path, |w| Ok(w.write_all(pk_text.as_bytes())?))?;
    println!(
        "key {}: public {}, secret {}",
        bundle::key_id(pair.pk.keynum()),
        pk_path.display(),
        sk_path.display()
    );
    Ok(())
}

fn build(dir: &Path, key: &Path, version: u64, out: &Path, created: jiff::Timestamp) -> CmdResult {
    let password = std::env::var(PASSWORD_ENV).ok();
    let sk = bundle::parse_secret_key(&read(key)?, password)
        .map_err(|e| Error::Usage(format!("{}: {e}", key.display())))?;
    let catalog = dir.join("catalog");
    let entries = std::fs::read_dir(&catalog).map_err(|source| Error::Io {
        path: catalog.clone(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    let mut files = Vec::with_capacity(names.len());
    for n in names {
        files.push((format!("catalog/{n}"), read(&catalog.join(&n))?));
    }
    let built = bundle::build(&files, version, created, &sk)?;
    write_atomic(out, |w| Ok(w.write_all(&built.bundle)?))?;
    write_atomic(&sig_path(out), |w| {
        Ok(w.write_all(built.signature.as_bytes())?)
    })?;
    println!(
        "bundle {} version {version}: {} files, signed by {}; signature {}",
        out.display(),
        files.len(),
        bundle::key_id(sk.keynum()),
        sig_path(out).display()
    );
    Ok(())
}

/// A pinned key given on the command line: a file, or the key's `RW...` line.
fn pubkey(arg: &str) -> Result<minisign::PublicKey> {
    let p = Path::new(arg);
    let text = if p.exists() {
        read(p)?
    } else {
        arg.to_string()
    };
    bundle::parse_public_key(&text).map_err(|e| Error::Usage(format!("--pubkey {arg}: {e}")))
}

fn verify(
    file: &Path,
    pubkeys: &[String],
    signature: Option<&Path>,
    in_force: Option<u64>,
) -> CmdResult {
    let keys = pubkeys
        .iter()
        .map(|k| pubkey(k))
        .collect::<Result<Vec<_>>>()?;
    let bytes = std::fs::read(file).map_err(|source| Error::Io {
        path: file.to_path_buf(),
        source,
    })?;
    let sig = read(&signature.map_or_else(|| sig_path(file), Path::to_path_buf))?;
    let name = file.display().to_string();
    let v = bundle::verify(&name, &bytes, &sig, &keys)?;
    let fresh = v.against(&name, in_force)?;
    println!(
        "bundle {name}: version {}, created {}, signed by {}, {} files, {} services: {}",
        v.version(),
        v.manifest.created,
        v.key_id,
        v.files.len(),
        v.services,
        match (fresh, in_force) {
            (Freshness::Current, _) => "the version in force: nothing to do".to_string(),
            (Freshness::Newer, Some(n)) => format!("newer than version {n} in force"),
            (Freshness::Newer, None) => "good".to_string(),
        }
    );
    Ok(())
}
