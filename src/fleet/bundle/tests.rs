//! The bundle format: a round trip with real Ed25519 signatures, and every refusal.

use minisign::KeyPair;

use super::*;

pub(crate) fn catalog(id: &str, host: &str) -> String {
    format!(
        r#"
[[service]]
id = "{id}"
name = "{id}"
vendor = "Example"
category = "chat"
sources = ["https://example.org/source"]
reviewed = "2026-12-02"
[[service.hosts]]
tier = "consumer"
patterns = ["{host}"]
"#
    )
}

fn files() -> Vec<(String, String)> {
    vec![
        ("catalog/a.toml".into(), catalog("alpha", "alpha.example")),
        ("catalog/b.toml".into(), catalog("beta", "beta.example")),
    ]
}

fn at() -> jiff::Timestamp {
    "2026-12-02T04:00:00Z".parse().expect("time")
}

fn keys() -> KeyPair {
    KeyPair::generate_unencrypted_keypair().expect("keypair")
}

#[test]
fn round_trip() {
    let k = keys();
    let b = build(&files(), 7, at(), &k.sk).expect("built");
    // The same files, time and version give the same archive (signatures differ: random
    // nonces).
    let again = build(&files(), 7, at(), &k.sk).expect("built");
    assert_eq!(b.bundle, again.bundle);
    assert!(b
        .signature
        .contains("aiwarden-bundle format:1 version:7 created:2026-12-02T04:00:00Z"));
    let v = verify(
        "test.bundle",
        &b.bundle,
        &b.signature,
        std::slice::from_ref(&k.pk),
    )
    .expect("verified");
    assert_eq!(v.version(), 7);
    assert_eq!(v.files, files());
    assert_eq!(v.services, 2);
    assert_eq!(v.key_id, key_id(k.pk.keynum()));
    assert_eq!(v.manifest, b.manifest);
    assert_eq!(v.against("t", None).expect("fresh"), Freshness::Newer);
    assert_eq!(v.against("t", Some(6)).expect("newer"), Freshness::Newer);
    assert_eq!(v.against("t", Some(7)).expect("same"), Freshness::Current);
    let e = v
        .against("https://msp.example/b", Some(8))
        .expect_err("rollback");
    assert!(matches!(
        e,
        Error::BundleRollback {
            version: 7,
            in_force: 8,
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "bundle https://msp.example/b: version 7 is older than version 8 in force; rollback refused"
    );
}

#[test]
fn keys_round_trip_through_their_files() {
    let k = keys();
    let pk_text = public_key_file(&k.pk).expect("pk");
    let sk_text = secret_key_file(&k.sk).expect("sk");
    let pk = parse_public_key(&pk_text).expect("pk parses");
    let line = pk_text.lines().nth(1).expect("base64 line");
    let pk2 = parse_public_key(line).expect("the base64 line alone");
    assert_eq!(pk.keynum(), pk2.keynum());
    let sk = parse_secret_key(&sk_text, None).expect("sk parses");
    let b = build(&files(), 1, at(), &sk).expect("built");
    verify("t", &b.bundle, &b.signature, &[pk]).expect("verified");
    // A damaged secret key is refused, not used.
    let mut lines: Vec<String> = sk_text.lines().map(String::from).collect();
    let mut chars: Vec<char> = lines[1].chars().collect();
    chars[120] = if chars[120] == 'A' { 'B' } else { 'A' };
    lines[1] = chars.into_iter().collect();
    let e = parse_secret_key(&lines.join("\n"), None).expect_err("damaged");
    assert!(e.contains("not a minisign secret key"), "{e}");
    assert!(parse_public_key("hello").is_err());
    assert!(parse_secret_key("hello", None).is_err());
}

#[test]
fn an_encrypted_key_needs_its_password() {
    let k = KeyPair::generate_encrypted_keypair(Some("pw".into())).expect("keypair");
    let text = k.sk.to_box(None).expect("box").into_string();
    let e = parse_secret_key(&text, None).expect_err("no password");
    assert!(e.contains("encrypted"), "{e}");
    assert!(parse_secret_key(&text, Some("wrong".into())).is_err());
    let sk = parse_secret_key(&text, Some("pw".into())).expect("decrypted");
    let b = build(&files(), 1, at(), &sk).expect("built");
    verify("t", &b.bundle, &b.signature, &[k.pk]).expect("verified");
}

#[test]
fn a_changed_byte_breaks_the_signature() {
    let k = keys();
    let b = build(&files(), 3, at(), &k.sk).expect("built");
    // Every region: the manifest header, the manifest, a catalog file, the padding.
    for at in [10, 600, 1100, b.bundle.len() - 1] {
        let mut bad = b.bundle.clone();
        bad[at] ^= 1;
        let e = verify("x.bundle", &bad, &b.signature, std::slice::from_ref(&k.pk))
            .expect_err("tampered");
        assert!(matches!(e, Error::BundleBadSignature { .. }), "{at}: {e}");
        assert!(
            e.to_string()
                .starts_with("bundle x.bundle: signature by key"),
            "{e}"
        );
        assert!(e.to_string().contains("altered or damaged"), "{e}");
    }
}

#[test]
fn a_changed_trusted_comment_breaks_the_signature() {
    let k = keys();
    let b = build(&files(), 3, at(), &k.sk).expect("built");
    let forged = b.signature.replace("version:3", "version:9");
    assert_ne!(forged, b.signature);
    let e = verify("x", &b.bundle, &forged, &[k.pk]).expect_err("forged");
    assert!(matches!(e, Error::BundleBadSignature { .. }), "{e}");
}

#[test]
fn an_unknown_key_is_refused_and_a_second_pinned_key_accepted() {
    let (old, new, stranger) = (keys(), keys(), keys());
    let b = build(&files(), 3, at(), &stranger.sk).expect("built");
    let e = verify(
        "x",
        &b.bundle,
        &b.signature,
        &[old.pk.clone(), new.pk.clone()],
    )
    .expect_err("unknown");
    assert!(matches!(e, Error::BundleUnknownKey { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains(&key_id(stranger.pk.keynum())), "{text}");
    assert!(text.contains(&key_id(old.pk.keynum())), "{text}");
    assert!(text.contains("not one of the pinned keys"), "{text}");
    // Rotation: both keys pinned, either signs.
    for k in [&old, &new] {
        let b = build(&files(), 4, at(), &k.sk).expect("built");
        verify(
            "x",
            &b.bundle,
            &b.signature,
            &[old.pk.clone(), new.pk.clone()],
        )
        .expect("pinned");
    }
}

/// A bundle signed as `build` signs, from entries and a manifest the test chooses.
fn signed(entries: &[(String, Vec<u8>)], manifest: &Manifest, k: &KeyPair) -> (Vec<u8>, String) {
    let bundle = tar_of(entries, 0).expect("tar");
    let sig = sign(&bundle, manifest, &k.sk).expect("signed");
    (bundle, sig)
}

fn manifest_of(files: &[(String, String)], version: u64) -> Manifest {
    Manifest {
        format: FORMAT,
        version,
        created: at().to_string(),
        files: files
            .iter()
            .map(|(p, t)| FileEntry {
                path: p.clone(),
                sha256: sha256_hex(t.as_bytes()),
            })
            .collect(),
    }
}

fn entries(m: &Manifest, files: &[(String, String)]) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![(
        MANIFEST.to_string(),
        toml::to_string(m).expect("toml").into_bytes(),
    )];
    out.extend(
        files
            .iter()
            .map(|(p, t)| (p.clone(), t.as_bytes().to_vec())),
    );
    out
}

#[test]
fn a_file_that_does_not_match_its_hash_is_refused() {
    let k = keys();
    let m = manifest_of(&files(), 2);
    let mut f = files();
    f[1].1.push_str("\n# changed after hashing\n");
    let (bundle, sig) = signed(&entries(&m, &f), &m, &k);
    let e = verify("x", &bundle, &sig, &[k.pk]).expect_err("hash");
    assert!(
        matches!(e, Error::BundleHash { ref file, .. } if file == "catalog/b.toml"),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "bundle x: catalog/b.toml does not match the sha-256 in its manifest"
    );
}

#[test]
fn malformed_bundles_are_refused() {
    let k = keys();
    let pk = || vec![k.pk.clone()];
    let good = files();
    let m = manifest_of(&good, 2);
    let check = |bundle: &[u8], sig: &str, want: &str| {
        let e = verify("x", bundle, sig, &pk()).expect_err(want);
        assert!(matches!(e, Error::BundleMalformed { .. }), "{want}: {e}");
        assert!(e.to_string().contains(want), "{want}: {e}");
    };
    // The manifest's version differs from the signed comment's.
    let mut other = m.clone();
    other.version = 5;
    let (b, s) = signed(&entries(&m, &good), &other, &k);
    check(&b, &s, "does not name this manifest");
    // A file the manifest does not list.
    let mut extra = entries(&m, &good);
    extra.push(("catalog/c.toml".into(), b"x".to_vec()));
    let (b, s) = signed(&extra, &m, &k);
    check(&b, &s, "holds 3 files, the manifest lists 2");
    // A path outside catalog/ (a fleet-wide site file: not in v1), listed and hashed.
    let sneaky = vec![("site/deny.list".to_string(), "x.example\n".to_string())];
    let ms = manifest_of(&sneaky, 2);
    let (b, s) = signed(&entries(&ms, &sneaky), &ms, &k);
    check(&b, &s, "only catalog/NAME.toml");
    // No manifest first.
    let mut first = entries(&m, &good);
    first.reverse();
    let (b, s) = signed(&first, &m, &k);
    check(&b, &s, "does not start with manifest.toml");
    // Another format.
    let mut f2 = m.clone();
    f2.format = 2;
    let (b, s) = signed(&entries(&f2, &good), &f2, &k);
    check(&b, &s, "format 2 is not the format 1");
    // Not a tar archive at all (signed anyway).
    let junk = b"this is not an archive".to_vec();
    let s = sign(&junk, &m, &k.sk).expect("signed");
    check(&junk, &s, "not a tar archive");
    // Not a signature.
    check(&b, "hello", "not a minisign signature");
}

#[test]
fn a_bundle_whose_rules_do_not_load_is_refused() {
    let k = keys();
    let bad = vec![(
        "catalog/a.toml".to_string(),
        "[[service]]\nid = 3\n".to_string(),
    )];
    // `build` refuses to make it...
    assert!(matches!(
        build(&bad, 1, at(), &k.sk),
        Err(Error::Rule { .. } | Error::Rules(_))
    ));
    // ...and a box refuses one made by hand.
    let m = manifest_of(&bad, 1);
    let (b, s) = signed(&entries(&m, &bad), &m, &k);
    let e = verify("x", &b, &s, &[k.pk]).expect_err("rules");
    assert!(matches!(e, Error::BundleRules { version: 1, .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("bundle x: version 1: its rules do not load: catalog/a.toml:"),
        "{e}"
    );
}

#[test]
fn build_takes_only_catalog_files() {
    let k = keys();
    for p in [
        "site/deny.list",
        "catalog/../x.toml",
        "catalog/.hidden.toml",
        "catalog/a.txt",
    ] {
        let f = vec![(p.to_string(), catalog("a", "a.example"))];
        assert!(
            matches!(build(&f, 1, at(), &k.sk), Err(Error::Usage(_))),
            "{p}"
        );
    }
    assert!(matches!(build(&[], 1, at(), &k.sk), Err(Error::Usage(_))));
}
