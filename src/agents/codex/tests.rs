use super::*;
use crate::agents::LimitHit;
use crate::agents::outcome::{ErrorKind, Retry};
use crate::agents::test_support::exit;

fn read(lines: &[&str], limits: LiveLimits) -> (AgentReport, Option<String>) {
    crate::agents::test_support::read(Box::new(CodexReader::new(limits)), lines)
}

/// Lines the real CLI (0.171.0) printed, against a scripted Responses API.
const TOOL_RUN: &[&str] = &[
    r#"{"type":"thread.started","thread_id":"01a2514f-f244-7c42-94f4-cab65db212d0"}"#,
    r#"{"type":"item.completed","item":{"id":"item_0","type":"error","message":"Model metadata for `mock-model` not found. Defaulting to fallback metadata; this can degrade performance and cause issues."}}"#,
    r#"{"type":"turn.started"}"#,
    r#"{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":"/bin/bash -lc 'echo hi > made.txt'","aggregated_output":"","exit_code":null,"status":"in_progress"}}"#,
    r#"{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"/bin/bash -lc 'echo hi > made.txt'","aggregated_output":"","exit_code":0,"status":"completed"}}"#,
    r#"{"type":"item.completed","item":{"id":"item_2","type":"agent_message","text":"MOCK-ANSWER from codex"}}"#,
    r#"{"type":"turn.completed","usage":{"input_tokens":200,"cached_input_tokens":40,"cache_write_input_tokens":0,"output_tokens":14,"reasoning_output_tokens":0}}"#,
];

#[test]
fn a_run_is_read_field_by_field() {
    let (r, stop) = read(TOOL_RUN, LiveLimits::default());
    assert_eq!(stop, None);
    assert_eq!(r.session_id.as_deref(), Some("01a2514f-f244-7c42-94f4-cab65db212d0"));
    assert_eq!(
        (r.turns, r.tool_calls),
        (2, 1),
        "the command once, though started and completed"
    );
    assert_eq!(r.answer.as_deref(), Some("MOCK-ANSWER from codex"));
    assert!(r.result_seen && !r.is_error);
    assert_eq!(
        r.tokens,
        Tokens {
            input: 200,
            output: 14,
            cached: 40
        }
    );
    assert_eq!(r.cost_usd, None, "Codex reports no dollars");
    assert!(r.result_errors.is_empty(), "the metadata warning is no error");
    assert_eq!(classify::classify(&exit(0, ""), &r), None);
}

#[test]
fn a_resumed_runs_tokens_are_what_it_added_to_the_thread() {
    let (r, _) = read(
        &[TOOL_RUN[6]],
        LiveLimits {
            session_tokens_before: Tokens {
                input: 100,
                output: 7,
                cached: 20,
            },
            ..LiveLimits::default()
        },
    );
    assert_eq!(
        (r.tokens, r.session_tokens.unwrap().input),
        (
            Tokens {
                input: 100,
                output: 7,
                cached: 20
            },
            200
        )
    );
}

#[test]
fn limits_stop_the_run_while_it_goes() {
    let command = |i: u32| {
        format!(
            r#"{{"type":"item.started","item":{{"id":"item_{i}","type":"command_execution","command":"ls","status":"in_progress"}}}}"#
        )
    };
    let lines: Vec<String> = (1..=5).map(command).collect();
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
    let (r, stop) = read(
        &refs,
        LiveLimits {
            max_turns: Some(2),
            ..LiveLimits::default()
        },
    );
    assert!(stop.unwrap().contains("3 turns"));
    assert_eq!(r.limit_hit, Some(LimitHit::Turns));
}

