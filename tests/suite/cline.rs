//! The Cline bridge against the fake Cline CLI (`fake-agent` with `--json`):
//! its argv, its stream, its failures, and the limits the daemon enforces while
//! it runs (Cline has no flags for them).

use crate::common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

fn cline_home(top: &str) -> TestHome {
    TestHome::with_config(&format!(
        "{}  cline:\n    command: {}\n",
        config_with(top, ""),
        fake_agent()
    ))
}

fn run_one(home: &TestHome, body: &str) -> Value {
    home.drop_task("job.md", format!("---\nagent: cline\n---\n{body}\n"));
    home.run_once();
    home.result_of("job.md")
}

#[test]
fn a_cline_run_reports_answer_session_turns_tools_and_cost() {
    let home = cline_home("");
    let r = run_one(&home, "@fake success\nfix the tests");
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["agent"], "cline");
    // The fake answers with the first line of what it was given: the lead-in argument.
    assert_eq!(r["output"], "Done: Carry out the task below.");
    assert!(r["session_id"].is_null(), "Cline 3.0.65 reports no session id: {r}");
    assert_eq!(r["turns"], 2);
    assert_eq!(r["tool_calls"], 1);
    assert_eq!(r["cost_usd"], 0.02);
    let plan: Value =
        serde_json::from_slice(&std::fs::read(home.task_dir(r["id"].as_str().unwrap()).join("plan.json")).unwrap())
            .unwrap();
    let args: Vec<&str> = plan["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(&args[..2], ["--json", "-v"]);
    assert!(args[2].starts_with("--cwd="), "{args:?}");
    assert_eq!(
        args[3], "Carry out the task below.",
        "a fixed lead-in is the prompt argument; the prompt goes on stdin"
    );
    assert_eq!(args.len(), 4);
}

#[test]
fn a_one_word_prompt_works_because_it_goes_on_stdin() {
    let home = cline_home("");
    let r = run_one(&home, "@fake success answer=ok");
    assert_eq!(r["status"], "succeeded", "{r}");
}

#[test]
fn cline_failures_are_classified_and_retried_like_claude_ones() {
    for (scenario, kind, attempts) in [
        ("overloaded fail_times=1", None, 2),
        ("network fail_times=1", None, 2),
        ("crash_mid_line fail_times=1", None, 2),
        ("auth", Some("auth"), 1),
        ("model_not_found", Some("model_not_found"), 1),
        ("max_iterations", Some("max_turns"), 1),
        ("mistake_limit", Some("agent_error"), 1),
        ("no_result", Some("invalid_output"), 1),
    ] {
        let home = cline_home("");
        let r = run_one(&home, &format!("@fake {scenario}"));
        match kind {
            None => assert_eq!(r["status"], "succeeded", "{scenario}: {r}"),
            Some(k) => {
                assert_eq!(r["status"], "failed", "{scenario}");
                assert_eq!(r["error"]["kind"], k, "{scenario}: {r}");
            }
        }
        assert_eq!(r["attempts"].as_array().unwrap().len(), attempts, "{scenario}: {r}");
    }
}

#[test]
fn a_cline_rate_limit_pauses_the_agent_instead_of_spending_attempts() {
    let home = cline_home("");
    let r = run_one(&home, "@fake rate_limit fail_times=1");
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["attempts"][0]["error"]["kind"], "rate_limited");
    assert_eq!(home.events_of("agent_paused").len(), 1);
}

#[test]
fn max_turns_is_enforced_while_cline_runs() {
    let home = cline_home("");
    home.drop_task(
        "long.md",
        "---\nagent: cline\nmax_turns: 3\n---\n@fake turns n=50 turn_ms=100\nkeep going",
    );
    let started = Instant::now();
    home.run_once();
    let r = home.result_of("long.md");
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["kind"], "max_turns", "{r}");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(msg.contains("4 turns") && msg.contains("max_turns is 3"), "{msg}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "stopped early, not after 50 turns"
    );
}

#[test]
fn budget_usd_is_enforced_while_cline_runs_and_says_what_was_spent() {
    let home = cline_home("");
    home.drop_task(
        "pricey.md",
        "---\nagent: cline\nbudget_usd: 0.25\n---\n@fake turns n=50 cost_per_turn=0.1 turn_ms=100\nspend",
    );
    home.run_once();
    let r = home.result_of("pricey.md");
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["kind"], "budget_exceeded", "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("$0.30"), "{r}");
    assert!(
        (r["cost_usd"].as_f64().unwrap() - 0.3).abs() < 1e-9,
        "what was spent: {r}"
    );
}

#[cfg(unix)]
#[test]
fn a_cline_timeout_stops_it_even_when_it_aborts_cleanly_with_exit_0() {
    let home = cline_home("");
    home.drop_task(
        "slow.md",
        "---\nagent: cline\ntimeout: 1s\n---\n@fake turns n=100 turn_ms=200\nslow",
    );
    home.run_once();
    let r = home.result_of("slow.md");
    assert_eq!(r["error"]["kind"], "timeout", "{r}");
}

#[test]
fn allowed_tools_for_cline_are_reported_as_not_enforced() {
    let home = cline_home("");
    home.drop_task(
        "tools.md",
        "---\nagent: cline\nallowed_tools: [Read]\n---\n@fake success\nread only",
    );
    home.run_once();
    let w = home.events_of("validation_warning");
    assert_eq!(w[0]["warning"], "tools_not_enforced", "{w:?}");
    let r = home.result_of("tools.md");
    assert_eq!(r["validation"]["warnings"][0]["warning"], "tools_not_enforced", "{r}");
    let id = r["id"].as_str().unwrap();
    let summary = std::fs::read_to_string(home.path.join("summaries").join(format!("{id}.md"))).unwrap();
    assert!(summary.contains("tools_not_enforced"), "{summary}");
}

#[test]
fn max_tool_calls_stops_cline_and_claude_while_they_run() {
    let home = cline_home("");
    home.drop_task(
        "cline.md",
        "---\nagent: cline\nmax_tool_calls: 3\n---\n@fake turns n=50 turn_ms=100\nloop",
    );
    home.drop_task(
        "claude.md",
        "---\nagent: claude\nmax_tool_calls: 2\n---\n@fake tool_loop n=50 turn_ms=100\nloop",
    );
    let started = Instant::now();
    home.run_once();
    assert!(started.elapsed() < Duration::from_secs(5), "stopped early");
    for (name, n, max) in [("cline.md", 4, 3), ("claude.md", 3, 2)] {
        let r = home.result_of(name);
        assert_eq!(r["error"]["kind"], "max_tool_calls", "{r}");
        let msg = r["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(&format!("stopped at {n} tool calls: max_tool_calls is {max}")),
            "{msg}"
        );
        assert_eq!(r["tool_calls"], n, "what was spent");
    }
}

#[test]
fn reply_to_a_cline_task_says_why_it_cannot_continue() {
    let home = cline_home("");
    let r = run_one(&home, "@fake success\nfix it");
    assert_eq!(r["status"], "succeeded", "{r}");
    let out = home.cli(&["reply", r["id"].as_str().unwrap(), "and more"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("continues a session only in its interactive chat"),
        "{}",
        stderr(&out)
    );
}
