//! Processes a task started outside its process group, found by the marks in
//! their environment.
//!
//! An agent leads its own process group, and stopping the group stops what
//! stays in it. Agents do not all stay: Claude Code starts every Bash command
//! in a new session (`setsid`), a tool may daemonize, and a `setsid sleep &`
//! in a command task leaves the group on purpose. Such a process still
//! inherits the environment the daemon gave the agent, which carries
//! [`TASK_VAR`], [`ATTEMPT_VAR`] and [`DAEMON_VAR`]. So whenever an attempt
//! ends (finished, cancelled, timed out, shut down), the daemon looks for
//! processes with that attempt's marks and stops them; the watchdog does the
//! same for everything of its daemon when the daemon dies, and a recovering
//! daemon for the task it takes over.
//!
//! Where it works: Linux, by reading `/proc/<pid>/environ` (a few hundred
//! microseconds for a machine's worth of processes). A process caught in the
//! instant its `exec` lays out the new program shows no environment yet;
//! after a look that killed something, [`kill`] looks again, a few times and
//! a little apart, until the looks find nothing new. A process that clears
//! its environment (`env -i`) drops the marks and is not found; a per-task
//! cgroup would hold it, and needs privileges this daemon does not assume.
//! Other Unix systems (macOS) get the process group only. Windows: the job
//! object holds every descendant, whatever session it moves to, and dies with
//! the daemon.

/// The task id, in every agent's environment.
pub const TASK_VAR: &str = "ORCHESTRATOR_TASK_ID";
/// The attempt number, in every agent's environment.
pub const ATTEMPT_VAR: &str = "ORCHESTRATOR_ATTEMPT";
/// The pid of the daemon that started the agent.
pub const DAEMON_VAR: &str = "ORCHESTRATOR_DAEMON_PID";

/// Which processes to look for. (Windows never looks: its job objects hold
/// every descendant.)
#[derive(Debug, Clone, Copy)]
#[cfg_attr(windows, allow(dead_code))]
pub enum Mark<'a> {
    /// One attempt of a task: what is left when that attempt ends.
    Attempt { task: &'a str, attempt: u32 },
    /// Every attempt of a task: a recovering daemon taking it over.
    Task(&'a str),
    /// Everything a daemon started: its watchdog, when it dies.
    Daemon(u32),
}

#[cfg_attr(windows, allow(dead_code))]
impl Mark<'_> {
    /// Does an environment (`KEY=VALUE` entries, NUL-separated) carry this mark?
    pub fn matches(&self, environ: &[u8]) -> bool {
        let has = |key: &str, value: &str| {
            environ.split(|b| *b == 0).any(|kv| {
                kv.len() == key.len() + 1 + value.len()
                    && kv.starts_with(key.as_bytes())
                    && kv[key.len()] == b'='
                    && kv.ends_with(value.as_bytes())
            })
        };
        match self {
            Mark::Attempt { task, attempt } => has(TASK_VAR, task) && has(ATTEMPT_VAR, &attempt.to_string()),
            Mark::Task(task) => has(TASK_VAR, task),
            Mark::Daemon(pid) => has(DAEMON_VAR, &pid.to_string()),
        }
    }
}

