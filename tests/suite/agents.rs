//! The Claude bridge against the fake CLI: every error class and its retry
//! behaviour, through the built binary.

use crate::common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

fn attempts(r: &Value) -> Vec<Value> {
    r["attempts"].as_array().unwrap().clone()
}

fn one(scenario: &str) -> (TestHome, Value) {
    let home = TestHome::new();
    home.drop_task("t.md", format!("@fake {scenario}\nDo the thing\n"));
    home.run_once();
    let r = home.result_of("t.md");
    (home, r)
}

#[test]
fn recorded_streams_replayed_by_the_fake_are_read_right() {
    let home = TestHome::new();
    home.drop_task("tools.md", "@fake replay=tools\n");
    home.drop_task("denied.md", "@fake replay=permission_denied\n");
    home.drop_task("model.md", "@fake replay=model_not_found\n");
    let out = home.run_once();
    assert_eq!(out.status.code(), Some(1));
    let tools = home.result_of("tools.md");
    assert_eq!(tools["status"], "succeeded");
    assert_eq!(tools["cost_usd"], 0.054201000000000006);
    assert_eq!(tools["turns"], 2);
    assert_eq!(tools["session_id"], "d0becfe3-d703-4311-8d8f-bf0ed7139dd7");
    let denied = home.result_of("denied.md");
    assert_eq!(denied["status"], "succeeded");
    assert_eq!(denied["permission_denials"].as_array().unwrap().len(), 2);
    let summary = std::fs::read_to_string(
        home.path
            .join("summaries")
            .join(format!("{}.md", denied["id"].as_str().unwrap())),
    )
    .unwrap();
    assert!(summary.contains("Permission denials"));
    let model = home.result_of("model.md");
    assert_eq!(model["status"], "failed");
    assert_eq!(model["error"]["kind"], "model_not_found");
    assert_eq!(attempts(&model).len(), 1, "fatal: not retried");
    assert!(home.events_of("retry_scheduled").is_empty());
}

#[test]
fn overload_is_retried_with_backoff_then_succeeds() {
    let (home, r) = one("overloaded fail_times=1");
    assert_eq!(r["status"], "succeeded");
    let a = attempts(&r);
    assert_eq!(a.len(), 2);
    assert_eq!(a[0]["error"]["kind"], "overloaded");
    assert_eq!(a[0]["exit_code"], 1);
    assert!(a[1]["error"].is_null());
    let retry = &home.events_of("retry_scheduled")[0];
    assert_eq!(retry["attempt"], 2);
    assert_eq!(retry["error"], "overloaded");
    assert!(retry["delay_ms"].as_u64().unwrap() <= 200);
    assert!(home.task_dir(r["id"].as_str().unwrap()).join("attempt-2.out").exists());
}

#[test]
fn transient_failures_stop_when_attempts_are_spent() {
    let home = TestHome::new();
    home.drop_task("t.md", "---\nretries: 1\n---\n@fake overloaded\n");
    assert_eq!(home.run_once().status.code(), Some(1));
    let r = home.result_of("t.md");
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["kind"], "overloaded");
    assert_eq!(attempts(&r).len(), 2);
    assert_eq!(home.events_of("retry_scheduled").len(), 1);
}

#[test]
fn network_errors_and_crashes_are_transient() {
    let (_, r) = one("network fail_times=1");
    assert_eq!(r["status"], "succeeded");
    assert_eq!(attempts(&r)[0]["error"]["kind"], "network");
    let (_, r) = one("crash_mid_line fail_times=1");
    assert_eq!(r["status"], "succeeded");
    let first = &attempts(&r)[0];
    assert_eq!(first["error"]["kind"], "agent_crashed");
    assert!(
        first["error"]["message"].as_str().unwrap().contains("middle of a line"),
        "{first}"
    );
}

#[test]
fn fatal_classes_fail_at_once_with_a_suggestion() {
    for (scenario, kind, hint) in [
        ("auth", "auth", "login"),
        ("max_turns", "max_turns", "max_turns"),
        ("budget", "budget_exceeded", "budget_usd"),
        ("no_result", "invalid_output", "result"),
    ] {
        let (home, r) = one(scenario);
        assert_eq!(r["status"], "failed", "{scenario}");
        assert_eq!(r["error"]["kind"], kind, "{scenario}: {r}");
        assert!(r["error"]["suggestion"].as_str().unwrap().contains(hint), "{scenario}");
        assert_eq!(attempts(&r).len(), 1, "{scenario} is not retried");
        assert!(home.events_of("retry_scheduled").is_empty());
        assert_eq!(home.events_of("task_failed")[0]["error"], kind);
    }
}

