//! A task's page (`GET /tasks/<id>`): its plan, attempts, the agent's output
//! as `logs` renders it (followed live), the summary, the answer, the diff,
//! its parent and follow-ups, and the actions that fit its state. And
//! `GET /tasks/<id>/output`, the output from a byte offset on, for the live page.

use super::html::{self, esc, task_link, url_part};
use super::{App, blocking, error_page};
use crate::agents::{self, Output};
use crate::cli::common::{self, Found, load_plan, load_progress, load_result};
use crate::store::index;
use crate::store::record::{AttemptRecord, ResultRecord, Status};
use crate::store::{Home, TaskDir};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;
use std::fmt::Write;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

/// The most of a file (output, diff, summary) a page shows at once.
const SHOWN: u64 = 512 * 1024;

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Notice {
    /// What an action just did (a fixed word, turned into a fixed sentence).
    done: String,
    /// For `done=new`: the task it made.
    id: String,
}

pub async fn page(
    State(app): State<Arc<App>>,
    Path(key): Path<String>,
    Query(notice): Query<Notice>,
) -> Result<Response, Response> {
    let a = app.clone();
    let rendered = blocking(move || render(&a, &key, &notice)).await?;
    match rendered {
        Ok((title, body)) => Ok(Html(app.page(&title, "").render(&body)).into_response()),
        Err(e) => Err(error_page(StatusCode::NOT_FOUND, &e)),
    }
}

fn notice_text(n: &Notice) -> Option<String> {
    let id = if crate::store::layout::is_plain_name(&n.id) {
        n.id.as_str()
    } else {
        ""
    };
    let text = match n.done.as_str() {
        "cancel" => "Cancel requested: the daemon stops the agent's process tree within a second.".into(),
        "dequeued" => "Taken off the queue (kept in inbox/cancelled/).".into(),
        "apply" => "Applied to the workdir.".into(),
        "retry" => format!("Queued a new run: {id}."),
        "resume" => format!("Queued the resumed task: {id}."),
        "reply" => format!("Queued the follow-up: {id}."),
        _ => return None,
    };
    Some(text)
}

fn render(app: &App, key: &str, notice: &Notice) -> Result<(String, String), String> {
    let home = &app.home;
    let (id, dir) = match common::resolve(home, key).map_err(|e| e.0)? {
        Found::Queued { file } => return Ok((file.clone(), queued(app, &file))),
        Found::Task { id, dir } => (id, dir),
    };
    let plan = load_plan(&dir);
    let result = load_result(&dir);
    let progress = load_progress(&dir);
    let title = result
        .as_ref()
        .map(|r| r.title.clone())
        .or_else(|| plan.as_ref().map(|p| p.title.clone()))
        .unwrap_or_else(|| id.clone());
    let status = match (&result, &progress) {
        (Some(r), _) => r.status.name(),
        (None, _) if dir.is_orphan() && !running_now(home, &id) => "interrupted",
        _ => "running",
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "<article id=\"task\" data-id=\"{}\" data-status=\"{}\"><h1>{}</h1><p class=\"id\">{} {}</p>",
        esc(&id),
        esc(status),
        esc(&title),
        esc(&id),
        html::status(status)
    );
    if let Some(n) = notice_text(notice) {
        let _ = write!(out, "<p class=\"notice\">{}</p>", esc(&n));
    }
    facts(&mut out, &id, plan.as_ref(), result.as_ref(), progress.as_ref());
    if let Some(e) = result.as_ref().and_then(|r| r.error.as_ref()) {
        let _ = write!(
            out,
            "<div class=\"error\"><strong>{}</strong>: {}<br><em>{}</em></div>",
            esc(e.kind.as_str()),
            esc(&e.message),
            esc(&e.suggestion)
        );
    }
    if !app.read_only {
        actions(app, &mut out, &id, &dir, plan.as_ref(), result.as_ref());
    }
    if let Some(r) = &result {
        if !r.output.is_empty() {
            let _ = write!(out, "<h2>Answer</h2><pre class=\"answer\">{}</pre>", esc(&r.output));
        }
        let diff = read_head(&dir.changes_diff(), SHOWN);
        if !diff.is_empty() {
            out.push_str("<h2>Changes</h2>");
            out.push_str(&html::diff(&String::from_utf8_lossy(&diff)));
        }
        if let Ok(s) = crate::store::read::read_text(&home.summary_file(&id), SHOWN) {
            let _ = write!(out, "<h2>Summary</h2><pre class=\"summary\">{}</pre>", esc(&s));
        }
    }
    output_section(&mut out, &dir, plan.as_ref(), result.as_ref(), progress.as_ref());
    attempts(
        &mut out,
        result
            .as_ref()
            .map(|r| &r.attempts[..])
            .or(progress.as_ref().map(|p| &p.attempts[..])),
    );
    if let Some(p) = &plan {
        plan_section(&mut out, p);
    }
    family(&mut out, home, &id, plan.as_ref());
    if let Some(r) = &result
        && let Ok(text) = serde_json::to_string_pretty(r)
    {
        let _ = write!(
            out,
            "<details><summary>result.json</summary><pre class=\"json\">{}</pre></details>",
            esc(&text)
        );
    }
    out.push_str("</article>");
    Ok((title, out))
}

