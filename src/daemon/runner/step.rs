//! One step of a task: its attempts, each judged, retried with backoff,
//! paused on a limit or handed to another agent, until the step succeeds or
//! the task ends.

use super::*;

impl Runner {
    /// Runs step `k` until it succeeds (its report) or the task ends (its status).
    pub(super) async fn run_step(
        &mut self,
        plan: &mut Plan,
        k: u32,
        mut session: Option<String>,
        totals: &mut Totals,
    ) -> Result<AgentReport, Status> {
        let mut limit_waits = 0u32;
        loop {
            let (spent, used_ms, last_error) = self.with_progress(|p| {
                // Neither a rate limit nor an interruption from outside uses an attempt.
                let spent = p
                    .attempts
                    .iter()
                    .filter(|a| {
                        a.step == k
                            && a.cut_short.is_none()
                            && a.error.as_ref().is_none_or(|e| e.kind != ErrorKind::RateLimited)
                            // Runs on an agent the task fell through from are that agent's.
                            && a.agent.is_none_or(|x| x == plan.agent)
                    })
                    .count() as u32;
                let used = p.time_used_ms();
                (spent, used, p.attempts.last().and_then(|a| a.error.clone()))
            });
            if spent >= plan.max_attempts {
                let e = last_error.unwrap_or_else(|| info(ErrorKind::Interrupted, "no attempts left"));
                return Err(self.finish(Some(plan), Status::Failed, Some(e), totals).await);
            }
            // A task at whose runs its daemons keep dying runs alone, and is
            // quarantined if they die with it alone (see decide::before_run).
            let verdict = self.with_progress(|p| decide::before_run(&p.attempts, self.config.max_interruptions));
            let alone = match verdict {
                decide::BeforeRun::Run { alone } => alone,
                decide::BeforeRun::Quarantine(why) => {
                    return Err(self.fail(plan, ErrorKind::PoisonPill, why, totals).await);
                }
                decide::BeforeRun::TooManyInterruptions(n) => {
                    let why = format!(
                        "interrupted {n} times from outside (its daemon died or stopped while it ran); max_interruptions is {}",
                        self.config.max_interruptions
                    );
                    return Err(self.fail(plan, ErrorKind::Interrupted, why, totals).await);
                }
            };
            let remaining = plan.timeout.0.saturating_sub(Duration::from_millis(used_ms));
            if remaining.is_zero() {
                return Err(self
                    .fail(plan, ErrorKind::Timeout, "the task used up its timeout", totals)
                    .await);
            }
            match self.wait_for_limits(plan, &mut session, totals).await? {
                Waited::Switched => continue,
                Waited::MayRun => {}
            }
            if alone {
                // Every slot of this daemon (no task starts or runs beside it
                // here), once the daemon has been up long enough to tell.
                self.permit = None;
                let up_at = self.shared.started + decide::ALONE_AFTER_UPTIME;
                let wait = up_at.saturating_duration_since(tokio::time::Instant::now());
                tracing::warn!(
                    task = self.id(),
                    "its daemons died at its last runs: it runs alone to tell whether it kills them"
                );
                if !wait.is_zero() {
                    // Said in progress.json: a daemon that dies during this
                    // wait has its death told, as one that dies in a backoff.
                    self.with_progress(|p| {
                        p.status = Some(Status::Running);
                        p.waiting_until = Some((jiff::Timestamp::now() + wait).to_string());
                    });
                    self.save_progress();
                    if let Some(reason) = self.sleep_or_stop(wait).await {
                        return Err(self.stopped(Some(plan), reason, totals).await);
                    }
                }
            }
            if self.permit.is_none() {
                self.flush_held();
                let slots = self.shared.slots.clone();
                let mut stop = self.stop.clone();
                let slots_wanted = if alone {
                    self.shared.config().max_concurrent.max(1) as u32
                } else {
                    1
                };
                let stopped = tokio::select! {
                    p = slots.acquire_many_owned(slots_wanted) => {
                        self.permit = p.ok();
                        None
                    }
                    r = stop.wait_for(Option::is_some) => Some(r.ok().and_then(|v| v.clone()).unwrap_or(StopReason::Shutdown)),
                };
                if let Some(reason) = stopped {
                    return Err(self.stopped(Some(plan), reason, totals).await);
                }
            }

            // The workdir was checked when queued and claimed; a folder on its path
            // swapped for a symlink since (during a backoff, say) would put this
            // attempt elsewhere.
            if self.sandbox.is_none()
                && let Some(why) = workdir_moved(&plan.workdir)
            {
                self.emit(Event::SecurityViolation(Violation {
                    reason: "workdir_moved".into(),
                    workdir: Some(plan.workdir.clone()),
                    error: Some(why.clone()),
                    ..Violation::default()
                }));
                return Err(self.fail(plan, ErrorKind::SecurityViolation, why, totals).await);
            }
            let limits = match self.limits(plan, k, session.as_deref(), totals) {
                Ok(l) => l,
                Err(why) => return Err(self.fail(plan, ErrorKind::BudgetExceeded, why, totals).await),
            };
            let (report, failure, n) = self
                .attempt(plan, k, session.as_deref(), remaining, limits, alone)
                .await;
            // What the run cost joins the home's spend (`budget:` caps, shared
            // by every daemon) at once, whatever becomes of the task: spent is
            // spent, and the next start must count it.
            if let Err(e) = crate::spend::record(
                &self.shared.home,
                self.id(),
                report.cost_usd.unwrap_or(0.0),
                report.tokens.total(),
            ) {
                tracing::warn!(task = self.id(), error = %e, "could not add the run's cost to spend/ in the home");
            }
            // progress.json's cost is the run in flight's (the caps add it to
            // the ledger's): this one is in the ledger now. It is not written
            // here: a progress.json that says a run ended without error tells
            // a recovering daemon that the run counts, and the task was not
            // done. Until the next write the caps may count it twice, which
            // errs on the side of holding the queue.
            if report.cost_usd.is_some() {
                self.with_progress(|p| p.cost_usd = None);
            }
            if alone {
                // Its probation run is over: the other slots go back.
                self.permit = None;
            }
            totals.tool_calls += report.tool_calls;
            totals.turns += report.turns;
            totals.tokens.add(report.tokens);
            if let (Some(id), Some(t)) = (&report.session_id, report.session_tokens) {
                totals.session = Some((id.clone(), t));
            }
            if let Some(c) = report.cost_usd {
                totals.cost = Some(totals.cost.unwrap_or(0.0) + c);
            }
            totals.last = report.clone();
            let Some(f) = failure else {
                return Ok(report);
            };
            let next = decide::after_failure(&f, spent, &mut limit_waits, plan);
            let from = plan.agent;
            if let Some(why) = decide::falls_through(&f)
                && self.switch_agent(
                    plan,
                    &mut session,
                    &format!("{why}: {}", crate::agents::short(&f.message, 160)),
                )
            {
                // The agent it left stays paused for the tasks that have no other.
                if let Next::PauseAgent { until } = next {
                    self.pause(from, until, &f);
                }
                continue;
            }
            match next {
                Next::End(status) => {
                    return Err(self.finish(Some(plan), status, Some(from_failure(&f)), totals).await);
                }
                Next::LeaveForNextStart => return Err(self.interrupted(n)),
                Next::Retry { after, attempts_left } => {
                    self.emit(Event::RetryScheduled {
                        attempt: n + 1,
                        delay_ms: after.as_millis() as u64,
                        error: f.kind,
                        message: f.message.clone(),
                        attempts_left,
                    });
                    self.with_progress(|p| p.waiting_until = Some((jiff::Timestamp::now() + after).to_string()));
                    self.save_progress();
                    if let Some(reason) = self.sleep_or_stop(after).await {
                        return Err(self.stopped(Some(plan), reason, totals).await);
                    }
                }
                Next::PauseAgent { until } => self.pause(plan.agent, until, &f),
            }
        }
    }
}
