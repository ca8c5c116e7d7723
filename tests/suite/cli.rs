//! The operator's CLI, end to end against a temp home and the fake agent.

use crate::common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

#[test]
fn submit_prints_the_id_at_once_and_the_daemon_keeps_it() {
    let home = TestHome::new();
    let out = home.cli(&[
        "submit",
        "Describe the project",
        "--title",
        "Describe",
        "--priority",
        "high",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    assert!(
        home.inbox().join(format!("{id}.json")).exists(),
        "written into the inbox, no daemon needed"
    );
    assert!(
        std::fs::read_dir(home.inbox())
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().ends_with(".tmp"))
    );
    assert!(home.run_once().status.success());
    let r = &home.results()[0];
    assert_eq!(r["id"], id.as_str());
    assert_eq!(r["title"], "Describe");

    let bad = home.cli(&["submit", "x", "--priority", "urgent"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("priority"), "{}", stderr(&bad));
    let outside = home.cli(&["submit", "x", "--workdir", "/"]);
    assert_eq!(outside.status.code(), Some(2));
    assert!(stderr(&outside).contains("allowed roots"));
    assert_eq!(
        std::fs::read_dir(home.inbox())
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_file())
            .count(),
        0,
        "nothing written for a bad submission"
    );
}

#[test]
fn submit_wait_follows_the_task_and_exits_with_its_outcome() {
    let home = TestHome::new();
    let mut daemon = home.spawn_daemon();
    let ok = home.cli(&["submit", "@fake success answer=all_good sleep=300", "--wait"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("all good"));
    assert!(stderr(&ok).contains("succeeded"));
    let failed = home.cli(&["submit", "@fake auth", "--wait", "--json"]);
    assert_eq!(failed.status.code(), Some(1));
    let r: Value = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["kind"], "auth");
    let piped = home.cli(&["submit", "-", "--agent", "command", "--wait"]);
    assert_eq!(piped.status.code(), Some(2), "`-` with no stdin is an empty prompt");
    daemon.kill().unwrap();
    let _ = daemon.wait();
}

#[cfg(unix)]
#[test]
fn status_shows_the_daemon_running_tasks_queue_and_counts() {
    let home = TestHome::with_config(&config_with("max_concurrent: 1", ""));
    home.drop_task("done.txt", "quick one");
    assert!(home.run_once().status.success());
    let mut daemon = home.spawn_daemon();
    home.drop_task("slow.md", "---\ntitle: Slow one\n---\n@fake success sleep=4000\n");
    wait_until(Duration::from_secs(10), "the slow task to start", || {
        !home
            .events_of("attempt_started")
            .iter()
            .all(|e| e["task_id"] == home.results()[0]["id"])
    });
    home.drop_task("later-low.md", "---\npriority: low\n---\nlater");
    home.drop_task("later-high.md", "---\npriority: high\n---\nsooner");
    // The daemon publishes its queue and running tasks (at most twice a
    // second); status shows them.
    wait_until(Duration::from_secs(10), "both files in the published queue", || {
        let s = home.cli_json(&["status"]);
        s["queued_total"] == 2
            && s["queued"].as_array().is_some_and(|q| q.len() == 2)
            && s["running"].as_array().is_some_and(|r| r.len() == 1)
    });
    let s = home.cli_json(&["status"]);
    assert_eq!(s["daemons"][0]["pid"], daemon.id());
    assert_eq!(s["daemons"][0]["max_concurrent"], 1);
    assert_eq!(s["running"].as_array().unwrap().len(), 1);
    assert_eq!(s["running"][0]["title"], "Slow one");
    assert_eq!(s["running"][0]["attempt"], 1);
    assert!(s["running"][0]["elapsed_ms"].as_u64().unwrap() > 0);
    let queued: Vec<&str> = s["queued"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["file"].as_str().unwrap())
        .collect();
    assert_eq!(queued, ["later-high.md", "later-low.md"], "in run order");
    assert_eq!(s["finished"]["total"], 1);
    assert_eq!(s["finished"]["by_status"]["succeeded"], 1);
    let human = stdout(&home.cli(&["status"]));
    assert!(
        human.contains("daemon: running") && human.contains("Slow one") && human.contains("later-high.md"),
        "{human}"
    );
    sigterm(daemon.id());
    let _ = daemon.wait();
    let s = home.cli_json(&["status"]);
    assert!(s["daemons"].as_array().unwrap().is_empty());
    assert!(stdout(&home.cli(&["status"])).contains("not running"));
    // Without a daemon, status reads the inbox itself, in the same order.
    assert_eq!(s["queued_total"], 2);
    assert_eq!(s["queued"][0]["file"], "later-high.md");
    assert_eq!(s["queued"][1]["file"], "later-low.md");
}

#[test]
fn list_show_results_logs_and_id_resolution() {
    let home = TestHome::new();
    // first.md arrived first (the queue orders by modification time).
    home.drop_task_aged("first.md", "@fake replay=tools\n", Duration::from_secs(2));
    home.drop_task("second.yaml", "agent: command\ncommand: echo second; exit 4\n");
    home.drop_task("quiet.yaml", "agent: command\ncommand: echo warned >&2\n");
    home.run_once();
    // Output files exist only for streams the agent wrote to; `logs` says so.
    let quiet = home.result_of("quiet.yaml");
    let quiet_id = quiet["id"].as_str().unwrap();
    let err = home.cli(&["logs", quiet_id, "--stderr"]);
    assert_eq!(stdout(&err), "warned\n");
    assert!(!home.task_dir(quiet_id).join("attempt-1.out").exists());
    let out = home.cli(&["logs", quiet_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("wrote nothing to stdout"), "{}", stderr(&out));
    let list = home.cli_json(&["list"]);
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(
        rows[0]["id"].as_str().unwrap() > rows[1]["id"].as_str().unwrap(),
        "newest first"
    );
    let failed = home.cli_json(&["list", "--status", "failed"]);
    assert_eq!(failed.as_array().unwrap().len(), 1);
    assert_eq!(failed[0]["error"], "command_failed");
    assert_eq!(home.cli_json(&["list", "--limit", "1"]).as_array().unwrap().len(), 1);

    let first = home.result_of("first.md");
    let id = first["id"].as_str().unwrap();
    let shown = home.cli_json(&["show", &id[..12]]);
    assert_eq!(shown, first, "show --json is the result record");
    assert_eq!(home.cli_json(&["show", "first.md"])["id"], id, "by original file name");
    let results = home.cli(&["results", id]);
    assert!(results.status.success());
    assert!(stdout(&results).starts_with("The tool result confirms"));
    assert_eq!(
        home.cli(&["results", "second.yaml"]).status.code(),
        Some(1),
        "a failed task"
    );

    let logs = stdout(&home.cli(&["logs", id]));
    assert!(logs.contains("● session d0becfe3"), "{logs}");
    assert!(logs.contains("→ Write(/scrubbed/hello.txt)"), "{logs}");
    assert!(logs.contains("■ success, 2 turns, $0.0542"), "{logs}");
    let raw = stdout(&home.cli(&["logs", id, "--raw"]));
    assert!(raw.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()));

    let ambiguous = home.cli(&["show", "0"]);
    assert_eq!(ambiguous.status.code(), Some(2));
    assert!(stderr(&ambiguous).contains("matches 3 tasks"), "{}", stderr(&ambiguous));
    let unknown = home.cli(&["show", "zzz"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("no task matches"));
}

#[cfg(unix)]
#[test]
fn cancel_stops_a_hung_agent_tree_after_its_grace_and_dequeues_files() {
    let pids = tempfile::NamedTempFile::new().unwrap();
    let home = TestHome::with_config(&config_with(
        "max_concurrent: 1",
        &format!("    env:\n      FAKE_AGENT_PIDS: {}", pids.path().display()),
    ));
    let mut daemon = home.spawn_daemon();
    home.drop_task("hung.md", "@fake hang\n");
    wait_until(Duration::from_secs(10), "the agent to start", || {
        read_pids(pids.path()).len() >= 2
    });
    home.drop_task("waiting.md", "never runs");
    wait_until(Duration::from_secs(10), "the file to be queued", || {
        home.events_of("task_queued").iter().any(|e| e["file"] == "waiting.md")
    });
    let dequeued = home.cli(&["cancel", "waiting.md"]);
    assert!(dequeued.status.success(), "{}", stderr(&dequeued));
    assert!(home.inbox().join("cancelled/waiting.md").exists());

    let started = Instant::now();
    let out = home.cli(&["cancel", "hung.md"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The agent ignores SIGTERM: kill_grace (500 ms) then SIGKILL; `cancel`
    // returns once the task has ended. Bounded loosely: a loaded machine is slow.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    for pid in read_pids(pids.path()) {
        assert!(!alive(pid), "pid {pid} survived the cancel");
    }
    let r = home.result_of("hung.md");
    assert_eq!(r["status"], "cancelled");
    assert_eq!(r["error"]["kind"], "cancelled");
    assert_eq!(home.events_of("task_cancelled").len(), 1);
    assert_eq!(
        home.cli(&["cancel", "hung.md"]).status.code(),
        Some(1),
        "already finished"
    );
    sigterm(daemon.id());
    let _ = daemon.wait();
    assert!(home.results().iter().all(|r| r["source_file"] != "waiting.md"));
}

#[test]
fn retry_creates_a_new_task_that_points_back() {
    let home = TestHome::new();
    home.drop_task("flaky.md", "---\nretries: 0\n---\n@fake overloaded fail_times=1\n");
    home.run_once();
    let first = home.result_of("flaky.md");
    assert_eq!(first["status"], "failed");
    let id = first["id"].as_str().unwrap();
    let out = home.cli_json(&["retry", id]);
    let new_id = out["id"].as_str().unwrap().to_string();
    assert_eq!(out["parent_task_id"], id);
    home.run_once();
    let second: Value = home.results().into_iter().find(|r| r["id"] == new_id.as_str()).unwrap();
    assert_eq!(second["parent_task_id"], id);
    // The retry is the same task again, with the same limits: `retries: 0` holds
    // (the fake fails the first attempt of every task it runs).
    assert_eq!(second["status"], "failed");
    assert_eq!(second["attempts"].as_array().unwrap().len(), 1, "{second}");
    assert_eq!(second["title"], first["title"]);
    assert!(home.cli(&["retry", "nope"]).status.code() == Some(2));
}

#[test]
fn tail_events_reads_the_end_filters_and_follows_across_rotation() {
    let home = TestHome::with_config(&config_with("events:\n  rotate_bytes: 4000\n  keep: 50", ""));
    for i in 0..3 {
        home.drop_task(&format!("e{i}.txt"), format!("task {i}"));
    }
    home.run_once();
    let out = home.cli(&["tail-events", "-n", "3", "--json"]);
    let lines: Vec<Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["event"], "daemon_stopped");
    let failed = stdout(&home.cli(&["tail-events", "-n", "100", "--event", "task_succeeded", "--json"]));
    assert_eq!(failed.lines().count(), 3);
    let human = stdout(&home.cli(&["tail-events", "-n", "1"]));
    assert!(
        human.contains("daemon_stopped") && human.contains("reason=drained"),
        "{human}"
    );

    // Following from the last event: once it prints that one, it follows.
    let follower = home.follow_events(1);
    let last = follower.next(Duration::from_secs(20)).expect("the last event");
    assert_eq!(last["event"], "daemon_stopped");
    for i in 0..12 {
        home.drop_task(&format!("f{i}.txt"), format!("more {i}"));
    }
    home.run_once();
    let mut seen = follower.until(Duration::from_secs(30), |seen| {
        seen.iter().any(|e| e["event"] == "daemon_stopped")
    });
    seen.extend(follower.stop());
    let rotated = std::fs::read_dir(home.path.join("logs"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("events-"))
        .count();
    assert!(rotated >= 3, "the log rotated while followed ({rotated} files)");
    let succeeded = seen.iter().filter(|e| e["event"] == "task_succeeded").count();
    assert_eq!(succeeded, 12, "every event seen across {rotated} rotations");
    assert_eq!(seen.iter().filter(|e| e["event"] == "daemon_started").count(), 1);
}

#[test]
fn stats_counts_rates_durations_and_cost() {
    let home = TestHome::new();
    home.drop_task("a.md", "one");
    home.drop_task("b.md", "two");
    home.drop_task("c.md", "---\nretries: 1\n---\n@fake overloaded");
    home.drop_task("d.yaml", "agent: command\ncommand: echo d\n");
    home.run_once();
    let s = home.cli_json(&["stats"]);
    assert_eq!(s["tasks"], 4);
    assert_eq!(s["by_status"]["succeeded"], 3);
    assert_eq!(s["by_status"]["failed"], 1);
    assert_eq!(s["by_agent"]["claude"], 3);
    assert_eq!(s["by_agent"]["command"], 1);
    assert_eq!(s["by_error"]["overloaded"], 1);
    assert_eq!(s["success_rate"], 0.75);
    assert_eq!(s["attempts"], 5);
    assert_eq!(s["retries"], 1);
    assert!((s["cost_usd"]["total"].as_f64().unwrap() - 0.0246).abs() < 1e-9);
    assert!(s["duration_ms"]["p95"].as_u64().unwrap() >= s["duration_ms"]["p50"].as_u64().unwrap());
    assert_eq!(home.cli_json(&["stats", "--since", "1h"])["tasks"], 4);
}

#[test]
fn doctor_passes_on_a_good_home_and_names_the_fix_on_a_bad_one() {
    let home = TestHome::new();
    let out = home.cli(&["doctor", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["ok"], true);
    let claude = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "agent claude")
        .unwrap();
    assert!(
        claude["detail"].as_str().unwrap().contains("2.1.220"),
        "version asked with --version: {claude}"
    );

    let bad = TestHome::with_config(&base_config().replace(fake_agent(), "/no/such/claude"));
    let out = bad.cli(&["doctor"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("FAIL") && text.contains("agents.claude.command"),
        "{text}"
    );

    // Cline as the default agent, with a command that does not exist: a failing line.
    let cline = TestHome::with_config(&format!(
        "{}  cline:\n    command: /no/such/cline\n",
        config_with("default_agent: cline", "")
    ));
    let out = cline.cli(&["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let line = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "agent cline")
        .cloned();
    let line = line.unwrap_or_else(|| panic!("no line for cline: {v}"));
    assert_eq!(line["ok"], false, "{line}");
    assert!(
        line["fix"].as_str().unwrap_or("").contains("agents.cline.command"),
        "{line}"
    );

    // Missing agents nothing uses are warnings; one a queued task or a role
    // names fails.
    let level = |v: &Value, name: &str| {
        let c = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap();
        (
            c["ok"].as_bool().unwrap(),
            c["level"].as_str().unwrap_or("").to_string(),
        )
    };
    let yaml = config_with("", "").replace("agents:\n", "roles:\n  look:\n    agent: [codex, opencode]\nagents:\n");
    let home = TestHome::with_config(&yaml);
    let std::process::Output { stdout: quiet, .. } = home.cli(&["doctor", "--json"]);
    let quiet: Value = serde_json::from_slice(&quiet).unwrap();
    assert_eq!(level(&quiet, "agent gemini").1, "warn", "{quiet}");
    assert_eq!(level(&quiet, "agent opencode").1, "error", "a role names it: {quiet}");
    std::fs::create_dir_all(home.path.join("inbox")).unwrap();
    std::fs::write(home.path.join("inbox/g.md"), "---\nagent: gemini\n---\nhi\n").unwrap();
    let v = home.cli_json(&["doctor"]);
    assert_eq!(level(&v, "agent gemini").1, "error", "a queued task names it: {v}");
}

#[test]
fn plan_config_create_sample_and_completions() {
    let home = TestHome::with_config(&config_with("max_concurrent: 3", ""));
    let task = home.path.join("draft.md");
    std::fs::write(&task, "---\nmax_turns: 4\nallowed_tools: [Read, Bash]\n---\nCheck it").unwrap();
    let p = home.cli_json(&["plan", task.to_str().unwrap()]);
    assert_eq!(p["ok"], true);
    assert_eq!(p["plan"]["program"], fake_agent());
    assert_eq!(p["plan"]["allowed_tools"], serde_json::json!(["Read"]));
    assert!(p["warnings"][0].as_str().unwrap().contains("Bash"));
    assert!(
        home.results().is_empty() && task.exists(),
        "plan runs nothing and moves nothing"
    );
    let human = stdout(&home.cli(&["plan", task.to_str().unwrap()]));
    assert!(
        human.contains("--max-turns 4") && human.contains("--allowedTools Read"),
        "{human}"
    );
    std::fs::write(&task, "---\nworkdir: /\n---\nx").unwrap();
    let rejected = home.cli(&["plan", task.to_str().unwrap()]);
    assert_eq!(rejected.status.code(), Some(1));
    assert!(stdout(&rejected).contains("workdir_outside_roots"));

    let mut c = home.cmd();
    c.args(["config", "--json", "--set", "retry.max_attempts=7"])
        .env("ORCHESTRATOR_DEBOUNCE_MS", "75");
    let cfg: Value = serde_json::from_slice(&c.output().unwrap().stdout).unwrap();
    let origin = |k: &str| {
        cfg["values"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["key"] == k)
            .unwrap()["origin"]
            .clone()
    };
    assert_eq!(origin("max_concurrent"), "file");
    assert_eq!(origin("debounce_ms"), "env");
    assert_eq!(origin("retry.max_attempts"), "flag");
    assert_eq!(origin("kill_grace"), "file");
    assert_eq!(origin("events.keep"), "default");
    assert_eq!(cfg["config"]["retry"]["max_attempts"], 7);

    let sample = home.cli(&["create-sample"]);
    assert!(sample.status.success());
    let sample_path = home.path.join(stdout(&sample).trim());
    assert_eq!(
        home.cli_json(&["plan", sample_path.to_str().unwrap()])["ok"],
        true,
        "the sample is a valid task"
    );
    // Every agent has a sample, and its plan names the exact command line.
    for (agent, arg) in [
        ("claude", "--output-format"),
        ("cline", "--json"),
        ("codex", "--sandbox=read-only"),
        ("gemini", "--policy=<task folder>/gemini-policy.toml"),
        ("opencode", "--format=json"),
        ("command", "-c"),
    ] {
        let out = home.cli(&["create-sample", "--agent", agent]);
        assert!(out.status.success(), "{agent}: {}", stderr(&out));
        let path = home.path.join(stdout(&out).trim());
        let plan = home.cli_json(&["plan", path.to_str().unwrap()]);
        assert_eq!(plan["ok"], true, "{agent}: {plan}");
        assert!(plan.to_string().contains(arg), "{agent}: {plan}");
    }
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = home.cli(&["completions", shell]);
        assert!(out.status.success() && stdout(&out).contains("tail-events"), "{shell}");
    }
}

#[test]
fn every_verb_has_help_with_an_example() {
    let home = TestHome::new();
    for verb in VERBS
        .iter()
        .filter(|v| !["run", "resume", "reply", "apply", "clean", "reindex"].contains(v))
    {
        let out = home.cli(&[verb, "--help"]);
        assert!(out.status.success(), "{verb}");
        assert!(stdout(&out).contains("orchestrator "), "{verb} --help shows an example");
    }
    assert_eq!(home.cli(&["no-such-verb"]).status.code(), Some(2));
}

#[test]
fn clean_removes_old_finished_tasks_and_keeps_the_index_consistent() {
    let home = TestHome::new();
    for i in 0..5 {
        home.drop_task(&format!("ok{i}.txt"), format!("task {i}"));
    }
    home.drop_task("bad.md", "---\ntitel: x\n---\nx");
    home.drop_task("fails.yaml", "agent: command\ncommand: exit 3\n");
    home.run_once();
    std::fs::write(home.path.join("results/.tmpstray"), b"x").unwrap();
    let stray = std::fs::File::options()
        .write(true)
        .open(home.path.join("results/.tmpstray"))
        .unwrap();
    stray
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    assert_eq!(home.results().len(), 6);

    let dry = home.cli_json(&["clean", "--older-than", "0s", "--dry-run"]);
    assert_eq!(dry["tasks"].as_array().unwrap().len(), 6);
    assert_eq!(home.results().len(), 6, "dry run removes nothing");

    let failed_only = home.cli_json(&["clean", "--older-than", "0s", "--status", "failed"]);
    assert_eq!(failed_only["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(home.results().len(), 5);
    assert!(home.results().iter().all(|r| r["status"] == "succeeded"));

    let kept = home.cli_json(&["clean", "--older-than", "0s", "--keep", "2"]);
    assert_eq!(kept["tasks"].as_array().unwrap().len(), 3);
    let left = home.results();
    assert_eq!(left.len(), 2);
    let index = home.index();
    let ids: Vec<&String> = index["tasks"].as_object().unwrap().keys().collect();
    assert_eq!(ids.len(), 2, "index rows of removed tasks are gone");
    assert!(
        left.iter()
            .all(|r| ids.contains(&&r["id"].as_str().unwrap().to_string()))
    );
    assert_eq!(home.cli_json(&["status"])["finished"]["total"], 2, "counts follow");
    let summaries = std::fs::read_dir(home.path.join("summaries")).unwrap().count();
    assert_eq!(summaries, 2);
    assert!(
        !home.inbox().join("rejected/bad.md").exists(),
        "old rejected files go too"
    );
    assert!(
        !home.path.join("results/.tmpstray").exists(),
        "stray temporary files go"
    );
    assert_eq!(home.cli(&["clean", "--status", "running"]).status.code(), Some(2));
}

#[test]
fn status_shows_an_agent_paused_by_a_rate_limit() {
    let home = TestHome::new();
    let mut daemon = home.spawn_daemon();
    home.drop_task("limited.md", "@fake rate_limit resets_in=4 fail_times=1\n");
    wait_until(Duration::from_secs(10), "the pause", || {
        !home.events_of("agent_paused").is_empty()
    });
    let mut paused = Value::Null;
    wait_until(Duration::from_secs(3), "status to show the pause", || {
        paused = home.cli_json(&["status"])["paused"].clone();
        paused.as_array().is_some_and(|p| !p.is_empty())
    });
    assert_eq!(paused[0]["agent"], "claude");
    assert_eq!(paused[0]["until"], home.events_of("agent_paused")[0]["until"]);
    let human = stdout(&home.cli(&["status"]));
    assert!(human.contains("paused: claude until"), "{human}");
    wait_until(Duration::from_secs(20), "the task to finish after the pause", || {
        !home.results().is_empty()
    });
    assert_eq!(home.result_of("limited.md")["status"], "succeeded");
    daemon.kill().unwrap();
    let _ = daemon.wait();
}

#[test]
fn logs_follow_prints_as_the_agent_writes_and_ends_with_the_task() {
    let home = TestHome::new();
    let mut daemon = home.spawn_daemon();
    let id = stdout(&home.cli(&["submit", "@fake success sleep=1500\nFollow me"]))
        .trim()
        .to_string();
    wait_until(Duration::from_secs(10), "the task to start", || {
        home.task_dir(&id).join("attempt-1.out").exists()
    });
    let started = Instant::now();
    let out = home.cli(&["logs", &id, "--follow"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        started.elapsed() > Duration::from_millis(500),
        "it waited for the agent"
    );
    let text = stdout(&out);
    assert!(
        text.contains("● session")
            && text.contains("→ Read(README.md)")
            && text.contains("Done: Follow me")
            && text.contains("■ success"),
        "{text}"
    );
    daemon.kill().unwrap();
    let _ = daemon.wait();
}

#[test]
fn config_hides_agent_secrets_and_the_daemon_writes_no_colour_codes_to_a_pipe() {
    let home = TestHome::with_config(&config_with(
        "",
        "    env:\n      ANTHROPIC_API_KEY: sk-ant-secret-123\n",
    ));
    for args in [&["config"][..], &["config", "--json"][..]] {
        let out = home.cli(args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(!text.contains("sk-ant-secret-123"), "{text}");
        assert!(text.contains("ANTHROPIC_API_KEY"), "the name stays: {text}");
    }
    home.drop_task("a.md", "@fake success\nhi\n");
    let mut c = home.cmd();
    // Not NO_COLOR: the pipe alone must turn colour off.
    c.env_remove("NO_COLOR")
        .env("ORCHESTRATOR_LOG", "info")
        .args(["run", "--once"]);
    let out = wait_output(
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_secs(60),
    );
    let err = stderr(&out);
    assert!(!err.is_empty(), "the daemon logged something");
    assert!(!err.contains('\x1b'), "{err:?}");
}

#[test]
fn an_agents_terminal_escapes_are_shown_escaped_but_kept_as_data() {
    let home = TestHome::new();
    home.drop_task(
        "esc.yaml",
        "agent: command\ncommand: \"printf 'hello \\\\033]0;pwned\\\\007\\\\033[2J world'\"\n",
    );
    home.run_once();
    let r = home.result_of("esc.yaml");
    let id = r["id"].as_str().unwrap();
    assert!(
        r["output"].as_str().unwrap().contains('\u{1b}'),
        "the data is kept: {r}"
    );
    let show = stdout(&home.cli(&["show", id]));
    assert!(!show.contains('\u{1b}') && show.contains("\\u{1b}]0;pwned"), "{show:?}");
    let summary = std::fs::read_to_string(home.path.join("summaries").join(format!("{id}.md"))).unwrap();
    assert!(!summary.contains('\u{1b}') && !summary.contains('\u{7}'), "{summary:?}");
    // Piped, `results` hands the bytes over as they are (`--json` too).
    assert!(stdout(&home.cli(&["results", id])).contains('\u{1b}'));
}

#[test]
fn submit_from_stdin_is_bounded_and_says_what_is_wrong() {
    use std::io::Write;
    let home = TestHome::with_config(&config_with("max_task_bytes: 4096", ""));
    let submit = |input: &[u8]| {
        let mut c = home.cmd();
        c.args(["submit", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        // The CLI may stop reading early: a broken pipe here is expected.
        let _ = child.stdin.take().unwrap().write_all(input);
        wait_output(child, Duration::from_secs(30))
    };
    let big = submit(&vec![b'a'; 10 << 20]);
    assert_eq!(big.status.code(), Some(2), "{}", stderr(&big));
    assert!(stderr(&big).contains("max_task_bytes"), "{}", stderr(&big));
    let bad = submit(b"caf\xe9\n");
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("not valid UTF-8"), "{}", stderr(&bad));
    let nul = submit(b"a\0b\n");
    assert_eq!(nul.status.code(), Some(2), "{}", stderr(&nul));
    assert!(
        std::fs::read_dir(home.inbox())
            .unwrap()
            .flatten()
            .all(|e| e.path().is_dir()),
        "nothing was submitted"
    );
}

#[cfg(unix)]
#[test]
fn doctor_names_files_stuck_in_the_inbox() {
    let home = TestHome::new();
    std::fs::write(home.inbox().join("old.md"), "hello\n").unwrap();
    let touched = std::process::Command::new("touch")
        .args(["-d", "2 hours ago"])
        .arg(home.inbox().join("old.md"))
        .status()
        .unwrap();
    assert!(touched.success());
    let v = home.cli_json(&["doctor"]);
    let inbox = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "inbox")
        .cloned()
        .unwrap();
    assert_eq!(inbox["ok"], false, "{inbox}");
    assert!(inbox["detail"].as_str().unwrap().contains("old.md"), "{inbox}");
    assert!(inbox["fix"].as_str().unwrap().contains("claim_failed"), "{inbox}");
}
