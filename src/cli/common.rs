//! What every verb shares: finding a task by what the user typed, and printing.

use crate::store::record::{ProgressRecord, ResultRecord};
use crate::store::{Home, TaskDir, index};
use std::io::IsTerminal;

/// A usage error: exit 2 with this message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Colour only on a terminal, and never with `NO_COLOR` set.
pub fn color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

pub use crate::redact::escape_controls;

/// [`escape_controls`] when stdout is a terminal; the bytes as they are when
/// it is a file or a pipe (the data stays intact for tools).
pub fn for_stdout(text: &str) -> std::borrow::Cow<'_, str> {
    if std::io::stdout().is_terminal() {
        escape_controls(text)
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Wraps `text` in an ANSI colour when colour is on.
pub fn paint(text: &str, code: &str) -> String {
    if color() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

pub fn status_color(status: &str) -> &'static str {
    match status {
        "succeeded" => "32",
        "failed" => "31",
        "cancelled" | "interrupted" => "33",
        "running" => "36",
        _ => "0",
    }
}

pub fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Where a task is.
#[derive(Debug)]
pub enum Found {
    /// Claimed: `results/<id>/` exists.
    Task { id: String, dir: TaskDir },
    /// Still a file in the inbox.
    Queued { file: String },
}

/// Finds a task by id, unique id prefix, or original file name. Unknown or
/// ambiguous input is a usage error that lists what matched.
pub fn resolve(home: &Home, query: &str) -> Result<Found, UsageError> {
    let q = query.trim().trim_end_matches(['/', '\\']);
    if q.is_empty() || q.contains(['/', '\\']) && !q.starts_with("results") && !q.starts_with("inbox") {
        return Err(UsageError(format!("`{query}` is not a task id or file name")));
    }
    let q = q.rsplit(['/', '\\']).next().unwrap_or(q);
    // One plain name only (on Windows `C:foo` would name another folder).
    if !crate::store::layout::is_plain_name(q) {
        return Err(UsageError(format!("`{query}` is not a task id or file name")));
    }
    // Only a real folder of results/ named like an id (not a link to elsewhere).
    if let Some(dir) = home.own_task_dir(q) {
        return Ok(Found::Task {
            id: q.to_string(),
            dir: TaskDir::new(dir),
        });
    }
    // A file the daemon would take: not a hidden or half-written one.
    if !crate::task::parse::is_ignored_name(q) && home.inbox().join(q).is_file() {
        return Ok(Found::Queued { file: q.to_string() });
    }
    // A prefix of an id (lower-case ULIDs sort by time, so a prefix narrows fast).
    let lower = q.to_ascii_lowercase();
    let mut ids: Vec<String> = std::fs::read_dir(home.results())
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(&lower) && home.own_task_dir(n).is_some())
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() {
        // The original file name: running tasks record it in plan.json, finished ones in the index.
        ids = by_source_file(home, q);
    }
    ids.sort();
    ids.dedup();
    match ids.len() {
        1 => {
            let id = ids.remove(0);
            // An id from the index names a real folder of results/, or nothing.
            match home.own_task_dir(&id) {
                Some(dir) => Ok(Found::Task {
                    id,
                    dir: TaskDir::new(dir),
                }),
                None => Err(UsageError(format!(
                    "`{query}` names task {id}, whose folder is not in results/ (removed?): `orchestrator reindex` brings the index up to date"
                ))),
            }
        }
        0 => Err(UsageError(format!(
            "no task matches `{query}`: give an id (or a unique prefix of one), or the name the file had in the inbox. `orchestrator list` shows them"
        ))),
        n => {
            let shown: Vec<&str> = ids.iter().take(10).map(String::as_str).collect();
            Err(UsageError(format!(
                "`{query}` matches {n} tasks: {}{}. Give more of the id",
                shown.join(", "),
                if n > 10 { ", ..." } else { "" }
            )))
        }
    }
}

fn by_source_file(home: &Home, name: &str) -> Vec<String> {
    let mut ids: Vec<String> = index::read(home)
        .map(|i| {
            i.tasks
                .into_iter()
                .filter(|(_, r)| r.source_file == name)
                .map(|(id, _)| id)
                .collect()
        })
        .unwrap_or_default();
    if !ids.is_empty() {
        return ids;
    }
    // Tasks the index does not show yet: unfinished ones (running, waiting,
    // orphaned) and ones finished since its last flush. Their plan.json has the
    // name. A scan, but only when nothing else matched.
    let indexed_at = std::fs::metadata(home.index_file()).and_then(|m| m.modified()).ok();
    let Ok(dir) = std::fs::read_dir(home.results()) else {
        return ids;
    };
    for e in dir.flatten() {
        let Ok(id) = e.file_name().into_string() else { continue };
        let td = TaskDir::new(e.path());
        if id.starts_with('.') {
            continue;
        }
        let finished_at = std::fs::metadata(td.result()).and_then(|m| m.modified()).ok();
        if finished_at.is_some_and(|f| indexed_at.is_some_and(|i| f < i)) {
            continue;
        }
        if load_plan(&td).is_some_and(|p| p.source_file == name) {
            ids.push(id);
        }
    }
    ids
}

