//! Spend across tasks: the ledger every daemon appends to, and the caps of
//! `budget:` (a day, a month; in USD and in tokens).
//!
//! Each task that cost something adds one line to the ledger when it
//! finishes: `spend/<YYYY-MM>.ndjson` in the home (the UTC month of its end),
//! `{"at", "id", "usd", "tokens"}`, appended in one write, so several
//! daemons share one count. A daemon reads the current and the previous
//! month's file once, then only what was added since (it keeps its offset),
//! and adds the costs of the tasks running now (their `progress.json`).
//! A period starts at midnight, or on the 1st, in the caps' zone; a task's
//! cost counts in the period it finished in.

use crate::config::BudgetCaps;
use crate::store::Home;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;

/// One ledger line.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Line {
    at: Timestamp,
    id: String,
    usd: f64,
    tokens: u64,
}

fn dir(home: &Home) -> PathBuf {
    home.root().join("spend")
}

fn file_of(home: &Home, at: Timestamp) -> PathBuf {
    dir(home).join(format!("{}.ndjson", at.strftime("%Y-%m")))
}

/// Adds a finished task's cost to the ledger (nothing for one that cost nothing).
pub fn record(home: &Home, id: &str, usd: f64, tokens: u64) -> std::io::Result<()> {
    if usd <= 0.0 && tokens == 0 {
        return Ok(());
    }
    let at = Timestamp::now();
    std::fs::create_dir_all(dir(home))?;
    let mut line = serde_json::to_vec(&Line {
        at,
        id: id.to_string(),
        usd,
        tokens,
    })?;
    line.push(b'\n');
    // One write of a short line to a file opened for appending: lines of
    // several daemons never interleave.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file_of(home, at))?
        .write_all(&line)
}

/// What the ledger says, read incrementally.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Bytes read of each file.
    offsets: HashMap<PathBuf, u64>,
    /// Costs of the last two months or so: (when, usd, tokens).
    entries: Vec<(Timestamp, f64, u64)>,
}

impl Ledger {
    /// Reads what was added to this and last month's files since the last read.
    pub fn read_new(&mut self, home: &Home) {
        let now = Timestamp::now();
        let last_month = now
            .to_zoned(TimeZone::UTC)
            .first_of_month()
            .ok()
            .and_then(|z| z.checked_sub(1.day()).ok())
            .map(|z| z.timestamp());
        for at in last_month.into_iter().chain([now]) {
            let path = file_of(home, at);
            let from = self.offsets.get(&path).copied().unwrap_or(0);
            let Ok(mut f) = std::fs::File::open(&path) else {
                continue;
            };
            if f.seek(std::io::SeekFrom::Start(from)).is_err() {
                continue;
            }
            let mut text = String::new();
            if f.read_to_string(&mut text).is_err() {
                continue;
            }
            // Only whole lines: one being appended now is read next time.
            let whole = text.rfind('\n').map_or(0, |i| i + 1);
            for l in text[..whole].lines() {
                if let Ok(l) = serde_json::from_str::<Line>(l) {
                    self.entries.push((l.at, l.usd, l.tokens));
                }
            }
            self.offsets.insert(path, from + whole as u64);
        }
        // Older than any period that can still count.
        let horizon = now - jiff::SignedDuration::from_hours(24 * 64);
        self.entries.retain(|(at, _, _)| *at >= horizon);
    }

    /// USD and tokens of what finished at or after `since`.
    pub fn since(&self, since: Timestamp) -> (f64, u64) {
        self.entries
            .iter()
            .filter(|(at, _, _)| *at >= since)
            .fold((0.0, 0), |(u, t), (_, du, dt)| (u + du, t + dt))
    }
}

/// The day and the month `now` is in, in `tz`: their starts and ends.
pub fn periods(now: Timestamp, tz: &TimeZone) -> ((Zoned, Zoned), (Zoned, Zoned)) {
    let z = now.to_zoned(tz.clone());
    let day = z.start_of_day().unwrap_or_else(|_| z.clone());
    let next_day = day
        .tomorrow()
        .and_then(|d| d.start_of_day())
        .unwrap_or_else(|_| day.clone());
    let month = z
        .first_of_month()
        .and_then(|m| m.start_of_day())
        .unwrap_or_else(|_| day.clone());
    let next_month = month
        .checked_add(1.month())
        .and_then(|m| m.start_of_day())
        .unwrap_or_else(|_| next_day.clone());
    ((day, next_day), (month, next_month))
}

/// A cap that is reached: which, its limit, what was spent, and when its
/// period ends (the queue goes on then).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapHit {
    /// `daily_usd`, `monthly_usd`, `daily_tokens` or `monthly_tokens`.
    pub cap: String,
    pub limit: f64,
    pub spent: f64,
    /// When the period ends (RFC 3339 in the caps' zone).
    pub until: String,
}

/// What is left under the caps, and the first cap reached, if one is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Standing {
    pub usd_left: Option<f64>,
    pub tokens_left: Option<u64>,
    pub hit: Option<CapHit>,
}

