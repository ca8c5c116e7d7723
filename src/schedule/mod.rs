//! Recurring tasks (`schedules:` in the config): when a schedule's cron
//! expression fires, a task file named after it and the firing time
//! (`nightly-20261208T020000Z.json`) is dropped into the inbox, and from
//! there it is a task like any other.
//!
//! What fired is kept in the home, so that every daemon sharing it and every
//! restart agree: `schedules/<name>/` holds `since` (when the schedule was
//! first seen: it never fires for times before) and one empty marker per
//! firing, named by its time. A firing is taken by creating its marker, which
//! only one daemon can do (`create_new`), so two daemons never fire one time
//! twice; the winner then writes the task file. A run missed while no daemon
//! was up is found at the next start by the markers: with `catch_up: one` the
//! latest missed time fires once, then the schedule goes on from now.

pub mod cron;

use crate::config::{CatchUp, ScheduleConfig};
use crate::store::Home;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::io;
use std::path::PathBuf;

/// Markers kept per schedule: the newest firings (older ones are removed).
const KEEP_MARKERS: usize = 50;

/// Most firings walked to find the latest missed one (a schedule every
/// second, down for a day, is 86,400).
const MAX_WALK: usize = 1_000_000;

/// The schedule's time zone: the one named, or the machine's.
pub fn zone(name: Option<&str>) -> Result<TimeZone, String> {
    match name {
        None => Ok(TimeZone::system()),
        Some(n) => TimeZone::get(n).map_err(|_| {
            format!("tz: `{n}` is not a time zone this machine knows (an IANA name such as Europe/Berlin or America/New_York)")
        }),
    }
}

/// A schedule with its parsed expression and zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub config: ScheduleConfig,
    pub cron: cron::Cron,
    pub tz: TimeZone,
}

impl Schedule {
    /// The config's schedules (the config was checked when loaded: one that
    /// does not parse now is left out).
    pub fn all(config: &crate::config::Config) -> Vec<Schedule> {
        config
            .schedules
            .iter()
            .filter_map(|s| {
                Some(Schedule {
                    cron: cron::Cron::parse(&s.cron).ok()?,
                    tz: zone(s.tz.as_deref()).ok()?,
                    config: s.clone(),
                })
            })
            .collect()
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The first firing after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        self.cron.next_after(&t, &self.tz).map(|z| z.timestamp())
    }

    /// The next `n` firings after `t`.
    pub fn upcoming(&self, t: Timestamp, n: usize) -> Vec<jiff::Zoned> {
        let mut out = Vec::with_capacity(n);
        let mut at = t;
        while out.len() < n {
            let Some(z) = self.cron.next_after(&at, &self.tz) else {
                break;
            };
            at = z.timestamp();
            out.push(z);
        }
        out
    }

    fn dir(&self, home: &Home) -> PathBuf {
        home.root().join("schedules").join(self.name())
    }

    /// When it was first seen (recorded now if it never was).
    pub fn since(&self, home: &Home) -> io::Result<Timestamp> {
        let dir = self.dir(home);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("since");
        let now = Timestamp::now();
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                io::Write::write_all(&mut f, now.to_string().as_bytes())?;
                Ok(now)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Ok(std::fs::read_to_string(&path)?.trim().parse().unwrap_or(now))
            }
            Err(e) => Err(e),
        }
    }

    /// The newest time it fired, from its markers.
    pub fn last_fired(&self, home: &Home) -> Option<Timestamp> {
        markers(&self.dir(home)).into_iter().max().and_then(|m| parse_stamp(&m))
    }

    /// Where it stands now: the latest time it should have fired and has
    /// not (a run missed while no daemon was up), if `catch_up` wants it, and
    /// its next firing after now.
    pub fn plan(&self, home: &Home, now: Timestamp) -> io::Result<(Option<Timestamp>, Option<Timestamp>)> {
        if self.config.catch_up == CatchUp::None {
            self.since(home)?;
            return Ok((None, self.next_after(now)));
        }
        let from = self.last_fired(home).map_or_else(|| self.since(home), Ok)?;
        let mut missed = None;
        let mut at = from;
        for _ in 0..MAX_WALK {
            match self.next_after(at) {
                Some(t) if t <= now => {
                    missed = Some(t);
                    at = t;
                }
                _ => break,
            }
        }
        Ok((missed, self.next_after(now)))
    }

    /// Fires the schedule for time `at`: takes the firing (its marker) and
    /// drops the task file. `Ok(None)`: another daemon took it.
    pub fn fire(&self, home: &Home, at: Timestamp) -> io::Result<Option<String>> {
        let dir = self.dir(home);
        std::fs::create_dir_all(&dir)?;
        let stamp = stamp(at);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(&stamp))
        {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(e),
        }
        // Its task could not be written: the firing is given back (its
        // marker removed), for another daemon or the next start to take.
        let file = self.drop_task(home, &stamp).inspect_err(|_| {
            let _ = std::fs::remove_file(dir.join(&stamp));
        })?;
        prune(&dir);
        Ok(Some(file))
    }

    /// Drops its task now, outside the schedule (`orchestrator schedule run`):
    /// no marker, so its own firings are untouched.
    pub fn run_now(&self, home: &Home) -> io::Result<String> {
        self.drop_task(home, &format!("{}-now", stamp(Timestamp::now())))
    }

    /// Writes `<name>-<suffix>.json` into the inbox under a hidden name, then
    /// renames it in whole.
    fn drop_task(&self, home: &Home, suffix: &str) -> io::Result<String> {
        let name = format!("{}-{suffix}.json", self.name());
        let tmp = home.inbox().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, self.config.task_bytes())?;
        let to = home.inbox().join(&name);
        if to.exists() {
            let _ = std::fs::remove_file(&tmp);
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{name} is already in the inbox"),
            ));
        }
        std::fs::rename(&tmp, &to)?;
        Ok(name)
    }
}

