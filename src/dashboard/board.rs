//! The board (`GET /`): what runs, what waits and why, what was cut short,
//! what finished, what the inbox refused; and `GET /rows`, the same rows for
//! a few tasks at a time, which the live page asks for when events name them.
//!
//! Everything comes from where the verbs read it: the daemons' published
//! state (`run/`), the running tasks' progress, the inbox, the index (one page
//! of it, parsed from the end) and `inbox/rejected/`. Nothing scans `results/`.

use super::html::{self, esc, task_link, url_part};
use super::{App, blocking};
use crate::cli::common::{self, Rejected, load_plan};
use crate::cli::status::{QueuedFile, Running};
use crate::store::index::{self, IndexRow};
use crate::store::{Home, TaskDir, daemons};
use axum::extract::{Query, State};
use axum::response::{Html, Response};
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// Finished tasks shown a page.
pub const PAGE: usize = 50;

/// The board's search: empty fields match everything.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(default)]
pub struct Filter {
    pub status: String,
    pub agent: String,
    pub role: String,
    pub q: String,
    pub page: usize,
}

impl Filter {
    fn matches(&self, status: &str, agent: &str, role: Option<&str>, text: &[&str]) -> bool {
        let q = self.q.trim().to_lowercase();
        (self.status.is_empty() || self.status == status)
            && (self.agent.is_empty() || self.agent == agent)
            && (self.role.is_empty() || Some(self.role.as_str()) == role)
            && (q.is_empty() || text.iter().any(|t| t.to_lowercase().contains(&q)))
    }

    fn query(&self, page: usize) -> String {
        format!(
            "?status={}&agent={}&role={}&q={}&page={page}",
            url_part(&self.status),
            url_part(&self.agent),
            url_part(&self.role),
            url_part(&self.q)
        )
    }
}

/// What decides why a queued task waits.
struct Waiting {
    daemons: Vec<daemons::DaemonState>,
    /// Repositories the running tasks may write to, with the task.
    writers: Vec<(PathBuf, String)>,
    config: crate::config::Config,
}

impl Waiting {
    fn of(home: &Home, config: crate::config::Config) -> Self {
        let daemons = daemons::live(home);
        let mut writers = Vec::new();
        for id in daemons.iter().flat_map(|d| d.running.iter()) {
            if let Some(plan) = home.own_task_dir(id).and_then(|d| load_plan(&TaskDir::new(d)))
                && plan.agent != crate::config::AgentKind::Command
                && plan.mode != crate::vocab::Mode::Guarded
                && plan.isolation == crate::vocab::Isolation::None
            {
                let repo = crate::git::repository_of(&plan.workdir)
                    .unwrap_or(&plan.workdir)
                    .to_path_buf();
                writers.push((repo, id.clone()));
            }
        }
        Self {
            daemons,
            writers,
            config,
        }
    }

    fn running_ids(&self) -> Vec<String> {
        self.daemons.iter().flat_map(|d| d.running.iter().cloned()).collect()
    }

    /// Why the file `name` in the inbox has not started.
    fn reason(&self, home: &Home, name: &str) -> String {
        if self.daemons.is_empty() {
            return "no daemon is running (start one: orchestrator run)".into();
        }
        let bytes = crate::intake::read_capped(&home.inbox().join(name), self.config.max_task_bytes).ok();
        let checked = bytes.and_then(|b| crate::task::check(name, &b, &self.config, home.root()).ok());
        if let Some((spec, workdir)) = &checked {
            let arrival = std::fs::metadata(home.inbox().join(name))
                .and_then(|m| m.modified())
                .unwrap_or_else(|_| std::time::SystemTime::now());
            let waiting = crate::deps::waiting_for(home, &spec.deps, arrival);
            if !waiting.is_empty() {
                return format!("waiting for {}", waiting.join(", "));
            }
            for d in &self.daemons {
                if let Some(until) = d.paused.get(spec.agent.name()) {
                    return format!("{} is paused by a rate limit until {until}", spec.agent.name());
                }
            }
            if let Some(repo) = crate::daemon::writers::key(spec, workdir, &self.config)
                && let Some((_, id)) = self.writers.iter().find(|(r, _)| *r == repo)
            {
                return format!("one writer per repository: {id} writes to {}", repo.display());
            }
        }
        let (busy, slots) = self
            .daemons
            .iter()
            .fold((0, 0), |(b, s), d| (b + d.running.len(), s + d.max_concurrent));
        if busy >= slots {
            format!("every slot is busy ({busy}/{slots})")
        } else {
            "next in line".into()
        }
    }
}

