//! A syslog-over-TLS receiver for the tests (`tests/fleet_syslog.rs`): rustls on
//! 127.0.0.1:0, each connection following a plan (read everything and answer the sender's
//! close_notify, or drop mid-batch), and a parser of RFC 5425 framing and RFC 5424
//! messages that refuses anything the RFCs do not allow, written here rather than borrowed
//! from the code under test, whose JSON must carry the OCSF fields docs/fleet.md documents.

use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the receiver does with a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Plan {
    /// Read every frame, answer the sender's close_notify with ours.
    Full,
    /// Read this many frames, then drop the connection without close_notify.
    DropAfter(usize),
}

/// One message the receiver accepted.
#[derive(Debug, Clone)]
pub(crate) struct Got {
    pub(crate) conn: usize,
    pub(crate) row: i64,
    pub(crate) hash: String,
    pub(crate) site: String,
    pub(crate) json: serde_json::Value,
}

pub(crate) struct Receiver {
    pub(crate) addr: SocketAddr,
    pub(crate) got: Arc<Mutex<Vec<Got>>>,
    pub(crate) conns: Arc<Mutex<usize>>,
    pub(crate) errors: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    /// Listens on 127.0.0.1:0; connection i follows `plans[i]` (Full beyond the list).
    pub(crate) fn start(server: Arc<rustls::ServerConfig>, plans: Vec<Plan>) -> Receiver {
        Receiver::start_on(
            TcpListener::bind("127.0.0.1:0").expect("bind"),
            server,
            plans,
        )
    }

