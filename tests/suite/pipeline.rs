//! End to end: task files in, results out, through the built binary.

use crate::common::*;
use std::time::Duration;

#[test]
fn every_task_form_runs_and_writes_result_summary_index_and_events() {
    let home = TestHome::new();
    home.drop_task(
        "front.md",
        "---\ntitle: With front matter\npriority: high\nmax_turns: 5\n---\nSay hello\n",
    );
    home.drop_task("plain.markdown", "# Plain markdown title\n\nBody text\n");
    home.drop_task("note.txt", "A plain text prompt\n");
    home.drop_task("task.yaml", "title: From YAML\nprompt: do the yaml thing\n");
    home.drop_task("task2.yml", "agent: command\ncommand: echo yml-ran\n");
    home.drop_task(
        "task.json",
        r#"{"title": "From JSON", "prompt": "@fake success answer=json_answer", "timeout": "1m"}"#,
    );
    let out = home.run_once();
    assert!(out.status.success(), "{}", stderr(&out));

    let results = home.results();
    assert_eq!(results.len(), 6);
    for r in &results {
        assert_eq!(r["status"], "succeeded", "{r}");
        assert_eq!(r["schema_version"], 1);
        for key in [
            "id",
            "title",
            "source_file",
            "agent",
            "workdir",
            "started_at",
            "finished_at",
            "worker",
        ] {
            assert!(r[key].as_str().is_some_and(|s| !s.is_empty()), "{key} in {r}");
        }
        assert!(r["error"].is_null());
        let id = r["id"].as_str().unwrap();
        let dir = home.task_dir(id);
        for f in ["plan.json", "progress.json", "attempt-1.out"] {
            assert!(dir.join(f).exists(), "{f} for {id}");
        }
        // Output files are created at the agent's first byte: these agents wrote nothing to stderr.
        assert!(!dir.join("attempt-1.err").exists(), "an empty stderr leaves no file");
        assert!(
            std::fs::read_dir(&dir)
                .unwrap()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("task."))
        );
        let summary = std::fs::read_to_string(home.path.join("summaries").join(format!("{id}.md"))).unwrap();
        assert!(summary.contains(r["title"].as_str().unwrap()) && summary.contains("succeeded"));
        let row = &home.index()["tasks"][id];
        assert_eq!(row["status"], "succeeded");
        assert_eq!(row["result"], format!("results/{id}/result.json"));
    }
    let front = home.result_of("front.md");
    assert_eq!(front["title"], "With front matter");
    assert_eq!(front["output"], "Done: Say hello");
    assert_eq!(front["turns"], 2);
    assert_eq!(front["tool_calls"], 1);
    assert_eq!(front["cost_usd"], 0.0123);
    assert!(front["session_id"].as_str().unwrap().len() > 10);
    assert_eq!(home.result_of("plain.markdown")["title"], "Plain markdown title");
    assert_eq!(home.result_of("task2.yml")["output"], "yml-ran");
    assert_eq!(home.result_of("task2.yml")["agent"], "command");
    assert_eq!(home.result_of("task.json")["output"], "json answer");
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.task_dir(front["id"].as_str().unwrap()).join("plan.json")).unwrap())
            .unwrap();
    assert!(
        plan["args"]
            .as_array()
            .unwrap()
            .windows(2)
            .any(|w| w[0] == "--max-turns" && w[1] == "5")
    );

    for kind in ["daemon_started", "daemon_stopped"] {
        assert_eq!(home.events_of(kind).len(), 1, "{kind}");
    }
    for kind in [
        "task_queued",
        "task_started",
        "attempt_started",
        "attempt_finished",
        "task_succeeded",
    ] {
        assert_eq!(home.events_of(kind).len(), 6, "{kind}");
    }
    // Each task's story, in order (some lines are held back and written with
    // the next one: the order must survive that).
    let lifecycle = ["task_started", "attempt_started", "attempt_finished", "task_succeeded"];
    let mut stories: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for e in home.events() {
        let kind = e["event"].as_str().unwrap();
        if let Some(id) = e["task_id"].as_str()
            && lifecycle.contains(&kind)
        {
            stories.entry(id.into()).or_default().push(kind.into());
        }
    }
    assert_eq!(stories.len(), 6);
    for (id, story) in &stories {
        assert_eq!(story, &lifecycle, "{id}");
    }
    for e in home.events() {
        let ts = e["ts"].as_str().unwrap();
        assert!(
            ts.ends_with('Z') && ts.len() == 24,
            "RFC 3339 UTC with milliseconds: {ts}"
        );
    }
    assert!(
        std::fs::read_dir(home.inbox())
            .unwrap()
            .flatten()
            .all(|e| e.path().is_dir()),
        "inbox drained"
    );
}

