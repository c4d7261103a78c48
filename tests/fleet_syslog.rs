//! Syslog over TLS to a SIEM, against a receiver on 127.0.0.1 that the tests start: real
//! TLS (rustls, a CA made with rcgen), and a parser of RFC 5425 framing and RFC 5424
//! messages that refuses anything the RFCs do not allow (written here, not borrowed from
//! the code under test), whose JSON must carry the OCSF fields docs/fleet.md documents.
//! Incidents are written through the store's own API.

#[path = "support/pki.rs"]
mod pki;

use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aiwarden::fleet::{send_pending, Source, Target};
use aiwarden::incident::IncidentRecord;
use aiwarden::policy::{Baa, Mode, Tier, Verdict};
use aiwarden::store::Store;

/// A site name that needs every SD escape.
const SITE: &str = r#"Elm "North" [B]\2"#;

fn incident(i: i64) -> IncidentRecord {
    IncidentRecord {
        ts: 1_764_650_000_000_000 + i * 1_000_000,
        client_ip: format!("10.0.0.{}", 10 + i % 200).parse().expect("ip"),
        client_mac: Some("52:54:00:12:34:56".parse().expect("mac")),
        device: Some(format!("pc-{i}")),
        label: (i % 2 == 0).then(|| format!("Front desk {i}")),
        group: None,
        service: "chatgpt".into(),
        service_name: "ChatGPT".into(),
        category: Some("chat".into()),
        tier: Some(Tier::Consumer),
        verdict: if i % 3 == 0 {
            Verdict::Flag
        } else {
            Verdict::Block
        },
        mode: Mode::Enforce,
        how: "dns".parse().expect("how"),
        host: "chatgpt.com".into(),
        rule: "catalog/openai.toml:chatgpt".into(),
    }
}

fn append(db: &Path, range: std::ops::RangeInclusive<i64>) -> Vec<i64> {
    let mut store = Store::open(db).expect("store");
    let recs: Vec<_> = range.map(incident).collect();
    store.append_incidents(&recs).expect("append")
}

/// What the receiver does with a connection.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// Read every frame, answer the sender's close_notify with ours.
    Full,
    /// Read this many frames, then drop the connection without close_notify.
    DropAfter(usize),
}

/// One message the receiver accepted.
#[derive(Debug, Clone)]
struct Got {
    conn: usize,
    row: i64,
    hash: String,
    site: String,
    json: serde_json::Value,
}

struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Got>>>,
    conns: Arc<Mutex<usize>>,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    /// Listens on 127.0.0.1:0; connection i follows `plans[i]` (Full beyond the list).
    fn start(server: Arc<rustls::ServerConfig>, plans: Vec<Plan>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
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

    fn got(&self) -> Vec<Got> {
        self.got.lock().expect("lock").clone()
    }

    fn conns(&self) -> usize {
        *self.conns.lock().expect("lock")
    }

    /// Violations of RFC 5424/5425 or of the schema (TLS failures are the tests' to see).
    fn violations(&self) -> Vec<String> {
        self.errors
            .lock()
            .expect("lock")
            .iter()
            .filter(|e| e.starts_with("strict:"))
            .cloned()
            .collect()
    }
}

