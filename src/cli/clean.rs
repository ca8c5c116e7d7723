//! `orchestrator clean`: retention for finished tasks, summaries, rejected and
//! cancelled files, rotated event logs and stray temporary files, by hand (the
//! rules are [`crate::retention`]'s, which a daemon with `retention:` applies
//! by itself).

use super::common::{UsageError, print_json};
use super::{Cli, exit};
use crate::retention::{self, Cleanup, Policy};
use crate::store::record::Status;
use serde_json::json;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  orchestrator clean --dry-run\n  orchestrator clean --older-than 7d --status succeeded\n  orchestrator clean --older-than 0s --keep 100"
)]
pub struct Args {
    /// Remove what finished (or was rejected, cancelled, rotated) longer ago than this.
    #[arg(long, default_value = "30d")]
    pub older_than: String,
    /// Only finished tasks with this status (succeeded, failed, cancelled).
    #[arg(long)]
    pub status: Option<String>,
    /// Keep at least the newest N finished tasks, however old.
    #[arg(long, default_value_t = 0)]
    pub keep: usize,
    /// Also remove the worktrees and copies of every finished isolated task,
    /// keeping their results (`apply` works from changes.diff alone).
    #[arg(long)]
    pub sandboxes: bool,
    /// Show what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON (one document) instead of text, for scripts.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let home = cli.home()?;
    let age = crate::duration::parse(&args.older_than).map_err(UsageError)?;
    let statuses = match args.status.as_deref() {
        None => Vec::new(),
        Some("succeeded") => vec![Status::Succeeded],
        Some("failed") => vec![Status::Failed],
        Some("cancelled") => vec![Status::Cancelled],
        Some(s) => {
            return Err(UsageError(format!(
                "--status {s}: only finished tasks can be cleaned (succeeded, failed, cancelled)"
            ))
            .into());
        }
    };
    let policy = Policy {
        older_than: Some(age),
        max_tasks: None,
        keep_newest: args.keep,
        statuses,
        sandboxes: args.sandboxes,
        min_age: std::time::Duration::ZERO,
    };
    let found = retention::find(&home, &policy)?;
    if !args.dry_run {
        retention::apply(&home, &found)?;
    }
    let Cleanup {
        tasks,
        files,
        strays,
        sandboxes,
    } = found;
    let verb = if args.dry_run { "would remove" } else { "removed" };
    if args.json {
        let sandbox_dirs: Vec<_> = sandboxes.iter().map(|(_, sb)| sb.root.clone()).collect();
        print_json(
            &json!({"dry_run": args.dry_run, "tasks": tasks, "files": files, "temporary": strays, "sandboxes": sandbox_dirs}),
        )?;
    } else {
        println!(
            "{verb} {} finished tasks (results and summaries), {} worktrees/copies, {} rejected/cancelled files and old event logs, {} temporary files",
            tasks.len(),
            sandboxes.len(),
            files.len(),
            strays.len()
        );
        if args.dry_run {
            for id in tasks.iter().take(20) {
                println!("  results/{id}");
            }
            for f in files.iter().take(20) {
                println!("  {}", f.strip_prefix(home.root()).unwrap_or(f).display());
            }
        }
    }
    Ok(exit::OK)
}
