//! Running one agent process: its whole tree, its limits, its output.
//!
//! - The agent leads its own process group (Unix) or job object (Windows), so
//!   a timeout or a cancel stops the whole tree, grandchildren included.
//! - It never outlives the daemon: on Unix the daemon's watchdog kills its
//!   group when the daemon dies ([`super::watchdog`]), on Windows the job object
//!   dies with the daemon's handle. As a second line, the pid, group and start
//!   time are handed to the
//!   caller as soon as the agent starts (it records them in `owner.lock`), so
//!   a recovering daemon can kill what is left
//!   ([`super::identity::kill_leftover`]) before running the task again.
//! - What left the group (a new session, a daemonized tool) is found by the
//!   marks in its environment and stopped with the group
//!   ([`super::leftovers`]): nothing an attempt started outlives it.
//! - A stop is graceful: the agent's stop signal (SIGTERM, or SIGINT for a CLI
//!   that ends only on that) to the group and to what left it, then
//!   `kill_grace` for all of them to end, even after the leader is gone (a
//!   wrapper such as npm's `cline` script dies at once and leaves the real CLI
//!   to finish), then SIGKILL.
//! - stdin carries the prompt and is then closed, so the agent can never wait
//!   on an answer.
//! - stdout and stderr are copied to capped files; past the cap they are still
//!   read (and dropped), so a chatty agent never stalls on a full pipe. Lines are
//!   split with a bounded buffer: an endless line costs at most `MAX_LINE` bytes.

mod output;

pub use output::{LineSplitter, MAX_LINE, Piece};
use output::{read_stderr, read_stdout};

use super::{AgentReport, OutputReader};
use crate::store::record::AgentProcess;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};

/// When the stop signal is sent a second time, if the tree still lives.
const STOP_AGAIN_AFTER: Duration = Duration::from_secs(1);
/// How long the pipes may stay open after the agent's group is gone.
const OUTPUT_GRACE: Duration = Duration::from_secs(5);

/// What to run and where its output goes.
#[derive(Debug, Clone)]
pub struct Spawn {
    pub program: String,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    /// Shared, not copied: the prompt may be long, and the runner keeps it
    /// for [`super::Agent::find_session`].
    pub stdin: Arc<[u8]>,
    pub out_path: PathBuf,
    pub err_path: PathBuf,
    pub max_output_bytes: u64,
    pub kill_grace: Duration,
    /// The signal that asks the tree to stop (the agent's own: [`super::Agent::stop_signal`]).
    pub stop_signal: super::StopSignal,
    pub deadline: tokio::time::Instant,
    /// Stop the agent when it has written nothing (stdout or stderr) for this long.
    pub stall_timeout: Option<Duration>,
    /// The task id and attempt in the agent's environment, to find what left
    /// its group ([`super::leftovers::Mark::Attempt`]).
    pub mark: Option<(String, u32)>,
}

/// Why the supervisor stopped an agent before it finished by itself.
#[derive(Debug, Clone, PartialEq)]
pub enum StopReason {
    /// `orchestrator cancel`.
    Cancelled,
    /// The daemon is shutting down.
    Shutdown,
    /// The agent asked an interactive question, or passed a limit.
    Agent(String),
    Timeout,
    /// It wrote nothing for `stall_timeout`.
    Stalled(Duration),
}

/// How the process ended.
#[derive(Debug, Default)]
pub struct Exit {
    pub code: Option<i32>,
    /// The signal that killed it (Unix).
    pub signal: Option<i32>,
    pub spawn_error: Option<std::io::Error>,
    pub stopped: Option<StopReason>,
    pub stderr_tail: String,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    /// A process the agent started outside its group (a daemon it forked into
    /// its own session) still held stdout or stderr open when the agent ended;
    /// reading stopped after a grace period, with everything read so far kept.
    pub output_left_open: bool,
}

/// Called with the report whenever it changed; the caller throttles.
pub type ProgressFn = Arc<dyn Fn(&AgentReport) + Send + Sync>;
/// Called once, right after the agent started.
pub type SpawnedFn = Box<dyn FnOnce(AgentProcess) + Send>;