fn serve(
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
fn read_frame(r: &mut impl Read) -> Result<Option<Vec<u8>>, String> {
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
fn token<'a>(s: &'a [u8], max: usize, what: &str) -> Result<(&'a str, &'a [u8]), String> {
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
fn check_timestamp(t: &str) -> Result<(), String> {
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
fn sd_name(s: &[u8]) -> (usize, bool) {
    let n = s
        .iter()
        .take_while(|&&b| (33..=126).contains(&b) && !matches!(b, b'=' | b']' | b'"' | b' '))
        .count();
    (n, (1..=32).contains(&n))
}

/// Parses STRUCTURED-DATA strictly; returns the elements' params and what follows.
#[allow(clippy::type_complexity)]
fn structured(mut s: &[u8]) -> Result<(BTreeMap<String, BTreeMap<String, String>>, &[u8]), String> {
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
fn parse(m: &[u8]) -> Result<Got, String> {
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
fn check_ocsf(
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
        && text("/finding_info/uid") == Some(&format!("{site}:{row}"))
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

fn target(addr: SocketAddr, ca: &Path) -> Target {
    let mut t = Target::new(&addr.ip().to_string(), addr.port());
    t.ca_file = Some(ca.to_path_buf());
    t.batch = 10;
    t.timeout = Duration::from_secs(10);
    t.backoff = Duration::from_millis(10);
    t
}

fn baa(service: &str) -> Option<Baa> {
    (service == "chatgpt").then_some(Baa::EnterpriseOnly)
}

fn source<'a>(db: &'a Path, cursor: &'a Path) -> Source<'a> {
    Source {
        store: db,
        cursor,
        site: SITE,
        hostname: "aiwarden-elm",
        baa: &baa,
    }
}

/// Row id -> how many times it arrived.
fn tally(got: &[Got]) -> BTreeMap<i64, usize> {
    let mut m = BTreeMap::new();
    for g in got {
        *m.entry(g.row).or_default() += 1;
    }
    m
}

#[test]
fn every_incident_arrives_once_and_a_second_send_only_the_new_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("incidents.db");
    let cursor = dir.path().join("syslog.cursor");
    let ids = append(&db, 1..=25);
    // Rows that are not incidents in between: an ack is never sent.
    Store::open(&db)
        .expect("store")
        .ack(ids[3], 1_764_660_000_000_000, "Dr Rivera", "trained")
        .expect("ack");
    let pki = pki::pki(dir.path(), "syslog-ca", &["127.0.0.1"]);
    let rx = Receiver::start(pki.server.clone(), vec![]);
    let stop = AtomicBool::new(false);

    let report =
        send_pending(&source(&db, &cursor), &target(rx.addr, &pki.ca_file), &stop).expect("send");
    assert_eq!(rx.violations(), Vec::<String>::new());
    let got = rx.got();
    let counts = tally(&got);
    assert_eq!(
        counts.keys().copied().collect::<Vec<_>>(),
        ids,
        "every incident"
    );
    assert!(counts.values().all(|&n| n == 1), "exactly once: {counts:?}");
    assert_eq!(
        (report.sent, report.batches, report.connections),
        (25, 3, 3)
    );
    assert_eq!(report.cursor, *ids.last().expect("ids"));
    assert_eq!(
        std::fs::read_to_string(&cursor).expect("cursor").trim(),
        report.cursor.to_string()
    );
    // The copy can be checked against the chain: each hash is the store's for that row.
    let store = Store::open_read_only(&db).expect("store");
    let chained = store.incidents_after(0, 100).expect("feed");
    for g in &got {
        let c = chained.iter().find(|c| c.row.id == g.row).expect("row");
        assert_eq!(g.hash, c.hash);
        assert_eq!(g.site, SITE);
    }
    let first = got.iter().find(|g| g.row == ids[3]).expect("acked row");
    assert_eq!(first.json["unmapped"]["aiwarden"]["acknowledged"], true);
    assert_eq!(
        first.json["unmapped"]["aiwarden"]["service"]["baa"],
        "enterprise_only"
    );

    // Nothing new: nothing sent, no connection.
    let again =
        send_pending(&source(&db, &cursor), &target(rx.addr, &pki.ca_file), &stop).expect("send");
    assert_eq!((again.sent, again.connections), (0, 0));

    let new = append(&db, 26..=32);
    let report =
        send_pending(&source(&db, &cursor), &target(rx.addr, &pki.ca_file), &stop).expect("send");
    assert_eq!(report.sent, 7);
    let later: Vec<i64> = rx.got()[got.len()..].iter().map(|g| g.row).collect();
    assert_eq!(later, new, "only the new ones, in order");
    assert_eq!(rx.violations(), Vec::<String>::new());
}

#[test]
fn a_receiver_that_drops_mid_batch_gets_the_batch_again_with_no_gaps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("incidents.db");
    let cursor = dir.path().join("syslog.cursor");
    let ids = append(&db, 1..=30);
    let pki = pki::pki(dir.path(), "syslog-ca", &["127.0.0.1"]);
    // Batch 1 is confirmed; batch 2's first connection is dropped after 4 messages.
    let rx = Receiver::start(pki.server.clone(), vec![Plan::Full, Plan::DropAfter(4)]);
    let stop = AtomicBool::new(false);
    let report =
        send_pending(&source(&db, &cursor), &target(rx.addr, &pki.ca_file), &stop).expect("send");
    assert_eq!(rx.violations(), Vec::<String>::new());
    let got = rx.got();
    let counts = tally(&got);
    assert_eq!(counts.keys().copied().collect::<Vec<_>>(), ids, "no gaps");
    // The only duplicates possible are the messages of the batch that was not confirmed
    // (rows 11 to 20) that the receiver read before it dropped the connection: here the
    // first 4. Confirmed batches are never sent twice.
    let twice: Vec<i64> = counts
        .iter()
        .filter(|(_, &n)| n > 1)
        .map(|(&r, _)| r)
        .collect();
    assert_eq!(twice, ids[10..14].to_vec(), "{counts:?}");
    assert!(counts.values().all(|&n| n <= 2));
    assert!(got.iter().filter(|g| g.conn == 1).count() == 4);
    assert_eq!(
        (report.sent, report.batches, report.connections),
        (30, 3, 4)
    );
    assert_eq!(rx.conns(), 4);
    assert_eq!(report.cursor, 30);
}

#[test]
fn a_receiver_whose_certificate_is_not_trusted_is_refused_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("incidents.db");
    let cursor = dir.path().join("syslog.cursor");
    append(&db, 1..=3);
    let trusted = pki::pki(dir.path(), "trusted-ca", &["127.0.0.1"]);
    let other = pki::pki(dir.path(), "other-ca", &["127.0.0.1"]);
    let rx = Receiver::start(other.server.clone(), vec![]);
    let stop = AtomicBool::new(false);
    let e = send_pending(
        &source(&db, &cursor),
        &target(rx.addr, &trusted.ca_file),
        &stop,
    )
    .expect_err("refused");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("syslog to {}: send: ", rx.addr))
            && text.contains("invalid peer certificate")
            && text.contains("UnknownIssuer"),
        "{text}"
    );
    assert!(!text.contains("gave up"), "not retried: {text}");
    assert_eq!(rx.conns(), 1);
    assert!(rx.got().is_empty());
    assert!(!cursor.exists(), "the cursor does not move");
}

#[test]
fn the_strict_parser_refuses_what_the_rfcs_do_not_allow() {
    use aiwarden::fleet::syslog::{frame, message, Header, Severity};
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("incidents.db");
    append(&db, 1..=1);
    let store = Store::open_read_only(&db).expect("store");
    let inc = &store.incidents_after(0, 1).expect("feed")[0];
    let origin = aiwarden::fleet::ocsf::Origin {
        site: SITE,
        appliance: "box",
    };
    let json = aiwarden::fleet::ocsf::finding(inc, origin, None).to_string();
    let h = Header {
        facility: 16,
        hostname: "box".into(),
        procid: None,
    };
    let row = inc.row.id.to_string();
    let good = message(
        &h,
        Severity::Notice,
        inc.row.summary.record.ts,
        "incident",
        &[("site", SITE), ("row", &row), ("hash", &inc.hash)],
        &json,
    );
    parse(&good).expect("the sender's own message passes");
    let text = String::from_utf8(good.clone()).expect("utf8");
    let bad: Vec<(&str, String)> = vec![
        ("PRI", text.replacen("<133>", "<192>", 1)),
        ("PRI", text.replacen("<133>", "<0133>", 1)),
        ("VERSION", text.replacen(">1 ", ">2 ", 1)),
        ("timestamp", text.replacen(".000000Z", ".0000001Z", 1)),
        ("timestamp", text.replacen("T", " ", 1)),
        ("SD-ID", text.replacen("aiwarden@32473", "aiwarden@x", 1)),
        ("unescaped ]", text.replacen(r"[B\]", "[B]", 1)),
        ("BOM", text.replacen('\u{feff}', "", 1)),
        (
            "OCSF",
            text.replacen("\"class_uid\":2004", "\"class_uid\":4001", 1),
        ),
        (
            "OCSF",
            text.replacen(&format!("\"row_id\":{row}"), "\"row_id\":999", 1),
        ),
        ("syslog severity", text.replacen("<133>", "<132>", 1)),
    ];
    for (what, m) in bad {
        assert_ne!(m, text, "{what}: the case must change the message");
        assert!(parse(m.as_bytes()).is_err(), "{what} accepted: {m}");
    }
    // Framing: the length must match.
    let f = frame(&good);
    assert_eq!(read_frame(&mut &f[..]).expect("frame").expect("one"), good);
    let mut short = f.clone();
    short.pop();
    assert!(read_frame(&mut &short[..]).is_err());
    assert!(read_frame(&mut &b"0123 x"[..]).is_err());
    assert!(read_frame(&mut &b"12x"[..]).is_err());
    assert!(read_frame(&mut &b""[..]).expect("clean end").is_none());
}

#[test]
fn the_cli_sends_one_pass_with_the_catalogs_baa_and_a_client_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("incidents.db");
    let ids = append(&db, 1..=5);
    let (server, ca_file, client_cert, client_key) = mutual_tls(dir.path());
    let rx = Receiver::start(server, vec![]);
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_aiwarden"))
            .args([
                "fleet",
                "syslog-send",
                "--host",
                "127.0.0.1",
                "--hostname",
                "aiwarden-elm",
            ])
            .args([
                "--port",
                &rx.addr.port().to_string(),
                "--site",
                SITE,
                "--batch",
                "2",
            ])
            .arg("--store")
            .arg(&db)
            .arg("--ca-file")
            .arg(&ca_file)
            .args(extra)
            .output()
            .expect("runs")
    };
    // Without the client certificate the receiver refuses the session.
    // (TLS 1.3: the refusal is an alert after the handshake; the sender reports it, and
    // does not retry, whichever of its writes and reads meets it.)
    let out = run(&["--attempts", "3"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("aiwarden: syslog to 127.0.0.1:")
            && err.contains("received fatal alert: CertificateRequired")
            && !err.contains("gave up"),
        "{err}"
    );
    assert_eq!(rx.conns(), 1, "not retried");

    let cert = client_cert.to_str().expect("utf8");
    let key = client_key.to_str().expect("utf8");
    let out = run(&["--client-cert", cert, "--client-key", key]);
    assert!(out.status.success(), "{out:?}");
    let ids_last = ids.last().expect("ids");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("sent 5 incidents in 3 batches (3 connections); cursor {ids_last}\n")
    );
    assert_eq!(rx.violations(), Vec::<String>::new());
    let got = rx.got();
    assert_eq!(got.iter().map(|g| g.row).collect::<Vec<_>>(), ids);
    // chatgpt's BAA as the shipped catalog says.
    assert_eq!(
        got[0].json["unmapped"]["aiwarden"]["service"]["baa"],
        "enterprise_only"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("fleet-syslog.cursor")).expect("cursor"),
        format!("{ids_last}\n"),
        "the default cursor beside the store"
    );
    let out = run(&["--client-cert", cert, "--client-key", key]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("sent 0 incidents in 0 batches (0 connections); cursor {ids_last}\n")
    );
}

