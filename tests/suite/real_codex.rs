//! The real Codex CLI (pinned in `agent-clis/`) run by the daemon against a
//! scripted OpenAI Responses API on 127.0.0.1.

use crate::common::mock_api::{INPUT_TOKENS, MockApi, Reply};
use crate::common::mock_responses::{CACHED_TOKENS, OUTPUT_TOKENS};
use crate::common::real::{
    Cli, PRICES, RealHome, a_slow_stream_is_cut_by_the_timeout, find, limits_stop_a_looping_model,
    prices_and_budgets_hold, record, recordings,
};
#[cfg(target_os = "linux")]
use crate::common::real::{SLEEPER, kill_9_mid_command_leaves_nothing};
#[cfg(unix)]
use crate::common::real::{cancel_mid_stream, git_repo};
use crate::common::*;
use serde_json::json;

#[cfg(unix)]
/// `agents.codex` may grant the shell (Claude's ceiling leaves it out).
const SHELL: &str = "    allowed_tools: [Read, Glob, Grep, LS, Edit, Write, Bash]\n";

fn real(api: MockApi, top: &str, codex: &str, test: &str) -> Option<RealHome> {
    find(Cli::Codex, test).map(|cli| RealHome::codex(cli, api, top, codex))
}

fn attempts(r: &serde_json::Value) -> usize {
    r["attempts"].as_array().map_or(0, Vec::len)
}

#[test]
fn a_codex_task_runs_and_its_answer_and_tokens_are_the_result() {
    let api = MockApi::responses(|_| Reply::text("MOCK-ANSWER from codex"));
    let Some(h) = real(api, "", "", "a_codex_task_runs") else {
        return;
    };
    h.home
        .drop_task("q.md", "---\nagent: codex\n---\nSummarise the folder.\n");
    let out = h.run_once();
    let r = h.home.result_of("q.md");
    assert_eq!(r["status"], "succeeded", "{r}\n{}", stderr(&out));
    assert_eq!(r["output"], "MOCK-ANSWER from codex");
    assert_eq!(r["agent"], "codex");
    assert_eq!(r["turns"], 1);
    assert!(r["session_id"].as_str().is_some_and(|s| s.len() >= 32), "{r}");
    assert_eq!(
        r["tokens"],
        json!({"input": INPUT_TOKENS, "output": OUTPUT_TOKENS, "cached": CACHED_TOKENS}),
        "{r}"
    );
    assert!(r["cost_usd"].is_null(), "Codex reports no dollars: {r}");
    let shown = h.cmd().args(["show", "q.md"]).output().unwrap();
    assert!(
        stdout(&shown).contains(&format!(
            "tokens:    {INPUT_TOKENS} in ({CACHED_TOKENS} cached), {OUTPUT_TOKENS} out"
        )),
        "{}",
        stdout(&shown)
    );
    let sent = &h.api.requests()[0];
    assert!(
        sent.text().contains("Summarise the folder."),
        "the prompt reached the model from stdin"
    );
    // No web search offered to the model.
    assert!(!sent.text().contains("\"web_search\""), "{:?}", sent.tool_names());
    // 0.171.0 asks github.com, api.github.com and chatgpt.com for things of
    // its own at every start, whatever its config says: the proxy refused
    // them, nothing reached out.
    for line in h.proxy.refused() {
        assert!(
            line.starts_with("CONNECT ") && (line.contains("github.com:443") || line.contains("chatgpt.com:443")),
            "{line}"
        );
    }
}

#[cfg(unix)]
fn writes_a_file() -> MockApi {
    MockApi::responses(|r| {
        if r.tool_results().is_empty() {
            Reply::tool("exec_command", json!({"cmd": "echo hi from the model > hello.txt"}))
        } else {
            Reply::text("wrote hello.txt")
        }
    })
}

