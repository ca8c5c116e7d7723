//! The watchdog: agents never outlive their daemon, whatever kills it.
//!
//! Each daemon starts one small helper (this binary, `orchestrator __watchdog`)
//! whose stdin is a pipe only the daemon can write to. The daemon registers
//! every agent's process group (`+PGID`) when it starts and unregisters it
//! (`-PGID`) once the group is gone. When the daemon dies, even by SIGKILL, the
//! OS closes the pipe; the watchdog reads end-of-file, kills every group still
//! registered (grandchildren included), and exits.
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

static WATCHDOG: OnceLock<Mutex<Option<Handle>>> = OnceLock::new();

fn start() -> std::io::Result<Handle> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg(ARG)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdin = child.stdin.take().expect("piped");
    Ok(Handle { child, stdin })
}

/// Sends one line (`+PGID` or `-PGID`) in a single write, so the watchdog wakes
/// once per line. A watchdog that died is noticed by the broken pipe, reaped,
/// and replaced, and the line goes to the new one.
fn send(line: &str) {
    let cell = WATCHDOG.get_or_init(|| Mutex::new(None));
    let mut guard = cell.lock().unwrap_or_else(|e| e.into_inner());
    let msg = format!("{line}\n");
    for _ in 0..2 {
        if guard.is_none() {
            match start() {
                Ok(h) => *guard = Some(h),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the agent watchdog: agents may outlive a crashed daemon until recovery");
                    return;
                }
            }
        }
        let h = guard.as_mut().expect("started above");
        if h.stdin.write_all(msg.as_bytes()).is_ok() {
            return;
        }
        tracing::warn!("the agent watchdog is gone; starting another");
        if let Some(mut dead) = guard.take() {
            let _ = dead.child.try_wait();
        }
    }
}

/// Registers an agent's process group.
pub fn watch(pgid: u32) {
    send(&format!("+{pgid}"));
}

/// The group is gone: forget it (its id may be reused).
pub fn unwatch(pgid: u32) {
    send(&format!("-{pgid}"));
}

/// The watchdog process itself: never returns.
#[cfg(unix)]
pub fn run() -> ! {
    use std::io::BufRead;
    // Ctrl-C in a terminal reaches the whole foreground group; the daemon then
    // shuts down gracefully, and the watchdog must stay until it is gone.
    // SAFETY: setting signal dispositions in a single-threaded process.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let mut groups = std::collections::HashSet::new();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let (op, id) = line.split_at(1.min(line.len()));
        let Ok(id) = id.trim().parse::<i32>() else { continue };
        match op {
            "+" if id > 1 => {
                groups.insert(id);
            }
            "-" => {
                groups.remove(&id);
            }
            _ => {}
        }
    }
    for g in groups {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(g), nix::sys::signal::Signal::SIGKILL);
    }
    std::process::exit(0)
}

#[cfg(not(unix))]
pub fn run() -> ! {
    std::process::exit(0)
}
