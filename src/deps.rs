//! What a dependency (`after:`, `after_any:`) names, and whether it ended.
//!
//! A reference is a task id or the name a file has (or had) in the inbox.
//! Everything is read from the home, so the answer is the same for every
//! daemon sharing it and after any restart: a file still in the inbox is
//! that file; one that left it was claimed, and the newest task whose
//! original name it is (ids sort by time) is the one meant.

use crate::store::{Home, TaskDir};
use crate::vocab::Status;
use std::path::Path;

/// What a reference names now.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A claimed task, by id.
    Task(String),
    /// A file still waiting in the inbox, by name.
    File(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Task(id) => f.write_str(id),
            Target::File(name) => f.write_str(name),
        }
    }
}

/// What `reference` names: a claimed task, a file in the inbox, or nothing.
pub fn resolve(home: &Home, reference: &str) -> Option<Target> {
    if crate::ids::is_well_formed(reference) {
        if home.own_task_dir(reference).is_some() {
            return Some(Target::Task(reference.to_string()));
        }
        // `submit` names the file after the id it will have.
        return inbox_file_with_stem(home, reference).map(Target::File);
    }
    if in_inbox(home, reference) {
        return Some(Target::File(reference.to_string()));
    }
    newest_task_from(home, reference, None).map(Target::Task)
}

/// Whether `name` is a file waiting in the inbox.
pub fn in_inbox(home: &Home, name: &str) -> bool {
    std::fs::symlink_metadata(home.inbox().join(name)).is_ok_and(|m| m.is_file())
}

/// The status of task `id` once it ended (`None` while it has no result).
pub fn ended(home: &Home, id: &str) -> Option<Status> {
    #[derive(serde::Deserialize)]
    struct Head {
        status: Status,
    }
    let dir = TaskDir::new(home.own_task_dir(id)?);
    crate::store::read::json::<Head>(&dir.result())
        .map(|h| h.status)
        .filter(|s| matches!(s, Status::Succeeded | Status::Failed | Status::Cancelled))
}

/// Whether a dependency that ended with `status` lets its dependent start:
/// `after` needs a success, `after_any` only the end.
pub fn met(status: Status, needs_success: bool) -> bool {
    !needs_success || status == Status::Succeeded
}

/// The ids the task's `after`/`after_any` name now, for its context (a file
/// not yet claimed names no task yet).
pub fn ids(home: &Home, deps: &crate::task::Dependencies) -> Vec<String> {
    deps.references()
        .filter_map(|r| match resolve(home, r)? {
            Target::Task(id) => Some(id),
            Target::File(_) => None,
        })
        .collect()
}

/// What a queued task that arrived at `arrival` still waits for, as people
/// read it: its start time if still to come (`its start time 2026-12-08T02:00:00Z`),
/// then each reference not met yet, with where it stands (`review.md
/// (queued)`, `review.md (running as ID)`; one that failed: the task will end
/// as cancelled).
pub fn waiting_for(home: &Home, deps: &crate::task::Dependencies, arrival: std::time::SystemTime) -> Vec<String> {
    let start = deps
        .start_to_come(arrival)
        .and_then(|t| jiff::Timestamp::try_from(t).ok())
        .map(|t| format!("its start time {}", t.round(jiff::Unit::Second).unwrap_or(t)));
    start
        .into_iter()
        .chain(deps.each().filter_map(|(reference, success)| {
            let state = match resolve(home, reference) {
                None if home.cancelled().join(reference).exists() || home.rejected().join(reference).exists() => {
                    let how = if home.cancelled().join(reference).exists() {
                        "taken off the queue"
                    } else {
                        "rejected"
                    };
                    if !success {
                        // An end is an end to `after_any`.
                        return None;
                    }
                    format!("{how}: this task ends as cancelled")
                }
                None => "unknown: the daemon rejects the file".to_string(),
                Some(Target::File(_)) => "queued".to_string(),
                Some(Target::Task(id)) => match ended(home, &id) {
                    Some(status) if met(status, success) => return None,
                    Some(status) => format!("{status}: this task will be cancelled"),
                    None if id == reference => "running".to_string(),
                    None => format!("running as {id}"),
                },
            };
            Some(format!("{reference} ({state})"))
        }))
        .collect()
}

fn inbox_file_with_stem(home: &Home, stem: &str) -> Option<String> {
    std::fs::read_dir(home.inbox())
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .find(|n| Path::new(n).file_stem().and_then(|s| s.to_str()) == Some(stem) && in_inbox(home, n))
}

