//! Header values the server writes and reads, as pure functions: HTTP dates (RFC 9110
//! IMF-fixdate, for `Sunset`), RFC 9745 structured dates (for `Deprecation`), `If-Match` revs,
//! and the `Mutatis-Versions` map. Calendar arithmetic is [`mutatis_lens::calendar`]'s, the
//! one the command line and the client use too.

use std::collections::BTreeMap;

use mutatis_lens::calendar::{
    civil_from_days, days_from_civil, is_date, split_unix, weekday, SECONDS_PER_DAY,
};

/// `Link` value pointing a deprecated client at the node's metadata (RFC 9745 §3).
pub const DEPRECATION_LINK: &str = "</meta>; rel=\"deprecation\"; type=\"application/json\"";

/// Seconds since the epoch of a `YYYY-MM-DD` date at 00:00 UTC; `None` if it is not one.
pub fn date_to_unix(date: &str) -> Option<i64> {
    let b = date.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year: i64 = date.get(0..4)?.parse().ok()?;
    let month: u32 = date.get(5..7)?.parse().ok()?;
    let day: u32 = date.get(8..10)?.parse().ok()?;
    if !is_date(year, month, day) {
        return None;
    }
    Some(days_from_civil(year, month, day) * SECONDS_PER_DAY)
}

/// An IMF-fixdate (`Tue, 01 Sep 2026 00:00:00 GMT`, RFC 9110 §5.6.7) of a unix time.
pub fn http_date(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, secs) = split_unix(unix);
    let (year, month, day) = civil_from_days(days);
    let day_name = DAYS[weekday(days) as usize % 7];
    let month_name = MONTHS[(month as usize).saturating_sub(1).min(11)];
    format!(
        "{day_name}, {day:02} {month_name} {year:04} {:02}:{:02}:{:02} GMT",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// An RFC 3339 UTC timestamp (`2026-11-22T15:50:58Z`) of a unix time: token creation dates.
pub fn rfc3339(unix: i64) -> String {
    let (days, secs) = split_unix(unix);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// The `Sunset` value (RFC 8594) of a `YYYY-MM-DD` sunset date: its start, 00:00 UTC.
pub fn sunset_header(date: &str) -> Option<String> {
    date_to_unix(date).map(http_date)
}

/// The `Deprecation` value (RFC 9745: a structured-field date, `@<unix seconds>`).
///
/// `since_unix` is the release's `deprecated` date ([`mutatis_schema::Release::deprecated`]),
/// which a schema set may leave out. RFC 9745 asks for the moment the resource was (or will
/// be) deprecated; a date in the past means "deprecated now", so without a recorded date the
/// epoch (`@0`) is the honest value for "already deprecated, date unknown".
pub fn deprecation_header(since_unix: Option<i64>) -> String {
    format!("@{}", since_unix.unwrap_or(0))
}

/// The rev named by an `If-Match` value: `"3-abc"`, `3-abc` or `W/"3-abc"`. `*` and lists
/// are not revs and give `None`.
pub fn if_match_rev(value: &str) -> Option<&str> {
    let v = value.trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    let v = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(v);
    if v.is_empty() || v == "*" || v.contains(',') || v.contains('"') {
        return None;
    }
    Some(v)
}

/// An `ETag` value of a rev.
pub fn etag(rev: &str) -> String {
    format!("\"{rev}\"")
}

/// Parse `Mutatis-Versions: Student=3, todo=2` into type → version. Strict: an empty value
/// or an empty entry (`Student=3,`, a stray comma) is refused rather than skipped, because a
/// client that sends one meant to name something and would otherwise be served a version it
/// did not ask for. Whether the types exist is the schema set's to say
/// ([`crate::negotiate::Announce::known`]).
pub fn parse_versions(value: &str) -> Result<BTreeMap<String, u32>, String> {
    if value.trim().is_empty() {
        return Err("the value is empty".into());
    }
    let mut out = BTreeMap::new();
    for part in value.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(format!(
                "`{}` has an empty entry (a stray comma?)",
                value.trim()
            ));
        }
        let (name, version) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not TYPE=VERSION"))?;
        let (name, version) = (name.trim(), version.trim());
        if name.is_empty() {
            return Err(format!("`{part}` names no type"));
        }
        let v: u32 = version
            .parse()
            .map_err(|_| format!("`{part}`: the version must be a whole number"))?;
        if out.insert(name.to_owned(), v).is_some() {
            return Err(format!("type {name} is named twice"));
        }
    }
    Ok(out)
}

/// The `Mutatis-Versions` value of a type → version map.
pub fn format_versions<'a>(versions: impl IntoIterator<Item = (&'a str, u32)>) -> String {
    versions
        .into_iter()
        .map(|(t, v)| format!("{t}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_are_imf_fixdates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        // RFC 9110's own example.
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            sunset_header("2026-09-01").as_deref(),
            Some("Tue, 01 Sep 2026 00:00:00 GMT")
        );
        assert_eq!(
            sunset_header("2024-02-29").as_deref(),
            Some("Thu, 29 Feb 2024 00:00:00 GMT")
        );
        assert_eq!(sunset_header("soon"), None);
    }

    #[test]
    fn rfc3339_timestamps() {
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn dates_parse_to_midnight_utc() {
        assert_eq!(date_to_unix("1970-01-02"), Some(86_400));
        assert_eq!(date_to_unix("2000-02-29"), Some(951_782_400));
        assert_eq!(date_to_unix("2000-2-29"), None);
        assert_eq!(date_to_unix("2000-13-01"), None);
        assert_eq!(date_to_unix("2026-02-31"), None);
    }

    #[test]
    fn deprecation_is_a_structured_date() {
        assert_eq!(deprecation_header(None), "@0");
        assert_eq!(deprecation_header(Some(1_688_169_599)), "@1688169599");
    }

    #[test]
    fn if_match_accepts_quoted_unquoted_and_weak() {
        assert_eq!(if_match_rev("\"3-abc\""), Some("3-abc"));
        assert_eq!(if_match_rev("3-abc"), Some("3-abc"));
        assert_eq!(if_match_rev("W/\"3-abc\""), Some("3-abc"));
        assert_eq!(if_match_rev("*"), None);
        assert_eq!(if_match_rev("\"a\", \"b\""), None);
    }

    #[test]
    fn versions_header_parses_and_refuses() {
        let m = parse_versions("Student=3, todo = 2").unwrap();
        assert_eq!(m["Student"], 3);
        assert_eq!(m["todo"], 2);
        assert!(parse_versions("Student").is_err());
        assert!(parse_versions("Student=x").is_err());
        assert!(parse_versions("a=1, a=2").is_err());
        assert!(parse_versions("Student=3,").is_err());
        assert!(parse_versions(",Student=3").is_err());
        assert!(parse_versions("Student=3,,todo=2").is_err());
        assert!(parse_versions("").is_err());
        assert!(parse_versions("  ").is_err());
        assert!(parse_versions("=3").is_err());
        assert_eq!(format_versions([("a", 1), ("b", 2)]), "a=1, b=2");
    }
}
