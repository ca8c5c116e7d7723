//! The real Claude Code CLI (pinned in `agent-clis/`) run by the daemon against
//! a scripted Anthropic Messages API on 127.0.0.1.

use crate::common::mock_api::{MockApi, Reply};
use crate::common::real::{Cli, RealHome, find};
#[cfg(target_os = "linux")]
use crate::common::real::{SLEEPER, kill_9_mid_command_leaves_nothing};
use crate::common::*;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};

fn real(api: MockApi, top: &str, test: &str) -> Option<RealHome> {
    real_with(api, top, "", test)
}

fn real_with(api: MockApi, top: &str, claude: &str, test: &str) -> Option<RealHome> {
    find(Cli::Claude, test).map(|cli| RealHome::claude(cli, api, top, claude))
}

#[test]
fn a_text_answer_is_the_result() {
    let api = MockApi::anthropic(|_| Reply::text("MOCK-ANSWER: the answer is 42."));
    let Some(h) = real(api, "", "a_text_answer_is_the_result") else {
        return;
    };
    h.home.drop_task("q.md", "---\ntitle: ask\n---\nWhat is the answer?\n");
    let out = h.run_once();
    let r = h.home.result_of("q.md");
    assert_eq!(r["status"], "succeeded", "{r}\n{}", stderr(&out));
    assert_eq!(r["output"], "MOCK-ANSWER: the answer is 42.");
    assert_eq!(r["turns"], 1);
    assert!(r["session_id"].as_str().is_some_and(|s| s.len() == 36), "{r}");
    assert!(h.proxy.refused().is_empty(), "{:?}", h.proxy.refused());
}

/// A model that runs `echo $((6*7))xyz` through Bash on its first turn, then answers.
fn asks_for_the_shell() -> MockApi {
    MockApi::anthropic(|r| {
        if r.turn() == 0 && r.offers_tools() {
            Reply::tool("Bash", json!({"command": "echo $((6*7))xyz", "description": "say"}))
        } else {
            Reply::text("done")
        }
    })
}

#[test]
fn tools_not_granted_do_not_exist_not_even_a_read_only_shell() {
    let Some(h) = real(asks_for_the_shell(), "", "tools_not_granted_do_not_exist") else {
        return;
    };
    h.home
        .drop_task("q.md", "---\nallowed_tools: [Read, Write]\n---\nsay hi\n");
    let out = h.run_once();
    let r = h.home.result_of("q.md");
    assert_eq!(r["status"], "succeeded", "{r}\n{}", stderr(&out));
    let reqs = h.api.requests();
    let first = reqs.iter().find(|q| q.offers_tools()).expect("a request with tools");
    let offered = first.tool_names();
    assert!(
        !offered.iter().any(|t| t == "Bash"),
        "Bash offered to the model: {offered:?}"
    );
    assert!(
        offered.iter().any(|t| t == "Read") && offered.iter().any(|t| t == "Write"),
        "{offered:?}"
    );
    let results = reqs.last().unwrap().tool_results().join("\n");
    assert!(!results.contains("42xyz"), "the shell ran: {results}");
    assert!(results.contains("No such tool available: Bash"), "{results}");
}

#[test]
fn a_granted_shell_runs() {
    let ceiling = "    allowed_tools: [Read, Bash]\n";
    let Some(h) = real_with(asks_for_the_shell(), "", ceiling, "a_granted_shell_runs") else {
        return;
    };
    h.home
        .drop_task("q.md", "---\nallowed_tools: [Read, Bash]\n---\nsay hi\n");
    let out = h.run_once();
    let r = h.home.result_of("q.md");
    assert_eq!(r["status"], "succeeded", "{r}\n{}", stderr(&out));
    let results = h.api.requests().last().unwrap().tool_results().join("\n");
    assert!(results.contains("42xyz"), "{results}");
}

/// A model that fails the first `n` requests of runs (those offering tools) with
/// `error`, then answers.
fn fails_first(n: usize, error: Reply) -> MockApi {
    let seen = AtomicUsize::new(0);
    MockApi::anthropic(move |r| {
        if r.offers_tools() && seen.fetch_add(1, Ordering::SeqCst) < n {
            error.clone()
        } else {
            Reply::text("recovered")
        }
    })
}

fn attempts(r: &serde_json::Value) -> usize {
    r["attempts"].as_array().map_or(0, Vec::len)
}

