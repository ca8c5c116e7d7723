//! The real Claude Code CLI (pinned in `agent-clis/`) run by the daemon against
//! a scripted Anthropic Messages API on 127.0.0.1.

mod common;
use common::mock_api::{MockApi, Reply};
use common::real::{Cli, RealHome, find};
use common::*;
use serde_json::json;

fn real(api: MockApi, top: &str, test: &str) -> Option<RealHome> {
    find(Cli::Claude, test).map(|cli| RealHome::claude(cli, api, top))
}

#[test]
fn a_text_answer_is_the_result() {
    let api = MockApi::anthropic(|_| Reply::text("MOCK-ANSWER: the answer is 42."));
    let Some(h) = real(api, "", "a_text_answer_is_the_result") else { return };
    h.home.drop_task("q.md", "---\ntitle: ask\n---\nWhat is the answer?\n");
    let out = h.run_once();
    let r = h.home.result_of("q.md");
    assert_eq!(r["status"], "succeeded", "{r}\n{}", stderr(&out));
    assert_eq!(r["output"], "MOCK-ANSWER: the answer is 42.");
    eprintln!("{}", serde_json::to_string_pretty(&r).unwrap());
    eprintln!("refused: {:?}", h.proxy.refused());
    let _ = json!(1);
}