#[test]
fn rejections_move_the_file_explain_why_and_the_daemon_goes_on() {
    let home = TestHome::new();
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path.join("proj")).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(outside.path(), home.path.join("escape-link")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("unknown.md", b"---\ntitel: typo\n---\nhi".to_vec(), "unknown_field"),
        ("badvalue.yaml", b"prompt: x\nmax_turns: -3\n".to_vec(), "invalid_value"),
        (
            "badtype.yaml",
            b"prompt: x\nmax_turns: many\n".to_vec(),
            "invalid_fields",
        ),
        (
            "baddur.md",
            b"---\ntimeout: whenever\n---\nhi".to_vec(),
            "invalid_fields",
        ),
        ("empty.txt", b"   \n".to_vec(), "empty_prompt"),
        ("latin1.txt", b"caf\xe9 au lait".to_vec(), "not_utf8"),
        ("huge.txt", vec![b'a'; 1024 * 1024 + 10], "too_large"),
        ("doc.pdf", b"%PDF-1.4".to_vec(), "unsupported_extension"),
        (
            "dotdot.md",
            b"---\nworkdir: ../../../../../../etc\n---\nhi".to_vec(),
            "workdir_outside_roots",
        ),
        (
            "absolute.md",
            format!("---\nworkdir: {}\n---\nhi", outside.path().display()).into_bytes(),
            "workdir_outside_roots",
        ),
        (
            "missing.md",
            b"---\nworkdir: no/such/dir\n---\nhi".to_vec(),
            "workdir_missing",
        ),
        ("broken.json", b"{\"prompt\": \"x\",".to_vec(), "invalid_fields"),
    ];
    for (name, bytes, _) in &cases {
        home.drop_task(name, bytes);
    }
    #[cfg(unix)]
    home.drop_task("symlinked.md", "---\nworkdir: escape-link\n---\nhi");
    home.drop_task("good.md", "---\nworkdir: proj\n---\nstill runs");
    let out = home.run_once();
    assert_eq!(
        out.status.code(),
        Some(1),
        "rejections make --once exit 1: {}",
        stderr(&out)
    );

    for (name, _, reason) in &cases {
        let err = home.rejected(name);
        assert_eq!(err["reason"], *reason, "{name}: {err}");
        assert_eq!(err["file"], *name);
        assert!(err["error"].as_str().unwrap().len() > 5);
        assert!(err["hint"].as_str().unwrap().len() > 5, "a hint for {name}");
        assert!(err["at"].as_str().unwrap().ends_with('Z'));
    }
    #[cfg(unix)]
    assert_eq!(home.rejected("symlinked.md")["reason"], "workdir_outside_roots");
    let rejected_events = home.events_of("task_rejected");
    assert_eq!(rejected_events.len(), cases.len() + usize::from(cfg!(unix)));
    let violations = home.events_of("security_violation");
    assert_eq!(violations.len(), 2 + usize::from(cfg!(unix)), "{violations:?}");
    assert!(violations.iter().any(|v| v["file"] == "dotdot.md"));
    let good = home.result_of("good.md");
    assert_eq!(good["status"], "succeeded");
    assert!(good["workdir"].as_str().unwrap().ends_with("proj"));
}

