//! Every recorded real Claude Code stream (tests/data/agent-output/) read by the
//! Claude reader, field by field, and classified.

use crate::common::read_stream;
use orchestrator::agents::classify;
use orchestrator::agents::outcome::{ErrorKind, Retry};
use orchestrator::agents::supervise::Exit;
use orchestrator::agents::{AgentReport, claude::ClaudeReader};
use orchestrator::config::AgentKind;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/agent-output/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Reads `bytes` through the same line splitter the supervisor uses, in chunks of `chunk` bytes.
fn read(bytes: &[u8], chunk: usize) -> AgentReport {
    read_stream(Box::new(ClaudeReader::default()), bytes, chunk)
}

fn read_all(name: &str) -> AgentReport {
    let bytes = fixture(name);
    let whole = read(&bytes, bytes.len().max(1));
    for chunk in [1, 7, 4096] {
        assert_eq!(
            read(&bytes, chunk),
            whole,
            "{name}: chunking must not change the reading"
        );
    }
    whole
}

fn exit(code: i32) -> Exit {
    Exit {
        code: Some(code),
        ..Default::default()
    }
}

#[test]
fn success_with_tools_v2_1_220() {
    let r = read_all("claude-stream-json-archistrator-success-with-tools-v2.1.220.ndjson");
    assert_eq!(r.session_id.as_deref(), Some("d0becfe3-d703-4311-8d8f-bf0ed7139dd7"));
    assert_eq!(r.model.as_deref(), Some("claude-sonnet-5"));
    assert!(r.result_seen && !r.is_error);
    assert_eq!(r.subtype.as_deref(), Some("success"));
    assert_eq!(r.terminal_reason.as_deref(), Some("completed"));
    assert_eq!((r.turns, r.tool_calls), (2, 1));
    assert_eq!(r.cost_usd, Some(0.054201000000000006));
    assert!(
        r.answer
            .as_deref()
            .unwrap()
            .starts_with("The tool result confirms the file is `hi`")
    );
    assert!(r.permission_denials.is_empty());
    assert_eq!(r.rate_limit_resets_at, None, "status `allowed` is not a limit");
    assert_eq!(r.invalid_lines, 0);
    assert_eq!(r.last_event.as_deref(), Some("result: success"));
    assert!(classify(AgentKind::Claude, &exit(0), &r).is_none());
}

#[test]
fn success_with_subagent_v2_1_220() {
    let r = read_all("claude-stream-json-archistrator-success-with-subagent-v2.1.220.ndjson");
    assert_eq!(r.session_id.as_deref(), Some("bda495be-48e6-4476-8117-9e8459107b7d"));
    assert_eq!((r.turns, r.tool_calls), (2, 1));
    assert_eq!(r.cost_usd, Some(0.11543595000000001));
    assert_eq!(r.answer.as_deref(), Some("The subagent answered: **4**."));
    assert_eq!(
        r.last_text.as_deref(),
        Some("The subagent answered: **4**."),
        "subagent text does not replace the top-level answer"
    );
    assert!(classify(AgentKind::Claude, &exit(0), &r).is_none());
}

#[test]
fn api_error_model_not_found_v2_1_220() {
    let r = read_all("claude-stream-json-archistrator-api-error-model-not-found-v2.1.220.ndjson");
    assert!(r.result_seen && r.is_error);
    assert_eq!(
        r.subtype.as_deref(),
        Some("success"),
        "API errors are not an error subtype"
    );
    assert_eq!(r.api_error.as_deref(), Some("model_not_found"));
    assert_eq!(r.api_error_status, Some(404));
    assert_eq!(r.terminal_reason.as_deref(), Some("api_error"));
    assert!(
        r.answer
            .as_deref()
            .unwrap()
            .contains("There's an issue with the selected model (no-such-model)")
    );
    let f = classify(AgentKind::Claude, &exit(1), &r).unwrap();
    assert_eq!((f.kind, f.retry), (ErrorKind::ModelNotFound, Retry::No));
    assert!(f.message.contains("no-such-model"));
}

#[test]
fn basic_query_v2_1_7() {
    let r = read_all("claude-stream-json-gleam-basic-query-v2.1.7.ndjson");
    assert_eq!(r.session_id.as_deref(), Some("1d1e46f9-35c7-4834-b529-846d5bb82288"));
    assert_eq!(r.model.as_deref(), Some("claude-opus-4-5-20251101"));
    assert_eq!(r.answer.as_deref(), Some("4"));
    assert_eq!((r.turns, r.tool_calls), (1, 0));
    assert_eq!(r.cost_usd, Some(0.1354875));
    assert!(classify(AgentKind::Claude, &exit(0), &r).is_none());
}

#[test]
fn ls_tool_v2_1_3() {
    let r = read_all("claude-stream-json-gleam-ls-tool-v2.1.3.ndjson");
    assert_eq!(r.session_id.as_deref(), Some("40e7b02d-c0f9-4876-9010-f514d4eb0603"));
    assert_eq!((r.turns, r.tool_calls), (2, 1));
    assert_eq!(r.cost_usd, Some(0.24722425));
    assert_eq!(
        r.answer.as_deref(),
        Some("Here are the files in the current directory.")
    );
    assert!(classify(AgentKind::Claude, &exit(0), &r).is_none());
}

#[test]
fn permission_denied_v2_1_15() {
    let r = read_all("claude-stream-json-rust-claude-codes-permission-denied-v2.1.15.ndjson");
    assert_eq!(r.session_id.as_deref(), Some("1f2f4a66-82a4-42e2-b93d-089998d779e6"));
    assert_eq!((r.turns, r.tool_calls), (4, 3));
    assert_eq!(r.permission_denials.len(), 2);
    assert!(r.permission_denials.iter().all(|d| d["tool_name"] == "Bash"));
    assert!(r.answer.as_deref().unwrap().starts_with("Here are the results:"));
    assert!(
        classify(AgentKind::Claude, &exit(0), &r).is_none(),
        "denials do not fail the run by themselves"
    );
}

#[test]
fn a_lone_tool_error_line_is_read_and_a_stream_without_result_is_invalid_output() {
    let r = read_all("claude-stream-json-rust-claude-codes-tool-use-error-line.ndjson");
    assert!(!r.result_seen);
    assert_eq!(r.session_id.as_deref(), Some("08cd4ce5-1ce0-4dd4-8e7c-8b69712c514e"));
    assert_eq!(r.invalid_lines, 0);
    assert_eq!(
        classify(AgentKind::Claude, &exit(0), &r).unwrap().kind,
        ErrorKind::InvalidOutput
    );
}

#[test]
fn json_output_format_result_object_v1() {
    let r = read_all("claude-json-uspark-permission-denied.json");
    assert!(r.result_seen && !r.is_error);
    assert_eq!(r.turns, 8);
    assert_eq!(r.cost_usd, Some(0.34641974999999997));
    assert_eq!(r.permission_denials.len(), 1);
    assert_eq!(r.permission_denials[0]["tool_name"], "Edit");
}

#[test]
fn a_stream_cut_at_any_byte_never_panics_and_is_classified() {
    let bytes = fixture("claude-stream-json-archistrator-success-with-tools-v2.1.220.ndjson");
    for cut in (0..bytes.len()).step_by(97) {
        let r = read(&bytes[..cut], 512);
        let f = classify(
            AgentKind::Claude,
            &Exit {
                signal: Some(9),
                ..Default::default()
            },
            &r,
        );
        assert!(
            f.is_some(),
            "a killed agent without a result is a failure (cut at {cut})"
        );
    }
}
