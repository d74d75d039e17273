//! Translation parameters from the command line. The lens engine reads no clock, so the
//! command line is where "today" comes from: `referenceDate` and `referenceYear` default to
//! the current UTC date and can be pinned with `--reference-date`.

use std::time::{SystemTime, UNIX_EPOCH};

use mutatis_lens::{calendar, Params};
use serde_json::Value;

use crate::error::CliError;

/// Build the parameters: the reference date first, then each `--param k=v` (a JSON value, or
/// a string when it isn't JSON), which may override it.
pub fn build(reference_date: Option<&str>, pairs: &[String]) -> Result<Params, CliError> {
    let mut params = match reference_date {
        Some(d) => {
            let (year, month, day) = parse_date(d).ok_or_else(|| {
                CliError::Usage(format!(
                    "--reference-date must be a calendar date written YYYY-MM-DD, got `{d}`"
                ))
            })?;
            calendar::date_params(year, month, day)
        }
        // Today in UTC, derived as the server and the client derive it.
        None => calendar::reference_params(unix_now()),
    };
    for pair in pairs {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(CliError::Usage(format!(
                "--param takes NAME=VALUE, got `{pair}`"
            )));
        };
        let value = match mutatis_lens::json::from_str(v) {
            Ok(value) => value,
            // A number the lens would see rounded is refused, not taken for a string.
            Err(e @ mutatis_lens::json::JsonError::Inexact { .. }) => {
                return Err(CliError::Usage(format!("--param {k}: {e}")))
            }
            Err(_) => Value::String(v.to_owned()),
        };
        params.insert(k.trim().to_owned(), value);
    }
    Ok(params)
}

/// The day a command judges release sunsets by: `reference_date` (checked like
/// `--reference-date`), or today in UTC.
pub fn today(reference_date: Option<&str>) -> Result<String, CliError> {
    let params = build(reference_date, &[])?;
    Ok(params
        .get("referenceDate")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned())
}

fn parse_date(s: &str) -> Option<(i64, u32, u32)> {
    let mut it = s.splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    // A day the month does not have (`2026-02-31`) is refused, not counted on into the next
    // month: a lens computing ages from it would be silently off.
    calendar::is_date(y, m, d).then_some((y, m, d))
}

/// Seconds since the epoch, now (0 if the clock is before it).
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_is_written_in_full() {
        let p = build(Some("2024-2-29"), &[]).unwrap();
        assert_eq!(p["referenceDate"], "2024-02-29");
        assert_eq!(p["referenceYear"], 2024);
    }

    #[test]
    fn params_override_and_parse_json() {
        let p = build(Some("2030-05-06"), &["n=3".into(), "s=hello".into()]).unwrap();
        assert_eq!(p["referenceYear"], 2030);
        assert_eq!(p["referenceDate"], "2030-05-06");
        assert_eq!(p["n"], 3);
        assert_eq!(p["s"], "hello");
        assert!(build(Some("2030-13-01"), &[]).is_err());
        assert!(build(Some("2026-02-31"), &[]).is_err());
        assert!(build(Some("2026-02-29"), &[]).is_err());
        assert!(build(Some("2028-02-29"), &[]).is_ok());
        assert!(build(Some("2026-04-31"), &[]).is_err());
        assert!(build(None, &["novalue".into()]).is_err());
    }
}
