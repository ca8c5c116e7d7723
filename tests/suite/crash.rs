//! Crash safety: kill -9, graceful shutdown, several daemons on one home.

use crate::common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

fn pid_config(pids: &std::path::Path) -> String {
    config_with("", &format!("    env:\n      FAKE_AGENT_PIDS: {}", pids.display()))
}

fn wait_for_pids(path: &std::path::Path, n: usize) -> Vec<u32> {
    wait_until(Duration::from_secs(20), "the agent to start", || {
        read_pids(path).len() >= n
    });
    read_pids(path)
}

/// The watchdog of daemon `daemon`: its child running `orchestrator __watchdog`.
fn watchdog_of(daemon: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let ppid: u32 = stat[stat.rfind(')')? + 2..].split_whitespace().nth(1)?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        (ppid == daemon && cmdline.windows(10).any(|w| w == b"__watchdog")).then_some(pid)
    })
}

#[test]
fn kill_9_mid_run_then_restart_runs_the_task_again_and_finishes_it_once() {
    let pids_file = tempfile::NamedTempFile::new().unwrap();
    let home = TestHome::with_config(&pid_config(pids_file.path()));
    home.drop_task("job.md", "@fake hang fail_times=1\nfinish me\n");
    let mut daemon = home.spawn_daemon();
    let pids = wait_for_pids(pids_file.path(), 2);
    kill9(daemon.id());
    let _ = daemon.wait();
    // The daemon's watchdog kills the agent's whole group, grandchild included.
    for pid in &pids {
        wait_until(Duration::from_secs(5), "the agent tree to die with its daemon", || {
            !alive(*pid)
        });
    }
    let dir = std::fs::read_dir(home.path.join("results"))
        .unwrap()
        .flatten()
        .find(|e| e.path().is_dir())
        .unwrap()
        .path();
    assert!(!dir.join("result.json").exists());

    let out = home.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    let results = home.results();
    assert_eq!(results.len(), 1, "exactly one result");
    let r = &results[0];
    assert_eq!(r["status"], "succeeded");
    let attempts = r["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "the interrupted run counted as an attempt");
    assert_eq!(attempts[0]["error"]["kind"], "interrupted");
    let interrupted = home.events_of("task_interrupted");
    assert_eq!(interrupted.len(), 1);
    assert_eq!(interrupted[0]["reason"], "daemon_died");
    assert_eq!(interrupted[0]["killed_leftover"], false, "nothing was left to kill");
    assert_eq!(home.events_of("task_succeeded").len(), 1);
}

/// A watchdog killed on its own (the daemon lives on) is noticed at the next
/// agent and replaced: that agent is still killed when the daemon dies.
#[test]
fn a_dead_watchdog_is_replaced_and_the_next_agent_still_dies_with_the_daemon() {
    let pids_file = tempfile::NamedTempFile::new().unwrap();
    let home = TestHome::with_config(&pid_config(pids_file.path()));
    home.drop_task("first.md", "hello\n");
    let mut daemon = home.spawn_daemon();
    wait_until(Duration::from_secs(20), "the first task to finish", || {
        !home.events_of("task_succeeded").is_empty()
    });
    let first = watchdog_of(daemon.id()).expect("the daemon runs a watchdog");
    kill9(first);
    wait_until(Duration::from_secs(5), "the watchdog to die", || !alive(first));
    home.drop_task("second.md", "@fake hang\n");
    let pids = wait_for_pids(pids_file.path(), 2);
    let second = watchdog_of(daemon.id()).filter(|&w| w != first && alive(w));
    assert!(second.is_some(), "a new watchdog was started");
    kill9(daemon.id());
    let _ = daemon.wait();
    for pid in &pids {
        wait_until(Duration::from_secs(5), "the agent tree to die with its daemon", || {
            !alive(*pid)
        });
    }
}

#[test]
fn when_the_watchdog_died_too_recovery_kills_the_leftover_tree() {
    let pids_file = tempfile::NamedTempFile::new().unwrap();
    let home = TestHome::with_config(&pid_config(pids_file.path()));
    home.drop_task("job.md", "@fake hang fail_times=1\n");
    let mut daemon = home.spawn_daemon();
    let pids = wait_for_pids(pids_file.path(), 2);
    let watchdog = watchdog_of(daemon.id()).expect("the daemon runs a watchdog");
    // Like a power loss of the daemon's machine: daemon and watchdog gone at once.
    kill9(watchdog);
    kill9(daemon.id());
    let _ = daemon.wait();
    assert!(
        pids.iter().all(|p| alive(*p)),
        "without daemon and watchdog, the tree lives on (until recovery)"
    );
    let out = home.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    for pid in &pids {
        assert!(!alive(*pid), "recovery killed the leftover agent tree (pid {pid})");
    }
    assert_eq!(home.events_of("task_interrupted")[0]["killed_leftover"], true);
    assert_eq!(home.result_of("job.md")["status"], "succeeded");
}

#[test]
fn a_daemons_death_uses_no_attempt_and_interruptions_have_their_own_bound() {
    // retries: 0, and its daemon killed mid-run: the task runs again, and succeeds.
    let pids_file = tempfile::NamedTempFile::new().unwrap();
    let home = TestHome::with_config(&pid_config(pids_file.path()));
    home.drop_task("job.md", "---\nretries: 0\n---\n@fake hang fail_times=1\n");
    let mut daemon = home.spawn_daemon();
    wait_for_pids(pids_file.path(), 2);
    kill9(daemon.id());
    let _ = daemon.wait();
    let out = home.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    let r = home.result_of("job.md");
    assert_eq!(r["status"], "succeeded");
    assert_eq!(r["interruptions"], 1);
    let attempts = r["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["cut_short"], "daemon_died");
    assert_eq!(attempts[0]["error"]["kind"], "interrupted");

    // With max_interruptions: 1, the next start fails it instead of running it again.
    let pids_file = tempfile::NamedTempFile::new().unwrap();
    let home = TestHome::with_config(&(pid_config(pids_file.path()) + "max_interruptions: 1\n"));
    home.drop_task("job.md", "---\nretries: 5\n---\n@fake hang\n");
    let mut daemon = home.spawn_daemon();
    wait_for_pids(pids_file.path(), 2);
    kill9(daemon.id());
    let _ = daemon.wait();
    let out = home.run_once();
    assert_eq!(out.status.code(), Some(1));
    let r = home.result_of("job.md");
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["kind"], "interrupted");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_interruptions is 1"),
        "{r}"
    );
    assert_eq!(r["attempts"].as_array().unwrap().len(), 1);
}

