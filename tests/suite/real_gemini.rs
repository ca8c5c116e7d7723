//! The real Gemini CLI (pinned in `agent-clis/`) run by the daemon against a
//! scripted Gemini API on 127.0.0.1.

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

fn real(api: MockApi, top: &str, gemini: &str, test: &str) -> Option<RealHome> {
    find(Cli::Gemini, test).map(|cli| RealHome::gemini(cli, api, top, gemini))
}

fn attempts(r: &serde_json::Value) -> usize {
    r["attempts"].as_array().map_or(0, Vec::len)
}

#[test]
fn a_gemini_task_runs_and_its_answer_and_tokens_are_the_result() {
    let api = MockApi::gemini(|_| Reply::text("MOCK-ANSWER from gemini"));
    let Some(h) = real(api, "", "", "a_gemini_task_runs") else {
        return;
    };
    h.home.drop_task(
        "q.md",
        "---\nagent: gemini\nallowed_tools: [Read, Grep]\n---\nSummarise the folder.\n",
    );
    let out = h.run_once();
    let r = h.home.result_of("q.md");
    assert_eq!(r["status"], "succeeded", "{r}\n{}", stderr(&out));
    assert_eq!(
        (r["agent"].as_str(), r["output"].as_str()),
        (Some("gemini"), Some("MOCK-ANSWER from gemini"))
    );
    assert_eq!(r["turns"], 1);
    assert!(r["session_id"].as_str().is_some_and(|s| s.len() == 36), "{r}");
    assert_eq!(
        r["tokens"],
        json!({"input": INPUT_TOKENS, "output": OUTPUT_TOKENS, "cached": CACHED_TOKENS}),
        "{r}"
    );
    let runs: Vec<_> = h.api.requests().into_iter().filter(|q| q.offers_tools()).collect();
    let sent = runs.first().expect("the run's request");
    assert!(sent.text().contains("Summarise the folder."), "the prompt from stdin");
    // Exactly the task's tools exist for the model: its policy file.
    let mut tools = sent.tool_names();
    tools.sort();
    // (`read_many_files`, also allowed for Read, is not among 0.61.0's tools.)
    assert_eq!(tools, ["grep_search", "read_file"], "{tools:?}");
    let dir = h.home.task_dir(r["id"].as_str().unwrap());
    assert!(
        std::fs::read_to_string(dir.join("gemini-policy.toml"))
            .unwrap()
            .contains("deny")
    );
    // One request, to the model the settings name; nothing else was asked.
    assert_eq!(
        h.api.requests().len(),
        1,
        "{:?}",
        h.api.requests().iter().map(|q| &q.path).collect::<Vec<_>>()
    );
    assert!(h.proxy.refused().is_empty(), "{:?}", h.proxy.refused());
}

#[cfg(unix)]
#[test]
fn a_tool_loop_makes_real_edits_that_git_sees() {
    let api = MockApi::gemini(|r| {
        if r.tool_results().is_empty() && r.offers_tools() {
            Reply::tool(
                "write_file",
                json!({"file_path": "hello.txt", "content": "hi from the model\n"}),
            )
        } else {
            Reply::text("wrote hello.txt")
        }
    });
    let Some(h) = real(api, "", "", "gemini_tool_loop") else {
        return;
    };
    let repo = git_repo(&h);
    h.home.drop_task(
        "w.md",
        "---\nagent: gemini\nworkdir: repo\nallowed_tools: [Read, Write]\n---\nwrite hello.txt\n",
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
}

#[test]
fn a_tool_not_granted_does_not_exist() {
    let api = MockApi::gemini(|r| {
        if r.tool_results().is_empty() && r.offers_tools() {
            Reply::tool("run_shell_command", json!({"command": "echo pwned > pwned.txt"}))
        } else {
            Reply::text("done")
        }
    });
    let Some(h) = real(api, "", "", "gemini_tool_not_granted") else {
        return;
    };
    h.home.drop_task(
        "r.md",
        "---\nagent: gemini\nallowed_tools: [Read]\n---\nrun something\n",
    );
    h.run_once();
    let r = h.home.result_of("r.md");
    let sent = h.api.requests().into_iter().find(|q| q.offers_tools()).unwrap();
    assert!(
        !sent.tool_names().contains(&"run_shell_command".to_string()),
        "{:?}",
        sent.tool_names()
    );
    assert!(!h.home.path.join("pwned.txt").exists(), "a denied tool ran: {r}");
}

#[test]
fn api_errors_are_classified_from_the_real_stream() {
    for (status, kind, expected, tries) in [
        (401, "UNAUTHENTICATED", "auth", 1),
        (400, "INVALID_ARGUMENT", "invalid_request", 1),
    ] {
        let api = MockApi::gemini(move |_| Reply::error(status, kind, "the mock's error text"));
        let Some(h) = real(api, "", "", "gemini_errors") else {
            return;
        };
        h.home.drop_task("q.md", "---\nagent: gemini\nretries: 1\n---\nhello\n");
        h.run_once();
        let r = h.home.result_of("q.md");
        assert_eq!(
            (r["status"].as_str(), r["error"]["kind"].as_str()),
            (Some("failed"), Some(expected)),
            "{r}"
        );
        assert_eq!(attempts(&r), tries, "{r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("the mock's error text"),
            "{r}"
        );
    }
}

#[test]
fn a_quota_error_pauses_the_agent_without_using_up_attempts() {
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let api = MockApi::gemini(move |r| {
        if r.offers_tools() && calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
            Reply::error(
                429,
                "RESOURCE_EXHAUSTED",
                "Resource has been exhausted (e.g. check quota).",
            )
        } else {
            Reply::text("after the pause")
        }
    });
    let Some(h) = real(api, "", "", "gemini_quota") else {
        return;
    };
    h.home.drop_task("q.md", "---\nagent: gemini\nretries: 0\n---\nhello\n");
    h.run_once();
    let r = h.home.result_of("q.md");
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["attempts"][0]["error"]["kind"], "rate_limited", "{r}");
    assert_eq!(h.home.events_of("agent_paused")[0]["agent"], "gemini");
}