/// Where the home stands under `caps` at `now`, with `running` (USD,
/// tokens) spent by the tasks running now on top of the ledger.
pub fn standing(caps: &BudgetCaps, ledger: &Ledger, running: (f64, u64), now: Timestamp) -> Standing {
    let tz = crate::schedule::zone(caps.tz.as_deref()).unwrap_or_else(|_| TimeZone::system());
    let ((day, day_end), (month, month_end)) = periods(now, &tz);
    let (day_usd, day_tokens) = ledger.since(day.timestamp());
    let (month_usd, month_tokens) = ledger.since(month.timestamp());
    let (run_usd, run_tokens) = running;
    let mut st = Standing::default();
    let checks = [
        ("daily_usd", caps.daily_usd, day_usd + run_usd, &day_end),
        ("monthly_usd", caps.monthly_usd, month_usd + run_usd, &month_end),
        (
            "daily_tokens",
            caps.daily_tokens.map(|t| t as f64),
            (day_tokens + run_tokens) as f64,
            &day_end,
        ),
        (
            "monthly_tokens",
            caps.monthly_tokens.map(|t| t as f64),
            (month_tokens + run_tokens) as f64,
            &month_end,
        ),
    ];
    for (cap, limit, spent, end) in checks {
        let Some(limit) = limit else { continue };
        let left = (limit - spent).max(0.0);
        if cap.ends_with("usd") {
            st.usd_left = Some(st.usd_left.map_or(left, |l: f64| l.min(left)));
        } else {
            let left = left as u64;
            st.tokens_left = Some(st.tokens_left.map_or(left, |l| l.min(left)));
        }
        if spent >= limit && st.hit.is_none() {
            st.hit = Some(CapHit {
                cap: cap.to_string(),
                limit,
                spent,
                until: end.to_string(),
            });
        }
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_at_local_midnight_and_on_the_first() {
        let tz = TimeZone::get("America/New_York").unwrap();
        let now: Timestamp = "2026-12-08T03:00:00Z".parse().unwrap(); // 22:00 on the 7th there
        let ((day, day_end), (month, month_end)) = periods(now, &tz);
        assert_eq!(day.to_string(), "2026-12-07T00:00:00-05:00[America/New_York]");
        assert_eq!(day_end.to_string(), "2026-12-08T00:00:00-05:00[America/New_York]");
        assert_eq!(month.to_string(), "2026-12-01T00:00:00-05:00[America/New_York]");
        assert_eq!(month_end.to_string(), "2027-01-01T00:00:00-05:00[America/New_York]");
    }

    #[test]
    fn a_cap_reached_lifts_when_its_period_ends() {
        let caps = BudgetCaps {
            daily_usd: Some(1.0),
            monthly_usd: Some(100.0),
            tz: Some("Asia/Tokyo".into()),
            ..Default::default()
        };
        let spent_at: Timestamp = "2026-12-08T14:00:00Z".parse().unwrap(); // 23:00 in Tokyo
        let ledger = Ledger {
            entries: vec![(spent_at, 1.5, 0)],
            ..Default::default()
        };
        let before = standing(&caps, &ledger, (0.0, 0), "2026-12-08T14:59:59Z".parse().unwrap());
        let hit = before.hit.unwrap();
        assert_eq!(
            (hit.cap.as_str(), hit.until.as_str()),
            ("daily_usd", "2026-12-09T00:00:00+09:00[Asia/Tokyo]")
        );
        let after = standing(&caps, &ledger, (0.0, 0), "2026-12-08T15:00:00Z".parse().unwrap());
        assert_eq!(after.hit, None, "a new day in Tokyo");
        assert!(
            (after.usd_left.unwrap() - 1.0).abs() < 1e-9,
            "the day's cap is whole again: {after:?}"
        );
        // The month still counts it.
        let month = BudgetCaps {
            monthly_usd: Some(1.0),
            ..caps
        };
        assert_eq!(
            standing(&month, &ledger, (0.0, 0), "2026-12-08T15:00:00Z".parse().unwrap())
                .hit
                .map(|h| h.until),
            Some("2027-01-01T00:00:00+09:00[Asia/Tokyo]".to_string())
        );
    }

    #[test]
    fn the_ledger_is_shared_read_incrementally_and_counted_by_period() {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::new(tmp.path()).unwrap();
        record(&home, "a", 0.04, 1000).unwrap();
        record(&home, "free", 0.0, 0).unwrap();
        let mut ledger = Ledger::default();
        ledger.read_new(&home);
        record(&home, "b", 0.02, 500).unwrap();
        ledger.read_new(&home);
        ledger.read_new(&home);
        assert_eq!(ledger.entries.len(), 2, "each line read once");
        let (usd, tokens) = ledger.since(Timestamp::now() - jiff::SignedDuration::from_hours(1));
        assert!((usd - 0.06).abs() < 1e-9 && tokens == 1500);
        // Yesterday's spend is not today's.
        ledger
            .entries
            .push((Timestamp::now() - jiff::SignedDuration::from_hours(49), 100.0, 10));
        let caps = BudgetCaps {
            daily_usd: Some(0.1),
            monthly_tokens: Some(1_000_000),
            tz: Some("UTC".into()),
            ..Default::default()
        };
        let st = standing(&caps, &ledger, (0.0, 0), Timestamp::now());
        assert!(st.hit.is_none(), "{st:?}");
        assert!((st.usd_left.unwrap() - 0.04).abs() < 1e-9);
        // A running task's cost counts too.
        let st = standing(&caps, &ledger, (0.05, 0), Timestamp::now());
        let hit = st.hit.unwrap();
        assert_eq!(hit.cap, "daily_usd");
        assert_eq!(st.usd_left, Some(0.0));
        assert!(hit.until.ends_with("T00:00:00+00:00[UTC]"), "{}", hit.until);
    }
}