#[test]
fn graceful_shutdown_stops_agents_and_leaves_tasks_for_the_next_start() {
    let pids_file = tempfile::NamedTempFile::new().unwrap();
    let home = TestHome::with_config(&pid_config(pids_file.path()));
    home.drop_task("job.md", "@fake hang fail_times=1\n");
    let daemon = home.spawn_daemon();
    let pids = wait_for_pids(pids_file.path(), 2);
    let started = Instant::now();
    sigterm(daemon.id());
    let out = wait_output(daemon, Duration::from_secs(20));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "grace 1s + kill grace 0.5s, took {:?}",
        started.elapsed()
    );
    for pid in &pids {
        assert!(!alive(*pid), "agent tree stopped on shutdown");
    }
    assert!(
        home.results().is_empty(),
        "no result: the task was interrupted, not finished"
    );
    assert_eq!(home.events_of("task_interrupted")[0]["reason"], "daemon_shutdown");
    assert_eq!(home.events_of("daemon_stopped")[0]["reason"], "terminate");

    let out = home.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    let r = home.result_of("job.md");
    assert_eq!(r["status"], "succeeded");
    assert_eq!(
        home.events_of("task_interrupted").len(),
        1,
        "reported once, not again on recovery"
    );
}

#[test]
fn two_daemons_on_one_home_run_each_task_exactly_once() {
    let home = TestHome::new();
    let a = home.spawn_daemon();
    let b = home.spawn_daemon();
    for i in 0..120 {
        home.drop_task(
            &format!("t{i:03}.yaml"),
            format!("agent: command\ncommand: sleep 0.02; echo {i}\n"),
        );
    }
    wait_until(Duration::from_secs(60), "120 results", || home.results().len() >= 120);
    // A graceful stop: each daemon writes what it still holds (index rows, events).
    for d in [&a, &b] {
        sigterm(d.id());
    }
    for d in [a, b] {
        assert!(wait_output(d, Duration::from_secs(20)).status.success());
    }
    let results = home.results();
    assert_eq!(results.len(), 120);
    let mut sources: Vec<&str> = results.iter().map(|r| r["source_file"].as_str().unwrap()).collect();
    sources.sort();
    sources.dedup();
    assert_eq!(sources.len(), 120, "no task finished twice");
    let started = home.events_of("task_started");
    assert_eq!(started.len(), 120, "no task started twice");
    let workers: std::collections::HashSet<&str> = results.iter().map(|r| r["worker"].as_str().unwrap()).collect();
    assert_eq!(workers.len(), 2, "both daemons worked");
    assert_eq!(
        home.index()["tasks"].as_object().unwrap().len(),
        120,
        "both daemons' rows merged in the index"
    );
    for e in home.events() {
        assert!(e.is_object());
    }
}

