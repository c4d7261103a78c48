//! Event rows and the console's accounts. An `event` row is a chained record of something a
//! person or aiwarden did that is not an incident, an ack or an unblock: a console login or
//! failed login, a report downloaded or written, a user added, the rules loaded. The `users`
//! table is not chained (a password change rewrites its row), but every change to it appends
//! an event row in the same transaction, so the chain says who changed which account when.

use std::path::Path;

use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};
use serde::Serialize;

use super::chain::{chain_head, event_values, insert_log};
use super::write::guard;
use super::{Context, Store};
use crate::{Error, Result};

/// The longest `detail` an event row takes: a detail quotes what someone typed (a user name
/// at a failed login), and nobody may fill the chain with megabytes through a login form.
pub const MAX_EVENT_DETAIL: usize = 1024;

/// An `event` row: a console or system action, chained like every row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRow {
    /// Its row id in the log.
    pub id: i64,
    /// When, unix microseconds.
    pub ts: i64,
    /// What happened: `login`, `login_failed`, `logout`, `report_download`, `user_add`,
    /// `user_remove`, `password_set`, `rules_loaded`, `report_written`, `report_sent`...
    pub event: String,
    /// Who did it: a console user, `cli:<unix user>`, or `aiwarden` for the daemon.
    pub actor: String,
    /// What it was done to (a file, a user name, a client address), free text.
    pub detail: String,
}

/// A console account's role. Each includes what the one before it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads the dashboard, incidents (device labels only, unless configured) and the rules.
    Viewer,
    /// Also acknowledges incidents and downloads reports.
    Reviewer,
    /// Everything a reviewer does (accounts are managed with `aiwarden user`).
    Admin,
}

impl Role {
    /// The stored and printed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Role, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "reviewer" => Ok(Role::Reviewer),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "role {other:?}: expected viewer, reviewer or admin"
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// A console account.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct UserRow {
    /// The login name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The password's argon2id hash as a PHC string (`$argon2id$v=19$...`).
    #[serde(skip)]
    pub password_hash: String,
    /// When it was added, unix microseconds.
    pub created: i64,
    /// A disabled account cannot log in.
    pub disabled: bool,
}

impl std::fmt::Debug for UserRow {
    // The hash stays out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("created", &self.created)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// Rows of the log by kind, events by name and acks by who, for `aiwarden verify`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RowCounts {
    /// `(kind, rows)`: `incident`, `ack`, `unblock`, `break`, `event`.
    pub kinds: Vec<(String, u64)>,
    /// `(event, rows)` of the event rows.
    pub events: Vec<(String, u64)>,
    /// `(who, acks)`.
    pub acks_by: Vec<(String, u64)>,
}

/// A user name: 1 to 64 of letters, digits and `.`, `_`, `-`, `@` (no spaces or
/// look-alikes to confuse a reader of the chain).
pub fn check_user_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "user name {name:?}: use 1 to 64 letters, digits, '.', '_', '-' or '@'"
        )))
    }
}

fn check_event(event: &str, actor: &str, detail: &str) -> Result<()> {
    let name_ok = !event.is_empty()
        && event.len() <= 64
        && event
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !name_ok {
        return Err(Error::Usage(format!(
            "event {event:?}: use 1 to 64 lowercase letters, digits or '_'"
        )));
    }
    if actor.trim().is_empty() || actor.len() > 256 {
        return Err(Error::Usage(
            "an event needs an actor (at most 256 bytes)".into(),
        ));
    }
    if detail.len() > MAX_EVENT_DETAIL {
        return Err(Error::Usage(format!(
            "an event's detail is at most {MAX_EVENT_DETAIL} bytes"
        )));
    }
    Ok(())
}

fn check_hash(hash: &str) -> Result<()> {
    if hash.starts_with("$argon2id$") && hash.len() < 512 {
        Ok(())
    } else {
        Err(Error::Usage(
            "a password hash must be an argon2id PHC string".into(),
        ))
    }
}

