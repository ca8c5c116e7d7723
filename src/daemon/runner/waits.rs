//! What a run waits for before it starts: its agent's rate-limit pause (or
//! the next agent of its list, when it has one that may take it), and the
//! home's spend cap. Neither uses an attempt; the slot is given back while
//! the task waits. And what the run may spend once it starts: what its own
//! budget has left, within what the home's caps have left.

use super::{Runner, Totals, finish};
use crate::agents::outcome::{Failure, Retry};
use crate::events::Event;
use crate::plan::Plan;
use crate::store::atomic::write_json_atomic;
use crate::store::record::Status;
use std::time::{Duration, SystemTime};

/// How a wait ended.
pub(super) enum Waited {
    /// The task fell through to the next agent of its list: look again.
    Switched,
    MayRun,
}

impl Runner {
    /// Waits while the run may not start; `Err` when the task ended meanwhile.
    pub(super) async fn wait_for_limits(
        &mut self,
        plan: &mut Plan,
        session: &mut Option<String>,
        totals: &Totals,
    ) -> Result<Waited, Status> {
        // A paused agent runs nothing: the task falls through to the next
        // of its agents when it has one, else waits with its slot freed.
        if self.shared.pauses.until(plan.agent).is_some()
            && self.switch_agent(plan, session, "paused by a usage or rate limit")
        {
            return Ok(Waited::Switched);
        }
        while let Some(until) = self.shared.pauses.until(plan.agent) {
            self.permit = None;
            self.with_progress(|p| {
                p.waiting_until = Some(
                    jiff::Timestamp::try_from(until)
                        .map(|t| t.to_string())
                        .unwrap_or_default(),
                )
            });
            self.save_progress();
            let wait = until.duration_since(SystemTime::now()).unwrap_or_default();
            if let Some(reason) = self.sleep_or_stop(wait).await {
                return Err(self.stopped(Some(plan), reason, totals).await);
            }
        }
        // A `budget:` cap of the home is reached (or nothing is left under
        // it): no run starts until its period ends or it is raised. The loop
        // looks at the spend every second while tasks run.
        loop {
            let left = self.shared.spend_left();
            let spent_out = left.usd.is_some_and(|u| u <= 0.0) || left.tokens == Some(0);
            let until = match left.blocked_until {
                Some(until) => until,
                None if spent_out => SystemTime::now() + super::super::spend::LOOK_EVERY,
                None => break,
            };
            self.permit = None;
            let shown = jiff::Timestamp::try_from(until).ok().map(|t| t.to_string());
            let changed = self.with_progress(|p| {
                let changed = p.waiting_until != shown;
                p.waiting_until = shown;
                p.last_event = Some("spend_cap".into());
                changed
            });
            if changed {
                self.save_progress();
            }
            // Not less than a moment: the loop may not have looked yet when
            // the period ended.
            let wait = until
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .clamp(Duration::from_millis(500), Duration::from_secs(5));
            if let Some(reason) = self.sleep_or_stop(wait).await {
                return Err(self.stopped(Some(plan), reason, totals).await);
            }
        }
        Ok(Waited::MayRun)
    }

    /// Pauses `agent` until `until` for every task of this daemon (and says so).
    pub(super) fn pause(&self, agent: crate::config::AgentKind, until: SystemTime, f: &Failure) {
        self.shared.pauses.pause(agent, until);
        let until_ts = jiff::Timestamp::try_from(until)
            .map(|t| t.to_string())
            .unwrap_or_default();
        self.emit(Event::AgentPaused {
            agent,
            until: until_ts,
            reason: f.message.clone(),
            from_cli: matches!(f.retry, Retry::WaitForLimit(Some(_))),
        });
        self.shared.wake.notify_one();
    }

    /// Moves the task to the next agent of its list, if it has one that may
    /// take it (see [`Plan::switched`]): says so (`agent_switched`) and
    /// forgets the session, which was the other agent's. `false`: it stays.
    pub(super) fn switch_agent(&mut self, plan: &mut Plan, session: &mut Option<String>, reason: &str) -> bool {
        while !plan.fallback.is_empty() {
            let config = self.shared.config();
            match plan.switched(&config) {
                Ok(next) => {
                    self.emit(Event::AgentSwitched {
                        from: plan.agent,
                        to: next.agent,
                        reason: reason.to_string(),
                    });
                    tracing::info!(
                        task = self.id(),
                        from = plan.agent.name(),
                        to = next.agent.name(),
                        reason,
                        "fell through to the next agent"
                    );
                    *plan = next;
                    *session = None;
                    // The resolved plan is now this agent's: what a recovering
                    // daemon and the follow-ups (`reply`, `resume`) go on with.
                    if let Err(e) = write_json_atomic(&self.claimed.dir.plan(), &*plan) {
                        tracing::warn!(task = self.id(), error = %e, "could not rewrite plan.json");
                    }
                    // Its tools as the new agent grants them, said as for the first.
                    if let Some(w) = finish::tools_warning(plan) {
                        self.warn(w);
                    }
                    return true;
                }
                Err((skipped, why)) => {
                    let w = crate::vocab::Finding::new(
                        "agent_not_switched",
                        format!("not switched to {}: {why}", skipped.name()),
                    );
                    self.warn(w.clone());
                    self.run_warnings.lock().unwrap_or_else(|e| e.into_inner()).push(w);
                    plan.fallback.retain(|a| *a != skipped);
                }
            }
        }
        false
    }

    /// What run `k` may use (turns, tool calls, dollars, tokens), or why
    /// nothing is left for it (its budget is spent).
    pub(super) fn limits(
        &self,
        plan: &Plan,
        k: u32,
        session: Option<&str>,
        totals: &Totals,
    ) -> Result<crate::agents::LiveLimits, String> {
        // A budget is the task's, over all its steps and attempts: each run
        // may spend what the earlier ones left.
        // And no run may spend more than is left under the home's caps.
        let cap = self.shared.spend_left();
        let own_left = plan.budget_usd.map(|b| b - totals.cost.unwrap_or(0.0));
        let budget_left = match (own_left, cap.usd) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(left) = budget_left
            && left <= 0.0
        {
            let spent = totals.cost.unwrap_or(0.0);
            let why = format!(
                "budget_usd is ${:.4} and the task's earlier runs spent ${spent:.4}: nothing left for step {k}",
                plan.budget_usd.unwrap_or(0.0)
            );
            return Err(why);
        }
        let own_tokens = plan.budget_tokens.map(|b| b.saturating_sub(totals.tokens.total()));
        let tokens_left = match (own_tokens, cap.tokens) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if tokens_left == Some(0) {
            let why = format!(
                "budget_tokens is {} and the task's earlier runs used {}: nothing left for step {k}",
                plan.budget_tokens.unwrap_or(0),
                totals.tokens.total()
            );
            return Err(why);
        }
        let before = totals
            .session
            .as_ref()
            .filter(|(id, _)| Some(id.as_str()) == session)
            .map(|(_, t)| *t)
            .unwrap_or_default();
        Ok(crate::agents::LiveLimits {
            max_turns: plan.max_turns,
            budget_usd: budget_left,
            max_tool_calls: plan.max_tool_calls,
            budget_tokens: tokens_left,
            session_tokens_before: before,
            prices: self.config.agent(plan.agent).prices,
        })
    }
}
