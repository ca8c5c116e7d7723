//! `orchestrator retry ID`: run a task again, as a new task that points back.

use super::common::{UsageError, load_plan, print_json, resolve_task};
use super::{Cli, exit};
use serde_json::json;

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
    let mut f = super::followup::base_fields(&plan);
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
    let new_id = super::submit::write_task(cli, &home, f)?;
    if args.json {
        print_json(&json!({"id": new_id, "parent_task_id": id}))?;
    } else {
        println!("{new_id}");
    }
    Ok(exit::OK)
}
