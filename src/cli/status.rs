//! `orchestrator status [ID]`: daemons, pauses, running tasks, the queue, counts.
//! Reads files only (`run/`, the running tasks' progress, the inbox, the index
//! counts, `inbox/rejected/`); needs no daemon and never scans `results/`.

use super::common::{escape_controls, human_ms, load_plan, load_progress, ms_since, paint, print_json, status_color};
use super::{Cli, exit};
use crate::store::{Home, TaskDir, daemons, index};
use crate::task::parse::{Limits, is_ignored_name};
use serde::Serialize;
use serde_json::json;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  orchestrator status\n  orchestrator status 01m80jw --json")]
pub struct Args {
    /// One task (id, unique prefix, or file name): same as `show`.
    pub task: Option<String>,
    /// Print JSON (one document) instead of text, for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct Running {
    pub id: String,
    pub title: String,
    pub agent: String,
    pub worker: String,
    pub elapsed_ms: Option<u64>,
    pub attempt: u32,
    /// Times it was cut short from outside so far.
    pub interruptions: u32,
    pub turns: u32,
    pub tool_calls: u32,
    pub cost_usd: Option<f64>,
    pub last_event: Option<String>,
    pub waiting_until: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct QueuedFile {
    pub file: String,
    pub title: String,
    pub priority: i64,
    pub agent: String,
    /// The role it names (or the parser read from a loose note), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The tasks it waits for that have not ended as it needs (`after:`), with their state.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting_for: Vec<String>,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    if let Some(t) = &args.task {
        return super::show::show(cli, t, args.json);
    }
    let home = cli.home()?;
    index::ensure(&home);
    let daemons = daemons::live(&home);
    let running = running(&home, &daemons);
    let loaded = cli.load_config(&home, &[]);
    let config_error = loaded.as_ref().err().map(|e| format!("{e:#}"));
    let config = loaded.map(|l| l.config).unwrap_or_default();
    let (queued_total, queue) = queued(&config, &home, &daemons);
    let running_ids: Vec<String> = daemons.iter().flat_map(|d| d.running.iter().cloned()).collect();
    let interrupted = super::common::interrupted(&home, &running_ids);
    let (rejected_total, rejected) = super::common::rejected(&home, 5);
    let counts = index::read_counts(&home).unwrap_or_default();
    let paused: Vec<_> = daemons
        .iter()
        .flat_map(|d| {
            d.paused
                .iter()
                .map(|(a, u)| json!({"agent": a, "until": u, "worker": d.worker}))
        })
        .collect();

