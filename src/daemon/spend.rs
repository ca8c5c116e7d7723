//! The daemon's side of `budget:` spend caps: where the home stands, looked
//! at before tasks start (the ledger's new lines, the live daemons' running
//! tasks: a few small reads, and none while no cap is set); the queue waits
//! while a cap is reached, and goes on when its period ends or the cap is
//! raised (looked at again every [`LOOK_EVERY`] meanwhile).

use crate::config::BudgetCaps;
use crate::events::{Event, EventLog};
use crate::spend::{CapHit, Ledger, Standing};
use crate::store::{Home, TaskDir};
use std::time::Duration;

/// How often the ledger and the running tasks' costs are looked at.
pub const LOOK_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct SpendWatch {
    ledger: Ledger,
    standing: Standing,
}

impl SpendWatch {
    /// Looks again, and says a cap reached or lifted. `running` are the ids
    /// of the tasks running in any daemon.
    pub fn look(&mut self, caps: &BudgetCaps, home: &Home, events: &EventLog, running: impl FnOnce() -> Vec<String>) {
        if !caps.enabled() {
            if let Some(hit) = self.standing.hit.take() {
                lifted(events, &hit);
            }
            self.standing = Standing::default();
            return;
        }
        self.ledger.read_new(home);
        // What the runs in flight spent so far (their task's progress.json;
        // a finished run's cost is in the ledger and no longer there).
        let running_usd: f64 = running()
            .iter()
            .filter_map(|id| {
                let dir = TaskDir::new(home.task_dir(id));
                if dir.result().exists() {
                    return None;
                }
                crate::store::record::ProgressRecord::load(&dir.progress())?.cost_usd
            })
            .sum();
        let now = self.standing_at(caps, running_usd);
        match (&self.standing.hit, &now.hit) {
            (None, Some(hit)) => events.emit(
                None,
                Event::SpendCapReached {
                    cap: hit.cap.clone(),
                    limit: hit.limit,
                    spent: hit.spent,
                    resumes_at: hit.until.clone(),
                },
            ),
            (Some(old), None) => lifted(events, old),
            _ => {}
        }
        self.standing = now;
    }

    fn standing_at(&self, caps: &BudgetCaps, running_usd: f64) -> Standing {
        crate::spend::standing(caps, &self.ledger, (running_usd, 0), jiff::Timestamp::now())
    }

    /// The cap reached, if one is: nothing starts.
    pub fn hit(&self) -> Option<&CapHit> {
        self.standing.hit.as_ref()
    }

    /// What a run may still spend under the caps (USD, tokens).
    pub fn left(&self) -> (Option<f64>, Option<u64>) {
        (self.standing.usd_left, self.standing.tokens_left)
    }

    /// When the reached cap's period ends.
    pub fn resumes_at(&self) -> Option<jiff::Timestamp> {
        self.hit()?.until.parse::<jiff::Zoned>().ok().map(|z| z.timestamp())
    }
}

fn lifted(events: &EventLog, hit: &CapHit) {
    events.emit(None, Event::SpendCapLifted { cap: hit.cap.clone() });
}
