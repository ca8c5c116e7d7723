//! `orchestrator cancel ID|FILE`: stop a running task or take a file off the queue.
//!
//! The mechanism is a file, so it works from any terminal, on Windows, and from
//! another machine sharing the home: a queued file is renamed into
//! `inbox/cancelled/` (atomic: if a daemon claimed it first, the rename fails
//! and the task is cancelled as a running one); a running task gets
//! `results/<id>/cancel.request`, which its daemon checks four times a second
//! before it stops the agent's whole process tree.

use super::common::{Found, load_result, print_json, resolve};
use super::{Cli, exit};
use serde_json::json;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  orchestrator cancel 01m80jw\n  orchestrator cancel slow-task.md")]
pub struct Args {
    /// Id, unique id prefix, or the file name in the inbox.
    pub task: String,
    /// Return at once instead of waiting (up to 10 s) for the task to stop.
    #[arg(long)]
    pub no_wait: bool,
    /// Print JSON (one document) instead of text, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// What a cancel did.
pub enum Requested {
    /// A queued file left the queue: kept as `inbox/cancelled/<kept>`.
    Dequeued { file: String, kept: String },
    /// A claimed task was asked to stop (`cancel.request`).
    Asked { id: String, dir: crate::store::TaskDir },
    /// It had already ended.
    Finished {
        id: String,
        status: crate::store::record::Status,
    },
}

/// Takes a queued file off the queue or asks a running task to stop (the CLI
/// and the dashboard both cancel through this).
pub fn request(home: &crate::store::Home, query: &str) -> anyhow::Result<Requested> {
    loop {
        let (id, dir) = match resolve(home, query)? {
            Found::Queued { file } => {
                // An earlier cancelled file of the same name is never replaced.
                match crate::store::keep::move_into(&home.inbox().join(&file), &home.cancelled(), &file) {
                    Ok(kept) => return Ok(Requested::Dequeued { file, kept }),
                    // Claimed meanwhile: cancel it as a running task.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Found::Task { id, dir } => (id, dir),
        };
        if let Some(r) = load_result(&dir) {
            return Ok(Requested::Finished { id, status: r.status });
        }
        crate::store::atomic::write_atomic(&dir.cancel_request(), crate::events::now_ts().as_bytes())?;
        return Ok(Requested::Asked { id, dir });
    }
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let home = cli.home()?;
    let (id, dir) = match request(&home, &args.task)? {
        Requested::Dequeued { file, kept } => {
            if args.json {
                print_json(
                    &json!({"file": file, "status": "cancelled", "moved_to": format!("inbox/cancelled/{kept}")}),
                )?;
            } else {
                println!("{file}: removed from the queue (kept as inbox/cancelled/{kept})");
            }
            return Ok(exit::OK);
        }
        Requested::Finished { id, status } => {
            eprintln!("{id} already finished ({})", status.name());
            return Ok(exit::FAILED);
        }
        Requested::Asked { id, dir } => (id, dir),
    };
    if args.no_wait {
        println!("{id}: cancel requested");
        return Ok(exit::OK);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(r) = load_result(&dir) {
            if args.json {
                print_json(&json!({"id": id, "status": r.status}))?;
            } else {
                println!("{id}: {}", r.status.name());
            }
            return Ok(if r.status == crate::store::record::Status::Cancelled {
                exit::OK
            } else {
                exit::FAILED
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("{id}: cancel requested, but no daemon has stopped it yet (is one running? `orchestrator status`)");
    Ok(exit::FAILED)
}