    let now = jiff::Timestamp::now();
    let schedules: Vec<serde_json::Value> = crate::schedule::Schedule::all(&config)
        .iter()
        .map(|s| json!({"name": s.name(), "next": s.upcoming(now, 1).first().map(|z| z.to_string())}))
        .collect();
    if args.json {
        print_json(
            &json!({"daemons": daemons, "paused": paused, "running": running, "interrupted": interrupted, "queued": queue, "queued_total": queued_total, "rejected": rejected, "rejected_total": rejected_total, "finished": counts, "schedules": schedules, "config_error": config_error}),
        )?;
        return Ok(exit::OK);
    }
    if let Some(e) = &config_error {
        println!(
            "{}: {} (a daemon refuses to start on it; `orchestrator doctor` says more)",
            paint("config not valid", "31"),
            escape_controls(e)
        );
    }
    if daemons.is_empty() {
        println!(
            "daemon: {} (start one with `orchestrator run`)",
            paint("not running", "33")
        );
    }
    for d in &daemons {
        let up = ms_since(&d.started_at).map(human_ms).unwrap_or_default();
        println!(
            "daemon: {} {} (pid {}, up {up}, {}/{} slots busy, v{})",
            paint("running", "32"),
            d.worker,
            d.pid,
            d.running.len(),
            d.max_concurrent,
            d.version
        );
    }
    for p in &paused {
        println!(
            "paused: {} until {} (rate limit)",
            p["agent"].as_str().unwrap_or(""),
            p["until"].as_str().unwrap_or("")
        );
    }
    if let Some(hit) = daemons.iter().find_map(|d| d.spend_cap.as_ref()) {
        let amount = |v: f64| {
            if hit.cap.ends_with("usd") {
                format!("${v:.4}")
            } else {
                format!("{v:.0} tokens")
            }
        };
        println!(
            "{}: budget.{} is {} and {} is spent; nothing starts until {} (or the cap is raised)",
            paint("spend cap reached", "33"),
            hit.cap,
            amount(hit.limit),
            amount(hit.spent),
            hit.until
        );
    }
    println!("\nrunning: {}", running.len());
    for r in &running {
        let state = match &r.waiting_until {
            Some(u) => format!("waiting until {u}"),
            None => r.last_event.clone().unwrap_or_default(),
        };
        let interrupted = match r.interruptions {
            0 => String::new(),
            n => format!(" ({n} interrupted)"),
        };
        println!(
            "  {}  {}  {}  attempt {}{interrupted}  {} turns  {} tools  {}  {}",
            paint(&r.id, "36"),
            r.elapsed_ms.map(human_ms).unwrap_or_default(),
            escape_controls(&r.title),
            r.attempt,
            r.turns,
            r.tool_calls,
            r.cost_usd.map_or("-".to_string(), |c| format!("${c:.4}")),
            escape_controls(&state)
        );
    }
    if !interrupted.is_empty() {
        let when = if daemons.is_empty() {
            "at the next daemon's start"
        } else {
            "within a recovery interval"
        };
        println!(
            "\ninterrupted: {} (their daemon died or stopped; they run again {when})",
            interrupted.len()
        );
        for id in interrupted.iter().take(10) {
            println!("  {}", paint(id, "36"));
        }
    }
    println!("\nqueued: {queued_total}");
    for q in &queue {
        let waiting = match q.waiting_for.is_empty() {
            true => String::new(),
            false => format!("  waiting for {}", q.waiting_for.join(", ")),
        };
        println!(
            "  {}  (priority {}, {})  {}{}",
            escape_controls(&q.file),
            q.priority,
            q.agent,
            escape_controls(&q.title),
            escape_controls(&waiting)
        );
    }
    if queued_total > queue.len() {
        println!("  ... and {} more", queued_total - queue.len());
    }
    if !schedules.is_empty() {
        println!("\nschedules: {}", schedules.len());
        for s in &schedules {
            println!(
                "  {}  next {}",
                escape_controls(s["name"].as_str().unwrap_or("")),
                s["next"].as_str().unwrap_or("never")
            );
        }
    }
    if rejected_total > 0 {
        println!(
            "\nrejected: {} (in inbox/rejected/, each with its .error.json)",
            rejected_total
        );
        for r in &rejected {
            println!("  {}  {}", escape_controls(&r.file), escape_controls(&r.error));
        }
    }
    let by = |s: &str| counts.by_status.get(s).copied().unwrap_or(0);
    println!(
        "\nfinished: {}  ({} succeeded, {} failed, {} cancelled)",
        counts.total,
        paint(&by("succeeded").to_string(), status_color("succeeded")),
        paint(&by("failed").to_string(), status_color("failed")),
        by("cancelled")
    );
    Ok(exit::OK)
}

/// The tasks the live daemons run now, from their published state and each
/// task's progress (no scan of `results/`).
pub fn running(home: &Home, daemons: &[daemons::DaemonState]) -> Vec<Running> {
    let mut running = Vec::new();
    for d in daemons {
        for id in &d.running {
            let dir = TaskDir::new(home.task_dir(id));
            if dir.result().exists() {
                continue;
            }
            running.push(running_task(&dir, id, &d.worker));
        }
    }
    running
}

/// One running task as `status` shows it.
pub fn running_task(dir: &TaskDir, id: &str, worker: &str) -> Running {
    let p = load_progress(dir).unwrap_or_default();
    let plan = load_plan(dir);
    Running {
        id: id.to_string(),
        title: plan.as_ref().map(|p| p.title.clone()).unwrap_or_default(),
        agent: plan.as_ref().map(|p| p.agent.name().to_string()).unwrap_or_default(),
        worker: worker.to_string(),
        elapsed_ms: p.started_at.as_deref().and_then(ms_since),
        attempt: p.attempt,
        interruptions: p.attempts.iter().filter(|a| a.cut_short.is_some()).count() as u32,
        turns: p.turns,
        tool_calls: p.tool_calls,
        cost_usd: p.cost_usd,
        last_event: p.last_event,
        waiting_until: p.waiting_until,
    }
}

