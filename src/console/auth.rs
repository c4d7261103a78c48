//! The console's accounts, sessions and login limits. Pure but for randomness: times are
//! passed in as [`Instant`]s, so expiry and rate limits are tested without sleeping.
//!
//! - Passwords are hashed with argon2id (the `argon2` crate's defaults: OWASP's minimum of
//!   19 MiB, 2 passes) into a PHC string the store keeps.
//! - A session is a random 256-bit id (the cookie) in a bounded map, with an idle and an
//!   absolute expiry; each carries its own random CSRF token.
//! - Failed logins are counted per user name and per client address in a sliding window;
//!   past the limit, further attempts are refused before a password is checked.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use ring::rand::{SecureRandom, SystemRandom};

use crate::store::Role;

/// The longest password taken (argon2 hashes any length, but a megabyte password is a
/// denial of service, not a password).
pub const MAX_PASSWORD: usize = 1024;

/// The shortest password `aiwarden user` sets.
pub const MIN_PASSWORD: usize = 10;

/// `n` random bytes as lowercase hex.
pub(super) fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    // The system's generator failing is not something a web request can recover from;
    // an all-zero token would be guessable, so the process must not go on.
    #[allow(clippy::expect_used)]
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random number generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hashes `password` with argon2id and a random salt into a PHC string.
pub fn hash_password(password: &str) -> crate::Result<String> {
    if password.len() > MAX_PASSWORD {
        return Err(crate::Error::Usage(format!(
            "a password is at most {MAX_PASSWORD} bytes"
        )));
    }
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| crate::Error::Usage("no randomness for a password salt".into()))?;
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| crate::Error::Usage(format!("cannot hash the password: {e}")))
}

/// True when `password` matches `phc`, an argon2 PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD {
        return false;
    }
    PasswordVerifier::<str>::verify_password(&Argon2::default(), password.as_bytes(), phc).is_ok()
}

/// A hash no password matches, checked for unknown user names so a login for a name that
/// does not exist costs what one for a real name does (no timing oracle for names).
pub(super) fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&random_hex(16)).unwrap_or_default())
}

/// Compares two strings in time that depends on their lengths only.
pub(super) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A logged-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Session {
    /// The account.
    pub(super) user: String,
    /// Its role at login.
    pub(super) role: Role,
    /// The token every form of this session carries.
    pub(super) csrf: String,
    /// When it began.
    pub(super) created: Instant,
    /// When it was last used.
    pub(super) used: Instant,
    /// When its account was last read from the store (a removed or disabled account, or
    /// a changed role, ends the session at the next check).
    pub(super) checked: Instant,
}

/// The sessions in force: at most `max`, each ending after `idle` unused or `absolute`
/// after login.
#[derive(Debug)]
pub(super) struct Sessions {
    map: HashMap<String, Session>,
    max: usize,
    idle: Duration,
    absolute: Duration,
}

impl Sessions {
    /// An empty map.
    pub(super) fn new(max: usize, idle: Duration, absolute: Duration) -> Sessions {
        Sessions {
            map: HashMap::new(),
            max: max.max(1),
            idle,
            absolute,
        }
    }

    /// Starts a session for `user` at `now` and returns its id (64 hex digits). When the map
    /// is full, expired sessions go first, then the least recently used.
    pub(super) fn create(&mut self, user: &str, role: Role, now: Instant) -> (String, Session) {
        if self.map.len() >= self.max {
            self.sweep(now);
        }
        while self.map.len() >= self.max {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.map.remove(&k),
                None => break,
            };
        }
        let id = random_hex(32);
        let s = Session {
            user: user.to_string(),
            role,
            csrf: random_hex(32),
            created: now,
            used: now,
            checked: now,
        };
        self.map.insert(id.clone(), s.clone());
        (id, s)
    }

    /// The session `id` at `now`, marked used; `None` (and forgotten) once it expired.
    pub(super) fn get(&mut self, id: &str, now: Instant) -> Option<Session> {
        let s = self.map.get_mut(id)?;
        let idle = now.saturating_duration_since(s.used);
        let age = now.saturating_duration_since(s.created);
        if idle >= self.idle || age >= self.absolute {
            self.map.remove(id);
            return None;
        }
        s.used = now;
        Some(s.clone())
    }

    /// Ends session `id`; returns it if it was there.
    pub(super) fn remove(&mut self, id: &str) -> Option<Session> {
        self.map.remove(id)
    }

    /// Marks session `id` as checked against the store at `now`.
    pub(super) fn checked(&mut self, id: &str, now: Instant) {
        if let Some(s) = self.map.get_mut(id) {
            s.checked = now;
        }
    }

    /// Forgets every expired session.
    pub(super) fn sweep(&mut self, now: Instant) {
        let (idle, absolute) = (self.idle, self.absolute);
        self.map.retain(|_, s| {
            now.saturating_duration_since(s.used) < idle
                && now.saturating_duration_since(s.created) < absolute
        });
    }

    /// Sessions held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// No session is held.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Who a login attempt is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Addr(IpAddr),
}

/// Failed logins per user name and per client address in a sliding window. Bounded: at
/// most `max_keys` names and addresses are remembered (the stalest go first), each with at
/// most `limit` failure times.
#[derive(Debug)]
pub(super) struct LoginLimiter {
    failures: HashMap<Key, VecDeque<Instant>>,
    limit: usize,
    window: Duration,
    max_keys: usize,
}

