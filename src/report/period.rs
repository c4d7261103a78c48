//! The period a report covers, in the clinic's time zone: an ISO week (`2026-W48`, `this`,
//! `last`) or a range of local dates, turned into the UTC microsecond bounds the store is
//! queried with. Days and hours in a report are local; the store stays UTC.

use jiff::civil::{Date, ISOWeekDate, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::Serialize;

/// A half-open span of local dates `[first, last]` and its UTC bounds `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Period {
    /// What it is called in titles and file names: `2026-W48` or `2026-11-01_2026-11-30`.
    pub label: String,
    /// First local date, `YYYY-MM-DD`.
    pub first: String,
    /// Last local date, inclusive.
    pub last: String,
    /// Start, unix microseconds (local midnight of `first`).
    pub from: i64,
    /// End, unix microseconds, exclusive (local midnight after `last`).
    pub to: i64,
    /// The IANA time zone name.
    pub timezone: String,
    #[serde(skip)]
    days: Vec<Date>,
    #[serde(skip)]
    week: bool,
}

/// Which period was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    /// An ISO week: `2026-W48`, `this` or `last`.
    Week(String),
    /// Local dates, both inclusive.
    Range {
        /// `YYYY-MM-DD`.
        from: String,
        /// `YYYY-MM-DD`.
        to: String,
    },
}

/// The longest range a report covers: a year and a day.
const MAX_DAYS: usize = 367;

impl Period {
    /// The period `which` names in `tz`, `now` (unix microseconds) deciding `this` and
    /// `last`. Errors are messages for the command line.
    pub fn resolve(which: &Which, tz: &TimeZone, now: i64) -> Result<Period, String> {
        match which {
            Which::Week(w) => {
                let today = tz.to_datetime(timestamp(now)?).date();
                let monday = match w.as_str() {
                    "this" => monday_of(today),
                    "last" => monday_of(today)
                        .checked_sub(7.days())
                        .map_err(|e| e.to_string())?,
                    _ => parse_week(w)?,
                };
                let sunday = monday.checked_add(6.days()).map_err(|e| e.to_string())?;
                Period::between(monday, sunday, tz, true)
            }
            Which::Range { from, to } => {
                let first = parse_date(from)?;
                let last = parse_date(to)?;
                if last < first {
                    return Err(format!("--to {to} is before --from {from}"));
                }
                Period::between(first, last, tz, false)
            }
        }
    }

    fn between(first: Date, last: Date, tz: &TimeZone, week: bool) -> Result<Period, String> {
        let mut days = Vec::new();
        let mut d = first;
        while d <= last {
            if days.len() == MAX_DAYS {
                return Err(format!("a report covers at most {MAX_DAYS} days"));
            }
            days.push(d);
            d = d.tomorrow().map_err(|e| e.to_string())?;
        }
        let from = midnight(first, tz)?;
        let to = midnight(d, tz)?;
        let label = if week {
            let w = first.iso_week_date();
            format!("{:04}-W{:02}", w.year(), w.week())
        } else {
            format!("{first}_{last}")
        };
        Ok(Period {
            label,
            first: first.to_string(),
            last: last.to_string(),
            from,
            to,
            timezone: tz.iana_name().unwrap_or("UTC").to_string(),
            days,
            week,
        })
    }

    /// The period of the same length just before this one (the week before a week).
    pub fn previous(&self, tz: &TimeZone) -> Result<Period, String> {
        let n = i64::try_from(self.days.len()).map_err(|e| e.to_string())?;
        let first = self.days[0]
            .checked_sub(n.days())
            .map_err(|e| e.to_string())?;
        let last = self.days[0].yesterday().map_err(|e| e.to_string())?;
        Period::between(first, last, tz, self.week)
    }

    /// The local dates, in order.
    pub fn days(&self) -> impl Iterator<Item = String> + '_ {
        self.days.iter().map(ToString::to_string)
    }

    /// How many days.
    pub fn len(&self) -> usize {
        self.days.len()
    }

    /// Never true: a period has at least one day.
    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
    }

    /// The UTC dates the period touches, for the per-UTC-day usage table: `(first, last)`.
    pub fn utc_days(&self) -> (String, String) {
        let a = Timestamp::from_microsecond(self.from)
            .map_or(Date::MIN, |t| t.to_zoned_datetime(TimeZone::UTC).date());
        let b = Timestamp::from_microsecond(self.to - 1)
            .map_or(Date::MAX, |t| t.to_zoned_datetime(TimeZone::UTC).date());
        (a.to_string(), b.to_string())
    }
}

/// A time zone by IANA name (`America/Chicago`), or an error naming it.
pub fn zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|e| format!("unknown time zone {name:?}: {e}"))
}

/// Day index in the period and local hour of `ts` (unix microseconds), or `None` outside.
pub fn slot(period: &Period, tz: &TimeZone, ts: i64) -> Option<(usize, u8)> {
    if ts < period.from || ts >= period.to {
        return None;
    }
    let dt = tz.to_datetime(Timestamp::from_microsecond(ts).ok()?);
    let day = period.days.binary_search(&dt.date()).ok()?;
    Some((day, u8::try_from(dt.hour()).ok()?))
}

