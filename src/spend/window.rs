//! Spend windows: the UTC calendar day and the UTC calendar month, their periods, where
//! they end, and money in whole micro-dollars.
//!
//! Calendar arithmetic is `jiff`'s (already a dependency for provider rate-limit resets);
//! wall time is the system clock (`SystemTime`), the only wall clock the gateway reads.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use std::fmt;

/// A spend window's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    /// The UTC calendar day.
    Day,
    /// The UTC calendar month.
    Month,
}

/// Both windows, day first.
pub const WINDOWS: [Window; 2] = [Window::Day, Window::Month];

impl Window {
    /// `day` or `month` (metric label, query value).
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Day => "day",
            Window::Month => "month",
        }
    }

    /// The window named `day` or `month`.
    pub fn parse(s: &str) -> Option<Window> {
        match s {
            "day" => Some(Window::Day),
            "month" => Some(Window::Month),
            _ => None,
        }
    }
}

/// One concrete window: a UTC day or a UTC month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Period {
    pub window: Window,
    /// The first day of the period (the day itself, or the first of the month).
    first: Date,
}

impl Period {
    /// The period of `window` containing the instant `unix_ms` (ms since 1970, UTC).
    pub fn containing(window: Window, unix_ms: i64) -> Period {
        let day = date_of(unix_ms);
        let first = match window {
            Window::Day => day,
            Window::Month => day.first_of_month(),
        };
        Period { window, first }
    }

    /// The period of `window` named by `at`: `YYYY-MM-DD` (the day, or the month holding
    /// it), or `YYYY-MM` for a month. `None` when `at` is neither.
    pub fn parse(window: Window, at: &str) -> Option<Period> {
        let b = at.as_bytes();
        let digits =
            |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
        let dash = |i: usize| b.get(i) == Some(&b'-');
        let month_part = digits(0..4) && dash(4) && digits(5..7);
        let shape_month = b.len() == 7 && month_part;
        let shape_day = b.len() == 10 && month_part && dash(7) && digits(8..10);
        let date = if shape_day {
            at.parse::<Date>().ok()?
        } else if shape_month && window == Window::Month {
            format!("{at}-01").parse::<Date>().ok()?
        } else {
            return None;
        };
        let first = match window {
            Window::Day => date,
            Window::Month => date.first_of_month(),
        };
        Some(Period { window, first })
    }

    /// Start of the period, ms since 1970 (UTC midnight).
    pub fn start_ms(&self) -> i64 {
        midnight_ms(self.first)
    }

    /// End of the period (exclusive): the next UTC midnight, or the first of next month.
    pub fn end_ms(&self) -> i64 {
        let next = match self.window {
            Window::Day => self.first.tomorrow(),
            Window::Month => self.first.last_of_month().tomorrow(),
        };
        next.map_or(i64::MAX, midnight_ms)
    }

