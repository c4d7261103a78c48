//! Signed rule bundles, pure: catalog files in, a bundle and its minisign signature out;
//! a bundle, its signature and the pinned keys in, the verified catalog (or the one reason
//! it is refused) out. No files, no clock: the creation time is passed in.
//!
//! A bundle is an uncompressed tar archive (the `tar` crate): `manifest.toml` first, then
//! `catalog/*.toml`. The manifest names the format, the bundle's version (an integer that
//! only grows), its creation time and every file with its SHA-256. Site files (allow,
//! deny, groups) are never shipped in v1: each clinic's own files stay the only site
//! rules, so they always win over the fleet's catalog.
//!
//! The signature is a detached minisign signature of the whole archive (`FILE.minisig`,
//! Ed25519 over its BLAKE2b-512 hash, as `minisign -S` makes by default), so the stock
//! `minisign -Vm FILE -p KEY.pub` checks it too. Its trusted comment, signed with it, says
//! `aiwarden-bundle format:1 version:N created:T`: the version cannot be swapped for
//! another without breaking the signature, and must equal the manifest's.
//!
//! Verification order: signature parses, its key id is pinned, the signature holds, the
//! archive is well-formed, the manifest matches the trusted comment, every file's hash
//! matches, every catalog file loads as a rule set. Rollback (version below the one in
//! force) is [`Verified::against`].

use std::io::{Cursor, Read};
use std::path::PathBuf;

use minisign::{PublicKey, PublicKeyBox, SecretKey, SecretKeyBox, SignatureBox};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::error::{Error, Result};
use crate::policy::RuleSet;

/// The bundle format this code writes and reads.
pub const FORMAT: u32 = 1;

/// The manifest's name inside the archive.
pub const MANIFEST: &str = "manifest.toml";

/// The largest bundle accepted (the whole catalog is well under a megabyte): a server
/// cannot make a box hold gigabytes in memory.
pub const MAX_BUNDLE_BYTES: u64 = 16 << 20;

/// The start of every bundle signature's trusted comment.
const COMMENT_TAG: &str = "aiwarden-bundle";

/// The manifest: what the bundle is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The bundle's version: a box only moves to a higher one.
    pub version: u64,
    /// When it was built, RFC 3339.
    pub created: String,
    /// Every file besides the manifest, in archive order.
    pub files: Vec<FileEntry>,
}

/// One file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Its path inside the archive: `catalog/NAME.toml`.
    pub path: String,
    /// SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
}

/// A built bundle: the archive and its detached signature (the `.minisig` file's text).
#[derive(Debug, Clone)]
pub struct Built {
    /// The tar archive.
    pub bundle: Vec<u8>,
    /// The minisign signature file.
    pub signature: String,
    /// Its manifest.
    pub manifest: Manifest,
}

/// A bundle whose signature, key, hashes and rules all checked out.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Its manifest.
    pub manifest: Manifest,
    /// The id of the pinned key that signed it.
    pub key_id: String,
    /// `catalog/NAME.toml` and text, in manifest order.
    pub files: Vec<(String, String)>,
    /// Catalog services it holds.
    pub services: usize,
}

/// How a verified bundle compares with the one in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Newer: to be applied.
    Newer,
    /// The version in force: nothing to do.
    Current,
}

impl Verified {
    /// The bundle's version.
    pub fn version(&self) -> u64 {
        self.manifest.version
    }

    /// Whether the bundle is newer than `in_force` (none: any bundle is), the same, or a
    /// rollback ([`Error::BundleRollback`]).
    pub fn against(&self, bundle: &str, in_force: Option<u64>) -> Result<Freshness> {
        let version = self.version();
        match in_force {
            Some(v) if version < v => Err(Error::BundleRollback {
                bundle: bundle.to_string(),
                version,
                in_force: v,
            }),
            Some(v) if version == v => Ok(Freshness::Current),
            _ => Ok(Freshness::Newer),
        }
    }
}

/// A minisign key id as minisign prints it: the 8-byte key number, little-endian, in
/// uppercase hex.
pub fn key_id(keynum: &[u8]) -> String {
    let mut b = [0u8; 8];
    for (d, s) in b.iter_mut().zip(keynum) {
        *d = *s;
    }
    format!("{:016X}", u64::from_le_bytes(b))
}

pub use crate::config::parse_public_key;

/// The text of a minisign public key file for `pk`.
pub fn public_key_file(pk: &PublicKey) -> std::result::Result<String, String> {
    pk.to_box()
        .map(PublicKeyBox::into_string)
        .map_err(|e| format!("cannot encode the public key: {e}"))
}

