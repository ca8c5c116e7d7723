//! Cron expressions: when a schedule fires.
//!
//! Five fields, `minute hour day-of-month month day-of-week`, as crontab(5)
//! has them: `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, lists
//! `a,b`, month and weekday names (`jan`, `mon`; Sunday is 0 or 7). When both
//! day fields are restricted a day matching either fires, as Vixie cron does.
//! A sixth field in front, seconds, is accepted too (`*/2 * * * * *`): for
//! schedules a few seconds apart, which tests and demos need.
//!
//! Times are found in the schedule's time zone on the civil clock: a time
//! that a daylight-saving jump skips fires shifted by the jump (02:30 on a
//! night the clocks go from 02:00 to 03:00 fires at 03:30), and a time the
//! clock passes twice fires once, the first time.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{ToSpan, Zoned};

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// The day fields as written: `*` does not restrict.
    any_day: bool,
    any_weekday: bool,
}

/// How far ahead a firing is looked for: a leap day fires within 8 years.
const HORIZON_YEARS: i16 = 9;

impl Cron {
    /// Parses `text`; the error says which field is wrong and why.
    pub fn parse(text: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let (sec, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => {
                return Err(format!(
                    "`{text}` has {n} fields; a cron expression has five: minute hour day-of-month month day-of-week (e.g. `0 2 * * *`: every night at 2), or six with seconds first"
                ));
            }
        };
        let cron = Cron {
            seconds: field(sec, "second", 0, 59, &[])?,
            minutes: field(rest[0], "minute", 0, 59, &[])?,
            hours: field(rest[1], "hour", 0, 23, &[])?,
            days: field(rest[2], "day of month", 1, 31, &[])?,
            months: field(rest[3], "month", 1, 12, &MONTHS)?,
            weekdays: {
                let w = field(rest[4], "day of week", 0, 7, &WEEKDAYS)?;
                // 7 is Sunday too.
                (w | (w >> 7)) & 0x7f
            },
            // Vixie cron: a day field that starts with `*` (`*/2` too) does
            // not restrict the day on its own.
            any_day: rest[2].starts_with('*'),
            any_weekday: rest[4].starts_with('*'),
        };
        Ok(cron)
    }

    fn day_matches(&self, dt: &DateTime) -> bool {
        let day = self.days & (1 << dt.day()) != 0;
        let weekday = self.weekdays & (1 << dt.weekday().to_sunday_zero_offset()) != 0;
        match (self.any_day, self.any_weekday) {
            (false, false) => day || weekday,
            _ => day && weekday,
        }
    }

