//! Retention: which finished tasks and old files go, for `orchestrator clean`
//! and for the daemon's own `retention:`.
//!
//! Only finished tasks (with a `result.json`) are ever removed: a running or
//! waiting task has none. The index rows of removed tasks go in the same
//! pass, so the index stays consistent, and several daemons (or a daemon and
//! `clean`) may do it at once: removing what is already gone is no error.

use crate::store::record::Status;
use crate::store::{Home, TaskDir, index};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// What to remove.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Finished tasks (and rejected, cancelled files, rotated event logs) that
    /// finished longer ago than this.
    pub older_than: Option<Duration>,
    /// Beyond the newest this many finished tasks (of `statuses`), whatever their age.
    pub max_tasks: Option<usize>,
    /// The newest this many finished tasks stay, whatever else says.
    pub keep_newest: usize,
    /// Only finished tasks with these statuses (empty: every finished task;
    /// then the old rejected and cancelled files and event logs go too).
    pub statuses: Vec<Status>,
    /// Also the worktrees and copies of every finished isolated task (their
    /// results stay: `apply` works from `changes.diff` alone).
    pub sandboxes: bool,
    /// Tasks that finished less than this long ago stay: the daemon that
    /// finished one may still be writing its index row.
    pub min_age: Duration,
}

impl Policy {
    /// The daemon's policy from its `retention:` config (`None`: off).
    pub fn of(c: &crate::config::RetentionConfig) -> Option<Self> {
        c.enabled().then(|| Self {
            older_than: c.max_age.map(|d| d.0),
            max_tasks: c.max_tasks,
            keep_newest: 0,
            statuses: c.statuses.clone(),
            sandboxes: false,
            min_age: Duration::from_secs(60),
        })
    }
}

/// What a policy found on a home.
#[derive(Debug, Default)]
pub struct Cleanup {
    pub tasks: Vec<String>,
    pub files: Vec<PathBuf>,
    pub strays: Vec<PathBuf>,
    pub sandboxes: Vec<(String, crate::isolate::Sandbox)>,
}

impl Cleanup {
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty() && self.files.is_empty() && self.strays.is_empty() && self.sandboxes.is_empty()
    }
}

/// The daemon's pass: finds and removes what `policy` says, and says so in
/// the event log when it removed anything.
pub fn run(home: &Home, policy: &Policy, events: &crate::events::EventLog) {
    let found = match find(home, policy) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "retention: could not read the results");
            return;
        }
    };
    if found.is_empty() {
        return;
    }
    if let Err(e) = apply(home, &found) {
        tracing::warn!(error = %e, "retention: could not update the index");
    }
    events.emit(
        None,
        crate::events::Event::RetentionApplied {
            tasks: found.tasks.len(),
            files: found.files.len() + found.strays.len(),
            sandboxes: found.sandboxes.len(),
        },
    );
}

/// Finds what `policy` removes from `home` (reconciling the index first).
pub fn find(home: &Home, policy: &Policy) -> std::io::Result<Cleanup> {
    let now = SystemTime::now();
    let cutoff = policy
        .older_than
        .map(|age| now.checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH));
    let ts = |t: SystemTime| -> std::io::Result<String> {
        Ok(jiff::Timestamp::try_from(t).map_err(std::io::Error::other)?.to_string())
    };
    let cutoff_ts = cutoff.map(ts).transpose()?;
    let settled_ts = ts(now.checked_sub(policy.min_age).unwrap_or(SystemTime::UNIX_EPOCH))?;
    index::reconcile(home)?;
    let index = index::read(home).unwrap_or_default();
    // Newest first (ids sort by claim time).
    let tasks: Vec<String> = index
        .tasks
        .iter()
        .rev()
        .filter(|(_, r)| policy.statuses.is_empty() || policy.statuses.contains(&r.status))
        .enumerate()
        .filter(|(i, (_, r))| {
            *i >= policy.keep_newest
                && r.finished_at < settled_ts
                && (cutoff_ts.as_ref().is_some_and(|c| r.finished_at < *c) || policy.max_tasks.is_some_and(|m| *i >= m))
        })
        .map(|(_, (id, _))| id.clone())
        .filter(|id| removable_task(home, id).is_some())
        .collect();
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(cutoff) = cutoff
        && policy.statuses.is_empty()
    {
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
    let stray_cutoff = now - Duration::from_secs(3600);
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
    // Worktrees and copies of isolated runs: those of the removed tasks, and
    // with `sandboxes` those of every finished task.
    let sandboxes = index
        .tasks
        .keys()
        .filter(|id| policy.sandboxes || tasks.contains(id))
        .filter_map(|id| {
            let dir = TaskDir::new(removable_task(home, id)?);
            let bytes = crate::store::read::read_bounded(&dir.isolation(), 64 * 1024).ok()?;
            let sb: crate::isolate::Sandbox = serde_json::from_slice(&bytes).ok()?;
            // Only the sandbox this task's id names: a forged record never
            // points the removal anywhere else (compared resolved: the home
            // may be spelled another way than when the sandbox was made).
            let own = crate::isolate::sandbox_root(home.root(), id);
            let same = |p: &Path| crate::task::workdir::canonical(p).ok();
            let ours = sb.root.file_name() == own.file_name()
                && sb
                    .root
                    .parent()
                    .and_then(same)
                    .is_some_and(|p| Some(p) == own.parent().and_then(same));
            (ours && sb.root.exists()).then(|| (id.clone(), sb))
        })
        .collect();
    Ok(Cleanup {
        tasks,
        files,
        strays,
        sandboxes,
    })
}

/// Removes what was found.
pub fn apply(home: &Home, c: &Cleanup) -> std::io::Result<()> {
    for (_, sb) in &c.sandboxes {
        // A branch with committed work (mode: apply) is kept for review.
        crate::isolate::remove(sb, sb.committed);
    }
    for id in &c.tasks {
        // Checked again: it may have changed since it was found.
        if let Some(dir) = removable_task(home, id) {
            let _ = std::fs::remove_dir_all(dir);
            let _ = std::fs::remove_file(home.summary_file(id));
        }
    }
    index::remove(home, &c.tasks)?;
    for f in c.files.iter().chain(&c.strays) {
        let _ = std::fs::remove_file(f);
    }
    Ok(())
}

/// The folder of task `id` if retention may remove it: `id` has the form of an
/// id (the index is a file anyone who can write the home can forge: a row
/// keyed `../x` or `/abs` must never name a path), the folder is a real
/// folder directly under `results/` (not a link to elsewhere), it has its
/// `result.json`, and no live daemon holds its lock (a running task's folder,
/// whatever a forged result in it says).
fn removable_task(home: &Home, id: &str) -> Option<PathBuf> {
    let task = TaskDir::new(home.own_task_dir(id)?);
    if !task.result().is_file() || crate::store::lock::is_locked(&task.lock_file()) {
        return None;
    }
    Some(task.dir)
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