#[test]
fn a_rate_limit_pauses_the_agent_without_using_attempts() {
    let home = TestHome::with_config(&config_with("max_concurrent: 1", ""));
    home.drop_task(
        "limited.md",
        "---\npriority: high\nretries: 0\n---\n@fake rate_limit resets_in=2 fail_times=1\n",
    );
    home.drop_task(
        "other-claude.md",
        "---\npriority: normal\n---\nqueued behind the limit\n",
    );
    home.drop_task(
        "command.yaml",
        "priority: low\nagent: command\ncommand: echo not-paused\n",
    );
    let out = home.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    let r = home.result_of("limited.md");
    assert_eq!(
        r["status"], "succeeded",
        "retries: 0, yet the limit wait used no attempt"
    );
    let a = attempts(&r);
    assert_eq!(a.len(), 2);
    assert_eq!(a[0]["error"]["kind"], "rate_limited");
    let paused = &home.events_of("agent_paused")[0];
    assert_eq!(paused["agent"], "claude");
    assert_eq!(paused["from_cli"], true, "resetsAt from rate_limit_event was used");
    let until: jiff::Timestamp = paused["until"].as_str().unwrap().parse().unwrap();
    let started = |file: &str| -> jiff::Timestamp {
        let id = home.result_of(file)["id"].clone();
        home.events_of("attempt_started")
            .iter()
            .find(|e| e["task_id"] == id)
            .unwrap()["ts"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        started("other-claude.md") >= until,
        "no claude task starts while claude is paused"
    );
    assert!(started("command.yaml") < until, "other agents keep running");
    assert!(home.events_of("retry_scheduled").is_empty());
}

#[test]
fn usage_limit_text_carries_its_reset_time() {
    let (home, r) = one("usage_limit resets_in=1 fail_times=1");
    assert_eq!(r["status"], "succeeded");
    assert_eq!(attempts(&r)[0]["error"]["kind"], "rate_limited");
    assert_eq!(home.events_of("agent_paused")[0]["from_cli"], true);
}

#[cfg(unix)]
#[test]
fn a_timeout_kills_the_whole_tree_even_when_it_ignores_sigterm() {
    let pids = tempfile::NamedTempFile::new().unwrap();
    let home = TestHome::with_config(&config_with(
        "",
        &format!("    env:\n      FAKE_AGENT_PIDS: {}", pids.path().display()),
    ));
    home.drop_task("hang.md", "---\ntimeout: 2s\n---\n@fake hang\n");
    let started = Instant::now();
    let out = home.run_once();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    let r = home.result_of("hang.md");
    assert_eq!(r["error"]["kind"], "timeout");
    assert_eq!(attempts(&r).len(), 1, "a timeout is not retried");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let pids = read_pids(pids.path());
    assert_eq!(pids.len(), 2, "agent and grandchild recorded");
    for pid in pids {
        assert!(!alive(pid), "pid {pid} outlived the timeout");
    }
}

#[test]
fn an_interactive_prompt_is_detected_and_stopped_at_once() {
    let started = Instant::now();
    let (_, r) = one("trust_prompt");
    assert_eq!(r["error"]["kind"], "interactive_prompt");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Do you trust the files in this folder?")
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "not left to the 30 min timeout"
    );
}

#[test]
fn huge_output_is_capped_without_stalling_the_agent() {
    let home = TestHome::with_config(&config_with("max_output_bytes: 1048576", ""));
    home.drop_task("big.md", "@fake huge_output mb=30\n");
    home.drop_task("endless.md", "@fake no_newline mb=20\n");
    home.run_once();
    let big = home.result_of("big.md");
    assert_eq!(big["status"], "succeeded");
    assert_eq!(big["output"], "Printed a lot.");
    let out = home.task_dir(big["id"].as_str().unwrap()).join("attempt-1.out");
    let size = std::fs::metadata(&out).unwrap().len();
    assert!((1_048_576..1_048_576 + 200).contains(&size), "capped: {size}");
    let finished = home.events_of("attempt_finished");
    let e = finished.iter().find(|e| e["task_id"] == big["id"]).unwrap();
    assert!(
        e["stdout_bytes"].as_u64().unwrap() > 30 * 1024 * 1024,
        "everything was read: {e}"
    );
    let endless = home.result_of("endless.md");
    assert_eq!(endless["error"]["kind"], "invalid_output");
}

