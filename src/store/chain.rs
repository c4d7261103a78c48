//! The hash chain over the `log` table (see the store's module docs for the encoding):
//! building rows, appending them chained, and walking the chain to verify it.

use rusqlite::types::{ToSql, Value, ValueRef};
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::incident::IncidentRecord;

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

/// What [`Store::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Rows checked and found intact before the first broken one (all of them when intact).
    pub rows: u64,
    /// The last row retention purged; the check starts from its hash.
    pub anchor: Option<i64>,
    /// The first row where the chain breaks.
    pub first_broken: Option<Broken>,
}

impl VerifyReport {
    /// True when the whole chain checks out.
    pub fn is_intact(&self) -> bool {
        self.first_broken.is_none()
    }
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

/// Inserts one log row chained to `prev` and returns its hash.
pub(super) fn insert_log(
    conn: &Connection,
    row: &[Value],
    prev: &[u8; 32],
) -> rusqlite::Result<[u8; 32]> {
    let hash = row_hash(prev, row.iter().map(ValueRef::from));
    let sql = format!(
        "INSERT INTO log ({}, prev_hash, hash) VALUES ({})",
        LOG_COLUMNS.join(", "),
        (1..=LOG_COLUMNS.len() + 2)
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

/// Walks the chain from the anchor (or the start) up to `upto` (or the end).
pub(super) fn check_chain(conn: &Connection, upto: Option<i64>) -> rusqlite::Result<VerifyReport> {
    let anchor = read_anchor(conn)?;
    let (mut expect, mut prev) = match anchor {
        Some((id, hash)) => (id + 1, hash),
        None => (1, GENESIS),
    };
    let mut prev_name = match anchor {
        Some((id, _)) => format!("the retention anchor's hash (row {id})"),
        None => "the chain's start (32 zero bytes)".to_string(),
    };
    let sql = format!(
        "SELECT {}, prev_hash, hash FROM log WHERE id <= ?1 ORDER BY id",
        LOG_COLUMNS.join(", ")
    );
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query([upto.unwrap_or(i64::MAX)])?;
    let n = LOG_COLUMNS.len();
    let mut report = VerifyReport {
        rows: 0,
        anchor: anchor.map(|(id, _)| id),
        first_broken: None,
    };
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let broken = |reason: String| Some(Broken { id, reason });
        if id < expect {
            report.first_broken = broken(format!(
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
            report.first_broken =
                broken(format!("ids not consecutive: {missing} missing (deleted?)"));
            break;
        }
        let stored_prev = r.get_ref(n)?;
        if stored_prev.as_blob().ok() != Some(prev.as_slice()) {
            report.first_broken = broken(format!(
                "prev_hash does not match {prev_name} (row deleted or reordered?)"
            ));
            break;
        }
        let values = (0..n)
            .map(|i| r.get_ref(i))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let computed = row_hash(&prev, values.into_iter());
        let stored: Option<[u8; 32]> = r
            .get_ref(n + 1)?
            .as_blob()
            .ok()
            .and_then(|b| b.try_into().ok());
        if stored != Some(computed) {
            report.first_broken =
                broken("hash does not match the row's contents (edited?)".to_string());
            break;
        }
        prev = computed;
        prev_name = format!("row {id}'s hash");
        expect = id + 1;
        report.rows += 1;
    }
    Ok(report)
}

/// Lowercase hex, for printed chain heads.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
