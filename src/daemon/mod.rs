//! The daemon: wires watcher, intake, queue, claims and runners into one loop.
//!
//! The loop sleeps until something can change what it should do: a watcher
//! hint, a file's settle deadline, the periodic rescan, a task ending, an agent
//! pause ending, or a signal. It never polls on a short tick (pueue's 300 ms
//! scheduler tick caps it at a few tasks a second).

pub mod homecheck;
pub mod pauses;
pub mod recovery;
pub mod runner;
pub mod writers;

use crate::agents::supervise::StopReason;
use crate::config::{Config, Loaded};
use crate::events::EventLog;
use crate::intake::{self, Intake, Rules, Verdict};
use crate::queue::Queue;
use crate::store::Home;
use crate::store::daemons::{self, DaemonState, Registration};
use crate::store::index::{self, IndexWriter};
use crate::store::record::Status;
use crate::watch::{self, Hint};
use anyhow::Context as _;
use pauses::Pauses;
use runner::TaskRun;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::{Notify, Semaphore, watch as tokio_watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How often running tasks are checked for a cancel request: a cancel takes
/// effect well within a second.
const CANCEL_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// State every runner shares with the loop.
pub struct Shared {
    pub home: Home,
    pub config: Arc<Config>,
    pub events: Arc<EventLog>,
    pub index: Arc<IndexWriter>,
    pub pauses: Pauses,
    pub slots: Arc<Semaphore>,
    /// `host:pid`, written into results.
    pub worker: String,
    /// Runners poke the loop when they change what it may claim.
    pub wake: Notify,
    pub redactor: crate::redact::Redactor,
    /// Flushes result files in batches ([`crate::store::commit`]).
    pub committer: crate::store::commit::Committer,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Drain the inbox, wait for the tasks, and exit.
    pub once: bool,
}

/// What this daemon did, for `run --once`'s exit code.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RunSummary {
    pub succeeded: usize,
    pub failed: usize,
    pub cancelled: usize,
    pub rejected: usize,
    pub interrupted: usize,
    /// Queued files that could not be claimed (results/ unwritable); they stay in the inbox.
    pub unclaimed: usize,
}

impl RunSummary {
    pub fn all_succeeded(&self) -> bool {
        self.failed == 0 && self.cancelled == 0 && self.rejected == 0 && self.interrupted == 0 && self.unclaimed == 0
    }
}

/// A file that should have been rejected stays in the inbox: a `claim_failed`
/// event says why and what to do, once per file (it is judged again at every
/// rescan, and fails the same way until someone fixes the cause).
fn report_stuck(
    events: &EventLog,
    stuck: &mut std::collections::HashSet<std::path::PathBuf>,
    path: std::path::PathBuf,
    name: &str,
    r: &crate::task::Rejection,
    why: &str,
) {
    if stuck.insert(path) {
        events.emit(
            "claim_failed",
            None,
            json!({"file": name, "reason": r.reason, "error": format!("rejected ({}), but {why}", r.error),
                   "hint": "make inbox/rejected/ writable for the daemon (or remove the file by hand); it stays in the inbox until then"}),
        );
    }
}

/// This machine's name, for `worker` and the daemon registry.
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .or_else(|_| std::env::var("COMPUTERNAME"))
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A stop asked for from inside the process: the Windows service's control
/// handler (stop, shutdown, preshutdown from the Service Control Manager).
static STOP_REQUEST: Notify = Notify::const_new();

/// Asks a running daemon in this process to shut down gracefully, as SIGTERM does.
pub fn request_shutdown() {
    STOP_REQUEST.notify_one();
}

/// Set once a daemon in this process is up (registered, watching its inbox):
/// the Windows service reports Running then, not before.
static STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether a daemon in this process has got as far as watching its inbox.
pub fn has_started() -> bool {
    STARTED.load(std::sync::atomic::Ordering::Relaxed)
}

async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "interrupt",
            _ = term.recv() => "terminate",
            _ = STOP_REQUEST.notified() => "service_stop",
        }
    }
    #[cfg(not(unix))]
    {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "interrupt",
            _ = STOP_REQUEST.notified() => "service_stop",
        }
    }
}

