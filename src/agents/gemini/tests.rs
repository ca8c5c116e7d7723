use super::*;
use crate::agents::LimitHit;
use crate::agents::outcome::ErrorKind;
use crate::agents::test_support::exit;

fn read(lines: &[&str], limits: LiveLimits) -> (AgentReport, Option<String>) {
    crate::agents::test_support::read(Box::new(GeminiReader::new(limits)), lines)
}

/// Lines the real CLI (0.61.0) printed, against a scripted Gemini API.
const TOOL_RUN: &[&str] = &[
    r#"{"type":"init","timestamp":"2026-12-07T16:43:30.127Z","session_id":"c5253567-7314-4ad8-8f4a-811305bc9926","model":"gemini-2.5-pro"}"#,
    r#"{"type":"message","timestamp":"2026-12-07T16:43:30.129Z","role":"user","content":"make the file\n"}"#,
    r#"{"type":"tool_use","timestamp":"2026-12-07T16:43:30.272Z","tool_name":"write_file","tool_id":"write_file__write_file_1796661810229_0","parameters":{"file_path":"made.txt","content":"hi\n"}}"#,
    r#"{"type":"tool_result","timestamp":"2026-12-07T16:43:30.286Z","tool_id":"write_file__write_file_1796661810229_0","status":"success"}"#,
    r#"{"type":"message","timestamp":"2026-12-07T16:43:30.297Z","role":"assistant","content":"MOCK-ANSWER ","delta":true}"#,
    r#"{"type":"message","timestamp":"2026-12-07T16:43:30.297Z","role":"assistant","content":"from gemini","delta":true}"#,
    r#"{"type":"result","timestamp":"2026-12-07T16:43:30.298Z","status":"success","stats":{"total_tokens":290,"input_tokens":240,"output_tokens":50,"cached":80,"input":160,"duration_ms":171,"tool_calls":1,"models":{"gemini-2.5-pro":{"total_tokens":290,"input_tokens":240,"output_tokens":50,"cached":80,"input":160}}}}"#,
];

#[test]
fn a_run_is_read_field_by_field() {
    let (r, stop) = read(TOOL_RUN, LiveLimits::default());
    assert_eq!(stop, None);
    assert_eq!(r.session_id.as_deref(), Some("c5253567-7314-4ad8-8f4a-811305bc9926"));
    assert_eq!(r.model.as_deref(), Some("gemini-2.5-pro"));
    assert_eq!((r.turns, r.tool_calls), (2, 1));
    assert_eq!(
        r.answer.as_deref(),
        Some("MOCK-ANSWER from gemini"),
        "the pieces joined"
    );
    assert_eq!((r.tokens.input, r.tokens.output, r.tokens.cached), (240, 50, 80));
    assert!(r.result_seen && !r.is_error);
    assert_eq!(classify::classify(&exit(0, ""), &r), None);
}

#[test]
fn api_errors_are_read_from_the_result() {
    let failed = |code: i64, status: &str| {
        let line = format!(
            r#"{{"type":"result","status":"error","error":{{"type":"unknown","message":"[API Error: {{\"error\":{{\"code\":{code},\"message\":\"mock text\",\"status\":\"{status}\"}}}}]"}},"stats":{{"total_tokens":0,"input_tokens":0,"output_tokens":0,"cached":0}}}}"#
        );
        let (r, _) = read(&[TOOL_RUN[0], &line], LiveLimits::default());
        assert_eq!(r.result_errors, ["mock text"], "{r:?}");
        classify::classify(&exit(1, ""), &r).unwrap()
    };
    assert_eq!(failed(401, "UNAUTHENTICATED").kind, ErrorKind::Auth);
    assert_eq!(failed(400, "INVALID_ARGUMENT").kind, ErrorKind::InvalidRequest);
    assert_eq!(failed(429, "RESOURCE_EXHAUSTED").kind, ErrorKind::RateLimited);
    assert_eq!(failed(500, "INTERNAL").kind, ErrorKind::ServerError);
    assert_eq!(failed(503, "UNAVAILABLE").kind, ErrorKind::Overloaded);
    // Its own words when it gave up on a 429 (recorded from 0.61.0).
    let line = r#"{"type":"result","status":"error","error":{"type":"unknown","message":"[API Error: the mock's error text]\nPlease wait and try again later. To increase your limits, request a quota increase through AI Studio, or switch to another /auth method"},"stats":{"total_tokens":0,"input_tokens":0,"output_tokens":0,"cached":0}}"#;
    let (r, _) = read(&[TOOL_RUN[0], line], LiveLimits::default());
    assert_eq!(
        classify::classify(&exit(1, ""), &r).unwrap().kind,
        ErrorKind::RateLimited
    );
}