/// Appends an event row chained after the newest in `tx` and returns its id.
fn append_event(
    path: &Path,
    tx: &Transaction<'_>,
    ts: i64,
    event: &str,
    actor: &str,
    detail: &str,
) -> Result<i64> {
    let (id, prev) = chain_head(tx).ctx(path, "read the chain head")?;
    let row = event_values(id, ts, event, actor, detail);
    insert_log(tx, &row, &prev).ctx(path, "append event")?;
    Ok(id)
}

impl Store {
    /// Runs `f` in one immediate transaction on a file that is still this store's and a
    /// chain that still holds the head this process last saw, commits, and rewrites the
    /// head file.
    pub(super) fn chained<T>(
        &mut self,
        f: impl FnOnce(&Path, &Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        self.check_file()?;
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(&path, "begin")?;
        guard(&path, &tx, self.known)?;
        let out = f(&path, &tx)?;
        tx.commit().ctx(&path, "commit")?;
        self.after_commit();
        Ok(out)
    }

    /// Records at `ts` (unix microseconds) that `actor` did `event` (lowercase, `_`) to
    /// `detail` (at most [`MAX_EVENT_DETAIL`] bytes) as a chained `event` row, and returns
    /// its id.
    pub fn record_event(&mut self, ts: i64, event: &str, actor: &str, detail: &str) -> Result<i64> {
        check_event(event, actor, detail)?;
        self.chained(|path, tx| append_event(path, tx, ts, event, actor, detail))
    }

    /// The newest `event` row named `event`, if any.
    pub fn last_event(&self, event: &str) -> Result<Option<EventRow>> {
        if self.version < 4 {
            return Ok(None);
        }
        self.conn
            .query_row(
                "SELECT id, ts, event, actor, detail FROM log
                 WHERE kind = 'event' AND event = ?1 ORDER BY id DESC LIMIT 1",
                [event],
                |r| {
                    Ok(EventRow {
                        id: r.get(0)?,
                        ts: r.get(1)?,
                        event: r.get(2)?,
                        actor: r.get(3)?,
                        detail: r.get(4)?,
                    })
                },
            )
            .optional()
            .ctx(&self.path, "read events")
    }

    /// Event rows with `since <= ts < until`, oldest first. None in a store from before
    /// events (schema 1 to 3).
    pub fn events(&self, since: i64, until: i64) -> Result<Vec<EventRow>> {
        if self.version < 4 {
            return Ok(Vec::new());
        }
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, ts, event, actor, detail FROM log
                 WHERE kind = 'event' AND ts >= ?1 AND ts < ?2 ORDER BY ts, id",
            )
            .ctx(&self.path, "read events")?;
        let rows = st
            .query_map(params![since, until], |r| {
                Ok(EventRow {
                    id: r.get(0)?,
                    ts: r.get(1)?,
                    event: r.get(2)?,
                    actor: r.get(3)?,
                    detail: r.get(4)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .ctx(&self.path, "read events")?;
        Ok(rows)
    }

    /// Adds the account `name` with `role` and `password_hash` (an argon2id PHC string),
    /// recording `user_add` by `actor` at `ts` in the chain. Refuses a name in use.
    pub fn add_user(
        &mut self,
        ts: i64,
        name: &str,
        role: Role,
        password_hash: &str,
        actor: &str,
    ) -> Result<()> {
        check_user_name(name)?;
        check_hash(password_hash)?;
        let detail = format!("{name} ({role})");
        check_event("user_add", actor, &detail)?;
        self.chained(|path, tx| {
            let exists = tx
                .query_row("SELECT 1 FROM users WHERE name = ?1", [name], |_| Ok(()))
                .optional()
                .ctx(path, "read users")?
                .is_some();
            if exists {
                return Err(Error::Usage(format!("user {name} already exists")));
            }
            tx.execute(
                "INSERT INTO users (name, role, password, created, disabled)
                 VALUES (?1, ?2, ?3, ?4, 0)",
                params![name, role.as_str(), password_hash, ts],
            )
            .ctx(path, "add user")?;
            append_event(path, tx, ts, "user_add", actor, &detail)?;
            Ok(())
        })
    }

    /// Removes the account `name`, recording `user_remove` by `actor` at `ts`.
    pub fn remove_user(&mut self, ts: i64, name: &str, actor: &str) -> Result<()> {
        check_event("user_remove", actor, name)?;
        self.chained(|path, tx| {
            let n = tx
                .execute("DELETE FROM users WHERE name = ?1", [name])
                .ctx(path, "remove user")?;
            if n == 0 {
                return Err(Error::Usage(format!("no user {name:?}")));
            }
            append_event(path, tx, ts, "user_remove", actor, name)?;
            Ok(())
        })
    }

    /// Sets the password of `name` to `password_hash`, recording `password_set` by `actor`
    /// at `ts`.
    pub fn set_password(
        &mut self,
        ts: i64,
        name: &str,
        password_hash: &str,
        actor: &str,
    ) -> Result<()> {
        check_hash(password_hash)?;
        check_event("password_set", actor, name)?;
        self.chained(|path, tx| {
            let n = tx
                .execute(
                    "UPDATE users SET password = ?2 WHERE name = ?1",
                    params![name, password_hash],
                )
                .ctx(path, "set password")?;
            if n == 0 {
                return Err(Error::Usage(format!("no user {name:?}")));
            }
            append_event(path, tx, ts, "password_set", actor, name)?;
            Ok(())
        })
    }

    /// Every account, by name. None in a store from before accounts (schema 1 to 3).
    pub fn users(&self) -> Result<Vec<UserRow>> {
        self.read_users(None)
    }

    /// The account `name`, if there is one.
    pub fn user(&self, name: &str) -> Result<Option<UserRow>> {
        Ok(self.read_users(Some(name))?.pop())
    }

    fn read_users(&self, name: Option<&str>) -> Result<Vec<UserRow>> {
        if self.version < 4 {
            return Ok(Vec::new());
        }
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT name, role, password, created, disabled FROM users
                 WHERE ?1 IS NULL OR name = ?1 ORDER BY name",
            )
            .ctx(&self.path, "read users")?;
        let rows = st
            .query_map([name], |r| {
                let role: String = r.get(1)?;
                Ok(UserRow {
                    name: r.get(0)?,
                    role: role.parse().map_err(|e: String| {
                        rusqlite::Error::FromSqlConversionFailure(
                            1,
                            rusqlite::types::Type::Text,
                            e.into(),
                        )
                    })?,
                    password_hash: r.get(2)?,
                    created: r.get(3)?,
                    disabled: r.get::<_, i64>(4)? != 0,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .ctx(&self.path, "read users")?;
        Ok(rows)
    }

    /// Rows of the log by kind, event rows by event, acks by who (`aiwarden verify`).
    pub fn row_counts(&self) -> Result<RowCounts> {
        let pairs = |sql: &str| -> Result<Vec<(String, u64)>> {
            let mut st = self.conn.prepare(sql).ctx(&self.path, "count rows")?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .ctx(&self.path, "count rows")?;
            Ok(rows
                .into_iter()
                .map(|(k, n)| (k, super::unclamp(n)))
                .collect())
        };
        // One snapshot for the three counts.
        let _tx = self.conn.unchecked_transaction().ctx(&self.path, "begin")?;
        Ok(RowCounts {
            kinds: pairs("SELECT kind, count(*) FROM log GROUP BY kind ORDER BY kind")?,
            events: if self.version >= 4 {
                pairs(
                    "SELECT event, count(*) FROM log WHERE kind = 'event'
                     GROUP BY event ORDER BY event",
                )?
            } else {
                Vec::new()
            },
            acks_by: pairs(
                "SELECT ack_by, count(*) FROM log WHERE kind = 'ack'
                 GROUP BY ack_by ORDER BY ack_by",
            )?,
        })
    }
}
