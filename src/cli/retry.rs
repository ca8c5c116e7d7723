//! `orchestrator retry ID`: run a task again, as a new task that points back.

use super::common::{UsageError, load_plan, print_json, resolve_task};
use super::{Cli, exit};
use serde_json::{Map, Value, json};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  orchestrator retry 01m80jw      (an id, a unique prefix, or the original file name)"
)]
pub struct Args {
    /// The task to run again.
    pub task: String,
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let home = cli.home()?;
    let (id, dir) = resolve_task(&home, &args.task)?;
    let plan = load_plan(&dir)
        .ok_or_else(|| UsageError(format!("{id} has no plan.json: it never started, nothing to retry")))?;
    let mut f = Map::new();
    f.insert("title".into(), Value::String(plan.title.clone()));
    f.insert("agent".into(), json!(plan.agent));
    f.insert("workdir".into(), Value::String(plan.workdir.display().to_string()));
    if plan.agent == crate::config::AgentKind::Command {
        // The command is the last shell argument.
        if let Some(cmd) = plan.args.last() {
            f.insert("command".into(), Value::String(cmd.clone()));
        }
    } else {
        f.insert("allowed_tools".into(), json!(plan.allowed_tools));
    }
    if !plan.prompt.is_empty() {
        f.insert("prompt".into(), Value::String(plan.prompt.clone()));
    }
    if let Some(n) = plan.max_turns {
        f.insert("max_turns".into(), json!(n));
    }
    if let Some(b) = plan.budget_usd {
        f.insert("budget_usd".into(), json!(b));
    }
    f.insert("timeout".into(), Value::String(plan.timeout.to_string()));
    f.insert("priority".into(), json!(plan.priority));
    f.insert("parent_task_id".into(), Value::String(id.clone()));
    let new_id = super::submit::write_task(cli, &home, f)?;
    if args.json {
        print_json(&json!({"id": new_id, "parent_task_id": id}))?;
    } else {
        println!("{new_id}");
    }
    Ok(exit::OK)
}