/// Runs one agent to its end and says how it ended and what it said. The
/// daemon's is [`Processes`], real process trees; the runner's unit tests
/// inject a scripted one, so that its retries, pauses, budgets and stops are
/// decided on tokio's paused clock, without a process or the wall clock.
pub trait Supervisor: Send + Sync {
    fn run(
        &self,
        spec: Spawn,
        reader: Box<dyn OutputReader>,
        on_spawned: SpawnedFn,
        on_progress: ProgressFn,
        stop: watch::Receiver<Option<StopReason>>,
    ) -> Pin<Box<dyn Future<Output = (Exit, AgentReport)> + Send>>;
}

/// Agents as real child processes: [`run`].
pub struct Processes;

impl Supervisor for Processes {
    fn run(
        &self,
        spec: Spawn,
        reader: Box<dyn OutputReader>,
        on_spawned: SpawnedFn,
        on_progress: ProgressFn,
        stop: watch::Receiver<Option<StopReason>>,
    ) -> Pin<Box<dyn Future<Output = (Exit, AgentReport)> + Send>> {
        Box::pin(run(spec, reader, on_spawned, on_progress, stop))
    }
}

/// Runs the agent to the end (or until stopped) and returns how it ended and what it said.
pub async fn run(
    spec: Spawn,
    reader: Box<dyn OutputReader>,
    on_spawned: SpawnedFn,
    on_progress: ProgressFn,
    mut stop: watch::Receiver<Option<StopReason>>,
) -> (Exit, AgentReport) {
    let mut exit = Exit::default();
    let before = super::identity::boot_ticks();
    let mut child = match spawn(&spec) {
        Ok(c) => c,
        Err(e) => {
            exit.spawn_error = Some(e);
            return (exit, reader.into_report());
        }
    };
    let pid = child.id().unwrap_or(0);
    #[cfg(unix)]
    super::watchdog::watch(pid);
    on_spawned(super::identity::record(pid, before, super::identity::boot_ticks()));

    // The prompt writer and the two output readers are polled by this task, not
    // spawned: three fewer tasks to schedule (and wake across threads) per agent.
    let stdin_bytes = Arc::clone(&spec.stdin);
    let stdin = child.stdin().take();
    let feed = async move {
        if let Some(mut stdin) = stdin {
            // A broken pipe means the agent exited without reading: its exit says why.
            let _ = stdin.write_all(&stdin_bytes).await;
            let _ = stdin.shutdown().await;
        }
    };
    tokio::pin!(feed);
    let mut fed = false;

    let (stop_tx, mut agent_stop) = mpsc::channel::<String>(1);
    let (give_up_tx, give_up) = watch::channel(false);
    let stdout = child.stdout().take();
    let stderr = child.stderr().take();
    let alive = output::Alive::new();
    let out_task = read_stdout(
        stdout,
        (spec.out_path.clone(), spec.max_output_bytes),
        reader,
        on_progress,
        stop_tx,
        give_up.clone(),
        &alive,
    );
    let err_task = read_stderr(stderr, spec.err_path.clone(), spec.max_output_bytes, give_up, &alive);
    tokio::pin!(out_task, err_task);
    let mut finished = (None, None);

    let mut kill_at: Option<tokio::time::Instant> = None;
    // The stop signal is sent once more a second later, while the tree lives:
    // a CLI can miss one while it starts up (Cline swallows a SIGINT that
    // comes before its run has begun), and a second one ends it at once.
    let mut again_at: Option<tokio::time::Instant> = None;
    let again = |kill: tokio::time::Instant| Some(tokio::time::Instant::now() + STOP_AGAIN_AFTER).filter(|a| *a < kill);
    // The grace ran out and the tree was killed: nothing left to wait for.
    let mut forced = false;
    let status = loop {
        let terminating = kill_at.is_some();
        tokio::select! {
            r = child.wait() => break r,
            () = &mut feed, if !fed => fed = true,
            r = &mut out_task, if finished.0.is_none() => finished.0 = Some(r),
            r = &mut err_task, if finished.1.is_none() => finished.1 = Some(r),
            _ = tokio::time::sleep_until(spec.deadline), if !terminating => {
                exit.stopped = Some(StopReason::Timeout);
            }
            // Woken when the silence would have lasted long enough; output
            // since then moves the time on, and the next turn waits again.
            _ = tokio::time::sleep_until(spec.stall_timeout.map_or(spec.deadline, |s| alive.last() + s)), if spec.stall_timeout.is_some() && !terminating => {
                if let Some(s) = spec.stall_timeout.filter(|s| alive.last() + *s <= tokio::time::Instant::now()) {
                    exit.stopped = Some(StopReason::Stalled(s));
                }
            }
            Some(reason) = agent_stop.recv(), if !terminating => {
                exit.stopped = Some(StopReason::Agent(reason));
            }
            Ok(()) = stop.changed(), if !terminating => {
                exit.stopped = stop.borrow_and_update().clone();
            }
            _ = tokio::time::sleep_until(again_at.unwrap_or_else(tokio::time::Instant::now)), if again_at.is_some() => {
                signal_group(pid, &spec);
                again_at = None;
            }
            _ = tokio::time::sleep_until(kill_at.unwrap_or_else(tokio::time::Instant::now)), if terminating => {
                let _ = child.start_kill();
                kill_at = Some(tokio::time::Instant::now() + Duration::from_secs(3600));
                again_at = None;
                forced = true;
            }
        }
        // A reason to stop came in this turn: ask the tree, once.
        if kill_at.is_none() && exit.stopped.is_some() {
            let at = terminate(&mut *child, &spec);
            kill_at = Some(at);
            again_at = again(at);
        }
    };
    // A stop gives the whole tree its grace, not only the leader: the rest of
    // the group may still be finishing what it was asked (and the leader may
    // be a wrapper that died at once while the rest missed the first signal).
    if let Some(at) = kill_at.filter(|_| !forced) {
        #[cfg(unix)]
        while tokio::time::Instant::now() < at && group_alive(pid) {
            if again_at.is_some_and(|a| tokio::time::Instant::now() >= a) {
                signal_group(pid, &spec);
                again_at = None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        #[cfg(not(unix))]
        let _ = (at, again_at);
    }
    // The leader is gone; whatever it left in its group goes too, so the pipes
    // close, and whatever left the group is found by its marks: nothing
    // outlives the attempt.
    kill_tree(&mut *child);
    if let Some((task, attempt)) = &spec.mark {
        super::leftovers::sweep_soon(task, *attempt);
    }
    #[cfg(unix)]
    super::watchdog::unwatch(pid);
    match status {
        Ok(s) => {
            exit.code = s.code();
            #[cfg(unix)]
            {
                use std::os::unix::process::ExitStatusExt;
                exit.signal = s.signal();
            }
        }
        Err(e) => tracing::warn!(error = %e, "waiting for the agent failed"),
    }

    // A process that escaped the group (setsid) may hold the pipes open: after a
    // grace period the readers stop and hand over what they read.
    let grace = tokio::time::sleep(OUTPUT_GRACE);
    tokio::pin!(grace);
    while finished.0.is_none() || finished.1.is_none() {
        tokio::select! {
            r = &mut out_task, if finished.0.is_none() => finished.0 = Some(r),
            r = &mut err_task, if finished.1.is_none() => finished.1 = Some(r),
            _ = &mut grace, if !exit.output_left_open => {
                exit.output_left_open = true;
                let _ = give_up_tx.send(true);
            }
        }
    }
    // A limit the reader found on a line the agent printed just before it
    // exited (a CLI that reports its tokens only in its last event) is a
    // stop all the same: the reader has read every line by now, and whether
    // the exit or the reader's word came first must not decide the outcome.
    if exit.stopped.is_none()
        && let Ok(reason) = agent_stop.try_recv()
    {
        exit.stopped = Some(StopReason::Agent(reason));
    }
    let report = match finished.0 {
        Some((bytes, report)) => {
            exit.stdout_bytes = bytes;
            report
        }
        None => AgentReport::default(),
    };
    if let Some((bytes, tail)) = finished.1 {
        exit.stderr_bytes = bytes;
        exit.stderr_tail = tail;
    }
    (exit, report)
}

type Child = Box<dyn process_wrap::tokio::ChildWrapper>;

fn spawn(spec: &Spawn) -> std::io::Result<Child> {
    use process_wrap::tokio::{CommandWrap, KillOnDrop};
    let program = resolve_program(&spec.program);
    let mut cmd = CommandWrap::with_new(&program, |c| {
        c.args(&spec.args)
            .current_dir(&spec.cwd)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            // With the folder, what names it: the daemon's own PWD would name
            // another, and a CLI that asks PWD (opencode) takes it for its project.
            .env("PWD", &spec.cwd)
            // Nothing to say: the agent reads the end of its input at once,
            // and the daemon has no pipe to make, watch and close.
            .stdin(if spec.stdin.is_empty() {
                std::process::Stdio::null()
            } else {
                std::process::Stdio::piped()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
    });
    #[cfg(unix)]
    cmd.wrap(process_wrap::tokio::ProcessGroup::leader());
    #[cfg(windows)]
    cmd.wrap(process_wrap::tokio::JobObject);
    cmd.wrap(KillOnDrop);
    cmd.spawn()
}

/// Finds `program` on PATH (with PATHEXT on Windows, where `claude` is a
/// `claude.cmd` shim that CreateProcess would not find by itself). Lookups are
/// remembered per program and PATH: a burst of tasks would otherwise walk PATH
/// for every spawn.
fn resolve_program(program: &str) -> PathBuf {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Key = (String, Option<std::ffi::OsString>);
    static CACHE: OnceLock<Mutex<HashMap<Key, PathBuf>>> = OnceLock::new();
    let key = (program.to_string(), std::env::var_os("PATH"));
    let cache = CACHE.get_or_init(Default::default);
    if let Some(p) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return p.clone();
    }
    match which::which(program) {
        Ok(p) => {
            cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key, p.clone());
            p
        }
        // Not cached: the CLI may be installed while the daemon runs.
        Err(_) => PathBuf::from(program),
    }
}

/// The agent's stop signal to its group `pgid` again (Unix; Windows stops a
/// job at once).
fn signal_group(pgid: u32, spec: &Spawn) {
    #[cfg(unix)]
    if pgid > 1 {
        // SAFETY: killpg has no memory effects; a group that is gone is an error we ignore.
        unsafe { libc::killpg(pgid as libc::pid_t, spec.stop_signal.number()) };
    }
    #[cfg(not(unix))]
    let _ = (pgid, spec);
}

/// Asks the tree to stop (the agent's stop signal on Unix, to the group and
/// to what left it); returns when to force it.
fn terminate(child: &mut dyn process_wrap::tokio::ChildWrapper, spec: &Spawn) -> tokio::time::Instant {
    #[cfg(unix)]
    {
        let signal = spec.stop_signal.number();
        if child.signal(signal).is_err() {
            let _ = child.start_kill();
        }
        if let (Some((task, attempt)), Some(pgid)) = (&spec.mark, child.id()) {
            super::leftovers::signal_outside(
                super::leftovers::Mark::Attempt {
                    task,
                    attempt: *attempt,
                },
                pgid,
                signal,
            );
        }
        tokio::time::Instant::now() + spec.kill_grace
    }
    #[cfg(not(unix))]
    {
        let _ = child.start_kill();
        let _ = spec;
        tokio::time::Instant::now()
    }
}

/// Is any process of the group `pgid` still there?
#[cfg(unix)]
fn group_alive(pgid: u32) -> bool {
    // SAFETY: signal 0 only checks that the group exists.
    pgid > 1 && unsafe { libc::kill(-(pgid as i32), 0) } == 0
}

/// Kills whatever is left of the tree after its leader exited.
fn kill_tree(child: &mut dyn process_wrap::tokio::ChildWrapper) {
    #[cfg(unix)]
    {
        let _ = child.signal(libc::SIGKILL);
    }
    #[cfg(windows)]
    {
        let _ = child.start_kill();
    }
}
