//! Cron schedules as the CronJob API accepts them (robfig/cron's standard parser): five fields
//! (minute, hour, day of month, month, day of week) with `*`, `?`, lists, ranges, steps and
//! month/day names, plus the `@yearly`/`@annually`/`@monthly`/`@weekly`/`@daily`/`@midnight`/
//! `@hourly` descriptors. As in robfig/cron, when both day fields are restricted a day matches
//! if either does; when either is `*` both must.
//!
//! Times are evaluated in a time zone (wall clock), so `0 2 * * *` in `Europe/Berlin` fires at
//! 02:00 local time; a wall time skipped by a DST gap resolves forward, as jiff's `compatible`
//! disambiguation does.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::Timestamp;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ParseError(String);

/// A parsed schedule: one bit set per allowed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    dom_star: bool,
    dow_star: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn value(s: &str, names: &[&str], offset: u32) -> Result<u32, ParseError> {
    let l = s.to_ascii_lowercase();
    if let Some(i) = names.iter().position(|n| *n == l) {
        return Ok(i as u32 + offset);
    }
    s.parse::<u32>()
        .map_err(|_| ParseError(format!("failed to parse int from {s}")))
}

/// Parses one field into a bit set; the flag says whether it was `*`/`?` without a step.
fn field(
    expr: &str,
    min: u32,
    max: u32,
    names: &[&str],
    offset: u32,
) -> Result<(u64, bool), ParseError> {
    let mut bits = 0u64;
    let mut star = false;
    for part in expr.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let st = s
                    .parse::<u32>()
                    .map_err(|_| ParseError(format!("failed to parse int from {s}")))?;
                (r, Some(st))
            }
            None => (part, None),
        };
        let (lo, mut hi);
        if range == "*" || range == "?" {
            lo = min;
            hi = max;
            if step.is_none() {
                star = true;
            }
        } else if let Some((a, b)) = range.split_once('-') {
            lo = value(a, names, offset)?;
            hi = value(b, names, offset)?;
        } else {
            lo = value(range, names, offset)?;
            hi = lo;
            if step.is_some() {
                hi = max;
            }
        }
        if step == Some(0) {
            return Err(ParseError(format!(
                "step of range should be a positive number: {part}"
            )));
        }
        if lo < min {
            return Err(ParseError(format!(
                "beginning of range ({lo}) below minimum ({min}): {part}"
            )));
        }
        if hi > max {
            return Err(ParseError(format!(
                "end of range ({hi}) above maximum ({max}): {part}"
            )));
        }
        if lo > hi {
            return Err(ParseError(format!(
                "beginning of range ({lo}) beyond end of range ({hi}): {part}"
            )));
        }
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, star))
}

impl Schedule {
    pub fn parse(spec: &str) -> Result<Schedule, ParseError> {
        let spec = spec.trim();
        let expanded = match spec {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            s if s.starts_with('@') => {
                return Err(ParseError(format!("unrecognized descriptor: {s}")))
            }
            s => s,
        };
        let f: Vec<&str> = expanded.split_whitespace().collect();
        if f.len() != 5 {
            return Err(ParseError(format!(
                "expected exactly 5 fields, found {}: {spec}",
                f.len()
            )));
        }
        let (minute, _) = field(f[0], 0, 59, &[], 0)?;
        let (hour, _) = field(f[1], 0, 23, &[], 0)?;
        let (dom, dom_star) = field(f[2], 1, 31, &[], 0)?;
        let (month, _) = field(f[3], 1, 12, &MONTHS, 1)?;
        let (dow, dow_star) = field(f[4], 0, 6, &DAYS, 0)?;
        Ok(Schedule {
            minute,
            hour,
            dom,
            month,
            dow,
            dom_star,
            dow_star,
        })
    }

    fn day_matches(&self, d: Date) -> bool {
        if self.month & (1 << d.month()) == 0 {
            return false;
        }
        let dm = self.dom & (1 << d.day()) != 0;
        let wm = self.dow & (1 << d.weekday().to_sunday_zero_offset()) != 0;
        if self.dom_star || self.dow_star {
            dm && wm
        } else {
            dm || wm
        }
    }

    /// The first activation strictly after `after`, within five years.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let start = after.to_zoned(tz.clone()).datetime();
        let floor = start.with().second(0).subsec_nanosecond(0).build().ok()?;
        let mut day = start.date();
        let limit = day.checked_add(jiff::Span::new().years(5)).ok()?;
        while day <= limit {
            if self.day_matches(day) {
                for h in (0..24).filter(|h| self.hour & (1u64 << h) != 0) {
                    for m in (0..60).filter(|m| self.minute & (1u64 << m) != 0) {
                        let dt =
                            DateTime::new(day.year(), day.month(), day.day(), h, m, 0, 0).ok()?;
                        if dt < floor {
                            continue;
                        }
                        let ts = tz.to_ambiguous_zoned(dt).compatible().ok()?.timestamp();
                        if ts > after {
                            return Some(ts);
                        }
                    }
                }
            }
            day = day.tomorrow().ok()?;
        }
        None
    }
}