#[test]
fn steps_and_a_reply_continue_one_session() {
    let api = MockApi::gemini(|_| Reply::text("an answer"));
    let Some(h) = real(api, "", "", "gemini_sessions") else {
        return;
    };
    h.home
        .drop_task("s.md", "---\nagent: gemini\nsteps: [Look, Answer]\n---\nThe question\n");
    h.run_once();
    let r = h.home.result_of("s.md");
    assert_eq!(r["status"], "succeeded", "{r}");
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps[0]["session_id"], steps[1]["session_id"], "{r}");
    let last = h
        .api
        .requests()
        .into_iter()
        .rev()
        .find(|q| q.offers_tools())
        .unwrap()
        .text();
    assert!(
        last.contains("Step 1 of 2: Look") && last.contains("Step 2 of 2: Answer"),
        "{last}"
    );
    let out = h
        .cmd()
        .args(["reply", r["id"].as_str().unwrap(), "one more thing"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let reply_id = stdout(&out).trim().to_string();
    h.run_once();
    let second = h
        .home
        .results()
        .into_iter()
        .find(|x| x["id"] == reply_id.as_str())
        .unwrap();
    assert_eq!(second["status"], "succeeded", "{second}");
    assert_eq!(second["session_id"], steps[1]["session_id"]);
    let last = h
        .api
        .requests()
        .into_iter()
        .rev()
        .find(|q| q.offers_tools())
        .unwrap()
        .text();
    assert!(
        last.contains("Step 2 of 2: Answer") && last.contains("one more thing"),
        "{last}"
    );
}

#[test]
fn resuming_an_unknown_session_fails_at_once() {
    let api = MockApi::gemini(|_| Reply::text("never asked"));
    let Some(h) = real(api, "", "", "gemini_unknown_session") else {
        return;
    };
    h.home.drop_task(
        "q.md",
        "---\nagent: gemini\nsession: 00000000-0000-4000-8000-000000000000\n---\ngo on\n",
    );
    h.run_once();
    let r = h.home.result_of("q.md");
    assert_eq!(r["error"]["kind"], "session_not_found", "{r}");
    assert_eq!(attempts(&r), 1, "{r}");
}

/// Gemini's stream reports tokens only in its final `result`, so budgets
/// hold between runs (`prices_turn_gemini_tokens_into_dollars_and_budgets_hold`);
/// turns and tool calls stop it while it runs.
#[test]
fn limits_stop_a_model_that_never_finishes() {
    let api = MockApi::gemini(|r| {
        if r.offers_tools() {
            Reply::tool("read_file", json!({"file_path": "orchestrator.yaml"}))
        } else {
            Reply::text("side request")
        }
    });
    let Some(h) = real(api, "", "", "gemini_limits") else {
        return;
    };
    limits_stop_a_looping_model(
        &h,
        "gemini",
        &[
            ("max_tool_calls: 3", "loop-tools", "max_tool_calls", 8),
            ("max_turns: 2", "loop-turns", "max_turns", 6),
        ],
    );
}

#[test]
fn a_slow_stream_is_stopped_by_its_timeout() {
    let api = MockApi::gemini(|r| {
        if r.offers_tools() {
            Reply::Slow {
                pieces: (0..100).map(|i| format!("w{i} ")).collect(),
                delay: std::time::Duration::from_millis(200),
            }
        } else {
            Reply::text("side request")
        }
    });
    let Some(h) = real(api, "", "", "gemini_slow_stream") else {
        return;
    };
    a_slow_stream_is_cut_by_the_timeout(&h, "gemini", |q| q.offers_tools());
}

#[test]
fn prices_turn_gemini_tokens_into_dollars_and_budgets_hold() {
    let api = MockApi::gemini(|_| Reply::text("a step's answer"));
    let Some(h) = real(api, "", PRICES, "prices_turn_gemini_tokens_into_dollars") else {
        return;
    };
    prices_and_budgets_hold(&h, "gemini");
}

/// A cancel mid-stream ends the CLI by its signal (SIGINT) long before the
/// grace's SIGKILL, and nothing of it is left.
#[cfg(unix)]
#[test]
fn a_cancel_mid_stream_stops_the_real_cli_by_its_signal() {
    let api = MockApi::gemini(|r| {
        if r.offers_tools() {
            Reply::Slow {
                pieces: (0..100).map(|i| format!("piece {i} ")).collect(),
                delay: std::time::Duration::from_millis(100),
            }
        } else {
            Reply::text("side request")
        }
    });
    let Some(h) = real(api, "kill_grace: 30s", "", "gemini_cancel") else {
        return;
    };
    h.home.drop_task("slow.md", "---\nagent: gemini\n---\ntake your time\n");
    let took = cancel_mid_stream(&h, |q| q.offers_tools());
    // SIGKILL comes after 30 s; the CLI ended on its stop signal well before.
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
}

/// A daemon killed while Gemini runs a command leaves nothing behind.
#[cfg(target_os = "linux")]
#[test]
fn kill_9_of_the_daemon_mid_command_leaves_no_process_behind() {
    let api = MockApi::gemini(|r| {
        if r.tool_results().is_empty() && r.offers_tools() {
            Reply::tool("run_shell_command", json!({"command": SLEEPER}))
        } else {
            Reply::text("done")
        }
    });
    let Some(h) = real(
        api,
        "",
        "    allowed_tools: [Read, Bash]\n",
        "gemini_kill_9_mid_command",
    ) else {
        return;
    };
    h.home.drop_task(
        "b.md",
        "---\nagent: gemini\nallowed_tools: [Bash]\nretries: 0\n---\nwait a while\n",
    );
    kill_9_mid_command_leaves_nothing(&h);
}

/// Records runs of the real CLI into `tests/data/agent-output/gemini-0.61.0/`
/// (stdout, stderr, exit code), for `tests/suite/recordings.rs`. Runs only
/// with `ORCH_RECORD=1`:
/// `ORCH_RECORD=1 cargo test --test suite real_gemini::record_runs -- --nocapture`.
#[test]
fn record_runs() {
    if std::env::var_os("ORCH_RECORD").is_none() {
        return;
    }
    let Some(cli) = find(Cli::Gemini, "record_runs") else {
        return;
    };
    let dir = recordings("gemini-0.61.0");
    let tool = || {
        MockApi::gemini(|r| {
            if r.tool_results().is_empty() {
                Reply::tool("write_file", json!({"file_path": "made.txt", "content": "hi\n"}))
            } else {
                Reply::text("made it")
            }
        })
    };
    let error =
        |status, kind: &'static str| MockApi::gemini(move |_| Reply::error(status, kind, "the mock's error text"));
    let cases: Vec<(&str, MockApi, Vec<String>, Option<&str>)> = vec![
        (
            "text",
            MockApi::gemini(|_| Reply::text("MOCK-ANSWER from gemini")),
            vec!["Read".into()],
            None,
        ),
        ("tool", tool(), vec!["Read".into(), "Write".into()], None),
        ("auth", error(401, "UNAUTHENTICATED"), vec!["Read".into()], None),
        (
            "invalid_request",
            error(400, "INVALID_ARGUMENT"),
            vec!["Read".into()],
            None,
        ),
        ("quota", error(429, "RESOURCE_EXHAUSTED"), vec!["Read".into()], None),
        (
            "resume_unknown",
            MockApi::gemini(|_| Reply::text("unused")),
            vec!["Read".into()],
            Some("00000000-0000-4000-8000-000000000000"),
        ),
    ];
    for (name, api, tools, session) in cases {
        let h = RealHome::gemini(cli.clone(), api, "", "");
        let policy = h.home.path.join("gemini-policy.toml");
        std::fs::write(&policy, orchestrator::agents::gemini::policy(&tools)).unwrap();
        let args = orchestrator::agents::gemini::args(&[], &policy.display().to_string(), session);
        let env: Vec<(String, String)> = orchestrator::agents::gemini::ENV
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        record(&h, &args, &env, &dir, name);
    }
}
