//! Budgets for opening incidents, kept on the observations' own clock so that `replay`
//! and the daemon open the same incidents from the same frames.

use crate::detect::Timestamp;

/// A token bucket on the observations' own clock (so replay and the daemon agree).
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    pub(super) tokens: f64,
    last: Timestamp,
}

impl Budget {
    pub(super) fn full(per_minute: u32, now: Timestamp) -> Budget {
        Budget {
            tokens: f64::from(per_minute),
            last: now,
        }
    }

    pub(super) fn refill(&mut self, per_minute: u32, now: Timestamp) {
        let secs = now.micros_since(self.last) as f64 / 1e6;
        if secs > 0.0 {
            let cap = f64::from(per_minute);
            self.tokens = (self.tokens + secs * cap / 60.0).min(cap);
            self.last = now;
        }
    }
}
