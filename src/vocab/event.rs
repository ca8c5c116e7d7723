//! Every event the product writes: its name and fields, one variant each.

use super::{AgentKind, ErrorKind, Mediation, Status};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The name of every event (the tag of each [`Event`]).
pub const EVENT_NAMES: &[&str] = &[
    "daemon_started",
    "daemon_stopped",
    "config_reloaded",
    "retention_applied",
    "task_queued",
    "task_rejected",
    "claim_failed",
    "task_mediated",
    "task_started",
    "attempt_started",
    "agent_progress",
    "attempt_finished",
    "agent_switched",
    "step_finished",
    "schedule_fired",
    "spend_cap_reached",
    "spend_cap_lifted",
    "verify_finished",
    "retry_scheduled",
    "agent_paused",
    "task_succeeded",
    "task_failed",
    "task_cancelled",
    "task_interrupted",
    "validation_warning",
    "security_violation",
    "applied",
];

/// One line of `logs/events.ndjson`, less the `ts` and `task_id` that the
/// event log adds: every event the product writes, with its fields.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    DaemonStarted {
        pid: u32,
        worker: String,
        version: String,
        max_concurrent: usize,
        once: bool,
        config_file: Option<PathBuf>,
    },
    DaemonStopped {
        reason: String,
        succeeded: usize,
        failed: usize,
        cancelled: usize,
        rejected: usize,
        interrupted: usize,
        unclaimed: usize,
    },
    /// `orchestrator.yaml` was read again (it changed, or SIGHUP). `ok: false`:
    /// the new text was refused (`error` says why) and the config in force stays.
    ConfigReloaded {
        ok: bool,
        /// What asked for it: `file` (the file changed) or `sighup`.
        trigger: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        file: Option<PathBuf>,
        /// Keys whose values changed (names only: values may be secrets).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        changed: Vec<String>,
        /// Of those, the keys that take effect only at the next start.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        restart_needed: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The mediator structured the task (`used`), or the parser's plan stands.
    TaskMediated(Mediation),
    /// A schedule fired: its task file is in the inbox (`caught_up`: a run
    /// missed while no daemon was up, fired at the start).
    ScheduleFired {
        schedule: String,
        at: String,
        file: String,
        caught_up: bool,
    },
    /// A `budget:` cap is reached: no task starts until `resumes_at` (the
    /// period's end) or until the cap is raised.
    SpendCapReached {
        cap: String,
        limit: f64,
        spent: f64,
        resumes_at: String,
    },
    /// The cap reached is no longer: its period ended, or it was raised.
    SpendCapLifted {
        cap: String,
    },
    /// The daemon's `retention:` removed finished tasks or old files.
    RetentionApplied {
        tasks: usize,
        files: usize,
        sandboxes: usize,
    },
    TaskQueued {
        file: String,
        title: String,
        agent: AgentKind,
        priority: i64,
        /// What it waits for before it may start (`after:`, `after_any:`).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        waiting_for: Vec<String>,
        /// When it may start, if that is still to come (`not_before`, `delay`).
        #[serde(skip_serializing_if = "Option::is_none")]
        starts_at: Option<String>,
    },
    TaskRejected {
        file: String,
        reason: String,
        error: String,
        hint: String,
        moved_to: String,
    },
    /// A file that could not be claimed (or rejected): it stays in the inbox.
    ClaimFailed {
        file: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        error: String,
        hint: String,
    },
    TaskStarted {
        file: String,
        title: String,
        agent: AgentKind,
        workdir: PathBuf,
        worker: String,
        recovered: bool,
    },
    AttemptStarted {
        attempt: u32,
        max_attempts: u32,
        program: String,
        agent: AgentKind,
    },
    AgentProgress {
        attempt: u32,
        turns: u32,
        tool_calls: u32,
        cost_usd: Option<f64>,
        last_event: Option<String>,
    },
    AttemptFinished {
        attempt: u32,
        exit_code: Option<i32>,
        signal: Option<i32>,
        duration_ms: u64,
        error: Option<ErrorKind>,
        message: Option<String>,
        turns: u32,
        tool_calls: u32,
        cost_usd: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tokens: Option<super::Tokens>,
        stdout_bytes: u64,
        stderr_bytes: u64,
    },
    /// The task fell through from one agent of its list to the next.
    AgentSwitched {
        from: AgentKind,
        to: AgentKind,
        reason: String,
    },
    StepFinished {
        step: u32,
        of: u32,
        session_id: Option<String>,
    },
    /// A check of the verify loop ended (`passed`: exit code 0).
    VerifyFinished {
        round: u32,
        of: u32,
        command: String,
        exit_code: Option<i32>,
        duration_ms: u64,
        passed: bool,
    },
    RetryScheduled {
        attempt: u32,
        delay_ms: u64,
        error: ErrorKind,
        message: String,
        attempts_left: u32,
    },
    /// A rate or usage limit: the agent's tasks wait until `until`.
    AgentPaused {
        agent: AgentKind,
        until: String,
        reason: String,
        from_cli: bool,
    },
    TaskSucceeded(Finished),
    TaskFailed(Finished),
    TaskCancelled(Finished),
    TaskInterrupted(Interruption),
    ValidationWarning(Finding),
    SecurityViolation(Violation),
    /// `orchestrator apply` applied a guarded task's changes.
    Applied {
        workdir: PathBuf,
        files: Vec<String>,
        insertions: usize,
        deletions: usize,
    },
}