#[test]
fn api_errors_are_classified_from_the_real_stream() {
    // (HTTP error, class, retried by the daemon)
    let cases = [
        (
            Reply::error(401, "authentication_error", "invalid x-api-key"),
            "auth",
            false,
        ),
        (
            Reply::error(404, "not_found_error", "model: nope"),
            "model_not_found",
            false,
        ),
        (Reply::error(529, "overloaded_error", "Overloaded"), "overloaded", true),
    ];
    for (error, kind, retried) in cases {
        // The CLI itself tries twice (CLAUDE_CODE_MAX_RETRIES=1) before it gives up;
        // a daemon retry gets a healthy API.
        let Some(h) = real(fails_first(2, error), "", "api_errors_are_classified") else {
            return;
        };
        h.home.drop_task("q.md", "hello\n");
        h.run_once();
        let r = h.home.result_of("q.md");
        if retried {
            assert_eq!(r["status"], "succeeded", "{kind}: {r}");
            assert_eq!(attempts(&r), 2, "{kind}: {r}");
            assert_eq!(r["attempts"][0]["error"]["kind"], kind, "{r}");
        } else {
            assert_eq!(r["status"], "failed", "{kind}: {r}");
            assert_eq!(r["error"]["kind"], kind, "{r}");
            assert_eq!(attempts(&r), 1, "{kind} is not retried: {r}");
        }
    }
}

#[test]
fn a_rate_limit_pauses_the_agent_without_using_up_attempts() {
    let api = fails_first(
        2,
        Reply::error(
            429,
            "rate_limit_error",
            "Number of requests has exceeded your rate limit",
        ),
    );
    let Some(h) = real(api, "", "a_rate_limit_pauses") else {
        return;
    };
    h.home.drop_task("q.md", "---\nretries: 0\n---\nhello\n");
    h.run_once();
    let r = h.home.result_of("q.md");
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["attempts"][0]["error"]["kind"], "rate_limited", "{r}");
    assert_eq!(h.home.events_of("agent_paused").len(), 1);
}

#[test]
fn resuming_an_unknown_session_fails_at_once() {
    let api = MockApi::anthropic(|_| Reply::text("never asked"));
    let Some(h) = real(api, "", "resuming_an_unknown_session") else {
        return;
    };
    h.home.drop_task(
        "q.md",
        "---\nsession: 123e4567-e89b-42d3-a456-426614174000\n---\ngo on\n",
    );
    h.run_once();
    let r = h.home.result_of("q.md");
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["kind"], "session_not_found", "{r}");
    assert_eq!(attempts(&r), 1, "it can never succeed, so it is not retried: {r}");
}

fn steps_task(budget: Option<&str>) -> String {
    let budget = budget.map(|b| format!("budget_usd: {b}\n")).unwrap_or_default();
    format!("---\nsteps: [Look, Think, Answer]\n{budget}---\nThe question\n")
}

#[test]
fn a_resumed_step_costs_only_its_own_run() {
    let api = MockApi::anthropic(|_| Reply::text("a step's answer"));
    let Some(h) = real(api, "", "a_resumed_step_costs_only_its_own_run") else {
        return;
    };
    h.home.drop_task("s.md", steps_task(None));
    h.run_once();
    let r = h.home.result_of("s.md");
    assert_eq!(r["status"], "succeeded", "{r}");
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    let cost = |i: usize| steps[i]["cost_usd"].as_f64().unwrap();
    let session = &steps[0]["session_id"];
    assert!(steps.iter().all(|s| &s["session_id"] == session), "one session: {r}");
    // The CLI's total_cost_usd grows over a resumed session: the third run's total is
    // at least the first two runs' costs together. Its own share is one run's.
    assert!(cost(2) < cost(0) + cost(1), "{r}");
    let total = r["cost_usd"].as_f64().unwrap();
    assert!((total - (cost(0) + cost(1) + cost(2))).abs() < 1e-9, "{r}");
}

#[test]
fn budget_usd_is_the_whole_task_not_each_step() {
    let api = MockApi::anthropic(|_| Reply::text("a step's answer"));
    let Some(h) = real(api, "", "budget_usd_is_the_whole_task") else {
        return;
    };
    // One run costs about $0.001: the budget covers one step and part of another.
    h.home.drop_task("s.md", steps_task(Some("0.0015")));
    h.run_once();
    let r = h.home.result_of("s.md");
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["kind"], "budget_exceeded", "{r}");
    assert!(r["steps"].as_array().unwrap().len() < 3, "{r}");
    let plan = h.home.task_dir(r["id"].as_str().unwrap()).join("plan.json");
    assert!(std::fs::read_to_string(plan).unwrap().contains("0.0015"));
}