#[test]
fn failures_are_classified_from_the_real_clis_words() {
    let failed = |msg: &str| {
        let failed = format!(r#"{{"type":"turn.failed","error":{{"message":"{msg}"}}}}"#);
        let error = format!(r#"{{"type":"error","message":"{msg}"}}"#);
        let (r, _) = read(
            &[
                TOOL_RUN[0],
                r#"{"type":"turn.started"}"#,
                r#"{"type":"error","message":"Reconnecting... 1/1 (unexpected status 401 Unauthorized: bad key, url: http://127.0.0.1:1/v1/responses)"}"#,
                &error,
                &failed,
            ],
            LiveLimits::default(),
        );
        assert_eq!((r.api_retries, r.result_errors.len()), (1, 1), "{r:?}");
        classify::classify(&exit(1, ""), &r).unwrap()
    };
    let f = failed("unexpected status 401 Unauthorized: bad key, url: http://127.0.0.1:1/v1/responses");
    assert_eq!((f.kind, f.retry), (ErrorKind::Auth, Retry::No));
    let f = failed("exceeded retry limit, last status: 429 Too Many Requests");
    assert_eq!(f.kind, ErrorKind::RateLimited);
    let f = failed("You’ve hit your usage limit. Try again at 5:23 PM.");
    assert!(matches!(f.retry, Retry::WaitForLimit(Some(_))), "{f:?}");
    let f = failed("We’re currently experiencing high demand, which may cause temporary errors.");
    assert_eq!((f.kind, f.retry), (ErrorKind::ServerError, Retry::Backoff), "a 500");
    let f = failed(
        r#"{\"error\": {\"message\": \"bad field\", \"type\": \"invalid_request_error\", \"code\": \"invalid_request_error\"}}"#,
    );
    assert_eq!((f.kind, f.message.as_str()), (ErrorKind::InvalidRequest, "bad field"));
    let f = failed("exceeded retry limit, last status: 500 Internal Server Error");
    assert_eq!((f.kind, f.retry), (ErrorKind::ServerError, Retry::Backoff));

    let gone = exit(
        1,
        "Error: thread/resume: thread/resume failed: no rollout found for thread id 01a25150-0000-7152-b3cd-408e9aaa4c3e (code -32600)\n\nStack backtrace:\n   0: <unknown>\n",
    );
    let f = classify::classify(&gone, &AgentReport::default()).unwrap();
    assert_eq!(f.kind, ErrorKind::SessionNotFound);
    let bad = exit(2, "error: unexpected argument '--frobnicate' found\n");
    let f = classify::classify(&bad, &AgentReport::default()).unwrap();
    assert_eq!(f.kind, ErrorKind::AgentCrashed, "exit 2 of clap: {f:?}");
}

#[test]
fn tools_map_to_a_sandbox_and_are_never_widened() {
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let none = AgentConfig::default();
    let shell = AgentConfig {
        allowed_tools: Some(owned(&["Read", "Glob", "Grep", "LS", "Edit", "Write", "Bash"])),
        ..AgentConfig::default()
    };
    // No list, no shell in the ceiling: reading only.
    let g = Codex.grant_tools(None, &none);
    assert_eq!(g.granted, owned(&["Read", "Glob", "Grep", "LS"]));
    assert!(g.dropped.is_empty());
    assert_eq!(sandbox(&g.granted), "read-only");
    // The shell allowed: edits and commands in the workdir.
    let g = Codex.grant_tools(None, &shell);
    assert!(g.granted.contains(&"Bash".to_string()) && g.granted.contains(&"Edit".to_string()));
    assert_eq!(sandbox(&g.granted), "workspace-write");
    assert!(Codex.may_edit(&g.granted));
    // Editing without the shell is refused, not widened to it.
    let g = Codex.grant_tools(Some(&owned(&["Read", "Edit"])), &shell);
    assert_eq!((g.granted, g.dropped), (owned(&["Read"]), owned(&["Edit"])));
    // A command prefix and WebFetch cannot be enforced.
    let g = Codex.grant_tools(Some(&owned(&["Read", "Bash(cargo test:*)", "WebFetch"])), &shell);
    assert_eq!(g.granted, owned(&["Read"]));
    assert!(!Codex.may_edit(&g.granted));
}

#[test]
fn the_command_line_carries_the_sandbox_and_the_session() {
    let a = args(&[], &["Read".to_string()], None);
    assert_eq!(&a[..3], ["exec", "--json", "--skip-git-repo-check"]);
    assert!(a.contains(&"--sandbox=read-only".to_string()));
    assert!(a.contains(&"web_search=\"disabled\"".to_string()));
    assert!(a.contains(&"analytics.enabled=false".to_string()));
    assert_eq!(a.last().unwrap(), "-", "the prompt on stdin");
    let a = args(
        &["-m".into(), "o4".into()],
        &["Bash".to_string(), "WebSearch".to_string()],
        Some("01a2"),
    );
    assert_eq!(&a[..2], ["-m", "o4"]);
    assert!(a.contains(&"--sandbox=workspace-write".to_string()));
    assert!(!a.iter().any(|x| x.contains("web_search")));
    assert_eq!(&a[a.len() - 3..], ["resume", "01a2", "-"]);
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
            "● codex (thread 01a2514f-f244-7c42-94f4-cab65db212d0)",
            "! Model metadata for `mock-model` not found. Defaulting to fallback metadata; this can degrade performance and cause issues.",
            "→ /bin/bash -lc 'echo hi > made.txt'",
            "MOCK-ANSWER from codex",
            "■ completed, 200 tokens in (40 cached), 14 out",
        ]
    );
}
