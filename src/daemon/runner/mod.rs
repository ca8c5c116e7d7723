//! One task from claim to result: plan, attempts, retries, limits, result.
//!
//! Attempt history lives in `progress.json`, rewritten at each step, so a daemon
//! that takes the task over after a crash continues the count where it stopped.

mod attempt;
mod decide;
mod finish;
mod planning;
mod step;
mod verify;
mod waits;
mod workspace;

#[cfg(test)]
mod tests;

pub use finish::final_event;

use super::Shared;
use crate::agents::AgentReport;
use crate::agents::outcome::{ErrorKind, Failure};
use crate::agents::supervise::StopReason;
use crate::claim::Claimed;
use crate::events::{Event, Interruption, Violation, now_ts};
use crate::plan::Plan;
use crate::store::atomic::write_json_atomic;
use crate::store::record::{ErrorInfo, ProgressRecord, Status, StepOutcome};
use decide::Next;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{OwnedSemaphorePermit, watch};
use waits::Waited;

/// An agent still running after this long gets its `progress.json` (for `status`)
/// even if it reported nothing yet.
const PROGRESS_FILE_AFTER: Duration = Duration::from_secs(1);

/// A task handed to the runner.
pub struct TaskRun {
    pub claimed: Claimed,
    /// Progress of an earlier, interrupted run of this task.
    pub recovered: Option<ProgressRecord>,
    /// The queue entry it was claimed from (none for a recovered task).
    pub queued: Option<crate::queue::Queued>,
    /// Its task as parsed when it was queued, if the daemon kept it.
    pub spec: Option<crate::daemon::judged::Judged>,
    /// It can never run (a task it waited for failed): it ends as cancelled
    /// with this error, and nothing runs.
    pub doomed: Option<ErrorInfo>,
    /// The ids of the tasks it waited for (`after:`), as the daemon saw them end.
    pub waited_for: Option<Vec<String>>,
}

/// What the runner accumulates over attempts for the result.
#[derive(Default)]
struct Totals {
    cost: Option<f64>,
    tokens: crate::vocab::Tokens,
    /// The last session a run reported a whole count for, and that count.
    session: Option<(String, crate::vocab::Tokens)>,
    tool_calls: u32,
    turns: u32,
    last: AgentReport,
}

fn info(kind: ErrorKind, message: impl Into<String>) -> ErrorInfo {
    ErrorInfo {
        kind,
        message: message.into(),
        suggestion: kind.suggestion().into(),
    }
}

fn from_failure(f: &Failure) -> ErrorInfo {
    info(f.kind, f.message.clone())
}

/// Runs the task to its end; returns its final status (`Interrupted` if the
/// daemon is shutting down and the task will run again later).
pub async fn run(
    shared: Arc<Shared>,
    task: TaskRun,
    permit: Option<OwnedSemaphorePermit>,
    stop: watch::Receiver<Option<StopReason>>,
) -> (String, Status) {
    let id = task.claimed.id.clone();
    let status = Runner::new(shared, task, permit, stop).run().await;
    (id, status)
}

