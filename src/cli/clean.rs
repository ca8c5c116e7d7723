//! `orchestrator clean`: retention for finished tasks, summaries, rejected and
//! cancelled files, rotated event logs and stray temporary files.
//!
//! Only finished tasks (with a `result.json`) are ever removed; the index rows
//! of removed tasks go in the same run, so the index stays consistent.

use super::common::{UsageError, print_json};
use super::{Cli, exit};
use crate::store::index;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

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
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let home = cli.home()?;
    let age = crate::duration::parse(&args.older_than).map_err(UsageError)?;
    let cutoff = SystemTime::now() - age;
    let cutoff_ts = jiff::Timestamp::try_from(cutoff)?.to_string();
    if let Some(s) = &args.status
        && !["succeeded", "failed", "cancelled"].contains(&s.as_str())
    {
        return Err(UsageError(format!(
            "--status {s}: only finished tasks can be cleaned (succeeded, failed, cancelled)"
        ))
        .into());
    }
    index::reconcile(&home)?;
    let index = index::read(&home).unwrap_or_default();
    // Newest first (ids sort by claim time); the first `keep` matching tasks stay.
    let matching: Vec<(&String, _)> = index
        .tasks
        .iter()
        .rev()
        .filter(|(_, r)| args.status.as_ref().is_none_or(|s| r.status.name() == s))
        .collect();
    let tasks: Vec<String> = matching
        .into_iter()
        .skip(args.keep)
        .filter(|(_, r)| r.finished_at < cutoff_ts)
        .map(|(id, _)| id.clone())
        .filter(|id| home.task_dir(id).join("result.json").exists())
        .collect();
    let mut files: Vec<PathBuf> = Vec::new();
    if args.status.is_none() {
        files.extend(old_files(&home.rejected(), cutoff));
        files.extend(old_files(&home.cancelled(), cutoff));
        files.extend(
            crate::events::rotated_logs(&home.logs())
                .unwrap_or_default()
                .into_iter()
                .filter(|p| older(p, cutoff)),
        );
    }
    // Temporary files of interrupted writes, an hour old at least whatever the cutoff.
    let stray_cutoff = SystemTime::now() - Duration::from_secs(3600);
    let strays: Vec<PathBuf> = [
        home.results(),
        home.summaries(),
        home.inbox(),
        home.rejected(),
        home.daemons(),
    ]
    .iter()
    .flat_map(|d| old_files(d, stray_cutoff))
    .filter(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(".tmp") || n.ends_with(".json.tmp"))
    })
    .collect();

    // Worktrees and copies of isolated runs: those of the removed tasks, and with
    // --sandboxes those of every finished task.
    let sandboxes: Vec<(String, crate::isolate::Sandbox)> = index
        .tasks
        .keys()
        .filter(|id| args.sandboxes || tasks.contains(id))
        .filter_map(|id| {
            let dir = crate::store::TaskDir::new(home.task_dir(id));
            let bytes = std::fs::read(dir.isolation()).ok()?;
            let sb: crate::isolate::Sandbox = serde_json::from_slice(&bytes).ok()?;
            (dir.result().exists() && sb.root.exists()).then(|| (id.clone(), sb))
        })
        .collect();

    if !args.dry_run {
        for (_, sb) in &sandboxes {
            // A branch with committed work (mode: apply) is kept for review.
            crate::isolate::remove(sb, sb.committed);
        }
        for id in &tasks {
            let _ = std::fs::remove_dir_all(home.task_dir(id));
            let _ = std::fs::remove_file(home.summary_file(id));
        }
        index::remove(&home, &tasks)?;
        for f in files.iter().chain(&strays) {
            let _ = std::fs::remove_file(f);
        }
    }
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

fn older(p: &Path, cutoff: SystemTime) -> bool {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t < cutoff)
}

fn old_files(dir: &Path, cutoff: SystemTime) -> Vec<PathBuf> {
    let Ok(d) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    d.flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| older(p, cutoff))
        .collect()
}