fn running_now(home: &Home, id: &str) -> bool {
    crate::store::daemons::live(home)
        .iter()
        .any(|d| d.running.iter().any(|r| r == id))
}

fn queued(app: &App, file: &str) -> String {
    let path = app.home.inbox().join(file);
    let text = read_head(&path, SHOWN);
    let mut out = format!(
        "<article id=\"task\" data-file=\"{}\" data-status=\"queued\"><h1>{}</h1><p>{} in the inbox.</p>",
        esc(file),
        esc(file),
        html::status("queued")
    );
    if !app.read_only {
        out.push_str(&html::action(
            &format!("/tasks/{}/cancel", url_part(file)),
            app.csrf(),
            "Take off the queue",
            "",
            "danger",
        ));
    }
    let _ = write!(
        out,
        "<h2>The file</h2><pre class=\"file\">{}</pre></article>",
        esc(&String::from_utf8_lossy(&text))
    );
    out
}

fn facts(
    out: &mut String,
    id: &str,
    plan: Option<&crate::plan::Plan>,
    result: Option<&ResultRecord>,
    progress: Option<&crate::store::record::ProgressRecord>,
) {
    let mut rows: Vec<(&str, String)> = Vec::new();
    if let Some(p) = plan {
        rows.push(("agent", p.agent.name().into()));
        rows.push(("workdir", p.workdir.display().to_string()));
        rows.push(("file", p.source_file.clone()));
        if let Some(role) = &p.role {
            rows.push(("role", role.clone()));
        }
    }
    if let Some(r) = result {
        rows.push(("started", r.started_at.clone()));
        rows.push((
            "finished",
            format!("{} ({})", r.finished_at, html::duration(Some(r.duration_ms))),
        ));
        rows.push(("turns", r.turns.to_string()));
        rows.push(("tool calls", r.tool_calls.to_string()));
        rows.push(("cost", html::money(r.cost_usd)));
        if let Some(s) = &r.session_id {
            rows.push(("session", s.clone()));
        }
        if !r.files_changed.is_empty() {
            rows.push(("files changed", r.files_changed.join(", ")));
        }
    } else if let Some(p) = progress {
        rows.push(("attempt", p.attempt.to_string()));
        rows.push(("turns", p.turns.to_string()));
        rows.push(("tool calls", p.tool_calls.to_string()));
        rows.push(("cost", html::money(p.cost_usd)));
        if let Some(e) = &p.last_event {
            rows.push(("now", e.clone()));
        }
        if let Some(u) = &p.waiting_until {
            rows.push(("waiting until", u.clone()));
        }
    }
    let _ = write!(out, "<dl class=\"facts\" id=\"facts-{}\">", esc(id));
    for (k, v) in rows {
        let _ = write!(out, "<dt>{k}</dt><dd>{}</dd>", esc(&v));
    }
    out.push_str("</dl>");
}

fn actions(
    app: &App,
    out: &mut String,
    id: &str,
    dir: &TaskDir,
    plan: Option<&crate::plan::Plan>,
    result: Option<&ResultRecord>,
) {
    let csrf = app.csrf();
    let path = |verb: &str| format!("/tasks/{}/{verb}", url_part(id));
    out.push_str("<div class=\"actions\">");
    match result {
        None => out.push_str(&html::action(&path("cancel"), csrf, "Cancel", "", "danger")),
        Some(r) => {
            if plan.is_some() {
                out.push_str(&html::action(&path("retry"), csrf, "Retry", "", ""));
            }
            if r.status != Status::Succeeded && plan.is_some() {
                out.push_str(&html::action(&path("resume"), csrf, "Resume", "", ""));
            }
            if r.isolation.as_ref().is_some_and(|s| !s.committed) {
                let events = app.config().events;
                let verdict = match crate::cli::apply::apply_task(&app.home, &events, id, dir, true) {
                    Ok(crate::cli::apply::Applied::Done { .. }) => "the diff applies cleanly to the workdir".into(),
                    Ok(crate::cli::apply::Applied::Nothing) => "it changed nothing".into(),
                    Ok(crate::cli::apply::Applied::Refused(why)) => why,
                    Err(e) => e.to_string(),
                };
                out.push_str(&html::action(&path("apply"), csrf, "Apply", "", "primary"));
                let _ = write!(out, "<p class=\"verdict\">apply: {}</p>", esc(&verdict));
            }
        }
    }
    out.push_str("</div>");
    // Reply only where a session can go on (the CLI's `reply` says why not elsewhere).
    let resumable = plan.is_some_and(|p| agents::of(p.agent).sessions() == agents::Sessions::Resumable);
    if result.is_some() && resumable {
        out.push_str(&html::action(
            &path("reply"),
            csrf,
            "Reply",
            "<label>Follow-up in the same session<textarea name=\"text\" rows=\"3\" required></textarea></label>",
            "reply",
        ));
    }
}

