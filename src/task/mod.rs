//! A task as the user wrote it, once parsed and checked: [`TaskSpec`].
//!
//! `parse` turns the bytes of a task file into a spec or a [`Rejection`] that
//! says what is wrong and how to fix it; `workdir` resolves and confines the
//! working directory. Nothing here runs anything.

pub mod intent;
pub mod parse;
pub(crate) mod workdir;

use crate::config::AgentKind;
use serde::Serialize;
use std::time::Duration;

pub use crate::vocab::{Isolation, Mode};

/// A parsed, validated task file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskSpec {
    pub title: String,
    /// The role the task named (its fields are already applied).
    pub role: Option<String>,
    /// What a good result must meet (from a seed `NAME.task.md`), checked by people:
    /// listed in the result's validation and the summary.
    pub success_criteria: Vec<String>,
    pub prompt: String,
    /// The prompt was longer than `max_prompt_chars` and was cut.
    pub prompt_truncated: bool,
    pub agent: AgentKind,
    /// The agents to fall through to, in order, when `agent` is paused by a
    /// limit, missing, or refused by its provider (`agent: [claude, codex]`).
    pub fallback: Vec<AgentKind>,
    /// As written; resolved by [`workdir::resolve`].
    pub workdir: Option<String>,
    pub allowed_tools: Option<Vec<String>>,
    pub max_turns: Option<u32>,
    /// The agent is stopped after this many tool calls.
    pub max_tool_calls: Option<u32>,
    pub timeout: Option<Duration>,
    /// The agent is stopped (and tried again) when it prints nothing this long.
    pub stall_timeout: Option<Duration>,
    /// Extra attempts for transient failures.
    pub retries: Option<u32>,
    /// Larger runs first.
    pub priority: i64,
    pub budget_usd: Option<f64>,
    /// Tokens (input and output) the task may use over all its runs.
    pub budget_tokens: Option<u64>,
    pub mode: Mode,
    /// As written (`None`: guarded picks worktree or copy, apply runs in place).
    pub isolation: Option<Isolation>,
    /// The shell command of an `agent: command` task.
    pub command: Option<String>,
    pub parent_task_id: Option<String>,
    pub turn_of: Option<String>,
    /// A multi-step plan, run step after step in one agent session.
    pub steps: Vec<String>,
    /// Continue this agent session (`resume`, `reply`).
    pub session: Option<String>,
    /// First step to run, 1-based (`resume` starts at the step that failed).
    pub start_step: u32,
    /// A file without structure (a `.txt`, Markdown without front matter):
    /// what a mediator with `when: loose` structures.
    pub loose: bool,
    /// What the parser read from a loose note, and the words that decided it.
    pub intent: Vec<intent::Decision>,
    /// The workdir was read from the note ("in services/billing:"): if it does
    /// not resolve inside the allowed roots, the default workdir stays.
    pub workdir_from_note: bool,
    /// Earlier tasks whose digest goes before the prompt (`context_from:`).
    pub context_from: Vec<String>,
    /// The tasks it waits for (`after:`, `after_any:`).
    pub deps: Dependencies,
    /// The command that says whether the work is done (`verify:`).
    pub verify: Option<Verify>,
}

/// A verify loop: `command` runs in the workdir after the agent succeeded;
/// while it fails, the agent is asked again, up to `rounds` checks in all.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Verify {
    pub command: String,
    pub rounds: u32,
}

/// What a task waits for before it may start.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Dependencies {
    /// Ids or inbox file names of tasks that must have succeeded.
    pub after: Vec<String>,
    /// Ids or inbox file names of tasks that must have ended, whatever their status.
    pub after_any: Vec<String>,
    /// `context: false`: the answers of the tasks waited for do not go before the prompt.
    pub no_context: bool,
    /// Not before this time (`not_before:`).
    pub not_before: Option<jiff::Timestamp>,
    /// Not before this long after the file was dropped (`delay:`, counted from
    /// its modification time, which every daemon and every restart sees alike).
    pub delay: Option<Duration>,
}

impl Dependencies {
    pub fn is_empty(&self) -> bool {
        self.after.is_empty() && self.after_any.is_empty()
    }

    /// When a file that arrived (was last written) at `arrival` may start,
    /// if it has a start time.
    pub fn start_at(&self, arrival: std::time::SystemTime) -> Option<std::time::SystemTime> {
        let after_delay = self.delay.map(|d| arrival + d);
        let not_before = self.not_before.map(std::time::SystemTime::from);
        after_delay.max(not_before)
    }

    /// The start time, if it is still to come: what holds the file now.
    pub fn start_to_come(&self, arrival: std::time::SystemTime) -> Option<std::time::SystemTime> {
        self.start_at(arrival).filter(|t| *t > std::time::SystemTime::now())
    }

    /// Every reference, `after` first.
    pub fn references(&self) -> impl Iterator<Item = &str> {
        self.after.iter().chain(&self.after_any).map(String::as_str)
    }

    /// Every reference with whether it must have succeeded (`after`) or only ended.
    pub fn each(&self) -> impl Iterator<Item = (&str, bool)> {
        let ok = self.after.iter().map(|r| (r.as_str(), true));
        ok.chain(self.after_any.iter().map(|r| (r.as_str(), false)))
    }
}

/// Parses a task file and places it: its workdir resolved and confined to the
/// allowed roots. What the daemon, `submit` and `plan` all check.
pub fn check(
    name: &str,
    bytes: &[u8],
    config: &crate::config::Config,
    home: &std::path::Path,
) -> Result<(TaskSpec, std::path::PathBuf), Rejection> {
    let spec = parse::parse(name, bytes, &parse::Limits::of(config))?;
    let wd = place(&spec, config, home)?;
    Ok((spec, wd))
}

/// Resolves a parsed task's workdir and confines it to the allowed roots of
/// `config`. Also done again for a task the intake already checked, when it is
/// claimed (time has passed; a folder on the path may have become a symlink).
pub fn place(
    spec: &TaskSpec,
    config: &crate::config::Config,
    home: &std::path::Path,
) -> Result<std::path::PathBuf, Rejection> {
    let resolve = |workdir: Option<&str>| {
        workdir::resolve(
            workdir,
            &config.default_workdir(home),
            home,
            &config.allowed_roots(home),
        )
    };
    match resolve(spec.workdir.as_deref()) {
        // A folder a note named is a guess: not there, or outside the roots,
        // and the note runs where it would have without it.
        Err(_) if spec.workdir_from_note => resolve(None),
        placed => placed,
    }
}

/// Why a task file was not accepted, in the words of `NAME.error.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{error}")]
pub struct Rejection {
    /// A stable machine-readable reason, e.g. `unknown_field`, `workdir_outside_roots`.
    pub reason: &'static str,
    /// What is wrong.
    pub error: String,
    /// How to fix it.
    pub hint: String,
}

impl Rejection {
    pub fn new(reason: &'static str, error: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            reason,
            error: error.into(),
            hint: hint.into(),
        }
    }

    /// A workdir escape is also a security event.
    pub fn is_security_violation(&self) -> bool {
        self.reason == "workdir_outside_roots"
    }
}