/// Stops what an attempt left outside its group, soon and off the task's
/// path: attempts that end close together (a burst of short tasks) share one
/// look through `/proc`, on a thread of its own, instead of one each (a look
/// costs a few hundred microseconds of CPU; a short task costs about a
/// millisecond in all). A daemon that exits before the look is made leaves the
/// processes to its watchdog, which stops everything with the daemon's mark.
#[cfg(target_os = "linux")]
pub fn sweep_soon(task: &str, attempt: u32) {
    use std::sync::mpsc::{Sender, channel};
    use std::sync::{Mutex, OnceLock};
    /// Where ended attempts (task id, attempt) are sent to the sweeper thread.
    type Queue = Mutex<Sender<(String, u32)>>;
    static SWEEPER: OnceLock<Option<Queue>> = OnceLock::new();
    let sender = SWEEPER.get_or_init(|| {
        let (tx, rx) = channel::<(String, u32)>();
        std::thread::Builder::new()
            .name("leftover-sweeper".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    // Let the attempts ending about now join this look.
                    std::thread::sleep(GATHER);
                    let mut ended: std::collections::HashSet<(String, u32)> = std::iter::once(first).collect();
                    ended.extend(rx.try_iter());
                    let n = kill_where(|env| {
                        let (task, attempt) = (value(env, TASK_VAR)?, value(env, ATTEMPT_VAR)?);
                        let attempt: u32 = std::str::from_utf8(attempt).ok()?.parse().ok()?;
                        let task = std::str::from_utf8(task).ok()?;
                        Some(ended.contains(&(task.to_string(), attempt)))
                    });
                    if n > 0 {
                        tracing::info!(
                            processes = n,
                            "stopped processes that ended attempts left outside their groups"
                        );
                    }
                }
            })
            .ok()
            .map(|_| Mutex::new(tx))
    });
    match sender {
        Some(tx) => {
            let _ = tx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .send((task.to_string(), attempt));
        }
        // No thread could be started: look now.
        None => {
            kill(Mark::Attempt { task, attempt });
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn sweep_soon(_task: &str, _attempt: u32) {}

/// How long the sweeper lets ending attempts gather before it looks.
#[cfg(target_os = "linux")]
const GATHER: std::time::Duration = std::time::Duration::from_millis(100);

/// The value of `key` in an environment block.
#[cfg(target_os = "linux")]
fn value<'a>(environ: &'a [u8], key: &str) -> Option<&'a [u8]> {
    environ.split(|b| *b == 0).find_map(|kv| {
        (kv.len() > key.len() && kv.starts_with(key.as_bytes()) && kv[key.len()] == b'=').then(|| &kv[key.len() + 1..])
    })
}

/// The live processes with `mark` (never this process).
#[cfg(target_os = "linux")]
pub fn find(mark: Mark) -> Vec<i32> {
    find_where(|env| Some(mark.matches(env)))
}

/// The live processes whose environment passes `wanted` (never this process).
#[cfg(target_os = "linux")]
fn find_where(wanted: impl Fn(&[u8]) -> Option<bool>) -> Vec<i32> {
    use std::io::Read;
    let me = std::process::id() as i32;
    let mut found = Vec::new();
    let mut buf = Vec::with_capacity(16 * 1024);
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        buf.clear();
        // Unreadable (another user's process, or gone): not ours.
        let Ok(mut f) = std::fs::File::open(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if f.read_to_end(&mut buf).is_ok() && wanted(&buf) == Some(true) {
            found.push(pid);
        }
    }
    found
}

#[cfg(not(target_os = "linux"))]
#[cfg_attr(windows, allow(dead_code))]
pub fn find(_mark: Mark) -> Vec<i32> {
    Vec::new()
}

#[cfg(all(unix, not(target_os = "linux")))]
fn find_where(_wanted: impl Fn(&[u8]) -> Option<bool>) -> Vec<i32> {
    Vec::new()
}

/// Sends `signal` to every process with `mark` that is not in process group
/// `skip_group` (the agent's own group, signalled as a group: a second
/// SIGTERM makes some CLIs quit at once instead of finishing cleanly); how
/// many there were.
#[cfg(unix)]
pub fn signal_outside(mark: Mark, skip_group: u32, signal: i32) -> usize {
    let pids: Vec<i32> = find(mark)
        .into_iter()
        // SAFETY: getpgid(2) of a pid; -1 for one that is gone.
        .filter(|pid| unsafe { libc::getpgid(*pid) } != skip_group as i32)
        .collect();
    for pid in &pids {
        // SAFETY: kill(2) with a pid read from /proc.
        unsafe {
            libc::kill(*pid, signal);
        }
    }
    pids.len()
}

/// Kills every process with `mark`, again until none is left (a process may
/// fork while the first round runs); how many were killed.
#[cfg(unix)]
pub fn kill(mark: Mark) -> usize {
    kill_where(|env| Some(mark.matches(env)))
}

/// Kills every process whose environment passes `wanted`, again until none is left.
///
/// A process in the middle of an `exec` shows an empty environment for that
/// instant (measured: nearly every `exec` of a `sh` can be caught so), and a
/// shim chain such as pyenv's `python3` is several `exec`s in a row. So a
/// look that killed something is followed by more looks, [`SETTLE`] apart,
/// until [`QUIET_LOOKS`] in a row find nothing new. A look that finds nothing
/// at all ends at once: the common case (an attempt that left nothing) costs
/// one look.
#[cfg(unix)]
fn kill_where(wanted: impl Fn(&[u8]) -> Option<bool>) -> usize {
    let mut killed = std::collections::HashSet::new();
    let mut quiet = 0;
    // Bounded: a mark that keeps producing processes is not chased for ever.
    for _ in 0..64 {
        // A process already signalled may not be gone yet: only new ones count.
        let new: Vec<i32> = find_where(&wanted)
            .into_iter()
            .filter(|p| !killed.contains(p))
            .collect();
        if new.is_empty() {
            if killed.is_empty() || quiet == QUIET_LOOKS {
                break;
            }
            quiet += 1;
            std::thread::sleep(SETTLE);
            continue;
        }
        quiet = 0;
        for pid in new {
            // SAFETY: kill(2) with a pid read from /proc.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            killed.insert(pid);
        }
    }
    killed.len()
}