    /// As [`Receiver::start`], on a listener the test bound (a port a sender already
    /// knows).
    pub(crate) fn start_on(
        listener: TcpListener,
        server: Arc<rustls::ServerConfig>,
        plans: Vec<Plan>,
    ) -> Receiver {
        let addr = listener.local_addr().expect("addr");
        let got = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(Mutex::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (g, c, e) = (got.clone(), conns.clone(), errors.clone());
        std::thread::spawn(move || {
            for (n, tcp) in listener.incoming().enumerate() {
                let Ok(tcp) = tcp else { continue };
                *c.lock().expect("lock") += 1;
                let plan = plans.get(n).copied().unwrap_or(Plan::Full);
                if let Err(why) = serve(n, tcp, server.clone(), plan, &g) {
                    e.lock().expect("lock").push(why);
                }
            }
        });
        Receiver {
            addr,
            got,
            conns,
            errors,
        }
    }

    pub(crate) fn got(&self) -> Vec<Got> {
        self.got.lock().expect("lock").clone()
    }

    pub(crate) fn conns(&self) -> usize {
        *self.conns.lock().expect("lock")
    }

    /// Violations of RFC 5424/5425 or of the schema (TLS failures are the tests' to see).
    pub(crate) fn violations(&self) -> Vec<String> {
        self.errors
            .lock()
            .expect("lock")
            .iter()
            .filter(|e| e.starts_with("strict:"))
            .cloned()
            .collect()
    }
}

pub(crate) fn serve(
    conn: usize,
    tcp: TcpStream,
    server: Arc<rustls::ServerConfig>,
    plan: Plan,
    got: &Mutex<Vec<Got>>,
) -> Result<(), String> {
    tcp.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let tls = rustls::ServerConnection::new(server).map_err(|e| e.to_string())?;
    let mut r = BufReader::new(rustls::StreamOwned::new(tls, tcp));
    let mut n = 0;
    loop {
        if let Plan::DropAfter(k) = plan {
            if n == k {
                // Gone without a word: no close_notify.
                return Ok(());
            }
        }
        match read_frame(&mut r)? {
            None => {
                let s = r.get_mut();
                s.conn.send_close_notify();
                s.flush().map_err(|e| e.to_string())?;
                return Ok(());
            }
            Some(frame) => {
                let g = parse(&frame).map_err(|e| format!("strict: {e}"))?;
                got.lock().expect("lock").push(Got { conn, ..g });
                n += 1;
            }
        }
    }
}

/// One RFC 5425 frame, `MSG-LEN SP SYSLOG-MSG` with MSG-LEN = NONZERO-DIGIT *DIGIT; `None`
/// at a clean end of the TLS session between frames.
pub(crate) fn read_frame(r: &mut impl Read) -> Result<Option<Vec<u8>>, String> {
    let mut len = String::new();
    loop {
        let mut b = [0u8; 1];
        match r.read(&mut b) {
            Ok(0) if len.is_empty() => return Ok(None),
            Ok(0) => return Err("strict: end of stream inside MSG-LEN".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
        match b[0] {
            b' ' => break,
            b'0' if len.is_empty() => return Err("strict: MSG-LEN starts with 0".into()),
            d @ b'0'..=b'9' if len.len() < 9 => len.push(char::from(d)),
            other => return Err(format!("strict: byte {other:#x} in MSG-LEN {len:?}")),
        }
    }
    if len.is_empty() {
        return Err("strict: empty MSG-LEN".into());
    }
    let n: usize = len.parse().map_err(|_| "strict: MSG-LEN".to_string())?;
    let mut msg = vec![0u8; n];
    r.read_exact(&mut msg)
        .map_err(|e| format!("strict: frame shorter than its MSG-LEN {n}: {e}"))?;
    Ok(Some(msg))
}

/// A header field: NILVALUE or 1..=max PRINTUSASCII, then SP.
pub(crate) fn token<'a>(
    s: &'a [u8],
    max: usize,
    what: &str,
) -> Result<(&'a str, &'a [u8]), String> {
    let end = s
        .iter()
        .position(|&b| b == b' ')
        .ok_or(format!("{what}: no SP after it"))?;
    let t = &s[..end];
    if t.is_empty() || t.len() > max || !t.iter().all(|b| (33..=126).contains(b)) {
        return Err(format!(
            "{what}: {:?} is not 1..={max} PRINTUSASCII",
            String::from_utf8_lossy(t)
        ));
    }
    Ok((
        std::str::from_utf8(t).map_err(|e| e.to_string())?,
        &s[end + 1..],
    ))
}

/// FULL-DATE "T" FULL-TIME with TIME-SECFRAC of 1..=6 digits, as RFC 5424 §6.2.3 allows.
pub(crate) fn check_timestamp(t: &str) -> Result<(), String> {
    let b = t.as_bytes();
    let d = |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    let shape = b.len() >= 20
        && d(0..4)
        && b[4] == b'-'
        && d(5..7)
        && b[7] == b'-'
        && d(8..10)
        && b[10] == b'T'
        && d(11..13)
        && b[13] == b':'
        && d(14..16)
        && b[16] == b':'
        && d(17..19);
    if !shape {
        return Err(format!("timestamp {t:?}"));
    }
    let mut rest = &t[19..];
    if let Some(f) = rest.strip_prefix('.') {
        let digits = f.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=6).contains(&digits) {
            return Err(format!("timestamp {t:?}: TIME-SECFRAC of {digits} digits"));
        }
        rest = &f[digits..];
    }
    let zone_ok = rest == "Z"
        || (rest.len() == 6
            && matches!(rest.as_bytes()[0], b'+' | b'-')
            && rest.as_bytes()[3] == b':');
    if !zone_ok {
        return Err(format!("timestamp {t:?}: zone"));
    }
    t.parse::<jiff::Timestamp>()
        .map(|_| ())
        .map_err(|e| format!("timestamp {t:?}: {e}"))
}

/// An SD-NAME: 1..=32 PRINTUSASCII except `=`, SP, `]`, `"`.
pub(crate) fn sd_name(s: &[u8]) -> (usize, bool) {
    let n = s
        .iter()
        .take_while(|&&b| (33..=126).contains(&b) && !matches!(b, b'=' | b']' | b'"' | b' '))
        .count();
    (n, (1..=32).contains(&n))
}

/// Parses STRUCTURED-DATA strictly; returns the elements' params and what follows.
#[allow(clippy::type_complexity)]
pub(crate) fn structured(
    mut s: &[u8],
) -> Result<(BTreeMap<String, BTreeMap<String, String>>, &[u8]), String> {
    let mut out = BTreeMap::new();
    if let Some(rest) = s.strip_prefix(b"-") {
        return Ok((out, rest));
    }
    if s.first() != Some(&b'[') {
        return Err("structured data: neither - nor [".into());
    }
    while let Some(rest) = s.strip_prefix(b"[") {
        let (n, ok) = sd_name(rest);
        let id = std::str::from_utf8(&rest[..n]).map_err(|e| e.to_string())?;
        // A private SD-ID is name@digits; an IANA one has no @ (none are used here).
        let private_ok = match id.split_once('@') {
            Some((name, pen)) => {
                !name.is_empty() && !pen.is_empty() && pen.bytes().all(|b| b.is_ascii_digit())
            }
            None => false,
        };
        if !ok || !private_ok {
            return Err(format!("SD-ID {id:?}"));
        }
        let mut params = BTreeMap::new();
        s = &rest[n..];
        loop {
            match s.first() {
                Some(b']') => {
                    s = &s[1..];
                    break;
                }
                Some(b' ') => {
                    let (n, ok) = sd_name(&s[1..]);
                    if !ok {
                        return Err("PARAM-NAME".into());
                    }
                    let name =
                        String::from_utf8(s[1..1 + n].to_vec()).map_err(|e| e.to_string())?;
                    s = &s[1 + n..];
                    s = s.strip_prefix(b"=\"").ok_or("PARAM: no =\"")?;
                    let mut value = Vec::new();
                    loop {
                        match s.first() {
                            None => return Err("PARAM-VALUE not closed".into()),
                            Some(b'"') => {
                                s = &s[1..];
                                break;
                            }
                            Some(b']') => return Err("unescaped ] in PARAM-VALUE".into()),
                            Some(b'\\') => match s.get(1) {
                                Some(&c @ (b'"' | b'\\' | b']')) => {
                                    value.push(c);
                                    s = &s[2..];
                                }
                                _ => return Err("a backslash escapes nothing".into()),
                            },
                            Some(&c) => {
                                value.push(c);
                                s = &s[1..];
                            }
                        }
                    }
                    let value = String::from_utf8(value).map_err(|_| "PARAM-VALUE not UTF-8")?;
                    if params.insert(name.clone(), value).is_some() {
                        return Err(format!("param {name} twice"));
                    }
                }
                _ => return Err("SD-ELEMENT: expected SP or ]".into()),
            }
        }
        if out.insert(id.to_string(), params).is_some() {
            return Err(format!("SD-ID {id} twice"));
        }
    }
    Ok((out, s))
}

/// A SYSLOG-MSG, strictly: PRI, VERSION 1, TIMESTAMP, HOSTNAME, APP-NAME, PROCID, MSGID,
/// STRUCTURED-DATA, then SP, BOM and a JSON object with the documented OCSF fields.
pub(crate) fn parse(m: &[u8]) -> Result<Got, String> {
    let rest = m.strip_prefix(b"<").ok_or("no <")?;
    let close = rest.iter().position(|&b| b == b'>').ok_or("no >")?;
    let pri = std::str::from_utf8(&rest[..close]).map_err(|e| e.to_string())?;
    if pri.is_empty() || pri.len() > 3 || (pri.len() > 1 && pri.starts_with('0')) {
        return Err(format!("PRI {pri:?}"));
    }
    let pri: u16 = pri.parse().map_err(|_| "PRI digits")?;
    if pri > 191 {
        return Err(format!("PRI {pri} > 191"));
    }
    let rest = rest[close + 1..]
        .strip_prefix(b"1 ")
        .ok_or("VERSION is not 1")?;
    let (ts, rest) = token(rest, 64, "TIMESTAMP")?;
    check_timestamp(ts)?;
    let (_host, rest) = token(rest, 255, "HOSTNAME")?;
    let (app, rest) = token(rest, 48, "APP-NAME")?;
    let (_procid, rest) = token(rest, 128, "PROCID")?;
    let (msgid, rest) = token(rest, 32, "MSGID")?;
    let (sd, rest) = structured(rest)?;
    let msg = rest.strip_prefix(b" ").ok_or("no SP before MSG")?;
    let json = msg
        .strip_prefix(b"\xEF\xBB\xBF")
        .ok_or("MSG does not start with the UTF-8 BOM")?;
    let json: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("MSG is not JSON: {e}"))?;
    if app != "aiwarden" || msgid != "incident" {
        return Err(format!("APP-NAME {app} MSGID {msgid}"));
    }
    let severity = pri % 8;
    let facility = pri / 8;
    let e = sd
        .get("aiwarden@32473")
        .ok_or("no aiwarden@32473 element")?;
    let (site, row, hash) = match (e.get("site"), e.get("row"), e.get("hash")) {
        (Some(s), Some(r), Some(h)) => (s.clone(), r.parse::<i64>().map_err(|_| "row")?, h.clone()),
        _ => return Err(format!("aiwarden@32473 params {e:?}")),
    };
    check_ocsf(&json, row, &hash, &site, severity)?;
    if facility != 16 {
        return Err(format!("facility {facility}"));
    }
    Ok(Got {
        conn: 0,
        row,
        hash,
        site,
        json,
    })
}