#[cfg(unix)]
#[test]
fn odd_inbox_entries_are_rejected_without_being_opened() {
    let home = TestHome::new();
    std::fs::create_dir(home.inbox().join("a-folder")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", home.inbox().join("link.txt")).unwrap();
    let fifo = home.inbox().join("pipe.txt");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    home.drop_task("ok.txt", "fine");
    let out = home.run_once_within(Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(home.rejected("a-folder")["reason"], "directory");
    assert_eq!(home.rejected("link.txt")["reason"], "symlink");
    assert_eq!(home.rejected("pipe.txt")["reason"], "not_a_file");
    assert_eq!(home.result_of("ok.txt")["status"], "succeeded");
}
#[cfg(unix)]
use std::process::Command;

#[test]
fn temporary_and_hidden_names_wait_until_renamed() {
    let home = TestHome::new();
    for name in [
        "draft.md.tmp",
        ".hidden.md",
        "~lock.md",
        "x.part",
        "y.crdownload",
        "notes.md~",
    ] {
        std::fs::write(home.inbox().join(name), "not yet").unwrap();
    }
    let out = home.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(home.results().is_empty());
    assert!(home.events_of("task_rejected").is_empty());
    assert!(home.inbox().join("draft.md.tmp").exists());
}

#[test]
fn a_file_written_slowly_in_pieces_is_read_only_when_whole() {
    // Pauses of 150 ms against a debounce of 2 s: no loaded machine stretches one
    // pause past it (and where the OS reports closes, the file waits for its close).
    let home = TestHome::with_config(&config_with("debounce_ms: 2000", ""));
    let mut daemon = home.spawn_daemon();
    home.wait_started(1);
    let path = home.inbox().join("slow.md");
    let pieces = [
        "---\n",
        "title: Written slowly\n",
        "priority: high\n",
        "---\n",
        "The prompt arrives last.\n",
    ];
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&path).unwrap();
        for p in pieces {
            f.write_all(p.as_bytes()).unwrap();
            f.flush().unwrap();
            std::thread::sleep(Duration::from_millis(150));
        }
    }
    wait_until(Duration::from_secs(20), "the slow file's result", || {
        !home.results().is_empty()
    });
    daemon.kill().unwrap();
    let _ = daemon.wait();
    let r = home.result_of("slow.md");
    assert_eq!(r["status"], "succeeded");
    assert_eq!(r["title"], "Written slowly");
    assert_eq!(r["output"], "Done: The prompt arrives last.");
    assert!(home.events_of("task_rejected").is_empty());
}

