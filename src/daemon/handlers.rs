//! The daemon between two turns of its loop, and what it does on each thing
//! that wakes it: a watcher hint, a cancel request the lookout found, a task
//! ending, a stop signal; a deadline (rescan, recovery, retention) is handled
//! in `periodic.rs`. `super::run` sets it up, turns the loop and tears it
//! down; each turn is the handlers below.

use super::dependencies::{Admission, Dependencies};
use super::lookout::Lookout;
use super::{RunSummary, Shared, homecheck, recovery, report_stuck, runner, writers};
use crate::agents::supervise::StopReason;
use crate::events::{Event, Interruption};
use crate::intake::{self, Intake, Rules, Verdict};
use crate::queue::Queue;
use crate::store::daemons::Registration;
use crate::store::record::Status;
use crate::watch::Hint;
use runner::TaskRun;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::{OwnedSemaphorePermit, watch as tokio_watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Everything the loop keeps from one turn to the next.
pub(super) struct Daemon {
    /// The home, config, event log and worker name, shared with the runners.
    pub shared: Arc<Shared>,
    pub rules: Rules,
    pub intake: Intake,
    pub queue: Queue,
    /// The parsed tasks of a small queue, for their claim.
    pub judged: super::judged::JudgedTasks,
    /// What the held files of the queue wait for.
    pub deps: Dependencies,
    /// When tasks and files of other daemons are looked at next, for the held files.
    pub deps_look_at: Instant,
    /// Where the home stands under the `budget:` caps.
    pub spend: super::spend::SpendWatch,
    /// The config's schedules and when each fires next.
    pub scheduler: super::schedules::Scheduler,
    /// Held files that can never run (a task they need failed): claimed and
    /// ended as cancelled at the next turn.
    pub doomed: Vec<(Arc<str>, crate::store::record::ErrorInfo)>,
    pub writers: writers::Writers,
    pub writers_dir: PathBuf,
    pub tasks: JoinSet<(String, Status)>,
    /// Each running task's stop switch, by id.
    pub stops: HashMap<String, tokio_watch::Sender<Option<StopReason>>>,
    /// Looks for the running tasks' cancel requests.
    pub lookout: Lookout,
    /// Where the config came from, to read it again.
    pub config_source: super::reload::ConfigSource,
    /// When to see whether the config file changed (a watcher event, given a
    /// debounce for the editor to finish).
    pub config_check_at: Option<Instant>,
    /// Slots still owed after `max_concurrent` was lowered.
    pub slot_debt: super::reload::SlotDebt,
    /// When `retention:` is applied next, and its pass if one is running.
    pub retention_at: Instant,
    pub retention_pass: Option<tokio::task::JoinHandle<()>>,
    /// Sends the notifications (`notify:`).
    pub notifier: crate::notify::Notifier,
    pub summary: RunSummary,
    pub registration: Registration,
    /// Tasks this daemon stopped before they finished (a shutdown, a result
    /// that could not be written): said in `run/` when it exits.
    pub left_unfinished: Vec<String>,
    /// Inbox files that could not be rejected (inbox/rejected/ not writable): said once each.
    pub stuck: HashSet<PathBuf>,
    /// Inbox entries with names that are not Unicode, waiting for their writer to be done.
    pub bad_names: Vec<PathBuf>,
    pub rescan_at: Instant,
    pub recover_at: Instant,
    /// The inbox the daemon started on (see [`Self::on_rescan_due`]).
    pub inbox_identity: Option<homecheck::Identity>,
    /// Why it is stopping, once it is.
    pub stopping: Option<&'static str>,
    /// A runner of ours ended without finishing its task (panic, unwritable
    /// result): scan for orphans at the next recovery tick.
    pub own_orphans: bool,
    /// When running agents are told to stop, once a shutdown began.
    pub force_stop_at: Option<Instant>,
}

impl Daemon {
    /// Starts a runner for `run`.
    pub fn spawn(&mut self, run: TaskRun, permit: Option<OwnedSemaphorePermit>) {
        let (tx, rx) = tokio_watch::channel(None);
        self.stops.insert(run.claimed.id.clone(), tx);
        self.lookout.add(&run.claimed.id);
        self.tasks.spawn(runner::run(self.shared.clone(), run, permit, rx));
    }

    /// Takes over the tasks of dead daemons (our own earlier life included)
    /// and runs them again.
    pub fn recover(&mut self) {
        let orphans = match recovery::take_over_orphans(&self.shared.home) {
            Ok(orphans) => orphans,
            Err(e) => {
                tracing::error!(error = %e, "could not scan results/ for interrupted tasks");
                return;
            }
        };
        for o in orphans {
            let mut progress = o.progress.unwrap_or_default();
            if let Some(attempt) = recovery::close_cut_short_run(&mut progress) {
                self.shared.events.emit(
                    Some(&o.claimed.id),
                    Event::TaskInterrupted(Interruption::DaemonDied {
                        attempt,
                        killed_leftover: o.killed_leftover,
                        recovered_by: self.shared.worker.clone(),
                    }),
                );
                // Kept at once: if this daemon dies too before its own run
                // says anything, the next one must not tell this death again.
                if let Err(e) = crate::store::atomic::write_json_atomic(&o.claimed.dir.progress(), &progress) {
                    tracing::warn!(task = %o.claimed.id, error = %e, "could not write progress.json");
                }
            }
            let run = TaskRun {
                claimed: o.claimed,
                recovered: Some(progress),
                queued: None,
                spec: None,
                doomed: None,
                waited_for: None,
            };
            self.spawn(run, None);
        }
    }

    /// Names that are not valid Unicode cannot be tasks: rejected once their
    /// writer has left them alone for a debounce.
    pub fn reject_bad_names(&mut self) {
        self.bad_names.extend(self.intake.take_bad_names());
        self.bad_names.sort();
        self.bad_names.dedup();
        for path in std::mem::take(&mut self.bad_names) {
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let quiet = meta
                .modified()
                .is_ok_and(|t| t.elapsed().unwrap_or_default() >= self.shared.config().debounce());
            if self.stuck.contains(&path) {
                continue;
            }
            if !quiet {
                self.bad_names.push(path);
                continue;
            }
            let shown = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let r = crate::task::Rejection::new(
                "name_not_utf8",
                "the file's name is not valid UTF-8, so it cannot be named in records or by the CLI",
                "rename it with a UTF-8 name (e.g. `convmv -f latin1 -t utf8`) and put it back in the inbox",
            );
            match intake::reject_path(&self.shared.home, &self.shared.events, &path, &shown, &r) {
                Ok(moved) => self.summary.rejected += usize::from(moved),
                Err(why) => {
                    self.summary.unclaimed += 1;
                    report_stuck(&self.shared.events, &mut self.stuck, path, &shown, &r, &why);
                }
            }
        }
    }

    /// Judges the files that have settled: queued (held, when they wait for
    /// other tasks) or rejected. Files that settled together are announced
    /// in one write (in order with any rejection among them).
    pub fn settle(&mut self) {
        let mut queued = crate::events::Batch::default();
        let mut accepted = 0;
        let mut decided = Vec::new();
        let Self {
            intake,
            rules,
            shared,
            queue,
            judged,
            deps,
            doomed,
            summary,
            stuck,
            ..
        } = self;
        let (home, events) = (&shared.home, &shared.events);
        let mut reject = |name: &str, rejection: &crate::task::Rejection, queued: &mut crate::events::Batch| {
            events.write(std::mem::take(queued));
            let path = home.inbox().join(name);
            match intake::reject(home, events, name, rejection) {
                Ok(moved) => {
                    summary.rejected += usize::from(moved);
                    stuck.remove(&path);
                }
                Err(why) => {
                    summary.unclaimed += 1;
                    report_stuck(events, stuck, path, name, rejection, &why);
                }
            }
        };
        intake.settle_each(std::time::Instant::now(), rules, |verdict| match verdict {
            Verdict::Accept(a) => {
                let intake::Accepted { queued: q, spec, bytes } = *a;
                let admission = deps.admit(home, &q.name, &spec.deps, q.arrival);
                if let Admission::Reject(rejection, files) = &admission {
                    for f in files {
                        queue.remove(f);
                        judged.forget(f);
                        reject(f, rejection, &mut queued);
                        decided.extend(deps.rejected(f));
                    }
                    return;
                }
                events.add(
                    &mut queued,
                    None,
                    Event::TaskQueued {
                        file: q.name.to_string(),
                        title: spec.title.clone(),
                        agent: q.agent,
                        priority: q.priority,
                        // Only while it is held: met ones are nothing to wait for.
                        waiting_for: match admission {
                            Admission::Wait => spec.deps.references().map(str::to_string).collect(),
                            _ => Vec::new(),
                        },
                        starts_at: spec
                            .deps
                            .start_to_come(q.arrival)
                            .and_then(|t| jiff::Timestamp::try_from(t).ok())
                            .map(|t| t.to_string()),
                    },
                );
                let name = q.name.clone();
                judged.keep(name.clone(), super::judged::Judged { spec, bytes }, queue.len() + 1);
                match admission {
                    Admission::Ready => queue.push(q),
                    Admission::Wait => queue.hold(q),
                    Admission::Doomed(e) => {
                        queue.hold(q);
                        doomed.push((name, e));
                    }
                    Admission::Reject(..) => unreachable!("handled above"),
                }
                accepted += 1;
                if queued.is_full() {
                    events.write(std::mem::take(&mut queued));
                }
            }
            Verdict::Reject { name, rejection } => {
                reject(&name, &rejection, &mut queued);
                decided.extend(deps.rejected(&name));
            }
            // Back to settling inside `settle_each`; never handed out.
            Verdict::Moved(_) => {}
        });
        self.shared.events.write(queued);
        self.apply(decided);
        if accepted >= 1000 {
            crate::memory::release_freed();
        }
    }

    /// Claims and starts queued files while slots are free (not once stopping).
    pub fn start_queued(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        if self.spend_capped() {
            return;
        }
        while let Ok(permit) = self.shared.slots.clone().try_acquire_owned() {
            let (pauses, writers, dir) = (&self.shared.pauses, &mut self.writers, &self.writers_dir);
            let Some(q) = self.queue.pop_next(|c| {
                let runnable = !pauses.is_paused(c.agent)
                    || crate::vocab::AgentKind::ALL
                        .iter()
                        .any(|a| c.fallback & a.bit() != 0 && !pauses.is_paused(*a));
                runnable && c.writer.is_none_or(|repo| writers.try_take(dir, c.name, repo))
            }) else {
                break;
            };
            let claim = crate::claim::claim(&self.shared.home, &q.name);
            match &claim {
                Ok(Some(claimed)) => {
                    self.writers.rename(&q.name, &claimed.id);
                    self.deps.claimed(&q.name, &claimed.id);
                }
                _ => self.writers.release(&q.name),
            }
            let waited_for = self.deps.take_met(&q.name);
            match claim {
                Ok(Some(claimed)) => {
                    let spec = self.judged.take(&q.name);
                    let run = TaskRun {
                        claimed,
                        recovered: None,
                        queued: Some(q),
                        spec,
                        doomed: None,
                        waited_for,
                    };
                    self.spawn(run, Some(permit));
                }
                Ok(None) => {
                    self.judged.forget(&q.name);
                    tracing::debug!(file = %q.name, "another daemon claimed it first");
                }
                Err(e) => {
                    self.judged.forget(&q.name);
                    self.claim_failed(&q.name, &e);
                }
            }
        }
        if self.queue.is_empty() {
            self.judged.clear();
        }
    }

    /// Nothing is lost: the file stays in the inbox and the next rescan queues it again.
    pub(super) fn claim_failed(&mut self, name: &str, e: &std::io::Error) {
        tracing::error!(file = %name, error = %e, "could not claim; the file stays in the inbox");
        let hint = if e.kind() == std::io::ErrorKind::CrossesDevices {
            "inbox/ and results/ must be on the same filesystem (a claim is a rename); move or mount them together, and the file, still in the inbox, is tried again at the next rescan".to_string()
        } else {
            format!(
                "the daemon cannot create task folders in {} (permissions, a read-only or full disk); fix that and the file, still in the inbox, is tried again at the next rescan",
                self.shared.home.results().display()
            )
        };
        self.shared.events.emit(
            None,
            Event::ClaimFailed {
                file: name.to_string(),
                reason: None,
                error: e.to_string(),
                hint,
            },
        );
        self.summary.unclaimed += 1;
    }

    /// Nothing is left to do: the inbox drained and no task runs.
    pub fn drained(&self) -> bool {
        self.queue.is_empty() && self.intake.settling() == 0 && self.tasks.is_empty() && self.bad_names.is_empty()
    }

    /// Publishes what `status` reads, and says when the loop must wake next
    /// if nothing else wakes it.
    pub fn next_wake(&mut self) -> Instant {
        self.registration
            .update(self.stops.keys().cloned().collect(), self.shared.pauses.published());
        // The run order, then the files that wait for other tasks.
        let listed = self.queue.ordered().chain(self.queue.held_names());
        self.registration.update_queue(self.queue.len(), listed);
        self.shared.in_flight.store(
            self.queue.len() + self.tasks.len(),
            std::sync::atomic::Ordering::Relaxed,
        );
        self.registration.update_spend_cap(self.spend.hit());
        let publish_at = self
            .registration
            .publish_due(std::time::Instant::now())
            .map(Instant::from_std);
        let pause_end = self
            .shared
            .pauses
            .next_expiry()
            .map(|t| Instant::now() + t.duration_since(SystemTime::now()).unwrap_or_default());
        [
            self.intake.next_deadline().map(Instant::from_std),
            (!self.bad_names.is_empty()).then(|| Instant::now() + self.shared.config().debounce()),
            Some(self.rescan_at),
            Some(self.recover_at),
            self.config_check_at,
            self.shared.config().retention.enabled().then_some(self.retention_at),
            pause_end,
            publish_at,
            (self.deps.len() > 0).then_some(self.deps_look_at),
            self.deps
                .next_start()
                .map(|t| Instant::now() + t.duration_since(SystemTime::now()).unwrap_or_default()),
            // A cap reached: look again a second later (its period may end, a
            // peer's task may finish), while anything waits.
            // And while tasks run under caps: their next runs are held to what is left.
            ((self.spend.hit().is_some() && !self.queue.is_empty())
                || (!self.stops.is_empty() && self.shared.config().budget.enabled()))
            .then(|| Instant::now() + super::spend::LOOK_EVERY),
            self.scheduler.next_due().map(|t| {
                let wait = t.duration_since(jiff::Timestamp::now());
                Instant::now() + std::time::Duration::try_from(wait).unwrap_or_default()
            }),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.rescan_at)
    }

    /// Watcher hints (all that have arrived): files to settle again.
    pub fn on_hints(&mut self, hints: impl IntoIterator<Item = Hint>) {
        let now = std::time::Instant::now();
        for h in hints {
            match h {
                Hint::Changed(name) => self.intake.note(&name, now, &mut self.queue),
                Hint::Written(name) => self.intake.note_written(&name, now, &mut self.queue),
                Hint::Closed(name) => self.intake.note_closed(&name, now, &mut self.queue),
                Hint::Rescan => {
                    let _ = self.intake.rescan(now, &mut self.queue);
                }
                Hint::Config => {
                    self.config_check_at = Some(Instant::now() + self.shared.config().debounce());
                }
            }
        }
    }

    /// The lookout found a cancel request for a running task: stop its agent.
    pub fn on_cancel_requested(&self, id: &str) {
        if let Some(tx) = self.stops.get(id)
            && tx.borrow().is_none()
        {
            let _ = tx.send(Some(StopReason::Cancelled));
        }
    }

    /// A runner ended (or panicked).
    pub fn on_task_end(&mut self, joined: Result<(String, Status), tokio::task::JoinError>) {
        match joined {
            Ok((id, status)) => {
                self.stops.remove(&id);
                self.lookout.remove(&id);
                self.writers.release(&id);
                if matches!(status, Status::Succeeded | Status::Failed | Status::Cancelled) {
                    let decided = self.deps.ended(&id, status);
                    self.apply(decided);
                }
                match status {
                    Status::Succeeded => self.summary.succeeded += 1,
                    Status::Failed => self.summary.failed += 1,
                    Status::Cancelled => self.summary.cancelled += 1,
                    _ => {
                        self.summary.interrupted += 1;
                        self.left_unfinished.push(id.clone());
                        // Not stopping, yet unfinished: its result could not be
                        // written. Its folder is an orphan now; retry later.
                        self.own_orphans |= self.stopping.is_none();
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "a task runner panicked; its task will be recovered");
                self.own_orphans = true;
                // Its id is lost with it: keep only the switches and locks of
                // tasks still running (a runner that ended dropped its receiver).
                let lookout = &self.lookout;
                self.stops.retain(|id, tx| {
                    let running = !tx.is_closed();
                    if !running {
                        lookout.remove(id);
                    }
                    running
                });
                let stops = &self.stops;
                self.writers.retain(|owner| stops.contains_key(owner));
            }
        }
    }

    /// A stop was asked for: no new tasks; running agents get `shutdown_grace`.
    pub fn on_stop_signal(&mut self, reason: &'static str) {
        tracing::info!(
            reason,
            running = self.tasks.len(),
            "shutting down: no new tasks; running agents get {}",
            self.shared.config().shutdown_grace
        );
        self.stopping = Some(reason);
        self.force_stop_at = Some(Instant::now() + self.shared.config().shutdown_grace.0);
    }

    /// The grace is over: every running agent is stopped.
    pub fn on_grace_over(&mut self) {
        self.force_stop_at = None;
        for tx in self.stops.values() {
            let _ = tx.send(Some(StopReason::Shutdown));
        }
    }
}