/// A finding of the advisory checks: a `validation_warning` event, an entry of
/// `result.json`'s `validation.warnings` and a line of the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Its kind: `empty_answer`, `tools_not_enforced`, `output_left_open`, ...
    pub warning: String,
    pub message: String,
    /// The attempt it was seen in, when it belongs to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The tools it is about (`tools_dropped`, `tools_not_enforced`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
}

impl Finding {
    pub fn new(warning: &str, message: impl Into<String>) -> Self {
        Self {
            warning: warning.into(),
            message: message.into(),
            attempt: None,
            tools: None,
        }
    }
}

/// The fields of a task's final event.
#[derive(Debug, Clone, Serialize)]
pub struct Finished {
    pub title: String,
    pub duration_ms: u64,
    pub attempts: usize,
    pub cost_usd: Option<f64>,
    pub error: Option<ErrorKind>,
    pub message: Option<String>,
    pub suggestion: Option<String>,
    /// Written by a later daemon: the one that finished the task died first.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub late: bool,
}

/// Why a task's run ended without finishing it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Interruption {
    /// The daemon running it died; told by the one that took it over.
    DaemonDied {
        attempt: u32,
        killed_leftover: bool,
        recovered_by: String,
    },
    /// The daemon running it stopped gracefully.
    DaemonShutdown { attempt: u32 },
    /// It ended, but its result could not be written.
    ResultNotWritten {
        error: String,
        status: Status,
        hint: String,
    },
}

/// Something that breaks the rules of the home or of a task's confinement:
/// `reason` says what, the other fields say where.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Violation {
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workdir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbox: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_as: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::EVENT_NAMES;

    #[test]
    fn event_names_list_every_event() {
        // The variants of `Event`, read from this file: a new event that is
        // not in EVENT_NAMES could not be chosen for notifications.
        let src = include_str!("event.rs");
        let body = &src[src.find("pub enum Event {").unwrap()..];
        let body = &body[..body.find("\n}\n").unwrap()];
        let snake = |camel: &str| {
            let mut out = String::new();
            for (i, c) in camel.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_lowercase());
            }
            out
        };
        let mut variants: Vec<String> = body
            .lines()
            .filter(|l| l.starts_with("    ") && !l.starts_with("     "))
            .map(str::trim)
            .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
            .map(|l| snake(l.split(|c: char| !c.is_ascii_alphanumeric()).next().unwrap()))
            .collect();
        variants.sort();
        let mut names: Vec<String> = EVENT_NAMES.iter().map(|s| s.to_string()).collect();
        names.sort();
        assert_eq!(variants, names);
    }
}