/// How many files wait, and the first [`daemons::QUEUE_HEAD`] of them in run
/// order. A running daemon publishes its queue (the files it accepted; one
/// still settling is not in it yet): only those few files are read. Without
/// one, every file in the inbox is read to order them (files that do not
/// parse are listed last, priority 0).
pub fn queued(
    config: &crate::config::Config,
    home: &Home,
    daemons: &[daemons::DaemonState],
) -> (usize, Vec<QueuedFile>) {
    let limits = Limits {
        max_prompt_chars: 200,
        ..Limits::of(config)
    };
    if let Some(d) = daemons.iter().max_by(|a, b| a.updated_at.cmp(&b.updated_at)) {
        let head = d
            .queued
            .next
            .iter()
            // Claimed since it was published: no longer waiting.
            .filter_map(|name| describe(&home.inbox().join(name), name, &limits).map(|(_, _, q)| q))
            .collect();
        // A file dropped since the daemon last published (still settling, or
        // not yet seen) waits all the same (`show` says queued): the inbox is
        // counted then, and only then (one stat tells).
        let total = if changed_since(&home.inbox(), &d.updated_at) {
            d.queued.total.max(inbox_files(home))
        } else {
            d.queued.total
        };
        return (total, head);
    }
    let Ok(dir) = std::fs::read_dir(home.inbox()) else {
        return (0, Vec::new());
    };
    let mut v: Vec<(i64, std::time::SystemTime, QueuedFile)> = dir
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if is_ignored_name(&name) {
                return None;
            }
            describe(&e.path(), &name, &limits)
        })
        .collect();
    v.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.file.cmp(&b.2.file)));
    let total = v.len();
    let head = v.into_iter().take(daemons::QUEUE_HEAD).map(|(_, _, q)| q).collect();
    (total, head)
}

/// Was `dir` changed (an entry added, renamed or removed) at or after the
/// time `published` (RFC 3339)? Unknown counts as changed.
fn changed_since(dir: &std::path::Path, published: &str) -> bool {
    let Ok(changed) = std::fs::metadata(dir).and_then(|m| m.modified()) else {
        return true;
    };
    match published.parse::<jiff::Timestamp>() {
        Ok(at) => jiff::Timestamp::try_from(changed).is_ok_and(|c| c >= at),
        Err(_) => true,
    }
}

/// How many task files are in the inbox (names only, nothing read).
fn inbox_files(home: &Home) -> usize {
    std::fs::read_dir(home.inbox()).map_or(0, |d| {
        d.flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter(|e| e.file_name().to_str().is_some_and(|n| !is_ignored_name(n)))
            .count()
    })
}

/// A waiting file's priority, arrival and what `status` shows of it; `None`
/// when it is gone.
pub(crate) fn describe(
    path: &std::path::Path,
    name: &str,
    limits: &Limits,
) -> Option<(i64, std::time::SystemTime, QueuedFile)> {
    let mtime = std::fs::metadata(path)
        .ok()?
        .modified()
        .unwrap_or(std::time::UNIX_EPOCH);
    let spec = crate::intake::read_capped(path, limits.max_bytes)
        .ok()
        .and_then(|b| crate::task::parse::parse(name, &b, limits).ok());
    let waiting_for = match (&spec, path.parent().and_then(|inbox| inbox.parent())) {
        (Some(s), Some(home)) => Home::new(home)
            .map(|h| crate::deps::waiting_for(&h, &s.deps, mtime))
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let (priority, title, agent, role) = match spec {
        Some(s) => (s.priority, s.title, s.agent.name().to_string(), s.role),
        None => (0, "(not yet valid)".to_string(), String::new(), None),
    };
    Some((
        priority,
        mtime,
        QueuedFile {
            file: name.to_string(),
            title,
            priority,
            agent,
            role,
            waiting_for,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daemon's publication made right after a change of the inbox (a
    /// claim) is not taken for older than that change, which would make
    /// `status` list the whole inbox.
    #[test]
    fn a_publication_right_after_a_change_is_newer_than_it() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..20 {
            std::fs::write(dir.path().join(format!("f{i}")), "x").unwrap();
            let published = daemons::published_now();
            assert_eq!(published.split('.').nth(1).map(str::len), Some(7), "{published}");
            assert!(!changed_since(dir.path(), &published), "{published}");
        }
        assert!(changed_since(dir.path(), "2000-01-01T00:00:00Z"));
    }
}