struct Runner {
    shared: Arc<Shared>,
    /// The config in force when the task started: it keeps it to its end,
    /// whatever a reload changes meanwhile.
    config: Arc<crate::config::Config>,
    redactor: Arc<crate::redact::Redactor>,
    claimed: Claimed,
    progress: Arc<Mutex<ProgressRecord>>,
    stop: watch::Receiver<Option<StopReason>>,
    queued_at: Option<String>,
    /// The queue entry: its size and time tell whether the claimed file is
    /// still the one the intake judged.
    judged: Option<crate::queue::Queued>,
    /// The task as parsed when queued (see `daemon::judged`).
    judged_spec: Option<crate::daemon::judged::Judged>,
    recovered: bool,
    started: Instant,
    /// This task's agent slot, held while an agent runs (or is about to), given
    /// back while it waits and as soon as the agent is done.
    permit: Option<OwnedSemaphorePermit>,
    /// The workdir's git state before the first attempt (`None`: not a repository).
    git_before: Option<crate::changes::Snapshot>,
    /// The worktree or copy of an isolated run.
    sandbox: Option<crate::isolate::Sandbox>,
    /// An event held back to be written with the next one ([`Self::emit_soon`]).
    held: Mutex<Option<(String, serde_json::Value)>>,
    /// The claimed task file's size and modification time when it was read
    /// for the plan: a file that changes after that ran stale.
    task_file_stamp: Option<(u64, Option<SystemTime>)>,
    /// Warnings found while attempts ran, for the result's `validation.warnings`.
    run_warnings: Mutex<Vec<crate::vocab::Finding>>,
    /// See [`TaskRun::doomed`].
    doomed: Option<ErrorInfo>,
    /// See [`TaskRun::waited_for`].
    waited_for: Option<Vec<String>>,
}

/// A runner stopped mid-way (its task aborted) still writes the event it held.
impl Drop for Runner {
    fn drop(&mut self) {
        self.flush_held();
    }
}

impl Runner {
    fn new(
        shared: Arc<Shared>,
        task: TaskRun,
        permit: Option<OwnedSemaphorePermit>,
        stop: watch::Receiver<Option<StopReason>>,
    ) -> Self {
        let recovered = task.recovered.is_some();
        let mut progress = task.recovered.unwrap_or_default();
        progress.worker = Some(shared.worker.clone());
        progress.started_at.get_or_insert_with(now_ts);
        Self {
            config: shared.config(),
            redactor: shared.redactor(),
            shared,
            claimed: task.claimed,
            progress: Arc::new(Mutex::new(progress)),
            stop,
            queued_at: task.queued.as_ref().map(|q| crate::events::ts(q.queued_at)),
            judged: task.queued,
            judged_spec: task.spec,
            recovered,
            started: Instant::now(),
            permit,
            git_before: None,
            sandbox: None,
            held: Mutex::new(None),
            task_file_stamp: None,
            run_warnings: Mutex::new(Vec::new()),
            doomed: task.doomed,
            waited_for: task.waited_for,
        }
    }

    /// The claimed task file changed after the plan was made from it (a writer
    /// still held it open): the agent ran what was there at the claim.
    fn task_file_changed(&self) -> Option<ErrorInfo> {
        let (len, mtime) = self.task_file_stamp?;
        let now = std::fs::metadata(&self.claimed.task_file).ok()?;
        (now.len() != len || now.modified().ok() != mtime).then(|| {
            info(
                ErrorKind::TaskFileChanged,
                format!(
                    "the task file changed after it was claimed ({len} bytes then, {} now): the agent ran what was there at the claim",
                    now.len()
                ),
            )
        })
    }

    fn id(&self) -> &str {
        &self.claimed.id
    }

    /// Appends an event of this task, after the one held back, if any, in
    /// the same write.
    fn emit(&self, event: Event) {
        self.write_events(Some(crate::events::parts(&event)));
    }

    /// A finding of the advisory checks, as a `validation_warning` event.
    fn warn(&self, finding: crate::vocab::Finding) {
        self.emit(Event::ValidationWarning(finding));
    }

    /// Holds an event back until the next event of the task: two lines, one
    /// write and one lock of the log. Held are `task_started` (the next event is
    /// `attempt_started`, a few syscalls later) and `attempt_finished` (the next
    /// is the task's last event, once `result.json` is on disk). Written at once
    /// before anything else that waits (a pause, a backoff, a slot), and when
    /// the runner is dropped. A held event keeps the time it happened.
    fn emit_soon(&self, event: Event) {
        self.flush_held();
        let (event, mut fields) = crate::events::parts(&event);
        // Stamped now: it is written later, but this is when it happened.
        if let Some(f) = fields.as_object_mut() {
            f.insert("ts".into(), serde_json::Value::String(now_ts()));
        }
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some((event, fields));
    }

