//! Torture: daemons killed with SIGKILL at random moments, several
//! daemons on one home, and an audit of everything they left behind.
//!
//! Short by default (it runs in CI); the long run is
//! `ORCH_TORTURE=long cargo test --release --test suite torture:: -- --nocapture`.
//! `ORCH_TORTURE_SEED=N` replays a run (each run prints its seed).

use crate::common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

struct Scale {
    tasks: usize,
    kills: usize,
}

fn scale() -> Scale {
    match std::env::var("ORCH_TORTURE").as_deref() {
        Ok("long") => Scale { tasks: 400, kills: 150 },
        _ => Scale { tasks: 80, kills: 15 },
    }
}

fn rng() -> fastrand::Rng {
    let seed = std::env::var("ORCH_TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("torture seed {seed} (ORCH_TORTURE_SEED={seed} replays it)");
    fastrand::Rng::with_seed(seed)
}

/// Fast retries, three attempts (kills are interruptions: they use none), small event logs (rotation under fire).
fn torture_config() -> String {
    "debounce_ms: 20\nrescan_interval: 500ms\nrecovery_interval: 300ms\nkill_grace: 200ms\nshutdown_grace: 500ms\n\
     progress_interval: 50ms\nmax_concurrent: 4\nretry:\n  max_attempts: 3\n  backoff_initial: 10ms\n  backoff_max: 50ms\n\
     events:\n  rotate_bytes: 20000\n  keep: 100000\n"
        .to_string()
        + &config_with("", "")
            .split_once("agents:")
            .map(|(_, a)| format!("agents:{a}"))
            .unwrap()
}

/// A task with a random short duration and, for a third of them, transient failures first.
fn random_task(rng: &mut fastrand::Rng, i: usize) -> String {
    let sleep = rng.u32(0..250);
    match rng.u8(0..3) {
        0 => format!("@fake overloaded fail_times={} sleep={sleep}\ntask {i}\n", rng.u8(1..3)),
        _ => format!("@fake success sleep={sleep}\ntask {i}\n"),
    }
}

/// What the audit found.
#[derive(Debug, Default)]
struct Audit {
    results: usize,
    lost: Vec<String>,
    duplicated: Vec<String>,
    corrupt: Vec<String>,
    temp_files: Vec<String>,
    half_claims: usize,
    index_mismatches: Vec<String>,
    story_errors: Vec<String>,
    interrupted: usize,
    not_succeeded: Vec<String>,
    late_finals: usize,
    event_lines: usize,
}

impl Audit {
    fn assert_clean(&self) {
        assert!(self.lost.is_empty(), "lost: {:?}", self.lost);
        assert!(self.duplicated.is_empty(), "duplicated: {:?}", self.duplicated);
        assert!(self.corrupt.is_empty(), "corrupt: {:?}", self.corrupt);
        assert!(self.temp_files.is_empty(), "temp files: {:?}", self.temp_files);
        assert!(self.index_mismatches.is_empty(), "index: {:?}", self.index_mismatches);
        assert!(self.story_errors.is_empty(), "event log: {:?}", self.story_errors);
    }
}

fn parse_file(path: &Path, audit: &mut Audit) -> Option<Value> {
    match std::fs::read(path).map(|b| serde_json::from_slice::<Value>(&b)) {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            audit.corrupt.push(format!("{}: {e}", path.display()));
            None
        }
        Err(_) => None,
    }
}

