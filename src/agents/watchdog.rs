//! The watchdog: agents never outlive their daemon, whatever kills it.
//!
//! Each daemon starts one small helper (this binary, `orchestrator __watchdog`,
//! in a process group of its own, so a SIGKILL of the daemon's group spares
//! it) whose stdin is a pipe only the daemon can write to. The daemon registers
//! every agent's process group (`+PGID`) when it starts and unregisters it
//! (`-PGID`) once the group is gone. When the daemon dies, even by SIGKILL, the
//! OS closes the pipe; the watchdog reads end-of-file, kills every group still
//! registered (grandchildren included) and every process that carries its
//! daemon's mark but left its group ([`super::leftovers`]), and exits.
//!
//! Why not a parent-death signal (PR_SET_PDEATHSIG): setting it needs code in
//! the child between fork and exec, which forces a full `fork` of the daemon for
//! every agent instead of `posix_spawn`; measured, that cost 0.65 ms per task.
//! It also reaches only the direct child, and exists only on Linux. The
//! watchdog covers every Unix and the whole group. (Windows: the job object is
//! killed when the daemon's handle closes.) Groups are unregistered when they
//! end, so a recycled process-group id is never signalled.

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// The argument that turns this binary into a watchdog.
pub const ARG: &str = "__watchdog";

struct Handle {
    child: Child,
    stdin: ChildStdin,
}

/// The watchdog, and the groups registered with it (to hand to a new one).
#[derive(Default)]
struct State {
    handle: Option<Handle>,
    live: std::collections::BTreeSet<u32>,
}

static WATCHDOG: OnceLock<Mutex<State>> = OnceLock::new();

fn state() -> std::sync::MutexGuard<'static, State> {
    WATCHDOG
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn start() -> std::io::Result<Handle> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    // A group of its own: a supervisor that SIGKILLs the daemon's whole
    // process group must not take the watchdog with it.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .arg(ARG)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdin = child.stdin.take().expect("piped");
    Ok(Handle { child, stdin })
}

/// Starts a watchdog (when there is none) and registers every live group
/// with it, in one write.
fn ensure_started(st: &mut State) -> bool {
    if st.handle.is_some() {
        return true;
    }
    match start() {
        Ok(mut h) => {
            let lines: String = st.live.iter().map(|g| format!("+{g}\n")).collect();
            if !lines.is_empty() && h.stdin.write_all(lines.as_bytes()).is_err() {
                return false;
            }
            st.handle = Some(h);
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot start the agent watchdog: agents may outlive a crashed daemon until recovery");
            false
        }
    }
}

/// Sends one line (`+PGID` or `-PGID`) in a single write (the watchdog reads
/// them in batches, see [`BATCH_PAUSE`]). A watchdog that died is noticed by
/// the broken pipe, reaped, and replaced; the new one gets every live group.
fn send(st: &mut State, line: &str) {
    let msg = format!("{line}\n");
    for _ in 0..2 {
        if !ensure_started(st) {
            return;
        }
        let h = st.handle.as_mut().expect("started above");
        if h.stdin.write_all(msg.as_bytes()).is_ok() {
            return;
        }
        tracing::warn!("the agent watchdog is gone; starting another");
        if let Some(mut dead) = st.handle.take() {
            let _ = dead.child.try_wait();
        }
    }
}

/// A watchdog that died (an agent can kill it: it runs as the same user) is
/// replaced at once, with every running agent's group, rather than at the next
/// agent's start. The daemon calls this a few times a second.
pub fn check() {
    let mut st = state();
    let dead = st
        .handle
        .as_mut()
        .is_some_and(|h| !matches!(h.child.try_wait(), Ok(None)));
    if dead {
        tracing::warn!("the agent watchdog died; starting another with the running agents");
        st.handle = None;
        ensure_started(&mut st);
    }
}

/// Registers an agent's process group.
pub fn watch(pgid: u32) {
    let mut st = state();
    st.live.insert(pgid);
    send(&mut st, &format!("+{pgid}"));
}

/// The group is gone: forget it (its id may be reused).
pub fn unwatch(pgid: u32) {
    let mut st = state();
    st.live.remove(&pgid);
    send(&mut st, &format!("-{pgid}"));
}

/// How long the watchdog lets lines pile up between two reads. It needs the
/// registered groups only when the daemon dies, so it reads in batches: a burst
/// of short tasks (two lines each) wakes it a few dozen times a second instead
/// of twice per task (measured: ~2% of a 1,000-task burst's CPU, and a context
/// switch per line on the daemon's side). The pipe holds 64 KiB, thousands of
/// lines, so the daemon's writes never wait on it. The daemon's death is seen
/// at the next read: at once when the watchdog is idle, within this pause
/// during a burst.
#[cfg(unix)]
const BATCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// The watchdog process itself: never returns.
#[cfg(unix)]
pub fn run() -> ! {
    use std::io::Read;
    // Ctrl-C in a terminal reaches the whole foreground group; the daemon then
    // shuts down gracefully, and the watchdog must stay until it is gone.
    // SAFETY: setting signal dispositions in a single-threaded process.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    // The daemon, while it is still there to ask.
    let daemon = std::os::unix::process::parent_id();
    let mut groups = Groups::default();
    let mut stdin = std::io::stdin().lock();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Blocks until the daemon writes or dies, then takes all that is there.
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => groups.feed(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
        std::thread::sleep(BATCH_PAUSE);
    }
    for g in groups.live {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(g), nix::sys::signal::Signal::SIGKILL);
    }
    // And what the agents started outside their groups (see `leftovers`).
    super::leftovers::kill(super::leftovers::Mark::Daemon(daemon));
    std::process::exit(0)
}

/// The groups registered and not yet gone, from the daemon's lines, which may
/// arrive cut anywhere (a read returns what the pipe holds).
#[cfg(unix)]
#[derive(Default)]
struct Groups {
    live: std::collections::HashSet<i32>,
    partial: Vec<u8>,
}

#[cfg(unix)]
impl Groups {
    fn feed(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let whole: Vec<u8> = self.partial.drain(..=end).collect();
        for line in whole.split(|&b| b == b'\n') {
            let Ok(line) = std::str::from_utf8(line) else { continue };
            let (op, id) = line.split_at(1.min(line.len()));
            let Ok(id) = id.trim().parse::<i32>() else { continue };
            match op {
                // 0 and 1 would signal the watchdog's own group or init's.
                "+" if id > 1 => {
                    self.live.insert(id);
                }
                "-" => {
                    self.live.remove(&id);
                }
                _ => {}
            }
        }
    }
}

#[cfg(not(unix))]
pub fn run() -> ! {
    std::process::exit(0)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn lines_cut_anywhere_register_and_unregister_in_order() {
        let mut g = Groups::default();
        let stream = b"+100\n+200\n-100\n+1\n+0\n+abc\n-300\n+100\n-200\n+4242\n";
        // Every way of cutting the stream in two gives the same groups.
        for cut in 0..=stream.len() {
            let mut g2 = Groups::default();
            g2.feed(&stream[..cut]);
            g2.feed(&stream[cut..]);
            let mut live: Vec<_> = g2.live.into_iter().collect();
            live.sort();
            assert_eq!(live, vec![100, 4242], "cut at {cut}");
        }
        // A line still being written is not acted on.
        g.feed(b"+77");
        assert!(g.live.is_empty());
        g.feed(b"7\n");
        assert!(g.live.contains(&777));
    }
}