    /// Writes the held-back event now.
    fn flush_held(&self) {
        self.write_events(None);
    }

    /// The held-back event, if any, then `next`, in one write.
    fn write_events(&self, next: Option<(String, serde_json::Value)>) {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.shared
            .events
            .emit_parts(Some(&self.claimed.id), held.into_iter().chain(next));
    }

    fn save_progress(&self) {
        let p = {
            let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
            p.updated_at = Some(now_ts());
            p.clone()
        };
        if let Err(e) = write_json_atomic(&self.claimed.dir.progress(), &p) {
            tracing::warn!(task = self.id(), error = %e, "could not write progress.json");
        }
    }

    fn with_progress<T>(&self, f: impl FnOnce(&mut ProgressRecord) -> T) -> T {
        f(&mut self.progress.lock().unwrap_or_else(|e| e.into_inner()))
    }

    async fn run(mut self) -> Status {
        if let Some(e) = self.doomed.take() {
            return self.finish(None, Status::Cancelled, Some(e), &Totals::default()).await;
        }
        let mut plan = match self.plan().await {
            Ok(p) => p,
            Err(r) => {
                if r.is_security_violation() {
                    self.emit(Event::SecurityViolation(Violation {
                        reason: r.reason.to_string(),
                        file: Some(self.claimed.source_file.clone()),
                        error: Some(r.error.clone()),
                        ..Violation::default()
                    }));
                }
                let e = ErrorInfo {
                    kind: ErrorKind::InvalidTask,
                    message: r.error.clone(),
                    suggestion: r.hint.clone(),
                };
                return self.finish(None, Status::Failed, Some(e), &Totals::default()).await;
            }
        };
        // Said at once, and kept in the result's warnings and the summary.
        if let Some(w) = finish::tools_warning(&plan) {
            self.warn(w);
        }
        if let Err(why) = self.prepare_workspace(&plan).await {
            let e = info(ErrorKind::IsolationFailed, why);
            return self
                .finish(Some(&plan), Status::Failed, Some(e), &Totals::default())
                .await;
        }
        self.emit_soon(Event::TaskStarted {
            file: self.claimed.source_file.clone(),
            title: plan.title.clone(),
            agent: plan.agent,
            workdir: plan.workdir.clone(),
            worker: self.shared.worker.clone(),
            recovered: self.recovered,
        });
        self.with_progress(|p| p.status = Some(Status::Running));

        let mut totals = Totals {
            session: self.parent_session_tokens(&plan),
            ..Totals::default()
        };
        let steps_done = self.with_progress(|p| p.steps.len() as u32);
        // A recovered task goes on in its last step's session, if that was
        // of the agent it is on now (it may have fallen through since).
        let mut session = self
            .with_progress(|p| {
                p.steps
                    .last()
                    .filter(|s| s.agent.is_none_or(|a| a == plan.agent))
                    .and_then(|s| s.session_id.clone())
            })
            .or_else(|| plan.resume_session.clone());
        // Its work was done and its checks were running: it goes on with them,
        // in the session the work was done in.
        let worked = self.with_progress(|p| p.worked);
        let first = if worked {
            session = self.with_progress(|p| p.session_id.clone()).or(session);
            totals.last.answer = self.with_progress(|p| p.answer.clone());
            totals.last.session_id = session.clone();
            plan.step_count() + 1
        } else {
            plan.start_step.max(1) + steps_done
        };
        for k in first..=plan.step_count() {
            self.with_progress(|p| p.step = (!plan.steps.is_empty()).then_some(k));
            let report = match self.run_step(&mut plan, k, session.clone(), &mut totals).await {
                Ok(report) => report,
                Err(status) => return status,
            };
            session = report.session_id.clone().or(session);
            if !plan.steps.is_empty() {
                self.with_progress(|p| {
                    p.steps.push(StepOutcome {
                        n: k,
                        text: plan.steps[k as usize - 1].clone(),
                        status: Status::Succeeded,
                        output: report.answer.clone().unwrap_or_default(),
                        session_id: report.session_id.clone(),
                        agent: Some(plan.agent),
                        cost_usd: report.cost_usd,
                        turns: report.turns,
                        error: None,
                    })
                });
                if k < plan.step_count() {
                    self.emit(Event::StepFinished {
                        step: k,
                        of: plan.step_count(),
                        session_id: report.session_id.clone(),
                    });
                    self.save_progress();
                }
            }
        }
        if plan.verify.is_some() && !worked {
            let answer = totals.last.answer.clone();
            self.with_progress(|p| {
                p.worked = true;
                p.session_id = session.clone();
                p.answer = answer;
            });
            self.save_progress();
        }
        if let Err(status) = self.verify_loop(&mut plan, &mut session, &mut totals).await {
            return status;
        }
        if let Some(e) = self.task_file_changed() {
            return self.finish(Some(&plan), Status::Failed, Some(e), &totals).await;
        }
        self.finish(Some(&plan), Status::Succeeded, None, &totals).await
    }