pub async fn page(State(app): State<Arc<App>>, Query(filter): Query<Filter>) -> Result<Html<String>, Response> {
    let a = app.clone();
    let body = blocking(move || render(&a, &filter)).await?;
    Ok(Html(app.page("Board", "Board").render(&body)))
}

fn render(app: &App, f: &Filter) -> String {
    let home = &app.home;
    if !app.read_only {
        index::ensure(home);
    }
    let config = app.config();
    let roles: Vec<String> = config.roles.keys().cloned().collect();
    let waiting = Waiting::of(home, config);
    let mut out = String::new();
    out.push_str(&daemon_line(&waiting.daemons));
    out.push_str(&filter_form(f, &roles));

    // Running: the live daemons' tasks.
    let running = crate::cli::status::running(home, &waiting.daemons);
    let rows: Vec<String> = running
        .iter()
        .filter_map(|r| {
            let role = role_of(home, &r.id);
            f.matches("running", &r.agent, role.as_deref(), &[&r.title, &r.id])
                .then(|| running_row(app, r, role.as_deref()))
        })
        .collect();
    section(&mut out, "running", "Running", &running_head(), &rows, None);

    // Queued, in run order.
    let (total, queue) = crate::cli::status::queued(&waiting.config, home, &waiting.daemons);
    let rows: Vec<String> = queue
        .iter()
        .filter(|q| f.matches("queued", &q.agent, q.role.as_deref(), &[&q.title, &q.file]))
        .map(|q| queued_row(app, q, &waiting.reason(home, &q.file)))
        .collect();
    let more = (total > queue.len()).then(|| format!("… and {} more waiting", total - queue.len()));
    section(&mut out, "queued", "Queued", QUEUED_HEAD, &rows, more);

    // Interrupted: their daemon died or stopped; they run again.
    let interrupted = common::interrupted(home, &waiting.running_ids());
    let rows: Vec<String> = interrupted
        .iter()
        .filter_map(|id| {
            let plan = home.own_task_dir(id).and_then(|d| load_plan(&TaskDir::new(d)));
            let (title, agent, role) = plan.map_or((String::new(), String::new(), None), |p| {
                (p.title, p.agent.name().to_string(), p.role)
            });
            f.matches("interrupted", &agent, role.as_deref(), &[&title, id])
                .then(|| interrupted_row(id, &title, &agent))
        })
        .collect();
    if !rows.is_empty() {
        section(&mut out, "interrupted", "Interrupted", INTERRUPTED_HEAD, &rows, None);
    }

    // Finished: a page of the index, newest first.
    // Past 10,000 pages nobody pages; the number is clamped, never overflows.
    let page = f.page.min(10_000);
    let skip = page * PAGE;
    let found = index::newest(home, skip + PAGE + 1, |id, r| {
        f.matches(
            r.status.name(),
            &r.agent,
            r.role.as_deref(),
            &[&r.title, id, &r.source_file],
        )
    });
    let has_next = found.len() > skip + PAGE;
    let rows: Vec<String> = found
        .iter()
        .skip(skip)
        .take(PAGE)
        .map(|(id, r)| finished_row(id, r))
        .collect();
    let title = format!("Finished {}", finished_counts(home));
    let mut pager = String::new();
    if f.page > 0 {
        let _ = write!(
            pager,
            "<a href=\"/{}\" rel=\"prev\">← newer</a> ",
            esc(&f.query(f.page - 1))
        );
    }
    let _ = write!(pager, "page {}", f.page + 1);
    if has_next {
        let _ = write!(
            pager,
            " <a href=\"/{}\" rel=\"next\">older →</a>",
            esc(&f.query(f.page + 1))
        );
    }
    section(&mut out, "finished", &title, FINISHED_HEAD, &rows, Some(pager));

    // Files the inbox refused.
    if f.status.is_empty() || f.status == "rejected" {
        let (total, rejected) = common::rejected(home, 20);
        let rows: Vec<String> = rejected
            .iter()
            .filter(|r| f.q.is_empty() || f.matches("rejected", "", None, &[&r.file, &r.error]))
            .map(rejected_row)
            .collect();
        if total > 0 {
            let more = (total > rejected.len()).then(|| format!("… {total} in inbox/rejected/"));
            section(&mut out, "rejected", "Rejected files", REJECTED_HEAD, &rows, more);
        }
    }
    out
}