#[test]
fn a_live_daemon_takes_over_the_tasks_of_a_killed_one() {
    let pids_file = tempfile::NamedTempFile::new().unwrap();
    let home = TestHome::with_config(&pid_config(pids_file.path()));
    home.drop_task("job.md", "@fake hang fail_times=1\n");
    let mut first = home.spawn_daemon();
    wait_for_pids(pids_file.path(), 2);
    let second = home.spawn_daemon();
    let survivor = second.id();
    home.wait_started(2);
    kill9(first.id());
    let _ = first.wait();
    wait_until(Duration::from_secs(20), "the survivor to finish the task", || {
        !home.results().is_empty()
    });
    sigterm(second.id());
    assert!(wait_output(second, Duration::from_secs(20)).status.success());
    let r: Value = home.result_of("job.md");
    assert_eq!(r["status"], "succeeded");
    let interrupted = home.events_of("task_interrupted");
    assert_eq!(interrupted.len(), 1);
    assert!(
        interrupted[0]["recovered_by"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{survivor}"))
    );
    assert_eq!(
        r["worker"], interrupted[0]["recovered_by"],
        "the survivor, not a restart, finished it"
    );
}

#[test]
fn a_crash_mid_claim_or_mid_write_leaves_no_temp_file_and_keeps_the_original_name() {
    let home = TestHome::new();
    home.cli(&["status"]);
    // A daemon died after claiming "my task.md" and before writing plan.json,
    // in the middle of writing progress.json and a summary.
    let dir = home.path.join("results").join("01jd000000000000000000000-my-task");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("task.md"), "@fake success\nhello\n").unwrap();
    std::fs::write(dir.join("owner.lock"), "my task.md").unwrap();
    std::fs::write(dir.join(".tmpAbC123"), "{\"status\":").unwrap();
    std::fs::create_dir_all(home.path.join("summaries")).unwrap();
    std::fs::write(home.path.join("summaries").join(".tmpXyZ789"), "# half").unwrap();
    let out = home.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    let r = home.result_of("my task.md");
    assert_eq!(r["status"], "succeeded");
    assert!(!dir.join(".tmpAbC123").exists(), "the orphan's temp file is gone");
    assert!(
        !home.path.join("summaries").join(".tmpXyZ789").exists(),
        "so is the shared folder's"
    );
}

