//! Timestamp parsing for NAB (`YYYY-MM-DD HH:MM:SS[.ffffff]`, UTC), without a date library.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(s: &str, what: &str) -> Result<i64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad {what} {s:?}"));
    }
    s.parse::<i64>()
        .map_err(|e| format!("bad {what} {s:?}: {e}"))
}

/// Parses `YYYY-MM-DD HH:MM:SS` (or with `T`, optional fractional seconds, optional `Z`)
/// into microseconds since the Unix epoch.
///
/// # Errors
/// A message describing the malformed part.
pub fn parse_micros(s: &str) -> Result<i64, String> {
    let s = s.trim().trim_matches('"');
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = s
        .split_once([' ', 'T'])
        .ok_or_else(|| format!("bad timestamp {s:?}: expected `YYYY-MM-DD HH:MM:SS`"))?;
    let mut dp = date.split('-');
    let (Some(y), Some(mo), Some(d), None) = (dp.next(), dp.next(), dp.next(), dp.next()) else {
        return Err(format!("bad date {date:?}"));
    };
    let (y, mo, d) = (num(y, "year")?, num(mo, "month")?, num(d, "day")?);
    if !(1..=9999).contains(&y) || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return Err(format!("bad date {date:?}"));
    }
    let (hms, frac) = match time.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (time, None),
    };
    let mut tp = hms.split(':');
    let (Some(h), Some(mi), sec, None) = (tp.next(), tp.next(), tp.next(), tp.next()) else {
        return Err(format!("bad time {time:?}"));
    };
    let (h, mi) = (num(h, "hour")?, num(mi, "minute")?);
    let sec = match sec {
        Some(x) => num(x, "second")?,
        None => 0,
    };
    if h > 23 || mi > 59 || sec > 60 {
        return Err(format!("bad time {time:?}"));
    }
    let mut micros = 0i64;
    if let Some(f) = frac {
        let digits: String = f.chars().take(6).collect();
        let v = num(&digits, "fraction")?;
        let scale = 10i64.pow(u32::try_from(6 - digits.len()).unwrap_or(0));
        micros = v * scale;
    }
    let days = days_from_civil(y, mo, d);
    Ok(((days * 24 + h) * 60 + mi) * 60_000_000 + sec * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nab_timestamps() {
        assert_eq!(parse_micros("1970-01-01 00:00:00"), Ok(0));
        assert_eq!(
            parse_micros("2014-04-10 07:15:00.000000"),
            Ok(1_397_114_100_000_000)
        );
        assert_eq!(
            parse_micros("2014-04-10T07:15:00.5Z"),
            Ok(1_397_114_100_500_000)
        );
        assert!(parse_micros("2014-13-10 07:15:00").is_err());
        assert!(parse_micros("garbage").is_err());
        assert!(parse_micros("99999999999999999-01-01 00:00:00").is_err());
        assert!(parse_micros("2014-01-01 00:00:00.").is_err());
        assert!(parse_micros("2014-04-10 07:x:00").is_err());
    }
}