/// The newest claimed task that came from the inbox file `name` (of those
/// claimed at `since` or later, when given): the index for finished ones,
/// and the folders the index does not hold yet, newest first, by their plan
/// or claim record (a claim records the name before it renames the file
/// away; a folder whose claim has not finished, or lost its race, is not
/// one yet).
pub fn newest_task_from(home: &Home, name: &str, since: Option<jiff::Timestamp>) -> Option<String> {
    // Ids are a ULID first: a time's lower bound sorts before every id made after it.
    let bound = since.map(|t| {
        let ms = u64::try_from(t.as_millisecond()).unwrap_or(0);
        ulid::Ulid::from_parts(ms, 0).to_string().to_ascii_lowercase()
    });
    let recent = |id: &str| bound.as_deref().is_none_or(|b| id >= b);
    let index = crate::store::index::read(home).map(|i| i.tasks).unwrap_or_default();
    let finished = index
        .iter()
        .filter(|(id, r)| r.source_file == name && recent(id))
        .map(|(id, _)| id.clone())
        .max();
    let mut newer: Vec<String> = std::fs::read_dir(home.results())
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|id| {
            crate::ids::is_well_formed(id)
                && recent(id)
                && !index.contains_key(id)
                && finished.as_ref().is_none_or(|f| id > f)
        })
        .collect();
    newer.sort_unstable_by(|a, b| b.cmp(a));
    for id in newer {
        if source_file(&TaskDir::new(home.task_dir(&id))).as_deref() == Some(name) {
            return Some(id);
        }
    }
    finished
}

/// The inbox name a claimed task came from, once its claim is done (its
/// file renamed in, or its plan made).
fn source_file(dir: &TaskDir) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Source {
        source_file: String,
    }
    if let Some(s) = crate::store::read::json::<Source>(&dir.plan()) {
        return Some(s.source_file);
    }
    let claimed = std::fs::read_dir(&dir.dir)
        .ok()?
        .flatten()
        .any(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("task.")));
    if !claimed {
        return None;
    }
    let text = crate::store::read::record_text(&dir.lock_file()).ok()?;
    crate::store::lock::OwnerRecord::parse(&text).map(|r| r.source_file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_names_an_inbox_file_then_the_task_it_became() {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::new(tmp.path()).unwrap();
        std::fs::create_dir_all(home.inbox()).unwrap();
        std::fs::create_dir_all(home.results()).unwrap();
        assert_eq!(resolve(&home, "review.md"), None);
        std::fs::write(home.inbox().join("review.md"), "x").unwrap();
        assert_eq!(resolve(&home, "review.md"), Some(Target::File("review.md".into())));
        // Claimed twice over time: the newest task is the one meant.
        std::fs::remove_file(home.inbox().join("review.md")).unwrap();
        for id in ["01m8p5qnm7weqgpkcvt4a8av6n-review", "01m8p5qnm7weqgpkcvt4a8av7n-review"] {
            let dir = TaskDir::new(home.task_dir(id));
            std::fs::create_dir_all(&dir.dir).unwrap();
            std::fs::write(dir.lock_file(), r#"{"source_file":"review.md"}"#).unwrap();
            std::fs::write(dir.dir.join("task.md"), "x").unwrap();
        }
        // A claim that has not renamed its file in yet names nothing.
        let half = TaskDir::new(home.task_dir("01m8p5qnm7weqgpkcvt4a8av9n-review"));
        std::fs::create_dir_all(&half.dir).unwrap();
        std::fs::write(half.lock_file(), r#"{"source_file":"review.md"}"#).unwrap();
        assert_eq!(
            resolve(&home, "review.md"),
            Some(Target::Task("01m8p5qnm7weqgpkcvt4a8av7n-review".into()))
        );
        // Only tasks claimed since a time: these are from 2026-12-07 (their ULIDs).
        let later: jiff::Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(newest_task_from(&home, "review.md", Some(later)), None);
        assert_eq!(ended(&home, "01m8p5qnm7weqgpkcvt4a8av7n-review"), None);
        let dir = TaskDir::new(home.task_dir("01m8p5qnm7weqgpkcvt4a8av7n-review"));
        std::fs::write(dir.result(), r#"{"status":"failed","output":"x"}"#).unwrap();
        assert_eq!(ended(&home, "01m8p5qnm7weqgpkcvt4a8av7n-review"), Some(Status::Failed));
        // An id `submit` printed names its file in the inbox until it is claimed.
        let id = "01m8p5qnm7weqgpkcvt4a8av8n-next";
        std::fs::write(home.inbox().join(format!("{id}.md")), "x").unwrap();
        assert_eq!(resolve(&home, id), Some(Target::File(format!("{id}.md"))));
        assert!(met(Status::Failed, false) && !met(Status::Failed, true) && met(Status::Succeeded, true));
    }
}