#[test]
fn a_final_event_lost_in_a_crash_is_written_at_the_next_start() {
    let home = TestHome::new();
    home.drop_task("job.md", "@fake success\n");
    assert!(home.run_once().status.success());
    let id = home.result_of("job.md")["id"].as_str().unwrap().to_string();
    // As if the daemon died right after result.json: no index row, no final event.
    let mut index = home.index();
    index["tasks"].as_object_mut().unwrap().remove(&id);
    std::fs::write(home.path.join("results/index.json"), index.to_string()).unwrap();
    let log = home.path.join("logs/events.ndjson");
    let kept: String = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("\"task_succeeded\""))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&log, kept).unwrap();

    assert!(home.run_once().status.success());
    let finals = home.events_of("task_succeeded");
    assert_eq!(finals.len(), 1, "announced once");
    assert_eq!(finals[0]["task_id"], id.as_str());
    assert_eq!(finals[0]["late"], true);
    assert_eq!(home.index()["tasks"][&id]["status"], "succeeded");
    // A third start finds the event and says nothing more.
    assert!(home.run_once().status.success());
    assert_eq!(home.events_of("task_succeeded").len(), 1);
}

#[test]
fn an_agent_killed_with_its_daemon_before_any_progress_is_still_counted_and_cleaned_up() {
    let home = TestHome::new();
    let pidfile = home.path.join("agent.pid");
    home.drop_task(
        "quiet.yaml",
        format!(
            "agent: command\ncommand: 'if [ \"$ORCHESTRATOR_ATTEMPT\" = 1 ]; then echo $$ > {}; exec sleep 600; fi; echo done'\n",
            pidfile.display()
        ),
    );
    let mut daemon = home.spawn_daemon();
    wait_until(Duration::from_secs(20), "the agent to start", || {
        std::fs::read_to_string(&pidfile).is_ok_and(|s| s.trim().parse::<u32>().is_ok())
    });
    let agent: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    // The daemon records the agent in owner.lock right after the spawn; on a
    // loaded machine the agent can write its pid file first. (In that gap the
    // watchdog, not the record, is what kills the agent with its daemon.)
    let lock = || {
        std::fs::read_dir(home.path.join("results"))
            .unwrap()
            .flatten()
            .find_map(|e| std::fs::read_to_string(e.path().join("owner.lock")).ok())
            .unwrap_or_default()
    };
    wait_until(Duration::from_secs(10), "owner.lock to record the agent", || {
        lock().contains(&format!("\"pid\":{agent}"))
    });
    // Daemon and watchdog die at once, before the agent said anything (no progress.json yet).
    let watchdog = watchdog_of(daemon.id()).expect("the daemon runs a watchdog");
    kill9(watchdog);
    kill9(daemon.id());
    let _ = daemon.wait();
    let dir = home.task_dir(
        std::fs::read_dir(home.path.join("results"))
            .unwrap()
            .flatten()
            .find(|e| e.path().is_dir())
            .unwrap()
            .file_name()
            .to_str()
            .unwrap(),
    );
    assert!(
        !dir.join("progress.json").exists(),
        "a short-lived attempt has no progress.json"
    );
    assert!(alive(agent));
    let out = home.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!alive(agent), "owner.lock told recovery which agent to kill");
    let r = home.result_of("quiet.yaml");
    let attempts = r["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "the interrupted attempt counted: {r}");
    assert_eq!(attempts[0]["error"]["kind"], "interrupted");
    assert_eq!(home.events_of("task_interrupted")[0]["killed_leftover"], true);
}