#[cfg(unix)]
#[test]
fn a_granted_shell_makes_real_edits_that_git_sees() {
    let Some(h) = real(writes_a_file(), "", SHELL, "a_granted_shell_makes_real_edits") else {
        return;
    };
    let repo = git_repo(&h);
    h.home.drop_task(
        "w.md",
        "---\nagent: codex\nworkdir: repo\nallowed_tools: [Read, Edit, Bash]\n---\nwrite hello.txt\n",
    );
    h.run_once();
    let r = h.home.result_of("w.md");
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(
        std::fs::read_to_string(repo.join("hello.txt")).unwrap(),
        "hi from the model\n"
    );
    assert_eq!(r["files_changed"], json!(["hello.txt"]), "{r}");
    assert_eq!(
        (r["turns"].as_u64(), r["tool_calls"].as_u64()),
        (Some(2), Some(1)),
        "{r}"
    );
    let plan = std::fs::read_to_string(h.home.task_dir(r["id"].as_str().unwrap()).join("plan.json")).unwrap();
    assert!(plan.contains("--sandbox=workspace-write"), "{plan}");
}

#[cfg(unix)]
#[test]
fn without_the_shell_the_sandbox_is_read_only_and_an_edit_is_refused_not_widened() {
    let Some(h) = real(writes_a_file(), "", SHELL, "without_the_shell_the_sandbox_is_read_only") else {
        return;
    };
    let repo = git_repo(&h);
    // Edit without Bash: Codex cannot edit without running commands.
    h.home.drop_task(
        "r.md",
        "---\nagent: codex\nworkdir: repo\nallowed_tools: [Read, Edit]\n---\nwrite hello.txt\n",
    );
    h.run_once();
    let r = h.home.result_of("r.md");
    assert_eq!(r["status"], "succeeded", "{r}");
    assert!(
        !repo.join("hello.txt").exists(),
        "the read-only sandbox let a write through"
    );
    let results = h.api.requests().last().unwrap().tool_results().join("\n");
    assert!(results.contains("Read-only file system"), "{results}");
    let warnings = r["validation"]["warnings"].to_string();
    assert!(warnings.contains("tools_dropped") && warnings.contains("Edit"), "{r}");
}

#[test]
fn auth_and_server_errors_are_classified_from_the_real_stream() {
    for (status, kind, expected, tries) in [
        (401, "invalid_api_key", "auth", 1),
        (400, "invalid_request_error", "invalid_request", 1),
        (500, "server_error", "server_error", 2),
    ] {
        let api = MockApi::responses(move |_| Reply::error(status, kind, "the mock's error text"));
        let Some(h) = real(api, "", "", "codex_errors") else {
            return;
        };
        h.home.drop_task("q.md", "---\nagent: codex\nretries: 1\n---\nhello\n");
        h.run_once();
        let r = h.home.result_of("q.md");
        assert_eq!(r["status"], "failed", "{status}: {r}");
        assert_eq!(r["error"]["kind"], expected, "{status}: {r}");
        assert_eq!(attempts(&r), tries, "{status}: {r}");
    }
}

#[cfg(unix)]
#[test]
fn a_usage_limit_pauses_the_agent_until_the_minute_codex_names() {
    let api = MockApi::responses(|_| Reply::error(429, "usage_limit_reached", "The usage limit has been reached"));
    let Some(h) = real(api, "", "", "a_usage_limit_pauses") else {
        return;
    };
    h.home.drop_task("q.md", "---\nagent: codex\nretries: 0\n---\nhello\n");
    let mut c = h.cmd();
    c.arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut daemon = c.spawn().unwrap();
    // The limit resets now: Codex says the current minute ("Try again at
    // 4:29 PM."), and the agent is paused to that minute's end, not for the
    // default backoff and not until tomorrow.
    wait_until(std::time::Duration::from_secs(60), "the agent to be paused", || {
        !h.home.events_of("agent_paused").is_empty()
    });
    sigterm(daemon.id());
    let _ = daemon.wait();
    let paused = &h.home.events_of("agent_paused")[0];
    assert_eq!(paused["agent"], "codex", "{paused}");
    assert_eq!(paused["from_cli"], true, "{paused}");
    let until: jiff::Timestamp = paused["until"].as_str().unwrap().parse().unwrap();
    let left = until.as_second() - jiff::Timestamp::now().as_second();
    assert!((-5..=61).contains(&left), "paused to the end of this minute: {paused}");
    // No attempt was used: the task waits for its next run.
    assert!(h.home.results().is_empty(), "{:?}", h.home.results());
}

