//! What a new user meets in the first hour: the terminal while the daemon
//! runs, samples, failed answers, steps, ids and file names, cost, the index.

use crate::common::*;

use std::process::Command;
use std::time::Duration;

/// `orchestrator ARGS` under a pseudo-terminal (`script`), as a person runs
/// it; what the terminal showed.
#[cfg(target_os = "linux")]
fn in_a_terminal(home: &TestHome, args: &str) -> Option<String> {
    if which_script().is_none() {
        skip("a terminal test", "`script` (util-linux) is not installed");
        return None;
    }
    let cmd = format!("'{BIN}' --home '{}' {args}", home.path.display());
    let child = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .env("NO_COLOR", "1")
        .env("ORCHESTRATOR_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_output(child, Duration::from_secs(60));
    Some(String::from_utf8_lossy(&out.stdout).replace('\r', ""))
}

#[cfg(target_os = "linux")]
fn which_script() -> Option<()> {
    Command::new("script")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| ())
}

#[cfg(target_os = "linux")]
#[test]
fn run_in_a_terminal_says_when_each_task_starts_and_ends() {
    let home = TestHome::new();
    home.drop_task("ok.yaml", "title: Say hi\nagent: command\ncommand: echo hi\n");
    home.drop_task("bad.yaml", "title: Fail\nagent: command\ncommand: exit 3\n");
    home.drop_task("typo.yaml", "agent: command\ncomand: echo hi\n");
    let Some(screen) = in_a_terminal(&home, "run --once") else {
        return;
    };
    let lines: Vec<&str> = screen.lines().collect();
    let has = |what: &str| lines.iter().any(|l| l.contains(what));
    assert!(has("started    ") && has("Say hi (command)"), "{screen}");
    assert!(
        lines.iter().any(|l| l.contains("succeeded") && l.contains("Say hi")),
        "{screen}"
    );
    assert!(
        lines.iter().any(|l| l.contains("failed") && l.contains("Fail")),
        "{screen}"
    );
    assert!(has("command_failed: "), "the error, {screen}");
    assert!(
        has("rejected   typo.yaml") && has("did you mean `command`?"),
        "{screen}"
    );
    // A pipe (a service's journal, a script) gets none of it.
    home.drop_task("again.yaml", "title: Again\nagent: command\ncommand: echo hi\n");
    let out = home.run_once();
    assert!(!stderr(&out).contains("started    "), "{}", stderr(&out));
}

#[test]
fn the_daemon_warns_at_start_when_the_default_agents_cli_is_missing() {
    let home = TestHome::with_config(&(base_config() + "default_agent: cline\n"));
    std::fs::write(
        home.path.join("orchestrator.yaml"),
        base_config().replace(
            "agents:\n",
            "default_agent: cline\nagents:\n  cline:\n    command: /nonexistent/cline-cli\n",
        ),
    )
    .unwrap();
    let out = home.run_once();
    let err = stderr(&out);
    assert!(err.contains("`/nonexistent/cline-cli` is not on PATH"), "{err}");
}