#[cfg(unix)]
#[test]
fn an_agent_still_running_after_a_second_has_its_progress_json() {
    let pidfile = tempfile::NamedTempFile::new().unwrap();
    let home = TestHome::with_config("default_agent: command\nshutdown_grace: 1s\nkill_grace: 500ms\n");
    home.drop_task(
        "quiet.yaml",
        format!("command: 'echo $$ > {}; exec sleep 600'\n", pidfile.path().display()),
    );
    let daemon = home.spawn_daemon();
    wait_until(Duration::from_secs(20), "the agent to start", || {
        std::fs::read_to_string(pidfile.path()).is_ok_and(|s| s.trim().parse::<u32>().is_ok())
    });
    let agent: u32 = std::fs::read_to_string(pidfile.path()).unwrap().trim().parse().unwrap();
    // Nothing printed, nothing to report: the record comes from the timer alone.
    let progress = || {
        std::fs::read_dir(home.path.join("results"))
            .unwrap()
            .flatten()
            .find_map(|e| std::fs::read_to_string(e.path().join("progress.json")).ok())
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
    };
    wait_until(Duration::from_secs(20), "progress.json for the quiet agent", || {
        progress().is_some()
    });
    let p = progress().unwrap();
    assert_eq!(p["status"], "running", "{p}");
    assert_eq!(p["attempt"], 1, "{p}");
    assert_eq!(p["agent"]["pid"], agent, "{p}");
    sigterm(daemon.id());
    let out = wait_output(daemon, Duration::from_secs(20));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!alive(agent), "the agent stopped with its daemon");
}

#[test]
fn a_task_that_kills_its_daemon_is_quarantined_and_the_tasks_beside_it_succeed() {
    let home = TestHome::with_config(&config_with("max_concurrent: 3", ""));
    // It kills the daemon that runs it, a moment after it starts.
    home.drop_task(
        "poison.yaml",
        "agent: command\nretries: 0\ncommand: 'sleep 0.3; kill -9 $ORCHESTRATOR_DAEMON_PID; sleep 5'\n",
    );
    // Innocent tasks beside it, with no retries: interruptions use no attempt.
    for i in 0..3 {
        home.drop_task(
            &format!("beside{i}.yaml"),
            "agent: command\nretries: 0\ncommand: 'sleep 1; echo done'\n",
        );
    }
    // Each start dies of it, as a supervisor would restart the daemon,
    // until the daemon stops running it.
    let mut deaths = 0;
    let last = loop {
        let out = home.run_once_within(Duration::from_secs(120));
        if out.status.code().is_some() {
            break out;
        }
        deaths += 1;
        assert!(deaths <= 8, "quarantined after a bounded number of deaths");
    };
    assert_eq!(last.status.code(), Some(1), "{}", stderr(&last));
    // Two deaths with others beside it, then three while it ran alone.
    assert_eq!(deaths, 5);
    let r = home.result_of("poison.yaml");
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["kind"], "poison_pill", "{r}");
    let why = r["error"]["message"].as_str().unwrap();
    assert!(why.contains("the last 3 while it ran alone"), "{why}");
    assert_eq!(r["interruptions"], 5);
    let alone = r["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["alone"] == true)
        .count();
    assert_eq!(alone, 3);
    for i in 0..3 {
        let b = home.result_of(&format!("beside{i}.yaml"));
        assert_eq!(b["status"], "succeeded", "{b}");
        assert_eq!(b["output"].as_str().unwrap().trim(), "done");
    }
    let shown = stdout(&home.cli(&["show", r["id"].as_str().unwrap()]));
    assert!(shown.contains("interrupted: 5 times from outside"), "{shown}");
    assert!(shown.contains("(its daemon died; it ran alone)"), "{shown}");
}