/// How many finished, by status (from `index.counts.json`).
fn finished_counts(home: &Home) -> String {
    let counts = index::read_counts(home).unwrap_or_default();
    let by = |s: &str| counts.by_status.get(s).copied().unwrap_or(0);
    format!(
        "<small id=\"finished-counts\">{} in all: {} succeeded, {} failed, {} cancelled</small>",
        counts.total,
        by("succeeded"),
        by("failed"),
        by("cancelled")
    )
}

fn role_of(home: &Home, id: &str) -> Option<String> {
    home.own_task_dir(id)
        .and_then(|d| load_plan(&TaskDir::new(d)))
        .and_then(|p| p.role)
}

fn daemon_line(daemons: &[daemons::DaemonState]) -> String {
    if daemons.is_empty() {
        return "<p id=\"daemons\" class=\"daemons warn\">No daemon is running: queued tasks wait until one starts \
                (<code>orchestrator run</code>).</p>"
            .into();
    }
    let mut out = String::from("<p id=\"daemons\" class=\"daemons\">");
    for d in daemons {
        let _ = write!(
            out,
            "<span class=\"daemon\">daemon {} · {}/{} slots busy · v{}</span> ",
            esc(&d.worker),
            d.running.len(),
            d.max_concurrent,
            esc(&d.version)
        );
        for (agent, until) in &d.paused {
            let _ = write!(
                out,
                "<span class=\"paused\">{} paused until {}</span> ",
                esc(agent),
                esc(until)
            );
        }
    }
    out.push_str("</p>");
    out
}

fn filter_form(f: &Filter, roles: &[String]) -> String {
    let select = |name: &str, current: &str, options: &[String]| {
        let mut s = format!("<select name=\"{name}\"><option value=\"\">any {name}</option>");
        for o in options {
            let sel = if o == current { " selected" } else { "" };
            let _ = write!(s, "<option{sel}>{}</option>", esc(o));
        }
        s.push_str("</select>");
        s
    };
    let statuses: Vec<String> = [
        "queued",
        "running",
        "interrupted",
        "succeeded",
        "failed",
        "cancelled",
        "rejected",
    ]
    .map(String::from)
    .to_vec();
    let agents: Vec<String> = crate::config::AgentKind::ALL
        .iter()
        .map(|a| a.name().to_string())
        .collect();
    format!(
        "<form method=\"get\" action=\"/\" class=\"filter\" id=\"filter\">{}{}{}\
         <input type=\"search\" name=\"q\" value=\"{}\" placeholder=\"search titles, ids, files\">\
         <button type=\"submit\">Filter</button> <a href=\"/\">clear</a></form>",
        select("status", &f.status, &statuses),
        select("agent", &f.agent, &agents),
        select("role", &f.role, roles),
        esc(&f.q)
    )
}

fn section(out: &mut String, key: &str, title: &str, head: &str, rows: &[String], foot: Option<String>) {
    let _ = write!(
        out,
        "<section id=\"{key}\"><h2>{title} <span class=\"count\" data-count=\"{key}\">{}</span></h2>\
         <table><thead><tr>{head}</tr></thead><tbody id=\"sec-{key}\">",
        rows.len()
    );
    for r in rows {
        out.push_str(r);
    }
    out.push_str("</tbody></table>");
    if rows.is_empty() {
        out.push_str("<p class=\"empty\">none</p>");
    }
    if let Some(foot) = foot {
        let _ = write!(out, "<p class=\"more\">{foot}</p>");
    }
    out.push_str("</section>");
}

