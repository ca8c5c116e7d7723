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

use crate::agents::identity::kill_leftover;
use crate::claim::Claimed;
use crate::events::EventLog;
use crate::plan::Plan;
use crate::store::atomic::remove_stray_temps;
use crate::store::lock::OwnerRecord;
use crate::store::record::{ProgressRecord, ResultRecord, Status};
use crate::store::{Home, TaskDir, lock};
use std::collections::HashSet;
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

/// Restores the results that dead daemons committed to their logs but that
/// are missing or torn (see [`crate::store::commit_log`]). Runs before orphans
/// are looked for: such a task is finished, not orphaned.
pub fn replay_commit_logs(home: &Home) {
    match crate::store::commit_log::replay_dead(&home.results()) {
        Ok(r) if r.logs > 0 => tracing::info!(
            logs = r.logs,
            restored = r.restored.len(),
            "replayed the commit logs of daemons that are gone"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "could not replay a commit log; it stays for the next try"),
    }
}

/// Scans `results/` for orphans and takes them over.
pub fn take_over_orphans(home: &Home) -> std::io::Result<Vec<Orphan>> {
    replay_commit_logs(home);
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
        let Some(mut lock) = lock::try_lock(&td.lock_file())? else {
            continue;
        };
        if td.result().exists() {
            continue;
        }
        let mut text = String::new();
        let owner = std::io::Read::read_to_string(&mut lock, &mut text)
            .ok()
            .and_then(|_| OwnerRecord::parse(&text));
        let progress = merge_owner_record(ProgressRecord::load(&td.progress()), owner.as_ref());
        let killed_leftover = progress
            .as_ref()
            .and_then(|p| p.agent.as_ref())
            .is_some_and(kill_leftover);
        // What the dead daemon's agents started outside their groups.
        let killed_leftover =
            crate::agents::leftovers::kill(crate::agents::leftovers::Mark::Task(&id)) > 0 || killed_leftover;
        // Its writer is dead: half-written temporary files are garbage.
        remove_stray_temps(&td.dir, Duration::ZERO);
        let source_file = crate::store::read::json::<Plan>(&td.plan())
            .map(|p| p.source_file)
            // The claim wrote the original name into the lock file.
            .or_else(|| owner.map(|o| o.source_file).filter(|n| !n.is_empty()))
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
                lock: std::sync::Arc::new(lock),
                task_file,
                source_file,
            },
            progress,
            killed_leftover,
        });
    }
    Ok(out)
}

/// Ends the record of a run that a dead daemon cut short, and says which
/// attempt to report as interrupted; `None` when there is nothing new to tell.
///
/// A run is cut short when its last attempt never finished (the attempt is
/// recorded in `owner.lock` before its agent starts, so this holds even when
/// the daemon died before `progress.json` said anything of it). A task whose
/// last attempt finished and whose status is `interrupted` was told already:
/// by the daemon that stopped gracefully, or by the one that took it over
/// before and died before running it again. Anything else (a daemon that died
/// in a backoff, or between the claim and the first attempt) is told once.
pub fn close_cut_short_run(progress: &mut ProgressRecord) -> Option<u32> {
    let cut = progress.attempts.last().is_some_and(|a| a.finished_at.is_none());
    let told = !cut && progress.status == Some(Status::Interrupted);
    if let Some(a) = progress.attempts.last_mut().filter(|_| cut) {
        a.finished_at = Some(crate::events::now_ts());
        a.cut_short = Some(crate::vocab::CutShort::DaemonDied);
        a.error = Some(crate::store::record::ErrorInfo {
            kind: crate::vocab::ErrorKind::Interrupted,
            message: "the daemon running this attempt died".into(),
            suggestion: crate::agents::outcome::ErrorKind::Interrupted.suggestion().into(),
        });
    }
    progress.status = Some(Status::Interrupted);
    progress.agent = None;
    (!told).then_some(progress.attempts.len() as u32)
}

/// Adds what `owner.lock` knows to `progress.json`'s record: the attempt that was
/// running and its agent, which reach the lock file as the agent starts, before
/// `progress.json` is written (if it ever was: short runs never write it).
fn merge_owner_record(progress: Option<ProgressRecord>, owner: Option<&OwnerRecord>) -> Option<ProgressRecord> {
    let Some(owner) = owner.filter(|o| !o.attempts.is_empty()) else {
        return progress;
    };
    let mut p = progress.unwrap_or_default();
    // The record is written at every start of an attempt, so it knows at least
    // as many attempts as progress.json; what progress.json knows of them is newer.
    for a in &owner.attempts {
        if !p.attempts.iter().any(|k| k.n == a.n) {
            p.attempts.push(a.clone());
        }
    }
    p.attempts.sort_by_key(|a| a.n);
    let last = p.attempts.last().map(|a| (a.n, a.finished_at.is_none()));
    if let Some((n, running)) = last {
        p.attempt = p.attempt.max(n);
        if running && p.agent.is_none() {
            p.agent = owner.agent.clone();
        }
    }
    Some(p)
}