/// A power loss after tasks finished: the disk may lack a result file's name
/// or hold it torn (the files themselves are not flushed; the daemon's commit
/// log is). The next daemon restores both from the log, byte for byte, and
/// runs neither task again.
#[test]
fn results_lost_or_torn_by_a_power_loss_are_restored_from_the_commit_log_not_run_again() {
    let home = TestHome::new();
    for name in ["a", "b", "c"] {
        home.drop_task(
            &format!("{name}.yaml"),
            format!("agent: command\ncommand: echo ran-{name}\n"),
        );
    }
    let out = home.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    let logs = home.path.join("results/.commits");
    let log_count = || std::fs::read_dir(&logs).map(|d| d.count()).unwrap_or(0);
    assert_eq!(
        log_count(),
        1,
        "the log outlives the daemon until its files are flushed"
    );
    let result = |name: &str| {
        home.task_dir(home.result_of(&format!("{name}.yaml"))["id"].as_str().unwrap())
            .join("result.json")
    };
    let (a, b, c) = (result("a"), result("b"), result("c"));
    let (a_bytes, b_bytes, c_bytes) = (
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        std::fs::read(&c).unwrap(),
    );
    // What a power loss can leave: a name that never reached the disk, a file torn.
    std::fs::remove_file(&a).unwrap();
    std::fs::write(&b, &b_bytes[..b_bytes.len() / 2]).unwrap();
    let started = home.events_of("task_started").len();

    let out = home.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(&a).unwrap(), a_bytes);
    assert_eq!(std::fs::read(&b).unwrap(), b_bytes);
    assert_eq!(std::fs::read(&c).unwrap(), c_bytes);
    assert_eq!(home.events_of("task_started").len(), started, "no task ran again");
    assert_eq!(home.events_of("task_interrupted").len(), 0);
    assert_eq!(
        log_count(),
        0,
        "the replayed log is gone (the second daemon logged nothing)"
    );
    assert_eq!(home.index()["tasks"].as_object().unwrap().len(), 3);
}

/// The command task starts a process in a new session (out of its group), then
/// waits: `setsid` is what Claude Code does with every Bash command.
const ESCAPES: &str = "---\nagent: command\ncommand: \"setsid sleep 300 >/dev/null 2>&1 < /dev/null & sleep 300\"\ntimeout: 2s\nretries: 0\n---\n";

fn marked(home: &TestHome) -> Vec<(u32, String)> {
    let Some(id) = home
        .results()
        .first()
        .and_then(|r| r["id"].as_str().map(String::from))
        .or_else(|| {
            std::fs::read_dir(home.path.join("results"))
                .ok()?
                .flatten()
                .find(|e| e.path().is_dir() && !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| e.file_name().to_string_lossy().into_owned())
        })
    else {
        return Vec::new();
    };
    processes_with_env(&format!("ORCHESTRATOR_TASK_ID={id}"))
}

#[cfg(target_os = "linux")]
#[test]
fn a_process_that_left_the_agents_group_ends_with_the_task() {
    let home = TestHome::new();
    home.drop_task("escape.md", ESCAPES);
    home.run_once();
    let r = home.result_of("escape.md");
    assert_eq!(r["error"]["kind"], "timeout", "{r}");
    wait_until(Duration::from_secs(10), "the escaped process to be stopped", || {
        marked(&home).is_empty()
    });
}

