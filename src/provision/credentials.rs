//! The secrets and keys of `provision.toml` checked without being echoed: the console
//! admin's argon2id PHC string (a mistaken file may hold the password itself, so messages
//! never quote it) and root's SSH public keys (the shape `ssh-keygen` writes to a `.pub`
//! file, the blob decoded far enough to see it names its own type).

/// An argon2id PHC string the console can verify passwords against.
pub(super) fn check_phc(hash: &str) -> std::result::Result<(), &'static str> {
    if !hash.starts_with("$argon2id$") {
        return Err("not an argon2id PHC string (\"$argon2id$v=19$m=...,t=...,p=...$SALT$HASH\"), and never a password");
    }
    if hash.len() > 500 {
        return Err("longer than any argon2id PHC string");
    }
    let parsed = argon2::password_hash::phc::PasswordHash::new(hash)
        .map_err(|_| "a malformed argon2id PHC string")?;
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err("an argon2id PHC string without its salt or hash");
    }
    if argon2::Params::try_from(&parsed).is_err() {
        return Err("an argon2id PHC string with parameters argon2 does not accept");
    }
    Ok(())
}

/// The key types OpenSSH takes in `authorized_keys`.
const KEY_TYPES: [&str; 7] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// `TYPE BASE64 [COMMENT]` whose blob names the same type: what `ssh-keygen` writes to
/// a `.pub` file. Options before the type are refused (the appliance's keys are plain).
pub(super) fn check_key(line: &str) -> std::result::Result<String, String> {
    let line = line.trim();
    if line.contains(['\n', '\r']) {
        return Err("one key per string".into());
    }
    let mut parts = line.split_whitespace();
    let kind = parts.next().unwrap_or("");
    let short = |s: &str| s.chars().take(24).collect::<String>();
    if !KEY_TYPES.contains(&kind) {
        return Err(format!(
            "{:?} does not start with a key type (ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, ...); paste the .pub file's line, without options",
            short(line)
        ));
    }
    let blob = parts.next().unwrap_or("");
    let Some(bytes) = base64_decode(blob) else {
        return Err(format!("the {kind} key's data is not base64"));
    };
    // The blob opens with its type as an SSH string: a 4-byte length, then the name.
    let named = bytes
        .get(..4)
        .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .and_then(|n| bytes.get(4..4 + n));
    if named != Some(kind.as_bytes()) {
        return Err(format!("the key's data is not an {kind} key"));
    }
    Ok(line.to_string())
}

/// Standard base64 with padding; `None` for anything else.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || s.len() % 4 != 0 {
        return None;
    }
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let body = s.trim_end_matches('=');
    if s.len() - body.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in body.bytes() {
        acc = (acc << 6) | u32::from(value(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_what_openssh_writes() {
        assert_eq!(
            base64_decode("AAAAC3NzaC1lZDI1NTE5").as_deref(),
            Some(&b"\0\0\0\x0bssh-ed25519"[..])
        );
        assert_eq!(base64_decode("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64_decode("YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(base64_decode("YWJj").as_deref(), Some(&b"abc"[..]));
        for bad in ["", "YQ", "Y===", "YW!j", "YQ==YQ=="] {
            assert_eq!(base64_decode(bad), None, "{bad:?}");
        }
    }
}