    /// The first firing strictly after `after`, in time zone `tz`; `None` if
    /// it never fires (February 30th).
    pub fn next_after(&self, after: &jiff::Timestamp, tz: &TimeZone) -> Option<Zoned> {
        let start = after.to_zoned(tz.clone());
        let limit = start.datetime().checked_add(HORIZON_YEARS.years()).ok()?;
        let mut dt = start.datetime().round(jiff::Unit::Second).ok()?;
        if dt <= start.datetime() {
            dt = dt.checked_add(1.second()).ok()?;
        }
        while dt < limit {
            let next = if self.months & (1 << dt.month()) == 0 {
                dt.date()
                    .first_of_month()
                    .checked_add(1.month())
                    .ok()?
                    .to_datetime(jiff::civil::Time::midnight())
            } else if !self.day_matches(&dt) {
                dt.date().tomorrow().ok()?.to_datetime(jiff::civil::Time::midnight())
            } else if self.hours & (1 << dt.hour()) == 0 {
                dt.with().minute(0).second(0).build().ok()?.checked_add(1.hour()).ok()?
            } else if self.minutes & (1 << dt.minute()) == 0 {
                dt.with().second(0).build().ok()?.checked_add(1.minute()).ok()?
            } else if self.seconds & (1 << dt.second()) == 0 {
                dt.checked_add(1.second()).ok()?
            } else {
                let z = dt.to_zoned(tz.clone()).ok()?;
                // A civil time in a gap lands after it; one that went back
                // past `after` (a fold) already fired.
                if z.timestamp() > *after {
                    return Some(z);
                }
                dt.checked_add(1.second()).ok()?
            };
            dt = next;
        }
        None
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// One field as a bit set of the values it allows, within `lo..=hi`; `names`
/// stand for `lo`, `lo + 1`, ...
fn field(text: &str, what: &str, lo: u32, hi: u32, names: &[&str]) -> Result<u64, String> {
    let bad = |why: String| format!("the {what} field `{text}`: {why}");
    let value = |v: &str| -> Result<u32, String> {
        let v = v.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| *n == v) {
            return Ok(lo + i as u32);
        }
        match v.parse::<u32>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(n),
            Ok(n) => Err(bad(format!("{n} is not between {lo} and {hi}"))),
            Err(_) => Err(bad(format!(
                "`{v}` is not a number{}",
                if names.is_empty() { "" } else { " or a name" }
            ))),
        }
    };
    let mut set = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| bad(format!("the step `{s}` is not a number")))?;
                if step == 0 {
                    return Err(bad("a step of 0".into()));
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                // `a/n`: from a to the end, every n.
                None if step > 1 => (value(r)?, hi),
                None => {
                    let v = value(r)?;
                    (v, v)
                }
            },
        };
        if from > to {
            return Err(bad(format!("the range {from}-{to} runs backwards")));
        }
        for v in (from..=to).step_by(step as usize) {
            set |= 1 << v;
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(cron: &str, after: &str, tz: &str) -> String {
        let tz = TimeZone::get(tz).unwrap();
        let after: jiff::Timestamp = after.parse().unwrap();
        Cron::parse(cron)
            .unwrap()
            .next_after(&after, &tz)
            .map(|z| z.to_string())
            .unwrap_or_else(|| "never".into())
    }

    #[test]
    fn fields_steps_names_and_both_day_fields() {
        assert_eq!(
            next("0 2 * * *", "2026-12-07T19:00:00Z", "UTC"),
            "2026-12-08T02:00:00+00:00[UTC]"
        );
        assert_eq!(
            next("*/15 9-17 * * mon-fri", "2026-12-05T10:00:00Z", "UTC"),
            "2026-12-07T09:00:00+00:00[UTC]",
            "Saturday: next is Monday 9:00"
        );
        // Every other day and Mondays: both start with or without `*`.
        assert_eq!(
            next("0 0 */2 * 1", "2026-12-01T12:00:00Z", "UTC"),
            "2026-12-07T00:00:00+00:00[UTC]",
            "`*/2` does not restrict on its own: odd days that are Mondays"
        );
        // Day 1 or any Friday (both restricted: either).
        assert_eq!(
            next("0 0 1 * 5", "2026-12-01T00:00:00Z", "UTC"),
            "2026-12-04T00:00:00+00:00[UTC]"
        );
        assert_eq!(
            next("0 0 * jan sun", "2026-12-07T00:00:00Z", "UTC"),
            "2027-01-03T00:00:00+00:00[UTC]"
        );
        assert_eq!(
            next("30 4 * * 7", "2026-12-07T00:00:00Z", "UTC"),
            "2026-12-13T04:30:00+00:00[UTC]",
            "7 is Sunday"
        );
        assert_eq!(
            next("*/2 * * * * *", "2026-12-07T00:00:00.5Z", "UTC"),
            "2026-12-07T00:00:02+00:00[UTC]",
            "a seconds field"
        );
        assert_eq!(
            next("0 0 29 2 *", "2026-03-01T00:00:00Z", "UTC"),
            "2028-02-29T00:00:00+00:00[UTC]"
        );
        assert_eq!(next("0 0 30 2 *", "2026-03-01T00:00:00Z", "UTC"), "never");
    }

    #[test]
    fn time_zones_and_daylight_saving() {
        assert_eq!(
            next("0 2 * * *", "2026-12-07T19:00:00Z", "Europe/Berlin"),
            "2026-12-08T02:00:00+01:00[Europe/Berlin]"
        );
        // 02:30 does not exist on 2027-03-28 in Berlin: it fires shifted by the jump.
        assert_eq!(
            next("30 2 * * *", "2027-03-27T12:00:00Z", "Europe/Berlin"),
            "2027-03-28T03:30:00+02:00[Europe/Berlin]"
        );
        // 02:30 happens twice on 2027-10-31: once.
        let first = next("30 2 * * *", "2027-10-30T12:00:00Z", "Europe/Berlin");
        assert_eq!(first, "2027-10-31T02:30:00+02:00[Europe/Berlin]");
        assert_eq!(
            next("30 2 * * *", "2027-10-31T00:30:00Z", "Europe/Berlin"),
            "2027-11-01T02:30:00+01:00[Europe/Berlin]"
        );
    }

    #[test]
    fn bad_expressions_say_which_field_and_why() {
        for (cron, says) in [
            ("0 2 * *", "has 4 fields"),
            ("61 * * * *", "the minute field `61`: 61 is not between 0 and 59"),
            ("* 5-2 * * *", "runs backwards"),
            ("*/0 * * * *", "a step of 0"),
            ("* * * foo *", "`foo` is not a number or a name"),
        ] {
            let e = Cron::parse(cron).unwrap_err();
            assert!(e.contains(says), "{cron}: {e}");
        }
    }
}