/// Checks a home after the storm: every dropped file has exactly one result,
/// every file parses, no temporary file is left, the index matches the
/// results, and the event log tells each task's story.
fn audit(home: &TestHome, dropped: &BTreeSet<String>) -> Audit {
    let mut a = Audit::default();
    // No temporary file anywhere.
    let mut stack = vec![home.path.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if name.starts_with(".tmp") || name.ends_with(".tmp") {
                a.temp_files.push(e.path().display().to_string());
            }
        }
    }
    // Nothing left in the inbox, nothing rejected.
    for e in std::fs::read_dir(home.inbox()).unwrap().flatten() {
        if e.file_type().unwrap().is_file() {
            a.lost
                .push(format!("still in the inbox: {}", e.file_name().to_string_lossy()));
        }
    }
    // One result per dropped file.
    let mut by_source: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut statuses: BTreeMap<String, String> = BTreeMap::new();
    for e in std::fs::read_dir(home.path.join("results")).unwrap().flatten() {
        if !e.file_type().unwrap().is_dir() {
            continue;
        }
        let id = e.file_name().to_string_lossy().into_owned();
        if id == ".commits" {
            audit_commit_logs(&e.path(), &mut a);
            continue;
        }
        let dir = e.path();
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|f| f.file_name().to_string_lossy().into_owned())
            .collect();
        if !names.iter().any(|n| n.starts_with("task.")) {
            // A claim cut between its folder and its rename: only the lock may be there.
            if names.iter().any(|n| n != "owner.lock") {
                a.corrupt.push(format!("{id}: half claim holding {names:?}"));
            }
            a.half_claims += 1;
            continue;
        }
        for f in ["plan.json", "progress.json"] {
            parse_file(&dir.join(f), &mut a);
        }
        let Some(r) = parse_file(&dir.join("result.json"), &mut a) else {
            a.lost.push(format!("{id}: claimed, never finished"));
            continue;
        };
        a.results += 1;
        if !home.path.join("summaries").join(format!("{id}.md")).exists() {
            a.corrupt.push(format!("{id}: no summary"));
        }
        statuses.insert(id.clone(), r["status"].as_str().unwrap_or("").to_string());
        if r["status"] != "succeeded" {
            a.not_succeeded.push(format!("{id}: {} {}", r["status"], r["error"]));
        }
        by_source
            .entry(r["source_file"].as_str().unwrap_or("").to_string())
            .or_default()
            .push(id);
    }
    for name in dropped {
        match by_source.get(name).map(Vec::len) {
            None => a.lost.push(name.clone()),
            Some(1) => {}
            Some(n) => a.duplicated.push(format!("{name} x{n}")),
        }
    }
    for extra in by_source.keys().filter(|k| !dropped.contains(*k)) {
        a.corrupt.push(format!("a result for a file never dropped: {extra}"));
    }
    // The index agrees with the result files.
    match parse_file(&home.path.join("results/index.json"), &mut a) {
        Some(index) => {
            let rows = index["tasks"].as_object().cloned().unwrap_or_default();
            for (id, status) in &statuses {
                match rows.get(id) {
                    Some(row) if row["status"] == status.as_str() => {}
                    Some(row) => a.index_mismatches.push(format!("{id}: {} vs {status}", row["status"])),
                    None => a.index_mismatches.push(format!("{id}: no row")),
                }
            }
            for id in rows.keys().filter(|id| !statuses.contains_key(*id)) {
                a.index_mismatches.push(format!("{id}: a row without a result"));
            }
        }
        None => a.index_mismatches.push("no index".into()),
    }
    // The event log, rotated parts included: every line whole, every task's story told.
    let mut logs: Vec<_> = std::fs::read_dir(home.path.join("logs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ndjson"))
        .collect();
    logs.sort();
    let mut stories: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut queued: BTreeSet<String> = BTreeSet::new();
    for log in logs {
        let text = std::fs::read_to_string(&log).unwrap();
        for line in text.lines() {
            a.event_lines += 1;
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                a.corrupt.push(format!("{}: {line}", log.display()));
                continue;
            };
            let kind = v["event"].as_str().unwrap_or("").to_string();
            if kind == "task_queued" {
                queued.insert(v["file"].as_str().unwrap_or("").to_string());
            }
            if v["late"] == true {
                a.late_finals += 1;
            }
            if let Some(id) = v["task_id"].as_str() {
                stories.entry(id.to_string()).or_default().push(kind);
            }
        }
    }
    for name in dropped.iter().filter(|n| !queued.contains(*n)) {
        a.story_errors.push(format!("{name}: never queued"));
    }
    const FINAL: [&str; 3] = ["task_succeeded", "task_failed", "task_cancelled"];
    for id in statuses.keys() {
        let story = stories.get(id).cloned().unwrap_or_default();
        let count = |k: &str| story.iter().filter(|e| *e == k).count();
        let finals = story.iter().filter(|e| FINAL.contains(&e.as_str())).count();
        let (started, interrupted) = (count("task_started"), count("task_interrupted"));
        a.interrupted += interrupted;
        if finals != 1 || !story.last().is_some_and(|e| FINAL.contains(&e.as_str())) {
            a.story_errors
                .push(format!("{id}: {finals} final events, story {story:?}"));
        }
        if started == 0 || started > interrupted + 1 {
            a.story_errors.push(format!(
                "{id}: started {started} times, interrupted {interrupted}: {story:?}"
            ));
        }
    }
    a
}