impl LoginLimiter {
    /// `limit` failures per `window`.
    pub(super) fn new(limit: u32, window: Duration) -> LoginLimiter {
        LoginLimiter {
            failures: HashMap::new(),
            limit: limit.max(1) as usize,
            window,
            max_keys: 10_000,
        }
    }

    /// When `user` from `addr` may try again: `None` now, else how long until the oldest
    /// failure counted leaves the window.
    pub(super) fn check(&mut self, user: &str, addr: IpAddr, now: Instant) -> Option<Duration> {
        let keys = [Key::User(user.to_ascii_lowercase()), Key::Addr(addr)];
        let mut wait: Option<Duration> = None;
        for k in keys {
            if let Some(q) = self.failures.get_mut(&k) {
                while q
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
                {
                    q.pop_front();
                }
                if q.len() >= self.limit {
                    if let Some(first) = q.front() {
                        let w = self.window - now.saturating_duration_since(*first);
                        wait = Some(wait.map_or(w, |x| x.max(w)));
                    }
                }
            }
        }
        wait
    }

    /// Counts a failed login of `user` from `addr` at `now`.
    pub(super) fn failed(&mut self, user: &str, addr: IpAddr, now: Instant) {
        if self.failures.len() >= self.max_keys {
            let window = self.window;
            self.failures.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < window)
            });
            if self.failures.len() >= self.max_keys {
                let stalest = self
                    .failures
                    .iter()
                    .min_by_key(|(_, q)| q.back().copied())
                    .map(|(k, _)| k.clone());
                if let Some(k) = stalest {
                    self.failures.remove(&k);
                }
            }
        }
        for k in [Key::User(user.to_ascii_lowercase()), Key::Addr(addr)] {
            let q = self.failures.entry(k).or_default();
            q.push_back(now);
            while q.len() > self.limit {
                q.pop_front();
            }
        }
    }

    /// A successful login of `user`: its name's failures are forgotten (the address's
    /// stay: one good password does not buy another ten guesses at other names).
    pub(super) fn succeeded(&mut self, user: &str) {
        self.failures.remove(&Key::User(user.to_ascii_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("x", "not a phc string"));
        assert_ne!(
            h,
            hash_password("correct horse battery").expect("hash"),
            "salted"
        );
        assert!(!verify_password("anything", decoy_hash()));
        assert!(hash_password(&"x".repeat(MAX_PASSWORD + 1)).is_err());
    }

    #[test]
    fn sessions_expire_when_idle_and_at_their_age() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut map = Sessions::new(3, s(60), s(300));
        let (a, sa) = map.create("ada", Role::Reviewer, t0);
        assert_eq!(a.len(), 64);
        assert_eq!(sa.csrf.len(), 64);
        assert_ne!(a, sa.csrf);
        assert!(map.get(&a, t0 + s(59)).is_some(), "used at 59 s");
        assert!(map.get(&a, t0 + s(118)).is_some(), "idle 59 s again");
        assert!(map.get(&a, t0 + s(178)).is_none(), "idle 60 s: gone");
        assert!(map.get(&a, t0 + s(179)).is_none(), "and forgotten");
        let (b, _) = map.create("bob", Role::Viewer, t0);
        for i in 1..=5 {
            assert!(map.get(&b, t0 + s(50 * i)).is_some());
        }
        assert!(map.get(&b, t0 + s(300)).is_none(), "absolute expiry");
        assert!(map.get("nonsense", t0).is_none());
    }

    #[test]
    fn sessions_are_bounded_least_recently_used_first() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut map = Sessions::new(2, s(60), s(300));
        let (a, _) = map.create("a", Role::Viewer, t0);
        let (b, _) = map.create("b", Role::Viewer, t0 + s(1));
        assert!(map.get(&a, t0 + s(2)).is_some());
        let (c, _) = map.create("c", Role::Viewer, t0 + s(3));
        assert_eq!(map.len(), 2);
        assert!(
            map.get(&b, t0 + s(4)).is_none(),
            "b was least recently used"
        );
        assert!(map.get(&a, t0 + s(4)).is_some() && map.get(&c, t0 + s(4)).is_some());
        assert!(map.remove(&a).is_some() && map.get(&a, t0 + s(5)).is_none());
        assert!(map.remove(&c).is_some() && map.is_empty());
    }

    #[test]
    fn logins_are_limited_per_name_and_per_address() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut l = LoginLimiter::new(3, s(900));
        let a: IpAddr = "127.0.0.1".parse().expect("ip");
        let b: IpAddr = "127.0.0.2".parse().expect("ip");
        for i in 0..3 {
            assert_eq!(l.check("ada", a, t0 + s(i)), None);
            l.failed("ada", a, t0 + s(i));
        }
        assert_eq!(
            l.check("ADA", b, t0 + s(10)),
            Some(s(890)),
            "the name, any address"
        );
        assert_eq!(
            l.check("bob", a, t0 + s(10)),
            Some(s(890)),
            "the address, any name"
        );
        assert_eq!(l.check("bob", b, t0 + s(10)), None);
        assert_eq!(
            l.check("ada", b, t0 + s(899)),
            Some(s(1)),
            "a second until the oldest leaves the window"
        );
        assert_eq!(l.check("ada", b, t0 + s(900)), None, "then two are left");
        l.failed("carl", b, t0);
        l.succeeded("carl");
        assert_eq!(l.check("carl", a, t0 + s(903)), None);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd") && !same("abc", "ab") && !same("", "a"));
    }
}
