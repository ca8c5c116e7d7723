//! How a Gemini run ended: its `result` (`success`, or `error` with the API's
//! error), else its stderr and its exit code (0.61.0: 41 no usable auth, 42
//! bad input such as an unknown session, 52 a bad config, 53 its own turn
//! limit, 55 an untrusted folder).

use crate::agents::AgentReport;
use crate::agents::outcome::{
    ErrorKind, Failure, Retry, classify_api, classify_api_text, exit_text, last_line, no_final_record, non_empty,
};
use crate::agents::supervise::Exit;

/// `None`: it succeeded.
pub fn classify(exit: &Exit, r: &AgentReport) -> Option<Failure> {
    let fail = |kind, message: String, retry| Some(Failure { kind, message, retry });
    let errors = r.result_errors.join("; ");
    if r.result_seen && !r.is_error {
        return match exit.code {
            Some(0) => None,
            _ => fail(
                ErrorKind::AgentCrashed,
                format!("the run succeeded but the CLI ended with {}", exit_text(exit)),
                Retry::Backoff,
            ),
        };
    }
    if r.result_seen {
        return Some(classify_api(r, &non_empty(&errors, "the run failed")));
    }
    let stderr = exit
        .stderr_tail
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("Error") || l.contains("Invalid session identifier"))
        .unwrap_or_else(|| last_line(&exit.stderr_tail))
        .to_string();
    if stderr.contains("Invalid session identifier") || stderr.contains("Error resuming session") {
        return fail(ErrorKind::SessionNotFound, stderr, Retry::No);
    }
    match exit.code {
        Some(41) => {
            return fail(
                ErrorKind::Auth,
                non_empty(&stderr, "no usable authentication"),
                Retry::No,
            );
        }
        Some(53) => return fail(ErrorKind::MaxTurns, non_empty(&stderr, "its own turn limit"), Retry::No),
        Some(42 | 52 | 55) => return fail(ErrorKind::BadInvocation, non_empty(&stderr, "bad input"), Retry::No),
        _ => {}
    }
    if let Some(f) = classify_api_text(r, &stderr) {
        return Some(f);
    }
    Some(no_final_record(exit, r, "result", "", &stderr))
}