/// A secret key from a minisign secret key file's text: unencrypted (as `bundle keygen`
/// writes), or encrypted (as `minisign -G` writes) with `password`.
pub fn parse_secret_key(
    text: &str,
    password: Option<String>,
) -> std::result::Result<SecretKey, String> {
    let b =
        SecretKeyBox::from_string(text).map_err(|e| format!("not a minisign secret key: {e}"))?;
    let e = match b.clone().into_unencrypted_secret_key() {
        Ok(sk) => return Ok(sk),
        Err(e) => e,
    };
    if let Some(sk) = zero_checksum_key(text) {
        return Ok(sk);
    }
    // `into_secret_key(None)` would prompt on the terminal: never from here.
    match password {
        Some(password) => b
            .into_secret_key(Some(password))
            .map_err(|e| format!("cannot decrypt the secret key: {e}")),
        None if e.to_string().contains("encrypted") => {
            Err("the secret key is encrypted and no password was given".into())
        }
        None => Err(format!("not a minisign secret key: {e}")),
    }
}

/// A key as `minisign -G -W` (0.11) writes it: unencrypted, its checksum left all zero,
/// which the crate refuses as corrupted. Taken as it is: [`build`] signs with the public
/// half given, which fails if the secret half does not match it.
fn zero_checksum_key(text: &str) -> Option<SecretKey> {
    use ct_codecs::Decoder as _;
    let line = text.lines().nth(1)?.trim();
    let bytes = ct_codecs::Base64::decode_to_vec(line, None).ok()?;
    // sig_alg 2, kdf_alg 2, chk_alg 2, salt 32, opslimit 8, memlimit 8, keynum 8, sk 64,
    // checksum 32.
    let unencrypted = bytes.get(2..4) == Some(&[0u8, 0][..]);
    let zero = bytes.len() == 158 && bytes[126..].iter().all(|&b| b == 0);
    if !(unencrypted && zero) {
        return None;
    }
    SecretKey::from_bytes(&bytes).ok()
}

/// The text of an unencrypted minisign secret key file for `sk`.
pub fn secret_key_file(sk: &SecretKey) -> std::result::Result<String, String> {
    sk.to_box(None)
        .map(SecretKeyBox::into_string)
        .map_err(|e| format!("cannot encode the secret key: {e}"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `path` is a file a bundle may hold: `catalog/NAME.toml`, NAME of letters,
/// digits, `-`, `_` and `.`, not starting with a dot (nothing to climb out with).
pub fn allowed_path(path: &str) -> bool {
    let Some(name) = path.strip_prefix("catalog/") else {
        return false;
    };
    name.ends_with(".toml")
        && name.len() > ".toml".len()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The trusted comment for `manifest`.
fn trusted_comment(m: &Manifest) -> String {
    format!(
        "{COMMENT_TAG} format:{} version:{} created:{}",
        m.format, m.version, m.created
    )
}

/// Builds and signs a bundle of `files` (`catalog/NAME.toml` and text). The files must
/// load as a rule set: a bundle every box would refuse is not built.
pub fn build(
    files: &[(String, String)],
    version: u64,
    created: jiff::Timestamp,
    key: &SecretKey,
) -> Result<Built> {
    let usage = |m: String| Error::Usage(m);
    if files.is_empty() {
        return Err(usage("a bundle needs at least one catalog file".into()));
    }
    if let Some((p, _)) = files.iter().find(|(p, _)| !allowed_path(p)) {
        return Err(usage(format!(
            "{p}: a bundle holds only catalog/NAME.toml files"
        )));
    }
    let sources: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), t.clone()))
        .collect();
    RuleSet::from_sources(&sources)?;
    let manifest = Manifest {
        format: FORMAT,
        version,
        created: created.to_string(),
        files: files
            .iter()
            .map(|(p, t)| FileEntry {
                path: p.clone(),
                sha256: sha256_hex(t.as_bytes()),
            })
            .collect(),
    };
    let manifest_text = toml::to_string(&manifest).map_err(|e| usage(format!("manifest: {e}")))?;
    let mut entries = vec![(MANIFEST.to_string(), manifest_text.into_bytes())];
    entries.extend(
        files
            .iter()
            .map(|(p, t)| (p.clone(), t.as_bytes().to_vec())),
    );
    let bundle = tar_of(&entries, created.as_second().max(0) as u64)?;
    let signature = sign(&bundle, &manifest, key)?;
    Ok(Built {
        bundle,
        signature,
        manifest,
    })
}

/// A tar archive of `entries`, every header fixed (mode 0644, owner 0, `mtime`) so the
/// same files and time give the same bytes.
fn tar_of(entries: &[(String, Vec<u8>)], mtime: u64) -> Result<Vec<u8>> {
    let io = |e: std::io::Error| Error::Usage(format!("cannot write the bundle: {e}"));
    let mut b = tar::Builder::new(Vec::new());
    for (path, bytes) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, &bytes[..]).map_err(io)?;
    }
    b.into_inner().map_err(io)
}

/// The minisign signature file of `bundle`, the trusted comment naming `manifest`.
fn sign(bundle: &[u8], manifest: &Manifest, key: &SecretKey) -> Result<String> {
    let pk = PublicKey::from_secret_key(key)
        .map_err(|e| Error::Usage(format!("the secret key: {e}")))?;
    let untrusted = format!("signature from aiwarden bundle key {}", key_id(pk.keynum()));
    minisign::sign(
        Some(&pk),
        key,
        Cursor::new(bundle),
        Some(&trusted_comment(manifest)),
        Some(&untrusted),
    )
    .map(|b| b.into_string())
    .map_err(|e| Error::Usage(format!("cannot sign the bundle: {e}")))
}

