//! Finding tasks whose daemon died, and taking them over.
//!
//! A task folder with a task file, no `result.json`, and an `owner.lock` nobody
//! holds belongs to a dead daemon. Taking the lock makes it ours (only one
//! daemon can), then we kill what is left of its agent tree before running it
//! again, so the old run can never race the new one.
//!
//! Scanning `results/` costs a stat per task folder, so a daemon scans when it
//! starts (its own previous life may have crashed) and then only when a peer
//! died (see `store::daemons`).

use crate::agents::supervise::kill_leftover;
use crate::claim::Claimed;
use crate::plan::Plan;
use crate::store::record::ProgressRecord;
use crate::store::{Home, TaskDir, lock};
use std::time::{Duration, SystemTime};

/// A task taken over from a dead daemon.
#[derive(Debug)]
pub struct Orphan {
    pub claimed: Claimed,
    pub progress: Option<ProgressRecord>,
    /// Whether anything of the old agent was still running and was killed.
    pub killed_leftover: bool,
}

/// Folders of half-made claims (created, then the daemon died before the
/// rename) are removed once they are this old.
const HALF_CLAIM_AGE: Duration = Duration::from_secs(60);

/// Scans `results/` for orphans and takes them over.
pub fn take_over_orphans(home: &Home) -> std::io::Result<Vec<Orphan>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(home.results())?.flatten() {
        let Ok(id) = entry.file_name().into_string() else {
            continue;
        };
        if id.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let td = TaskDir::new(entry.path());
        if td.result().exists() {
            continue;
        }
        let Some(task_file) = td.task_file() else {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| SystemTime::now().duration_since(t).unwrap_or_default() > HALF_CLAIM_AGE);
            if old && !lock::is_locked(&td.lock_file()) {
                let _ = std::fs::remove_dir_all(td.dir.clone());
            }
            continue;
        };
        let Some(lock) = lock::try_lock(&td.lock_file())? else {
            continue;
        };
        if td.result().exists() {
            continue;
        }
        let progress = ProgressRecord::load(&td.progress());
        let killed_leftover = progress
            .as_ref()
            .and_then(|p| p.agent.as_ref())
            .is_some_and(kill_leftover);
        let source_file = std::fs::read(td.plan())
            .ok()
            .and_then(|b| serde_json::from_slice::<Plan>(&b).ok())
            .map(|p| p.source_file)
            .unwrap_or_else(|| {
                task_file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("task")
                    .to_string()
            });
        out.push(Orphan {
            claimed: Claimed {
                id,
                dir: td,
                lock,
                task_file,
                source_file,
            },
            progress,
            killed_leftover,
        });
    }
    Ok(out)
}