#[test]
fn exit_codes_and_stderr_without_a_result() {
    let gone = exit(
        42,
        "Error resuming session: Invalid session identifier \"00000000-0000-4000-8000-000000000000\".\n  Searched for sessions in /h/.gemini/tmp/wd/chats.\n",
    );
    assert_eq!(
        classify::classify(&gone, &AgentReport::default()).unwrap().kind,
        ErrorKind::SessionNotFound
    );
    let auth = exit(41, "Invalid auth method selected.\n");
    assert_eq!(
        classify::classify(&auth, &AgentReport::default()).unwrap().kind,
        ErrorKind::Auth
    );
    let untrusted = exit(55, "Gemini CLI is not running in a trusted directory.\n");
    assert_eq!(
        classify::classify(&untrusted, &AgentReport::default()).unwrap().kind,
        ErrorKind::BadInvocation
    );
}

#[test]
fn limits_stop_the_run_while_it_goes() {
    let tool = |i: u32| {
        format!(r#"{{"type":"tool_use","tool_name":"read_file","tool_id":"t{i}","parameters":{{"file_path":"a"}}}}"#)
    };
    let lines: Vec<String> = (1..=5).map(tool).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (r, stop) = read(
        &refs,
        LiveLimits {
            max_tool_calls: Some(3),
            ..LiveLimits::default()
        },
    );
    assert!(stop.unwrap().contains("4 tool calls"));
    assert_eq!(r.limit_hit, Some(LimitHit::ToolCalls));
    let (r, _) = read(
        &refs,
        LiveLimits {
            max_turns: Some(2),
            ..LiveLimits::default()
        },
    );
    assert_eq!(r.limit_hit, Some(LimitHit::Turns));
}

#[test]
fn the_policy_allows_exactly_the_granted_tools() {
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let p = policy(&owned(&[
        "Read",
        "Grep",
        "Edit",
        "MultiEdit",
        "Bash(cargo test:*)",
        "Bash(git status)",
    ]));
    assert!(
        p.contains("toolName = \"*\"\ndecision = \"deny\"\npriority = 998"),
        "{p}"
    );
    assert!(
        p.contains(r#"toolName = ["read_file", "read_many_files", "grep_search", "replace"]"#),
        "{p}"
    );
    assert!(p.contains(r#"commandPrefix = ["cargo test", "git status"]"#), "{p}");
    // Nothing granted: every tool denied.
    let none = policy(&[]);
    assert!(!none.contains("allow"), "{none}");
    // The whole shell needs no prefix rule.
    assert!(!policy(&owned(&["Bash", "Bash(git:*)"])).contains("commandPrefix"));
}

#[test]
fn tools_it_has_none_like_are_dropped() {
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cfg = AgentConfig {
        allowed_tools: Some(owned(&["Read", "Task", "NotebookEdit", "Bash(cargo test:*)"])),
        ..AgentConfig::default()
    };
    let g = Gemini.grant_tools(
        Some(&owned(&["Read", "Task", "NotebookEdit", "Bash(cargo test:*)", "Write"])),
        &cfg,
    );
    assert_eq!(g.granted, owned(&["Read", "Bash(cargo test:*)"]));
    assert_eq!(g.dropped, owned(&["Task", "NotebookEdit", "Write"]));
    assert!(Gemini.may_edit(&g.granted));
}

#[test]
fn the_command_line_names_the_policy_and_the_session() {
    let a = args(&[], "/r/t/gemini-policy.toml", Some("c525"));
    assert_eq!(
        a,
        [
            "--prompt=",
            "--output-format=stream-json",
            "--approval-mode=default",
            "--policy=/r/t/gemini-policy.toml",
            "--resume=c525"
        ]
    );
}

#[test]
fn logs_show_what_a_person_reads() {
    let lines: Vec<String> = TOOL_RUN
        .iter()
        .filter_map(|l| render::render(&serde_json::from_str(l).unwrap()))
        .collect();
    assert_eq!(
        lines,
        [
            "● gemini (gemini-2.5-pro, session c5253567-7314-4ad8-8f4a-811305bc9926)",
            "→ write_file(made.txt)",
            "MOCK-ANSWER ",
            "from gemini",
            "■ success, 240 tokens in (80 cached), 50 out, 1 tool calls",
        ]
    );
}
