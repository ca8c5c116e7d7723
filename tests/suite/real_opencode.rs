//! The real opencode (pinned in `agent-clis/`) run by the daemon against a
//! scripted OpenAI-compatible chat completions API on 127.0.0.1.

use crate::common::mock_api::{ApiRequest, MockApi, Reply};
use crate::common::real::{
    Cli, RealHome, a_slow_stream_is_cut_by_the_timeout, find, limits_stop_a_looping_model, record, recordings,
};
#[cfg(target_os = "linux")]
use crate::common::real::{SLEEPER, kill_9_mid_command_leaves_nothing};
#[cfg(unix)]
use crate::common::real::{cancel_mid_stream, git_repo};
use crate::common::*;
use serde_json::json;

fn real(api: MockApi, top: &str, opencode: &str, test: &str) -> Option<RealHome> {
    find(Cli::Opencode, test).map(|cli| RealHome::opencode(cli, api, top, opencode))
}

/// The run's own requests (a title request offers no tools).
fn run_requests(h: &RealHome) -> Vec<ApiRequest> {
    h.api.requests().into_iter().filter(|q| q.offers_tools()).collect()
}

#[test]
fn an_opencode_task_runs_with_exactly_its_tools() {
    let api = MockApi::openai(|_| Reply::text("MOCK-ANSWER from opencode"));
    let Some(h) = real(api, "", "", "an_opencode_task_runs") else {
        return;
    };
    h.home.drop_task(
        "q.md",
        "---\nagent: opencode\nallowed_tools: [Read, Grep]\n---\nSummarise the folder.\n",
    );
    let out = h.run_once();
    let r = h.home.result_of("q.md");
    assert_eq!(r["status"], "succeeded", "{r}\n{}", stderr(&out));
    assert_eq!(
        (r["agent"].as_str(), r["output"].as_str()),
        (Some("opencode"), Some("MOCK-ANSWER from opencode"))
    );
    assert_eq!(r["turns"], 1);
    assert!(r["session_id"].as_str().is_some_and(|s| s.starts_with("ses_")), "{r}");
    assert!(r["tokens"]["input"].as_u64().unwrap() > 0, "{r}");
    let runs = run_requests(&h);
    assert!(
        runs[0].text().contains("Summarise the folder."),
        "the prompt from stdin"
    );
    let mut tools = runs[0].tool_names();
    tools.sort();
    assert_eq!(tools, ["grep", "read"], "{tools:?}");
    for line in h.proxy.refused() {
        assert!(line.starts_with("CONNECT "), "{line}");
    }
}

#[cfg(unix)]
#[test]
fn a_tool_loop_makes_real_edits_that_git_sees() {
    let workdir = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let wd = workdir.clone();
    let api = MockApi::openai(move |r| {
        let path = format!("{}/hello.txt", wd.lock().unwrap());
        if r.offers_tools() && r.tool_results().is_empty() {
            Reply::tool("write", json!({"filePath": path, "content": "hi from the model\n"}))
        } else {
            Reply::text("wrote hello.txt")
        }
    });
    let Some(h) = real(api, "", "", "opencode_tool_loop") else {
        return;
    };
    let repo = git_repo(&h);
    *workdir.lock().unwrap() = repo.display().to_string();
    h.home.drop_task(
        "w.md",
        "---\nagent: opencode\nworkdir: repo\nallowed_tools: [Read, Write]\n---\nwrite hello.txt\n",
    );
    h.run_once();
    let r = h.home.result_of("w.md");
    assert_eq!(r["status"], "succeeded", "{r}");
    // (It takes its project folder from PWD: the daemon's own would make
    // the workdir "external", and the write be refused.)
    let runs = run_requests(&h);
    assert!(
        repo.join("hello.txt").exists(),
        "tools {:?}; results {:?}",
        runs[0].tool_names(),
        runs.last().unwrap().tool_results()
    );
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
fn a_tool_not_granted_does_not_exist_and_does_not_run() {
    let api = MockApi::openai(|r| {
        if r.offers_tools() && r.tool_results().is_empty() {
            Reply::tool("bash", json!({"command": "echo pwned > pwned.txt", "description": "x"}))
        } else {
            Reply::text("done")
        }
    });
    let Some(h) = real(api, "", "", "opencode_tool_not_granted") else {
        return;
    };
    h.home.drop_task(
        "r.md",
        "---\nagent: opencode\nallowed_tools: [Read]\n---\nrun something\n",
    );
    h.run_once();
    let runs = run_requests(&h);
    assert!(
        !runs[0].tool_names().contains(&"bash".to_string()),
        "{:?}",
        runs[0].tool_names()
    );
    assert!(!h.home.path.join("pwned.txt").exists(), "a denied tool ran");
}

#[test]
fn api_errors_are_classified_and_limits_pause_it() {
    for (status, kind, expected) in [
        (401, "invalid_api_key", "auth"),
        (400, "invalid_request_error", "invalid_request"),
    ] {
        let api = MockApi::openai(move |_| Reply::error(status, kind, "the mock's error text"));
        let Some(h) = real(api, "", "", "opencode_errors") else {
            return;
        };
        h.home
            .drop_task("q.md", "---\nagent: opencode\nretries: 1\n---\nhello\n");
        h.run_once();
        let r = h.home.result_of("q.md");
        assert_eq!(
            (r["status"].as_str(), r["error"]["kind"].as_str()),
            (Some("failed"), Some(expected)),
            "{r}"
        );
        assert_eq!(r["attempts"].as_array().unwrap().len(), 1, "{r}");
    }
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let api = MockApi::openai(move |r| {
        // Its own retries (about eight, at once with `retry-after: 0`) fail too.
        if r.offers_tools() && calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 12 {
            Reply::error(429, "rate_limit_exceeded", "Rate limit reached")
        } else {
            Reply::text("after the pause")
        }
    });
    let Some(h) = real(api, "", "", "opencode_rate_limit") else {
        return;
    };
    h.home
        .drop_task("q.md", "---\nagent: opencode\nretries: 0\n---\nhello\n");
    h.run_once();
    let r = h.home.result_of("q.md");
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["attempts"][0]["error"]["kind"], "rate_limited", "{r}");
    assert_eq!(h.home.events_of("agent_paused")[0]["agent"], "opencode");
}