/// The final events of `ids` (tasks whose result the index lacked) that the
/// log does not have: their daemon died between writing `result.json` and the
/// event. Re-announced from the result (marked `late`) so the log tells every
/// task's end once. Tasks whose owner still holds the lock are left alone: a
/// live peer is about to announce them itself. The log is searched from its
/// end back to the oldest candidate's `finished_at` (the event follows the
/// result by milliseconds), rotated parts included.
pub fn announce_lost_finishes(home: &Home, events: &EventLog, ids: &[String]) -> usize {
    let candidates: Vec<(String, ResultRecord)> = ids
        .iter()
        .map(|id| TaskDir::new(home.task_dir(id)))
        .filter(|td| !lock::is_locked(&td.lock_file()))
        .filter_map(|td| {
            Some((
                td.dir.file_name()?.to_str()?.to_string(),
                ResultRecord::load(&td.result()).ok()?,
            ))
        })
        .collect();
    let Some(oldest) = candidates.iter().map(|(_, r)| r.finished_at.as_str()).min() else {
        return 0;
    };
    let mut logs = crate::events::rotated_logs(&home.logs()).unwrap_or_default();
    logs.push(home.events_log());
    let mut announced: HashSet<String> = HashSet::new();
    for log in logs.iter().rev() {
        let Ok(bytes) = std::fs::read(log) else { continue };
        let mut reached_oldest = false;
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
                continue;
            };
            reached_oldest |= v["ts"].as_str().is_some_and(|ts| ts < oldest);
            if FINAL_EVENTS.contains(&v["event"].as_str().unwrap_or(""))
                && let Some(id) = v["task_id"].as_str()
            {
                announced.insert(id.to_string());
            }
        }
        if reached_oldest {
            break;
        }
    }
    let mut n = 0;
    for (id, r) in candidates.iter().filter(|(id, _)| !announced.contains(id)) {
        events.emit(Some(id), crate::daemon::runner::final_event(r, true));
        n += 1;
    }
    n
}

const FINAL_EVENTS: [&str; 3] = ["task_succeeded", "task_failed", "task_cancelled"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::{AttemptRecord, ErrorKind};

    fn attempt(n: u32, finished: bool) -> AttemptRecord {
        AttemptRecord {
            n,
            step: 1,
            started_at: "2026-11-30T00:00:00.000Z".into(),
            finished_at: finished.then(|| "2026-11-30T00:00:01.000Z".into()),
            ..AttemptRecord::default()
        }
    }

    fn record(status: Option<Status>, attempts: Vec<AttemptRecord>) -> ProgressRecord {
        ProgressRecord {
            status,
            attempts,
            ..Default::default()
        }
    }

    #[test]
    fn an_attempt_that_never_finished_is_told_and_closed() {
        let mut p = record(Some(Status::Running), vec![attempt(1, false)]);
        assert_eq!(close_cut_short_run(&mut p), Some(1));
        assert!(p.attempts[0].finished_at.is_some());
        assert_eq!(p.attempts[0].error.as_ref().unwrap().kind, ErrorKind::Interrupted);
        assert_eq!(p.status, Some(Status::Interrupted));
        // Told once: the next takeover (this daemon died too, before running it) says nothing.
        assert_eq!(close_cut_short_run(&mut p), None);
    }

    #[test]
    fn a_new_attempt_after_an_interruption_already_told_is_told_again() {
        // A graceful stop told attempt 1; the next daemon started attempt 2 and died.
        let mut p = record(Some(Status::Interrupted), vec![attempt(1, true), attempt(2, false)]);
        assert_eq!(close_cut_short_run(&mut p), Some(2));
    }

    #[test]
    fn a_death_outside_any_attempt_is_told_unless_already_told() {
        // Died in a backoff, or between the claim and the first attempt.
        assert_eq!(
            close_cut_short_run(&mut record(Some(Status::Running), vec![attempt(1, true)])),
            Some(1)
        );
        assert_eq!(close_cut_short_run(&mut record(None, vec![])), Some(0));
        // A graceful stop told it already.
        assert_eq!(
            close_cut_short_run(&mut record(Some(Status::Interrupted), vec![attempt(1, true)])),
            None
        );
    }
}
