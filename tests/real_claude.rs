//! The real Claude Code CLI (pinned in `agent-clis/`) run by the daemon against
//! a scripted Anthropic Messages API on 127.0.0.1.

mod common;
use common::mock_api::{MockApi, Reply};
use common::real::{Cli, RealHome, find};
use common::*;
use serde_json::json;

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
