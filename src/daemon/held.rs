//! The daemon's handlers for what holds queued files back: the tasks they
//! wait for (`after:`), their start times, and the home's spend caps. The
//! loop's other handlers call these; `dependencies`, `spend` and
//! `schedules` hold the state.

use super::dependencies::Decided;
use super::handlers::Daemon;
use super::runner::TaskRun;
use crate::store::daemons;
use std::time::SystemTime;
use tokio::time::Instant;

impl Daemon {
    /// Held files whose wait is over: to the run order, or to be ended.
    pub(super) fn apply(&mut self, decided: Vec<Decided>) {
        for d in decided {
            match d {
                Decided::Ready(name) => {
                    self.queue.release(&name);
                }
                // Only a file still held here (another daemon may have ended it).
                Decided::Doomed(name, e) if self.queue.is_held(&name) => self.doomed.push((name, e)),
                Decided::Doomed(..) => {}
            }
        }
    }

    /// Claims the doomed held files and ends each as cancelled (its runner
    /// writes the result, without a slot: nothing runs).
    pub fn end_doomed(&mut self) {
        for (name, e) in std::mem::take(&mut self.doomed) {
            let Some(q) = self.queue.remove(&name) else { continue };
            match crate::claim::claim(&self.shared.home, &name) {
                Ok(Some(claimed)) => {
                    self.deps.claimed(&name, &claimed.id);
                    self.deps.forget(&name);
                    let spec = self.judged.take(&name);
                    let run = TaskRun {
                        claimed,
                        recovered: None,
                        queued: Some(q),
                        spec,
                        doomed: Some(e),
                        waited_for: None,
                    };
                    self.spawn(run, None);
                }
                Ok(None) => self.judged.forget(&name),
                Err(err) => {
                    self.judged.forget(&name);
                    self.claim_failed(&name, &err);
                }
            }
        }
    }

    /// Looks at the home's spend before tasks start, and says whether a
    /// `budget:` cap is reached: then nothing starts, and running tasks wait
    /// before their next run.
    pub(super) fn spend_capped(&mut self) -> bool {
        let config = self.shared.config();
        // Nothing to start and nothing running: nothing to hold.
        let idle = self.queue.is_empty() && self.stops.is_empty();
        if (!config.budget.enabled() || idle) && self.spend.hit().is_none() {
            return false;
        }
        let (home, stops) = (&self.shared.home, &self.stops);
        let running = || {
            let mut ids: Vec<String> = stops.keys().cloned().collect();
            for d in daemons::live(home) {
                ids.extend(d.running);
            }
            ids.sort();
            ids.dedup();
            ids
        };
        self.spend.look(&config.budget, home, &self.shared.events, running);
        let (usd, tokens) = self.spend.left();
        *self.shared.spend_left.lock().unwrap_or_else(|e| e.into_inner()) = super::SpendLeft {
            usd,
            tokens,
            blocked_until: self.spend.resumes_at().map(SystemTime::from),
        };
        self.spend.hit().is_some()
    }

    /// Held files that wait for tasks or files this daemon does not run or
    /// hold: what the home says of them now.
    pub(super) fn on_deps_look_due(&mut self, now: Instant) {
        let (stops, queue, intake) = (&self.stops, &self.queue, &self.intake);
        let decided = self.deps.look(&self.shared.home, |t| match t {
            crate::deps::Target::Task(id) => stops.contains_key(id),
            crate::deps::Target::File(name) => queue.shared_name(name).is_some() || intake.is_settling(name),
        });
        self.apply(decided);
        self.deps_look_at = now + super::dependencies::LOOK_EVERY;
    }
}