/// The commit logs left (by daemons that exited or were killed): every whole
/// record names a result file that exists with exactly the logged bytes (a
/// torn last line is allowed: a crash mid-append, never acknowledged).
fn audit_commit_logs(dir: &Path, a: &mut Audit) {
    let results = dir.parent().unwrap();
    for log in std::fs::read_dir(dir).unwrap().flatten() {
        let text = std::fs::read_to_string(log.path()).unwrap_or_default();
        let lines: Vec<&str> = text.split_terminator('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            let Ok(r) = serde_json::from_str::<Value>(line) else {
                if i + 1 < lines.len() || text.ends_with('\n') {
                    a.corrupt
                        .push(format!("{}: line {} is not a record", log.path().display(), i + 1));
                }
                continue;
            };
            let file = results.join(r["path"].as_str().unwrap_or_default());
            if std::fs::read(&file).ok().as_deref() != Some(r["bytes"].as_str().unwrap_or_default().as_bytes()) {
                a.corrupt
                    .push(format!("{}: logged but not on disk as logged", file.display()));
            }
        }
    }
}

fn report(what: &str, dropped: usize, kills: usize, a: &Audit) {
    eprintln!(
        "{what}: tasks {dropped}, kills {kills}, results {}, lost {}, duplicated {}, corrupt {}, temp files {}, \
         index mismatches {}, story errors {}, interruptions {}, late final events {}, half claims {}, event lines {}",
        a.results,
        a.lost.len(),
        a.duplicated.len(),
        a.corrupt.len(),
        a.temp_files.len(),
        a.index_mismatches.len(),
        a.story_errors.len(),
        a.interrupted,
        a.late_finals,
        a.half_claims,
        a.event_lines
    );
}

#[test]
fn sigkill_at_random_moments_loses_nothing_and_finishes_every_task_once() {
    let s = scale();
    let mut rng = rng();
    let home = TestHome::with_config(&torture_config());
    let mut dropped = BTreeSet::new();
    let per_round = s.tasks.div_ceil(s.kills);
    for k in 0..s.kills {
        // Tasks keep arriving between and during the daemon's lives.
        for _ in 0..per_round {
            let i = dropped.len();
            if i < s.tasks {
                let name = format!("t{i:04}.md");
                home.drop_task(&name, random_task(&mut rng, i));
                dropped.insert(name);
            }
        }
        let mut daemon = home.spawn_daemon();
        std::thread::sleep(Duration::from_millis(rng.u64(20..700)));
        kill9(daemon.id());
        let _ = daemon.wait();
        if k % 5 == 0 {
            eprintln!("kill {}/{}", k + 1, s.kills);
        }
    }
    let out = home.run_once_within(Duration::from_secs(600));
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "the last run drains the home: {}",
        stderr(&out)
    );
    let a = audit(&home, &dropped);
    report("crash torture", dropped.len(), s.kills, &a);
    a.assert_clean();
    assert_eq!(a.results, dropped.len());
    assert!(a.interrupted > 0, "the kills hit running tasks");
    // No kill from outside counts against a task: every one succeeds.
    assert_eq!(a.not_succeeded, Vec::<String>::new());
}

#[test]
fn three_daemons_one_killed_midway_each_task_finishes_once() {
    let s = scale();
    let mut rng = rng();
    let n = s.tasks.max(150);
    let home = TestHome::with_config(&torture_config());
    let mut daemons: Vec<_> = (0..3).map(|_| home.spawn_daemon()).collect();
    let mut dropped = BTreeSet::new();
    let mut killed = None;
    for i in 0..n {
        let name = format!("m{i:04}.md");
        home.drop_task(&name, random_task(&mut rng, i));
        dropped.insert(name);
        if i % 10 == 0 {
            std::thread::sleep(Duration::from_millis(rng.u64(0..60)));
        }
        if i == n / 2 {
            // One daemon dies mid-way, with tasks of its own running.
            let victim = daemons.remove(rng.usize(0..3));
            kill9(victim.id());
            killed = Some(victim);
        }
    }
    let mut victim = killed.unwrap();
    let _ = victim.wait();
    // The survivors (not a restart of the victim) must finish everything.
    wait_until(Duration::from_secs(300), "the survivors to finish every task", || {
        std::fs::read_dir(home.path.join("results"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().join("result.json").exists())
            .count()
            >= n
    });
    // Let the survivors flush the index, then stop them the graceful way.
    for d in &daemons {
        sigterm(d.id());
    }
    for d in daemons {
        let out = wait_output(d, Duration::from_secs(30));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let a = audit(&home, &dropped);
    report("three daemons, one killed", n, 1, &a);
    a.assert_clean();
    assert_eq!(a.results, n);
    // Interruptions here are the killed daemon's tasks, taken over by its peers.
    eprintln!("tasks of the killed daemon taken over by its peers: {}", a.interrupted);
}
