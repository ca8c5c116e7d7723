//! The end of a task: its summary, `result.json` (written once, last: it means
//! finished), its index row, and the event that says how it ended.

use super::{Runner, Totals};
use crate::agents::AgentReport;
use crate::agents::outcome::ErrorKind;
use crate::events::{Event, Finished, Interruption, Violation, now_ts};
use crate::plan::Plan;
use crate::store::index::IndexRow;
use crate::store::record::{ErrorInfo, ResultRecord, SCHEMA_VERSION, Status, StepOutcome, Validation};
use crate::store::summary;
use crate::validate;
use crate::vocab::Finding;

impl Runner {
    /// Writes the summary, then `result.json` (last: it means finished), then the index row.
    /// The agent slot is given back first: the next task's agent starts while
    /// this result is flushed to disk (in a batch with others, by the commit thread).
    pub(super) async fn finish(
        &mut self,
        plan: Option<&Plan>,
        status: Status,
        error: Option<ErrorInfo>,
        totals: &Totals,
    ) -> Status {
        if self.permit.take().is_some() {
            self.shared.wake.notify_one();
        }
        let review = self.review(plan, status, error, &totals.last).await;
        let (status, error) = (review.status, review.error);
        let attempts = self.with_progress(|p| {
            p.status = Some(status);
            p.waiting_until = None;
            p.attempts.clone()
        });
        let started_at = self.with_progress(|p| p.started_at.clone()).unwrap_or_else(now_ts);
        let r = &totals.last;
        // Multi-step plans: the finished steps, and the one that ended the task.
        let mut steps = self.with_progress(|p| p.steps.clone());
        if let Some(plan) = plan.filter(|p| !p.steps.is_empty())
            && status != Status::Succeeded
            && let Some(k) = self.with_progress(|p| p.step)
        {
            steps.push(StepOutcome {
                n: k,
                text: plan.steps.get(k as usize - 1).cloned().unwrap_or_default(),
                status,
                output: r.answer.clone().unwrap_or_default(),
                session_id: r.session_id.clone(),
                agent: Some(plan.agent),
                cost_usd: r.cost_usd,
                turns: r.turns,
                error: error.clone(),
            });
        }
        let record = ResultRecord {
            schema_version: SCHEMA_VERSION,
            id: self.id().to_string(),
            title: plan
                .map(|p| p.title.clone())
                .or_else(|| self.judged_spec.as_ref().map(|j| j.spec.title.clone()))
                .unwrap_or_else(|| self.claimed.source_file.clone()),
            source_file: self.claimed.source_file.clone(),
            status,
            agent: plan
                .map(|p| p.agent)
                .or_else(|| self.judged_spec.as_ref().map(|j| j.spec.agent))
                .map(|a| a.name().to_string())
                .unwrap_or_default(),
            workdir: plan.map(|p| p.workdir.display().to_string()).unwrap_or_default(),
            queued_at: plan
                .and_then(|p| p.queued_at.clone())
                .or_else(|| self.queued_at.clone()),
            started_at,
            finished_at: now_ts(),
            duration_ms: self.started.elapsed().as_millis() as u64,
            attempts: attempts.clone(),
            output: r.answer.clone().unwrap_or_default(),
            session_id: r
                .session_id
                .clone()
                .or_else(|| self.with_progress(|p| p.session_id.clone())),
            cost_usd: totals.cost,
            tokens: totals.tokens.some(),
            // The count of the session the result names, and no other.
            session_tokens: totals
                .session
                .as_ref()
                .filter(|(id, _)| r.session_id.as_deref() == Some(id.as_str()))
                .map(|(_, t)| *t),
            turns: totals.turns,
            tool_calls: totals.tool_calls,
            files_changed: review.files_changed,
            permission_denials: r.permission_denials.clone(),
            validation: Validation {
                warnings: review.warnings,
                success_criteria: plan.map(|p| p.success_criteria.clone()).unwrap_or_default(),
            },
            error: error.clone(),
            parent_task_id: plan.and_then(|p| p.parent_task_id.clone()),
            turn_of: plan.and_then(|p| p.turn_of.clone()),
            worker: self.shared.worker.clone(),
            steps,
            verify: self.with_progress(|p| p.verify.clone()),
            isolation: review.sandbox,
            mediation: plan.and_then(|p| p.mediation.clone()),
            interruptions: super::decide::interruptions(&attempts),
            role: plan.and_then(|p| p.role.clone()),
        };
        self.undo_tampering();
        // With the mediator on, the summary opens with the model's words
        // (within its timeout; without them if it has none).
        let mut text = summary::render(&record);
        if crate::mediator::enabled(&self.config) {
            let (config, r) = (self.config.clone(), record.clone());
            if let Ok(Some(words)) = tokio::task::spawn_blocking(move || crate::mediator::summarize(&config, &r)).await
            {
                text = summary::with_lead(&text, &words);
            }
        }
        let home = &self.shared.home;
        // Staged in the task's folder: see write_atomic_staged.
        if let Err(e) = crate::store::atomic::write_atomic_staged(
            &self.claimed.dir.dir,
            &home.summary_file(self.id()),
            crate::redact::escape_controls(&self.redactor.redact(&text)).as_bytes(),
        ) {
            tracing::error!(task = self.id(), error = %e, "could not write the summary");
        }
        // progress.json is not rewritten here: once result.json exists it is the
        // record, and replacing a file frees an inode. On ext4, every later file
        // creation then scans past the freed inodes: with one rewrite per finished
        // task, a 1,000-task burst got slower with every task (measured 2x).
        let mut bytes = serde_json::to_vec_pretty(&record).expect("result serialises");
        bytes.push(b'\n');
        if let Err(e) = self
            .shared
            .committer
            .write_new_durable(self.claimed.dir.result(), bytes, self.shared.commit_at_once(self.id()))
            .await
        {
            // Without a result the task stays unfinished and is recovered later.
            tracing::error!(task = self.id(), error = %e, "could not write result.json");
            self.emit(Event::TaskInterrupted(Interruption::ResultNotWritten {
                error: e.to_string(),
                status,
                hint: "free space on the disk of results/ (or fix its permissions); the task stays in its folder and runs again at the daemon's next recovery".into(),
            }));
            return Status::Interrupted;
        }
        self.shared.index.record(self.id(), IndexRow::from_result(&record));
        self.emit(final_event(&record, false));
        status
    }
}

