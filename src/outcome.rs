//! From how an agent ended to what happens next: success, retry, wait for a
//! rate limit, or fail with a suggestion.
//!
//! The classifier reads the typed report first (Claude's `result` line, the
//! synthetic API-error message, `rate_limit_event`), then the exit status, then
//! the text of the error as a last resort: the CLI's messages change between
//! versions, its JSON fields change less.

use crate::agents::supervise::{Exit, StopReason};
use crate::agents::{AgentReport, LimitHit};
use crate::config::AgentKind;
use std::time::Duration;

pub use crate::vocab::ErrorKind;

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Retry {
    /// Fatal: retrying will not help.
    No,
    /// Transient: try again after a backoff, using up an attempt.
    Backoff,
    /// A rate or usage limit: pause the whole agent, until this epoch second
    /// when the CLI said, then try again without using up an attempt.
    WaitForLimit(Option<i64>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
    pub retry: Retry,
}

/// Classifies one attempt. `None` means it succeeded.
pub fn classify(agent: AgentKind, exit: &Exit, report: &AgentReport) -> Option<Failure> {
    let fail = |kind: ErrorKind, message: String, retry: Retry| Some(Failure { kind, message, retry });
    if let Some(e) = &exit.spawn_error {
        return if e.kind() == std::io::ErrorKind::NotFound {
            fail(
                ErrorKind::NotFound,
                format!("the agent program was not found: {e}"),
                Retry::No,
            )
        } else {
            fail(
                ErrorKind::NotFound,
                format!("the agent program could not be started: {e}"),
                Retry::No,
            )
        };
    }
    match &exit.stopped {
        Some(StopReason::Cancelled) => {
            return fail(ErrorKind::Cancelled, "cancelled by the operator".into(), Retry::No);
        }
        Some(StopReason::Shutdown) => {
            return fail(ErrorKind::Interrupted, "the daemon shut down".into(), Retry::No);
        }
        Some(StopReason::Timeout) => {
            if let Some(q) = &report.interactive_prompt {
                return fail(
                    ErrorKind::InteractivePrompt,
                    format!("the agent waited for an answer: {q}"),
                    Retry::No,
                );
            }
            return fail(
                ErrorKind::Timeout,
                "the task passed its timeout and its process tree was killed".into(),
                Retry::No,
            );
        }
        Some(StopReason::Agent(reason)) => {
            let kind = if report.interactive_prompt.is_some() {
                ErrorKind::InteractivePrompt
            } else if report.limit_hit == Some(LimitHit::Turns) {
                ErrorKind::MaxTurns
            } else {
                ErrorKind::BudgetExceeded
            };
            return fail(kind, reason.clone(), Retry::No);
        }
        None => {}
    }
    match agent {
        AgentKind::Command => classify_command(exit, report),
        AgentKind::Claude => classify_claude(exit, report),
        AgentKind::Cline => classify_cline(exit, report),
    }
}

fn exit_text(exit: &Exit) -> String {
    match (exit.code, exit.signal) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "no exit status".into(),
    }
}

fn last_line(text: &str) -> &str {
    text.lines().rev().map(str::trim).find(|l| !l.is_empty()).unwrap_or("")
}

fn classify_command(exit: &Exit, report: &AgentReport) -> Option<Failure> {
    if exit.code == Some(0) {
        return None;
    }
    let stderr = last_line(&exit.stderr_tail);
    let detail = if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    };
    if exit.code.is_none() {
        return Some(Failure {
            kind: ErrorKind::AgentCrashed,
            message: format!("the command was {}{detail}", exit_text(exit)),
            retry: Retry::Backoff,
        });
    }
    if let Some(q) = &report.interactive_prompt {
        return Some(Failure {
            kind: ErrorKind::InteractivePrompt,
            message: format!("the command asked: {q} ({})", exit_text(exit)),
            retry: Retry::No,
        });
    }
    let kind = if exit.code == Some(127) {
        ErrorKind::NotFound
    } else {
        ErrorKind::CommandFailed
    };
    Some(Failure {
        kind,
        message: format!("the command failed with {}{detail}", exit_text(exit)),
        retry: Retry::No,
    })
}

fn classify_claude(exit: &Exit, r: &AgentReport) -> Option<Failure> {
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

/// Cline: its `run_result` finish reason, else its stderr (`{"type":"error","message"}`
/// lines), else how it exited. Its errors are provider texts, so the HTTP status
/// is taken from the words (`429 ...`) when the stream has no structured one.
fn classify_cline(exit: &Exit, r: &AgentReport) -> Option<Failure> {
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

/// An agent that ended without its final record (`what`): crashed (a non-zero
/// exit, or its output cut mid-line: retried) or, exiting 0, invalid output.
fn no_final_record(exit: &Exit, r: &AgentReport, what: &str, note: &str, stderr: &str) -> Failure {
    let detail = if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    };
    if exit.code != Some(0) || r.ended_mid_line {
        let how = if r.ended_mid_line {
            ", in the middle of a line"
        } else {
            ""
        };
        return Failure {
            kind: ErrorKind::AgentCrashed,
            message: format!("the agent ended with {}{how} and no {what}{detail}", exit_text(exit)),
            retry: Retry::Backoff,
        };
    }
    let note = if note.is_empty() {
        String::new()
    } else {
        format!(" {note}")
    };
    Failure {
        kind: ErrorKind::InvalidOutput,
        message: format!("the agent exited 0 without a {what} line{note}{detail}"),
        retry: Retry::No,
    }
}

/// The first HTTP error status written as a word in `text` (`429 Too Many Requests`).
fn http_status_in(text: &str) -> Option<i64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|w| w.len() == 3)
        .filter_map(|w| w.parse::<i64>().ok())
        .find(|s| (400..600).contains(s))
}