    /// Whole seconds from `now_ms` until the period ends, at least 1 (a `Retry-After`).
    pub fn seconds_left(&self, now_ms: i64) -> u64 {
        let ms = self.end_ms().saturating_sub(now_ms).max(0);
        u64::try_from(ms.saturating_add(999) / 1000)
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

impl fmt::Display for Period {
    /// `2026-12-07` for a day, `2026-12` for a month.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.first;
        match self.window {
            Window::Day => write!(f, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day()),
            Window::Month => write!(f, "{:04}-{:02}", d.year(), d.month()),
        }
    }
}

/// The UTC calendar date of `unix_ms` (clamped to the range `jiff` supports).
fn date_of(unix_ms: i64) -> Date {
    let ts = Timestamp::from_millisecond(unix_ms).unwrap_or(if unix_ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    TimeZone::UTC.to_datetime(ts).date()
}

/// Ms since 1970 of `date`'s UTC midnight.
fn midnight_ms(date: Date) -> i64 {
    date.to_zoned(TimeZone::UTC)
        .map_or(i64::MAX, |z| z.timestamp().as_millisecond())
}

/// Now, in ms since 1970 (UTC), from the system clock.
pub fn now_unix_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

/// Whole micro-dollars of `usd`, rounded to the nearest; negative or not finite → 0.
pub fn micros(usd: f64) -> u64 {
    if usd.is_finite() && usd > 0.0 {
        // `as` saturates above u64::MAX.
        (usd * 1e6).round() as u64
    } else {
        0
    }
}

/// USD of `micros` micro-dollars.
pub fn usd(micros: u64) -> f64 {
    micros as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn days_are_utc_calendar_days() {
        let p = Period::containing(Window::Day, ms("2026-12-07T23:59:59.999Z"));
        assert_eq!(p.to_string(), "2026-12-07");
        assert_eq!(p.start_ms(), ms("2026-12-07T00:00:00Z"));
        assert_eq!(p.end_ms(), ms("2026-12-08T00:00:00Z"));
        let next = Period::containing(Window::Day, ms("2026-12-08T00:00:00Z"));
        assert_eq!(next.to_string(), "2026-12-08");
        assert_eq!(p.seconds_left(ms("2026-12-07T23:59:59.999Z")), 1);
        assert_eq!(p.seconds_left(ms("2026-12-07T23:00:00Z")), 3600);
        assert_eq!(
            p.seconds_left(ms("2026-12-07T22:59:59.500Z")),
            3601,
            "rounded up"
        );
        assert_eq!(p.seconds_left(ms("2026-12-09T00:00:00Z")), 1, "never 0");
        let before_1970 = Period::containing(Window::Day, -1);
        assert_eq!(before_1970.to_string(), "1969-12-31");
    }

    #[test]
    fn months_are_utc_calendar_months() {
        let p = Period::containing(Window::Month, ms("2026-12-31T23:59:59Z"));
        assert_eq!(p.to_string(), "2026-12");
        assert_eq!(p.start_ms(), ms("2026-12-01T00:00:00Z"));
        assert_eq!(p.end_ms(), ms("2027-01-01T00:00:00Z"), "year rolls over");
        let feb = Period::containing(Window::Month, ms("2028-02-10T12:00:00Z"));
        assert_eq!(feb.end_ms(), ms("2028-03-01T00:00:00Z"), "leap February");
        assert_eq!(feb.seconds_left(ms("2028-02-29T00:00:00Z")), 86_400);
        assert_eq!(
            Period::containing(Window::Month, ms("2027-01-01T00:00:00Z")).to_string(),
            "2027-01"
        );
    }

    #[test]
    fn periods_parse_from_at() {
        let d = Period::parse(Window::Day, "2026-12-07").unwrap();
        assert_eq!(
            d,
            Period::containing(Window::Day, ms("2026-12-07T10:00:00Z"))
        );
        let m = Period::parse(Window::Month, "2026-12").unwrap();
        assert_eq!(m.to_string(), "2026-12");
        assert_eq!(Period::parse(Window::Month, "2026-12-07"), Some(m));
        for bad in [
            "2026-12",
            "2026-13-01",
            "2026-02-30",
            "26-12-07",
            "2026-12-7",
            "",
            "today",
        ] {
            assert_eq!(Period::parse(Window::Day, bad), None, "{bad}");
        }
        for bad in ["2026-13", "2026-1", "2026", "x026-12"] {
            assert_eq!(Period::parse(Window::Month, bad), None, "{bad}");
        }
    }

    #[test]
    fn micro_dollars_round_to_the_nearest() {
        assert_eq!(micros(0.0000004), 0);
        assert_eq!(micros(0.0000006), 1);
        assert_eq!(micros(1.2345678), 1_234_568);
        assert_eq!(micros(1.2345671), 1_234_567);
        assert_eq!(micros(12.5), 12_500_000);
        assert_eq!(micros(-1.0), 0);
        assert_eq!(micros(f64::NAN), 0);
        assert_eq!(micros(f64::INFINITY), 0);
        assert_eq!(usd(1_500_000), 1.5);
        // budgets in cents survive the round trip exactly
        assert_eq!(usd(micros(0.07)), 0.07);
    }
}
