//! A task's `role:`: the preset's fields, and its tools as a ceiling.

use super::{Fields, Rejection};
use crate::config::RoleConfig;

/// Fills the fields the task leaves unset from its role, and holds the task's
/// tools within the role's. Returns the prompt prefix to put before the prompt.
pub(super) fn apply_role(
    f: &mut Fields,
    name: &str,
    roles: &std::collections::BTreeMap<String, RoleConfig>,
) -> Result<Option<String>, Rejection> {
    let Some(role) = roles.get(name) else {
        let known: Vec<&str> = roles.keys().map(String::as_str).collect();
        return Err(Rejection::new(
            "unknown_role",
            format!("role `{name}` is not defined"),
            format!(
                "use one of: {} (or define roles.{name} in orchestrator.yaml)",
                known.join(", ")
            ),
        ));
    };
    f.agent = f.agent.take().or_else(|| role.agent.clone());
    f.mode = f.mode.take().or_else(|| role.mode.clone());
    f.isolation = f.isolation.take().or_else(|| role.isolation.clone());
    f.max_turns = f.max_turns.or(role.max_turns.map(i64::from));
    f.max_tool_calls = f.max_tool_calls.or(role.max_tool_calls.map(i64::from));
    f.timeout = f.timeout.or(role.timeout);
    f.stall_timeout = f.stall_timeout.or(role.stall_timeout);
    f.budget_usd = f.budget_usd.or(role.budget_usd);
    f.budget_tokens = f
        .budget_tokens
        .or(role.budget_tokens.map(|n| n.min(i64::MAX as u64) as i64));
    if let Some(ceiling) = &role.allowed_tools {
        match &f.allowed_tools {
            None => f.allowed_tools = Some(ceiling.clone()),
            Some(asked) => {
                let over: Vec<&String> = asked
                    .iter()
                    .filter(|t| !crate::tools::tool_allowed(t, ceiling))
                    .collect();
                if !over.is_empty() {
                    return Err(Rejection::new(
                        "tool_not_in_role",
                        format!(
                            "role `{name}` allows only {}; the task asks for {}",
                            ceiling.join(", "),
                            over.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                        "remove those tools, or use a role that allows them (fix, implement, or your own in orchestrator.yaml)",
                    ));
                }
            }
        }
    }
    Ok(role.prompt_prefix.clone().filter(|p| !p.trim().is_empty()))
}