fn non_empty(text: &str, default: &str) -> String {
    if text.trim().is_empty() {
        default.to_string()
    } else {
        text.to_string()
    }
}

/// An API error reported by the stream (synthetic message and/or result line).
fn classify_api(r: &AgentReport, text: &str) -> Failure {
    if let Some(f) = classify_api_text(r, text) {
        return f;
    }
    Failure {
        kind: ErrorKind::ApiError,
        message: non_empty(text, "the agent reported an API error"),
        retry: Retry::Backoff,
    }
}

/// Classifies by the structured error code first, then the HTTP status, then words.
fn classify_api_text(r: &AgentReport, text: &str) -> Option<Failure> {
    let lower = text.to_ascii_lowercase();
    let has = |s: &str| lower.contains(s);
    let status = r.api_error_status;
    let code = r.api_error.as_deref().unwrap_or("");
    let msg = non_empty(text.trim(), "API error");
    let f = |kind, retry| {
        Some(Failure {
            kind,
            message: msg.clone(),
            retry,
        })
    };
    if code == "overloaded" || status == Some(529) || has("overloaded") {
        return f(ErrorKind::Overloaded, Retry::Backoff);
    }
    if code == "rate_limit" || status == Some(429) || has("usage limit") || has("hit your") || has("rate limit") {
        return f(
            ErrorKind::RateLimited,
            Retry::WaitForLimit(r.rate_limit_resets_at.or_else(|| reset_from_text(text))),
        );
    }
    if matches!(
        code,
        "authentication_failed"
            | "oauth_org_not_allowed"
            | "account_on_hold"
            | "verification_required"
            | "cloud_credential_error"
    ) || matches!(status, Some(401) | Some(403))
        || has("invalid api key")
        || has("not logged in")
        || has("failed to authenticate")
        || has("does not have access to claude")
        || has("incorrect api key")
    {
        return f(ErrorKind::Auth, Retry::No);
    }
    if has("no conversation found") {
        return f(ErrorKind::SessionNotFound, Retry::No);
    }
    if code == "billing_error" || has("credit balance") {
        return f(ErrorKind::Billing, Retry::No);
    }
    if code == "model_not_found" || status == Some(404) || has("issue with the selected model") {
        return f(ErrorKind::ModelNotFound, Retry::No);
    }
    if has("prompt is too long") || code == "context_window_exceeded" {
        return f(ErrorKind::PromptTooLong, Retry::No);
    }
    if has("unable to connect")
        || has("connection error")
        || has("request timed out")
        || has("econnrefused")
        || has("econnreset")
        || has("enotfound")
        || has("fetch failed")
    {
        return f(ErrorKind::Network, Retry::Backoff);
    }
    if code == "server_error" || status.is_some_and(|s| s >= 500) {
        return f(ErrorKind::ServerError, Retry::Backoff);
    }
    if code == "invalid_request" || status == Some(400) {
        return f(ErrorKind::InvalidRequest, Retry::No);
    }
    None
}

/// The reset time a message carries: `Claude AI usage limit reached|1712345678`
/// (older Claude CLIs, an epoch second) or `Please try again in 20s` (OpenAI-
/// style providers through Cline, seconds from now).
fn reset_from_text(text: &str) -> Option<i64> {
    let digits = |s: &str| s.chars().take_while(char::is_ascii_digit).collect::<String>();
    if let Some((_, after)) = text.split_once("limit reached|") {
        return digits(after).parse().ok();
    }
    let lower = text.to_ascii_lowercase();
    let (_, after) = lower.split_once("try again in ")?;
    let number = digits(after);
    let n: i64 = number.parse().ok()?;
    let unit = after[number.len()..].trim_start();
    let secs = if unit.starts_with("ms") {
        (n + 999) / 1000
    } else if unit.starts_with('m') && !unit.starts_with("ms") {
        n * 60
    } else {
        n
    };
    Some(jiff::Timestamp::now().as_second() + secs)
}

/// Exponential backoff with jitter: `initial * 2^(n-1)`, capped at `max`, then a
/// random point in its upper half (so retries of many tasks spread out, but
/// never wait less than half the nominal delay).
pub fn backoff(n: u32, initial: Duration, max: Duration) -> Duration {
    let exp = n.saturating_sub(1).min(30);
    let nominal = initial.saturating_mul(1u32 << exp).min(max);
    let half = nominal / 2;
    half + Duration::from_nanos(fastrand::u64(0..=half.as_nanos().min(u64::MAX as u128) as u64))
}

#[cfg(test)]
mod tests;
