//! The daemon's side of `schedules:`: when each schedule fires next, and
//! firing it then (see [`crate::schedule`] for what a firing is and why two
//! daemons never fire one time twice).

use crate::events::{Event, EventLog};
use crate::schedule::Schedule;
use crate::store::Home;
use jiff::Timestamp;

/// The schedules of the config in force, each with its next firing.
#[derive(Default)]
pub struct Scheduler {
    next: Vec<(Schedule, Option<Timestamp>)>,
}

impl Scheduler {
    /// Takes up the config's schedules: a run missed while no daemon was up
    /// fires now (`catch_up: one`), then each waits for its next time.
    /// Called at the start; a reload calls [`Self::reload`].
    pub fn start(config: &crate::config::Config, home: &Home, events: &EventLog) -> Self {
        Self::take_up(config, home, events, true)
    }

    /// The schedules of a reloaded config, each from now: an edited
    /// expression is not a missed run.
    pub fn reload(config: &crate::config::Config, home: &Home, events: &EventLog) -> Self {
        Self::take_up(config, home, events, false)
    }

    fn take_up(config: &crate::config::Config, home: &Home, events: &EventLog, catch_up: bool) -> Self {
        let now = Timestamp::now();
        let mut next = Vec::new();
        for s in Schedule::all(config) {
            match s.plan(home, now) {
                Ok((missed, upcoming)) => {
                    if let Some(at) = missed.filter(|_| catch_up) {
                        fire(&s, home, events, at, true);
                    }
                    next.push((s, upcoming));
                }
                Err(e) => {
                    tracing::error!(schedule = s.name(), error = %e, "cannot read or keep the schedule's state in schedules/: it does not fire");
                }
            }
        }
        Scheduler { next }
    }

    /// The earliest next firing.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.next.iter().filter_map(|(_, t)| *t).min()
    }

    /// Fires every schedule whose time came, once (a daemon that slept past
    /// several fires the last of them), and finds its next time.
    pub fn fire_due(&mut self, home: &Home, events: &EventLog) {
        let now = Timestamp::now();
        for (s, next) in &mut self.next {
            let Some(at) = *next else { continue };
            if at > now {
                continue;
            }
            // The latest time that came, if the loop woke late.
            let mut latest = at;
            while let Some(t) = s.next_after(latest).filter(|t| *t <= now) {
                latest = t;
            }
            fire(s, home, events, latest, false);
            *next = s.next_after(now);
        }
    }
}

fn fire(s: &Schedule, home: &Home, events: &EventLog, at: Timestamp, caught_up: bool) {
    match s.fire(home, at) {
        Ok(Some(file)) => events.emit(
            None,
            Event::ScheduleFired {
                schedule: s.name().to_string(),
                at: at.to_string(),
                file,
                caught_up,
            },
        ),
        // Another daemon sharing the home took this firing.
        Ok(None) => {}
        Err(e) => tracing::error!(schedule = s.name(), at = %at, error = %e, "the schedule could not drop its task"),
    }
}
