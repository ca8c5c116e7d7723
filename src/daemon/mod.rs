//! The daemon: wires watcher, intake, queue, claims and runners into one loop.
//!
//! The loop sleeps until something can change what it should do: a watcher
//! hint, a file's settle deadline, the periodic rescan, a task ending, an agent
//! pause ending, a cancel request (found by the lookout thread, which does the
//! looking), or a signal. It never polls on a short tick (pueue's 300 ms
//! scheduler tick caps it at a few tasks a second).

mod console;
mod dependencies;
mod handlers;
mod held;
pub mod homecheck;
pub(crate) mod judged;
mod lookout;
pub mod pauses;
mod periodic;
pub mod recovery;
mod reload;
pub mod runner;
mod schedules;
mod spend;
pub mod writers;

use crate::config::{Config, Loaded};
use crate::events::EventLog;
use crate::intake::{self, Intake, Rules};
use crate::queue::Queue;
use crate::store::Home;
use crate::store::daemons::{self, DaemonState, Registration};
use crate::store::index::{self, IndexWriter};
use crate::watch;
use anyhow::Context as _;
use handlers::Daemon;
use pauses::Pauses;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::RwLock;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// State every runner shares with the loop.
pub struct Shared {
    pub home: Home,
    /// The config in force: replaced whole when `orchestrator.yaml` is
    /// reloaded. A runner takes its own copy when it starts ([`Self::config`]).
    pub config: RwLock<Arc<Config>>,
    pub events: Arc<EventLog>,
    pub index: Arc<IndexWriter>,
    pub pauses: Pauses,
    pub slots: Arc<Semaphore>,
    /// `host:pid`, written into results.
    pub worker: String,
    /// Runners poke the loop when they change what it may claim.
    pub wake: Notify,
    /// Secrets to keep out of records: replaced on a reload by one that knows
    /// the old secrets and the new.
    pub redactor: RwLock<Arc<crate::redact::Redactor>>,
    /// Flushes result files in batches ([`crate::store::commit`]).
    pub committer: crate::store::commit::Committer,
    /// Running as root: only files of this user (the home's owner) or root are tasks.
    pub owner_only: Option<u32>,
    /// What runs the agents: real processes ([`crate::agents::supervise::Processes`]).
    pub supervisor: Arc<dyn crate::agents::supervise::Supervisor>,
    /// When this daemon started (a suspected poison pill waits for an uptime).
    pub started: Instant,
    /// What a run may still spend under the `budget:` caps (USD, tokens), and
    /// when the cap reached, if one is, lifts: kept by the loop.
    pub spend_left: std::sync::Mutex<SpendLeft>,
    /// The running tasks that queued files wait for (`after:`), kept by the
    /// loop's [`dependencies::Dependencies`]: their results are committed at once.
    pub awaited: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// Tasks queued or running, as the loop last counted them: a result
    /// with nothing else in flight to gather with is committed at once.
    pub in_flight: std::sync::atomic::AtomicUsize,
}

/// See [`Shared::spend_left`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SpendLeft {
    pub usd: Option<f64>,
    pub tokens: Option<u64>,
    /// A cap is reached: until then nothing new runs.
    pub blocked_until: Option<std::time::SystemTime>,
}

