//! Capture time. The core never reads the clock: every function that needs "now" is
//! handed a [`Timestamp`], so replays give the same answer on every run.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, as libpcap records them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// From whole seconds and microseconds (a pcap record header).
    pub fn from_secs_micros(secs: i64, micros: i64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000).saturating_add(micros))
    }

    /// From microseconds since the epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// Microseconds elapsed since `earlier` (0 if `earlier` is later: captures can step back).
    pub fn micros_since(self, earlier: Timestamp) -> u64 {
        u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0)
    }

    /// This time plus `micros`.
    pub fn plus_micros(self, micros: u64) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(micros).unwrap_or(i64::MAX)),
        )
    }

    /// The time as a `SystemTime` (for formatting at the edges only).
    pub fn to_system_time(self) -> SystemTime {
        if self.0 >= 0 {
            UNIX_EPOCH + Duration::from_micros(self.0.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_micros(self.0.unsigned_abs())
        }
    }

    /// RFC 3339 in UTC with microseconds, e.g. `2026-11-24T08:15:02.123456Z`. A time
    /// outside years 1970-9999 (a corrupt capture header) is written as `@` and the
    /// microseconds since the epoch, never a panic.
    pub fn rfc3339(self) -> String {
        use std::fmt::Write;
        const MAX_MICROS: i64 = 253_402_300_799_999_999; // 9999-12-31T23:59:59.999999Z
        if !(0..=MAX_MICROS).contains(&self.0) {
            return format!("@{}", self.0);
        }
        let mut out = String::with_capacity(27);
        match write!(
            out,
            "{}",
            humantime::format_rfc3339_micros(self.to_system_time())
        ) {
            Ok(()) => out,
            Err(_) => format!("@{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_with_micros() {
        let t = Timestamp::from_secs_micros(1_700_000_000, 42);
        assert_eq!(t.rfc3339(), "2023-11-14T22:13:20.000042Z");
    }

    #[test]
    fn out_of_range_times_do_not_panic() {
        assert_eq!(Timestamp::from_micros(-5).rfc3339(), "@-5");
        assert_eq!(
            Timestamp::from_micros(i64::MAX).rfc3339(),
            format!("@{}", i64::MAX)
        );
    }

    #[test]
    fn elapsed_never_negative() {
        let a = Timestamp::from_micros(10);
        let b = Timestamp::from_micros(5);
        assert_eq!(b.micros_since(a), 0);
        assert_eq!(a.micros_since(b), 5);
    }
}