/// The pause between two looks after a kill: longer than an `exec` takes to
/// lay out its program, even on a loaded machine.
#[cfg(unix)]
const SETTLE: std::time::Duration = std::time::Duration::from_millis(20);

/// How many looks in a row must find nothing new after a kill.
#[cfg(unix)]
const QUIET_LOOKS: u32 = 3;

#[cfg(not(unix))]
pub fn kill(_mark: Mark) -> usize {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_match_whole_entries_only() {
        let env = b"PATH=/bin\0ORCHESTRATOR_TASK_ID=01abc-x\0ORCHESTRATOR_ATTEMPT=2\0ORCHESTRATOR_DAEMON_PID=77\0";
        assert!(Mark::Task("01abc-x").matches(env));
        assert!(!Mark::Task("01abc").matches(env), "a prefix of the id is another task");
        assert!(
            Mark::Attempt {
                task: "01abc-x",
                attempt: 2
            }
            .matches(env)
        );
        assert!(
            !Mark::Attempt {
                task: "01abc-x",
                attempt: 1
            }
            .matches(env)
        );
        assert!(Mark::Daemon(77).matches(env));
        assert!(!Mark::Daemon(7).matches(env));
        assert!(!Mark::Task("01abc-x").matches(b"XORCHESTRATOR_TASK_ID=01abc-x\0"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_process_that_left_its_group_is_found_and_killed_by_its_mark() {
        use std::os::unix::process::CommandExt;
        let task = format!("leftover-test-{}", std::process::id());
        let mut child = std::process::Command::new("sleep")
            .arg("300")
            .env(TASK_VAR, &task)
            .env(ATTEMPT_VAR, "1")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // Right after the spawn returns, the kernel may not have laid out the new
        // program's environment yet (an empty /proc/<pid>/environ for a moment).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mine = Mark::Attempt {
            task: &task,
            attempt: 1,
        };
        while find(mine) != vec![pid] {
            assert!(std::time::Instant::now() < deadline, "never found by its mark");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(
            find(Mark::Attempt {
                task: &task,
                attempt: 2
            })
            .is_empty()
        );
        assert_eq!(kill(Mark::Task(&task)), 1);
        let status = child.wait().unwrap();
        assert!(!status.success());
        assert!(find(Mark::Task(&task)).is_empty());
    }

    /// Processes that exec again and again (as a shim chain does: pyenv's
    /// `python3` is three `exec`s of bash before Python runs): a look through
    /// `/proc` meets some in the instant their `exec` lays out the new
    /// program, with no environment to read. None may be left.
    #[cfg(target_os = "linux")]
    #[test]
    fn processes_caught_mid_exec_are_killed_too() {
        let task = format!("leftover-exec-{}", std::process::id());
        // Twenty processes, each execing itself (a fresh `sh`) for ever.
        let again = "exec sh -c \"$0\" \"$0\"";
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                &format!("for i in $(seq 20); do sh -c '{again}' '{again}' & done; wait"),
            ])
            .env(TASK_VAR, &task)
            .env(ATTEMPT_VAR, "1")
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while find(Mark::Task(&task)).len() < 15 {
            assert!(std::time::Instant::now() < deadline, "the storm never started");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let killed = kill(Mark::Task(&task));
        let _ = child.wait();
        // One that a look missed goes on execing: look for it a while (each
        // look may meet it mid-exec too).
        let mut left = Vec::new();
        let until = std::time::Instant::now() + std::time::Duration::from_millis(500);
        while left.is_empty() && std::time::Instant::now() < until {
            left = find(Mark::Task(&task));
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // Whatever the assertion says, leave nothing running.
        kill(Mark::Task(&task));
        assert!(left.is_empty(), "{} of {killed} left: {left:?}", left.len());
    }
}
