//! medic-policy: freeze schedules at the edge.
//!
//! Operators write freeze windows as cron schedules with a duration and an
//! IANA time zone (`"0 17 * * FRI"`, 64 h, `Europe/Berlin`: every weekend).
//! The engine never parses cron or time zones: it takes concrete
//! [`FreezeWindow`]s in unix milliseconds ([`medic_core::Input::FreezeWindows`]).
//! [`expand`] turns schedules into those windows for a horizon; the daemon
//! calls it at start and then regularly (say every hour with a 48 h
//! horizon) and sends the result to the engine.
//!
//! Everything here is pure: the time-zone database is bundled into the
//! binary (jiff's `tzdb-bundle-always`), and "now" is an argument.
//!
//! Cron syntax: five fields `minute hour day-of-month month day-of-week`,
//! each `*`, a number, a name (`JAN`…`DEC`, `SUN`…`SAT`), a range `a-b`,
//! a list `a,b`, or a step `*/n` / `a-b/n`. Day-of-week 0 and 7 are Sunday.
//! As in Vixie cron, when both day fields are restricted a day matches if
//! either does. Local times skipped by a DST change never match; a repeated
//! hour matches once per instant, and overlapping windows are merged.
#![forbid(unsafe_code)]

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use medic_core::FreezeWindow;

/// A freeze schedule as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreezeSchedule {
    pub name: String,
    /// Five-field cron expression for the window starts.
    pub cron: String,
    pub duration: Duration,
    /// IANA time zone name, e.g. `Europe/Berlin`; `UTC` when in doubt.
    pub timezone: String,
    /// `None` freezes every service.
    pub services: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("cron `{expr}`: {message}")]
    Cron { expr: String, message: String },
    #[error("unknown time zone `{0}`")]
    TimeZone(String),
    #[error("time out of range")]
    Range,
}

/// A parsed cron expression: the allowed values of each field as bit sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    days_any: bool,
    weekdays_any: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn value(s: &str, names: &[&str], offset: u32) -> Option<u32> {
    if let Ok(v) = s.parse::<u32>() {
        return Some(v);
    }
    let up = s.to_ascii_uppercase();
    names
        .iter()
        .position(|n| *n == up)
        .map(|i| i as u32 + offset)
}

/// Parse one field into a bit set of allowed values in `min..=max`.
fn field(s: &str, min: u32, max: u32, names: &[&str], offset: u32) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let any = s == "*";
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => (
                r,
                st.parse::<u32>()
                    .ok()
                    .filter(|v| *v > 0)
                    .ok_or_else(|| format!("bad step `{st}`"))?,
            ),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (
                value(a, names, offset).ok_or_else(|| format!("bad value `{a}`"))?,
                value(b, names, offset).ok_or_else(|| format!("bad value `{b}`"))?,
            )
        } else {
            let v = value(range, names, offset).ok_or_else(|| format!("bad value `{range}`"))?;
            (v, if part.contains('/') { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("`{part}` is outside {min}-{max}"));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1u64 << v;
            v += step;
        }
    }
    Ok((bits, any))
}

impl Cron {
    pub fn parse(expr: &str) -> Result<Cron, PolicyError> {
        let err = |message: String| PolicyError::Cron {
            expr: expr.to_string(),
            message,
        };
        let f: Vec<&str> = expr.split_whitespace().collect();
        if f.len() != 5 {
            return Err(err(format!("expected 5 fields, got {}", f.len())));
        }
        let (minutes, _) = field(f[0], 0, 59, &[], 0).map_err(err)?;
        let (hours, _) = field(f[1], 0, 23, &[], 0).map_err(err)?;
        let (days, days_any) = field(f[2], 1, 31, &[], 0).map_err(err)?;
        let (months, _) = field(f[3], 1, 12, &MONTHS, 1).map_err(err)?;
        let (mut weekdays, weekdays_any) = field(f[4], 0, 7, &DAYS, 0).map_err(err)?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Cron {
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: (weekdays & 0x7f) as u8,
            days_any,
            weekdays_any,
        })
    }

    /// Whether a local date-time matches. `weekday` is 0 = Sunday.
    pub fn matches(&self, minute: u32, hour: u32, day: u32, month: u32, weekday: u32) -> bool {
        let dom = self.days & (1 << day) != 0;
        let dow = self.weekdays & (1 << weekday) != 0;
        let day_ok = match (self.days_any, self.weekdays_any) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) => dom || dow,
        };
        self.minutes & (1 << minute) != 0
            && self.hours & (1 << hour) != 0
            && self.months & (1 << month) != 0
            && day_ok
    }
}

