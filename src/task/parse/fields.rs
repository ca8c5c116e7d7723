//! The fields a task file may set, as written (checked and turned into a
//! [`crate::task::TaskSpec`] by `parse`).

use crate::duration::Dur;
use serde::Deserialize;

/// Priority as written: a name or an integer.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum PrioritySpec {
    Int(i64),
    Name(String),
}

/// The fields a task file may set. Unknown fields are an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Fields {
    pub(super) title: Option<String>,
    pub(super) agent: Option<crate::vocab::AgentChoice>,
    pub(super) workdir: Option<String>,
    pub(super) allowed_tools: Option<Vec<String>>,
    pub(super) max_turns: Option<i64>,
    pub(super) max_tool_calls: Option<i64>,
    pub(super) timeout: Option<Dur>,
    pub(super) stall_timeout: Option<Dur>,
    pub(super) retries: Option<i64>,
    pub(super) priority: Option<PrioritySpec>,
    pub(super) budget_usd: Option<f64>,
    pub(super) budget_tokens: Option<i64>,
    pub(super) mode: Option<String>,
    pub(super) isolation: Option<String>,
    pub(super) command: Option<String>,
    pub(super) steps: Option<Vec<String>>,
    pub(super) role: Option<String>,
    pub(super) parent_task_id: Option<String>,
    pub(super) turn_of: Option<String>,
    pub(super) prompt: Option<String>,
    /// Continue this agent session (set by `resume` and `reply`).
    pub(super) session: Option<String>,
    /// The first step to run (set by `resume`).
    pub(super) start_step: Option<i64>,
    /// Earlier tasks whose digest goes before the prompt.
    pub(super) context_from: Option<Vec<String>>,
    /// Tasks that must succeed (`after`) or end (`after_any`) first.
    pub(super) after: Option<Vec<String>>,
    pub(super) after_any: Option<Vec<String>>,
    /// `false`: the tasks waited for give no context.
    pub(super) context: Option<bool>,
    /// A start time (RFC 3339), or a wait counted from the file's arrival.
    pub(super) not_before: Option<String>,
    pub(super) delay: Option<Dur>,
    /// The command that says the work is done, and how many checks it gets.
    pub(super) verify: Option<String>,
    pub(super) verify_rounds: Option<i64>,
}

pub(super) const FIELD_LIST: &str = "title, agent, workdir, allowed_tools, max_turns, max_tool_calls, timeout, stall_timeout, retries, priority, budget_usd, budget_tokens, mode, isolation, command, steps, role, parent_task_id, turn_of, prompt, session, start_step, context_from, after, after_any, context, not_before, delay, verify, verify_rounds";
