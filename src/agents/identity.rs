//! Which process is the agent: told apart from a later process that was given
//! the same pid, so a daemon that recovers a dead daemon's task kills what is
//! left of that agent and nothing else.
//!
//! The record is the pid, the process group and the start time, in the clock
//! ticks since boot that Linux shows as field 22 of `/proc/<pid>/stat`. The
//! start time is not read from `/proc` at spawn time: that costs an open, a
//! read and the kernel's formatting of the whole stat line for every agent
//! (about 2% of a burst of short tasks). The kernel stamps a new process with
//! the boot clock while the spawn call runs, so reading that clock
//! (`CLOCK_BOOTTIME`, no system call) before and after the spawn brackets the
//! start: a window of one tick, two when the spawn straddles a tick. A recycled
//! pid would have to have been handed out again within that window, which
//! takes a wrap of the whole pid space within ~10 ms.

use crate::store::record::AgentProcess;

/// Ticks since boot now, on the clock and scale of `/proc/<pid>/stat`'s start
/// time (Linux; `None` elsewhere).
pub fn boot_ticks() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec; the call has no other effect.
        if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
            return None;
        }
        let ns = u64::try_from(ts.tv_sec).ok()? * 1_000_000_000 + u64::try_from(ts.tv_nsec).ok()?;
        // The kernel's nsec_to_clock_t: whole ticks, rounded down.
        Some(ns / (1_000_000_000 / ticks_per_second()?))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

#[cfg(target_os = "linux")]
fn ticks_per_second() -> Option<u64> {
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&hz| hz > 0 && 1_000_000_000 % hz == 0)
}

/// Start time of a live `pid` in ticks since boot, as the OS tells it (Linux).
/// `None` for a process that is gone or a zombie.
pub fn start_ticks(pid: u32) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name, which is in parentheses and may contain spaces.
        let rest = &stat[stat.rfind(')')? + 2..];
        // A zombie has finished: it is not running, whatever its start time.
        if rest.starts_with(['Z', 'X']) {
            return None;
        }
        rest.split_whitespace().nth(19)?.parse().ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

/// The record of an agent that has just been spawned: `before` and `after` are
/// [`boot_ticks`] read around the spawn call.
pub fn record(pid: u32, before: Option<u64>, after: Option<u64>) -> AgentProcess {
    let (start_ticks, start_ticks_max) = match (before, after) {
        (Some(lo), Some(hi)) => (Some(lo), Some(hi)),
        // No boot clock: ask the OS (where it can tell).
        _ => (start_ticks(pid), None),
    };
    AgentProcess {
        pid,
        pgid: cfg!(unix).then_some(pid),
        start_ticks,
        start_ticks_max,
        daemon_pid: std::process::id(),
    }
}

/// Does a process that started at `now` (ticks) match the record?
fn same_start(record: &AgentProcess, now: u64) -> bool {
    match (record.start_ticks, record.start_ticks_max) {
        (Some(lo), Some(hi)) => (lo..=hi).contains(&now),
        // Records written before the window existed hold the exact start.
        (Some(exact), None) => now == exact,
        (None, _) => false,
    }
}

/// Kills what a dead daemon's agent left behind, if it is provably that process
/// tree (same pid and start time, or its group still alive). Returns whether
/// anything was signalled.
pub fn kill_leftover(record: &AgentProcess) -> bool {
    #[cfg(target_os = "linux")]
    {
        let Some(pgid) = record.pgid else {
            return false;
        };
        match start_ticks(record.pid) {
            // The leader lives and is the same process: kill its group.
            Some(now) if same_start(record, now) => {}
            // The pid now belongs to another process: never touch it.
            Some(_) => return false,
            // The leader is gone. A pgid cannot be handed out again while its group
            // has members, so members of this group are the agent's descendants.
            None => {
                if !group_alive(pgid) {
                    return false;
                }
            }
        }
        nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pgid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        // Windows: the job object died with the daemon. Other Unixes: the start
        // time cannot be checked cheaply, so a recycled pid cannot be ruled out.
        let _ = (record, same_start);
        false
    }
}

#[cfg(target_os = "linux")]
fn group_alive(pgid: u32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|e| {
        let Ok(name) = e.file_name().into_string() else {
            return false;
        };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        let Some(close) = stat.rfind(')') else { return false };
        // After ") ": state, ppid, pgrp. Zombies (not reaped where PID 1 does not reap) do not count.
        let mut fields = stat[close + 2..].split_whitespace();
        let state = fields.next().unwrap_or("Z");
        !state.starts_with(['Z', 'X']) && fields.nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(pgid)
    })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command};

    /// A `sleep` leading its own group, with the boot clock read around its spawn.
    fn spawn_sleeper() -> (Child, AgentProcess) {
        let before = boot_ticks();
        let child = Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .expect("sleep starts");
        let after = boot_ticks();
        let record = record(child.id(), before, after);
        (child, record)
    }

    fn reaped(mut child: Child) -> bool {
        child.wait().expect("the sleeper is reaped").code().is_none()
    }

    #[test]
    fn the_window_around_a_spawn_holds_the_start_time_the_kernel_recorded() {
        for _ in 0..20 {
            let (mut child, rec) = spawn_sleeper();
            let real = start_ticks(child.id()).expect("a live child has a start time");
            let (lo, hi) = (rec.start_ticks.unwrap(), rec.start_ticks_max.unwrap());
            assert!(lo <= real && real <= hi, "{lo} <= {real} <= {hi}");
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    #[test]
    fn the_recorded_agent_is_killed_with_its_group() {
        let (child, rec) = spawn_sleeper();
        assert!(kill_leftover(&rec));
        assert!(reaped(child), "killed by a signal");
    }

    #[test]
    fn a_process_that_started_at_another_time_is_never_touched() {
        let (mut child, mut rec) = spawn_sleeper();
        // The same pid, but the record says it started a second earlier: a recycled pid.
        let lo = rec.start_ticks.unwrap();
        rec.start_ticks = Some(lo.saturating_sub(200));
        rec.start_ticks_max = Some(lo.saturating_sub(100));
        assert!(!kill_leftover(&rec));
        // A record from an older daemon holds the exact start time.
        rec.start_ticks_max = None;
        assert!(!kill_leftover(&rec));
        assert!(child.try_wait().unwrap().is_none(), "still running");
        rec.start_ticks = start_ticks(child.id());
        assert!(kill_leftover(&rec), "an exact record of the real start matches");
        assert!(reaped(child));
    }
}