/// Verifies `bundle` (named `name` in errors: a file or a URL) against its detached
/// `signature` and the `pinned` keys, then its manifest, hashes and rules. Each refusal is
/// its own [`Error`] variant.
pub fn verify(
    name: &str,
    bundle: &[u8],
    signature: &str,
    pinned: &[PublicKey],
) -> Result<Verified> {
    let malformed = |message: String| Error::BundleMalformed {
        bundle: name.to_string(),
        message,
    };
    let sig = SignatureBox::from_string(signature).map_err(|e| {
        malformed(format!(
            "the signature file is not a minisign signature: {e}"
        ))
    })?;
    let signer = key_id(sig.keynum());
    let Some(pk) = pinned.iter().find(|k| k.keynum() == sig.keynum()) else {
        return Err(Error::BundleUnknownKey {
            bundle: name.to_string(),
            key_id: signer,
            pinned: pinned
                .iter()
                .map(|k| key_id(k.keynum()))
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    // Legacy (non-prehashed) signatures are refused: only what `build` and `minisign -S`
    // make today.
    minisign::verify(pk, &sig, Cursor::new(bundle), true, false, false).map_err(|e| {
        Error::BundleBadSignature {
            bundle: name.to_string(),
            key_id: signer.clone(),
            message: e.to_string().to_lowercase(),
        }
    })?;
    let comment = sig
        .trusted_comment()
        .map_err(|e| malformed(format!("no trusted comment: {e}")))?;

    let entries = read_tar(bundle).map_err(malformed)?;
    let mut entries = entries.into_iter();
    let manifest = match entries.next() {
        Some((p, bytes)) if p == MANIFEST => std::str::from_utf8(&bytes)
            .map_err(|_| malformed("manifest.toml is not utf-8".into()))
            .and_then(|t| {
                toml::from_str::<Manifest>(t)
                    .map_err(|e| malformed(format!("manifest.toml: {}", e.message())))
            })?,
        _ => {
            return Err(malformed(
                "the archive does not start with manifest.toml".into(),
            ))
        }
    };
    if manifest.format != FORMAT {
        return Err(malformed(format!(
            "format {} is not the format {FORMAT} this aiwarden reads",
            manifest.format
        )));
    }
    if comment != trusted_comment(&manifest) {
        return Err(malformed(format!(
            "the signed comment {comment:?} does not name this manifest (version {})",
            manifest.version
        )));
    }
    let rest: Vec<(String, Vec<u8>)> = entries.collect();
    if rest.len() != manifest.files.len() {
        return Err(malformed(format!(
            "the archive holds {} files, the manifest lists {}",
            rest.len(),
            manifest.files.len()
        )));
    }
    let mut files = Vec::with_capacity(rest.len());
    for ((path, bytes), entry) in rest.into_iter().zip(&manifest.files) {
        if path != entry.path || !allowed_path(&path) {
            return Err(malformed(format!(
                "file {path:?} where the manifest lists {:?} (only catalog/NAME.toml)",
                entry.path
            )));
        }
        if sha256_hex(&bytes) != entry.sha256 {
            return Err(Error::BundleHash {
                bundle: name.to_string(),
                file: path,
            });
        }
        let text =
            String::from_utf8(bytes).map_err(|_| malformed(format!("{path} is not utf-8")))?;
        files.push((path, text));
    }
    let sources: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), t.clone()))
        .collect();
    let rules = RuleSet::from_sources(&sources).map_err(|e| Error::BundleRules {
        bundle: name.to_string(),
        version: manifest.version,
        source: Box::new(e),
    })?;
    Ok(Verified {
        key_id: signer,
        services: rules.services().count(),
        manifest,
        files,
    })
}

/// Every entry of a tar archive: regular files only, no duplicates, within the size
/// limit.
fn read_tar(bundle: &[u8]) -> std::result::Result<Vec<(String, Vec<u8>)>, String> {
    if bundle.len() as u64 > MAX_BUNDLE_BYTES {
        return Err(format!("larger than {MAX_BUNDLE_BYTES} bytes"));
    }
    let not_tar = |e: std::io::Error| format!("not a tar archive: {e}");
    let mut archive = tar::Archive::new(Cursor::new(bundle));
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in archive.entries().map_err(not_tar)? {
        let mut entry = entry.map_err(not_tar)?;
        let path = entry
            .path()
            .map_err(not_tar)?
            .to_str()
            .ok_or("a file name that is not utf-8")?
            .to_string();
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(format!("{path:?} is not a regular file"));
        }
        if out.iter().any(|(p, _)| *p == path) {
            return Err(format!("{path:?} appears twice"));
        }
        let mut bytes = Vec::new();
        entry
            .by_ref()
            .take(MAX_BUNDLE_BYTES)
            .read_to_end(&mut bytes)
            .map_err(not_tar)?;
        out.push((path, bytes));
    }
    if out.is_empty() {
        return Err("an empty archive".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
