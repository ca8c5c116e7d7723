//! From how an agent ended to what happens next: success, retry, wait for a
//! rate limit, or fail with a suggestion. What every agent shares lives here:
//! the failures that are decided before an agent's output is read (it never
//! started, it was cancelled, timed out or stopped at a limit), the model-API
//! errors any agent meets (by structured code, then HTTP status, then words),
//! and the backoff. Each agent's own records are read by its module's
//! `classify` ([`super::Agent::classify`]).
//!
//! Classifiers read the typed report first, then the exit status, then the
//! text of the error as a last resort: a CLI's messages change between
//! versions, its JSON fields change less.

use crate::agents::supervise::{Exit, StopReason};
use crate::agents::{AgentReport, LimitHit};
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

/// EAGAIN, ENOMEM, EMFILE, ENFILE (Unix); no such shortage is told on Windows.
fn is_resource_shortage(code: i32) -> bool {
    #[cfg(unix)]
    {
        [libc::EAGAIN, libc::ENOMEM, libc::EMFILE, libc::ENFILE].contains(&code)
    }
    #[cfg(not(unix))]
    {
        let _ = code;
        false
    }
}

/// The failure decided before the agent's own output is read: it could not be
/// started, or the daemon stopped it (cancel, shutdown, timeout, a limit).
/// `None`: it ended by itself, and its agent's classifier decides.
pub fn decided_by_the_daemon(exit: &Exit, report: &AgentReport) -> Option<Failure> {
    let fail = |kind: ErrorKind, message: String, retry: Retry| Some(Failure { kind, message, retry });
    if let Some(e) = &exit.spawn_error {
        // Out of processes or file handles is the machine's moment, not a
        // missing program: tried again (and no reason to fall through).
        if matches!(e.raw_os_error(), Some(code) if is_resource_shortage(code)) {
            return fail(
                ErrorKind::AgentCrashed,
                format!("the agent program could not be started for now: {e}"),
                Retry::Backoff,
            );
        }
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
        Some(StopReason::Stalled(quiet)) => {
            // A hang is transient as a dropped connection is: tried again,
            // using an attempt.
            return fail(
                ErrorKind::Stalled,
                format!(
                    "the agent wrote nothing for {} (stall_timeout) and its process tree was stopped",
                    humantime::format_duration(*quiet)
                ),
                Retry::Backoff,
            );
        }
        Some(StopReason::Agent(reason)) => {
            let kind = if report.interactive_prompt.is_some() {
                ErrorKind::InteractivePrompt
            } else if report.limit_hit == Some(LimitHit::Turns) {
                ErrorKind::MaxTurns
            } else if report.limit_hit == Some(LimitHit::ToolCalls) {
                ErrorKind::MaxToolCalls
            } else {
                ErrorKind::BudgetExceeded
            };
            return fail(kind, reason.clone(), Retry::No);
        }
        None => {}
    }
    None
}

/// How a process ended, in words: `exit code 3`, `killed by signal 9`.
pub fn exit_text(exit: &Exit) -> String {
    match (exit.code, exit.signal) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "no exit status".into(),
    }
}

/// The last non-empty line of `text`, trimmed.
pub fn last_line(text: &str) -> &str {
    text.lines().rev().map(str::trim).find(|l| !l.is_empty()).unwrap_or("")
}

/// An agent that ended without its final record (`what`): crashed (a non-zero
/// exit, or its output cut mid-line: retried) or, exiting 0, invalid output.
pub fn no_final_record(exit: &Exit, r: &AgentReport, what: &str, note: &str, stderr: &str) -> Failure {
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
pub fn http_status_in(text: &str) -> Option<i64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|w| w.len() == 3)
        .filter_map(|w| w.parse::<i64>().ok())
        .find(|s| (400..600).contains(s))
}

/// `text`, or `default` when it is blank.
pub fn non_empty(text: &str, default: &str) -> String {
    if text.trim().is_empty() {
        default.to_string()
    } else {
        text.to_string()
    }
}

/// An API error reported by the stream (synthetic message and/or result line).
pub fn classify_api(r: &AgentReport, text: &str) -> Failure {
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
pub fn classify_api_text(r: &AgentReport, text: &str) -> Option<Failure> {
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
    if let Some((_, after)) = lower.split_once("try again at ") {
        return clock_reset(after, jiff::Zoned::now());
    }
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

/// The epoch second of a wall-clock time in a limit message, read in the
/// machine's time zone (the CLI's, on the same machine): `5:23 pm` (today:
/// Codex 0.171.0 names the date when the reset is on another day) or
/// `dec 29th, 2025 10:15 pm` (its words, lower-cased). The minute is cut, not
/// rounded (a reset 20 s away reads as the current minute), so the end of
/// that minute is when the limit is surely over.
fn clock_reset(text: &str, now: jiff::Zoned) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let words: Vec<&str> = text
        .split_whitespace()
        .map(|w| w.trim_end_matches(['.', ',', ')']))
        .take(5)
        .collect();
    let number = |w: &str| {
        w.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<i64>()
            .ok()
    };
    let (date, rest) = match MONTHS
        .iter()
        .position(|m| words.first().is_some_and(|w| w.starts_with(m)))
    {
        Some(month) => {
            let (day, year) = (number(words.get(1)?)?, number(words.get(2)?)?);
            (Some((year, month as i64 + 1, day)), &words[3..])
        }
        None => (None, &words[..]),
    };
    let (h, m) = rest.first()?.split_once(':')?;
    let (mut hour, minute) = (number(h)?, number(m)?);
    match rest.get(1).copied() {
        Some("pm") if hour < 12 => hour += 12,
        Some("am") if hour == 12 => hour = 0,
        _ => {}
    }
    let time = jiff::civil::Time::new(hour as i8, minute as i8, 0, 0).ok()?;
    let at = match date {
        Some((y, mo, d)) => jiff::civil::Date::new(y as i16, mo as i8, d as i8)
            .ok()?
            .to_datetime(time)
            .to_zoned(now.time_zone().clone())
            .ok()?,
        None => now.date().to_datetime(time).to_zoned(now.time_zone().clone()).ok()?,
    };
    Some(at.timestamp().as_second() + 60)
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