/// The latest attempt's output, rendered, with what the live page needs to go on.
fn output_section(
    out: &mut String,
    dir: &TaskDir,
    plan: Option<&crate::plan::Plan>,
    result: Option<&ResultRecord>,
    progress: Option<&crate::store::record::ProgressRecord>,
) {
    let attempt = result
        .map(|r| r.attempts.len() as u32)
        .or(progress.map(|p| p.attempt))
        .unwrap_or(1)
        .max(1);
    let path = dir.attempt_out(attempt);
    let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(SHOWN);
    let (text, next) = rendered(dir, plan, attempt, from, SHOWN, result.is_some());
    let cut = if from > 0 {
        format!("<p class=\"more\">the first {} KiB are not shown</p>", from / 1024)
    } else {
        String::new()
    };
    let _ = write!(
        out,
        "<h2>Output <small>attempt {attempt}</small></h2>{cut}<pre id=\"output\" class=\"output\" data-attempt=\"{attempt}\" data-next=\"{next}\" data-done=\"{}\">{}</pre>",
        result.is_some(),
        esc(&text)
    );
}

/// The output of `attempt` from byte `from`, rendered as `logs` does, up to
/// the last whole line within `max` bytes; and the offset after it. A last
/// line without its newline is shown once the attempt is `over`, and a line
/// longer than `max` is shown in pieces (else the page would wait for it forever).
fn rendered(
    dir: &TaskDir,
    plan: Option<&crate::plan::Plan>,
    attempt: u32,
    from: u64,
    max: u64,
    over: bool,
) -> (String, u64) {
    let Ok(mut f) = crate::events::open_shared(&dir.attempt_out(attempt)) else {
        return (String::new(), from);
    };
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_err() || f.take(max).read_to_end(&mut buf).is_err() {
        return (String::new(), from);
    }
    // Only whole lines: the rest is read next time.
    let whole = match buf.iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        None if over || buf.len() as u64 == max => buf.len(),
        None => 0,
    };
    let whole = if over && (buf.len() as u64) < max {
        buf.len()
    } else {
        whole
    };
    buf.truncate(whole);
    let agent = plan
        .map(|p| agents::of(p.agent))
        .filter(|a| a.output() == Output::Records);
    let mut text = String::new();
    for line in buf.split(|&b| b == b'\n') {
        let shown = match agent {
            Some(a) => crate::cli::logs::render(a, line),
            None => Some(String::from_utf8_lossy(line).into_owned()),
        };
        if let Some(s) = shown {
            text.push_str(&s);
            text.push('\n');
        }
    }
    if agent.is_none() {
        text.truncate(text.trim_end_matches('\n').len());
        if !text.is_empty() {
            text.push('\n');
        }
    }
    (text, from + whole as u64)
}

fn attempts(out: &mut String, attempts: Option<&[AttemptRecord]>) {
    let Some(attempts) = attempts.filter(|a| !a.is_empty()) else {
        return;
    };
    out.push_str(
        "<h2>Attempts</h2><table><thead><tr><th>#</th><th>Step</th><th>Agent</th><th>Started</th><th>Duration</th>\
         <th>Exit</th><th>Error</th><th>Cut short</th></tr></thead><tbody>",
    );
    for a in attempts {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            a.n,
            a.step,
            a.agent.map_or("–", |k| k.name()),
            esc(&a.started_at),
            html::duration(a.duration_ms),
            a.exit_code.map_or("–".into(), |c| c.to_string()),
            esc(&a
                .error
                .as_ref()
                .map(|e| format!("{}: {}", e.kind.as_str(), e.message))
                .unwrap_or_default()),
            esc(&a.cut_short.as_ref().map(|c| format!("{c:?}")).unwrap_or_default())
        );
    }
    out.push_str("</tbody></table>");
}

