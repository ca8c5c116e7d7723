//! What the daemon does when a deadline of its loop passes: the config check,
//! the inbox rescan, the recovery scan, the retention pass, the dependency
//! look-up, the schedules, and the held files whose start time came.

use super::handlers::Daemon;
use super::{homecheck, recovery};
use crate::events::{Event, Violation};
use crate::store::daemons;
use crate::store::index;
use std::time::SystemTime;
use tokio::time::Instant;

impl Daemon {
    /// A deadline passed: whatever of the config check, the rescan and the
    /// recovery scan is due.
    pub fn on_deadline(&mut self) {
        let now = Instant::now();
        if self.config_check_at.is_some_and(|t| now >= t) {
            self.config_check_at = None;
            if self.config_source.changed() {
                self.reload("file");
            }
        }
        // Both read folders that can hold 100,000 entries: done off the
        // runtime worker, whose runners move to the other worker meanwhile.
        if now >= self.rescan_at {
            off_the_worker(|| self.on_rescan_due(now));
        }
        if now >= self.recover_at {
            off_the_worker(|| self.on_recovery_due(now));
        }
        if now >= self.retention_at {
            self.on_retention_due(now);
        }
        if self.deps.len() > 0 && now >= self.deps_look_at {
            self.on_deps_look_due(now);
        }
        if self.stopping.is_none() {
            self.scheduler.fire_due(&self.shared.home, &self.shared.events);
        }
        // Held files whose start time (`not_before`, `delay`) came.
        let due = self.deps.due(SystemTime::now());
        self.apply(due);
    }

    fn on_rescan_due(&mut self, now: Instant) {
        // The inbox must still be the folder the daemon started on: one renamed
        // away and replaced (by whoever could write above it) is someone
        // else's, and nothing more is taken from it.
        if self.stopping.is_none() && homecheck::identity(&self.shared.home.inbox()) != self.inbox_identity {
            self.shared.events.emit(
                None,
                Event::SecurityViolation(Violation {
                    reason: "inbox_replaced".into(),
                    inbox: Some(self.shared.home.inbox()),
                    error: Some("the inbox is no longer the folder the daemon started on; the daemon stops taking tasks and shuts down".into()),
                    hint: Some("check who replaced it (see `orchestrator doctor`), then start the daemon again".into()),
                    ..Violation::default()
                }),
            );
            tracing::error!(inbox = %self.shared.home.inbox().display(), "the inbox was replaced while the daemon ran: shutting down");
            self.on_stop_signal("inbox_replaced");
        }
        if let Err(e) = self.intake.rescan(now.into_std(), &mut self.queue) {
            tracing::error!(error = %e, "cannot list the inbox");
        }
        let queue = &self.queue;
        self.deps.keep_only(|n| queue.is_held(n));
        // For homes on shares, where no event comes: one stat.
        if self.config_source.changed() {
            self.reload("file");
        }
        self.rescan_at = now + self.shared.config().rescan_interval.0;
    }

    /// Applies `retention:` on the blocking pool (a pass reads every result),
    /// unless the last pass is still going.
    fn on_retention_due(&mut self, now: Instant) {
        let config = self.shared.config();
        self.retention_at = now + config.retention.every.0;
        let Some(policy) = crate::retention::Policy::of(&config.retention) else {
            return;
        };
        if self.stopping.is_some() || self.retention_pass.as_ref().is_some_and(|p| !p.is_finished()) {
            return;
        }
        let (home, events) = (self.shared.home.clone(), self.shared.events.clone());
        self.retention_pass = Some(tokio::task::spawn_blocking(move || {
            crate::retention::run(&home, &policy, &events)
        }));
    }

    fn on_recovery_due(&mut self, now: Instant) {
        let home = &self.shared.home;
        daemons::forget_interrupted(home, |id| {
            home.own_task_dir(id)
                .is_some_and(|d| crate::store::TaskDir::new(d).is_orphan())
        });
        let dead = daemons::dead(&self.shared.home, self.registration.lock_path());
        if self.stopping.is_none() && (!dead.is_empty() || self.own_orphans) {
            if !dead.is_empty() {
                tracing::info!(
                    peers = dead.len(),
                    "a daemon sharing this home died; taking over its tasks"
                );
            }
            self.own_orphans = false;
            self.recover();
            if !dead.is_empty() {
                // The dead daemon's last finishes: index rows and final events.
                let _ = self.shared.index.flush();
                if let Ok(added) = index::reconcile(&self.shared.home) {
                    recovery::announce_lost_finishes(&self.shared.home, &self.shared.events, &added);
                }
            }
            for d in dead {
                daemons::remove_dead(&d);
            }
        }
        self.recover_at = now + self.shared.config().recovery_interval.0;
    }
}

/// Runs blocking work `f` from the loop without holding up the tasks queued
/// on its runtime worker (they are handed to another worker first). On a
/// single-threaded runtime (unit tests) it just runs.
fn off_the_worker<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}
