//! Translation parameters from the command line. The lens engine reads no clock, so the
//! command line is where "today" comes from: `referenceDate` and `referenceYear` default to
//! the current UTC date and can be pinned with `--reference-date`.

use std::time::{SystemTime, UNIX_EPOCH};

use mutatis_lens::Params;
use serde_json::Value;

use crate::error::CliError;

/// Build the parameters: the reference date first, then each `--param k=v` (a JSON value, or
/// a string when it isn't JSON), which may override it.
pub fn build(reference_date: Option<&str>, pairs: &[String]) -> Result<Params, CliError> {
    let (year, month, day) = match reference_date {
        Some(d) => parse_date(d).ok_or_else(|| {
            CliError::Usage(format!("--reference-date must be YYYY-MM-DD, got `{d}`"))
        })?,
        None => today_utc(),
    };
    let mut params = Params::new();
    params.insert(
        "referenceDate".into(),
        Value::String(format!("{year:04}-{month:02}-{day:02}")),
    );
    params.insert("referenceYear".into(), Value::from(year));
    for pair in pairs {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(CliError::Usage(format!(
                "--param takes NAME=VALUE, got `{pair}`"
            )));
        };
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
        params.insert(k.trim().to_owned(), value);
    }
    Ok(params)
}

fn parse_date(s: &str) -> Option<(i64, u32, u32)> {
    let mut it = s.splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then_some((y, m, d))
}

/// Today's civil date in UTC (Howard Hinnant's days-to-civil algorithm).
fn today_utc() -> (i64, u32, u32) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    civil_from_days(secs.div_euclid(86_400))
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_514), (2026, 3, 2));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn params_override_and_parse_json() {
        let p = build(Some("2030-05-06"), &["n=3".into(), "s=hello".into()]).unwrap();
        assert_eq!(p["referenceYear"], 2030);
        assert_eq!(p["referenceDate"], "2030-05-06");
        assert_eq!(p["n"], 3);
        assert_eq!(p["s"], "hello");
        assert!(build(Some("2030-13-01"), &[]).is_err());
        assert!(build(None, &["novalue".into()]).is_err());
    }
}
