//! Verify loops: after the agent succeeded, the task's `verify` command runs
//! where the agent worked (the workdir, or its worktree or copy). While it
//! fails, the agent is asked again in its session with the command's exit
//! code and the end of its output, up to `verify_rounds` checks in all; a
//! command task runs its command again. The check runs as an agent does:
//! its own process group, the task's environment marks, the time left of the
//! task's timeout, and the task's cancel.

use super::{Runner, Totals};
use crate::agents::outcome::ErrorKind;
use crate::agents::supervise::{Spawn, StopReason};
use crate::events::Event;
use crate::plan::Plan;
use crate::store::record::{Status, VerifyRound};
use std::time::{Duration, Instant};

/// The checks' "attempt" marks are this plus their round (no task has a
/// million attempts).
const CHECK_MARKS: u32 = 1_000_000;

/// Of the check's output, this much of its end is kept and shown to the agent.
const OUTPUT_TAIL_CHARS: usize = 4000;

impl Runner {
    /// Checks the work, and asks again while the check fails and rounds are
    /// left. `Err`: the task ended (the check failed its last round, or the
    /// task was stopped); its status.
    pub(super) async fn verify_loop(
        &mut self,
        plan: &mut Plan,
        session: &mut Option<String>,
        totals: &mut Totals,
    ) -> Result<(), Status> {
        let Some(verify) = plan.verify.clone() else {
            return Ok(());
        };
        loop {
            let round = self.with_progress(|p| p.verify.len() as u32) + 1;
            let (checked, timed_out) = match self.check(plan, &verify.command, round).await {
                Ok(c) => c,
                Err(reason) => return Err(self.stopped(Some(plan), reason, totals).await),
            };
            let passed = checked.exit_code == Some(0);
            self.emit(Event::VerifyFinished {
                round,
                of: verify.rounds,
                command: verify.command.clone(),
                exit_code: checked.exit_code,
                duration_ms: checked.duration_ms,
                passed,
            });
            let feedback = feedback(&checked, round, verify.rounds);
            self.with_progress(|p| p.verify.push(checked));
            self.save_progress();
            if passed {
                return Ok(());
            }
            // The check ran into the task's timeout: no time is left to ask again.
            if timed_out {
                let why = format!(
                    "the task used up its timeout while `{}` ran (round {round})",
                    verify.command
                );
                return Err(self.fail(plan, ErrorKind::Timeout, why, totals).await);
            }
            if round >= verify.rounds {
                let why = format!(
                    "`{}` still failed after {round} round(s) (exit code {})",
                    verify.command,
                    self.with_progress(|p| p.verify.last().and_then(|v| v.exit_code))
                        .map_or("none: it was stopped".to_string(), |c| c.to_string())
                );
                return Err(self.fail(plan, ErrorKind::VerifyFailed, why, totals).await);
            }
            // Asked again as a step of its own after the plan's (its attempts
            // are its own), in the session the work was done in.
            plan.verify_feedback = Some(feedback);
            let k = plan.step_count() + round;
            let report = self.run_step(plan, k, session.clone(), totals).await;
            plan.verify_feedback = None;
            *session = report?.session_id.or(session.take());
        }
    }

    /// Runs the check once: its round, and whether the task's timeout
    /// stopped it; `Err` when the task was stopped meanwhile.
    async fn check(&mut self, plan: &Plan, command: &str, round: u32) -> Result<(VerifyRound, bool), StopReason> {
        let used = self.with_progress(|p| p.time_used_ms());
        let remaining = plan.timeout.0.saturating_sub(Duration::from_millis(used));
        let cwd = self
            .sandbox
            .as_ref()
            .map_or_else(|| plan.workdir.clone(), |sb| sb.run_dir.clone());
        // A mark of its own, apart from the attempts': what the check leaves is
        // swept when it ends, and the sweep after an attempt (which comes a
        // moment after that attempt ended) must not take the check with it.
        let attempt = CHECK_MARKS + round;
        use crate::agents::leftovers::{ATTEMPT_VAR, DAEMON_VAR, TASK_VAR};
        let env = vec![
            (TASK_VAR.to_string(), self.id().to_string()),
            (ATTEMPT_VAR.to_string(), attempt.to_string()),
            (DAEMON_VAR.to_string(), std::process::id().to_string()),
            (
                "ORCHESTRATOR_HOME".to_string(),
                self.shared.home.root().display().to_string(),
            ),
        ];
        let td = self.claimed.dir.clone();
        let shell = if cfg!(windows) { "cmd" } else { "sh" };
        let spawn = Spawn {
            program: shell.into(),
            args: crate::agents::command::shell_args(&merged_output(command)),
            cwd,
            env,
            stdin: Vec::new().into(),
            out_path: td.dir.join(format!("verify-{round}.out")),
            err_path: td.dir.join(format!("verify-{round}.err")),
            max_output_bytes: plan.max_output_bytes,
            kill_grace: plan.kill_grace.0,
            stop_signal: crate::agents::of(crate::vocab::AgentKind::Command).stop_signal(),
            deadline: tokio::time::Instant::now() + remaining,
            stall_timeout: None,
            mark: Some((self.id().to_string(), attempt)),
        };
        let reader = crate::agents::of(crate::vocab::AgentKind::Command).reader(Default::default());
        let started = Instant::now();
        let (exit, report) = self
            .shared
            .supervisor
            .run(
                spawn,
                reader,
                Box::new(|_| {}),
                std::sync::Arc::new(|_| {}),
                self.stop.clone(),
            )
            .await;
        if let Some(reason @ (StopReason::Cancelled | StopReason::Shutdown)) = exit.stopped {
            return Err(reason);
        }
        let output = report.answer.unwrap_or_default();
        let output_tail = self
            .redactor
            .redact(crate::agents::tail_str(&output, OUTPUT_TAIL_CHARS))
            .into_owned();
        let round = VerifyRound {
            round,
            command: command.to_string(),
            exit_code: exit.code.filter(|_| exit.stopped.is_none()),
            duration_ms: started.elapsed().as_millis() as u64,
            output_tail,
        };
        Ok((round, exit.stopped == Some(StopReason::Timeout)))
    }
}

/// The command with its stderr into its stdout, so that its output is read
/// in the order it was printed.
fn merged_output(command: &str) -> String {
    if cfg!(windows) {
        format!("({command}) 2>&1")
    } else {
        format!("exec 2>&1\n{command}")
    }
}

/// What the agent is told when a check failed.
fn feedback(checked: &VerifyRound, round: u32, rounds: u32) -> String {
    let how = checked
        .exit_code
        .map_or("it was stopped before it ended (the task's timeout)".to_string(), |c| {
            format!("it exited with code {c}")
        });
    format!(
        "The check `{}` failed ({how}); this was check {round} of {rounds}. The end of its output:\n\n```\n{}\n```\n\nFix what it reports so that the check passes. It runs again when you are done.",
        checked.command,
        checked.output_tail.trim_end()
    )
}