#[test]
fn queue_order_is_priority_then_arrival() {
    let home = TestHome::new();
    // Arrival is the modification time: one second apart, the oldest first; all
    // older than the debounce, so settled when the daemon looks.
    let mut age = 10;
    let mut drop = |name: &str, prio: &str| {
        home.drop_task_aged(
            name,
            format!("---\npriority: {prio}\nagent: command\ncommand: echo {name}\n---\n"),
            Duration::from_secs(age),
        );
        age -= 1;
    };
    drop("low.md", "low");
    drop("normal-1.md", "normal");
    drop("high.md", "high");
    drop("normal-2.md", "normal");
    drop("urgent.md", "500");
    let out = home
        .cmd()
        .args(["run", "--once", "--max-concurrent", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let started: Vec<String> = home
        .events_of("task_started")
        .iter()
        .map(|e| e["file"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        started,
        ["urgent.md", "high.md", "normal-1.md", "normal-2.md", "low.md"]
    );
}

/// A command with nothing to read gets the end of its input at once from
/// `/dev/null` (no pipe to make and watch); one with a prompt reads it on a pipe.
#[cfg(unix)]
#[test]
fn stdin_is_a_pipe_only_when_there_is_something_to_say() {
    let home = TestHome::new();
    home.drop_task(
        "quiet.yaml",
        "agent: command\ncommand: test -c /dev/stdin && test -z \"$(cat)\"\n",
    );
    home.drop_task(
        "told.md",
        "---\nagent: command\ncommand: test -p /dev/stdin && cat\n---\nthe prompt itself\n",
    );
    let out = home.run_once();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(home.result_of("quiet.yaml")["status"], "succeeded");
    let told = home.result_of("told.md");
    assert_eq!(told["status"], "succeeded");
    assert!(told["output"].as_str().unwrap().contains("the prompt itself"), "{told}");
}

#[test]
fn a_failed_task_makes_run_once_exit_1_with_error_and_suggestion() {
    let home = TestHome::new();
    home.drop_task("fails.yaml", "agent: command\ncommand: echo oops >&2; exit 3\n");
    let out = home.run_once();
    assert_eq!(out.status.code(), Some(1));
    let r = home.result_of("fails.yaml");
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["kind"], "command_failed");
    assert!(r["error"]["message"].as_str().unwrap().contains("exit code 3"));
    assert!(r["error"]["message"].as_str().unwrap().contains("oops"));
    assert!(!r["error"]["suggestion"].as_str().unwrap().is_empty());
    assert_eq!(r["attempts"].as_array().unwrap().len(), 1, "not retried: fatal");
    let summary = std::fs::read_to_string(
        home.path
            .join("summaries")
            .join(format!("{}.md", r["id"].as_str().unwrap())),
    )
    .unwrap();
    assert!(summary.contains("command_failed") && summary.contains("What to do"));
    assert_eq!(home.events_of("task_failed").len(), 1);
}

#[test]
fn a_burst_of_500_tasks_each_finishes_exactly_once() {
    let home = TestHome::with_config(&(base_config() + "max_concurrent: 4\n"));
    for i in 0..500 {
        home.drop_task(&format!("t{i:03}.yaml"), format!("agent: command\ncommand: echo {i}\n"));
    }
    let out = home.run_once_within(Duration::from_secs(120));
    assert!(out.status.success(), "{}", stderr(&out));
    let results = home.results();
    assert_eq!(results.len(), 500);
    let mut sources: Vec<String> = results
        .iter()
        .map(|r| r["source_file"].as_str().unwrap().to_string())
        .collect();
    sources.sort();
    sources.dedup();
    assert_eq!(sources.len(), 500);
    for r in &results {
        let n: usize = r["source_file"].as_str().unwrap()[1..4].parse().unwrap();
        assert_eq!(r["output"], n.to_string());
    }
    assert_eq!(home.index()["tasks"].as_object().unwrap().len(), 500);
    assert_eq!(home.events_of("task_succeeded").len(), 500);
    assert_eq!(home.events_of("task_started").len(), 500);
}

#[test]
fn a_corrupt_index_is_rebuilt_from_the_result_files() {
    let home = TestHome::new();
    home.drop_task("a.txt", "one");
    home.drop_task("b.txt", "two");
    assert!(home.run_once().status.success());
    std::fs::write(
        home.path.join("results/index.json"),
        b"{\"schema_version\":1,\"tasks\":{\"trunc",
    )
    .unwrap();
    home.drop_task("c.txt", "three");
    assert!(home.run_once().status.success());
    let index = home.index();
    assert_eq!(index["tasks"].as_object().unwrap().len(), 3, "{index}");
    std::fs::remove_file(home.path.join("results/index.json")).unwrap();
    let out = home.cmd().arg("reindex").output().unwrap();
    assert!(out.status.success());
    assert_eq!(home.index()["tasks"].as_object().unwrap().len(), 3);
}

#[test]
fn a_stem_that_is_a_well_formed_id_keeps_it() {
    let home = TestHome::new();
    let id = "01jd3k8q7x9v2m4n6p8r0t2w4y-from-submit";
    home.drop_task(&format!("{id}.md"), "hello");
    assert!(home.run_once().status.success());
    assert_eq!(home.results()[0]["id"], id);
}

#[cfg(unix)]
#[test]
fn a_world_writable_inbox_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let home = TestHome::new();
    std::fs::set_permissions(home.inbox(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = home.run_once();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("chmod o-w"), "{}", stderr(&out));
}

#[test]
fn a_bad_config_is_a_usage_error_that_names_the_key() {
    let home = TestHome::with_config("max_concurent: 3\n");
    let out = home.run_once();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("max_concurent"), "{}", stderr(&out));
}

#[test]
fn secrets_never_reach_events_or_summaries_but_the_agent_gets_its_environment() {
    let home = TestHome::with_config(
        &(base_config() + "  command:\n    env:\n      MY_SERVICE_TOKEN: tok_live_abcdef1234567890\n"),
    );
    home.drop_task(
        "leaky.yaml",
        "agent: command\ntitle: Leaks sk-ant-api03-TitleTitleTitleTitle00\ncommand: 'echo \"key=$ANTHROPIC_API_KEY tok=$MY_SERVICE_TOKEN\"; echo ghp_abcdefghijklmnopqrstuvwxyz0123456789 >&2; exit 1'\n",
    );
    let out = home
        .cmd()
        .args(["run", "--once"])
        .env("ANTHROPIC_API_KEY", "sk-ant-api03-DaemonEnvSecret0000000000")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let r = home.result_of("leaky.yaml");
    let raw = std::fs::read_to_string(home.task_dir(r["id"].as_str().unwrap()).join("attempt-1.out")).unwrap();
    assert!(
        raw.contains("sk-ant-api03-DaemonEnvSecret0000000000") && raw.contains("tok_live_abcdef1234567890"),
        "the agent got its environment: {raw}"
    );
    let events = std::fs::read_to_string(home.path.join("logs/events.ndjson")).unwrap();
    let summary = std::fs::read_to_string(
        home.path
            .join("summaries")
            .join(format!("{}.md", r["id"].as_str().unwrap())),
    )
    .unwrap();
    let diagnostics: String = std::fs::read_dir(home.path.join("logs"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("orchestrator"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    for secret in [
        "DaemonEnvSecret",
        "tok_live_abcdef1234567890",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "TitleTitleTitle",
    ] {
        assert!(!events.contains(secret), "{secret} leaked into events");
        assert!(!summary.contains(secret), "{secret} leaked into the summary");
        assert!(!diagnostics.contains(secret), "{secret} leaked into the diagnostic log");
    }
    assert!(events.contains("[REDACTED"), "redaction visibly happened");
    for line in events.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("events stay valid JSON");
    }
    // The records people and tools read: the error (quoting stderr), every attempt's
    // error, the title, the index row. Only `output`, the agent's own answer, is kept
    // as it wrote it.
    let mut record = r.clone();
    record.as_object_mut().unwrap().remove("output");
    let (record, index) = (record.to_string(), home.index().to_string());
    for secret in ["ghp_abcdefghijklmnopqrstuvwxyz0123456789", "TitleTitleTitle"] {
        assert!(!record.contains(secret), "{secret} leaked into result.json: {record}");
        assert!(!index.contains(secret), "{secret} leaked into index.json");
    }
}

#[test]
fn a_secret_quoted_in_a_rejection_is_redacted_everywhere_it_is_written() {
    let home = TestHome::new();
    // serde_json quotes the bad value in its message: `invalid type: string "sk-ant-...", expected i64`.
    home.drop_task(
        "bad.json",
        r#"{"prompt": "hi", "max_turns": "sk-ant-api03-QuotedQuotedQuotedQuoted"}"#,
    );
    let out = home
        .cmd()
        .args(["run", "--once"])
        .env("ORCHESTRATOR_LOG", "info")
        .output()
        .unwrap();
    let err = home.rejected("bad.json");
    assert_eq!(err["reason"], "invalid_fields");
    assert!(
        err["error"].as_str().unwrap().contains("[REDACTED]"),
        "the message quoted the value: {err}"
    );
    let written = format!(
        "{}{}{}",
        err,
        std::fs::read_to_string(home.path.join("logs/events.ndjson")).unwrap(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!written.contains("QuotedQuoted"), "{written}");
}

/// A writer that writes half a task, pauses with the file open (longer than the
/// debounce), then writes the rest: the task runs whole, never half.
#[cfg(target_os = "linux")]
#[test]
fn a_file_held_open_by_its_writer_is_read_only_once_closed() {
    use std::io::Write;
    let home = TestHome::new();
    let mut daemon = home.spawn_daemon();
    // Watching for sure once a first task has gone through.
    home.drop_task("probe.yaml", "agent: command\ncommand: \"true\"\n");
    wait_until(Duration::from_secs(30), "the daemon to watch", || {
        !home.results().is_empty()
    });
    let path = home.inbox().join("slow-writer.md");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(b"---\nagent: command\ncommand: echo FIRST").unwrap();
    f.flush().unwrap();
    // The writer's own pace: 20 debounces with the file open and half written.
    std::thread::sleep(Duration::from_millis(1000));
    f.write_all(b" SECOND\n---\n").unwrap();
    drop(f);
    wait_until(Duration::from_secs(30), "the task to finish", || {
        home.results().len() == 2
    });
    sigterm(daemon.id());
    let _ = daemon.wait();
    let r = home.result_of("slow-writer.md");
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["output"].as_str().unwrap().trim(), "FIRST SECOND", "{r}");
    assert!(!home.inbox().join("rejected").join("slow-writer.md").exists());
}

/// A writer that renames the task in whole but keeps writing through a handle
/// it opened before: the claimed file changes while the agent runs, and the
/// task says so instead of passing for a run of the whole file.
#[cfg(unix)]
#[test]
fn a_claimed_file_that_changes_afterwards_fails_the_task_instead_of_running_stale() {
    use std::io::Write;
    let home = TestHome::new();
    let tmp = home.inbox().join(".late.yaml.tmp");
    let mut f = std::fs::File::create(&tmp).unwrap();
    f.write_all(b"agent: command\ncommand: \"sleep 3; echo ran\"\n")
        .unwrap();
    std::fs::rename(&tmp, home.inbox().join("late.yaml")).unwrap();
    let mut daemon = home.spawn_daemon();
    wait_until(Duration::from_secs(30), "the task to start", || {
        !home.events_of("attempt_started").is_empty()
    });
    f.write_all(b"timeout: 1h\n").unwrap();
    drop(f);
    wait_until(Duration::from_secs(30), "the task to finish", || {
        !home.results().is_empty()
    });
    sigterm(daemon.id());
    let _ = daemon.wait();
    let r = home.result_of("late.yaml");
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["kind"], "task_file_changed", "{r}");
}

/// Two agent tasks that may write to one repository never run at once; a task
/// elsewhere runs meanwhile, and `one_writer_per_repo: false` lets them overlap.
#[cfg(unix)]
#[test]
fn agents_that_may_write_one_repository_take_turns() {
    for exclusive in [true, false] {
        let top = format!("max_concurrent: 3\none_writer_per_repo: {exclusive}");
        let home = TestHome::with_config(&config_with(&top, ""));
        std::fs::create_dir_all(home.path.join("repo/src")).unwrap();
        std::fs::create_dir_all(home.path.join("elsewhere")).unwrap();
        git_sh(&home.path.join("repo"), "git init -q");
        let task = |wd: &str| format!("---\nworkdir: {wd}\n---\n@fake success sleep=700\nedit\n");
        home.drop_task("a.md", task("repo"));
        home.drop_task("b.md", task("repo/src"));
        home.drop_task("c.md", task("elsewhere"));
        let out = home.run_once();
        assert!(out.status.success(), "{}", stderr(&out));
        let at = |event: &str, file: &str| -> String {
            let id = home.result_of(file)["id"].as_str().unwrap().to_string();
            home.events_of(event)
                .into_iter()
                .find(|e| e["task_id"] == id.as_str())
                .unwrap_or_else(|| panic!("no {event} for {file}"))["ts"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let (a_end, b_end) = (at("task_succeeded", "a.md"), at("task_succeeded", "b.md"));
        let (a_start, b_start) = (at("task_started", "a.md"), at("task_started", "b.md"));
        let (first_end, second_start) = if a_start <= b_start {
            (a_end, b_start)
        } else {
            (b_end, a_start)
        };
        if exclusive {
            assert!(
                first_end <= second_start,
                "the second writer started before the first ended"
            );
            assert!(
                at("task_started", "c.md") < first_end,
                "a task elsewhere runs meanwhile"
            );
        } else {
            assert!(second_start < first_end, "with one_writer_per_repo: false they overlap");
        }
    }
}

/// A file edited while it waits takes its new place in the queue: with the
/// OS's events (which tell of the edit) and with polling (whose rescans do).
#[cfg(unix)]
#[test]
fn a_queued_file_edited_while_it_waits_takes_its_new_priority() {
    for watch in ["native", "poll"] {
        let home = TestHome::with_config(&config_with(&format!("max_concurrent: 1\nwatch: {watch}"), ""));
        let mut daemon = home.spawn_daemon();
        home.drop_task("busy.yaml", "agent: command\ncommand: sleep 60\n");
        wait_until(Duration::from_secs(20), "the busy task to start", || {
            !home.events_of("task_started").is_empty()
        });
        home.drop_task_aged("a.yaml", "agent: command\ncommand: echo a\n", Duration::from_secs(20));
        home.drop_task_aged("b.yaml", "agent: command\ncommand: echo b\n", Duration::from_secs(10));
        let queued = |file: &str| {
            home.events_of("task_queued")
                .iter()
                .filter(|e| e["file"] == file)
                .count()
        };
        wait_until(Duration::from_secs(20), "both to wait", || {
            queued("a.yaml") == 1 && queued("b.yaml") == 1
        });
        home.drop_task("b.yaml", "priority: high\nagent: command\ncommand: echo b\n");
        wait_until(Duration::from_secs(20), "the edited file queued again", || {
            queued("b.yaml") == 2
        });
        assert!(home.cli(&["cancel", "busy.yaml"]).status.success());
        wait_until(Duration::from_secs(30), "all three to end", || {
            home.results().len() == 3
        });
        sigterm(daemon.id());
        let _ = daemon.wait();
        let order: Vec<String> = home
            .events_of("task_started")
            .iter()
            .map(|e| e["file"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(order, ["busy.yaml", "b.yaml", "a.yaml"], "watch: {watch}");
        assert_eq!(home.result_of("b.yaml")["output"], "b");
    }
}