/// Expand `schedules` into concrete windows overlapping
/// `[from_unix_ms, from_unix_ms + horizon)`, sorted by start.
pub fn expand(
    schedules: &[FreezeSchedule],
    from_unix_ms: i64,
    horizon: Duration,
) -> Result<Vec<FreezeWindow>, PolicyError> {
    let horizon_ms = i64::try_from(horizon.as_millis()).map_err(|_| PolicyError::Range)?;
    let mut out = Vec::new();
    for s in schedules {
        let cron = Cron::parse(&s.cron)?;
        let tz =
            TimeZone::get(&s.timezone).map_err(|_| PolicyError::TimeZone(s.timezone.clone()))?;
        let dur_ms = i64::try_from(s.duration.as_millis()).map_err(|_| PolicyError::Range)?;
        // Windows that started up to one duration ago may still be open.
        let first = (from_unix_ms - dur_ms).div_euclid(60_000) * 60_000;
        let end = from_unix_ms.saturating_add(horizon_ms);
        let mut mine: Vec<FreezeWindow> = Vec::new();
        let mut t = first;
        // Bounded: at most horizon + duration minutes.
        while t < end {
            let ts = Timestamp::from_millisecond(t).map_err(|_| PolicyError::Range)?;
            let z = ts.to_zoned(tz.clone());
            let weekday = z.weekday().to_sunday_zero_offset() as u32;
            if cron.matches(
                z.minute() as u32,
                z.hour() as u32,
                z.day() as u32,
                z.month() as u32,
                weekday,
            ) && t + dur_ms > from_unix_ms
            {
                match mine.last_mut() {
                    Some(w) if w.end_unix_ms >= t => w.end_unix_ms = w.end_unix_ms.max(t + dur_ms),
                    _ => mine.push(FreezeWindow {
                        name: s.name.clone(),
                        start_unix_ms: t,
                        end_unix_ms: t + dur_ms,
                        services: s.services.clone(),
                    }),
                }
            }
            t += 60_000;
        }
        out.extend(mine);
    }
    out.sort_by_key(|w| (w.start_unix_ms, w.name.clone()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>()
            .map(|t| t.as_millisecond())
            .unwrap_or(0)
    }

    #[test]
    fn cron_fields_parse() {
        let c = Cron::parse("*/15 9-17 * * MON-FRI").unwrap();
        assert!(c.matches(30, 10, 5, 3, 1));
        assert!(!c.matches(31, 10, 5, 3, 1));
        assert!(!c.matches(30, 18, 5, 3, 1));
        assert!(!c.matches(30, 10, 5, 3, 0));
        assert!(Cron::parse("0 0 * *").is_err());
        assert!(Cron::parse("61 0 * * *").is_err());
        assert!(Cron::parse("0 0 * * 8").is_err());
        assert!(Cron::parse("0 0 * * */0").is_err());
        let sunday7 = Cron::parse("0 0 * * 7").unwrap();
        assert!(sunday7.matches(0, 0, 1, 1, 0));
        // Both day fields restricted: either matches (Vixie cron).
        let either = Cron::parse("0 0 13 * FRI").unwrap();
        assert!(either.matches(0, 0, 13, 1, 2));
        assert!(either.matches(0, 0, 14, 1, 5));
        assert!(!either.matches(0, 0, 14, 1, 4));
    }

    #[test]
    fn weekend_freeze_in_berlin_time() {
        let s = FreezeSchedule {
            name: "weekend".into(),
            cron: "0 17 * * FRI".into(),
            duration: Duration::from_secs(64 * 3600),
            timezone: "Europe/Berlin".into(),
            services: None,
        };
        // Monday 2026-11-23 12:00 UTC; horizon one week.
        let w = expand(
            &[s],
            ms("2026-11-23T12:00:00Z"),
            Duration::from_secs(7 * 86400),
        )
        .unwrap();
        assert_eq!(w.len(), 1);
        // 17:00 CET = 16:00 UTC on Friday 2026-11-27.
        assert_eq!(w[0].start_unix_ms, ms("2026-11-27T16:00:00Z"));
        assert_eq!(w[0].end_unix_ms, ms("2026-11-30T08:00:00Z"));
    }

    #[test]
    fn an_open_window_is_included_and_dst_is_respected() {
        let s = FreezeSchedule {
            name: "nightly".into(),
            cron: "0 2 * * *".into(),
            duration: Duration::from_secs(2 * 3600),
            timezone: "America/New_York".into(),
            services: Some(vec!["db".into()]),
        };
        // 2026-03-08 is the US spring-forward day: 02:00 local does not exist.
        let w = expand(
            &[s],
            ms("2026-03-07T08:00:00Z"),
            Duration::from_secs(3 * 86400),
        )
        .unwrap();
        let starts: Vec<i64> = w.iter().map(|w| w.start_unix_ms).collect();
        // 02:00 EST = 07:00Z on the 7th (still open at 08:00Z), none on the
        // 8th, 02:00 EDT = 06:00Z on the 9th and 10th.
        assert_eq!(
            starts,
            vec![
                ms("2026-03-07T07:00:00Z"),
                ms("2026-03-09T06:00:00Z"),
                ms("2026-03-10T06:00:00Z")
            ]
        );
        assert!(w[0].covers("db", ms("2026-03-07T08:30:00Z")));
        assert!(!w[0].covers("web", ms("2026-03-07T08:30:00Z")));
        assert!(matches!(
            expand(
                &[FreezeSchedule {
                    name: "x".into(),
                    cron: "0 0 * * *".into(),
                    duration: Duration::from_secs(60),
                    timezone: "Mars/Olympus".into(),
                    services: None
                }],
                0,
                Duration::from_secs(60)
            ),
            Err(PolicyError::TimeZone(_))
        ));
    }
}
