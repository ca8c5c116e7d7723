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
    /// Print JSON (one document) instead of text, for scripts.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let home = cli.home()?;
    let (id, dir) = resolve_task(&home, &args.task)?;
    let plan = load_plan(&dir)
        .ok_or_else(|| UsageError(format!("{id} has no plan.json: it never started, nothing to retry")))?;
    let f = crate::followups::retry_fields(&id, &plan);
    let new_id = super::submit::write_task(cli, &home, f)?;
    if args.json {
        print_json(&json!({"id": new_id, "parent_task_id": id}))?;
    } else {
        println!("{new_id}");
    }
    Ok(exit::OK)
}
