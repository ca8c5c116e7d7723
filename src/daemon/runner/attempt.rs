//! One attempt: the agent's environment and command line, its reader, the
//! records written as it starts (owner.lock, progress.json), its run under
//! the supervisor, and its classification.

use super::{PROGRESS_FILE_AFTER, Runner, from_failure};
use crate::agents::outcome::Failure;
use crate::agents::supervise::{self, Spawn};
use crate::agents::{AgentReport, LiveLimits};
use crate::events::{Event, now_ts};
use crate::plan::Plan;
use crate::store::atomic::write_json_atomic;
use crate::store::lock::OwnerRecord;
use crate::store::record::{AttemptRecord, Status};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

impl Runner {
    pub(super) async fn attempt(
        &mut self,
        plan: &Plan,
        step: u32,
        session: Option<&str>,
        remaining: Duration,
        limits: LiveLimits,
        alone: bool,
    ) -> (AgentReport, Option<Failure>, u32) {
        let budget_left = limits.budget_usd;
        let cwd = self
            .sandbox
            .as_ref()
            .map_or_else(|| plan.workdir.clone(), |sb| sb.run_dir.clone());
        let td = self.claimed.dir.clone();
        let invocation = plan.invocation(step, session, &cwd, budget_left, Some(&td.dir));
        for (name, text) in &invocation.files {
            if let Err(e) = crate::store::atomic::write_atomic(&td.dir.join(name), text.as_bytes()) {
                tracing::warn!(task = self.id(), file = name, error = %e, "could not write a file the agent's run names");
            }
        }
        let n = self.with_progress(|p| {
            let n = p.attempts.len() as u32 + 1;
            p.attempt = n;
            p.status = Some(Status::Running);
            p.waiting_until = None;
            p.attempts.push(AttemptRecord {
                worker: Some(self.shared.worker.clone()),
                alone,
                cut_short: None,
                agent: Some(plan.agent),
                n,
                step,
                started_at: now_ts(),
                finished_at: None,
                duration_ms: None,
                exit_code: None,
                error: None,
            });
            n
        });
        // Counted before the agent can do anything: a task that kills its daemon
        // still uses up its attempts, so it cannot rerun forever.
        let owner = OwnerRecord {
            source_file: self.claimed.source_file.clone(),
            attempts: self.with_progress(|p| p.attempts.clone()),
            agent: None,
        };
        if let Err(e) = owner.write_to(&self.claimed.lock) {
            tracing::warn!(task = self.id(), error = %e, "could not record the attempt in owner.lock");
        }
        self.emit(Event::AttemptStarted {
            attempt: n,
            max_attempts: plan.max_attempts,
            program: plan.program.clone(),
            agent: plan.agent,
        });

        let agent = crate::agents::of(plan.agent);
        let mut env: Vec<(String, String)> = self.config.agent(plan.agent).env.into_iter().collect();
        for (k, v) in agent
            .env()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain(invocation.env)
        {
            if !env.iter().any(|(have, _)| *have == k) {
                env.push((k, v));
            }
        }
        use crate::agents::leftovers::{ATTEMPT_VAR, DAEMON_VAR, TASK_VAR};
        env.push((TASK_VAR.into(), self.id().to_string()));
        env.push((ATTEMPT_VAR.into(), n.to_string()));
        env.push((DAEMON_VAR.into(), std::process::id().to_string()));
        env.push((
            "ORCHESTRATOR_HOME".into(),
            self.shared.home.root().display().to_string(),
        ));
        let spawn = Spawn {
            program: invocation.program,
            args: invocation.args,
            cwd,
            env,
            stdin: invocation.stdin.into_bytes().into(),
            out_path: td.attempt_out(n),
            err_path: td.attempt_err(n),
            max_output_bytes: plan.max_output_bytes,
            kill_grace: plan.kill_grace.0,
            stop_signal: agent.stop_signal(),
            deadline: tokio::time::Instant::now() + remaining,
            stall_timeout: plan.stall_timeout.map(|d| d.0),
            mark: Some((self.id().to_string(), n)),
        };
        let reader = agent.reader(limits);
        let started = Instant::now();
        // The attempt and its agent's pid are recorded as soon as the agent runs:
        // that is what a recovering daemon needs. They go into owner.lock, which
        // this daemon holds open (a rewrite in place, no new file); progress.json
        // follows only for an agent still running after PROGRESS_FILE_AFTER (or
        // when it reports progress): a short task never creates it.
        let progress = self.progress.clone();
        let (lock, source) = (self.claimed.lock.clone(), self.claimed.source_file.clone());
        let on_spawned: supervise::SpawnedFn = Box::new(move |agent| {
            let record = {
                let mut p = progress.lock().unwrap_or_else(|e| e.into_inner());
                p.agent = Some(agent.clone());
                p.updated_at = Some(now_ts());
                OwnerRecord {
                    source_file: source,
                    attempts: p.attempts.clone(),
                    agent: Some(agent),
                }
            };
            if let Err(e) = record.write_to(&lock) {
                tracing::warn!(error = %e, "could not record the attempt in owner.lock");
            }
        });
        // progress.json for an agent still running after PROGRESS_FILE_AFTER:
        // polled beside the run (below), not spawned as a task of its own, so
        // a short run leaves no timer behind for the runtime to carry and
        // cancel at exit (a thousand of them after a burst).
        let progress_later = {
            let (progress, path) = (self.progress.clone(), td.progress());
            async move {
                loop {
                    tokio::time::sleep(PROGRESS_FILE_AFTER).await;
                    let snapshot = {
                        let p = progress.lock().unwrap_or_else(|e| e.into_inner());
                        // This attempt's agent, once it has been started.
                        (p.agent.is_some() && p.attempt == n).then(|| p.clone())
                    };
                    if let Some(snapshot) = snapshot {
                        if let Err(e) = write_json_atomic(&path, &snapshot) {
                            tracing::warn!(error = %e, "could not write progress.json");
                        }
                        break;
                    }
                }
                std::future::pending::<std::convert::Infallible>().await
            }
        };
        let ran_at = crate::agents::RanAt {
            home: spawn
                .env
                .iter()
                .find(|(k, _)| k == "HOME")
                .map(|(_, v)| std::path::PathBuf::from(v))
                .or_else(|| std::env::var_os("HOME").map(std::path::PathBuf::from)),
            cwd: spawn.cwd.clone(),
            started: std::time::SystemTime::now(),
            stdin: Arc::clone(&spawn.stdin),
        };
        let run = self
            .shared
            .supervisor
            .run(spawn, reader, on_spawned, self.progress_fn(n), self.stop.clone());
        let (exit, mut report) = tokio::select! {
            ended = run => ended,
            never = progress_later => match never {},
        };
        // Redacted where the text enters the records: an agent's error may quote
        // a key it printed (stderr, an API message), and from here it goes to
        // result.json, the attempt records, the events and the summary.
        let failure = crate::agents::classify(plan.agent, &exit, &report).map(|mut f| {
            f.message = self.redactor.redact(&f.message).into_owned();
            f
        });
        // Dollars from tokens, for a CLI that reports none (Codex), where the
        // config has its prices.
        if report.cost_usd.is_none()
            && !report.tokens.is_zero()
            && let Some(prices) = self.config.agent(plan.agent).prices
        {
            report.cost_usd = Some(prices.cost(report.tokens));
        }
        // A CLI that names its session only in its own history (Cline); looked
        // up after the run was judged on what it printed.
        if report.session_id.is_none() && exit.spawn_error.is_none() {
            report.session_id = agent.find_session(&ran_at);
        }
        if exit.output_left_open {
            let w = crate::vocab::Finding {
                attempt: Some(n),
                ..crate::vocab::Finding::new(
                    "output_left_open",
                    "a process the agent started outside its process group, without the daemon's marks (it cleared its environment), kept its output open after the agent ended; reading stopped after 5 s",
                )
            };
            self.warn(w.clone());
            // Kept for the result's warnings and the summary, like every other warning.
            self.run_warnings.lock().unwrap_or_else(|e| e.into_inner()).push(w);
        }
        let duration_ms = started.elapsed().as_millis() as u64;
        self.with_progress(|p| {
            if let Some(a) = p.attempts.last_mut() {
                a.finished_at = Some(now_ts());
                a.duration_ms = Some(duration_ms);
                a.exit_code = exit.code;
                a.error = failure.as_ref().map(from_failure);
                // A stop of the daemon's own (not a death: recovery marks those).
                if failure
                    .as_ref()
                    .is_some_and(|f| f.kind == crate::agents::outcome::ErrorKind::Interrupted)
                {
                    a.cut_short = Some(crate::vocab::CutShort::DaemonShutdown);
                }
            }
            p.turns = report.turns;
            p.session_id = report.session_id.clone().or(p.session_id.take());
            p.agent = None;
        });
        // progress.json is written next by whatever follows: a retry's wait, or the finish.
        // The event goes out with the next one: the task's last event when it
        // finishes (after result.json is flushed, a millisecond or so later), or
        // before a retry's wait.
        self.emit_soon(Event::AttemptFinished {
            attempt: n,
            exit_code: exit.code,
            signal: exit.signal,
            duration_ms,
            error: failure.as_ref().map(|f| f.kind),
            message: failure.as_ref().map(|f| f.message.clone()),
            turns: report.turns,
            tool_calls: report.tool_calls,
            cost_usd: report.cost_usd,
            tokens: report.tokens.some(),
            stdout_bytes: exit.stdout_bytes,
            stderr_bytes: exit.stderr_bytes,
        });
        (report, failure, n)
    }