/// Gives memory freed after a big burst back to the OS. glibc keeps freed
/// memory in its arenas (those of the threads that judged the files too), so
/// a daemon that once queued 100,000 files would keep that peak for good.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the OS; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Removes temporary files that crashed writers left in the shared folders.
/// Alone on the home, every one of them is garbage; with live peers, only
/// those older than any write takes (a peer may be writing one right now).
/// Task folders are swept when they are taken over ([`recovery`]).
fn sweep_stray_temps(home: &Home) {
    let alone = daemons::live(home).len() <= 1;
    let min_age = if alone {
        std::time::Duration::ZERO
    } else {
        std::time::Duration::from_secs(3600)
    };
    let removed: usize = [
        home.results(),
        home.summaries(),
        home.daemons(),
        home.rejected(),
        home.logs(),
    ]
    .iter()
    .map(|dir| crate::store::atomic::remove_stray_temps(dir, min_age))
    .sum();
    if removed > 0 {
        tracing::info!(removed, "removed temporary files left by a crash");
    }
}

/// Runs the daemon until a signal (or, with `once`, until the inbox is drained).
pub async fn run(home: Home, loaded: Loaded, opts: RunOptions) -> anyhow::Result<RunSummary> {
    home.ensure_layout()
        .with_context(|| format!("cannot create the folders of {}", home.root().display()))?;
    homecheck::check_at_start(&home)?;
    let config = Arc::new(loaded.config);
    // Secret values of the daemon's environment and of agents.<name>.env never reach events or summaries.
    let redactor = crate::redact::Redactor::new(config.agents.values().flat_map(|a| a.env.clone()));
    let events = Arc::new(EventLog::of_home(&home, &config.events).with_redactor(redactor.clone()));
    let worker = format!("{}:{}", hostname(), std::process::id());
    let mut registration = Registration::register(
        &home,
        DaemonState {
            pid: std::process::id(),
            worker: worker.clone(),
            started_at: crate::events::now_ts(),
            max_concurrent: config.max_concurrent,
            version: env!("CARGO_PKG_VERSION").to_string(),
            running: Vec::new(),
            paused: Default::default(),
            queued: Default::default(),
            updated_at: String::new(),
        },
        &hostname(),
    )
    .context("cannot register this daemon in run/")?;
    let shared = Arc::new(Shared {
        home: home.clone(),
        config: config.clone(),
        events: events.clone(),
        index: Arc::new(IndexWriter::new(home.clone())),
        pauses: Pauses::default(),
        slots: Arc::new(Semaphore::new(config.max_concurrent)),
        worker: worker.clone(),
        wake: Notify::new(),
        redactor,
        committer: crate::store::commit::Committer::start(Some(&home.results()))
            .context("could not start the result commit thread")?,
    });
    events.emit(
        "daemon_started",
        None,
        json!({"pid": std::process::id(), "worker": worker, "version": env!("CARGO_PKG_VERSION"), "max_concurrent": config.max_concurrent, "once": opts.once, "config_file": loaded.file}),
    );
    sweep_stray_temps(&home);
    recovery::replay_commit_logs(&home);
    match index::reconcile(&home) {
        Ok(added) if added.is_empty() => {}
        Ok(added) => {
            tracing::info!(
                added = added.len(),
                "results/index.json was behind the result files; rows added"
            );
            let late = recovery::announce_lost_finishes(&home, &events, &added);
            if late > 0 {
                tracing::info!(tasks = late, "final events lost in a crash were written late");
            }
        }
        Err(e) => tracing::error!(error = %e, "could not reconcile results/index.json"),
    }
    let flusher = tokio::spawn(shared.index.clone().run());

    let (hint_tx, mut hint_rx) = tokio::sync::mpsc::unbounded_channel();
    let watcher = watch::start(&home.inbox(), config.watch, config.rescan_interval.0, hint_tx)
        .with_context(|| format!("cannot watch {}", home.inbox().display()))?;
    tracing::info!(inbox = %home.inbox().display(), mode = ?watcher.mode, "watching");
    STARTED.store(true, std::sync::atomic::Ordering::Relaxed);

    let rules = Rules {
        limits: crate::task::parse::Limits::of(&config),
        home: home.root().to_path_buf(),
        default_workdir: config.default_workdir(home.root()),
        allowed_roots: config.allowed_roots(home.root()),
        owner_only: homecheck::owner_only(home.root()),
        writer_of: {
            let config = config.clone();
            intake::WriterOf(Arc::new(move |spec, workdir| writers::key(spec, workdir, &config)))
        },
    };
    let mut intake = Intake::new(
        home.inbox(),
        config.debounce(),
        watcher.mode == crate::config::WatchMode::Native,
    )
    .with_close_events(watcher.reports_close());
    let mut queue = Queue::default();
    let mut writers = writers::Writers::default();
    let writers_dir = home.daemons().join("writers");
    let mut tasks: JoinSet<(String, Status)> = JoinSet::new();
    let mut stops: HashMap<String, tokio_watch::Sender<Option<StopReason>>> = HashMap::new();
    let mut summary = RunSummary::default();

    let spawn = |tasks: &mut JoinSet<(String, Status)>, stops: &mut HashMap<String, _>, run: TaskRun, permit| {
        let (tx, rx) = tokio_watch::channel(None);
        stops.insert(run.claimed.id.clone(), tx);
        tasks.spawn(runner::run(shared.clone(), run, permit, rx));
    };
    let recover = |tasks: &mut JoinSet<(String, Status)>, stops: &mut HashMap<String, _>| {
        match recovery::take_over_orphans(&home) {
            Ok(orphans) => {
                for o in orphans {
                    let mut progress = o.progress.unwrap_or_default();
                    if let Some(attempt) = recovery::close_cut_short_run(&mut progress) {
                        events.emit(
                            "task_interrupted",
                            Some(&o.claimed.id),
                            json!({"reason": "daemon_died", "attempt": attempt, "killed_leftover": o.killed_leftover, "recovered_by": worker}),
                        );
                        // Kept at once: if this daemon dies too before its own run
                        // says anything, the next one must not tell this death again.
                        if let Err(e) = crate::store::atomic::write_json_atomic(&o.claimed.dir.progress(), &progress) {
                            tracing::warn!(task = %o.claimed.id, error = %e, "could not write progress.json");
                        }
                    }
                    spawn(
                        tasks,
                        stops,
                        TaskRun {
                            claimed: o.claimed,
                            recovered: Some(progress),
                            queued: None,
                        },
                        None,
                    );
                }
            }
            Err(e) => tracing::error!(error = %e, "could not scan results/ for interrupted tasks"),
        }
    };

    recover(&mut tasks, &mut stops);
    intake
        .rescan(std::time::Instant::now(), &mut queue)
        .context("cannot list the inbox")?;
    let mut rescan_at = Instant::now() + config.rescan_interval.0;
    let inbox_identity = homecheck::identity(&home.inbox());
    let mut recover_at = Instant::now() + config.recovery_interval.0;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut stopping: Option<&'static str> = None;
    // A runner of ours ended without finishing its task (panic, unwritable
    // result): scan for orphans at the next recovery tick.
    let mut own_orphans = false;
    let mut force_stop_at: Option<Instant> = None;
    // Inbox files that could not be rejected (inbox/rejected/ not writable): said once each.
    let mut stuck: std::collections::HashSet<std::path::PathBuf> = Default::default();
    // Inbox entries with names that are not Unicode, waiting for their writer to be done.
    let mut bad_names: Vec<std::path::PathBuf> = Vec::new();

    loop {
        // Names that are not valid Unicode cannot be tasks: rejected once their
        // writer has left them alone for a debounce.
        bad_names.extend(intake.take_bad_names());
        bad_names.sort();
        bad_names.dedup();
        for path in std::mem::take(&mut bad_names) {
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let quiet = meta
                .modified()
                .is_ok_and(|t| t.elapsed().unwrap_or_default() >= config.debounce());
            if stuck.contains(&path) {
                continue;
            }
            if !quiet {
                bad_names.push(path);
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
            match intake::reject_path(&home, &events, &path, &shown, &r) {
                Ok(moved) => summary.rejected += usize::from(moved),
                Err(why) => {
                    summary.unclaimed += 1;
                    report_stuck(&events, &mut stuck, path, &shown, &r, &why);
                }
            }
        }
        // Files that settled together are announced in one write (in order with
        // any rejection among them).
        let mut queued = crate::events::Batch::default();
        let mut accepted = 0;
        intake.settle_each(std::time::Instant::now(), &rules, |verdict| match verdict {
            Verdict::Accept(a) => {
                let intake::Accepted { queued: q, title } = *a;
                events.add(
                    &mut queued,
                    "task_queued",
                    None,
                    json!({"file": q.name, "title": title, "agent": q.agent, "priority": q.priority}),
                );
                queue.push(q);
                accepted += 1;
            }
            Verdict::Reject { name, rejection } => {
                events.write(std::mem::take(&mut queued));
                let path = home.inbox().join(&name);
                match intake::reject(&home, &events, &name, &rejection) {
                    Ok(moved) => {
                        summary.rejected += usize::from(moved);
                        stuck.remove(&path);
                    }
                    Err(why) => {
                        summary.unclaimed += 1;
                        report_stuck(&events, &mut stuck, path, &name, &rejection, &why);
                    }
                }
            }
            // Back to settling inside `settle_each`; never handed out.
            Verdict::Moved(_) => {}
        });
        events.write(queued);
        if accepted >= 1000 {
            release_freed_memory();
        }
        if stopping.is_none() {
            while let Ok(permit) = shared.slots.clone().try_acquire_owned() {
                let Some(q) = queue.pop_next(|c| {
                    !shared.pauses.is_paused(c.agent)
                        && c.writer.is_none_or(|repo| writers.try_take(&writers_dir, c.name, repo))
                }) else {
                    break;
                };
                let claim = crate::claim::claim(&home, &q.name);
                match &claim {
                    Ok(Some(claimed)) => writers.rename(&q.name, &claimed.id),
                    _ => writers.release(&q.name),
                }
                match claim {
                    Ok(Some(claimed)) => spawn(
                        &mut tasks,
                        &mut stops,
                        TaskRun {
                            claimed,
                            recovered: None,
                            queued: Some(q),
                        },
                        Some(permit),
                    ),
                    Ok(None) => tracing::debug!(file = %q.name, "another daemon claimed it first"),
                    Err(e) => {
                        // Nothing is lost: the file stays in the inbox and the next rescan queues it again.
                        tracing::error!(file = %q.name, error = %e, "could not claim; the file stays in the inbox");
                        let hint = if e.kind() == std::io::ErrorKind::CrossesDevices {
                            "inbox/ and results/ must be on the same filesystem (a claim is a rename); move or mount them together, and the file, still in the inbox, is tried again at the next rescan".to_string()
                        } else {
                            format!(
                                "the daemon cannot create task folders in {} (permissions, a read-only or full disk); fix that and the file, still in the inbox, is tried again at the next rescan",
                                home.results().display()
                            )
                        };
                        events.emit(
                            "claim_failed",
                            None,
                            json!({"file": q.name, "error": e.to_string(), "hint": hint}),
                        );
                        summary.unclaimed += 1;
                    }
                }
            }
        }
        let drained = queue.is_empty() && intake.settling() == 0 && tasks.is_empty() && bad_names.is_empty();
        if (opts.once && drained) || (stopping.is_some() && tasks.is_empty()) {
            break;
        }

        registration.update(stops.keys().cloned().collect(), shared.pauses.published());
        registration.update_queue(queue.len(), queue.ordered());
        let publish_at = registration
            .publish_due(std::time::Instant::now())
            .map(Instant::from_std);
        let pause_end = shared
            .pauses
            .next_expiry()
            .map(|t| Instant::now() + t.duration_since(SystemTime::now()).unwrap_or_default());
        // Cancel requests (`orchestrator cancel`) are files; look for them while tasks run.
        let cancel_check = (!stops.is_empty()).then(|| Instant::now() + CANCEL_POLL);
        let next = [
            intake.next_deadline().map(Instant::from_std),
            (!bad_names.is_empty()).then(|| Instant::now() + config.debounce()),
            Some(rescan_at),
            Some(recover_at),
            pause_end,
            publish_at,
            cancel_check,
        ]
        .into_iter()
        .flatten()
        .min()
        .expect("rescan_at is always set");
        tokio::select! {
            Some(hint) = hint_rx.recv() => {
                let now = std::time::Instant::now();
                let mut hints = vec![hint];
                while let Ok(h) = hint_rx.try_recv() {
                    hints.push(h);
                }
                for h in hints {
                    match h {
                        Hint::Changed(name) => intake.note(&name, now, &mut queue),
                        Hint::Written(name) => intake.note_written(&name, now, &mut queue),
                        Hint::Closed(name) => intake.note_closed(&name, now, &mut queue),
                        Hint::Rescan => {
                            let _ = intake.rescan(now, &mut queue);
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(next) => {
                let now = Instant::now();
                // While agents run, a watchdog that was killed is replaced at once.
                #[cfg(unix)]
                if !stops.is_empty() {
                    crate::agents::watchdog::check();
                }
                for (id, tx) in &stops {
                    if tx.borrow().is_none() && crate::store::TaskDir::new(home.task_dir(id)).cancel_request().exists() {
                        tracing::info!(task = %id, "cancel requested");
                        let _ = tx.send(Some(StopReason::Cancelled));
                    }
                }
                if now >= rescan_at {
                    // The inbox must still be the folder the daemon started on: one
                    // renamed away and replaced (by whoever could write above it) is
                    // someone else's, and nothing more is taken from it.
                    if stopping.is_none() && homecheck::identity(&home.inbox()) != inbox_identity {
                        events.emit(
                            "security_violation",
                            None,
                            json!({"reason": "inbox_replaced", "inbox": home.inbox(), "error": "the inbox is no longer the folder the daemon started on; the daemon stops taking tasks and shuts down", "hint": "check who replaced it (see `orchestrator doctor`), then start the daemon again"}),
                        );
                        tracing::error!(inbox = %home.inbox().display(), "the inbox was replaced while the daemon ran: shutting down");
                        stopping = Some("inbox_replaced");
                        force_stop_at = Some(Instant::now() + config.shutdown_grace.0);
                    }
                    if let Err(e) = intake.rescan(now.into_std(), &mut queue) {
                        tracing::error!(error = %e, "cannot list the inbox");
                    }
                    rescan_at = now + config.rescan_interval.0;
                }
                if now >= recover_at {
                    let dead = daemons::dead(&home, registration.lock_path());
                    if stopping.is_none() && (!dead.is_empty() || own_orphans) {
                        if !dead.is_empty() {
                            tracing::info!(peers = dead.len(), "a daemon sharing this home died; taking over its tasks");
                        }
                        own_orphans = false;
                        recover(&mut tasks, &mut stops);
                        if !dead.is_empty() {
                            // The dead daemon's last finishes: index rows and final events.
                            let _ = shared.index.flush();
                            if let Ok(added) = index::reconcile(&home) {
                                recovery::announce_lost_finishes(&home, &events, &added);
                            }
                        }
                        for d in dead {
                            daemons::remove_dead(&d);
                        }
                    }
                    recover_at = now + config.recovery_interval.0;
                }
            }
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                match joined {
                    Ok((id, status)) => {
                        stops.remove(&id);
                        writers.release(&id);
                        match status {
                            Status::Succeeded => summary.succeeded += 1,
                            Status::Failed => summary.failed += 1,
                            Status::Cancelled => summary.cancelled += 1,
                            _ => {
                                summary.interrupted += 1;
                                // Not stopping, yet unfinished: its result could not be
                                // written. Its folder is an orphan now; retry later.
                                own_orphans |= stopping.is_none();
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "a task runner panicked; its task will be recovered");
                        own_orphans = true;
                        // Its id is lost with it: keep only the locks of tasks still running.
                        writers.retain(|owner| stops.contains_key(owner));
                    }
                }
            }
            _ = shared.wake.notified() => {}
            reason = &mut shutdown, if stopping.is_none() => {
                tracing::info!(reason, running = tasks.len(), "shutting down: no new tasks; running agents get {}", config.shutdown_grace);
                stopping = Some(reason);
                force_stop_at = Some(Instant::now() + config.shutdown_grace.0);
            }
            _ = tokio::time::sleep_until(force_stop_at.unwrap_or_else(Instant::now)), if force_stop_at.is_some() => {
                force_stop_at = None;
                for tx in stops.values() {
                    let _ = tx.send(Some(StopReason::Shutdown));
                }
            }
        }
    }

    drop(watcher);
    flusher.abort();
    if let Err(e) = shared.index.flush() {
        tracing::error!(error = %e, "could not write results/index.json");
    }
    events.emit(
        "daemon_stopped",
        None,
        json!({"reason": stopping.unwrap_or("drained"), "succeeded": summary.succeeded, "failed": summary.failed, "cancelled": summary.cancelled, "rejected": summary.rejected, "interrupted": summary.interrupted, "unclaimed": summary.unclaimed}),
    );
    registration.remove();
    Ok(summary)
}
