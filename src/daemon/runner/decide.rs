//! What follows a failed attempt: the runner's retry rule as a pure function,
//! so that it can be read in one place and tested without a process or a clock.

use crate::agents::outcome::{self, ErrorKind, Failure, Retry};
use crate::plan::Plan;
use crate::store::record::Status;
use std::time::{Duration, SystemTime};

/// Rate-limit pauses one attempt may wait through before the task fails: a
/// limit that never lifts must not hold a task forever.
pub const MAX_LIMIT_WAITS: u32 = 20;

/// What the runner does after a failed attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// The task ends with this status.
    End(Status),
    /// The daemon is stopping: the task is left for its next start.
    LeaveForNextStart,
    /// Run the step again after a backoff; this many attempts are left then.
    Retry { after: Duration, attempts_left: u32 },
    /// Pause the whole agent until then, and run again without using an attempt.
    PauseAgent { until: SystemTime },
}

/// Decides what follows failure `f`, when `spent` attempts of this step were
/// used before it (rate-limited ones do not count) and `limit_waits` pauses
/// were waited through so far (this one is counted here).
pub fn after_failure(f: &Failure, spent: u32, limit_waits: &mut u32, plan: &Plan) -> Next {
    match (f.kind, f.retry) {
        (ErrorKind::Cancelled, _) => Next::End(Status::Cancelled),
        (ErrorKind::Interrupted, _) => Next::LeaveForNextStart,
        (_, Retry::No) => Next::End(Status::Failed),
        (_, Retry::Backoff) => {
            let spent = spent + 1;
            if spent >= plan.max_attempts {
                return Next::End(Status::Failed);
            }
            Next::Retry {
                after: outcome::backoff(spent, plan.backoff_initial.0, plan.backoff_max.0),
                attempts_left: plan.max_attempts - spent,
            }
        }
        (_, Retry::WaitForLimit(resets_at)) => {
            *limit_waits += 1;
            if *limit_waits > MAX_LIMIT_WAITS {
                return Next::End(Status::Failed);
            }
            Next::PauseAgent {
                until: limit_until(resets_at, *limit_waits, plan),
            }
        }
    }
}

/// When a rate-limited agent may run again: when the CLI said (within a
/// second and six hours from now), else a backoff from a minute.
fn limit_until(resets_at: Option<i64>, waits: u32, plan: &Plan) -> SystemTime {
    let now = SystemTime::now();
    if let Some(epoch) = resets_at {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(epoch.max(0) as u64);
        let lo = now + Duration::from_secs(1);
        let hi = now + Duration::from_secs(6 * 3600);
        return t.clamp(lo, hi);
    }
    let initial = plan.backoff_initial.0.max(Duration::from_secs(1)) * 12;
    now + outcome::backoff(waits, initial, plan.backoff_max.0.max(initial))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AgentKind, Config};
    use crate::task::parse::{Limits, parse};

    /// A plan with three attempts, backoff from 5 s to 5 min (the defaults).
    fn plan() -> Plan {
        let spec = parse(
            "t.md",
            b"do it",
            &Limits {
                max_bytes: 1 << 20,
                max_prompt_chars: 1000,
                default_agent: AgentKind::Claude,
                roles: Default::default(),
            },
        )
        .unwrap();
        let cx = crate::plan::Context {
            id: "id",
            source_file: "t.md",
            workdir: "/w".into(),
            queued_at: None,
        };
        crate::plan::build(&spec, &Config::default(), cx)
    }

    fn failure(kind: ErrorKind, retry: Retry) -> Failure {
        Failure {
            kind,
            message: "m".into(),
            retry,
        }
    }

    #[test]
    fn cancels_interruptions_and_fatal_errors_end_at_once() {
        let p = plan();
        let mut waits = 0;
        assert_eq!(
            after_failure(&failure(ErrorKind::Cancelled, Retry::No), 0, &mut waits, &p),
            Next::End(Status::Cancelled)
        );
        assert_eq!(
            after_failure(&failure(ErrorKind::Interrupted, Retry::Backoff), 0, &mut waits, &p),
            Next::LeaveForNextStart,
            "a stopping daemon's run is no failure of the task"
        );
        assert_eq!(
            after_failure(&failure(ErrorKind::Auth, Retry::No), 0, &mut waits, &p),
            Next::End(Status::Failed)
        );
        assert_eq!(waits, 0);
    }

    #[test]
    fn transient_errors_are_retried_with_backoff_until_the_attempts_are_spent() {
        let p = plan();
        assert_eq!(p.max_attempts, 3);
        let f = failure(ErrorKind::Overloaded, Retry::Backoff);
        let mut waits = 0;
        let mut retry = |spent| match after_failure(&f, spent, &mut waits, &p) {
            Next::Retry { after, attempts_left } => (after, attempts_left),
            other => panic!("{other:?}"),
        };
        // The first backoff: a random point in the upper half of 5 s; then of 10 s.
        let (after, left) = retry(0);
        assert_eq!(left, 2);
        assert!(
            after >= Duration::from_millis(2500) && after <= Duration::from_secs(5),
            "{after:?}"
        );
        let (after, left) = retry(1);
        assert_eq!(left, 1);
        assert!(
            after >= Duration::from_secs(5) && after <= Duration::from_secs(10),
            "{after:?}"
        );
        assert_eq!(after_failure(&f, 2, &mut waits, &p), Next::End(Status::Failed));
    }

    #[test]
    fn rate_limits_pause_the_agent_without_using_attempts_until_they_never_lift() {
        let p = plan();
        let mut waits = 0;
        let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
        let epoch = in_an_hour.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
        match after_failure(
            &failure(ErrorKind::RateLimited, Retry::WaitForLimit(Some(epoch))),
            2,
            &mut waits,
            &p,
        ) {
            Next::PauseAgent { until } => {
                let off = until.duration_since(in_an_hour).unwrap_or_else(|e| e.duration());
                assert!(off <= Duration::from_secs(1), "until the time the CLI said: {off:?}");
            }
            other => panic!("{other:?}"),
        }
        // A reset time far out is held to six hours; one in the past to a second.
        let far = after_failure(
            &failure(ErrorKind::RateLimited, Retry::WaitForLimit(Some(i64::MAX / 2))),
            0,
            &mut waits,
            &p,
        );
        let Next::PauseAgent { until } = far else {
            panic!("{far:?}")
        };
        assert!(until <= SystemTime::now() + Duration::from_secs(6 * 3600));
        let past = after_failure(
            &failure(ErrorKind::RateLimited, Retry::WaitForLimit(Some(0))),
            0,
            &mut waits,
            &p,
        );
        let Next::PauseAgent { until } = past else {
            panic!("{past:?}")
        };
        assert!(until > SystemTime::now());
        // Without a reset time: a backoff from a minute.
        let unknown = after_failure(
            &failure(ErrorKind::RateLimited, Retry::WaitForLimit(None)),
            0,
            &mut waits,
            &p,
        );
        let Next::PauseAgent { until } = unknown else {
            panic!("{unknown:?}")
        };
        assert!(until >= SystemTime::now() + Duration::from_secs(20));
        assert_eq!(waits, 4, "each pause counted");
        // A limit that never lifts ends the task.
        let mut waits = MAX_LIMIT_WAITS;
        assert_eq!(
            after_failure(
                &failure(ErrorKind::RateLimited, Retry::WaitForLimit(None)),
                0,
                &mut waits,
                &p
            ),
            Next::End(Status::Failed)
        );
    }
}
