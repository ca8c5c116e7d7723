//! New tasks made from earlier ones (`retry`, `resume`, `reply`, and the
//! Telegram bot's `/retry`), written into the inbox as a person's would be.

use crate::config::Config;
use crate::plan::Plan;
use crate::store::Home;
use serde_json::{Map, Value, json};
use std::io::Write;

/// The parent's plan as task fields, so the new task runs in the same place,
/// as safely, with the same limits: agent, workdir, tools, mode, isolation,
/// role, turns, tool calls, attempts, budget, timeout and priority. A
/// follow-up of a guarded task is guarded too.
pub fn base_fields(plan: &Plan) -> Map<String, Value> {
    let mut f = Map::new();
    f.insert("agent".into(), json!(plan.agent));
    f.insert("workdir".into(), json!(plan.workdir.display().to_string()));
    f.insert("allowed_tools".into(), json!(plan.allowed_tools));
    f.insert("mode".into(), json!(plan.mode));
    f.insert("isolation".into(), json!(plan.isolation));
    if let Some(r) = &plan.role {
        f.insert("role".into(), json!(r));
    }
    if let Some(n) = plan.max_turns {
        f.insert("max_turns".into(), json!(n));
    }
    if let Some(n) = plan.max_tool_calls {
        f.insert("max_tool_calls".into(), json!(n));
    }
    f.insert("retries".into(), json!(plan.max_attempts.saturating_sub(1)));
    if let Some(b) = plan.budget_usd {
        f.insert("budget_usd".into(), json!(b));
    }
    if let Some(b) = plan.budget_tokens {
        f.insert("budget_tokens".into(), json!(b));
    }
    f.insert("timeout".into(), json!(plan.timeout.to_string()));
    if let Some(s) = plan.stall_timeout {
        f.insert("stall_timeout".into(), json!(s.to_string()));
    }
    f.insert("priority".into(), json!(plan.priority));
    f
}

/// The fields of a task that runs task `id` (planned as `plan`) again.
pub fn retry_fields(id: &str, plan: &Plan) -> Map<String, Value> {
    let mut f = base_fields(plan);
    // A run afresh starts from the task's whole agent list, the agents it
    // fell through from first, with the tools it asked for (a follow-up in a
    // session stays with the agent that has it).
    if !plan.fallback.is_empty() || !plan.switched_from.is_empty() {
        let list: Vec<_> = plan
            .switched_from
            .iter()
            .copied()
            .chain(std::iter::once(plan.agent))
            .chain(plan.fallback.iter().copied())
            .collect();
        f.insert("agent".into(), json!(list));
        match &plan.tools_asked {
            Some(t) => f.insert("allowed_tools".into(), json!(t)),
            None => f.remove("allowed_tools"),
        };
    }
    f.insert("title".into(), json!(plan.title));
    if plan.agent == crate::config::AgentKind::Command {
        // A command has no tools; its command is the last shell argument.
        f.remove("allowed_tools");
        if let Some(cmd) = plan.args.last().filter(|_| plan.steps.is_empty()) {
            f.insert("command".into(), json!(cmd));
        }
    }
    if !plan.prompt.is_empty() {
        f.insert("prompt".into(), json!(plan.prompt));
    }
    if !plan.steps.is_empty() {
        f.insert("steps".into(), json!(plan.steps));
    }
    f.insert("parent_task_id".into(), json!(id));
    f
}

/// Why a task could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The daemon's parser refuses it: what is wrong, and what to do.
    #[error("{0}; {1}")]
    Invalid(String, String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Checks `fields` with the daemon's parser under `config` and writes them as
/// `inbox/<id>.json` (whole: a temporary file, synced, renamed).
pub fn write_task(home: &Home, config: &Config, fields: Map<String, Value>) -> Result<String, WriteError> {
    let bytes = serde_json::to_vec_pretty(&Value::Object(fields)).map_err(std::io::Error::other)?;
    let (spec, _) = crate::task::check("submit.json", &bytes, config, home.root())
        .map_err(|r| WriteError::Invalid(r.error.clone(), r.hint.clone()))?;
    std::fs::create_dir_all(home.inbox())?;
    let id = crate::ids::new_id(&spec.title);
    let tmp = home.inbox().join(format!(".{id}.json.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, home.inbox().join(format!("{id}.json")))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AgentKind;

    fn plan_of(text: &str) -> Plan {
        let limits = crate::task::parse::Limits {
            max_bytes: 1 << 20,
            max_prompt_chars: 1000,
            default_agent: AgentKind::Claude,
            roles: Default::default(),
        };
        let spec = crate::task::parse::parse("t.md", text.as_bytes(), &limits).unwrap();
        let cx = crate::plan::Context {
            id: "id",
            source_file: "t.md",
            workdir: std::path::PathBuf::from("/w"),
            queued_at: None,
        };
        crate::plan::build(&spec, &Config::default(), cx)
    }

    #[test]
    fn a_retry_keeps_the_agent_list_and_a_follow_up_in_a_session_does_not() {
        let plan = plan_of("---\nagent: [claude, codex]\nallowed_tools: [Read]\n---\nlook\n");
        assert_eq!(retry_fields("id", &plan)["agent"], json!(["claude", "codex"]));
        assert_eq!(base_fields(&plan)["agent"], json!("claude"));
        let single = plan_of("---\nagent: codex\n---\nlook\n");
        assert_eq!(retry_fields("id", &single)["agent"], json!("codex"));
        // After a switch: the whole list again, and the tools the task asked for.
        let asked = plan_of("---\nagent: [claude, codex]\nallowed_tools: [Read, Grep]\n---\nlook\n");
        let switched = asked.switched(&Config::default()).unwrap();
        let f = retry_fields("id", &switched);
        assert_eq!(
            (&f["agent"], &f["allowed_tools"]),
            (&json!(["claude", "codex"]), &json!(["Read", "Grep"]))
        );
    }
}
