//! The records written into a task folder: `result.json` and `progress.json`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const SCHEMA_VERSION: u32 = 1;

pub use crate::vocab::{ErrorKind, Status};

/// An error with its class and what to do about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub kind: ErrorKind,
    pub message: String,
    pub suggestion: String,
}

/// One run of the agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub n: u32,
    /// The step it ran (multi-step plans; 1 otherwise).
    #[serde(default = "one")]
    pub step: u32,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub exit_code: Option<i32>,
    pub error: Option<ErrorInfo>,
    /// Cut short from outside: it does not count as one of the task's attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_short: Option<crate::vocab::CutShort>,
    /// Which daemon ran it (`host:pid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// The agent it ran (a task with an agent list may change agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<crate::vocab::AgentKind>,
    /// It ran alone in its daemon (a suspected poison pill's probation).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub alone: bool,
}

fn one() -> u32 {
    1
}

/// The outcome of one step of a multi-step plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepOutcome {
    pub n: u32,
    pub text: String,
    pub status: Status,
    pub output: String,
    pub session_id: Option<String>,
    /// The agent the session is of (a task with an agent list may change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<crate::vocab::AgentKind>,
    pub cost_usd: Option<f64>,
    pub turns: u32,
    pub error: Option<ErrorInfo>,
}

/// One check of a verify loop (`verify:`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyRound {
    pub round: u32,
    pub command: String,
    /// `None`: it did not exit by itself (stopped at the task's timeout, or killed).
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    /// The end of what it printed (stdout and stderr together).
    pub output_tail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Validation {
    pub warnings: Vec<crate::vocab::Finding>,
    /// What a good result must meet, as the task file said (a seed NAME.task.md's
    /// Success Criteria): for the reviewer to check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub success_criteria: Vec<String>,
}

/// `result.json`, schema version 1. Written once; present = finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    pub schema_version: u32,
    pub id: String,
    pub title: String,
    pub source_file: String,
    pub status: Status,
    pub agent: String,
    pub workdir: String,
    pub queued_at: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    pub attempts: Vec<AttemptRecord>,
    /// The agent's final answer.
    pub output: String,
    pub session_id: Option<String>,
    pub cost_usd: Option<f64>,
    /// Tokens the task's runs used, where its agent reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<crate::vocab::Tokens>,
    /// The session's whole count at the task's end, for an agent that
    /// reports a session's count rather than a run's (Codex): a follow-up
    /// in the same session counts only what it adds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_tokens: Option<crate::vocab::Tokens>,
    pub turns: u32,
    pub tool_calls: u32,
    pub files_changed: Vec<String>,
    /// Tools the agent asked for and was refused.
    pub permission_denials: Vec<Value>,
    pub validation: Validation,
    pub error: Option<ErrorInfo>,
    pub parent_task_id: Option<String>,
    pub turn_of: Option<String>,
    /// Which daemon ran it: `host:pid`.
    pub worker: String,
    /// Multi-step plans: each step's outcome, in order (empty otherwise).
    #[serde(default)]
    pub steps: Vec<StepOutcome>,
    /// The checks of its verify loop, in order (empty without `verify:`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify: Vec<VerifyRound>,
    /// The worktree or copy the agent worked in (isolated runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<crate::vocab::Sandbox>,
    /// The mediator's part, when it saw the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mediation: Option<crate::vocab::Mediation>,
    /// Attempts cut short from outside (its daemon died or stopped): they are
    /// in `attempts` but used none of the task's attempts.
    #[serde(default)]
    pub interruptions: u32,
    /// The role preset it ran with, if it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// The agent process of a running attempt, recorded so a daemon that takes the
/// task over after a crash can kill what is left of it (and nothing else).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentProcess {
    pub pid: u32,
    /// Process group (Unix); equals `pid`.
    pub pgid: Option<u32>,
    /// Start time in clock ticks since boot (Linux `/proc/<pid>/stat` field 22),
    /// so a recycled pid is never mistaken for the agent. With `start_ticks_max`,
    /// the earliest tick of the window the agent started in.
    pub start_ticks: Option<u64>,
    /// The latest tick of that window (the boot clock read before and after the
    /// spawn: see `agents::identity`). Absent: `start_ticks` is exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ticks_max: Option<u64>,
    pub daemon_pid: u32,
}

/// `progress.json`: live state of a running task, rewritten (throttled) as it runs.
/// It also carries the attempt history, so a daemon recovering the task after a
/// crash knows how many attempts were spent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ProgressRecord {
    pub status: Option<Status>,
    pub attempt: u32,
    pub attempts: Vec<AttemptRecord>,
    pub step: Option<u32>,
    pub turns: u32,
    pub tool_calls: u32,
    pub cost_usd: Option<f64>,
    pub last_event: Option<String>,
    pub session_id: Option<String>,
    pub started_at: Option<String>,
    pub updated_at: Option<String>,
    pub worker: Option<String>,
    /// Set while waiting: for a retry's backoff or an agent's rate limit.
    pub waiting_until: Option<String>,
    /// The agent process of the attempt now running.
    pub agent: Option<AgentProcess>,
    /// Steps finished so far (multi-step plans): a recovered task goes on after them.
    #[serde(default)]
    pub steps: Vec<StepOutcome>,
    /// The verify rounds checked so far: a recovered task goes on counting.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify: Vec<VerifyRound>,
    /// The agent's work (every step) is done and its checks are running: a
    /// recovered task goes on with them, not with its prompt again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub worked: bool,
    /// The answer of that work, kept for the result of a recovered task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

impl ProgressRecord {
    pub fn load(path: &std::path::Path) -> Option<Self> {
        super::read::json(path)
    }

    /// Milliseconds of the task's `timeout` used: its runs and its checks.
    pub fn time_used_ms(&self) -> u64 {
        let runs: u64 = self.attempts.iter().filter_map(|a| a.duration_ms).sum();
        runs + self.verify.iter().map(|v| v.duration_ms).sum::<u64>()
    }
}

impl ResultRecord {
    /// The retries among its attempts: runs of a step that had run before.
    /// The first run of each step of a multi-step plan is no retry, and an
    /// attempt cut short from outside (its daemon died or stopped) is an
    /// interruption, not a retry.
    pub fn retries(&self) -> u32 {
        let mut seen = std::collections::BTreeSet::new();
        let mut retries = 0;
        for a in self.attempts.iter().filter(|a| a.cut_short.is_none()) {
            if !seen.insert(a.step) {
                retries += 1;
            }
        }
        retries
    }

    pub fn load(path: &std::path::Path) -> std::io::Result<Self> {
        let bytes = super::read::read_bounded(path, super::read::max::RECORD)?;
        serde_json::from_slice(&bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}
