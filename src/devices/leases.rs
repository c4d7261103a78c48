//! DHCP servers' lease files: dnsmasq, ISC dhcpd, Kea memfile CSV. A server may be writing
//! the file as it is read, so a line or block that does not parse is skipped, never an
//! error.

use std::collections::HashMap;
use std::net::IpAddr;

use super::{clean_hostname, unicast_mac, Lease};

/// Parses dnsmasq's lease file. IPv4 lines are
/// `expiry mac ip hostname client-id`; after the `duid` line, DHCPv6 lines are
/// `expiry iaid ip hostname client-id` and carry no MAC address (the DUID need not
/// contain the address of the interface in use, so none is guessed from it). An expiry
/// of 0 is an infinite lease; a host name of `*` is none.
///
/// ```text
/// 1732550000 52:54:00:12:34:56 10.0.0.21 reception-1 01:52:54:00:12:34:56
/// duid 00:01:00:01:2e:a1:5b:3c:52:54:00:00:00:01
/// 1732553600 1432941 fd00::21 reception-1 00:01:00:01:2c:3e:4f:5a:52:54:00:12:34:56
/// ```
pub fn parse_dnsmasq(text: &str) -> Vec<Lease> {
    text.lines().filter_map(dnsmasq_line).collect()
}

fn dnsmasq_line(line: &str) -> Option<Lease> {
    let mut fields = line.split_whitespace();
    let expiry: u64 = fields.next()?.parse().ok()?;
    let hw_or_iaid = fields.next()?;
    let ip: IpAddr = fields.next()?.parse().ok()?;
    let hostname = fields.next().filter(|h| *h != "*").and_then(clean_hostname);
    Some(Lease {
        ip,
        mac: if ip.is_ipv4() {
            unicast_mac(hw_or_iaid)
        } else {
            None
        },
        hostname,
        expires: (expiry != 0).then_some(expiry),
    })
}

/// Parses ISC dhcpd's `dhcpd.leases`. The file is a journal: the last `lease` block for an
/// address wins, and only a lease whose binding state is `active` (or unstated, as in old
/// files) is kept. Times are UTC (`ends 4 2026/11/26 10:00:00;`) or, with
/// `db-time-format local`, `ends epoch 1795687200;`. DHCPv6 blocks (`ia-na` and kin) are
/// skipped: dhcpd records no host name for them.
pub fn parse_dhcpd(text: &str) -> Vec<Lease> {
    let toks = tokens(text);
    let mut found = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let end = statement_end(&toks, i);
        if let [Tok::Word("lease"), Tok::Word(ip), Tok::Open, body @ .., Tok::Close] = &toks[i..end]
        {
            if let Ok(ip) = ip.parse() {
                found.push(dhcpd_lease(ip, body));
            }
        }
        i = end;
    }
    last_per_ip(found)
}

/// One lease block's statements; `true` with the lease when it is active.
fn dhcpd_lease(ip: IpAddr, body: &[Tok<'_>]) -> (Lease, bool) {
    let mut lease = Lease {
        ip,
        mac: None,
        hostname: None,
        expires: None,
    };
    let mut active = true;
    let mut i = 0;
    while i < body.len() {
        let end = statement_end(body, i);
        match &body[i..end] {
            [Tok::Word("ends"), Tok::Word("never"), Tok::Semi] => lease.expires = None,
            [Tok::Word("ends"), Tok::Word("epoch"), Tok::Word(secs), ..] => {
                lease.expires = secs.parse().ok();
            }
            [Tok::Word("ends"), Tok::Word(_weekday), Tok::Word(date), Tok::Word(time), Tok::Semi] =>
            {
                lease.expires = utc_secs(date, time);
            }
            [Tok::Word("hardware"), Tok::Word("ethernet"), Tok::Word(mac), Tok::Semi] => {
                lease.mac = padded_mac(mac).as_deref().and_then(unicast_mac);
            }
            [Tok::Word("client-hostname"), Tok::Str(name), Tok::Semi] => {
                lease.hostname = clean_hostname(name);
            }
            [Tok::Word("binding"), Tok::Word("state"), Tok::Word(state), Tok::Semi] => {
                active = *state == "active";
            }
            _ => {}
        }
        i = end;
    }
    (lease, active)
}

/// A dhcpd leases file token.
#[derive(Debug, PartialEq)]
enum Tok<'a> {
    Word(&'a str),
    /// A quoted string with its escapes decoded.
    Str(String),
    Open,
    Close,
    Semi,
}

/// Splits dhcpd's configuration syntax into tokens, dropping `#` comments. An unterminated
/// string runs to the end of the text.
fn tokens(text: &str) -> Vec<Tok<'_>> {
    let mut toks = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let after = &rest[c.len_utf8()..];
        rest = match c {
            '#' => after.find('\n').map_or("", |n| &after[n..]),
            '{' | '}' | ';' => {
                toks.push(match c {
                    '{' => Tok::Open,
                    '}' => Tok::Close,
                    _ => Tok::Semi,
                });
                after
            }
            '"' => {
                let (s, len) = quoted(after);
                toks.push(Tok::Str(s));
                &after[len..]
            }
            c if c.is_whitespace() => after,
            _ => {
                let len = rest
                    .find(|c: char| c.is_whitespace() || "{};\"#".contains(c))
                    .unwrap_or(rest.len());
                toks.push(Tok::Word(&rest[..len]));
                &rest[len..]
            }
        };
    }
    toks
}

