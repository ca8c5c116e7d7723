//! The Telegram bot's commands: `/status`, `/progress ID`, `/cancel ID`,
//! `/retry ID` (and `/help`). Each reads or writes the home as the CLI's verb
//! of that name does; the answer is text for the chat.

use crate::config::Config;
use crate::store::lock::OwnerRecord;
use crate::store::record::{ProgressRecord, ResultRecord};
use crate::store::{Home, TaskDir, daemons, index};

const HELP: &str = "/status: what runs, waits and finished\n/progress ID: one task\n/cancel ID: stop a running task (or take a file out of the queue)\n/retry ID: run a task again\n\nID: a task id or a unique start of one.";

/// The answer to `text`, a message from an allowed chat (`None`: not a command).
pub fn answer(home: &Home, config: &Config, text: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    let command = words.next()?.strip_prefix('/')?;
    // `/status@my_bot` in a group.
    let command = command.split('@').next().unwrap_or(command);
    let arg = words.next();
    Some(match (command, arg) {
        ("status", _) => status(home),
        ("progress", Some(id)) => with_task(home, id, progress),
        ("cancel", Some(id)) => cancel(home, id),
        ("retry", Some(id)) => with_task(home, id, |id, dir| retry(home, config, id, dir)),
        ("progress" | "cancel" | "retry", None) => format!("/{command} needs a task id: /{command} 01m80jw"),
        _ => HELP.to_string(),
    })
}

fn status(home: &Home) -> String {
    let live = daemons::live(home);
    let running: Vec<String> = live.iter().flat_map(|d| d.running.clone()).collect();
    let queued: usize = live.iter().map(|d| d.queued.total).max().unwrap_or(0);
    let counts = index::read_counts(home).unwrap_or_default();
    let by = |s: &str| counts.by_status.get(s).copied().unwrap_or(0);
    let mut text = if live.is_empty() {
        "no daemon is running".to_string()
    } else {
        format!("{} daemon(s)", live.len())
    };
    text.push_str(&format!(
        "\n{} running · {queued} queued · {} finished ({} succeeded, {} failed, {} cancelled)",
        running.len(),
        counts.total,
        by("succeeded"),
        by("failed"),
        by("cancelled")
    ));
    for id in running.iter().take(10) {
        let title = crate::store::read::json::<crate::plan::Plan>(&TaskDir::new(home.task_dir(id)).plan())
            .map(|p| p.title)
            .unwrap_or_default();
        text.push_str(&format!("\n• {id} {title}"));
    }
    text
}

/// Runs `f` on the task `prefix` names, or says why there is none.
fn with_task(home: &Home, prefix: &str, f: impl FnOnce(&str, &TaskDir) -> String) -> String {
    match resolve(home, prefix) {
        Ok(id) => f(&id, &TaskDir::new(home.task_dir(&id))),
        Err(why) => why,
    }
}

/// The task with id `prefix`, or the only one whose id starts with it.
fn resolve(home: &Home, prefix: &str) -> Result<String, String> {
    let valid = !prefix.is_empty()
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(format!("`{prefix}` is not a task id"));
    }
    if home.task_dir(prefix).is_dir() {
        return Ok(prefix.to_string());
    }
    let mut found = std::fs::read_dir(home.results())
        .map_err(|e| format!("cannot read results/: {e}"))?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix) && home.task_dir(n).is_dir());
    match (found.next(), found.next()) {
        (Some(id), None) => Ok(id),
        (None, _) => Err(format!("no task {prefix}")),
        (Some(_), Some(_)) => Err(format!("{prefix} names more than one task: give more of the id")),
    }
}

fn progress(id: &str, dir: &TaskDir) -> String {
    if let Ok(r) = ResultRecord::load(&dir.result()) {
        let mut text = format!(
            "{id} {}: {}\n{:.1} s · {} attempt(s)",
            r.status.name(),
            r.title,
            r.duration_ms as f64 / 1000.0,
            r.attempts.len()
        );
        if let Some(c) = r.cost_usd {
            text.push_str(&format!(" · ${c:.4}"));
        }
        if let Some(e) = &r.error {
            text.push_str(&format!("\n{}: {}", e.kind, e.message));
        }
        return text;
    }
    let Some(p) = ProgressRecord::load(&dir.progress()) else {
        // A run younger than a second has written no progress.json yet: its
        // attempts are in the lock its daemon holds.
        let attempts = crate::store::read::record_text(&dir.lock_file())
            .ok()
            .and_then(|t| OwnerRecord::parse(&t))
            .map_or(0, |o| o.attempts.len());
        return match attempts {
            0 => format!("{id} is starting"),
            n => format!("{id} running · attempt {n}"),
        };
    };
    let mut text = format!(
        "{id} running · attempt {} · {} turns · {} tool calls",
        p.attempt.max(1),
        p.turns,
        p.tool_calls
    );
    if let Some(s) = p.step {
        text.push_str(&format!(" · step {s}"));
    }
    if let Some(c) = p.cost_usd {
        text.push_str(&format!(" · ${c:.4}"));
    }
    if let Some(w) = &p.waiting_until {
        text.push_str(&format!("\nwaiting until {w}"));
    }
    if let Some(e) = &p.last_event {
        text.push_str(&format!("\nlast: {e}"));
    }
    text
}

fn cancel(home: &Home, name: &str) -> String {
    // A file still in the queue, by its name.
    let queued = home.inbox().join(name);
    if crate::store::layout::is_plain_name(name) && queued.is_file() {
        return match crate::store::keep::move_into(&queued, &home.cancelled(), name) {
            Ok(kept) => format!("{name}: removed from the queue (kept as inbox/cancelled/{kept})"),
            Err(e) => format!("{name}: could not be taken out of the queue: {e}"),
        };
    }
    with_task(home, name, |id, dir| {
        if let Ok(r) = ResultRecord::load(&dir.result()) {
            return format!("{id} already finished ({})", r.status.name());
        }
        match crate::store::atomic::write_atomic(&dir.cancel_request(), crate::events::now_ts().as_bytes()) {
            Ok(()) => format!("{id}: cancel requested; its daemon stops it within a second"),
            Err(e) => format!("{id}: could not request the cancel: {e}"),
        }
    })
}

fn retry(home: &Home, config: &Config, id: &str, dir: &TaskDir) -> String {
    let Some(plan) = crate::store::read::json::<crate::plan::Plan>(&dir.plan()) else {
        return format!("{id} never started: nothing to retry");
    };
    match crate::followups::write_task(home, config, crate::followups::retry_fields(id, &plan)) {
        Ok(new) => format!("{id} will run again as {new}"),
        Err(e) => format!("{id} could not be retried: {e}"),
    }
}