fn running_head() -> String {
    "<th>Task</th><th>Agent</th><th>Elapsed</th><th>Attempt</th><th>Turns</th><th>Tool calls</th>\
     <th>Cost</th><th>Now</th><th></th>"
        .into()
}
const QUEUED_HEAD: &str = "<th>File</th><th>Title</th><th>Priority</th><th>Agent</th><th>Waiting because</th><th></th>";
const INTERRUPTED_HEAD: &str = "<th>Task</th><th>Agent</th><th>What happens</th>";
const FINISHED_HEAD: &str =
    "<th>Task</th><th>Status</th><th>Agent</th><th>Duration</th><th>Cost</th><th>Finished</th><th>Error</th>";
const REJECTED_HEAD: &str = "<th>File</th><th>Error</th><th>What to do</th><th>At</th>";

/// The opening of a row: what the live page needs to place and filter it.
fn tr(key: &str, section: &str, status: &str, agent: &str, role: Option<&str>, text: &str) -> String {
    format!(
        "<tr data-key=\"{}\" data-section=\"{section}\" data-status=\"{}\" data-agent=\"{}\" data-role=\"{}\" data-text=\"{}\">",
        esc(key),
        esc(status),
        esc(agent),
        esc(role.unwrap_or("")),
        esc(&text.to_lowercase())
    )
}

fn title_cell(id: &str, title: &str) -> String {
    let title = if title.trim().is_empty() { id } else { title };
    format!(
        "<td class=\"task\">{}<br><small class=\"id\">{}</small></td>",
        task_link(id, title),
        esc(id)
    )
}

pub fn running_row(app: &App, r: &Running, role: Option<&str>) -> String {
    let now = match &r.waiting_until {
        Some(u) => format!("waiting until {u}"),
        None => r.last_event.clone().unwrap_or_else(|| "starting".into()),
    };
    let attempt = match r.interruptions {
        0 => r.attempt.to_string(),
        n => format!("{} ({n} interrupted)", r.attempt),
    };
    let cancel = if app.read_only {
        String::new()
    } else {
        html::action(
            &format!("/tasks/{}/cancel", url_part(&r.id)),
            app.csrf(),
            "Cancel",
            "",
            "danger",
        )
    };
    format!(
        "{}{}<td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"now\">{}</td><td>{cancel}</td></tr>",
        tr(
            &r.id,
            "running",
            "running",
            &r.agent,
            role,
            &format!("{} {}", r.title, r.id)
        ),
        title_cell(&r.id, &r.title),
        esc(&r.agent),
        html::duration(r.elapsed_ms),
        esc(&attempt),
        r.turns,
        r.tool_calls,
        html::money(r.cost_usd),
        esc(&now)
    )
}

pub fn queued_row(app: &App, q: &QueuedFile, reason: &str) -> String {
    let cancel = if app.read_only {
        String::new()
    } else {
        html::action(
            &format!("/tasks/{}/cancel", url_part(&q.file)),
            app.csrf(),
            "Cancel",
            "",
            "danger",
        )
    };
    format!(
        "{}<td class=\"file\">{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"why\">{}</td><td>{cancel}</td></tr>",
        tr(
            &format!("q:{}", q.file),
            "queued",
            "queued",
            &q.agent,
            q.role.as_deref(),
            &format!("{} {}", q.title, q.file)
        ),
        esc(&q.file),
        esc(&q.title),
        q.priority,
        esc(&q.agent),
        esc(reason)
    )
}

fn interrupted_row(id: &str, title: &str, agent: &str) -> String {
    format!(
        "{}{}<td>{}</td><td>its daemon died or stopped: the next daemon (or a running one's recovery) runs it again</td></tr>",
        tr(id, "interrupted", "interrupted", agent, None, &format!("{title} {id}")),
        title_cell(id, title),
        esc(agent)
    )
}