impl Shared {
    /// The config in force now.
    pub fn config(&self) -> Arc<Config> {
        self.config.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What a run may spend under the caps now.
    pub fn spend_left(&self) -> SpendLeft {
        *self.spend_left.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether queued files wait for task `id`.
    pub fn is_awaited(&self, id: &str) -> bool {
        self.awaited.lock().unwrap_or_else(|e| e.into_inner()).contains(id)
    }

    /// Whether task `id`'s result is committed without waiting for others to
    /// gather: someone waits for it, or it is the only task queued or running
    /// (the last of a burst, a lone task), so none would come.
    pub fn commit_at_once(&self, id: &str) -> bool {
        self.in_flight.load(std::sync::atomic::Ordering::Relaxed) <= 1 || self.is_awaited(id)
    }

    /// The redactor in force now.
    pub fn redactor(&self) -> Arc<crate::redact::Redactor> {
        self.redactor.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Drain the inbox, wait for the tasks, and exit.
    pub once: bool,
    /// `--config FILE`, read again on a reload.
    pub config_file: Option<std::path::PathBuf>,
    /// `--set` pairs and the verb's own flags, applied again on a reload.
    pub flags: Vec<(String, String)>,
    /// A person watches stderr: a line for each task's start and end ([`console`]).
    pub console: bool,
}

/// The intake's rules under `config`.
fn rules(config: &Arc<Config>, home: &Home, owner_only: Option<u32>) -> Rules {
    Rules {
        limits: crate::task::parse::Limits::of(config),
        home: home.root().to_path_buf(),
        default_workdir: config.default_workdir(home.root()),
        allowed_roots: config.allowed_roots(home.root()),
        owner_only,
        writer_of: {
            let config = config.clone();
            intake::WriterOf(Arc::new(move |spec, workdir| writers::key(spec, workdir, &config)))
        },
        fallbacks_of: {
            let config = config.clone();
            intake::FallbacksOf(Arc::new(move |spec, workdir| {
                let cx = crate::plan::Context {
                    id: "",
                    source_file: "",
                    workdir: workdir.to_path_buf(),
                    queued_at: None,
                };
                crate::plan::build(spec, &config, cx).reachable_fallbacks(&config)
            }))
        },
    }
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
            None,
            crate::events::Event::ClaimFailed {
                file: name.to_string(),
                reason: Some(r.reason.to_string()),
                error: format!("rejected ({}), but {why}", r.error),
                hint: "make inbox/rejected/ writable for the daemon (or remove the file by hand); it stays in the inbox until then".into(),
            },
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

/// Asks a running daemon in this process to shut down gracefully, as SIGTERM
/// does (the Windows service's stop).
#[cfg(windows)]
pub fn request_shutdown() {
    STOP_REQUEST.notify_one();
}

/// Set once a daemon in this process is up (registered, watching its inbox):
/// the Windows service reports Running then, not before.
static STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether a daemon in this process has got as far as watching its inbox.
#[cfg(windows)]
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

/// SIGHUP, which asks for the config to be read again (and never stops the
/// daemon). Windows has none: there the file is watched.
struct ReloadSignal {
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
}

impl ReloadSignal {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let hup = signal(SignalKind::hangup())
                .map_err(|e| tracing::warn!(error = %e, "no SIGHUP handler; config reloads follow the file only"))
                .ok();
            Self { hup }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Waits for the next SIGHUP (forever where there is none).
    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(h) = &mut self.hup {
            h.recv().await;
            return;
        }
        std::future::pending::<()>().await
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

/// Says at start when the default agent's CLI is not to be found: every task
/// that does not name an agent would fail with `cli_missing`.
fn warn_if_default_agent_missing(config: &Config) {
    let kind = config.default_agent;
    let program = config
        .agent(kind)
        .command
        .unwrap_or_else(|| crate::agents::of(kind).default_program().to_string());
    if which::which(&program).is_err() {
        tracing::warn!(
            "the default agent's CLI `{program}` is not on PATH: tasks without `agent:` will fail until it is installed (`orchestrator doctor` says how), or set default_agent (e.g. `default_agent: command`)"
        );
    }
}

/// Runs the daemon until a signal (or, with `once`, until the inbox is drained).
pub async fn run(home: Home, loaded: Loaded, opts: RunOptions) -> anyhow::Result<RunSummary> {
    home.ensure_layout()
        .with_context(|| format!("cannot create the folders of {}", home.root().display()))?;
    homecheck::check_at_start(&home)?;
    let config = Arc::new(loaded.config);
    // Secrets (see Config::redactor) never reach events, records or summaries.
    let redactor = config.redactor();
    let events = Arc::new(EventLog::of_home(&home, &config.events).with_redactor(redactor.clone()));
    // Chosen events go to the notification outbox as they are written.
    let notifier = crate::notify::Notifier::new(&home, config.clone());
    if opts.console {
        let hook = notifier.hook();
        events.set_subscriber(Arc::new(move |name: &str, line: &[u8]| {
            hook(name, line);
            console::tell(name, line);
        }));
    } else {
        events.set_subscriber(notifier.hook());
    }
    warn_if_default_agent_missing(&config);
    let worker = format!("{}:{}", hostname(), std::process::id());
    let registration = Registration::register(
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
            spend_cap: None,
            updated_at: String::new(),
        },
        &hostname(),
    )
    .context("cannot register this daemon in run/")?;
    let shared = Arc::new(Shared {
        home: home.clone(),
        config: RwLock::new(config.clone()),
        events: events.clone(),
        index: Arc::new(IndexWriter::new(home.clone())),
        pauses: Pauses::default(),
        slots: Arc::new(Semaphore::new(config.max_concurrent)),
        worker: worker.clone(),
        wake: Notify::new(),
        redactor: RwLock::new(Arc::new(redactor)),
        committer: crate::store::commit::Committer::start(Some(&home.results()))
            .context("could not start the result commit thread")?,
        owner_only: homecheck::owner_only(home.root()),
        supervisor: Arc::new(crate::agents::supervise::Processes),
        awaited: Default::default(),
        in_flight: Default::default(),
        spend_left: Default::default(),
        started: Instant::now(),
    });
    events.emit(
        None,
        crate::events::Event::DaemonStarted {
            pid: std::process::id(),
            worker: worker.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            max_concurrent: config.max_concurrent,
            once: opts.once,
            config_file: loaded.file.clone(),
        },
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
    let watcher = watch::start(&home.inbox(), config.watch, config.rescan_interval.0, hint_tx.clone())
        .with_context(|| format!("cannot watch {}", home.inbox().display()))?;
    tracing::info!(inbox = %home.inbox().display(), mode = ?watcher.mode, "watching");
    STARTED.store(true, std::sync::atomic::Ordering::Relaxed);

    let rules = rules(&config, &home, shared.owner_only);
    let config_source = reload::ConfigSource::new(home.config_file(), opts.config_file.clone(), opts.flags.clone());
    let _config_watcher = watch::watch_config(&config_source.path(), hint_tx.clone());
    let intake = Intake::new(
        home.inbox(),
        config.debounce(),
        watcher.mode == crate::config::WatchMode::Native,
    )
    .with_close_events(watcher.reports_close());
    let (cancel_tx, mut cancel_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut d = Daemon {
        shared: shared.clone(),
        rules,
        intake,
        queue: Queue::default(),
        writers: writers::Writers::default(),
        writers_dir: home.daemons().join("writers"),
        tasks: JoinSet::new(),
        stops: HashMap::new(),
        lookout: lookout::Lookout::new(home.clone(), cancel_tx),
        config_source,
        config_check_at: None,
        slot_debt: reload::SlotDebt::default(),
        // Once soon after the start (recovery first), then every `retention.every`.
        retention_at: Instant::now() + std::time::Duration::from_secs(1),
        retention_pass: None,
        notifier,
        summary: RunSummary::default(),
        registration,
        left_unfinished: Vec::new(),
        judged: Default::default(),
        deps: dependencies::Dependencies::new(shared.awaited.clone()),
        scheduler: schedules::Scheduler::default(),
        spend: Default::default(),
        deps_look_at: Instant::now(),
        doomed: Vec::new(),
        stuck: Default::default(),
        bad_names: Vec::new(),
        rescan_at: Instant::now() + config.rescan_interval.0,
        recover_at: Instant::now() + config.recovery_interval.0,
        inbox_identity: homecheck::identity(&home.inbox()),
        stopping: None,
        own_orphans: false,
        force_stop_at: None,
    };
    d.recover();
    d.scheduler = schedules::Scheduler::start(&config, &home, &events);
    d.intake
        .rescan(std::time::Instant::now(), &mut d.queue)
        .context("cannot list the inbox")?;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut reload_signal = ReloadSignal::new();

    loop {
        d.reject_bad_names();
        d.settle();
        d.end_doomed();
        d.start_queued();
        if (opts.once && d.drained()) || (d.stopping.is_some() && d.tasks.is_empty()) {
            break;
        }
        let next = d.next_wake();
        tokio::select! {
            Some(hint) = hint_rx.recv() => {
                let mut hints = vec![hint];
                while let Ok(h) = hint_rx.try_recv() {
                    hints.push(h);
                }
                d.on_hints(hints);
            }
            _ = tokio::time::sleep_until(next) => d.on_deadline(),
            Some(joined) = d.tasks.join_next(), if !d.tasks.is_empty() => d.on_task_end(joined),
            Some(id) = cancel_rx.recv() => d.on_cancel_requested(&id),
            _ = reload_signal.recv() => d.reload("sighup"),
            _ = shared.wake.notified() => {}
            reason = &mut shutdown, if d.stopping.is_none() => d.on_stop_signal(reason),
            _ = tokio::time::sleep_until(d.force_stop_at.unwrap_or_else(Instant::now)), if d.force_stop_at.is_some() => d.on_grace_over(),
        }
    }

    drop(watcher);
    flusher.abort();
    if let Err(e) = shared.index.flush() {
        tracing::error!(error = %e, "could not write results/index.json");
    }
    let summary = d.summary;
    events.emit(
        None,
        crate::events::Event::DaemonStopped {
            reason: d.stopping.unwrap_or("drained").into(),
            succeeded: summary.succeeded,
            failed: summary.failed,
            cancelled: summary.cancelled,
            rejected: summary.rejected,
            interrupted: summary.interrupted,
            unclaimed: summary.unclaimed,
        },
    );
    d.registration.remove(&d.left_unfinished);
    Ok(summary)
}
