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

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let home = cli.home()?;
    let (id, dir) = resolve_task(&home, &args.task)?;
    let Some(result) = load_result(&dir) else {
        eprintln!("{id} has not finished yet: wait for it (orchestrator submit --wait, or status)");
        return Ok(exit::FAILED);
    };
    let Some(sb) = result.isolation.clone() else {
        eprintln!("{id} did not run isolated (mode: guarded): its edits are already in its workdir");
        return Ok(exit::FAILED);
    };
    if sb.committed {
        eprintln!(
            "{id} committed its work on branch {} (mode: apply): merge that branch instead",
            sb.branch.as_deref().unwrap_or("?")
        );
        return Ok(exit::FAILED);
    }
    if let Ok(when) = crate::store::read::read_text(&dir.applied(), 4096) {
        eprintln!("{id} was already applied ({}); nothing done", when.trim());
        return Ok(exit::FAILED);
    }
    let diff_file = dir.changes_diff();
    if std::fs::metadata(&diff_file).map(|m| m.len()).unwrap_or(0) == 0 {
        println!("{id} changed nothing: there is nothing to apply");
        return Ok(exit::OK);
    }
    let workdir = std::path::PathBuf::from(&result.workdir);
    match crate::isolate::apply(&sb, &diff_file, &workdir, args.dry_run) {
        Ok(stat) => {
            if !args.dry_run {
                crate::store::atomic::write_atomic(&dir.applied(), now_ts().as_bytes())?;
                // The daemon's rotation settings, so this line rotates the log like its own.
                let events = cli.load_config(&home, &[]).map(|l| l.config.events).unwrap_or_default();
                let events = EventLog::of_home(&home, &events);
                let stat = sb.stat.unwrap_or_default();
                events.emit(
                    Some(&id),
                    crate::events::Event::Applied {
                        workdir: result.workdir.clone().into(),
                        files: result.files_changed.clone(),
                        insertions: stat.insertions,
                        deletions: stat.deletions,
                    },
                );
            }
            if args.json {
                print_json(
                    &json!({"id": id, "dry_run": args.dry_run, "applied": !args.dry_run, "files": result.files_changed}),
                )?;
            } else {
                print!("{stat}");
                if args.dry_run {
                    println!(
                        "{id}: the diff applies cleanly to {} (dry run: nothing changed)",
                        result.workdir
                    );
                } else {
                    println!("{id}: applied to {}", result.workdir);
                }
            }
            Ok(exit::OK)
        }
        Err(why) => {
            eprintln!("{id}: not applied: {why}");
            Ok(exit::FAILED)
        }
    }
}
