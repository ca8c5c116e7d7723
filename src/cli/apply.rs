//! `orchestrator apply ID [--dry-run]`: apply a guarded task's `changes.diff` to
//! its workdir.
//!
//! All or nothing: `git apply --check` runs first against the workdir as it is
//! now, and a patch that no longer applies (the workdir changed underneath) is
//! refused whole with git's reason. Applied once: `applied.json` in the task
//! folder records when, and a second apply is refused. An `applied` event goes
//! to the event log.

use super::common::{load_result, print_json, resolve_task};
use super::{Cli, exit};
use crate::events::{EventLog, now_ts};
use serde_json::json;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  orchestrator apply 01m80jw --dry-run\n  orchestrator apply fix-login.md")]
pub struct Args {
    /// Id, unique id prefix, or the original file name.
    pub task: String,
    /// Check that the diff applies and show what it would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON (one document) instead of text, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// What an apply did, or why it did nothing.
pub enum Applied {
    /// The diff applies (dry run) or was applied: git's summary of it.
    Done {
        workdir: String,
        stat: String,
        files: Vec<String>,
    },
    /// The task changed nothing.
    Nothing,
    /// Refused, and why (the task, the workdir or git said no).
    Refused(String),
}

/// Applies (or with `dry_run` checks) a finished guarded task's diff (the CLI
/// and the dashboard both apply through this).
pub fn apply_task(
    home: &crate::store::Home,
    events: &crate::config::EventsConfig,
    id: &str,
    dir: &crate::store::TaskDir,
    dry_run: bool,
) -> anyhow::Result<Applied> {
    let Some(result) = load_result(dir) else {
        return Ok(Applied::Refused(format!(
            "{id} has not finished yet: wait for it (orchestrator submit --wait, or status)"
        )));
    };
    let Some(sb) = result.isolation.clone() else {
        return Ok(Applied::Refused(format!(
            "{id} did not run isolated (mode: guarded): its edits are already in its workdir"
        )));
    };
    if sb.committed {
        return Ok(Applied::Refused(format!(
            "{id} committed its work on branch {} (mode: apply): merge that branch instead",
            sb.branch.as_deref().unwrap_or("?")
        )));
    }
    if let Ok(when) = crate::store::read::read_text(&dir.applied(), 4096) {
        return Ok(Applied::Refused(format!(
            "{id} was already applied ({}); nothing done",
            when.trim()
        )));
    }
    let diff_file = dir.changes_diff();
    if std::fs::metadata(&diff_file).map(|m| m.len()).unwrap_or(0) == 0 {
        return Ok(Applied::Nothing);
    }
    let workdir = std::path::PathBuf::from(&result.workdir);
    match crate::isolate::apply(&sb, &diff_file, &workdir, dry_run) {
        Ok(stat) => {
            if !dry_run {
                crate::store::atomic::write_atomic(&dir.applied(), now_ts().as_bytes())?;
                // The daemon's rotation settings, so this line rotates the log like its own.
                let events = EventLog::of_home(home, events);
                let numbers = sb.stat.unwrap_or_default();
                events.emit(
                    Some(id),
                    crate::events::Event::Applied {
                        workdir: result.workdir.clone().into(),
                        files: result.files_changed.clone(),
                        insertions: numbers.insertions,
                        deletions: numbers.deletions,
                    },
                );
            }
            Ok(Applied::Done {
                workdir: result.workdir,
                stat,
                files: result.files_changed,
            })
        }
        Err(why) => Ok(Applied::Refused(format!("{id}: not applied: {why}"))),
    }
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let home = cli.home()?;
    let (id, dir) = resolve_task(&home, &args.task)?;
    let events = cli.load_config(&home, &[]).map(|l| l.config.events).unwrap_or_default();
    match apply_task(&home, &events, &id, &dir, args.dry_run)? {
        Applied::Refused(why) => {
            eprintln!("{why}");
            Ok(exit::FAILED)
        }
        Applied::Nothing => {
            println!("{id} changed nothing: there is nothing to apply");
            Ok(exit::OK)
        }
        Applied::Done { workdir, stat, files } => {
            if args.json {
                print_json(&json!({"id": id, "dry_run": args.dry_run, "applied": !args.dry_run, "files": files}))?;
            } else {
                print!("{stat}");
                if args.dry_run {
                    println!("{id}: the diff applies cleanly to {workdir} (dry run: nothing changed)");
                } else {
                    println!("{id}: applied to {workdir}");
                }
            }
            Ok(exit::OK)
        }
    }
}