pub fn finished_row(id: &str, r: &IndexRow) -> String {
    let status = r.status.name();
    let error = match r.error_kind {
        Some(k) => format!(
            "<span class=\"kind\">{}</span><br><small>{}</small>",
            esc(k.as_str()),
            esc(k.suggestion())
        ),
        None => String::new(),
    };
    format!(
        "{}{}<td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"err\">{error}</td></tr>",
        tr(
            id,
            "finished",
            status,
            &r.agent,
            r.role.as_deref(),
            &format!("{} {id} {}", r.title, r.source_file)
        ),
        title_cell(id, &r.title),
        html::status(status),
        esc(&r.agent),
        html::duration(Some(r.duration_ms)),
        html::money(r.cost_usd),
        esc(&r.finished_at)
    )
}

fn rejected_row(r: &Rejected) -> String {
    format!(
        "{}<td class=\"file\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        tr(&format!("r:{}", r.file), "rejected", "rejected", "", None, &r.file),
        esc(&r.moved_to),
        esc(&r.error),
        esc(&r.hint),
        esc(&r.at)
    )
}

/// `GET /rows?k=ID&k=q:FILE...`: the current rows of those tasks and files,
/// for the live page (at most 64; a row whose task or file is gone comes
/// back empty with `data-section="gone"`), then the daemons' line and the
/// finished counts.
pub async fn rows(
    State(app): State<Arc<App>>,
    Query(keys): Query<Vec<(String, String)>>,
) -> Result<Html<String>, Response> {
    let a = app.clone();
    let body = blocking(move || {
        let keys: Vec<String> = keys
            .into_iter()
            .filter(|(k, _)| k == "k")
            .map(|(_, v)| v)
            .take(64)
            .collect();
        let waiting = Waiting::of(&a.home, a.config());
        let mut out = String::from("<table><tbody>");
        for key in keys {
            out.push_str(&row_of(&a, &waiting, &key));
        }
        out.push_str("</tbody></table>");
        // The lines above the tables change with the rows: the page swaps them too.
        out.push_str(&daemon_line(&waiting.daemons));
        out.push_str(&finished_counts(&a.home));
        out
    })
    .await?;
    Ok(Html(body))
}

fn gone(key: &str) -> String {
    format!("<tr data-key=\"{}\" data-section=\"gone\"></tr>", esc(key))
}

fn row_of(app: &App, waiting: &Waiting, key: &str) -> String {
    let home = &app.home;
    if let Some(file) = key.strip_prefix("q:") {
        if !crate::store::layout::is_plain_name(file) || crate::task::parse::is_ignored_name(file) {
            return gone(key);
        }
        let limits = crate::task::parse::Limits::of(&waiting.config);
        let path = home.inbox().join(file);
        if !path.is_file() {
            return gone(key);
        }
        let spec = crate::intake::read_capped(&path, limits.max_bytes)
            .ok()
            .and_then(|b| crate::task::parse::parse(file, &b, &limits).ok());
        let q = QueuedFile {
            file: file.to_string(),
            title: spec.as_ref().map_or("(not yet valid)".into(), |s| s.title.clone()),
            priority: spec.as_ref().map_or(0, |s| s.priority),
            agent: spec.as_ref().map_or(String::new(), |s| s.agent.name().to_string()),
            role: spec.as_ref().and_then(|s| s.role.clone()),
            waiting_for: Vec::new(),
        };
        return queued_row(app, &q, &waiting.reason(home, file));
    }
    let Some(dir) = home.own_task_dir(key).map(TaskDir::new) else {
        return gone(key);
    };
    if let Some(r) = common::load_result(&dir) {
        return finished_row(key, &IndexRow::from_result(&r));
    }
    let worker = waiting
        .daemons
        .iter()
        .find(|d| d.running.iter().any(|id| id == key))
        .map(|d| d.worker.clone());
    if worker.is_none() && dir.is_orphan() {
        let plan = load_plan(&dir);
        let (title, agent) = plan.map_or((String::new(), String::new()), |p| (p.title, p.agent.name().into()));
        return interrupted_row(key, &title, &agent);
    }
    let r = crate::cli::status::running_task(&dir, key, worker.as_deref().unwrap_or(""));
    running_row(app, &r, role_of(home, key).as_deref())
}
