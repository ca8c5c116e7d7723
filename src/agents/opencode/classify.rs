//! How an opencode run ended: an `error` event (the API's error, with its
//! HTTP status), else a last step that finished (not for tool calls) with
//! exit 0, else its stderr (`Error: Session not found`) and exit status.

use crate::agents::AgentReport;
use crate::agents::outcome::{ErrorKind, Failure, Retry, classify_api, exit_text, last_line, no_final_record};
use crate::agents::supervise::Exit;

/// `None`: it succeeded.
pub fn classify(exit: &Exit, r: &AgentReport) -> Option<Failure> {
    let fail = |kind, message: String, retry| Some(Failure { kind, message, retry });
    if r.is_error {
        return Some(classify_api(r, &r.result_errors.join("; ")));
    }
    if r.result_seen {
        // A model call cut at its length limit, filtered or failed is no answer.
        if let Some(reason) = r.subtype.as_deref().filter(|s| *s != "stop") {
            return fail(
                ErrorKind::AgentError,
                format!("the model's last step ended with `{reason}`, not an answer"),
                Retry::Backoff,
            );
        }
        return match exit.code {
            Some(0) => None,
            _ => fail(
                ErrorKind::AgentCrashed,
                format!("the last step finished but the CLI ended with {}", exit_text(exit)),
                Retry::Backoff,
            ),
        };
    }
    // Its stderr is coloured for a terminal even when it is not one.
    let plain = strip_ansi(&exit.stderr_tail);
    let stderr = plain
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("Error"))
        .unwrap_or_else(|| last_line(&plain))
        .to_string();
    if stderr.contains("Session not found") {
        return fail(ErrorKind::SessionNotFound, stderr, Retry::No);
    }
    if exit.code == Some(1) && r.session_id.is_none() && stderr.starts_with("Error") {
        return fail(ErrorKind::BadInvocation, stderr, Retry::No);
    }
    Some(no_final_record(exit, r, "step_finish", "", &stderr))
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
