//! Civil dates in the proleptic Gregorian calendar, UTC, as pure arithmetic: day numbers since
//! 1970-01-01 ↔ (year, month, day), weekdays, and the `referenceDate`/`referenceYear`
//! [`Params`] that time-dependent lenses read.
//!
//! The engine reads no clock: whoever does I/O (the command line, the server, the client)
//! reads it and passes the seconds in, and all of them derive the parameters here, so a
//! document translates the same way on every side on the same day.
//!
//! The conversions are Howard Hinnant's `days_from_civil` / `civil_from_days`
//! (<https://howardhinnant.github.io/date_algorithms.html>), exact for every `i64` day number
//! whose year fits the arithmetic (far beyond any date a document holds).

use serde_json::Value;

use crate::plan::Params;

/// Seconds in a civil day (UTC has no leap seconds in this arithmetic, as in Unix time).
pub const SECONDS_PER_DAY: i64 = 86_400;

/// Days from 1970-01-01 to the date `year-month-day` (negative before it). `month` is 1–12 and
/// `day` 1–31; a day past the month's end counts on into the next month.
///
/// ```
/// use mutatis_lens::calendar::days_from_civil;
/// assert_eq!(days_from_civil(1970, 1, 1), 0);
/// assert_eq!(days_from_civil(2000, 3, 1) - days_from_civil(2000, 2, 28), 2);
/// ```
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Years start in March, so the leap day is the last day of the (shifted) year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The number of days in `month` (1–12) of `year` in the proleptic Gregorian calendar; `None`
/// for a month that does not exist.
///
/// ```
/// use mutatis_lens::calendar::days_in_month;
/// assert_eq!(days_in_month(2024, 2), Some(29));
/// assert_eq!(days_in_month(2100, 2), Some(28));
/// assert_eq!(days_in_month(2026, 13), None);
/// ```
pub fn days_in_month(year: i64, month: u32) -> Option<u32> {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => Some(31),
        4 | 6 | 9 | 11 => Some(30),
        2 if leap => Some(29),
        2 => Some(28),
        _ => None,
    }
}

/// Whether `year-month-day` is a date of the calendar (`2026-02-31` is not: where a date comes
/// from outside, check it with this before [`days_from_civil`], which would count on into
/// March).
///
/// ```
/// use mutatis_lens::calendar::is_date;
/// assert!(is_date(2024, 2, 29));
/// assert!(!is_date(2026, 2, 31));
/// assert!(!is_date(2026, 4, 0));
/// ```
pub fn is_date(year: i64, month: u32, day: u32) -> bool {
    days_in_month(year, month).is_some_and(|days| (1..=days).contains(&day))
}