#[cfg(target_os = "linux")]
#[test]
fn a_sigkill_of_the_daemons_whole_group_still_stops_every_agent_process() {
    use std::os::unix::process::CommandExt;
    let home = TestHome::new();
    home.drop_task("escape.md", ESCAPES.replace("timeout: 2s", "timeout: 5m"));
    let mut c = home.cmd();
    c.arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // The daemon leads a group, as under a supervisor that kills the whole group.
    c.process_group(0);
    let mut daemon = c.spawn().unwrap();
    wait_until(Duration::from_secs(20), "the agent and its escaped process", || {
        marked(&home)
            .iter()
            .filter(|(_, cmd)| cmd.starts_with("sleep 300"))
            .count()
            == 2
    });
    let watchdog = watchdog_of(daemon.id());
    // SAFETY: kill(2) of the group this test started.
    unsafe { libc::kill(-(daemon.id() as i32), libc::SIGKILL) };
    let _ = daemon.wait();
    wait_until_or(
        Duration::from_secs(20),
        || marked(&home).is_empty(),
        || {
            let left: Vec<String> = marked(&home)
                .into_iter()
                .map(|(pid, cmd)| {
                    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                    format!("{pid} {cmd} [{stat}]")
                })
                .collect();
            format!(
                "still running: {left:?}; watchdog {watchdog:?} alive: {:?}",
                watchdog.map(alive)
            )
        },
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_stop_gives_the_whole_group_its_grace_even_when_the_leader_dies_at_once() {
    // The leader (sh) dies on SIGTERM at once, as npm's `cline` wrapper may; its
    // child traps SIGTERM, takes a second to finish, and leaves a mark.
    let mark = tempfile::tempdir().unwrap();
    let done = mark.path().join("finished-cleanly");
    let home = TestHome::with_config(&config_with("kill_grace: 20s", ""));
    home.drop_task(
        "graceful.md",
        format!(
            "---\nagent: command\ncommand: \"(trap 'sleep 1; touch {}; exit 0' TERM; while true; do sleep 0.05; done) & sleep 300\"\ntimeout: 1s\nretries: 0\n---\n",
            done.display()
        ),
    );
    home.run_once();
    assert_eq!(home.result_of("graceful.md")["error"]["kind"], "timeout");
    assert!(done.exists(), "the group was killed before its grace was over");
}

/// An agent can kill the watchdog (it runs as the same user). The daemon
/// replaces it at once with every running agent's group, so the agent that is
/// running still dies with the daemon.
#[cfg(target_os = "linux")]
#[test]
fn a_watchdog_killed_by_an_agent_is_replaced_with_the_running_agents() {
    let pids_file = tempfile::NamedTempFile::new().unwrap();
    let home = TestHome::with_config(&pid_config(pids_file.path()));
    home.drop_task("job.md", "@fake hang\nhold on\n");
    let mut daemon = home.spawn_daemon();
    let pids = wait_for_pids(pids_file.path(), 2);
    let first = watchdog_of(daemon.id()).expect("a watchdog");
    kill9(first);
    wait_until(Duration::from_secs(20), "a new watchdog", || {
        watchdog_of(daemon.id()).is_some_and(|w| w != first)
    });
    kill9(daemon.id());
    let _ = daemon.wait();
    for pid in &pids {
        wait_until(
            Duration::from_secs(10),
            "the running agent to die with its daemon",
            || !alive(*pid),
        );
    }
}

/// Every run a daemon's end cuts short is told once: by the daemon itself when
/// it stops gracefully, else by the daemon that takes the task over, even when
/// the one that took it over before was killed before its run said anything.
#[test]
fn each_cut_short_run_has_one_task_interrupted_event() {
    let home = TestHome::new();
    // Silent for its first two attempts (as a real agent is for its first second).
    home.drop_task(
        "job.yaml",
        "agent: command\ncommand: 'if [ \"$ORCHESTRATOR_ATTEMPT\" -lt 3 ]; then sleep 30; fi; echo done'\n",
    );
    let first = home.spawn_daemon();
    let started = |n: u32| move |home: &TestHome| home.events_of("attempt_started").iter().any(|e| e["attempt"] == n);
    wait_until(Duration::from_secs(20), "the first attempt", || started(1)(&home));
    sigterm(first.id());
    wait_output(first, Duration::from_secs(20));
    assert_eq!(home.events_of("task_interrupted").len(), 1, "the stop told it");

    // The next daemon runs it again and is killed while its agent is silent.
    let mut second = home.spawn_daemon();
    wait_until(Duration::from_secs(20), "the second attempt", || started(2)(&home));
    kill9(second.id());
    let _ = second.wait();

    let out = home.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(home.result_of("job.yaml")["status"], "succeeded");
    let told: Vec<(Value, Value)> = home
        .events_of("task_interrupted")
        .iter()
        .map(|e| (e["reason"].clone(), e["attempt"].clone()))
        .collect();
    assert_eq!(
        told,
        vec![
            (Value::from("daemon_shutdown"), Value::from(1)),
            (Value::from("daemon_died"), Value::from(2))
        ]
    );
}
