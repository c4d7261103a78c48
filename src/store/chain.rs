//! The hash chain over the `log` table (see the store's module docs for the encoding):
//! building rows, appending them chained, and walking the chain to verify it.

use rusqlite::types::{ToSql, Value, ValueRef};
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::incident::IncidentRecord;
use crate::policy::pattern::Pattern;
use crate::policy::unblock::Device;

/// A row of the chain by id and hash.
pub(super) type Link = (i64, [u8; 32]);

/// The `prev_hash` of the first row when nothing was ever purged.
pub(super) const GENESIS: [u8; 32] = [0; 32];

/// The chained columns of `log`, in hashing order. `prev_hash` and `hash` follow them.
pub(super) const LOG_COLUMNS: [&str; 20] = [
    "id",
    "kind",
    "ts",
    "client_ip",
    "client_mac",
    "device",
    "label",
    "client_group",
    "service",
    "service_name",
    "category",
    "tier",
    "verdict",
    "mode",
    "how",
    "host",
    "rule",
    "incident_id",
    "ack_by",
    "ack_note",
];

/// The columns only a `break` row has, hashed after [`LOG_COLUMNS`] for that kind alone.
pub(super) const BREAK_COLUMNS: [&str; 4] = [
    "break_reason",
    "break_prev_id",
    "break_prev_hash",
    "break_file",
];

/// The columns only an `unblock` row has, hashed after [`LOG_COLUMNS`] for that kind alone
/// (after the 20, not after the break columns: each kind hashes its own).
pub(super) const UNBLOCK_COLUMNS: [&str; 1] = ["unblock_until"];

/// The columns only an `event` row has (schema 4), hashed after [`LOG_COLUMNS`] for that
/// kind alone.
pub(super) const EVENT_COLUMNS: [&str; 3] = ["event", "actor", "detail"];

/// The kind-specific columns hashed after [`LOG_COLUMNS`] for a row of `kind`.
pub(super) fn extra_columns(kind: &str) -> &'static [&'static str] {
    match kind {
        "break" => &BREAK_COLUMNS,
        "unblock" => &UNBLOCK_COLUMNS,
        "event" => &EVENT_COLUMNS,
        _ => &[],
    }
}

/// What a walk of the chain found (the database alone; the head file is checked apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Walk {
    /// Rows checked and found intact before the first broken one.
    pub(super) rows: u64,
    /// The last row retention purged; the walk starts from its hash.
    pub(super) anchor: Option<i64>,
    /// The first row where the chain breaks.
    pub(super) first_broken: Option<Broken>,
    /// The break rows walked, oldest first.
    pub(super) breaks: Vec<BreakRow>,
}

/// A `break` row: where a chain began again after the store before it was set aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakRow {
    /// Its id (1 for a chain that began with it).
    pub id: i64,
    /// When, unix microseconds.
    pub ts: i64,
    /// Why the chain before it ended (`corrupt: file is not a database`, ...).
    pub reason: String,
    /// The newest row of the chain before, when it was known.
    pub prev: Option<Head>,
    /// The file the store before was set aside as (a name in the same directory).
    pub file: Option<String>,
}

/// Where and why the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broken {
    /// The row at fault (for a gap: the first row after it).
    pub id: i64,
    /// What is wrong, for the operator.
    pub reason: String,
}

/// The newest row of the chain, for a report to print: a printed head shows later if rows
/// were cut off the end or the chain was rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Head {
    /// Its id.
    pub id: i64,
    /// Its hash, lowercase hex.
    pub hash: String,
}

/// The values of an incident row, in [`LOG_COLUMNS`] order.
/// Each typed field is stored as the text aiwarden prints for it (`block`, `enforce`,
/// `tls,unresolved`, `52:54:00:ab:cd:ef`), so the chain can be recomputed from the rows
/// alone.
pub(super) fn incident_values(id: i64, inc: &IncidentRecord) -> Vec<Value> {
    let text = |s: &str| Value::Text(s.to_string());
    let opt = |s: &Option<String>| s.as_deref().map_or(Value::Null, text);
    vec![
        Value::Integer(id),
        text("incident"),
        Value::Integer(inc.ts),
        Value::Text(inc.client_ip.to_string()),
        inc.client_mac
            .map_or(Value::Null, |m| Value::Text(m.to_string())),
        opt(&inc.device),
        opt(&inc.label),
        opt(&inc.group),
        text(&inc.service),
        text(&inc.service_name),
        opt(&inc.category),
        inc.tier.map_or(Value::Null, |t| text(t.as_str())),
        text(inc.verdict.as_str()),
        text(inc.mode.as_str()),
        Value::Text(inc.how.to_string()),
        text(&inc.host),
        text(&inc.rule),
        Value::Null,
        Value::Null,
        Value::Null,
    ]
}

