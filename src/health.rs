//! What `/healthz` and the systemd watchdog report. Each part of the daemon (the resolver,
//! detection, the store, each capture interface) sets its own state here; nobody else
//! decides for it.
//!
//! The resolver is what every clinic device depends on, so health is graded: a part that
//! is down but that DNS does not need (the store, a capture interface) makes the daemon
//! `degraded`, which still answers 200 and still feeds the watchdog: restarting would
//! take DNS down to fix something DNS does not need. Only a critical part down (the
//! resolver, or detection, which everything recorded passes through) makes it `down`:
//! 503, and the watchdog is starved so systemd restarts the service.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

/// One part's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Working.
    Ok,
    /// Working in part, or not working but not needed for DNS: the reason.
    Degraded(String),
    /// Not working: the reason.
    Down(String),
}

/// The whole daemon's grade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grade {
    /// Every part is working.
    Ok,
    /// DNS and detection work; something else does not.
    Degraded,
    /// A critical part does not work.
    Down,
}

impl Grade {
    /// `ok`, `degraded`, `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            Grade::Ok => "ok",
            Grade::Degraded => "degraded",
            Grade::Down => "down",
        }
    }
}

/// Parts whose failure makes the daemon `down` rather than `degraded`.
const CRITICAL: [&str; 2] = ["resolver", "detection"];

/// The states of every part, shared by the parts and the health listener.
#[derive(Debug, Default)]
pub struct Health {
    parts: Mutex<BTreeMap<String, State>>,
}

/// A snapshot: the grade and each part's state, for `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The whole daemon's grade.
    pub grade: Grade,
    /// Every part, by name.
    pub parts: Vec<(String, State)>,
}

impl Health {
    /// No parts yet: `ok`.
    pub fn new() -> Health {
        Health::default()
    }

    /// Sets `part`'s state (`resolver`, `detection`, `store`, `capture eth1`, ...).
    pub fn set(&self, part: &str, state: State) {
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        match parts.get_mut(part) {
            Some(s) => *s = state,
            None => {
                parts.insert(part.to_string(), state);
            }
        }
    }

    /// Forgets `part` (a capture interface no longer configured).
    pub fn remove(&self, part: &str) {
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        parts.remove(part);
    }

    /// The grade now and every part's state.
    pub fn report(&self) -> Report {
        let parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        let mut grade = Grade::Ok;
        for (name, state) in parts.iter() {
            let g = match state {
                State::Ok => Grade::Ok,
                State::Degraded(_) => Grade::Degraded,
                State::Down(_) if CRITICAL.contains(&name.as_str()) => Grade::Down,
                State::Down(_) => Grade::Degraded,
            };
            grade = grade.max(g);
        }
        Report {
            grade,
            parts: parts.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }
}

impl fmt::Display for Report {
    /// `degraded` then one line per part: `store: down: disk full (12 incidents spooled)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.grade.as_str())?;
        for (name, state) in &self.parts {
            match state {
                State::Ok => writeln!(f, "{name}: ok")?,
                State::Degraded(why) => writeln!(f, "{name}: degraded: {why}")?,
                State::Down(why) => writeln!(f, "{name}: down: {why}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_critical_parts_take_the_daemon_down() {
        let h = Health::new();
        assert_eq!(h.report().grade, Grade::Ok);
        h.set("resolver", State::Ok);
        h.set("store", State::Down("disk full".into()));
        assert_eq!(h.report().grade, Grade::Degraded);
        h.set("capture eth1", State::Degraded("reopening".into()));
        assert_eq!(h.report().grade, Grade::Degraded);
        h.set("store", State::Ok);
        h.remove("capture eth1");
        assert_eq!(h.report().grade, Grade::Ok);
        h.set("resolver", State::Down("thread ended".into()));
        let r = h.report();
        assert_eq!(r.grade, Grade::Down);
        assert_eq!(
            r.to_string(),
            "down\nresolver: down: thread ended\nstore: ok\n"
        );
    }
}
