//! Property tests: the task parser and the stream reader
//! take untrusted bytes, so no input may panic them, and what they accept must
//! mean what it says. `cargo fuzz` needs a nightly compiler; proptest runs on
//! stable, in CI, with shrinking and a regression file for every failure found
//! (`tests/properties.proptest-regressions`, kept in git).
//!
//! CI runs the default number of cases; a long run:
//! `PROPTEST_CASES=200000 cargo test --release --test suite properties::`.

use orchestrator::agents::OutputReader;
use orchestrator::agents::claude::ClaudeReader;
use orchestrator::config::AgentKind;
use orchestrator::task::parse::{Limits, parse};
use proptest::prelude::*;

fn limits() -> Limits {
    Limits {
        max_bytes: 1024 * 1024,
        max_prompt_chars: 100_000,
        default_agent: AgentKind::Claude,
        roles: Default::default(),
    }
}

const EXTENSIONS: [&str; 7] = ["md", "markdown", "txt", "yaml", "yml", "json", "pdf"];

/// Text that looks like task files: front matter fences, YAML and JSON
/// punctuation, anchors and aliases, field names, BOMs and CRLFs.
fn task_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("---\n".to_string()),
        Just("\r\n".to_string()),
        Just("\u{feff}".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just(": ".to_string()),
        Just("- ".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("!!binary ".to_string()),
        Just("%YAML 1.2\n".to_string()),
        prop::sample::select(vec![
            "title",
            "agent",
            "workdir",
            "allowed_tools",
            "max_turns",
            "timeout",
            "retries",
            "priority",
            "budget_usd",
            "mode",
            "command",
            "steps",
            "prompt",
            "session",
        ])
        .prop_map(|s| format!("{s}: ")),
        "[a-z0-9 .\\-]{0,12}",
        "-?[0-9]{1,25}(\\.[0-9]{0,5})?(e[0-9]{1,4})?",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

/// Lines that look like Claude's stream-json: known and unknown types,
/// fields with the right and the wrong types, nesting.
fn stream_line() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, Into::into)),
        ".{0,20}".prop_map(serde_json::Value::from),
    ];
    let value = leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "type",
                    "subtype",
                    "message",
                    "content",
                    "text",
                    "result",
                    "is_error",
                    "session_id",
                    "usage",
                    "total_cost_usd",
                    "num_turns",
                    "error",
                    "name",
                    "input",
                    "tool_use_id",
                    "permission_denials",
                    "rate_limit_info",
                    "resetsAt",
                    "status",
                    "api_error_status",
                    "attempt",
                    "model",
                    "cwd",
                ])
                .prop_map(String::from),
                inner,
                0..5
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    (
        prop::sample::select(vec![
            "system",
            "assistant",
            "user",
            "result",
            "rate_limit_event",
            "stream_event",
            "unknown_future_type",
        ]),
        prop::collection::btree_map(
            prop::sample::select(vec![
                "subtype",
                "message",
                "result",
                "is_error",
                "session_id",
                "total_cost_usd",
                "num_turns",
                "error",
                "permission_denials",
                "rate_limit_info",
                "api_error_status",
                "usage",
                "errors",
            ])
            .prop_map(String::from),
            value,
            0..6,
        ),
    )
        .prop_map(|(t, mut m)| {
            m.insert("type".into(), t.into());
            serde_json::Value::Object(m.into_iter().collect()).to_string()
        })
}

/// Every line of every recorded real stream.
fn recorded_lines() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/agent-output");
    let mut lines = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "ndjson") {
            lines.extend(std::fs::read_to_string(e.path()).unwrap().lines().map(String::from));
        }
    }
    lines
}

proptest! {
    #[test]
    fn the_parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048), ext in prop::sample::select(EXTENSIONS.to_vec())) {
        let _ = parse(&format!("t.{ext}"), &bytes, &limits());
    }

    #[test]
    fn the_parser_never_panics_on_task_like_text_and_always_explains(text in task_like(), ext in prop::sample::select(EXTENSIONS.to_vec())) {
        match parse(&format!("t.{ext}"), text.as_bytes(), &limits()) {
            Ok(spec) => prop_assert!(!spec.prompt.trim().is_empty(), "an accepted task has a prompt"),
            Err(r) => {
                prop_assert!(!r.reason.is_empty());
                prop_assert!(!r.error.is_empty(), "{}: no message", r.reason);
                prop_assert!(!r.hint.is_empty(), "{}: no hint", r.reason);
            }
        }
    }

    /// What a writer puts in the front matter is what the parser reads.
    #[test]
    fn front_matter_fields_round_trip(
        title in "[A-Za-z][A-Za-z0-9 ]{0,30}[A-Za-z0-9]",
        max_turns in 1u32..10_000,
        retries in 0u32..20,
        priority in -1000i64..1000,
        cents in 1u32..100_000,
        prompt in "[A-Za-z][A-Za-z0-9 .,!?]{0,200}",
        crlf in any::<bool>(),
        bom in any::<bool>(),
    ) {
        let budget = f64::from(cents) / 100.0;
        let mut text = format!(
            "---\ntitle: \"{title}\"\nmax_turns: {max_turns}\nretries: {retries}\npriority: {priority}\nbudget_usd: {budget}\n---\n{prompt}\n"
        );
        if crlf {
            text = text.replace('\n', "\r\n");
        }
        if bom {
            text.insert(0, '\u{feff}');
        }
        let spec = parse("t.md", text.as_bytes(), &limits()).map_err(|r| TestCaseError::fail(format!("{r:?}")))?;
        prop_assert_eq!(spec.title, title);
        prop_assert_eq!(spec.max_turns, Some(max_turns));
        prop_assert_eq!(spec.retries, Some(retries));
        prop_assert_eq!(spec.priority, priority);
        prop_assert_eq!(spec.budget_usd, Some(budget));
        prop_assert_eq!(spec.prompt.trim(), prompt.trim());
    }

    #[test]
    fn the_stream_reader_never_panics_on_bytes(lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20)) {
        let mut r = ClaudeReader::default();
        for l in &lines {
            let _ = r.on_line(l);
        }
        r.on_partial_tail(b"{\"type\":\"res");
        let _ = Box::new(r).into_report();
    }

    #[test]
    fn the_stream_reader_never_panics_on_json_shaped_lines(lines in prop::collection::vec(stream_line(), 0..30)) {
        let mut r = ClaudeReader::default();
        for l in &lines {
            let _ = r.on_line(l.as_bytes());
        }
        let report = Box::new(r).into_report();
        prop_assert!(report.cost_usd.is_none_or(|c| c.is_finite()));
    }

    /// Real lines, cut short or with bytes changed: the reader survives, and the
    /// untouched lines before the damage still count.
    #[test]
    fn damaged_real_streams_are_survived(pick in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8)) {
        let lines = recorded_lines();
        let line = &lines[pick.index(lines.len())];
        let mut bytes = line.as_bytes()[..cut.index(line.len() + 1)].to_vec();
        for (at, b) in flips {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
        }
        let mut r = ClaudeReader::default();
        let _ = r.on_line(br#"{"type":"system","subtype":"init","session_id":"s-1","model":"m","cwd":"/"}"#);
        let _ = r.on_line(&bytes);
        r.on_partial_tail(&bytes);
        let report = Box::new(r).into_report();
        prop_assert!(report.session_id.is_some());
    }
}