/// The values of a break row: [`LOG_COLUMNS`] then [`BREAK_COLUMNS`].
pub(super) fn break_values(
    id: i64,
    ts: i64,
    reason: &str,
    prev: Option<(i64, [u8; 32])>,
    file: Option<&str>,
) -> Vec<Value> {
    let mut row = vec![
        Value::Integer(id),
        Value::Text("break".into()),
        Value::Integer(ts),
    ];
    row.resize(LOG_COLUMNS.len(), Value::Null);
    row.extend([
        Value::Text(reason.into()),
        prev.map_or(Value::Null, |(id, _)| Value::Integer(id)),
        prev.map_or(Value::Null, |(_, h)| Value::Blob(h.to_vec())),
        file.map_or(Value::Null, |f| Value::Text(f.into())),
    ]);
    row
}

/// The values of an ack row, in [`LOG_COLUMNS`] order.
pub(super) fn ack_values(id: i64, incident_id: i64, ts: i64, by: &str, note: &str) -> Vec<Value> {
    let mut row = vec![
        Value::Integer(id),
        Value::Text("ack".into()),
        Value::Integer(ts),
    ];
    row.resize(LOG_COLUMNS.len() - 3, Value::Null);
    row.extend([
        Value::Integer(incident_id),
        Value::Text(by.into()),
        Value::Text(note.into()),
    ]);
    row
}

/// The values of an unblock row: [`LOG_COLUMNS`] then [`UNBLOCK_COLUMNS`]. The device goes
/// in the column that fits it: `client_mac`, `client_ip` or `device` (a name).
pub(super) fn unblock_values(id: i64, u: &UnblockEntry<'_>) -> Vec<Value> {
    let text = |s: &str| Value::Text(s.to_string());
    let (ip, mac, name) = match u.device {
        Device::Ip(a) => (text(&a.to_string()), Value::Null, Value::Null),
        Device::Mac(m) => (Value::Null, text(&m.to_string()), Value::Null),
        Device::Name(n) => (Value::Null, Value::Null, text(n)),
    };
    let mut row = vec![
        Value::Integer(id),
        text("unblock"),
        Value::Integer(u.ts),
        ip,
        mac,
        name,
    ];
    row.resize(15, Value::Null);
    row.push(u.host.map_or(Value::Null, |p| text(&p.display())));
    row.extend([Value::Null, Value::Null, text(u.by), text(u.note)]);
    debug_assert_eq!(row.len(), LOG_COLUMNS.len());
    row.push(Value::Integer(u.until));
    row
}

/// The values of an event row: [`LOG_COLUMNS`] (only `id`, `kind` and `ts` set) then
/// [`EVENT_COLUMNS`].
pub(super) fn event_values(id: i64, ts: i64, event: &str, actor: &str, detail: &str) -> Vec<Value> {
    let mut row = vec![
        Value::Integer(id),
        Value::Text("event".into()),
        Value::Integer(ts),
    ];
    row.resize(LOG_COLUMNS.len(), Value::Null);
    row.extend([
        Value::Text(event.into()),
        Value::Text(actor.into()),
        Value::Text(detail.into()),
    ]);
    row
}

/// What an unblock row records (see [`crate::policy::unblock::Unblock`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct UnblockEntry<'a> {
    pub(super) ts: i64,
    pub(super) device: &'a Device,
    pub(super) host: Option<&'a Pattern>,
    pub(super) by: &'a str,
    pub(super) note: &'a str,
    pub(super) until: i64,
}