/// Requires a claimed task.
pub fn resolve_task(home: &Home, query: &str) -> Result<(String, TaskDir), UsageError> {
    match resolve(home, query)? {
        Found::Task { id, dir } => Ok((id, dir)),
        Found::Queued { file } => Err(UsageError(format!(
            "`{file}` is still queued in the inbox: it has no record yet (use `orchestrator status` to see the queue)"
        ))),
    }
}

pub fn load_result(dir: &TaskDir) -> Option<ResultRecord> {
    ResultRecord::load(&dir.result()).ok()
}

/// A running task's progress: `progress.json`, or in an agent's first second
/// (before that file exists) what `owner.lock` records: the attempt and its start.
pub fn load_progress(dir: &TaskDir) -> Option<ProgressRecord> {
    ProgressRecord::load(&dir.progress()).or_else(|| {
        let text = crate::store::read::record_text(&dir.lock_file()).ok()?;
        let owner = crate::store::lock::OwnerRecord::parse(&text)?;
        let last = owner.attempts.last()?;
        Some(ProgressRecord {
            status: Some(crate::store::record::Status::Running),
            attempt: last.n,
            started_at: owner.attempts.first().map(|a| a.started_at.clone()),
            agent: owner.agent.clone(),
            attempts: owner.attempts.clone(),
            ..ProgressRecord::default()
        })
    })
}

/// Tasks that started, have no result, and that no live daemon runs: their
/// daemon died or stopped, and the next daemon to start (or a running one's
/// recovery scan) runs them again. Found from what daemons left in `run/`
/// (a dead one's last published tasks, a stopped one's record), so that no
/// verb scans `results/` for them (`doctor` does, for what a crash left
/// before anything was published).
pub fn interrupted(home: &Home, running: &[String]) -> Vec<String> {
    crate::store::daemons::left_unfinished(home)
        .into_iter()
        .filter(|id| !running.contains(id))
        .filter(|id| home.own_task_dir(id).is_some_and(|d| TaskDir::new(d).is_orphan()))
        .collect()
}

/// A file the inbox refused, as `inbox/rejected/NAME.error.json` tells it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Rejected {
    pub file: String,
    #[serde(default)]
    pub reason: String,
    pub error: String,
    #[serde(default)]
    pub hint: String,
    pub at: String,
    #[serde(default)]
    pub moved_to: String,
}

/// The rejected files: how many, and the newest `limit` of them (0: all),
/// newest first. Only those are read (by the time of their `.error.json`):
/// `status` needs a few of a folder that may hold thousands.
pub fn rejected(home: &Home, limit: usize) -> (usize, Vec<Rejected>) {
    let Ok(dir) = std::fs::read_dir(home.rejected()) else {
        return (0, Vec::new());
    };
    let mut found: Vec<(std::time::SystemTime, std::path::PathBuf)> = dir
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".error.json")))
        .map(|e| {
            let at = e.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
            (at, e.path())
        })
        .collect();
    found.sort_by(|a, b| b.cmp(a));
    let total = found.len();
    let newest = found
        .into_iter()
        .take(if limit == 0 { usize::MAX } else { limit })
        .filter_map(|(_, p)| crate::store::read::json(&p))
        .collect();
    (total, newest)
}

pub fn load_plan(dir: &TaskDir) -> Option<crate::plan::Plan> {
    crate::store::read::json(&dir.plan())
}

pub use crate::store::summary::human_ms;

/// Milliseconds since an RFC 3339 timestamp.
pub fn ms_since(ts: &str) -> Option<u64> {
    let t: jiff::Timestamp = ts.parse().ok()?;
    let d = jiff::Timestamp::now().duration_since(t);
    u64::try_from(d.as_millis()).ok()
}

/// Parses `--since 2h` into a timestamp that long ago.
pub fn since(dur: &str) -> Result<jiff::Timestamp, UsageError> {
    let d = crate::duration::parse(dur).map_err(UsageError)?;
    let span = jiff::SignedDuration::try_from(d).map_err(|e| UsageError(e.to_string()))?;
    jiff::Timestamp::now()
        .checked_sub(span)
        .map_err(|e| UsageError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_falls_back_to_the_owner_record_before_progress_json_exists() {
        let d = tempfile::tempdir().unwrap();
        let dir = TaskDir::new(d.path().to_path_buf());
        assert!(load_progress(&dir).is_none());
        let lock = crate::store::lock::try_lock(&dir.lock_file()).unwrap().unwrap();
        let attempt = crate::store::record::AttemptRecord {
            n: 2,
            step: 1,
            started_at: "2026-11-22T00:00:00.000Z".into(),
            ..Default::default()
        };
        crate::store::lock::OwnerRecord {
            source_file: "a.md".into(),
            attempts: vec![attempt],
            agent: None,
        }
        .write_to(&lock)
        .unwrap();
        let p = load_progress(&dir).expect("from owner.lock");
        assert_eq!((p.attempt, p.attempts.len()), (2, 1));
        assert_eq!(p.started_at.as_deref(), Some("2026-11-22T00:00:00.000Z"));
        // progress.json, once written, wins.
        crate::store::atomic::write_json_atomic(
            &dir.progress(),
            &ProgressRecord {
                attempt: 3,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(load_progress(&dir).unwrap().attempt, 3);
    }
}
