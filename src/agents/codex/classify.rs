//! How a Codex run ended: `turn.completed` is success; `turn.failed` carries
//! the error that ended it (the CLI's own retries already spent); else its
//! stderr (`Error: ...`) and exit status.

use crate::agents::AgentReport;
use crate::agents::outcome::{
    ErrorKind, Failure, Retry, classify_api, classify_api_text, exit_text, http_status_in, last_line, no_final_record,
    non_empty,
};
use crate::agents::supervise::Exit;

/// `None`: it succeeded.
pub fn classify(exit: &Exit, r: &AgentReport) -> Option<Failure> {
    let fail = |kind, message: String, retry| Some(Failure { kind, message, retry });
    let errors = r.result_errors.join("; ");
    let with_status = AgentReport {
        api_error_status: r.api_error_status.or_else(|| http_status_in(&errors)),
        ..r.clone()
    };
    if r.result_seen && !r.is_error {
        return match exit.code {
            Some(0) => None,
            _ => fail(
                ErrorKind::AgentCrashed,
                format!("the turn completed but the CLI ended with {}", exit_text(exit)),
                Retry::Backoff,
            ),
        };
    }
    if r.result_seen {
        // Its words for a 5xx of the provider (0.171.0), status dropped.
        if errors.contains("experiencing high demand") {
            return fail(ErrorKind::ServerError, errors, Retry::Backoff);
        }
        return Some(classify_api(&with_status, &non_empty(&errors, "the turn failed")));
    }
    let stderr = exit
        .stderr_tail
        .lines()
        .find(|l| l.starts_with("Error:") || l.starts_with("error:"))
        .unwrap_or_else(|| last_line(&exit.stderr_tail))
        .trim()
        .to_string();
    if stderr.contains("no rollout found for thread id") {
        return fail(ErrorKind::SessionNotFound, stderr, Retry::No);
    }
    let text = [errors.as_str(), stderr.as_str()]
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if let Some(f) = classify_api_text(&with_status, &text) {
        return Some(f);
    }
    if exit.code == Some(1)
        && !r.ended_mid_line
        && r.session_id.is_none()
        && (stderr.starts_with("Error:") || stderr.starts_with("error:"))
    {
        return fail(ErrorKind::BadInvocation, stderr, Retry::No);
    }
    Some(no_final_record(exit, r, "turn.completed", "", &stderr))
}