/// The date (year, month 1–12, day 1–31) of a day number since 1970-01-01: the inverse of
/// [`days_from_civil`].
///
/// ```
/// use mutatis_lens::calendar::civil_from_days;
/// assert_eq!(civil_from_days(0), (1970, 1, 1));
/// assert_eq!(civil_from_days(-1), (1969, 12, 31));
/// ```
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // In range by construction: day 1–31, month 1–12.
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The weekday of a day number since 1970-01-01: 0 = Sunday … 6 = Saturday (1970-01-01 was a
/// Thursday, 4).
///
/// ```
/// use mutatis_lens::calendar::weekday;
/// assert_eq!(weekday(0), 4);
/// ```
pub fn weekday(days: i64) -> u32 {
    // `rem_euclid(7)` is 0–6, so the conversion cannot fail.
    u32::try_from((days + 4).rem_euclid(7)).unwrap_or(0)
}

/// The day number and the seconds into that day of a Unix time (seconds since 1970-01-01
/// 00:00 UTC); times before the epoch fall on earlier days, never on a negative second.
pub fn split_unix(unix_seconds: i64) -> (i64, i64) {
    (
        unix_seconds.div_euclid(SECONDS_PER_DAY),
        unix_seconds.rem_euclid(SECONDS_PER_DAY),
    )
}

/// The translation parameters of a reference date: `referenceDate` (`YYYY-MM-DD`) and
/// `referenceYear` (an integer).
///
/// ```
/// use mutatis_lens::calendar::date_params;
/// let p = date_params(2024, 2, 29);
/// assert_eq!(p["referenceDate"], "2024-02-29");
/// assert_eq!(p["referenceYear"], 2024);
/// ```
pub fn date_params(year: i64, month: u32, day: u32) -> Params {
    let mut params = Params::new();
    params.insert(
        "referenceDate".into(),
        Value::String(format!("{year:04}-{month:02}-{day:02}")),
    );
    params.insert("referenceYear".into(), Value::from(year));
    params
}

/// The translation parameters of the UTC day that holds `unix_seconds`: what "today" means to
/// a lens when the caller read the clock.
///
/// ```
/// use mutatis_lens::calendar::reference_params;
/// let p = reference_params(951_782_400); // 2000-02-29T00:00:00Z
/// assert_eq!(p["referenceDate"], "2000-02-29");
/// assert_eq!(p["referenceYear"], 2000);
/// ```
pub fn reference_params(unix_seconds: i64) -> Params {
    let (year, month, day) = civil_from_days(split_unix(unix_seconds).0);
    date_params(year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(20_514), (2026, 3, 2));
        assert_eq!(civil_from_days(20_697), (2026, 9, 1));
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        // 2100 is not a leap year: February 28 is followed by March 1.
        assert_eq!(
            days_from_civil(2100, 3, 1) - days_from_civil(2100, 2, 28),
            1
        );
        assert_eq!(
            civil_from_days(days_from_civil(2100, 2, 28) + 1),
            (2100, 3, 1)
        );
        // 2024 is: February has 29 days.
        assert_eq!(
            civil_from_days(days_from_civil(2024, 2, 28) + 1),
            (2024, 2, 29)
        );
        // 1900 is not, 2000 is (the 400-year rule).
        assert_eq!(
            days_from_civil(1900, 3, 1) - days_from_civil(1900, 2, 28),
            1
        );
        assert_eq!(
            days_from_civil(2000, 3, 1) - days_from_civil(2000, 2, 28),
            2
        );
    }

    #[test]
    fn days_and_dates_round_trip() {
        for d in [
            -800_000, -146_097, -719_468, -1, 0, 1, 11_016, 19_000, 20_000, 2_932_896,
        ] {
            let (y, m, day) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, day), d, "{d}");
        }
        // Every day of a 400-year cycle, which holds every leap-year case.
        let start = days_from_civil(2000, 1, 1);
        let mut previous = civil_from_days(start - 1);
        for d in start..start + 146_097 {
            let date = civil_from_days(d);
            assert_eq!(days_from_civil(date.0, date.1, date.2), d);
            assert!(date > previous, "{date:?} after {previous:?}");
            previous = date;
        }
    }

    #[test]
    fn dates_are_checked_against_the_calendar() {
        assert!(is_date(2000, 2, 29));
        assert!(!is_date(1900, 2, 29));
        assert!(!is_date(2026, 2, 29));
        assert!(!is_date(2026, 2, 31));
        assert!(!is_date(2026, 6, 31));
        assert!(is_date(2026, 12, 31));
        assert!(!is_date(2026, 0, 1));
        // Every date `is_date` accepts is one `civil_from_days` gives back.
        for month in 1..=12 {
            for day in 1..=31 {
                let ok = is_date(2024, month, day);
                let round = civil_from_days(days_from_civil(2024, month, day));
                assert_eq!(ok, round == (2024, month, day), "2024-{month}-{day}");
            }
        }
    }

    #[test]
    fn weekdays() {
        assert_eq!(weekday(0), 4); // 1970-01-01, Thursday
        assert_eq!(weekday(-1), 3); // 1969-12-31, Wednesday
        assert_eq!(weekday(days_from_civil(2000, 2, 29)), 2); // Tuesday
        assert_eq!(weekday(days_from_civil(2100, 1, 1)), 5); // Friday
        assert_eq!(weekday(days_from_civil(1994, 11, 6)), 0); // Sunday (RFC 9110's example)
    }

    #[test]
    fn reference_params_name_the_utc_day() {
        let p = reference_params(0);
        assert_eq!(p["referenceDate"], "1970-01-01");
        assert_eq!(p["referenceYear"], 1970);
        // The last second of 2000-02-29, and one second before the epoch.
        let p = reference_params(days_from_civil(2000, 3, 1) * SECONDS_PER_DAY - 1);
        assert_eq!(p["referenceDate"], "2000-02-29");
        let p = reference_params(-1);
        assert_eq!(p["referenceDate"], "1969-12-31");
        assert_eq!(p["referenceYear"], 1969);
        let p = reference_params(days_from_civil(2100, 12, 31) * SECONDS_PER_DAY);
        assert_eq!(p["referenceDate"], "2100-12-31");
        assert_eq!(p["referenceYear"], 2100);
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn split_unix_never_gives_a_negative_second() {
        assert_eq!(split_unix(0), (0, 0));
        assert_eq!(split_unix(-1), (-1, 86_399));
        assert_eq!(split_unix(86_400), (1, 0));
    }
}
