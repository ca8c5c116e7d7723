use super::*;
use crate::agents::outcome::ErrorKind;
use crate::agents::test_support::exit;

fn read(lines: &[&str], limits: LiveLimits) -> (AgentReport, Option<String>) {
    crate::agents::test_support::read(Box::new(OpencodeReader::new(limits)), lines)
}

/// Lines the real CLI (1.18.33) printed, against a scripted chat completions API.
const TOOL_RUN: &[&str] = &[
    r#"{"type":"step_start","timestamp":1796663426948,"sessionID":"ses_dae83c612ffeK8BfZkEE0rhg87","part":{"id":"prt_1","messageID":"msg_1","sessionID":"ses_dae83c612ffeK8BfZkEE0rhg87","type":"step-start"}}"#,
    r#"{"type":"tool_use","timestamp":1796663426948,"sessionID":"ses_dae83c612ffeK8BfZkEE0rhg87","part":{"type":"tool","tool":"write","callID":"call_1","state":{"status":"error","input":{"filePath":"/tmp/oc/wd/made.txt","content":"hi\n"},"error":"Model tried to call unavailable tool 'invalid'. Available tools: glob, grep, read.","time":{"start":1796663426930,"end":1796663426933}},"id":"prt_2"}}"#,
    r#"{"type":"step_finish","timestamp":1796663426948,"sessionID":"ses_dae83c612ffeK8BfZkEE0rhg87","part":{"id":"prt_3","reason":"tool-calls","messageID":"msg_1","sessionID":"ses_dae83c612ffeK8BfZkEE0rhg87","type":"step-finish","tokens":{"total":145,"input":80,"output":25,"reasoning":0,"cache":{"write":0,"read":40}},"cost":0}}"#,
    r#"{"type":"step_start","timestamp":1796663427001,"sessionID":"ses_dae83c612ffeK8BfZkEE0rhg87","part":{"id":"prt_4","messageID":"msg_2","sessionID":"ses_dae83c612ffeK8BfZkEE0rhg87","type":"step-start"}}"#,
    r#"{"type":"text","timestamp":1796663427001,"sessionID":"ses_dae83c612ffeK8BfZkEE0rhg87","part":{"id":"prt_5","messageID":"msg_2","sessionID":"ses_dae83c612ffeK8BfZkEE0rhg87","type":"text","text":"MOCK-ANSWER from opencode","time":{"start":1796663426984,"end":1796663426991}}}"#,
    r#"{"type":"step_finish","timestamp":1796663427001,"sessionID":"ses_dae83c612ffeK8BfZkEE0rhg87","part":{"id":"prt_6","reason":"stop","messageID":"msg_2","sessionID":"ses_dae83c612ffeK8BfZkEE0rhg87","type":"step-finish","tokens":{"total":145,"input":80,"output":25,"reasoning":0,"cache":{"write":0,"read":40}},"cost":0.0125}}"#,
];

#[test]
fn a_run_is_read_field_by_field() {
    let (r, stop) = read(TOOL_RUN, LiveLimits::default());
    assert_eq!(stop, None);
    assert_eq!(r.session_id.as_deref(), Some("ses_dae83c612ffeK8BfZkEE0rhg87"));
    assert_eq!((r.turns, r.tool_calls), (2, 1));
    assert_eq!(r.answer.as_deref(), Some("MOCK-ANSWER from opencode"));
    assert_eq!((r.tokens.input, r.tokens.output, r.tokens.cached), (240, 50, 80));
    assert_eq!(r.cost_usd, Some(0.0125));
    assert!(r.result_seen && !r.is_error);
    assert_eq!(classify::classify(&exit(0, ""), &r), None);
    // Cut after a step of tool calls: no answer, not a success.
    let (r, _) = read(&TOOL_RUN[..3], LiveLimits::default());
    assert!(classify::classify(&exit(0, ""), &r).is_some());
    // A last step cut at the model's length limit is no answer either.
    let cut = TOOL_RUN[5].replace(r#""reason":"stop""#, r#""reason":"length""#);
    let (r, _) = read(&[TOOL_RUN[3], TOOL_RUN[4], &cut], LiveLimits::default());
    let f = classify::classify(&exit(0, ""), &r).unwrap();
    assert!(f.message.contains("`length`"), "{f:?}");
}

#[test]
fn errors_carry_their_status() {
    let failed = |status: u16, retryable: bool| {
        let line = format!(
            r#"{{"type":"error","timestamp":1,"sessionID":"ses_x","error":{{"name":"APIError","data":{{"message":"the mock's text","statusCode":{status},"isRetryable":{retryable},"responseBody":"{{}}"}}}}}}"#
        );
        let (r, _) = read(&[&line], LiveLimits::default());
        classify::classify(&exit(1, ""), &r).unwrap()
    };
    assert_eq!(failed(401, false).kind, ErrorKind::Auth);
    assert_eq!(failed(400, false).kind, ErrorKind::InvalidRequest);
    assert_eq!(failed(429, true).kind, ErrorKind::RateLimited);
    assert_eq!(failed(500, true).kind, ErrorKind::ServerError);
    let gone = exit(1, "\u{1b}[91m\u{1b}[1mError: \u{1b}[0mSession not found\n");
    assert_eq!(
        classify::classify(&gone, &AgentReport::default()).unwrap().kind,
        ErrorKind::SessionNotFound
    );
}

#[test]
fn the_config_allows_exactly_the_granted_tools() {
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let c: Value = serde_json::from_str(&config(&owned(&["Read", "Write", "Bash(cargo test:*)"]))).unwrap();
    assert_eq!(
        c["permission"],
        json!({"*": "deny", "read": "allow", "edit": "allow", "write": "allow",
               "bash": {"*": "deny", "cargo test*": "allow"}})
    );
    let whole: Value = serde_json::from_str(&config(&owned(&["Bash", "Bash(git:*)"]))).unwrap();
    assert_eq!(whole["permission"]["bash"], "allow");
    let none: Value = serde_json::from_str(&config(&[])).unwrap();
    // (`*` denies `external_directory` too: nothing outside the project.)
    assert_eq!(none["permission"], json!({"*": "deny"}));
}

#[test]
fn the_command_line_and_the_logs() {
    assert_eq!(args(&[], Some("ses_1")), ["run", "--format=json", "--session=ses_1"]);
    let lines: Vec<String> = TOOL_RUN
        .iter()
        .filter_map(|l| render::render(&serde_json::from_str(l).unwrap()))
        .collect();
    assert_eq!(
        lines,
        [
            "→ write(/tmp/oc/wd/made.txt)\n  ✗ Model tried to call unavailable tool 'invalid'. Available tools: glob, grep, read.",
            "MOCK-ANSWER from opencode",
            "■ stop, 120 tokens in (40 cached), 25 out",
        ]
    );
}