/// Decodes the body of a quoted string (`\"`, `\\`, octal `\303\251`) and returns it with
/// the number of bytes consumed, closing quote included.
fn quoted(text: &str) -> (String, usize) {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return (String::from_utf8_lossy(&out).into_owned(), i + 1),
            b'\\' if i + 1 < bytes.len() => {
                let digits = bytes[i + 1..]
                    .iter()
                    .take(3)
                    .take_while(|b| (b'0'..=b'7').contains(b))
                    .count();
                if digits == 0 {
                    out.push(bytes[i + 1]);
                    i += 2;
                } else {
                    let octal = bytes[i + 1..i + 1 + digits]
                        .iter()
                        .fold(0u32, |n, b| n * 8 + u32::from(b - b'0'));
                    out.push(u8::try_from(octal).unwrap_or(b'?'));
                    i += 1 + digits;
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), bytes.len())
}

/// The end (exclusive) of the statement starting at `start`: after its `;`, or after the
/// `}` that closes its block.
fn statement_end(toks: &[Tok<'_>], start: usize) -> usize {
    let mut depth = 0usize;
    for (i, tok) in toks.iter().enumerate().skip(start) {
        match tok {
            Tok::Semi if depth == 0 => return i + 1,
            Tok::Open => depth += 1,
            Tok::Close if depth <= 1 => return i + 1,
            Tok::Close => depth -= 1,
            _ => {}
        }
    }
    toks.len()
}

/// dhcpd derivatives (OpenBSD's) write hex pairs without zero padding (`0:c:29:1:2:3`).
fn padded_mac(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split(':').collect();
    (parts.len() == 6 && parts.iter().all(|p| (1..=2).contains(&p.len()))).then(|| {
        parts
            .iter()
            .map(|p| format!("{p:0>2}"))
            .collect::<Vec<_>>()
            .join(":")
    })
}

/// `2026/11/26` `10:00:00` (UTC) as Unix seconds.
fn utc_secs(date: &str, time: &str) -> Option<u64> {
    let num = |s: Option<&str>| s?.parse::<i64>().ok();
    let mut d = date.split('/');
    let (y, m, day) = (num(d.next())?, num(d.next())?, num(d.next())?);
    let mut t = time.split(':');
    let (hh, mm, ss) = (num(t.next())?, num(t.next())?, num(t.next())?);
    // Bounded so the arithmetic below cannot overflow.
    let valid = (1970..=9999).contains(&y)
        && (1..=12).contains(&m)
        && (1..=31).contains(&day)
        && (0..24).contains(&hh)
        && (0..60).contains(&mm)
        && (0..=60).contains(&ss);
    if !valid || d.next().is_some() || t.next().is_some() {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// Kea's `valid_lifetime` for a lease that never ends.
const KEA_INFINITE: &str = "4294967295";

/// Parses a Kea memfile (`kea-leases4.csv` or `kea-leases6.csv`), finding columns by the
/// header line. The file is a journal: the last row for an address wins, and only a row in
/// state 0 (default) with a non-zero `valid_lifetime` (Kea writes 0 for a deleted lease)
/// is kept. Delegated prefixes (`lease_type` 2) are skipped. Kea writes commas inside a
/// field as `&#x2c`.
///
/// ```text
/// address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context,pool_id
/// 10.0.0.21,52:54:00:12:34:56,01:52:54:00:12:34:56,3600,1732553600,1,1,1,reception-1.clinic.lan.,0,,0
/// ```
pub fn parse_kea(text: &str) -> Vec<Lease> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let columns: HashMap<&str, usize> = header
        .split(',')
        .enumerate()
        .map(|(i, c)| (c.trim(), i))
        .collect();
    let col = |name: &str| columns.get(name).copied();
    let Some(address) = col("address") else {
        return Vec::new();
    };
    let (hwaddr, lifetime, expire) = (col("hwaddr"), col("valid_lifetime"), col("expire"));
    let (hostname, state, lease_type) = (col("hostname"), col("state"), col("lease_type"));
    let mut found = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |i: Option<usize>| {
            i.and_then(|i| fields.get(i))
                .copied()
                .filter(|f| !f.is_empty())
        };
        let Some(Ok(ip)) = get(Some(address)).map(str::parse::<IpAddr>) else {
            continue;
        };
        if get(lease_type) == Some("2") {
            continue;
        }
        let valid = get(lifetime);
        let active = get(state).is_none_or(|s| s == "0") && valid != Some("0");
        let lease = Lease {
            ip,
            mac: get(hwaddr).and_then(unicast_mac),
            hostname: get(hostname).and_then(|h| clean_hostname(&h.replace("&#x2c", ","))),
            expires: if valid == Some(KEA_INFINITE) {
                None
            } else {
                get(expire).and_then(|e| e.parse().ok())
            },
        };
        found.push((lease, active));
    }
    last_per_ip(found)
}

/// For journal-like files: the last entry per address, kept if active, in the order the
/// addresses first appear.
fn last_per_ip(entries: Vec<(Lease, bool)>) -> Vec<Lease> {
    let mut at: HashMap<IpAddr, usize> = HashMap::new();
    let mut out: Vec<(Lease, bool)> = Vec::new();
    for entry in entries {
        match at.get(&entry.0.ip) {
            Some(&i) => out[i] = entry,
            None => {
                at.insert(entry.0.ip, out.len());
                out.push(entry);
            }
        }
    }
    out.into_iter()
        .filter_map(|(lease, active)| active.then_some(lease))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(ip: &str, mac: Option<&str>, host: Option<&str>, expires: Option<u64>) -> Lease {
        Lease {
            ip: ip.parse().expect("ip"),
            mac: mac.map(|m| m.parse().expect("mac")),
            hostname: host.map(str::to_string),
            expires,
        }
    }

    #[test]
    fn dnsmasq_v4_and_v6() {
        let text = "\
1732550000 52:54:00:12:34:56 10.0.0.21 reception-1 01:52:54:00:12:34:56
1732550600 52:54:00:AB:CD:EF 10.0.0.22 * *

0 3c:22:fb:01:02:03 10.0.0.40 Dr-Lee-MacBook 01:3c:22:fb:01:02:03
1732551200 20-00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33 10.0.0.50 ib-node *
garbage
duid 00:01:00:01:2e:a1:5b:3c:52:54:00:00:00:01
1732553600 1432941 fd00::21 reception-1 00:01:00:01:2c:3e:4f:5a:52:54:00:12:34:56
1732553600 T77 fd00::99 * 00:04:9e:3f:58:1a:2b:4c:5d:6e:7f:80:91:a2:b3:c4:d5:e6
";
        assert_eq!(
            parse_dnsmasq(text),
            [
                lease(
                    "10.0.0.21",
                    Some("52:54:00:12:34:56"),
                    Some("reception-1"),
                    Some(1_732_550_000)
                ),
                lease(
                    "10.0.0.22",
                    Some("52:54:00:ab:cd:ef"),
                    None,
                    Some(1_732_550_600)
                ),
                lease(
                    "10.0.0.40",
                    Some("3c:22:fb:01:02:03"),
                    Some("Dr-Lee-MacBook"),
                    None
                ),
                lease("10.0.0.50", None, Some("ib-node"), Some(1_732_551_200)),
                lease("fd00::21", None, Some("reception-1"), Some(1_732_553_600)),
                lease("fd00::99", None, None, Some(1_732_553_600)),
            ]
        );
        assert!(parse_dnsmasq("").is_empty());
    }

    const DHCPD: &str = r#"# The format of this file is documented in the dhcpd.leases(5) manual page.
# This lease file was written by isc-dhcp-4.4.3-P1

# authoring-byte-order entry is generated, DO NOT DELETE
authoring-byte-order little-endian;

server-duid "\000\001\000\001.\241[<RT\000\000\000\001";

lease 10.0.0.21 {
  starts 4 2026/11/26 09:00:00;
  ends 4 2026/11/26 10:00:00;
  cltt 4 2026/11/26 09:00:00;
  binding state active;
  next binding state free;
  rewind binding state free;
  hardware ethernet 52:54:00:12:34:56;
  uid "\001RT\000\0224V";
  set vendor-class-identifier = "MSFT 5.0";
  client-hostname "reception-1";
}
lease 10.0.0.22 {
  starts 4 2026/11/26 08:00:00;
  ends 4 2026/11/26 08:30:00;
  tstp 4 2026/11/26 08:30:00;
  cltt 4 2026/11/26 08:00:00;
  binding state free;
  hardware ethernet 52:54:00:00:00:22;
  uid "\001RT\000\000\000\"";
}
lease 10.0.0.23 {
  starts 4 2026/11/26 08:10:00;
  ends never;
  binding state active;
  hardware ethernet 52:54:0:0:0:23;
  client-hostname "Dr Smith\'s iPad; \"exam\" {2}"; # a comment after a statement
}
# The server renewed 10.0.0.21 with a longer lease: this block wins.
lease 10.0.0.21 {
  starts 4 2026/11/26 09:30:00;
  ends epoch 1795690800; # Thu Nov 26 11:00:00 2026
  binding state active;
  next binding state free;
  hardware ethernet 52:54:00:12:34:56;
  client-hostname "reception-1";
}
lease 10.0.0.24 {
  starts 4 2026/11/26 09:00:00;
  ends 4 2026/11/26 10:00:00;
  binding state active;
  hardware ethernet 52:54:00:00:00:24;
  client-hostname "caf\303\251-pc";
}
lease 10.0.0.25 {
  starts 4 2026/11/26 09:00:00;
  ends 4 2026/11/26 09:30:00;
  binding state active;
  hardware ethernet 52:54:00:00:00:25;
}
lease 10.0.0.25 {
  starts 4 2026/11/26 09:20:00;
  ends 4 2026/11/26 09:20:00;
  tstp 4 2026/11/26 09:20:00;
  binding state released;
  hardware ethernet 52:54:00:00:00:25;
}
ia-na "\000\000\000\001\000\001\000\001-\267\310dRT\000\022\064V" {
  cltt 4 2026/11/26 09:00:00;
  iaaddr 2001:db8:10::21 {
    binding state active;
    preferred-life 375;
    max-life 600;
    ends 4 2026/11/26 09:10:00;
  }
}
lease 10.0.0.26 {
  starts 4 2026/11/26 09:40:00;
  ends 4 2026/11/26 10:40:00;
  binding state active;
  hardware ethernet 52:54:00:00:00:26;
  client-hostname "cut-off
"#;

    #[test]
    fn dhcpd_leases() {
        let ten = utc_secs("2026/11/26", "10:00:00");
        assert_eq!(ten, Some(1_795_687_200));
        assert_eq!(
            parse_dhcpd(DHCPD),
            [
                lease(
                    "10.0.0.21",
                    Some("52:54:00:12:34:56"),
                    Some("reception-1"),
                    Some(1_795_690_800)
                ),
                lease(
                    "10.0.0.23",
                    Some("52:54:00:00:00:23"),
                    Some("Dr Smith's iPad; \"exam\" {2}"),
                    None
                ),
                lease("10.0.0.24", Some("52:54:00:00:00:24"), Some("café-pc"), ten),
            ]
        );
        assert!(parse_dhcpd("").is_empty());
        assert!(parse_dhcpd("lease 10.0.0.9 {\n  binding state active;\n").is_empty());
    }

    #[test]
    fn a_file_cut_anywhere_parses() {
        // A reader can catch the server mid-write.
        for end in (0..=DHCPD.len()).filter(|&i| DHCPD.is_char_boundary(i)) {
            let leases = parse_dhcpd(&DHCPD[..end]);
            // Before 10.0.0.25's release is read it is still active; 10.0.0.26's block
            // never closes.
            assert!(leases.len() <= 4, "{end}: {leases:?}");
            assert!(leases.iter().all(|l| l.ip.to_string() != "10.0.0.26"));
        }
        let dnsmasq = "1732550000 52:54:00:12:34:56 10.0.0.21 reception-1 *\n";
        for end in 0..=dnsmasq.len() {
            assert!(parse_dnsmasq(&dnsmasq[..end]).len() <= 1);
        }
    }

    #[test]
    fn dates_and_escapes() {
        assert_eq!(utc_secs("1970/01/01", "00:00:00"), Some(0));
        assert_eq!(utc_secs("2000/02/29", "12:00:00"), Some(951_825_600));
        assert_eq!(utc_secs("2024/13/01", "00:00:00"), None);
        assert_eq!(utc_secs("2024/01/01", "24:00:00"), None);
        assert_eq!(utc_secs("1969/12/31", "23:59:59"), None);
        assert_eq!(utc_secs("9223372036854775807/01/01", "00:00:00"), None);
        assert_eq!(utc_secs("2024/01", "00:00:00"), None);
        assert_eq!(quoted(r#"a\\b\"c\101" rest"#), ("a\\b\"cA".into(), 12));
        assert_eq!(quoted("open"), ("open".into(), 4));
        assert_eq!(
            padded_mac("0:c:29:1:2:3").as_deref(),
            Some("00:0c:29:01:02:03")
        );
        assert_eq!(padded_mac("0:c:29:1:2"), None);
        assert_eq!(
            tokens("a { b \"c;\"; } # d;\ne"),
            [
                Tok::Word("a"),
                Tok::Open,
                Tok::Word("b"),
                Tok::Str("c;".into()),
                Tok::Semi,
                Tok::Close,
                Tok::Word("e"),
            ]
        );
    }

    #[test]
    fn kea_memfile_v4() {
        let text = "\
address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context,pool_id
10.0.0.21,52:54:00:12:34:56,01:52:54:00:12:34:56,3600,1795687200,1,1,1,reception-1.clinic.lan.,0,,0
10.0.0.22,52:54:00:00:00:22,,3600,1795683600,1,0,0,,0,,0
10.0.0.23,52:54:00:00:00:23,,3600,1795687200,1,0,0,pc&#x2c 23,1,,0
10.0.0.24,52:54:00:00:00:24,,3600,1795687200,1,0,0,exam-2,0,{ \"comment\": \"a&#x2c b\" },0
10.0.0.25,52:54:00:00:00:25,,3600,1795687200,1,0,0,billing-1,0,,0
10.0.0.25,52:54:00:00:00:25,,0,1795684000,1,0,0,billing-1,0,,0
10.0.0.26,52:54:00:00:00:26,,4294967295,4294967295,1,0,0,server,0,,0
10.0.0.22,52:54:00:00:00:22,,3600,1795687200,1,0,0,Nurse-Station,0,,0
not-an-address,52:54:00:00:00:27,,3600,1795687200,1,0,0,x,0,,0
";
        assert_eq!(
            parse_kea(text),
            [
                lease(
                    "10.0.0.21",
                    Some("52:54:00:12:34:56"),
                    Some("reception-1.clinic.lan"),
                    Some(1_795_687_200)
                ),
                lease(
                    "10.0.0.22",
                    Some("52:54:00:00:00:22"),
                    Some("Nurse-Station"),
                    Some(1_795_687_200)
                ),
                lease(
                    "10.0.0.24",
                    Some("52:54:00:00:00:24"),
                    Some("exam-2"),
                    Some(1_795_687_200)
                ),
                lease("10.0.0.26", Some("52:54:00:00:00:26"), Some("server"), None),
            ]
        );
    }

    #[test]
    fn kea_memfile_v6() {
        // Kea 2.6's column order; a delegated prefix (lease_type 2) is no client address.
        let text = "\
address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source,pool_id
2001:db8:1::100,00:03:00:01:52:54:00:12:34:56,4000,1795687200,1,3000,0,1,128,0,0,reception-1,52:54:00:12:34:56,0,,1,4,0
2001:db8:1::101,00:01:00:01:2c:3e:4f:5a:52:54:00:00:00:02,4000,1795687200,1,3000,0,1,128,0,0,,,0,,,0,0
2001:db8:8::,00:03:00:01:52:54:00:12:34:56,4000,1795687200,1,3000,2,2,56,0,0,,,0,,1,4,0
";
        assert_eq!(
            parse_kea(text),
            [
                lease(
                    "2001:db8:1::100",
                    Some("52:54:00:12:34:56"),
                    Some("reception-1"),
                    Some(1_795_687_200)
                ),
                lease("2001:db8:1::101", None, None, Some(1_795_687_200)),
            ]
        );
        assert!(parse_kea("").is_empty());
        assert!(parse_kea("ip,mac\n10.0.0.1,52:54:00:00:00:01\n").is_empty());
    }
}
