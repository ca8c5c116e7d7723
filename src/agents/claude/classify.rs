//! How a Claude Code run ended: its `result` line (subtype, `is_error`,
//! `api_error_status`), else the synthetic API-error message, else stderr and
//! the exit status.

use crate::agents::AgentReport;
use crate::agents::outcome::{
    ErrorKind, Failure, Retry, classify_api, classify_api_text, last_line, no_final_record, non_empty,
};
use crate::agents::supervise::Exit;

/// `None`: it succeeded.
pub fn classify(exit: &Exit, r: &AgentReport) -> Option<Failure> {
    let answer = r.answer.as_deref().or(r.last_text.as_deref()).unwrap_or("");
    if r.result_seen {
        let subtype = r.subtype.as_deref().unwrap_or("");
        if !r.is_error && subtype == "success" {
            return None;
        }
        let errors = r.result_errors.join("; ");
        return Some(match subtype {
            "error_max_turns" => Failure {
                kind: ErrorKind::MaxTurns,
                message: non_empty(&errors, "the agent reached its maximum number of turns"),
                retry: Retry::No,
            },
            "error_max_budget_usd" => Failure {
                kind: ErrorKind::BudgetExceeded,
                message: non_empty(&errors, "the agent passed its USD budget"),
                retry: Retry::No,
            },
            "error_during_execution" => classify_api_text(r, &errors).unwrap_or(Failure {
                kind: ErrorKind::AgentError,
                message: non_empty(&errors, "error during execution"),
                retry: Retry::Backoff,
            }),
            _ => classify_api(r, answer),
        });
    }
    if let Some(q) = &r.interactive_prompt {
        return Some(Failure {
            kind: ErrorKind::InteractivePrompt,
            message: format!("the agent asked: {q}"),
            retry: Retry::No,
        });
    }
    // An API error message may have come without a result line.
    if r.api_error.is_some() {
        return Some(classify_api(r, answer));
    }
    let stderr = last_line(&exit.stderr_tail);
    if let Some(f) = classify_api_text(r, &exit.stderr_tail) {
        return Some(f);
    }
    if exit.code == Some(1)
        && !r.ended_mid_line
        && r.session_id.is_none()
        && (stderr.starts_with("Error:") || stderr.starts_with("error:"))
    {
        return Some(Failure {
            kind: ErrorKind::BadInvocation,
            message: stderr.to_string(),
            retry: Retry::No,
        });
    }
    let detail = format!("({} lines were not JSON)", r.invalid_lines);
    Some(no_final_record(exit, r, "result", &detail, stderr))
}