#[cfg(target_os = "linux")]
#[test]
fn kill_9_of_the_daemon_mid_bash_leaves_no_process_behind() {
    let api = MockApi::anthropic(|r| {
        if r.turn() == 0 && r.offers_tools() {
            Reply::tool(
                "Bash",
                json!({"command": SLEEPER, "description": "wait", "timeout": 120000}),
            )
        } else {
            Reply::text("done")
        }
    });
    let Some(h) = real_with(api, "", "    allowed_tools: [Read, Bash]\n", "kill_9_mid_bash") else {
        return;
    };
    h.home
        .drop_task("b.md", "---\nallowed_tools: [Bash]\nretries: 0\n---\nwait a while\n");
    kill_9_mid_command_leaves_nothing(&h);
}

#[cfg(unix)]
#[test]
fn a_tool_loop_makes_real_edits_that_git_sees() {
    let workdir = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let wd = workdir.clone();
    let api = MockApi::anthropic(move |r| {
        let path = format!("{}/hello.txt", wd.lock().unwrap());
        match (r.offers_tools(), r.turn()) {
            (true, 0) => Reply::tool("Write", json!({"file_path": path, "content": "hi from the model\n"})),
            (true, 1) => Reply::tool("Read", json!({"file_path": path})),
            _ => Reply::text("wrote hello.txt and read it back"),
        }
    });
    let Some(h) = real(api, "", "a_tool_loop_makes_real_edits") else {
        return;
    };
    let repo = h.home.path.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git_sh(&repo, "git init -q && git commit -q --allow-empty -m init");
    *workdir.lock().unwrap() = repo.display().to_string();
    h.home.drop_task(
        "w.md",
        "---\nworkdir: repo\nallowed_tools: [Read, Write]\n---\nwrite hello.txt\n",
    );
    h.run_once();
    let r = h.home.result_of("w.md");
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(
        (r["turns"].as_u64(), r["tool_calls"].as_u64()),
        (Some(3), Some(2)),
        "{r}"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("hello.txt")).unwrap(),
        "hi from the model\n"
    );
    assert_eq!(r["files_changed"], json!(["hello.txt"]), "{r}");
    let results = h.api.requests().last().unwrap().tool_results().join("\n");
    assert!(
        results.contains("hi from the model"),
        "the Read saw the Write: {results}"
    );
}

#[test]
fn max_turns_stops_a_model_that_never_finishes() {
    let api = MockApi::anthropic(|r| {
        if r.offers_tools() {
            Reply::tool("Read", json!({"file_path": "/nonexistent-for-the-test"}))
        } else {
            Reply::text("side request")
        }
    });
    let Some(h) = real(api, "", "max_turns_stops_a_model") else {
        return;
    };
    h.home.drop_task("loop.md", "---\nmax_turns: 2\n---\nloop forever\n");
    h.run_once();
    let r = h.home.result_of("loop.md");
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["kind"], "max_turns", "{r}");
    assert_eq!(r["attempts"].as_array().unwrap().len(), 1, "not retried: {r}");
}

#[test]
fn a_reply_continues_the_session_and_costs_only_its_run() {
    let api = MockApi::anthropic(|_| Reply::text("an answer"));
    let Some(h) = real(api, "", "a_reply_continues_the_session") else {
        return;
    };
    h.home.drop_task("q.md", "first question\n");
    h.run_once();
    let first = h.home.result_of("q.md");
    assert_eq!(first["status"], "succeeded", "{first}");
    let id = first["id"].as_str().unwrap();
    let out = h.cmd().args(["reply", id, "a second question"]).output().unwrap();
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
    assert_eq!(second["session_id"], first["session_id"], "the same session");
    assert_eq!(second["turn_of"], first["id"]);
    // The model saw the whole conversation: the first exchange and the reply.
    let last = h
        .api
        .requests()
        .into_iter()
        .rev()
        .find(|q| q.offers_tools())
        .unwrap()
        .text();
    assert!(
        last.contains("first question") && last.contains("a second question"),
        "{last}"
    );
    let (c1, c2) = (
        first["cost_usd"].as_f64().unwrap(),
        second["cost_usd"].as_f64().unwrap(),
    );
    assert!(
        c2 < c1 * 1.9,
        "the reply's own cost, not the session's total: {c1} then {c2}"
    );
}