/// `ts` (unix microseconds) as local `YYYY-MM-DD HH:MM`.
pub fn local(tz: &TimeZone, ts: i64) -> String {
    match Timestamp::from_microsecond(ts) {
        Ok(t) => tz.to_datetime(t).strftime("%Y-%m-%d %H:%M").to_string(),
        Err(_) => String::from("?"),
    }
}

fn timestamp(micros: i64) -> Result<Timestamp, String> {
    Timestamp::from_microsecond(micros).map_err(|e| e.to_string())
}

fn monday_of(d: Date) -> Date {
    let back = i64::from(d.weekday().to_monday_zero_offset());
    d.checked_sub(back.days()).unwrap_or(d)
}

fn midnight(d: Date, tz: &TimeZone) -> Result<i64, String> {
    // The zone's first instant of the day (a DST change at midnight moves it).
    let z = d.to_zoned_datetime(tz.clone()).map_err(|e| e.to_string())?;
    let start = z.start_of_day().map_err(|e| e.to_string())?;
    Ok(start.timestamp().as_microsecond())
}

fn parse_date(s: &str) -> Result<Date, String> {
    s.parse::<Date>()
        .map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD)"))
}

fn parse_week(s: &str) -> Result<Date, String> {
    let bad = || format!("{s:?} is not an ISO week (2026-W48, this or last)");
    let (y, w) = s.split_once("-W").ok_or_else(bad)?;
    let year: i16 = y.parse().map_err(|_| bad())?;
    let week: i8 = w.parse().map_err(|_| bad())?;
    let iso =
        ISOWeekDate::new(year, week, Weekday::Monday).map_err(|e| format!("{}: {e}", bad()))?;
    Ok(iso.date())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tz() -> TimeZone {
        zone("America/New_York").expect("zone")
    }

    fn micros(s: &str) -> i64 {
        let t: Timestamp = s.parse().expect("timestamp");
        t.as_microsecond()
    }

    #[test]
    fn an_iso_week_is_monday_to_sunday_local() {
        let p = Period::resolve(&Which::Week("2026-W48".into()), &tz(), 0).expect("week");
        assert_eq!(p.first, "2026-11-23");
        assert_eq!(p.last, "2026-11-29");
        // New York is UTC-5 in late November.
        assert_eq!(p.from, micros("2026-11-23T05:00:00Z"));
        assert_eq!(p.to, micros("2026-11-30T05:00:00Z"));
        assert_eq!(p.label, "2026-W48");
        assert_eq!(p.len(), 7);
    }

    #[test]
    fn last_week_is_the_week_before_now_in_the_clinics_zone() {
        // Monday 2026-11-30 03:00 UTC is still Sunday evening in New York: "last" week
        // there is W47, not W48.
        let now = micros("2026-11-30T03:00:00Z");
        let p = Period::resolve(&Which::Week("last".into()), &tz(), now).expect("last");
        assert_eq!(p.label, "2026-W47");
        let this = Period::resolve(&Which::Week("this".into()), &tz(), now).expect("this");
        assert_eq!(this.label, "2026-W48");
        assert_eq!(this.previous(&tz()).expect("prev"), p);
    }

    #[test]
    fn a_week_when_clocks_go_back_is_169_hours_long() {
        // 2026-11-01 is the first Sunday of November: clocks go back in New York.
        let p = Period::resolve(&Which::Week("2026-W44".into()), &tz(), 0).expect("week");
        assert_eq!(p.last, "2026-11-01");
        assert_eq!(p.to - p.from, 169 * 3_600_000_000);
    }

    #[test]
    fn slots_are_local_days_and_hours() {
        let p = Period::resolve(&Which::Week("2026-W48".into()), &tz(), 0).expect("week");
        // 14:30 UTC on Tuesday is 09:30 in New York.
        assert_eq!(
            slot(&p, &tz(), micros("2026-11-24T14:30:00Z")),
            Some((1, 9))
        );
        assert_eq!(slot(&p, &tz(), p.to), None);
        assert_eq!(slot(&p, &tz(), p.from), Some((0, 0)));
        assert_eq!(
            local(&tz(), micros("2026-11-24T14:30:00Z")),
            "2026-11-24 09:30"
        );
    }

    #[test]
    fn bad_input_says_what_was_expected() {
        let tz = tz();
        let err = |w: Which| Period::resolve(&w, &tz, 0).expect_err("bad");
        assert!(err(Which::Week("2026-48".into())).contains("ISO week"));
        assert!(err(Which::Week("2026-W54".into())).contains("ISO week"));
        let range = |a: &str, b: &str| Which::Range {
            from: a.into(),
            to: b.into(),
        };
        assert!(err(range("2026-11-30", "2026-11-01")).contains("before"));
        assert!(err(range("yesterday", "2026-11-01")).contains("not a date"));
        assert!(err(range("2020-01-01", "2026-11-01")).contains("at most"));
        assert!(zone("Mars/Olympus")
            .expect_err("zone")
            .contains("Mars/Olympus"));
    }

    #[test]
    fn utc_days_cover_the_local_period() {
        let p = Period::resolve(&Which::Week("2026-W48".into()), &tz(), 0).expect("week");
        assert_eq!(p.utc_days(), ("2026-11-23".into(), "2026-11-30".into()));
    }
}
