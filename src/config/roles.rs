//! Roles: named presets a task picks with `role:`.

use crate::duration::Dur;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A named preset for tasks. Fields the task sets itself win, except
/// `allowed_tools`, which is a ceiling the task cannot exceed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RoleConfig {
    pub agent: Option<crate::vocab::AgentChoice>,
    /// The tools of the role, and the most a task with this role may ask for.
    pub allowed_tools: Option<Vec<String>>,
    /// `apply` or `guarded`.
    pub mode: Option<String>,
    /// `worktree`, `copy` or `none`.
    pub isolation: Option<String>,
    pub max_turns: Option<u32>,
    pub max_tool_calls: Option<u32>,
    pub timeout: Option<Dur>,
    pub stall_timeout: Option<Dur>,
    pub budget_usd: Option<f64>,
    pub budget_tokens: Option<u64>,
    /// Put before the task's prompt.
    pub prompt_prefix: Option<String>,
}

const READ_TOOLS: &[&str] = &["Read", "Glob", "Grep", "LS"];
const EDIT_TOOLS: &[&str] = &["Read", "Glob", "Grep", "LS", "Edit", "MultiEdit", "Write"];

/// The roles every home has, like the seed orchestrator's task types: review,
/// summarize and analyze read only; fix and implement may edit files. None has
/// a shell: a role with `Bash` needs the agent's ceiling to allow it too.
pub fn builtin_roles() -> BTreeMap<String, RoleConfig> {
    let role = |tools: &[&str], max_turns: u32, prefix: &str| RoleConfig {
        allowed_tools: Some(tools.iter().map(|t| t.to_string()).collect()),
        max_turns: Some(max_turns),
        prompt_prefix: Some(prefix.to_string()),
        ..RoleConfig::default()
    };
    let review = role(
        READ_TOOLS,
        30,
        "You are reviewing code. Do not modify any file. Report each finding with its file and line, most important first.",
    );
    BTreeMap::from([
        ("review".to_string(), review.clone()),
        // The seed orchestrator's name for it.
        ("code_review".to_string(), review),
        (
            "summarize".to_string(),
            role(READ_TOOLS, 20, "Summarize what is asked below. Do not modify any file."),
        ),
        (
            "analyze".to_string(),
            role(
                READ_TOOLS,
                30,
                "Analyze what is asked below and report your findings. Do not modify any file.",
            ),
        ),
        (
            "fix".to_string(),
            role(
                EDIT_TOOLS,
                40,
                "Fix the problem described below with the smallest change that does it, and say which files you changed.",
            ),
        ),
        (
            "implement".to_string(),
            role(
                EDIT_TOOLS,
                80,
                "Implement what is described below, following the code's existing style, and say which files you changed.",
            ),
        ),
    ])
}
