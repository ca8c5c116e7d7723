//! Every run of the real CLIs recorded in `tests/data/agent-output/`
//! (`claude-2.1.332/`, `cline-3.0.65/`, `codex-0.171.0/`, `gemini-0.61.0/`, `opencode-1.18.33/`: stdout, stderr and exit code, against a
//! scripted model API) read by the bridge's reader, field by field, and
//! classified as the daemon would.

use crate::common::read_stream;
use orchestrator::agents::classify;
use orchestrator::agents::cline::ClineReader;
use orchestrator::agents::codex::CodexReader;
use orchestrator::agents::gemini::GeminiReader;
use orchestrator::agents::opencode::OpencodeReader;
use orchestrator::agents::outcome::{ErrorKind, Failure, Retry};
use orchestrator::agents::supervise::Exit;
use orchestrator::agents::{AgentReport, LiveLimits, OutputReader, claude::ClaudeReader};
use orchestrator::config::AgentKind;

fn recorded(dir: &str, name: &str, ext: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/data/agent-output/{dir}/{name}.{ext}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A recorded run read in chunks of `chunk` bytes, as the daemon reads it.
fn read(agent: AgentKind, bytes: &[u8], chunk: usize) -> AgentReport {
    let reader: Box<dyn OutputReader> = match agent {
        AgentKind::Cline => Box::new(ClineReader::new(LiveLimits::default())),
        AgentKind::Codex => Box::new(CodexReader::new(LiveLimits::default())),
        AgentKind::Gemini => Box::new(GeminiReader::new(LiveLimits::default())),
        AgentKind::Opencode => Box::new(OpencodeReader::new(LiveLimits::default())),
        _ => Box::new(ClaudeReader::default()),
    };
    read_stream(reader, bytes, chunk)
}

/// The run `name` of `dir`: its report (the same in any chunking) and its class.
fn run(agent: AgentKind, dir: &str, name: &str) -> (AgentReport, Option<Failure>) {
    let out = recorded(dir, name, "out");
    let whole = read(agent, &out, out.len().max(1));
    for chunk in [1, 7, 4096] {
        assert_eq!(read(agent, &out, chunk), whole, "{name}: chunking changed the reading");
    }
    let rc = String::from_utf8(recorded(dir, name, "rc")).unwrap();
    let exit = Exit {
        code: rc.trim().parse().ok(),
        stderr_tail: String::from_utf8_lossy(&recorded(dir, name, "err")).into_owned(),
        ..Exit::default()
    };
    let failure = classify(agent, &exit, &whole);
    (whole, failure)
}

fn claude(name: &str) -> (AgentReport, Option<Failure>) {
    run(AgentKind::Claude, "claude-2.1.332", name)
}

fn cline(name: &str) -> (AgentReport, Option<Failure>) {
    run(AgentKind::Cline, "cline-3.0.65", name)
}

fn codex(name: &str) -> (AgentReport, Option<Failure>) {
    run(AgentKind::Codex, "codex-0.171.0", name)
}

fn gemini(name: &str) -> (AgentReport, Option<Failure>) {
    run(AgentKind::Gemini, "gemini-0.61.0", name)
}

fn kind(f: &Option<Failure>) -> Option<ErrorKind> {
    f.as_ref().map(|f| f.kind)
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

#[test]
fn claude_successes() {
    let (r, f) = claude("text");
    assert!(f.is_none(), "{f:?}");
    assert_eq!(r.answer.as_deref(), Some("MOCK-ANSWER text: the answer is 42."));
    assert_eq!(r.session_id.as_deref(), Some("438cf665-4e80-47c7-8eb6-22db27c519dd"));
    assert_eq!(r.model.as_deref(), Some("claude-opus-5-5"));
    assert_eq!((r.turns, r.tool_calls), (1, 0));
    assert!(close(r.cost_usd, 0.00098));
    assert_eq!(r.terminal_reason.as_deref(), Some("completed"));

    let (r, f) = claude("write_file");
    assert!(f.is_none(), "{f:?}");
    assert_eq!((r.turns, r.tool_calls), (3, 2), "Write, then Read, then the answer");
    assert!(close(r.cost_usd, 0.00482));

    let (r, f) = claude("bash_denied");
    assert!(f.is_none(), "a denied tool is not a failed run: {f:?}");
    assert_eq!(r.permission_denials.len(), 1);
    assert_eq!(r.permission_denials[0]["tool_name"], "Bash");

    let (r, f) = claude("bash_readonly");
    assert!(f.is_none(), "{f:?}");
    assert!(r.permission_denials.is_empty(), "read-only Bash runs unapproved");
    assert!(r.answer.unwrap().ends_with("is_error=False: hi"));

    let (r, f) = claude("slow");
    assert!(f.is_none(), "{f:?}");
    assert!(r.answer.unwrap().starts_with("MOCK-ANSWER slow: word0 word1"));
}

#[test]
fn claude_resumed_run_costs_its_own_share() {
    let (r, f) = claude("resume");
    assert!(f.is_none(), "{f:?}");
    // total_cost_usd is 0.00218 for the whole session; this run cost 0.0012.
    assert!(close(r.cost_usd, 0.0012), "{:?}", r.cost_usd);
    // Its tokens too: 120 in, 36 out this run (the session's 240 and 61).
    assert_eq!((r.tokens.input, r.tokens.output, r.tokens.cached), (120, 36, 0));

    let (r, f) = claude("resume_unknown");
    assert_eq!(kind(&f), Some(ErrorKind::SessionNotFound));
    assert_eq!(f.unwrap().retry, Retry::No);
    assert!(r.result_errors[0].starts_with("No conversation found with session ID"));
}

#[test]
fn claude_api_errors() {
    for (name, status, class, retry) in [
        ("rate_limit", 429, ErrorKind::RateLimited, Retry::WaitForLimit(None)),
        ("overloaded", 529, ErrorKind::Overloaded, Retry::Backoff),
        ("auth", 401, ErrorKind::Auth, Retry::No),
        ("model_not_found", 404, ErrorKind::ModelNotFound, Retry::No),
        ("unknown_model_flag", 404, ErrorKind::ModelNotFound, Retry::No),
        ("server_error", 500, ErrorKind::ServerError, Retry::Backoff),
    ] {
        let (r, f) = claude(name);
        assert_eq!(r.api_error_status, Some(status), "{name}");
        assert_eq!(r.terminal_reason.as_deref(), Some("api_error"), "{name}");
        assert!(r.result_seen && r.is_error, "{name}");
        assert_eq!(r.cost_usd, Some(0.0), "{name}: nothing was spent");
        let f = f.unwrap_or_else(|| panic!("{name} is a failure"));
        assert_eq!((f.kind, f.retry), (class, retry), "{name}: {}", f.message);
    }
}

#[test]
fn claude_network_failure() {
    let (r, f) = claude("network");
    assert_eq!(r.api_error_status, None, "no HTTP status: nothing answered");
    assert_eq!(r.api_error.as_deref(), Some("server_error"));
    let f = f.unwrap();
    assert_eq!((f.kind, f.retry), (ErrorKind::Network, Retry::Backoff), "{}", f.message);
    assert!(f.message.contains("ECONNREFUSED"), "{}", f.message);
}

#[test]
fn claude_limits() {
    let (r, f) = claude("max_turns");
    assert_eq!(kind(&f), Some(ErrorKind::MaxTurns));
    assert_eq!(r.turns, 3, "2.1.332 reports max_turns + 1");
    assert_eq!(r.result_errors, ["Reached maximum number of turns (2)"]);

    let (r, f) = claude("budget");
    assert_eq!(kind(&f), Some(ErrorKind::BudgetExceeded));
    assert!(close(r.cost_usd, 0.00236));
    assert_eq!(r.terminal_reason.as_deref(), Some("budget_exhausted"));
}

#[test]
fn cline_successes() {
    let (r, f) = cline("plain");
    assert!(f.is_none(), "{f:?}");
    assert_eq!(r.answer.as_deref(), Some("Hello from the mock model. ANSWER-PLAIN-42"));
    assert_eq!(r.session_id, None, "3.0.65 prints no session id");
    assert_eq!(r.model.as_deref(), Some("mock-model"));
    assert_eq!((r.turns, r.tool_calls), (1, 0));
    assert_eq!(r.cost_usd, Some(0.0));

    let (r, f) = cline("file");
    assert!(f.is_none(), "{f:?}");
    assert_eq!((r.turns, r.tool_calls), (2, 1));
    assert!(r.answer.unwrap().ends_with("ANSWER-FILE-OK"));
    assert_eq!((r.tokens.input, r.tokens.output), (200, 40));

    for name in ["slow", "plain-hub"] {
        let (r, f) = cline(name);
        assert!(f.is_none(), "{name}: {f:?}");
        assert!(r.result_seen, "{name}");
    }
}

#[test]
fn cline_failures() {
    let (r, f) = cline("r401");
    assert_eq!(r.api_error.as_deref(), Some("authentication_failed"), "errorClass auth");
    let f = f.unwrap();
    assert_eq!((f.kind, f.retry), (ErrorKind::Auth, Retry::No), "{}", f.message);

    for name in ["r429", "r429-retry-after-20s"] {
        let f = cline(name).1.unwrap();
        assert_eq!(f.kind, ErrorKind::RateLimited, "{name}: {}", f.message);
        assert!(
            matches!(f.retry, Retry::WaitForLimit(Some(_))),
            "{name}: the reset is in the text"
        );
    }

    let f = cline("noprovider").1.unwrap();
    assert_eq!(
        (f.kind, f.retry),
        (ErrorKind::BadInvocation, Retry::No),
        "{}",
        f.message
    );

    // A model that never stops, cut by `timeout 30` (exit 124): 356 turns, aborted.
    let (r, f) = cline("loop");
    assert_eq!(r.turns, 356);
    assert_eq!(r.subtype.as_deref(), Some("aborted"));
    assert_eq!(kind(&f), Some(ErrorKind::AgentCrashed));
}

#[test]
fn codex_successes_read_field_by_field() {
    let (r, f) = codex("text");
    assert_eq!(f, None, "{r:?}");
    assert_eq!(r.answer.as_deref(), Some("MOCK-ANSWER from codex"));
    assert_eq!((r.turns, r.tool_calls), (1, 0));
    assert!(r.session_id.as_deref().is_some_and(|s| s.len() == 36), "{r:?}");
    assert_eq!((r.tokens.input, r.tokens.output, r.tokens.cached), (120, 25, 40));
    assert_eq!(r.cost_usd, None);

    let (r, f) = codex("tool");
    assert_eq!(f, None, "{r:?}");
    assert_eq!((r.turns, r.tool_calls), (2, 1));
    assert_eq!(r.answer.as_deref(), Some("made it"));
    // Two model calls in the turn: the count is the turn's.
    assert_eq!((r.tokens.input, r.tokens.output), (240, 50));

    // In the read-only sandbox the command fails inside the tool; the run
    // itself succeeds.
    let (r, f) = codex("tool_read_only");
    assert_eq!(f, None, "{r:?}");
    assert_eq!(r.answer.as_deref(), Some("made it"));
}

#[test]
fn codex_failures_classified_as_the_daemon_would() {
    let (r, f) = codex("auth");
    assert_eq!(kind(&f), Some(ErrorKind::Auth), "{r:?}");
    assert_eq!(r.api_retries, 1, "its own retry, seen");
    let (_, f) = codex("invalid_request");
    let f = f.unwrap();
    assert_eq!(
        (f.kind, f.message.as_str()),
        (ErrorKind::InvalidRequest, "the mock's invalid_request_error text")
    );
    let (_, f) = codex("server_error");
    assert_eq!(
        f.as_ref().map(|f| (f.kind, f.retry)),
        Some((ErrorKind::ServerError, Retry::Backoff))
    );
    let (_, f) = codex("rate_limit");
    assert_eq!(kind(&f), Some(ErrorKind::RateLimited));
    // A reset on another day: its date and time, read in this machine's zone.
    let (_, f) = codex("usage_limit");
    let f = f.unwrap();
    assert_eq!(f.kind, ErrorKind::RateLimited);
    assert!(f.message.contains("Try again at Dec 8th, 2026"), "{}", f.message);
    let Retry::WaitForLimit(Some(at)) = f.retry else {
        panic!("{f:?}")
    };
    let zone = jiff::tz::TimeZone::system();
    let named = jiff::civil::date(2026, 12, 8)
        .at(17, 33, 0, 0)
        .to_zoned(zone)
        .unwrap()
        .timestamp()
        .as_second();
    assert_eq!(at, named + 60, "the end of the minute named");
    let (_, f) = codex("resume_unknown");
    assert_eq!(kind(&f), Some(ErrorKind::SessionNotFound));
}

#[test]
fn gemini_runs_read_field_by_field_and_classified() {
    let (r, f) = gemini("text");
    assert_eq!(f, None, "{r:?}");
    assert_eq!(r.answer.as_deref(), Some("MOCK-ANSWER from gemini"));
    assert_eq!((r.turns, r.tool_calls), (1, 0));
    assert_eq!(r.model.as_deref(), Some("gemini-2.5-pro"));
    assert!(r.session_id.as_deref().is_some_and(|s| s.len() == 36), "{r:?}");
    assert_eq!((r.tokens.input, r.tokens.output, r.tokens.cached), (120, 25, 40));

    let (r, f) = gemini("tool");
    assert_eq!(f, None, "{r:?}");
    assert_eq!((r.turns, r.tool_calls), (2, 1));
    assert_eq!(r.answer.as_deref(), Some("made it"));
    assert_eq!((r.tokens.input, r.tokens.output), (240, 50));

    let (r, f) = gemini("auth");
    assert_eq!(kind(&f), Some(ErrorKind::Auth), "{r:?}");
    assert_eq!(r.result_errors, ["the mock's error text"]);
    assert_eq!(kind(&gemini("invalid_request").1), Some(ErrorKind::InvalidRequest));
    // Its own retries spent on a 429: a limit, the agent pauses.
    let f = gemini("quota").1.unwrap();
    assert_eq!(f.kind, ErrorKind::RateLimited, "{f:?}");
    assert!(matches!(f.retry, Retry::WaitForLimit(_)));
    assert_eq!(kind(&gemini("resume_unknown").1), Some(ErrorKind::SessionNotFound));
}

#[test]
fn opencode_runs_read_field_by_field_and_classified() {
    let run = |name| run(AgentKind::Opencode, "opencode-1.18.33", name);
    let (r, f) = run("text");
    assert_eq!(f, None, "{r:?}");
    assert_eq!(r.answer.as_deref(), Some("MOCK-ANSWER from opencode"));
    assert_eq!((r.turns, r.tool_calls), (1, 0));
    assert!(r.session_id.as_deref().is_some_and(|s| s.starts_with("ses_")), "{r:?}");
    // The mock reports 120 prompt tokens and 25 completion tokens a call.
    assert_eq!((r.tokens.input, r.tokens.output), (120, 25), "{r:?}");

    let (r, f) = run("tool");
    assert_eq!(f, None, "{r:?}");
    assert_eq!((r.turns, r.tool_calls), (2, 1));
    assert_eq!(r.answer.as_deref(), Some("read it"));
    assert_eq!((r.tokens.input, r.tokens.output), (240, 50));

    let (r, f) = run("auth");
    assert_eq!(kind(&f), Some(ErrorKind::Auth), "{r:?}");
    assert_eq!(
        (r.api_error_status, r.result_errors.as_slice()),
        (Some(401), &["the mock's error text".to_string()][..])
    );
    assert_eq!(kind(&run("invalid_request").1), Some(ErrorKind::InvalidRequest));
    assert_eq!(kind(&run("rate_limit").1), Some(ErrorKind::RateLimited));
    assert_eq!(kind(&run("resume_unknown").1), Some(ErrorKind::SessionNotFound));
}