/// Upstream's `mostRecentScheduleTime`: the latest activation in `(earliest, now]` and how many
/// activations that interval held (capped at `cap`), or None if there were none.
pub fn most_recent(
    sched: &Schedule,
    tz: &TimeZone,
    earliest: Timestamp,
    now: Timestamp,
    cap: usize,
) -> (Option<Timestamp>, usize) {
    let mut t = earliest;
    let mut last = None;
    let mut n = 0;
    while let Some(next) = sched.next_after(t, tz) {
        if next > now {
            break;
        }
        last = Some(next);
        n += 1;
        t = next;
        if n > cap {
            // Jump close to now: beyond the cap only the latest activation matters.
            for back in [3600, 86_400, 32 * 86_400, 366 * 86_400] {
                let probe = now - jiff::SignedDuration::from_secs(back);
                if probe > t && sched.next_after(probe, tz).is_some_and(|x| x <= now) {
                    t = probe;
                    break;
                }
            }
        }
    }
    (last, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn parses() {
        assert!(Schedule::parse("*/5 * * * *").is_ok());
        assert!(Schedule::parse("0 9-17 * JAN-mar mon-FRI").is_ok());
        assert!(Schedule::parse("@hourly").is_ok());
        assert!(Schedule::parse("* * * *").is_err());
        assert!(Schedule::parse("60 * * * *").is_err());
        assert!(Schedule::parse("* * * * 7").is_err());
        assert!(Schedule::parse("@every 5m").is_err());
        assert!(Schedule::parse("5-1 * * * *").is_err());
    }

    #[test]
    fn next_times() {
        let utc = TimeZone::UTC;
        let s = Schedule::parse("*/5 * * * *").unwrap();
        assert_eq!(
            s.next_after(ts("2024-01-01T00:02:30Z"), &utc),
            Some(ts("2024-01-01T00:05:00Z"))
        );
        assert_eq!(
            s.next_after(ts("2024-01-01T00:05:00Z"), &utc),
            Some(ts("2024-01-01T00:10:00Z"))
        );
        let h = Schedule::parse("@hourly").unwrap();
        assert_eq!(
            h.next_after(ts("2024-12-31T23:30:00Z"), &utc),
            Some(ts("2025-01-01T00:00:00Z"))
        );
        let y = Schedule::parse("0 0 29 2 *").unwrap();
        assert_eq!(
            y.next_after(ts("2025-01-01T00:00:00Z"), &utc),
            Some(ts("2028-02-29T00:00:00Z"))
        );
    }

    #[test]
    fn day_or_semantics() {
        let utc = TimeZone::UTC;
        // 1st of the month OR a Monday. 2024-01-01 is a Monday; next is Mon 8th.
        let s = Schedule::parse("0 0 1 * mon").unwrap();
        assert_eq!(
            s.next_after(ts("2024-01-01T00:00:00Z"), &utc),
            Some(ts("2024-01-08T00:00:00Z"))
        );
        // With a star day of month only Mondays count.
        let s = Schedule::parse("0 0 * * mon").unwrap();
        assert_eq!(
            s.next_after(ts("2024-01-02T00:00:00Z"), &utc),
            Some(ts("2024-01-08T00:00:00Z"))
        );
    }

    #[test]
    fn time_zones() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let s = Schedule::parse("0 2 * * *").unwrap();
        assert_eq!(
            s.next_after(ts("2024-06-01T12:00:00Z"), &tz),
            Some(ts("2024-06-02T00:00:00Z"))
        );
        // 2024-03-31 02:00 does not exist in Berlin: resolved forward to 03:00 CEST.
        assert_eq!(
            s.next_after(ts("2024-03-30T12:00:00Z"), &tz),
            Some(ts("2024-03-31T01:00:00Z"))
        );
    }

    #[test]
    fn missed_schedules() {
        let utc = TimeZone::UTC;
        let s = Schedule::parse("* * * * *").unwrap();
        let (last, n) = most_recent(
            &s,
            &utc,
            ts("2024-01-01T00:00:00Z"),
            ts("2024-01-01T00:10:30Z"),
            100,
        );
        assert_eq!(last, Some(ts("2024-01-01T00:10:00Z")));
        assert_eq!(n, 10);
        let (last, n) = most_recent(
            &s,
            &utc,
            ts("2024-01-01T00:10:00Z"),
            ts("2024-01-01T00:10:30Z"),
            100,
        );
        assert_eq!((last, n), (None, 0));
        // Many missed: the count passes the cap and the latest one is still found.
        let (last, n) = most_recent(
            &s,
            &utc,
            ts("2024-01-01T00:00:00Z"),
            ts("2024-01-03T00:00:30Z"),
            100,
        );
        assert_eq!(last, Some(ts("2024-01-03T00:00:00Z")));
        assert!(n > 100);
    }
}