#[test]
fn invalid_utf8_in_the_stream_is_survived() {
    let (_, r) = one("invalid_utf8");
    assert_eq!(r["status"], "succeeded");
    assert_eq!(r["output"], "Survived bad bytes.");
}

#[test]
fn a_missing_cli_is_not_found_and_a_rejected_command_line_is_bad_invocation() {
    let home = TestHome::with_config(&base_config().replace(fake_agent(), "/nonexistent/bin/claude"));
    home.drop_task("t.md", "hello");
    home.run_once();
    let r = home.result_of("t.md");
    assert_eq!(r["error"]["kind"], "not_found");
    assert!(
        r["error"]["suggestion"]
            .as_str()
            .unwrap()
            .contains("agents.<name>.command")
    );
    assert_eq!(attempts(&r).len(), 1);

    let home = TestHome::with_config(&config_with("", "    extra_args: [--no-such-flag]"));
    home.drop_task("t.md", "hello");
    home.run_once();
    let r = home.result_of("t.md");
    assert_eq!(r["error"]["kind"], "bad_invocation");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown option '--no-such-flag'")
    );
}

#[test]
fn the_fake_refuses_what_the_real_cli_refuses() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let run = |args: &[&str], stdin: &str| {
        let mut c = Command::new(fake_agent())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A CLI that rejects its argv exits without reading stdin: the write may hit EPIPE.
        let _ = c.stdin.take().unwrap().write_all(stdin.as_bytes());
        c.wait_with_output().unwrap()
    };
    let o = run(&["-p", "--output-format", "stream-json"], "hi");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("requires --verbose"));
    let o = run(&["-p", "--output-format", "stream-json", "--verbose"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Input must be provided"));
    let o = run(
        &[
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--max-budget-usd",
            "0",
        ],
        "hi",
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("must be a positive number"));
    let o = run(
        &[
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--allowedTools",
            "Read",
            "Edit",
        ],
        "@fake success answer=ok",
    );
    assert_eq!(o.status.code(), Some(0));
    let last = String::from_utf8_lossy(&o.stdout).lines().last().unwrap().to_string();
    let v: Value = serde_json::from_str(&last).unwrap();
    assert_eq!((v["type"].as_str(), v["result"].as_str()), (Some("result"), Some("ok")));
}

#[cfg(unix)]
#[test]
fn an_agent_that_leaves_a_daemon_holding_its_output_still_finishes_with_its_result() {
    let pids = tempfile::NamedTempFile::new().unwrap();
    let home = TestHome::with_config(&config_with(
        "",
        &format!("    env:\n      FAKE_AGENT_PIDS: {}", pids.path().display()),
    ));
    // With its environment cleared, the escaped process carries no mark to find
    // it by: only the output grace ends the wait for it.
    home.drop_task("server.md", "@fake daemonize clear_env=1\n");
    let started = Instant::now();
    let out = home.run_once();
    let escaped = read_pids(pids.path());
    for pid in &escaped {
        kill9(*pid);
    }
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "bounded by the output grace, took {:?}",
        started.elapsed()
    );
    let r = home.result_of("server.md");
    assert_eq!(r["status"], "succeeded");
    assert_eq!(
        r["output"], "Started a server and left it running.",
        "what was read before giving up is kept"
    );
    let warning = home.events_of("validation_warning");
    assert_eq!(warning.len(), 1);
    assert_eq!(warning[0]["warning"], "output_left_open");
    assert_eq!(
        r["validation"]["warnings"][0]["warning"], "output_left_open",
        "in the result too: {r}"
    );
    let summary = std::fs::read_to_string(
        home.path
            .join("summaries")
            .join(format!("{}.md", r["id"].as_str().unwrap())),
    )
    .unwrap();
    assert!(summary.contains("output_left_open"), "{summary}");
    assert_eq!(escaped.len(), 1, "the fake recorded its daemon");
}

#[cfg(target_os = "linux")]
#[test]
fn a_daemon_the_agent_leaves_behind_is_stopped_with_the_task() {
    let pids = tempfile::NamedTempFile::new().unwrap();
    let home = TestHome::with_config(&config_with(
        "",
        &format!("    env:\n      FAKE_AGENT_PIDS: {}", pids.path().display()),
    ));
    home.drop_task("server.md", "@fake daemonize\n");
    let out = home.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    let escaped = read_pids(pids.path());
    assert_eq!(escaped.len(), 1, "the fake recorded its daemon");
    wait_until(Duration::from_secs(10), "the escaped daemon to be stopped", || {
        !alive(escaped[0])
    });
    assert_eq!(home.result_of("server.md")["status"], "succeeded");
    assert!(
        home.events_of("validation_warning").is_empty(),
        "its output was closed with it"
    );
}