#[test]
fn create_sample_writes_a_task_for_the_homes_own_agent() {
    let home = TestHome::with_config(&(base_config() + "default_agent: command\n"));
    let out = home.cli(&["create-sample"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let name = stdout(&out).trim().to_string();
    let text = std::fs::read_to_string(home.path.join(&name)).unwrap();
    assert!(text.contains("agent: command"), "{name}: {text}");
    assert!(home.run_once().status.success(), "the sample runs on this home");
}

#[test]
fn steps_show_as_steps_and_are_no_retries() {
    let home = TestHome::new();
    home.drop_task(
        "steps.yaml",
        "agent: command\nsteps: ['echo one', 'echo two', 'echo three']\n",
    );
    assert!(home.run_once().status.success());
    let text = stdout(&home.cli(&["show", "steps.yaml"]));
    for step in ["step 1: exit 0", "step 2: exit 0", "step 3: exit 0"] {
        assert!(text.contains(step), "{text}");
    }
    assert!(!text.contains("attempt 2"), "{text}");
    let stats = home.cli_json(&["stats"]);
    assert_eq!(stats["retries"], 0, "{stats}");
    assert_eq!(stats["attempts"], 3, "{stats}");
}

#[test]
fn results_of_a_failed_task_says_why_on_stderr_and_exits_1() {
    let home = TestHome::new();
    home.drop_task("bad.yaml", "agent: command\ncommand: exit 3\n");
    home.run_once();
    let out = home.cli(&["results", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "", "no empty line for a missing answer");
    let err = stderr(&out);
    assert!(err.contains("failed: command_failed: "), "{err}");
}

#[cfg(unix)]
#[test]
fn an_interrupted_task_and_a_rejected_file_show_in_list_and_status() {
    let home = TestHome::new();
    let mut daemon = home.spawn_daemon();
    home.wait_started(1);
    home.drop_task("long.yaml", "title: Long one\nagent: command\ncommand: sleep 30\n");
    home.drop_task("typo.yaml", "agent: command\ncomand: echo hi\n");
    wait_until(
        Duration::from_secs(60),
        "the task to start and the typo to be refused",
        || !home.events_of("task_started").is_empty() && !home.events_of("task_rejected").is_empty(),
    );
    sigterm(daemon.id());
    assert!(daemon.wait().unwrap().success());
    let list = stdout(&home.cli(&["list"]));
    assert!(
        list.lines()
            .any(|l| l.starts_with("interrupted") && l.contains("Long one")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("rejected") && l.contains("typo.yaml")),
        "{list}"
    );
    let status = stdout(&home.cli(&["status"]));
    assert!(status.contains("interrupted: 1 ("), "{status}");
    assert!(
        status.contains("rejected: 1 ") && status.contains("typo.yaml"),
        "{status}"
    );
    let json = home.cli_json(&["status"]);
    assert_eq!(json["interrupted"].as_array().unwrap().len(), 1, "{json}");
    let only = home.cli_json(&["list", "--status", "interrupted"]);
    assert_eq!(only.as_array().unwrap().len(), 1, "{only}");
}

#[test]
fn a_missing_index_is_rebuilt_by_the_verbs_that_read_it() {
    let home = TestHome::new();
    home.drop_task("a.yaml", "agent: command\ncommand: echo a\n");
    home.drop_task("b.yaml", "agent: command\ncommand: echo b\n");
    assert!(home.run_once().status.success());
    std::fs::remove_file(home.path.join("results/index.json")).unwrap();
    let list = stdout(&home.cli(&["list"]));
    assert!(
        !list.contains("no tasks") && list.lines().filter(|l| l.starts_with("succeeded")).count() == 2,
        "{list}"
    );
    let status = home.cli_json(&["status"]);
    assert_eq!(status["finished"]["total"], 2, "{status}");
}

#[test]
fn tail_events_takes_what_show_takes_and_says_when_nothing_matches() {
    let home = TestHome::new();
    home.drop_task("named.yaml", "agent: command\ncommand: echo hi\n");
    home.drop_task("other.yaml", "agent: command\ncommand: echo other\n");
    assert!(home.run_once().status.success());
    let out = home.cli(&["tail-events", "--task", "named.yaml", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().any(|e| e["event"] == "task_succeeded"), "{lines:?}");
    let id = home.result_of("named.yaml")["id"].as_str().unwrap().to_string();
    assert!(
        lines
            .iter()
            .all(|e| e["task_id"] == id.as_str() || e["file"] == "named.yaml"),
        "{lines:?}"
    );
    let out = home.cli(&["tail-events", "--task", "nosuchtask"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("no task matches `nosuchtask`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn resume_of_a_command_task_runs_it_again_from_the_failed_step() {
    let home = TestHome::new();
    let flag = home.path.join("second-time");
    home.drop_task(
        "cmd.yaml",
        format!(
            "agent: command\nretries: 0\nsteps: ['echo one', 'test -f \"{0}\" || {{ touch \"{0}\"; exit 4; }}', 'echo three']\n",
            flag.display()
        ),
    );
    home.run_once();
    assert_eq!(home.result_of("cmd.yaml")["status"], "failed");
    let out = home.cli(&["resume", "cmd.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(home.run_once().status.success());
    let resumed = home
        .results()
        .into_iter()
        .find(|r| r["parent_task_id"].is_string())
        .unwrap();
    assert_eq!(resumed["status"], "succeeded", "{resumed}");
    let steps: Vec<u64> = resumed["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [2, 3], "from the failed step on: {resumed}");
}

#[test]
fn a_command_that_is_not_found_is_not_called_a_missing_agent() {
    let home = TestHome::new();
    home.drop_task("typo.yaml", "agent: command\ncommand: no-such-program-xyz --flag\n");
    home.run_once();
    let r = home.result_of("typo.yaml");
    assert_eq!(r["error"]["kind"], "command_failed", "{r}");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(msg.contains("did not find the command's program"), "{msg}");
    assert!(!r["error"]["suggestion"].as_str().unwrap().contains("agent CLI"), "{r}");
}

#[test]
fn tasks_without_a_cost_show_none_not_zero_dollars() {
    let home = TestHome::new();
    home.drop_task("a.yaml", "agent: command\ncommand: echo a\n");
    home.run_once();
    let stats = stdout(&home.cli(&["stats"]));
    assert!(stats.contains("cost:         - (no task reported a cost)"), "{stats}");
    assert!(!stats.contains("$0.0000"), "{stats}");
    let show = stdout(&home.cli(&["show", "a.yaml"]));
    assert!(!show.contains("$0.0000"), "{show}");
}

#[test]
fn every_flag_of_every_verb_says_what_it_does() {
    let home = TestHome::new();
    for verb in VERBS.iter().filter(|v| **v != "completions") {
        // The short help: each flag and its text on one line.
        let help = stdout(&home.cli(&[verb, "-h"]));
        for line in help.lines().map(str::trim) {
            if line.starts_with('-') && !line.starts_with("-h,") && !line.starts_with("-V") {
                assert!(
                    line.contains("  "),
                    "`{verb} --help`: the flag `{line}` has no help text"
                );
            }
        }
    }
}

#[cfg(unix)]
#[test]
fn a_fixed_config_is_confirmed() {
    let home = TestHome::new();
    let config = home.path.join("orchestrator.yaml");
    let good = std::fs::read_to_string(&config).unwrap();
    let mut daemon = home.spawn_daemon();
    home.wait_started(1);
    std::fs::write(&config, format!("{good}max_concurent: 2\n")).unwrap();
    // A write may be seen half done (the file cut to nothing first) and read
    // once more: what counts is a refusal, then a confirmation after it.
    let refused = || home.events_of("config_reloaded").iter().position(|e| e["ok"] == false);
    wait_until(Duration::from_secs(60), "the refused reload", || refused().is_some());
    std::fs::write(&config, &good).unwrap();
    wait_until(Duration::from_secs(60), "the fix confirmed", || {
        let events = home.events_of("config_reloaded");
        events.last().is_some_and(|e| e["ok"] == true) && events.len() > refused().unwrap_or(usize::MAX)
    });
    sigterm(daemon.id());
    let _ = daemon.wait();
}

#[test]
fn a_file_just_dropped_is_queued_for_status_as_for_show() {
    let home = TestHome::with_config(&(base_config().replace("debounce_ms: 50", "debounce_ms: 30000")));
    let mut daemon = home.spawn_daemon();
    home.wait_started(1);
    // Published once a daemon runs; the file below settles for 30 s.
    wait_until(Duration::from_secs(30), "the daemon to publish its state", || {
        home.cli_json(&["status"])["daemons"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
    });
    home.drop_task("fresh.yaml", "agent: command\ncommand: echo hi\n");
    assert!(stdout(&home.cli(&["show", "fresh.yaml"])).contains("queued"));
    let status = home.cli_json(&["status"]);
    assert_eq!(status["queued_total"], 1, "{status}");
    sigterm(daemon.id());
    let _ = daemon.wait();
}

/// The README's Quick start, pasted into bash as it stands, with
/// `orchestrator` on PATH and the fake agent as `claude`.
#[cfg(unix)]
#[test]
fn the_readme_quick_start_works_when_pasted() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start =
        readme.find("## Quick start\n\n```sh\n").expect("a Quick start block") + "## Quick start\n\n```sh\n".len();
    let block = &readme[start..start + readme[start..].find("\n```\n").unwrap()];
    let user = tempfile::tempdir().unwrap();
    let bin = user.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("orchestrator")).unwrap();
    std::os::unix::fs::symlink(fake_agent(), bin.join("claude")).unwrap();
    let script = format!("{block}\necho \"DAEMON=$!\"\n");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    // To files, not pipes: the daemon started with `&` keeps its stdout and
    // stderr open after the block ends, as it does in a person's terminal.
    let (out_file, err_file) = (user.path().join("out"), user.path().join("err"));
    let status = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("HOME", user.path())
        .env("PATH", path)
        .env_remove("ORCHESTRATOR_HOME")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(std::fs::File::create(&err_file).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&out_file).unwrap();
    let err = std::fs::read_to_string(&err_file).unwrap();
    let daemon: u32 = text
        .lines()
        .find_map(|l| l.strip_prefix("DAEMON="))
        .unwrap()
        .parse()
        .unwrap();
    // The daemon the block started in the background is stopped whatever happens.
    struct Stop(u32);
    impl Drop for Stop {
        fn drop(&mut self) {
            sigterm(self.0);
        }
    }
    let _daemon = Stop(daemon);
    let home = user.path().join("agents");
    let finished = || {
        Command::new(BIN)
            .args(["--home", home.to_str().unwrap(), "results", "hello.md"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    assert!(!err.contains("No such file"), "{err}");
    assert!(text.contains("hello.md"), "show named the task: {text}\n{err}");
    wait_until_or(Duration::from_secs(60), finished, || {
        format!("the hello task did not succeed: {text}\n{err}")
    });
}

#[cfg(unix)]
#[test]
fn a_task_whose_daemon_was_killed_shows_as_interrupted() {
    let home = TestHome::new();
    let mut daemon = home.spawn_daemon();
    home.wait_started(1);
    home.drop_task("long.yaml", "title: Killed one\nagent: command\ncommand: sleep 30\n");
    // Published as running (at most twice a second) before the kill.
    wait_until(
        Duration::from_secs(60),
        "the task running in the published state",
        || {
            home.cli_json(&["status"])["running"]
                .as_array()
                .is_some_and(|r| r.len() == 1)
        },
    );
    kill9(daemon.id());
    let _ = daemon.wait();
    wait_until(Duration::from_secs(30), "the task's lock to be free", || {
        home.cli_json(&["status"])["interrupted"]
            .as_array()
            .is_some_and(|r| r.len() == 1)
    });
    let list = stdout(&home.cli(&["list"]));
    assert!(
        list.lines()
            .any(|l| l.starts_with("interrupted") && l.contains("Killed one")),
        "{list}"
    );
    // The next daemon runs it again, and it is no longer interrupted.
    let mut daemon = home.spawn_daemon();
    wait_until(Duration::from_secs(60), "the task taken over", || {
        home.cli_json(&["status"])["interrupted"]
            .as_array()
            .is_some_and(|r| r.is_empty())
    });
    sigterm(daemon.id());
    let _ = daemon.wait();
}

#[test]
fn tail_events_follows_a_queued_file_into_its_task_not_an_older_one_of_its_name() {
    let home = TestHome::new();
    home.drop_task("fix.yaml", "agent: command\ncommand: echo old\n");
    assert!(home.run_once().status.success());
    let old = home.result_of("fix.yaml")["id"].as_str().unwrap().to_string();
    home.drop_task("fix.yaml", "agent: command\ncommand: echo new\n");
    let mut follow = home
        .cmd()
        .args(["tail-events", "-f", "--json", "--task", "fix.yaml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = follow.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel::<serde_json::Value>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&l) {
                let _ = tx.send(v);
            }
        }
    });
    assert!(home.run_once().status.success());
    let mut seen = Vec::new();
    while let Ok(v) = lines.recv_timeout(Duration::from_secs(30)) {
        let done = v["event"] == "task_succeeded" && v["task_id"] != old.as_str();
        seen.push(v);
        if done {
            break;
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    let new_end = seen
        .iter()
        .find(|v| v["event"] == "task_succeeded" && v["task_id"] != old.as_str());
    assert!(new_end.is_some(), "the new task's end was followed: {seen:?}");
}