/// What the review of a finished run found.
struct Review {
    status: Status,
    error: Option<ErrorInfo>,
    files_changed: Vec<String>,
    warnings: Vec<Finding>,
    sandbox: Option<crate::isolate::Sandbox>,
}

impl Runner {
    /// Files changed (from git), writes outside the workdir, and the validation
    /// checks; with `fail_on_validation`, a success with findings becomes a failure.
    async fn review(
        &self,
        plan: Option<&Plan>,
        status: Status,
        error: Option<ErrorInfo>,
        report: &AgentReport,
    ) -> Review {
        let mut out = Review {
            status,
            error,
            files_changed: Vec::new(),
            warnings: Vec::new(),
            sandbox: self.sandbox.clone(),
        };
        let Some(plan) = plan else { return out };
        if status == Status::Cancelled {
            return out;
        }
        if self.sandbox.is_some() {
            let sandboxed = self.sandbox_changes(plan).await;
            out.sandbox = sandboxed.0;
            return self.judge(plan, out, Some(sandboxed.1), None, report);
        }
        let changes = match self.git_before.clone() {
            Some(before) => {
                let (wd, home) = (plan.workdir.clone(), self.shared.home.root().to_path_buf());
                tokio::task::spawn_blocking(move || crate::changes::since(&before, &wd, &home))
                    .await
                    .ok()
            }
            None => None,
        };
        let outside = changes.as_ref().map(|c| c.outside_workdir.clone()).unwrap_or_default();
        let files = changes.map(|c| c.files);
        self.judge(plan, out, files, Some(outside), report)
    }

