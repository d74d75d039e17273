//! Deprecation notices: the `Deprecation` (RFC 9745), `Sunset` (RFC 8594) and
//! `Link: <…>; rel="deprecation"` headers a server puts on answers to a deprecated release,
//! read into one value the application's callback gets.

/// A server's notice that the release the client speaks is deprecated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deprecation {
    /// The release the server served (its `Mutatis-Release` answer), or what the client spoke
    /// when the server named no release (`Student=3`).
    pub release: String,
    /// When the release was deprecated, in Unix seconds (`Deprecation: @<secs>`); the server
    /// sends `@0` when its schema set records no date.
    pub deprecated_at: Option<i64>,
    /// The day the release stops being served, as `YYYY-MM-DD` (from the `Sunset` header's
    /// HTTP date; the raw header value if it is not one).
    pub sunset: Option<String>,
    /// Where the deprecation is documented (the `rel="deprecation"` link, resolved against the
    /// server's URL).
    pub link: Option<String>,
}

/// Read a `Deprecation` header value: `@<unix seconds>` (RFC 9745's structured date). Older
/// drafts' `true` is a deprecation without a date.
pub fn parse_deprecation(value: &str) -> Option<i64> {
    value.trim().strip_prefix('@')?.parse().ok()
}

/// The `YYYY-MM-DD` of an IMF-fixdate (`Tue, 01 Sep 2026 00:00:00 GMT`), the form RFC 8594
/// requires for `Sunset`.
pub fn sunset_date(value: &str) -> Option<String> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut parts = value.split_whitespace();
    let _weekday = parts.next()?.strip_suffix(',')?;
    let day: u32 = parts.next()?.parse().ok()?;
    let month_name = parts.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)? + 1;
    let year: u32 = parts.next()?.parse().ok()?;
    ((1..=31).contains(&day)).then(|| format!("{year:04}-{month:02}-{day:02}"))
}

/// The target of the `rel="deprecation"` link in a `Link` header value.
pub fn deprecation_link(value: &str) -> Option<String> {
    value.split(',').find_map(|link| {
        let (target, params) = link.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_deprecation = params.split(';').any(|p| {
            let p = p.trim();
            p.strip_prefix("rel=")
                .map(|rel| {
                    rel.trim_matches('"')
                        .split_whitespace()
                        .any(|r| r == "deprecation")
                })
                .unwrap_or(false)
        });
        is_deprecation.then(|| target.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_three_headers() {
        assert_eq!(parse_deprecation("@1688169599"), Some(1_688_169_599));
        assert_eq!(parse_deprecation("@0"), Some(0));
        assert_eq!(parse_deprecation("true"), None);
        assert_eq!(
            sunset_date("Tue, 01 Sep 2026 00:00:00 GMT").as_deref(),
            Some("2026-09-01")
        );
        assert_eq!(sunset_date("2026-09-01"), None);
        assert_eq!(
            deprecation_link(r#"</meta>; rel="deprecation"; type="application/json""#).as_deref(),
            Some("/meta")
        );
        assert_eq!(
            deprecation_link(r#"<https://a/b>; rel="next", </d>; rel=deprecation"#).as_deref(),
            Some("/d")
        );
        assert_eq!(deprecation_link(r#"</x>; rel="next""#), None);
    }
}