/// A server configuration that requires a client certificate from a CA made here, the
/// server's CA file, and a client certificate and key (PEM files) that CA signed.
fn mutual_tls(
    dir: &Path,
) -> (
    Arc<rustls::ServerConfig>,
    std::path::PathBuf,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "clients-ca");
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("key");
    let mut leaf = CertificateParams::new(vec!["aiwarden-elm".to_string()]).expect("params");
    leaf.distinguished_name
        .push(DnType::CommonName, "aiwarden-elm");
    let cert = leaf.signed_by(&key, &issuer).expect("signed");
    let cert_file = dir.join("client.pem");
    let key_file = dir.join("client.key");
    std::fs::write(&cert_file, cert.pem()).expect("write");
    std::fs::write(&key_file, key.serialize_pem()).expect("write");

    // The receiver: its own CA and certificate for 127.0.0.1, asking for a client's.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_cert.der().to_vec()))
        .expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("verifier");
    let skey = KeyPair::generate().expect("key");
    let s_ca_key = KeyPair::generate().expect("key");
    let mut s_ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    s_ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    s_ca.distinguished_name
        .push(DnType::CommonName, "receiver-ca");
    let s_ca_cert = s_ca.self_signed(&s_ca_key).expect("ca");
    let s_issuer = Issuer::new(s_ca, s_ca_key);
    let mut s_leaf = CertificateParams::new(Vec::<String>::new()).expect("params");
    s_leaf
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().expect("ip")));
    let s_cert = s_leaf.signed_by(&skey, &s_issuer).expect("signed");
    let ca_file = dir.join("receiver-ca.pem");
    std::fs::write(&ca_file, s_ca_cert.pem()).expect("write");
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(s_cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(skey.serialize_der())),
        )
        .expect("server");
    (Arc::new(server), ca_file, cert_file, key_file)
}