/// An agent printing tens of megabytes: everything is read (the stream
/// fully parsed), the copy on disk is capped, and the daemon's memory stays
/// flat. `python3 bench/bench.py` measures the same with 1 GiB.
#[cfg(target_os = "linux")]
#[test]
fn tens_of_megabytes_of_output_keep_the_daemon_small() {
    let home = TestHome::with_config(&config_with("max_output_bytes: 1048576", ""));
    home.drop_task("flood.md", "@fake huge_output mb=64\n");
    let (code, peak_kib) = run_once_peak_rss(&home);
    assert_eq!(code, 0);
    let r = home.result_of("flood.md");
    assert_eq!(r["output"], "Printed a lot.");
    let finished = &home.events_of("attempt_finished")[0];
    assert!(finished["stdout_bytes"].as_u64().unwrap() > 64 * 1024 * 1024);
    eprintln!("peak RSS while reading 64 MiB of stream-json: {} KiB", peak_kib);
    assert!(peak_kib < 48 * 1024, "peak RSS {} KiB", peak_kib);
}

/// Many small messages (a new message id every line, ~200 bytes each, about
/// 250,000 of them): the reader keeps no per-message state, so the daemon's
/// peak memory is that of a stream of one message (it grew ~90 bytes a
/// message when the reader remembered every id).
#[cfg(target_os = "linux")]
#[test]
fn many_small_messages_keep_the_daemon_small() {
    let peak = |task: &str| {
        let home = TestHome::with_config(&config_with("max_output_bytes: 1048576", ""));
        home.drop_task("many.md", task);
        let (code, peak_kib) = run_once_peak_rss(&home);
        assert_eq!(code, 0);
        peak_kib
    };
    let one = peak("@fake huge_output mb=48\n");
    let many = peak("@fake huge_output mb=48 distinct=1\n");
    eprintln!("peak RSS: {one} KiB for one message, {many} KiB for ~250,000");
    assert!(many < one + 8 * 1024, "{many} KiB against {one} KiB");
}

/// An agent that prints nothing for its `stall_timeout` is stopped (its whole
/// tree) and tried again, using an attempt; when every attempt stalls the task
/// fails as `stalled`. Measured by how long each attempt ran: the stall
/// timeout and the stop, not the task's 10-minute timeout.
#[cfg(unix)]
#[test]
fn a_silent_agent_is_stopped_at_its_stall_timeout_and_tried_again() {
    let pids = tempfile::NamedTempFile::new().unwrap();
    let home = TestHome::with_config(&config_with(
        "",
        &format!("    env:\n      FAKE_AGENT_PIDS: {}", pids.path().display()),
    ));
    home.drop_task(
        "quiet.md",
        "---\nstall_timeout: 1s\ntimeout: 10m\nretries: 1\n---\n@fake hang\n",
    );
    home.run_once();
    let r = home.result_of("quiet.md");
    assert_eq!(
        (r["status"].as_str(), r["error"]["kind"].as_str()),
        (Some("failed"), Some("stalled")),
        "{r}"
    );
    let runs = attempts(&r);
    assert_eq!(runs.len(), 2, "a stall is retried like a dropped connection: {r}");
    for a in runs {
        assert_eq!(a["error"]["kind"], "stalled", "{r}");
        // 1 s of silence, the stop (kill_grace is 500 ms in tests): far from 10 minutes.
        assert!(a["duration_ms"].as_u64().unwrap() < 30_000, "{r}");
    }
    assert!(
        r["error"]["message"].as_str().unwrap().contains("wrote nothing for 1s"),
        "{r}"
    );
    for pid in read_pids(pids.path()) {
        assert!(!alive(pid), "pid {pid} outlived the stall");
    }
}

/// Output of any kind is life: an agent that keeps printing (a tool call every
/// 400 ms for 4.8 s) is never taken for stalled by a 1 s stall timeout.
#[test]
fn an_agent_that_keeps_printing_is_not_stalled() {
    let home = TestHome::new();
    home.drop_task(
        "busy.md",
        "---\nstall_timeout: 1s\n---\n@fake tool_loop n=12 turn_ms=400\n",
    );
    home.run_once();
    let r = home.result_of("busy.md");
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(attempts(&r).len(), 1, "{r}");
}