#[test]
fn steps_continue_one_thread_and_each_counts_only_its_own_tokens() {
    let api = MockApi::responses(|_| Reply::text("a step's answer"));
    let Some(h) = real(api, "", "", "steps_continue_one_thread") else {
        return;
    };
    h.home
        .drop_task("s.md", "---\nagent: codex\nsteps: [Look, Answer]\n---\nThe question\n");
    h.run_once();
    let r = h.home.result_of("s.md");
    assert_eq!(r["status"], "succeeded", "{r}");
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps[0]["session_id"], steps[1]["session_id"], "one thread: {r}");
    let last = h.api.requests().last().unwrap().text();
    assert!(
        last.contains("Step 1 of 2: Look") && last.contains("Step 2 of 2: Answer"),
        "{last}"
    );
    // Codex reports the thread's count: 2 requests so far at the second
    // step's end. Each step's share is one request's.
    assert_eq!(r["tokens"]["input"], 2 * INPUT_TOKENS, "{r}");
    assert_eq!(r["session_tokens"]["input"], 2 * INPUT_TOKENS, "{r}");
}

#[test]
fn a_reply_continues_the_thread_and_counts_only_its_tokens() {
    let api = MockApi::responses(|_| Reply::text("an answer"));
    let Some(h) = real(api, "", "", "a_reply_continues_the_thread") else {
        return;
    };
    h.home.drop_task("q.md", "---\nagent: codex\n---\nfirst question\n");
    h.run_once();
    let first = h.home.result_of("q.md");
    assert_eq!(first["status"], "succeeded", "{first}");
    let out = h
        .cmd()
        .args(["reply", first["id"].as_str().unwrap(), "a second question"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let reply_id = stdout(&out).trim().to_string();
    h.run_once();
    let second = h
        .home
        .results()
        .into_iter()
        .find(|r| r["id"] == reply_id.as_str())
        .unwrap();
    assert_eq!(second["status"], "succeeded", "{second}");
    assert_eq!(second["session_id"], first["session_id"]);
    let last = h.api.requests().last().unwrap().text();
    assert!(
        last.contains("first question") && last.contains("a second question"),
        "{last}"
    );
    assert_eq!(second["tokens"]["input"], INPUT_TOKENS, "the reply's own: {second}");
    assert_eq!(second["session_tokens"]["input"], 2 * INPUT_TOKENS, "{second}");
}

#[test]
fn resuming_an_unknown_thread_fails_at_once() {
    let api = MockApi::responses(|_| Reply::text("never asked"));
    let Some(h) = real(api, "", "", "resuming_an_unknown_thread") else {
        return;
    };
    h.home.drop_task(
        "q.md",
        "---\nagent: codex\nsession: 01a25150-0000-7152-b3cd-408e9aaa4c3e\n---\ngo on\n",
    );
    h.run_once();
    let r = h.home.result_of("q.md");
    assert_eq!(r["error"]["kind"], "session_not_found", "{r}");
    assert_eq!(attempts(&r), 1, "{r}");
    assert!(h.api.requests().is_empty());
}

/// Codex's stream reports tokens only when its run ends, so budgets hold
/// between runs (`prices_turn_codex_tokens_into_dollars_and_budgets_hold`);
/// turns and tool calls stop it while it runs.
#[test]
fn limits_stop_a_model_that_never_finishes() {
    let api = MockApi::responses(|_| Reply::tool("exec_command", json!({"cmd": "ls"})));
    let Some(h) = real(api, "", "", "codex_limits") else {
        return;
    };
    limits_stop_a_looping_model(
        &h,
        "codex",
        &[
            ("max_tool_calls: 3", "loop-tools", "max_tool_calls", 8),
            ("max_turns: 2", "loop-turns", "max_turns", 6),
        ],
    );
}

/// A cancel mid-stream ends the CLI by its signal (SIGINT) long before the
/// grace's SIGKILL, and the stream stops.
#[cfg(unix)]
#[test]
fn a_cancel_mid_stream_stops_the_real_cli_by_its_signal() {
    let api = MockApi::responses(|_| Reply::Slow {
        pieces: (0..100).map(|i| format!("piece {i} ")).collect(),
        delay: std::time::Duration::from_millis(100),
    });
    let Some(h) = real(api, "kill_grace: 30s", "", "codex_cancel_mid_stream") else {
        return;
    };
    h.home.drop_task("slow.md", "---\nagent: codex\n---\ntake your time\n");
    let took = cancel_mid_stream(&h, |_| true);
    // SIGKILL comes after 30 s; the CLI ended on its stop signal well before.
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
}

#[test]
fn a_slow_stream_is_stopped_by_its_timeout() {
    let api = MockApi::responses(|_| Reply::Slow {
        pieces: (0..100).map(|i| format!("w{i} ")).collect(),
        delay: std::time::Duration::from_millis(200),
    });
    let Some(h) = real(api, "", "", "codex_slow_stream") else {
        return;
    };
    a_slow_stream_is_cut_by_the_timeout(&h, "codex", |_| true);
}

/// A daemon killed while Codex runs a command leaves nothing behind: its
/// watchdog stops the CLI and the command by the marks in their environment.
#[cfg(target_os = "linux")]
#[test]
fn kill_9_of_the_daemon_mid_command_leaves_no_process_behind() {
    let api = MockApi::responses(|r| {
        if r.tool_results().is_empty() {
            Reply::tool("exec_command", json!({"cmd": SLEEPER}))
        } else {
            Reply::text("done")
        }
    });
    let Some(h) = real(api, "", SHELL, "codex_kill_9_mid_command") else {
        return;
    };
    h.home.drop_task(
        "b.md",
        "---\nagent: codex\nallowed_tools: [Read, Bash]\nretries: 0\n---\nwait a while\n",
    );
    kill_9_mid_command_leaves_nothing(&h);
}

/// Records runs of the real CLI into `tests/data/agent-output/codex-0.171.0/`
/// (stdout, stderr, exit code), for `tests/suite/recordings.rs`. Runs only
/// with `ORCH_RECORD=1`:
/// `ORCH_RECORD=1 cargo test --test suite real_codex::record_runs -- --nocapture`.
#[test]
fn record_runs() {
    if std::env::var_os("ORCH_RECORD").is_none() {
        return;
    }
    let Some(cli) = find(Cli::Codex, "record_runs") else {
        return;
    };
    let dir = recordings("codex-0.171.0");
    let tool = || {
        MockApi::responses(|r| {
            if r.tool_results().is_empty() {
                Reply::tool("exec_command", json!({"cmd": "echo hi > made.txt"}))
            } else {
                Reply::text("made it")
            }
        })
    };
    let error = |status, kind: &'static str, reset: Option<u64>| {
        MockApi::responses(move |_| Reply::Error {
            status,
            kind: kind.to_string(),
            message: format!("the mock's {kind} text"),
            retry_after: reset,
        })
    };
    let cases: Vec<(&str, MockApi, &str, Option<&str>)> = vec![
        (
            "text",
            MockApi::responses(|_| Reply::text("MOCK-ANSWER from codex")),
            "read-only",
            None,
        ),
        ("tool", tool(), "workspace-write", None),
        ("tool_read_only", tool(), "read-only", None),
        ("auth", error(401, "invalid_api_key", None), "read-only", None),
        (
            "invalid_request",
            error(400, "invalid_request_error", None),
            "read-only",
            None,
        ),
        ("server_error", error(500, "server_error", None), "read-only", None),
        ("rate_limit", error(429, "rate_limit_exceeded", None), "read-only", None),
        (
            "usage_limit",
            error(429, "usage_limit_reached", Some(90_000)),
            "read-only",
            None,
        ),
        (
            "resume_unknown",
            MockApi::responses(|_| Reply::text("unused")),
            "read-only",
            Some("01a25150-0000-7152-b3cd-408e9aaa4c3e"),
        ),
    ];
    for (name, api, sandbox, session) in cases {
        let h = RealHome::codex(cli.clone(), api, "", "");
        let tools: Vec<String> = if sandbox == "workspace-write" {
            vec!["Read".into(), "Bash".into()]
        } else {
            vec!["Read".into()]
        };
        let args = orchestrator::agents::codex::args(&[], &tools, session);
        record(&h, &args, &[], &dir, name);
    }
}

#[test]
fn prices_turn_codex_tokens_into_dollars_and_budgets_hold() {
    let api = MockApi::responses(|_| Reply::text("a step's answer"));
    let Some(h) = real(api, "", PRICES, "prices_turn_codex_tokens_into_dollars") else {
        return;
    };
    prices_and_budgets_hold(&h, "codex");
}