#[test]
fn steps_and_a_reply_continue_one_session() {
    let api = MockApi::openai(|_| Reply::text("an answer"));
    let Some(h) = real(api, "", "", "opencode_sessions") else {
        return;
    };
    h.home.drop_task(
        "s.md",
        "---\nagent: opencode\nsteps: [Look, Answer]\n---\nThe question\n",
    );
    h.run_once();
    let r = h.home.result_of("s.md");
    assert_eq!(r["status"], "succeeded", "{r}");
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps[0]["session_id"], steps[1]["session_id"], "{r}");
    let last = run_requests(&h).last().unwrap().text();
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
    assert_eq!(
        (second["status"].as_str(), &second["session_id"]),
        (Some("succeeded"), &steps[1]["session_id"]),
        "{second}"
    );
    let last = run_requests(&h).last().unwrap().text();
    assert!(
        last.contains("Step 2 of 2: Answer") && last.contains("one more thing"),
        "{last}"
    );
}

#[test]
fn resuming_an_unknown_session_fails_at_once() {
    let api = MockApi::openai(|_| Reply::text("never asked"));
    let Some(h) = real(api, "", "", "opencode_unknown_session") else {
        return;
    };
    h.home.drop_task(
        "q.md",
        "---\nagent: opencode\nsession: ses_doesnotexist123\n---\ngo on\n",
    );
    h.run_once();
    let r = h.home.result_of("q.md");
    assert_eq!(r["error"]["kind"], "session_not_found", "{r}");
    assert_eq!(r["attempts"].as_array().unwrap().len(), 1, "{r}");
}

/// opencode reports each step's tokens as it ends, so every limit stops it
/// while it runs: turns, tool calls, tokens, and dollars from the config's
/// prices. One request is 120 input and 25 output tokens, $0.000370 at
/// these prices: the budgets are passed by the third.
#[test]
fn limits_stop_a_model_that_never_finishes() {
    let api = MockApi::openai(|r| {
        if r.offers_tools() {
            Reply::tool("read", json!({"filePath": "orchestrator.yaml"}))
        } else {
            Reply::text("a title")
        }
    });
    let prices = "    prices: {input: 1.0, output: 10.0}\n";
    let Some(h) = real(api, "", prices, "opencode_limits") else {
        return;
    };
    limits_stop_a_looping_model(
        &h,
        "opencode",
        &[
            ("max_tool_calls: 3", "loop-tools", "max_tool_calls", 8),
            ("max_turns: 2", "loop-turns", "max_turns", 6),
            ("budget_tokens: 400", "loop-tokens", "budget_exceeded", 7),
            ("budget_usd: 0.001", "loop-dollars", "budget_exceeded", 7),
        ],
    );
}