/// The next id and the hash it chains to: after the newest row, else after the anchor, else
/// the start.
pub(super) fn chain_head(conn: &Connection) -> rusqlite::Result<(i64, [u8; 32])> {
    let last = conn
        .query_row(
            "SELECT id, hash FROM log ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, [u8; 32]>(1)?)),
        )
        .optional()?;
    Ok(match last.or(read_anchor(conn)?) {
        Some((id, hash)) => (id + 1, hash),
        None => (1, GENESIS),
    })
}

pub(super) fn read_anchor(conn: &Connection) -> rusqlite::Result<Option<(i64, [u8; 32])>> {
    conn.query_row("SELECT last_id, last_hash FROM anchor", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .optional()
}

/// Inserts one log row chained to `prev` and returns its hash. `row` holds the
/// [`LOG_COLUMNS`], and after them the kind's own ([`extra_columns`]).
pub(super) fn insert_log(
    conn: &Connection,
    row: &[Value],
    prev: &[u8; 32],
) -> rusqlite::Result<[u8; 32]> {
    let hash = row_hash(prev, row.iter().map(ValueRef::from));
    let mut cols: Vec<&str> = LOG_COLUMNS.to_vec();
    if let Some(Value::Text(kind)) = row.get(1) {
        cols.extend(extra_columns(kind));
    }
    if cols.len() != row.len() {
        return Err(rusqlite::Error::InvalidParameterCount(
            row.len(),
            cols.len(),
        ));
    }
    let sql = format!(
        "INSERT INTO log ({}, prev_hash, hash) VALUES ({})",
        cols.join(", "),
        (1..=cols.len() + 2)
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut st = conn.prepare_cached(&sql)?;
    let mut args: Vec<&dyn ToSql> = row.iter().map(|v| v as &dyn ToSql).collect();
    args.push(prev);
    args.push(&hash);
    st.execute(args.as_slice())?;
    Ok(hash)
}

/// SHA-256 of `prev` and the canonical encoding of a row (see the module docs).
pub(super) fn row_hash<'a>(
    prev: &[u8; 32],
    values: impl Iterator<Item = ValueRef<'a>>,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    for v in values {
        match v {
            ValueRef::Null => h.update([0]),
            ValueRef::Integer(i) => {
                h.update([1]);
                h.update(i.to_be_bytes());
            }
            ValueRef::Text(t) => {
                h.update([2]);
                h.update((t.len() as u64).to_be_bytes());
                h.update(t);
            }
            ValueRef::Blob(b) => {
                h.update([3]);
                h.update((b.len() as u64).to_be_bytes());
                h.update(b);
            }
            ValueRef::Real(f) => {
                h.update([4]);
                h.update(f.to_bits().to_be_bytes());
            }
        }
    }
    h.finalize().into()
}

