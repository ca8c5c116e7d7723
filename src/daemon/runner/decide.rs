//! What follows a failed attempt: the runner's retry rule as a pure function,
//! so that it can be read in one place and tested without a process or a clock.

use crate::agents::outcome::{self, ErrorKind, Failure, Retry};
use crate::plan::Plan;
use crate::store::record::{AttemptRecord, Status};
use crate::vocab::CutShort;
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

/// Why a failure sends a task with an agent list on to its next agent:
/// the agent hit a usage or rate limit, is not installed, or its provider
/// refused the credentials. Other failures are the task's, whichever agent
/// ran it. `None`: it stays.
pub fn falls_through(f: &Failure) -> Option<&'static str> {
    match f.kind {
        ErrorKind::RateLimited => Some("usage or rate limit"),
        ErrorKind::NotFound => Some("not installed"),
        ErrorKind::Auth => Some("authentication failed"),
        _ => None,
    }
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

/// Daemon deaths in a row at a task's runs before its next run is alone in
/// its daemon (no other task starts or runs beside it there).
pub const SUSPECT_AFTER: u32 = 2;
/// Daemon deaths in a row while it ran alone before the task is judged a
/// poison pill and quarantined.
pub const POISON_AFTER: u32 = 3;
/// A suspect runs alone only in a daemon that has been up this long: a daemon
/// killed from outside again and again (a crash loop, a storm of kills) dies
/// before, and its deaths say nothing of the task; one that lived this long
/// and died while the suspect ran alone did so for the suspect.
pub const ALONE_AFTER_UPTIME: Duration = Duration::from_secs(3);

/// What the record of a task's attempts says before its next run.
#[derive(Debug, Clone, PartialEq)]
pub enum BeforeRun {
    /// Run it (alone in the daemon when it is a suspect).
    Run { alone: bool },
    /// It kills its daemon: fail it as `poison_pill`, with the evidence.
    Quarantine(String),
    /// Interrupted from outside more than `max_interruptions`: fail it.
    TooManyInterruptions(u32),
}

/// Attempts cut short from outside (deaths and stops of the daemon).
pub fn interruptions(attempts: &[AttemptRecord]) -> u32 {
    attempts.iter().filter(|a| a.cut_short.is_some()).count() as u32
}

/// Decides how the next run goes. The deaths that count are the latest ones
/// in a row (a run that ended by itself breaks the row; a graceful stop of
/// the daemon is no evidence either way and is passed over).
pub fn before_run(attempts: &[AttemptRecord], max_interruptions: u32) -> BeforeRun {
    let mut deaths: Vec<&AttemptRecord> = Vec::new();
    for a in attempts.iter().rev() {
        match a.cut_short {
            Some(CutShort::DaemonDied) => deaths.push(a),
            Some(CutShort::DaemonShutdown) => continue,
            None => break,
        }
    }
    let alone_deaths = deaths.iter().take_while(|a| a.alone).count() as u32;
    if alone_deaths >= POISON_AFTER {
        let runs: Vec<String> = deaths
            .iter()
            .rev()
            .map(|a| {
                format!(
                    "attempt {} ({}{})",
                    a.n,
                    a.worker.as_deref().unwrap_or("a daemon"),
                    if a.alone { ", alone" } else { "" }
                )
            })
            .collect();
        return BeforeRun::Quarantine(format!(
            "its daemon died at each of its last {} runs, the last {alone_deaths} while it ran alone in its daemon (no other task beside it): {}; it is not run again",
            deaths.len(),
            runs.join(", ")
        ));
    }
    let total = interruptions(attempts);
    if total >= max_interruptions {
        return BeforeRun::TooManyInterruptions(total);
    }
    BeforeRun::Run {
        alone: deaths.len() as u32 >= SUSPECT_AFTER,
    }
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

    fn run(n: u32, cut: Option<CutShort>, alone: bool) -> AttemptRecord {
        AttemptRecord {
            n,
            step: 1,
            finished_at: Some(String::new()),
            cut_short: cut,
            worker: Some(format!("host:{n}")),
            alone,
            ..AttemptRecord::default()
        }
    }

    const DIED: Option<CutShort> = Some(CutShort::DaemonDied);
    const STOPPED: Option<CutShort> = Some(CutShort::DaemonShutdown);

    #[test]
    fn two_deaths_in_a_row_make_a_suspect_that_runs_alone() {
        assert_eq!(before_run(&[], 10), BeforeRun::Run { alone: false });
        assert_eq!(before_run(&[run(1, DIED, false)], 10), BeforeRun::Run { alone: false });
        let two = [run(1, DIED, false), run(2, DIED, false)];
        assert_eq!(before_run(&two, 10), BeforeRun::Run { alone: true });
        // A run that ended by itself breaks the row; a graceful stop does not count either way.
        let broken = [run(1, DIED, false), run(2, None, false), run(3, DIED, false)];
        assert_eq!(before_run(&broken, 10), BeforeRun::Run { alone: false });
        let stopped = [run(1, DIED, false), run(2, STOPPED, false), run(3, DIED, false)];
        assert_eq!(before_run(&stopped, 10), BeforeRun::Run { alone: true });
    }

    #[test]
    fn three_deaths_alone_in_a_row_quarantine_it_with_the_evidence() {
        let mut a = vec![
            run(1, DIED, false),
            run(2, DIED, false),
            run(3, DIED, true),
            run(4, DIED, true),
        ];
        assert_eq!(before_run(&a, 10), BeforeRun::Run { alone: true });
        a.push(run(5, DIED, true));
        let BeforeRun::Quarantine(why) = before_run(&a, 10) else {
            panic!("not quarantined");
        };
        assert!(why.contains("last 5 runs, the last 3 while it ran alone"), "{why}");
        assert!(why.contains("attempt 5 (host:5, alone)"), "{why}");
        // Deaths alone that were not in a row are not enough.
        let b = [
            run(1, DIED, true),
            run(2, None, false),
            run(3, DIED, true),
            run(4, DIED, true),
        ];
        assert_eq!(before_run(&b, 10), BeforeRun::Run { alone: true });
    }

    #[test]
    fn interruptions_have_their_own_bound() {
        let stops: Vec<AttemptRecord> = (1..=4).map(|n| run(n, STOPPED, false)).collect();
        assert_eq!(interruptions(&stops), 4);
        assert_eq!(before_run(&stops, 5), BeforeRun::Run { alone: false });
        let mut more = stops.clone();
        more.push(run(5, STOPPED, false));
        assert_eq!(before_run(&more, 5), BeforeRun::TooManyInterruptions(5));
    }
}