    /// Progress callback: `progress.json` and an `agent_progress` event, at most
    /// once per `progress_interval`.
    pub(super) fn progress_fn(&self, attempt: u32) -> supervise::ProgressFn {
        let shared = self.shared.clone();
        let progress = self.progress.clone();
        let path = self.claimed.dir.progress();
        let id = self.id().to_string();
        let every = self.config.progress_interval.0;
        let redactor = self.redactor.clone();
        let last: Mutex<Option<Instant>> = Mutex::new(None);
        Arc::new(move |r: &AgentReport| {
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < every) {
                return;
            }
            *last = Some(Instant::now());
            let snapshot = {
                let mut p = progress.lock().unwrap_or_else(|e| e.into_inner());
                p.turns = r.turns;
                p.tool_calls = r.tool_calls;
                p.cost_usd = r.cost_usd.or(p.cost_usd);
                // What `status` shows of the agent's last words: redacted like an event.
                p.last_event = r.last_event.as_deref().map(|e| redactor.redact(e).into_owned());
                p.session_id = r.session_id.clone().or(p.session_id.take());
                p.updated_at = Some(now_ts());
                p.clone()
            };
            let _ = write_json_atomic(&path, &snapshot);
            shared.events.emit(
                Some(&id),
                Event::AgentProgress {
                    attempt,
                    turns: r.turns,
                    tool_calls: r.tool_calls,
                    cost_usd: r.cost_usd,
                    last_event: r.last_event.clone(),
                },
            );
        })
    }
}
