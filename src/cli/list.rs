//! `orchestrator list`: tasks, newest first (queued files on top).

use super::common::{escape_controls, human_ms, load_plan, load_progress, paint, print_json, since, status_color};
use super::{Cli, exit};
use crate::store::{TaskDir, daemons, index};
use serde::Serialize;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  orchestrator list --status failed --since 1d\n  orchestrator list --limit 100 --json"
)]
pub struct Args {
    /// Only tasks with this status: queued, running, interrupted (its daemon
    /// died or stopped; it runs again), succeeded, failed, cancelled, or
    /// rejected (files the inbox refused).
    #[arg(long)]
    pub status: Option<String>,
    /// At most this many (0: all).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Only tasks started within this long, e.g. 2h, 7d.
    #[arg(long)]
    pub since: Option<String>,
    /// Print JSON (one document) instead of text, for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub id: String,
    pub status: String,
    pub title: String,
    pub agent: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub cost_usd: Option<f64>,
    pub error: Option<crate::vocab::ErrorKind>,
    /// A queued file's tasks that have not ended as it needs (`after:`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting_for: Vec<String>,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let home = cli.home()?;
    index::ensure(&home);
    let cutoff = args.since.as_deref().map(since).transpose()?.map(|t| t.to_string());
    let mut rows: Vec<Row> = Vec::new();
    if let Ok(dir) = std::fs::read_dir(home.inbox()) {
        for e in dir.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_file())) {
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            if crate::task::parse::is_ignored_name(&name) {
                continue;
            }
            rows.push(Row {
                id: name,
                status: "queued".into(),
                title: String::new(),
                agent: String::new(),
                started_at: None,
                finished_at: None,
                duration_ms: None,
                cost_usd: None,
                error: None,
                waiting_for: Vec::new(),
            });
        }
    }
    let wanted = |status: &str| args.status.as_deref().is_none_or(|s| s == status);
    let limit = args.limit;
    let mut finished: Vec<Row> = index::newest(&home, limit, |_, r| {
        wanted(r.status.name()) && cutoff.as_ref().is_none_or(|c| &r.started_at >= c)
    })
    .into_iter()
    .map(|(id, r)| Row {
        id,
        status: r.status.name().into(),
        title: r.title,
        agent: r.agent,
        started_at: Some(r.started_at),
        finished_at: Some(r.finished_at),
        duration_ms: Some(r.duration_ms),
        cost_usd: r.cost_usd,
        error: r.error_kind,
        waiting_for: Vec::new(),
    })
    .collect();
    let live = daemons::live(&home);
    let running: Vec<String> = live.iter().flat_map(|d| d.running.iter().cloned()).collect();
    if wanted("interrupted") {
        for id in super::common::interrupted(&home, &running) {
            finished.push(unfinished(&home, id, "interrupted"));
        }
    }
    for d in live {
        for id in d.running {
            finished.push(unfinished(&home, id, "running"));
        }
    }
    // Ids begin with a ULID: sorting by id is sorting by claim time.
    finished.sort_by(|a, b| b.id.cmp(&a.id));
    rows.extend(finished);
    // Files the inbox refused, after the tasks: they never became one.
    if wanted("rejected") {
        rows.extend(super::common::rejected(&home, limit).1.into_iter().map(|r| Row {
            id: r.moved_to.trim_start_matches("inbox/").to_string(),
            status: "rejected".into(),
            title: r.error,
            agent: String::new(),
            started_at: Some(r.at),
            finished_at: None,
            duration_ms: None,
            cost_usd: None,
            error: None,
            waiting_for: Vec::new(),
        }));
    }
    rows.retain(|r| args.status.as_deref().is_none_or(|s| r.status == s));
    if let Some(c) = &cutoff {
        rows.retain(|r| r.started_at.as_ref().is_some_and(|s| s >= c));
    }
    if args.limit > 0 {
        rows.truncate(args.limit);
    }
    // The queued files shown are read (only those): title, agent, what they wait for.
    let config = cli.load_config(&home, &[]).map(|l| l.config).unwrap_or_default();
    let limits = crate::task::parse::Limits::of(&config);
    for r in rows.iter_mut().filter(|r| r.status == "queued") {
        if let Some((_, _, q)) = super::status::describe(&home.inbox().join(&r.id), &r.id, &limits) {
            (r.title, r.agent, r.waiting_for) = (q.title, q.agent, q.waiting_for);
        }
    }
    if args.json {
        print_json(&rows)?;
        return Ok(exit::OK);
    }
    for r in &rows {
        let extra = match (&r.error, r.duration_ms) {
            (Some(e), _) => format!("  {e}"),
            (None, Some(d)) => format!("  {}", human_ms(d)),
            _ => String::new(),
        };
        let extra = match r.waiting_for.is_empty() {
            true => extra,
            false => format!("{extra}  waiting for {}", r.waiting_for.join(", ")),
        };
        println!(
            "{:<10} {}  {}{extra}",
            paint(&r.status, status_color(&r.status)),
            escape_controls(&r.id),
            escape_controls(&r.title)
        );
    }
    if rows.is_empty() {
        println!("no tasks");
    }
    Ok(exit::OK)
}

/// The row of a task that has no result yet, from its plan and progress.
fn unfinished(home: &crate::store::Home, id: String, status: &str) -> Row {
    let dir = TaskDir::new(home.task_dir(&id));
    let plan = load_plan(&dir);
    let p = load_progress(&dir).unwrap_or_default();
    Row {
        id,
        status: status.into(),
        title: plan.as_ref().map(|p| p.title.clone()).unwrap_or_default(),
        agent: plan.map(|p| p.agent.name().to_string()).unwrap_or_default(),
        started_at: p.started_at,
        finished_at: None,
        duration_ms: None,
        cost_usd: p.cost_usd,
        error: None,
        waiting_for: Vec::new(),
    }
}