/// A check that fails once: the real CLI is asked again with `--resume`, and
/// the model sees the whole conversation and what the check printed.
#[test]
fn a_failed_verify_round_continues_the_real_session_with_the_checks_output() {
    let api = MockApi::anthropic(|_| Reply::text("fixed it"));
    let Some(h) = real(api, "", "a_failed_verify_round_continues_the_real_session") else {
        return;
    };
    h.home.drop_task(
        "fix.md",
        "---\nverify: 'echo x >> checks.txt; test $(wc -l < checks.txt) -ge 2 || { echo VERIFY-SAYS-3-FAILED; exit 1; }'\n---\nMake the tests pass.\n",
    );
    let out = h.run_once();
    let r = h.home.result_of("fix.md");
    assert_eq!(r["status"], "succeeded", "{r}\n{}", stderr(&out));
    let rounds = r["verify"].as_array().unwrap();
    assert_eq!(
        rounds.iter().map(|v| v["exit_code"].as_i64()).collect::<Vec<_>>(),
        [Some(1), Some(0)]
    );
    let runs: Vec<_> = h.api.requests().into_iter().filter(|q| q.offers_tools()).collect();
    assert_eq!(runs.len(), 2, "one run, then one after the failed check");
    let second = runs[1].text();
    assert!(
        second.contains("Make the tests pass.") && second.contains("fixed it"),
        "the same session, with the first exchange: {second}"
    );
    assert!(
        second.contains("VERIFY-SAYS-3-FAILED") && second.contains("it exited with code 1"),
        "{second}"
    );
    let attempts = r["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{r}");
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(h.home.task_dir(r["id"].as_str().unwrap()).join("plan.json")).unwrap())
            .unwrap();
    assert_eq!(plan["verify"]["rounds"], 3);
}

#[test]
fn a_slow_stream_is_stopped_by_its_timeout() {
    let api = MockApi::anthropic(|r| {
        if r.offers_tools() {
            Reply::Slow {
                pieces: (0..100).map(|i| format!("w{i} ")).collect(),
                delay: std::time::Duration::from_millis(200),
            }
        } else {
            Reply::text("side request")
        }
    });
    let Some(h) = real(api, "", "a_slow_stream_is_stopped") else {
        return;
    };
    h.home.drop_task("slow.md", "---\ntimeout: 3s\n---\ntake your time\n");
    let started = std::time::Instant::now();
    h.run_once();
    let r = h.home.result_of("slow.md");
    assert_eq!(r["error"]["kind"], "timeout", "{r}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "the 20 s stream was cut"
    );
}

/// Records runs of the real CLI into `tests/data/agent-output/claude-<version>/`
/// (stdout, stderr, exit code), for the fakes and `tests/suite/recordings.rs`. Runs only
/// with `ORCH_RECORD=1`:
/// `ORCH_RECORD=1 cargo test --test suite real_claude::record_runs -- --nocapture`.
#[test]
fn record_runs() {
    if std::env::var_os("ORCH_RECORD").is_none() {
        return;
    }
    let Some(cli) = find(Cli::Claude, "record_runs") else {
        return;
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/agent-output/claude-2.1.332");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cases: Vec<(&str, MockApi, Option<String>)> = vec![
        (
            "server_error",
            MockApi::anthropic(|_| Reply::error(500, "api_error", "Internal server error")),
            None,
        ),
        // Nothing listens there: a refused connection.
        (
            "network",
            MockApi::anthropic(|_| Reply::text("unused")),
            Some(format!("http://127.0.0.1:{closed}")),
        ),
    ];
    for (name, api, base) in cases {
        let h = RealHome::claude(cli.clone(), api, "", "");
        let mut c = std::process::Command::new(&h.cli);
        c.args(["-p", "--output-format", "stream-json", "--verbose"])
            .envs(h.env())
            .current_dir(&h.home.path);
        if let Some(b) = &base {
            c.env("ANTHROPIC_BASE_URL", b);
        }
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"Say hello.").unwrap();
        let out = child.wait_with_output().unwrap();
        let scrub =
            |b: &[u8]| String::from_utf8_lossy(b).replace(&h.home.path.display().to_string(), "/home/dev/check");
        std::fs::write(dir.join(format!("{name}.out")), scrub(&out.stdout)).unwrap();
        std::fs::write(dir.join(format!("{name}.err")), scrub(&out.stderr)).unwrap();
        std::fs::write(
            dir.join(format!("{name}.rc")),
            format!("{}\n", out.status.code().unwrap_or(-1)),
        )
        .unwrap();
        eprintln!("recorded {name}: exit {:?}", out.status.code());
    }
}