#[test]
fn a_slow_stream_is_stopped_by_its_timeout() {
    let api = MockApi::openai(|r| {
        if r.offers_tools() {
            Reply::Slow {
                pieces: (0..100).map(|i| format!("w{i} ")).collect(),
                delay: std::time::Duration::from_millis(200),
            }
        } else {
            Reply::text("a title")
        }
    });
    let Some(h) = real(api, "", "", "opencode_slow_stream") else {
        return;
    };
    a_slow_stream_is_cut_by_the_timeout(&h, "opencode", |q| q.offers_tools());
}

/// A cancel mid-stream ends the CLI long before the grace's SIGKILL, and
/// nothing of it is left.
#[cfg(unix)]
#[test]
fn a_cancel_mid_stream_stops_the_real_cli() {
    let api = MockApi::openai(|r| {
        if r.offers_tools() {
            Reply::Slow {
                pieces: (0..100).map(|i| format!("piece {i} ")).collect(),
                delay: std::time::Duration::from_millis(100),
            }
        } else {
            Reply::text("a title")
        }
    });
    let Some(h) = real(api, "kill_grace: 30s", "", "opencode_cancel") else {
        return;
    };
    h.home
        .drop_task("slow.md", "---\nagent: opencode\n---\ntake your time\n");
    let took = cancel_mid_stream(&h, |q| q.offers_tools());
    // SIGKILL comes after 30 s; the CLI ended on its stop signal well before.
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
}

/// A daemon killed while opencode runs a command leaves nothing behind.
#[cfg(target_os = "linux")]
#[test]
fn kill_9_of_the_daemon_mid_command_leaves_no_process_behind() {
    let api = MockApi::openai(|r| {
        if r.offers_tools() && r.tool_results().is_empty() {
            Reply::tool("bash", json!({"command": SLEEPER, "description": "wait"}))
        } else {
            Reply::text("done")
        }
    });
    let Some(h) = real(
        api,
        "",
        "    allowed_tools: [Read, Bash]\n",
        "opencode_kill_9_mid_command",
    ) else {
        return;
    };
    h.home.drop_task(
        "b.md",
        "---\nagent: opencode\nallowed_tools: [Bash]\nretries: 0\n---\nwait a while\n",
    );
    kill_9_mid_command_leaves_nothing(&h);
}

/// Records runs of the real CLI into `tests/data/agent-output/opencode-1.18.33/`
/// (stdout, stderr, exit code), for `tests/suite/recordings.rs`. Runs only
/// with `ORCH_RECORD=1`:
/// `ORCH_RECORD=1 cargo test --test suite real_opencode::record_runs -- --nocapture`.
#[test]
fn record_runs() {
    if std::env::var_os("ORCH_RECORD").is_none() {
        return;
    }
    let Some(cli) = find(Cli::Opencode, "record_runs") else {
        return;
    };
    let dir = recordings("opencode-1.18.33");
    let tool = || {
        MockApi::openai(|r| {
            if r.offers_tools() && r.tool_results().is_empty() {
                Reply::tool("read", json!({"filePath": "orchestrator.yaml"}))
            } else {
                Reply::text("read it")
            }
        })
    };
    let error =
        |status, kind: &'static str| MockApi::openai(move |_| Reply::error(status, kind, "the mock's error text"));
    let cases: Vec<(&str, MockApi, Option<&str>)> = vec![
        (
            "text",
            MockApi::openai(|_| Reply::text("MOCK-ANSWER from opencode")),
            None,
        ),
        ("tool", tool(), None),
        ("auth", error(401, "invalid_api_key"), None),
        ("invalid_request", error(400, "invalid_request_error"), None),
        ("rate_limit", error(429, "rate_limit_exceeded"), None),
        (
            "resume_unknown",
            MockApi::openai(|_| Reply::text("unused")),
            Some("ses_doesnotexist123"),
        ),
    ];
    for (name, api, session) in cases {
        let h = RealHome::opencode(cli.clone(), api, "", "");
        let tools = ["Read".to_string()];
        let args = orchestrator::agents::opencode::args(&[], session);
        let mut env: Vec<(String, String)> = orchestrator::agents::opencode::ENV
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push((
            "OPENCODE_CONFIG_CONTENT".into(),
            orchestrator::agents::opencode::config(&tools),
        ));
        record(&h, &args, &env, &dir, name);
    }
}