fn plan_section(out: &mut String, p: &crate::plan::Plan) {
    let argv = std::iter::once(p.program.as_str())
        .chain(p.args.iter().map(String::as_str))
        .map(esc)
        .collect::<Vec<_>>()
        .join("</code> <code>");
    let mut rows: Vec<(&str, String)> = vec![
        ("tools", p.allowed_tools.join(", ")),
        ("max turns", p.max_turns.map_or("–".into(), |n| n.to_string())),
        ("max tool calls", p.max_tool_calls.map_or("–".into(), |n| n.to_string())),
        ("budget", p.budget_usd.map_or("–".into(), |b| format!("${b:.2}"))),
        ("timeout", humantime::format_duration(p.timeout.0).to_string()),
        ("attempts", p.max_attempts.to_string()),
        (
            "mode",
            format!("{:?}, isolation {:?}", p.mode, p.isolation).to_lowercase(),
        ),
        ("parsed by", p.parsed_by.clone()),
    ];
    if !p.tools_dropped.is_empty() {
        rows.push(("tools dropped", p.tools_dropped.join(", ")));
    }
    if !p.success_criteria.is_empty() {
        rows.push(("success criteria", p.success_criteria.join("; ")));
    }
    let _ = write!(
        out,
        "<h2>Plan</h2><p class=\"argv\"><code>{argv}</code></p><dl class=\"facts\">"
    );
    for (k, v) in rows {
        let _ = write!(out, "<dt>{k}</dt><dd>{}</dd>", esc(&v));
    }
    out.push_str("</dl>");
    if !p.steps.is_empty() {
        out.push_str("<ol class=\"steps\">");
        for s in &p.steps {
            let _ = write!(out, "<li>{}</li>", esc(s));
        }
        out.push_str("</ol>");
    }
    let _ = write!(
        out,
        "<details><summary>Prompt</summary><pre class=\"prompt\">{}</pre></details>",
        esc(&p.prompt)
    );
}

fn family(out: &mut String, home: &Home, id: &str, plan: Option<&crate::plan::Plan>) {
    let parent = plan.and_then(|p| p.parent_task_id.clone());
    let children = index::after(home, id, |_, r| r.parent_task_id.as_deref() == Some(id));
    if parent.is_none() && children.is_empty() {
        return;
    }
    out.push_str("<h2>Related</h2><ul class=\"family\">");
    if let Some(p) = parent.filter(|p| crate::store::layout::is_plain_name(p)) {
        let _ = write!(out, "<li>follows up {}</li>", task_link(&p, &p));
    }
    for (cid, row) in children.iter().rev() {
        let _ = write!(
            out,
            "<li>followed up by {} {}</li>",
            task_link(cid, &row.title),
            html::status(row.status.name())
        );
    }
    out.push_str("</ul>");
}

fn read_head(path: &std::path::Path, max: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Ok(f) = crate::store::read::open_regular(path) {
        let _ = f.take(max).read_to_end(&mut buf);
    }
    buf
}

#[derive(Debug, serde::Deserialize)]
pub struct From {
    attempt: u32,
    #[serde(default)]
    from: u64,
}

/// `GET /tasks/<id>/output?attempt=N&from=BYTES`: `{text, next, done}`;
/// `done` once the attempt is over (a later one began, or the task ended).
pub async fn output_route(app: Arc<App>, key: String, q: From) -> Result<Response, Response> {
    blocking(move || {
        let Some(dir) = app.home.own_task_dir(&key).map(TaskDir::new) else {
            return error_page(StatusCode::NOT_FOUND, "no such task");
        };
        let plan = load_plan(&dir);
        let over = dir.result().exists() || load_progress(&dir).is_some_and(|p| p.attempt > q.attempt);
        let (text, next) = rendered(&dir, plan.as_ref(), q.attempt.max(1), q.from, SHOWN, over);
        // Over, and nothing more to read: the page stops asking.
        let done = over && text.is_empty();
        // As the first render shows it: terminal escapes as text.
        let text = crate::redact::escape_controls(&text).into_owned();
        Json(json!({"text": text, "next": next, "done": done, "latest": load_progress(&dir).map(|p| p.attempt)}))
            .into_response()
    })
    .await
}

pub async fn output(
    State(app): State<Arc<App>>,
    Path(key): Path<String>,
    Query(q): Query<From>,
) -> Result<Response, Response> {
    output_route(app, key, q).await
}