    /// The changes of an isolated run: `changes.diff` in the task folder, the
    /// changed files, and for `mode: apply` the work committed on its branch.
    async fn sandbox_changes(&self, plan: &Plan) -> (Option<crate::isolate::Sandbox>, Vec<String>) {
        let Some(mut sb) = self.sandbox.clone() else {
            return (None, Vec::new());
        };
        let (sb2, wd, home) = (sb.clone(), plan.workdir.clone(), self.shared.home.root().to_path_buf());
        let message = format!("orchestrator {}: {}", self.id(), plan.title);
        // `mode: apply` on a worktree leaves its branch for review; a copy has no branch.
        let commit = !plan.guarded() && sb.kind == crate::task::Isolation::Worktree;
        let made = tokio::task::spawn_blocking(move || {
            let (diff, files) = crate::isolate::changes(&sb2, &wd, &home)?;
            if commit {
                crate::isolate::commit_branch(&sb2, &message)?;
            }
            Ok::<_, String>((diff, files))
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        match made {
            Ok((diff, files)) => {
                sb.stat = Some(crate::isolate::DiffStat::of(&diff));
                sb.committed = commit && sb.branch.is_some();
                if let Err(e) = crate::store::atomic::write_atomic(&self.claimed.dir.changes_diff(), diff.as_bytes()) {
                    tracing::error!(task = self.id(), error = %e, "could not write changes.diff");
                }
                let _ = crate::store::atomic::write_json_atomic(&self.claimed.dir.isolation(), &sb);
                (Some(sb), files)
            }
            Err(why) => {
                self.warn(Finding::new(
                    "changes_unreadable",
                    format!("the sandbox's changes could not be read: {why}"),
                ));
                (Some(sb), Vec::new())
            }
        }
    }

    /// Writes outside the workdir, the validation checks, and `fail_on_validation`.
    fn judge(
        &self,
        plan: &Plan,
        mut out: Review,
        files: Option<Vec<String>>,
        outside: Option<Vec<String>>,
        report: &AgentReport,
    ) -> Review {
        let status = out.status;
        let mut found = Vec::new();
        if let Some(outside) = outside.filter(|o| !o.is_empty()) {
            self.emit(Event::SecurityViolation(Violation {
                reason: "writes_outside_workdir".into(),
                files: Some(outside.clone()),
                workdir: Some(plan.workdir.clone()),
                ..Violation::default()
            }));
            found.push(validate::Warning {
                kind: "writes_outside_workdir",
                message: format!("files outside the workdir changed: {}", outside.join(", ")),
            });
        }
        // The heuristics read an agent's answer; a command's output is not one.
        let agent = crate::agents::of(plan.agent);
        if agent.output() == crate::agents::Output::Records {
            let answer = report.answer.as_deref().or(report.last_text.as_deref()).unwrap_or("");
            let read_only = !plan.allowed_tools.is_empty() && !agent.may_edit(&plan.allowed_tools);
            found.extend(validate::check(&validate::Run {
                prompt: &plan.prompt,
                answer,
                succeeded: status == Status::Succeeded,
                files_changed: files.as_deref(),
                permission_denials: &report.permission_denials,
                read_only,
            }));
        }
        for w in &found {
            self.warn(w.finding());
        }
        if self.config.fail_on_validation && status == Status::Succeeded && !found.is_empty() {
            let kinds: Vec<&str> = found.iter().map(|w| w.kind).collect();
            out.status = Status::Failed;
            out.error = Some(ErrorInfo {
                kind: ErrorKind::ValidationFailed,
                message: format!("validation failed: {}", kinds.join(", ")),
                suggestion: ErrorKind::ValidationFailed.suggestion().into(),
            });
        }
        out.files_changed = files.unwrap_or_default();
        // Known (and said) before the run: kept with the findings, never a reason to fail.
        out.warnings = tools_warning(plan).into_iter().collect();
        out.warnings.extend(
            self.run_warnings
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned(),
        );
        out.warnings.extend(found.iter().map(validate::Warning::finding));
        out
    }
}

impl Runner {
    /// An agent whose workdir holds the home (the default) can reach its own
    /// task folder. This daemon holds the task's lock, so nothing else writes
    /// its result: a `result.json` that is already there was forged (it is
    /// kept aside as `result.json.forged-<ms>`, and the real one written), and a
    /// task folder that is gone was removed (it is made again). Either is a
    /// `security_violation`.
    fn undo_tampering(&self) {
        let dir = &self.claimed.dir.dir;
        if !dir.is_dir() {
            let _ = std::fs::create_dir_all(dir);
            self.emit(Event::SecurityViolation(Violation {
                reason: "task_folder_removed".into(),
                message: Some("the task's folder was removed while it ran; it was made again for the result".into()),
                ..Violation::default()
            }));
        }
        let result = self.claimed.dir.result();
        if std::fs::symlink_metadata(&result).is_ok() {
            let ms = jiff::Timestamp::now().as_millisecond();
            let aside = dir.join(format!("result.json.forged-{ms}"));
            let kept = std::fs::rename(&result, &aside).is_ok() || std::fs::remove_file(&result).is_ok();
            self.emit(Event::SecurityViolation(Violation {
                reason: "result_forged".into(),
                kept_as: kept.then(|| aside.display().to_string()),
                message: Some("a result.json was written into the task's folder while it ran (not by the daemon); it was set aside and the real result written".into()),
                ..Violation::default()
            }));
        }
    }
}

/// The warning for tools the task asked for and did not get (the agent says
/// why: `tools_not_enforced` for Cline and commands, `tools_dropped` for a
/// ceiling that left some out).
pub fn tools_warning(plan: &Plan) -> Option<Finding> {
    if plan.tools_dropped.is_empty() {
        return None;
    }
    let (warning, message) = crate::agents::of(plan.agent).dropped_tools_warning();
    Some(Finding {
        tools: Some(plan.tools_dropped.clone()),
        ..Finding::new(warning, message)
    })
}

/// The event that tells how a task ended, and its fields, from its result.
pub fn final_event(record: &ResultRecord, late: bool) -> Event {
    let e = record.error.as_ref();
    let finished = Finished {
        title: record.title.clone(),
        duration_ms: record.duration_ms,
        attempts: record.attempts.len(),
        cost_usd: record.cost_usd,
        error: e.map(|e| e.kind),
        message: e.map(|e| e.message.clone()),
        suggestion: e.map(|e| e.suggestion.clone()),
        late,
    };
    match record.status {
        Status::Succeeded => Event::TaskSucceeded(finished),
        Status::Cancelled => Event::TaskCancelled(finished),
        _ => Event::TaskFailed(finished),
    }
}