/// A firing time as it names markers and files: `20261208T020000Z` (UTC;
/// sorts by time).
pub fn stamp(t: Timestamp) -> String {
    t.strftime("%Y%m%dT%H%M%SZ").to_string()
}

fn parse_stamp(s: &str) -> Option<Timestamp> {
    jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", s)
        .ok()?
        .to_zoned(TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

/// The firing markers in `dir` (not `since`).
fn markers(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| parse_stamp(n).is_some())
                .collect()
        })
        .unwrap_or_default()
}

/// Keeps the newest [`KEEP_MARKERS`] markers.
fn prune(dir: &std::path::Path) {
    let mut all = markers(dir);
    if all.len() <= KEEP_MARKERS {
        return;
    }
    all.sort();
    for old in &all[..all.len() - KEEP_MARKERS] {
        let _ = std::fs::remove_file(dir.join(old));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(cron: &str, catch_up: CatchUp) -> Schedule {
        let config = ScheduleConfig {
            name: "nightly".into(),
            cron: cron.into(),
            tz: Some("UTC".into()),
            catch_up,
            task: serde_json::from_str(r#"{"agent": "command", "command": "true"}"#).unwrap(),
        };
        Schedule {
            cron: cron::Cron::parse(cron).unwrap(),
            tz: TimeZone::UTC,
            config,
        }
    }

    fn home() -> (tempfile::TempDir, Home) {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::new(tmp.path()).unwrap();
        std::fs::create_dir_all(home.inbox()).unwrap();
        (tmp, home)
    }

    #[test]
    fn a_firing_is_taken_once_and_drops_its_task() {
        let (_t, home) = home();
        let s = schedule("0 2 * * *", CatchUp::One);
        let at: Timestamp = "2026-12-08T02:00:00Z".parse().unwrap();
        assert_eq!(
            s.fire(&home, at).unwrap().as_deref(),
            Some("nightly-20261208T020000Z.json")
        );
        assert_eq!(s.fire(&home, at).unwrap(), None, "a second daemon finds it taken");
        let dropped = std::fs::read(home.inbox().join("nightly-20261208T020000Z.json")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&dropped).unwrap();
        assert_eq!(v["command"], "true");
        assert_eq!(s.last_fired(&home), Some(at));
    }

    #[test]
    fn a_new_schedule_starts_from_now_and_a_missed_run_is_caught_up_once() {
        let (_t, home) = home();
        let s = schedule("0 * * * *", CatchUp::One);
        let now: Timestamp = "2026-12-08T05:30:00Z".parse().unwrap();
        // Never seen: `since` is now (the real clock), so nothing was missed.
        let (missed, _) = s.plan(&home, Timestamp::now()).unwrap();
        assert_eq!(missed, None);
        // It last fired at 01:00; down until 05:30: 05:00 is the one to run.
        s.fire(&home, "2026-12-08T01:00:00Z".parse().unwrap()).unwrap();
        let (missed, next) = s.plan(&home, now).unwrap();
        assert_eq!(missed, Some("2026-12-08T05:00:00Z".parse().unwrap()));
        assert_eq!(next, Some("2026-12-08T06:00:00Z".parse().unwrap()));
        let none = schedule("0 * * * *", CatchUp::None);
        assert_eq!(none.plan(&home, now).unwrap().0, None);
    }

    #[test]
    fn only_the_newest_markers_are_kept() {
        let (_t, home) = home();
        let s = schedule("* * * * * *", CatchUp::One);
        let start: Timestamp = "2026-12-08T00:00:00Z".parse().unwrap();
        for i in 0..(KEEP_MARKERS as i64 + 5) {
            s.fire(&home, start + jiff::SignedDuration::from_secs(i)).unwrap();
        }
        assert_eq!(markers(&s.dir(&home)).len(), KEEP_MARKERS);
        assert_eq!(
            s.last_fired(&home),
            Some(start + jiff::SignedDuration::from_secs(KEEP_MARKERS as i64 + 4))
        );
    }
}
