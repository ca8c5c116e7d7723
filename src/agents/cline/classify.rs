//! How a Cline run ended.

use crate::agents::AgentReport;
use crate::agents::outcome::{
    ErrorKind, Failure, Retry, classify_api, classify_api_text, exit_text, http_status_in, last_line, no_final_record,
    non_empty,
};
use crate::agents::supervise::Exit;

/// Cline: its `run_result` finish reason, else its stderr (`{"type":"error","message"}`
/// lines), else how it exited. Its errors are provider texts, so the HTTP status
/// is taken from the words (`429 ...`) when the stream has no structured one.
pub fn classify(exit: &Exit, r: &AgentReport) -> Option<Failure> {
    let fail = |kind, message: String, retry| Some(Failure { kind, message, retry });
    let stderr_msgs: Vec<String> = exit
        .stderr_tail
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
        .filter(|v| v["type"] == "error")
        .filter_map(|v| v["message"].as_str().map(String::from))
        // A failing hook of Cline's own says nothing about the run.
        .filter(|m| !m.starts_with("hook dispatch failed"))
        .collect();
    let stderr = if stderr_msgs.is_empty() {
        last_line(&exit.stderr_tail).to_string()
    } else {
        stderr_msgs.join("; ")
    };
    let errors = [r.result_errors.join("; "), stderr.clone()]
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let with_status = AgentReport {
        api_error_status: r.api_error_status.or_else(|| http_status_in(&errors)),
        ..r.clone()
    };
    if r.result_seen {
        return match r.subtype.as_deref().unwrap_or("") {
            "completed" if exit.code == Some(0) => None,
            "completed" => fail(
                ErrorKind::AgentCrashed,
                format!("the run completed but the CLI ended with {}", exit_text(exit)),
                Retry::Backoff,
            ),
            "max_iterations" => fail(
                ErrorKind::MaxTurns,
                non_empty(&errors, "the agent reached its maximum number of iterations"),
                Retry::No,
            ),
            "mistake_limit" => fail(
                ErrorKind::AgentError,
                non_empty(&errors, "the agent stopped after too many mistakes in a row"),
                Retry::No,
            ),
            "aborted" => fail(
                ErrorKind::AgentCrashed,
                non_empty(&errors, "the run was aborted from outside"),
                Retry::Backoff,
            ),
            _ => Some(classify_api(
                &with_status,
                &non_empty(&errors, "the agent reported an error"),
            )),
        };
    }
    if let Some(q) = &r.interactive_prompt {
        return fail(ErrorKind::InteractivePrompt, format!("the agent asked: {q}"), Retry::No);
    }
    if errors.contains("run timed out after") {
        return fail(ErrorKind::Timeout, errors, Retry::No);
    }
    if let Some(f) = classify_api_text(&with_status, &errors) {
        return Some(f);
    }
    let lower = errors.to_ascii_lowercase();
    if exit.code == Some(1)
        && r.session_id.is_none()
        && !r.ended_mid_line
        && [
            "requires a prompt",
            "unknown command",
            "unknown option",
            "unquoted prompt",
            "error: ",
        ]
        .iter()
        .any(|p| lower.contains(p))
    {
        return fail(ErrorKind::BadInvocation, errors, Retry::No);
    }
    Some(no_final_record(exit, r, "run_result", "", &errors))
}