/// The documented schema (docs/fleet.md): OCSF 1.3.0 Detection Finding, the required
/// fields present and typed, and the SD params agreeing with the JSON.
pub(crate) fn check_ocsf(
    v: &serde_json::Value,
    row: i64,
    hash: &str,
    site: &str,
    severity: u16,
) -> Result<(), String> {
    for k in aiwarden::fleet::ocsf::REQUIRED {
        if v.get(k).is_none() {
            return Err(format!("OCSF field {k} missing"));
        }
    }
    let int = |p: &str| v.pointer(p).and_then(serde_json::Value::as_i64);
    let text = |p: &str| v.pointer(p).and_then(serde_json::Value::as_str);
    let ok = int("/class_uid") == Some(2004)
        && int("/category_uid") == Some(2)
        && int("/activity_id") == Some(1)
        && int("/type_uid") == Some(200_401)
        && int("/time").is_some_and(|t| t > 1_700_000_000_000)
        && text("/metadata/version") == Some("1.3.0")
        && text("/metadata/product/name") == Some("aiwarden")
        && text("/finding_info/uid") == Some(&format!("{site}:{row}:{}", &hash[..16]))
        && text("/metadata/uid") == text("/finding_info/uid")
        && text("/finding_info/title").is_some()
        && text("/evidences/0/src_endpoint/ip").is_some()
        && text("/evidences/0/dst_endpoint/hostname").is_some()
        && int("/unmapped/aiwarden/row_id") == Some(row)
        && text("/unmapped/aiwarden/chain_hash") == Some(hash)
        && text("/unmapped/aiwarden/site") == Some(site)
        && text("/unmapped/aiwarden/service/id").is_some();
    if !ok {
        return Err(format!("OCSF fields: {v}"));
    }
    // Syslog severity and OCSF agree with the verdict.
    let expect = match (
        int("/action_id"),
        int("/disposition_id"),
        int("/severity_id"),
    ) {
        (Some(2), Some(2), Some(2)) => 5,
        (Some(1), Some(17), Some(3)) => 4,
        other => return Err(format!("action/disposition/severity {other:?}")),
    };
    if severity != expect {
        return Err(format!("syslog severity {severity}, expected {expect}"));
    }
    Ok(())
}