    /// Sleeps, unless a cancel or shutdown comes first.
    async fn sleep_or_stop(&mut self, d: Duration) -> Option<StopReason> {
        self.flush_held();
        if let Some(r) = self.stop.borrow().clone() {
            return Some(r);
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => None,
            r = self.stop.wait_for(Option::is_some) => r.ok().and_then(|v| v.clone()).or(Some(StopReason::Shutdown)),
        }
    }

    /// Ends the task as failed, for `why`, before another attempt.
    /// A follow-up continuing its parent's session: the count the parent's
    /// result recorded for that session (see [`Totals::session`]).
    fn parent_session_tokens(&self, plan: &Plan) -> Option<(String, crate::vocab::Tokens)> {
        let session = plan.resume_session.clone()?;
        let parent = plan.parent_task_id.as_deref()?;
        let dir = self.shared.home.own_task_dir(parent)?;
        let record = crate::store::record::ResultRecord::load(&dir.join("result.json")).ok()?;
        (record.session_id.as_deref() == Some(session.as_str()))
            .then_some(record.session_tokens)
            .flatten()
            .map(|t| (session, t))
    }

    async fn fail(&mut self, plan: &Plan, kind: ErrorKind, why: impl Into<String>, totals: &Totals) -> Status {
        self.finish(Some(plan), Status::Failed, Some(info(kind, why)), totals)
            .await
    }

    async fn stopped(&mut self, plan: Option<&Plan>, reason: StopReason, totals: &Totals) -> Status {
        match reason {
            StopReason::Cancelled => {
                self.finish(
                    plan,
                    Status::Cancelled,
                    Some(info(ErrorKind::Cancelled, "cancelled by the operator")),
                    totals,
                )
                .await
            }
            _ => {
                let n = self.with_progress(|p| p.attempts.len() as u32);
                self.interrupted(n)
            }
        }
    }

    /// The daemon is stopping: leave the task for the next start (no result).
    fn interrupted(&self, attempt: u32) -> Status {
        self.with_progress(|p| {
            p.status = Some(Status::Interrupted);
            p.waiting_until = None;
        });
        self.save_progress();
        self.emit(Event::TaskInterrupted(Interruption::DaemonShutdown { attempt }));
        Status::Interrupted
    }
}

/// Why `workdir` (canonical when the task was planned) no longer resolves to
/// itself, if it does not.
fn workdir_moved(workdir: &std::path::Path) -> Option<String> {
    match crate::task::workdir::canonical(workdir) {
        Ok(now) if now == workdir => None,
        Ok(now) => Some(format!(
            "the workdir {} now resolves to {}",
            workdir.display(),
            now.display()
        )),
        Err(e) => Some(format!("the workdir {} cannot be used: {e}", workdir.display())),
    }
}