/// Walks the chain from the anchor (or the start) up to `upto` (or the end). `version` is
/// the schema's: version 1 has no break columns, version 2 no unblock column, version 3 no
/// event columns.
pub(super) fn check_chain(
    conn: &Connection,
    version: i32,
    upto: Option<i64>,
) -> rusqlite::Result<Walk> {
    let anchor = read_anchor(conn)?;
    let (mut expect, mut prev) = match anchor {
        Some((id, hash)) => (id + 1, hash),
        None => (1, GENESIS),
    };
    let mut prev_name = match anchor {
        Some((id, _)) => format!("the retention anchor's hash (row {id})"),
        None => "the chain's start (32 zero bytes)".to_string(),
    };
    let or_null = |cols: &[&str], since: i32| {
        if version >= since {
            cols.join(", ")
        } else {
            vec!["NULL"; cols.len()].join(", ")
        }
    };
    let sql = format!(
        "SELECT {}, {}, {}, {}, prev_hash, hash FROM log WHERE id <= ?1 ORDER BY id",
        LOG_COLUMNS.join(", "),
        or_null(&BREAK_COLUMNS, 2),
        or_null(&UNBLOCK_COLUMNS, 3),
        or_null(&EVENT_COLUMNS, 4),
    );
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query([upto.unwrap_or(i64::MAX)])?;
    // Column ranges: the chained 20, the break columns, the unblock columns, the event
    // columns; then prev_hash and hash.
    let n = LOG_COLUMNS.len();
    let nb = n + BREAK_COLUMNS.len();
    let nu = nb + UNBLOCK_COLUMNS.len();
    let ne = nu + EVENT_COLUMNS.len();
    let mut walk = Walk {
        rows: 0,
        anchor: anchor.map(|(id, _)| id),
        first_broken: None,
        breaks: Vec::new(),
    };
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let broken = |reason: String| Some(Broken { id, reason });
        if id < expect {
            walk.first_broken = broken(format!(
                "row is at or before the retention anchor (row {}): purge undone or anchor edited?",
                expect - 1
            ));
            break;
        }
        if id > expect {
            let missing = if id == expect + 1 {
                expect.to_string()
            } else {
                format!("{expect} to {}", id - 1)
            };
            walk.first_broken =
                broken(format!("ids not consecutive: {missing} missing (deleted?)"));
            break;
        }
        let stored_prev = r.get_ref(ne)?;
        if stored_prev.as_blob().ok() != Some(prev.as_slice()) {
            walk.first_broken = broken(format!(
                "prev_hash does not match {prev_name} (row deleted or reordered?)"
            ));
            break;
        }
        let kind = r.get_ref(1)?.as_str().ok();
        let is_break = kind == Some("break");
        let is_unblock = kind == Some("unblock");
        let is_event = kind == Some("event");
        let set = |range: std::ops::Range<usize>| -> rusqlite::Result<bool> {
            for i in range {
                if r.get_ref(i)? != ValueRef::Null {
                    return Ok(true);
                }
            }
            Ok(false)
        };
        if !is_break && set(n..nb)? {
            walk.first_broken = broken("break columns set on a row that is not a break".into());
            break;
        }
        if !is_unblock && set(nb..nu)? {
            walk.first_broken =
                broken("unblock columns set on a row that is not an unblock".into());
            break;
        }
        if !is_event && set(nu..ne)? {
            walk.first_broken = broken("event columns set on a row that is not an event".into());
            break;
        }
        let extra = if is_break {
            n..nb
        } else if is_unblock {
            nb..nu
        } else if is_event {
            nu..ne
        } else {
            n..n
        };
        let values = (0..n)
            .chain(extra)
            .map(|i| r.get_ref(i))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let computed = row_hash(&prev, values.into_iter());
        let stored: Option<[u8; 32]> = r
            .get_ref(ne + 1)?
            .as_blob()
            .ok()
            .and_then(|b| b.try_into().ok());
        if stored != Some(computed) {
            walk.first_broken =
                broken("hash does not match the row's contents (edited?)".to_string());
            break;
        }
        if is_break {
            walk.breaks.push(BreakRow {
                id,
                ts: r.get(2)?,
                reason: r.get::<_, Option<String>>(n)?.unwrap_or_default(),
                prev: match (
                    r.get::<_, Option<i64>>(n + 1)?,
                    r.get_ref(n + 2)?.as_blob().ok(),
                ) {
                    (Some(id), Some(h)) => Some(Head { id, hash: hex(h) }),
                    _ => None,
                },
                file: r.get(n + 3)?,
            });
        }
        prev = computed;
        prev_name = format!("row {id}'s hash");
        expect = id + 1;
        walk.rows += 1;
    }
    Ok(walk)
}

/// The newest row of the chain and the retention anchor: `(id, hash)` of the last row, or
/// of the anchor when every row was purged, or `None` for a chain never written.
pub(super) fn tip(conn: &Connection) -> rusqlite::Result<(Option<Link>, i64)> {
    let last = conn
        .query_row(
            "SELECT id, hash FROM log ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, [u8; 32]>(1)?)),
        )
        .optional()?;
    let anchor = read_anchor(conn)?;
    Ok((last.or(anchor), anchor.map_or(0, |(id, _)| id)))
}

/// The hash of row `id`, or the anchor's when `id` is the anchor's row.
pub(super) fn hash_at(conn: &Connection, id: i64) -> rusqlite::Result<Option<[u8; 32]>> {
    let row = conn
        .query_row("SELECT hash FROM log WHERE id = ?1", [id], |r| {
            r.get::<_, [u8; 32]>(0)
        })
        .optional()?;
    Ok(row.or(read_anchor(conn)?.filter(|(a, _)| *a == id).map(|(_, h)| h)))
}

/// Lowercase hex, for printed chain heads.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
