//! What the page may change, each through the verb's own function: cancel,
//! retry, resume, reply, apply, a new task from the form, and task files
//! dropped on the page (checked by the daemon's parser, written into the inbox
//! atomically, never over another file). Every form carries the CSRF token;
//! the guard has already refused foreign origins and `--read-only`.

use super::html::{self, esc, url_part};
use super::{App, blocking, error_page};
use crate::cli::common::UsageError;
use axum::extract::{Form, Multipart, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The smallest limit on a request body (a dropped file with its form): the
/// server allows `max_task_bytes` and a little more when that is larger; a
/// larger file is refused by the parser's limit anyway, and this keeps a huge
/// upload from being read.
pub const MAX_BODY: usize = 4 << 20;

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Token {
    csrf: String,
}

/// A form that carries this process's CSRF token. Anything else (no form, a
/// form without the token, a stale token) is refused with 403 before the
/// handler runs.
pub struct Checked<T>(pub T);

pub trait WithCsrf {
    fn csrf(&self) -> &str;
}

impl<T> axum::extract::FromRequest<Arc<App>> for Checked<T>
where
    T: serde::de::DeserializeOwned + WithCsrf + Send,
{
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, app: &Arc<App>) -> Result<Self, Response> {
        let Form(form) = Form::<T>::from_request(request, app).await.map_err(|_| {
            error_page(
                StatusCode::FORBIDDEN,
                "refused: this request carries no form with the page's token",
            )
        })?;
        app.csrf_ok(form.csrf())?;
        Ok(Checked(form))
    }
}

impl WithCsrf for Token {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// An action's outcome as a response: a redirect to the page that shows it,
/// or a page that says why not.
fn refused(e: &anyhow::Error) -> Response {
    let code = if e.downcast_ref::<UsageError>().is_some() {
        StatusCode::CONFLICT
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    error_page(code, &format!("{e:#}"))
}

fn to_task(id: &str, done: &str, new: Option<&str>) -> Response {
    let extra = new.map_or(String::new(), |n| format!("&id={}", url_part(n)));
    Redirect::to(&format!("/tasks/{}?done={done}{extra}", url_part(id))).into_response()
}

pub async fn cancel(State(app): State<Arc<App>>, Path(key): Path<String>, Checked(_): Checked<Token>) -> Response {
    let a = app.clone();
    let done = blocking(move || crate::cli::cancel::request(&a.home, &key)).await;
    use crate::cli::cancel::Requested;
    match done {
        Err(r) => r,
        Ok(Err(e)) => refused(&e),
        Ok(Ok(Requested::Dequeued { .. })) => Redirect::to("/?done=dequeued").into_response(),
        Ok(Ok(Requested::Asked { id, .. })) => to_task(&id, "cancel", None),
        Ok(Ok(Requested::Finished { id, status })) => error_page(
            StatusCode::CONFLICT,
            &format!("{id} already finished ({}): nothing to cancel", status.name()),
        ),
    }
}

/// Writes a follow-up task made by `make` and shows its parent with a notice.
async fn follow_up(
    app: Arc<App>,
    key: String,
    done: &'static str,
    make: impl FnOnce(&crate::store::Home, &str) -> Result<crate::cli::followup::FollowUp, UsageError> + Send + 'static,
) -> Response {
    let a = app.clone();
    let written = blocking(move || -> anyhow::Result<(String, String)> {
        let f = make(&a.home, &key)?;
        let config = a.loaded().map_err(|e| UsageError(e.to_string()))?.config;
        let id = crate::followups::write_task(&a.home, &config, f.fields).map_err(|e| match e {
            crate::followups::WriteError::Invalid(..) => anyhow::Error::from(UsageError(e.to_string())),
            crate::followups::WriteError::Io(e) => e.into(),
        })?;
        Ok((f.parent, id))
    })
    .await;
    match written {
        Err(r) => r,
        Ok(Err(e)) => refused(&e),
        Ok(Ok((parent, id))) => to_task(&parent, done, Some(&id)),
    }
}

pub async fn retry(State(app): State<Arc<App>>, Path(key): Path<String>, Checked(_): Checked<Token>) -> Response {
    follow_up(app, key, "retry", |home, key| {
        let (id, dir) = crate::cli::common::resolve_task(home, key)?;
        let plan = crate::cli::common::load_plan(&dir)
            .ok_or_else(|| UsageError(format!("{id} has no plan.json: it never started, nothing to retry")))?;
        Ok(crate::cli::followup::FollowUp {
            fields: crate::followups::retry_fields(&id, &plan),
            parent: id,
            session: None,
            start_step: None,
        })
    })
    .await
}

pub async fn resume(State(app): State<Arc<App>>, Path(key): Path<String>, Checked(_): Checked<Token>) -> Response {
    follow_up(app, key, "resume", |home, key| {
        crate::cli::followup::resume_task(home, key)
    })
    .await
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct ReplyForm {
    csrf: String,
    text: String,
}

pub async fn reply(State(app): State<Arc<App>>, Path(key): Path<String>, Checked(f): Checked<ReplyForm>) -> Response {
    follow_up(app, key, "reply", move |home, key| {
        crate::cli::followup::reply_task(home, key, &f.text)
    })
    .await
}

pub async fn apply(State(app): State<Arc<App>>, Path(key): Path<String>, Checked(_): Checked<Token>) -> Response {
    use crate::cli::apply::Applied;
    let a = app.clone();
    let done = blocking(move || -> anyhow::Result<(String, Applied)> {
        let (id, dir) = crate::cli::common::resolve_task(&a.home, &key)?;
        let events = a.config().events;
        Ok((
            id.clone(),
            crate::cli::apply::apply_task(&a.home, &events, &id, &dir, false)?,
        ))
    })
    .await;
    match done {
        Err(r) => r,
        Ok(Err(e)) => refused(&e),
        Ok(Ok((id, Applied::Done { .. }))) => to_task(&id, "apply", None),
        Ok(Ok((id, Applied::Nothing))) => error_page(
            StatusCode::CONFLICT,
            &format!("{id} changed nothing: there is nothing to apply"),
        ),
        Ok(Ok((_, Applied::Refused(why)))) => error_page(StatusCode::CONFLICT, &why),
    }
}

pub async fn new_form(State(app): State<Arc<App>>) -> Response {
    if app.read_only {
        return Redirect::to("/").into_response();
    }
    let a = app.clone();
    let config = match blocking(move || a.config()).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let options = |items: Vec<String>, default: &str| {
        let mut s = String::new();
        for i in items {
            let sel = if i == default { " selected" } else { "" };
            s.push_str(&format!("<option{sel}>{}</option>", esc(&i)));
        }
        s
    };
    let agents = options(
        crate::config::AgentKind::ALL
            .iter()
            .map(|a| a.name().to_string())
            .collect(),
        config.default_agent.name(),
    );
    let roles = options(config.roles.keys().cloned().collect(), "");
    let csrf = esc(app.csrf());
    let body = format!(
        "<h1>New task</h1>\
         <form method=\"post\" action=\"/new\" class=\"new\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label>Title <input name=\"title\" placeholder=\"default: the prompt's first line\"></label>\
         <label>Prompt <textarea name=\"prompt\" rows=\"8\" placeholder=\"what the agent should do\"></textarea></label>\
         <div class=\"row\"><label>Agent <select name=\"agent\">{agents}</select></label>\
         <label>Role <select name=\"role\"><option value=\"\">none</option>{roles}</select></label>\
         <label>Priority <input name=\"priority\" placeholder=\"normal\"></label></div>\
         <label>Workdir <input name=\"workdir\" placeholder=\"default: the config's default_workdir\"></label>\
         <label>Command <input name=\"command\" placeholder=\"for the command agent: the shell command\"></label>\
         <label>Tools <input name=\"tools\" placeholder=\"comma-separated, e.g. Read, Grep (default: the agent's)\"></label>\
         <div class=\"row\"><label>Max turns <input name=\"max_turns\" inputmode=\"numeric\"></label>\
         <label>Budget (USD) <input name=\"budget_usd\" inputmode=\"decimal\"></label>\
         <label>Timeout <input name=\"timeout\" placeholder=\"e.g. 20m\"></label></div>\
         <button type=\"submit\" class=\"primary\">Queue it</button></form>\
         <h2>Or drop task files</h2>\
         <form method=\"post\" action=\"/upload\" enctype=\"multipart/form-data\" class=\"upload\" id=\"upload\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <div class=\"drop\" id=\"drop\">Drop .md, .txt, .yaml or .json task files here, or \
         <input type=\"file\" name=\"file\" multiple accept=\".md,.markdown,.txt,.yaml,.yml,.json\"></div>\
         <button type=\"submit\">Queue the files</button></form>"
    );
    Html(app.page("New task", "New task").render(&body)).into_response()
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct NewTask {
    csrf: String,
    title: String,
    prompt: String,
    agent: String,
    role: String,
    priority: String,
    workdir: String,
    command: String,
    tools: String,
    max_turns: String,
    budget_usd: String,
    timeout: String,
}

impl WithCsrf for NewTask {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl WithCsrf for ReplyForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl NewTask {
    /// The task file's fields: what the form filled in, nothing else.
    fn fields(&self) -> Result<Map<String, Value>, UsageError> {
        let mut f = Map::new();
        for (key, value) in [
            ("title", &self.title),
            ("prompt", &self.prompt),
            ("agent", &self.agent),
            ("role", &self.role),
            ("workdir", &self.workdir),
            ("command", &self.command),
            ("timeout", &self.timeout),
        ] {
            if !value.trim().is_empty() {
                f.insert(key.into(), json!(value.trim()));
            }
        }
        if let Some(p) = Some(self.priority.trim()).filter(|p| !p.is_empty()) {
            f.insert(
                "priority".into(),
                p.parse::<i64>().map_or_else(|_| json!(p), |n| json!(n)),
            );
        }
        let tools: Vec<&str> = self.tools.split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
        if !tools.is_empty() {
            f.insert("allowed_tools".into(), json!(tools));
        }
        if let Some(n) = Some(self.max_turns.trim()).filter(|n| !n.is_empty()) {
            let n: u32 = n
                .parse()
                .map_err(|_| UsageError(format!("max turns `{n}` is not a whole number")))?;
            f.insert("max_turns".into(), json!(n));
        }
        if let Some(b) = Some(self.budget_usd.trim().trim_start_matches('$')).filter(|b| !b.is_empty()) {
            let b: f64 = b
                .parse()
                .map_err(|_| UsageError(format!("budget `{b}` is not a number of dollars")))?;
            f.insert("budget_usd".into(), json!(b));
        }
        if !f.contains_key("prompt") && !f.contains_key("command") {
            return Err(UsageError(
                "write a prompt (or, for the command agent, a command)".into(),
            ));
        }
        Ok(f)
    }
}

pub async fn submit(State(app): State<Arc<App>>, Checked(form): Checked<NewTask>) -> Response {
    let a = app.clone();
    let written = blocking(move || -> anyhow::Result<String> {
        let fields = form.fields()?;
        let config = a.loaded().map_err(|e| UsageError(e.to_string()))?.config;
        crate::followups::write_task(&a.home, &config, fields).map_err(|e| match e {
            crate::followups::WriteError::Invalid(..) => UsageError(e.to_string()).into(),
            crate::followups::WriteError::Io(e) => e.into(),
        })
    })
    .await;
    match written {
        Err(r) => r,
        Ok(Err(e)) => refused(&e),
        Ok(Ok(id)) => Redirect::to(&format!("/tasks/{}.json", url_part(&id))).into_response(),
    }
}

/// `POST /upload`: each file checked as the daemon would check it, then
/// written under a hidden name and moved into the inbox without replacing a
/// file there (a second file of one name gets a distinct name).
pub async fn upload(State(app): State<Arc<App>>, mut parts: Multipart) -> Response {
    let mut csrf = String::new();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    loop {
        match parts.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or("").to_string();
                let file_name = field.file_name().map(str::to_string);
                let Ok(bytes) = field.bytes().await else {
                    return error_page(StatusCode::BAD_REQUEST, "the upload was cut short; try again");
                };
                match (name.as_str(), file_name) {
                    ("csrf", _) => csrf = String::from_utf8_lossy(&bytes).into_owned(),
                    ("file", Some(n)) if !n.is_empty() => files.push((n, bytes.to_vec())),
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(e) => return error_page(StatusCode::BAD_REQUEST, &format!("the upload could not be read: {e}")),
        }
    }
    if let Err(r) = app.csrf_ok(&csrf) {
        return r;
    }
    if files.is_empty() {
        return error_page(StatusCode::BAD_REQUEST, "no file was sent: choose or drop a task file");
    }
    let a = app.clone();
    let done = blocking(move || {
        files
            .into_iter()
            .map(|(n, b)| (n.clone(), queue_file(&a, &n, &b)))
            .collect::<Vec<_>>()
    })
    .await;
    let done = match done {
        Ok(d) => d,
        Err(r) => return r,
    };
    let mut body = String::from("<h1>Dropped files</h1><ul class=\"uploaded\">");
    let mut all_ok = true;
    for (name, outcome) in &done {
        match outcome {
            Ok(kept) => body.push_str(&format!(
                "<li>{} queued as {}</li>",
                esc(name),
                html::task_link(kept, &format!("inbox/{kept}"))
            )),
            Err(why) => {
                all_ok = false;
                body.push_str(&format!(
                    "<li class=\"error\">{}: not queued: {}</li>",
                    esc(name),
                    esc(why)
                ));
            }
        }
    }
    body.push_str("</ul><p><a href=\"/\">Back to the board</a> · <a href=\"/new\">drop more</a></p>");
    let code = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (code, Html(app.page("Dropped files", "New task").render(&body))).into_response()
}

/// Checks one dropped file and moves it into the inbox; its name there.
fn queue_file(app: &App, name: &str, bytes: &[u8]) -> Result<String, String> {
    // Browsers send the base name; anything else is refused, not cleaned up.
    if !crate::store::layout::is_plain_name(name) || crate::task::parse::is_ignored_name(name) {
        return Err("the file name must be a plain name that does not start with `.` or `~`".into());
    }
    let config = app.loaded().map_err(|e| e.to_string())?.config;
    if bytes.len() as u64 > config.max_task_bytes {
        return Err(format!(
            "it is larger than max_task_bytes ({} bytes)",
            config.max_task_bytes
        ));
    }
    crate::task::check(name, bytes, &config, app.home.root()).map_err(|r| format!("{} ({})", r.error, r.hint))?;
    let inbox = app.home.inbox();
    std::fs::create_dir_all(&inbox).map_err(|e| e.to_string())?;
    let tmp = inbox.join(format!(".upload-{}.tmp", ulid::Ulid::generate()));
    let written = (|| -> std::io::Result<String> {
        use std::io::Write;
        let mut f = std::fs::File::create_new(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        crate::store::keep::move_into(&tmp, &inbox, name)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(|e| e.to_string())
}

/// `GET /login`, or `GET /login?token=...` (the link a dashboard prints at
/// its start): the token logs in at once.
pub async fn login_form(State(app): State<Arc<App>>, Query(f): Query<Login>) -> Response {
    if !f.token.is_empty() {
        return login(State(app), Form(f)).await;
    }
    Html(login_page(None)).into_response()
}

fn login_page(error: Option<&str>) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Log in · orchestrator</title>\
         <link rel=\"stylesheet\" href=\"/assets/app.css\"></head><body><main class=\"login\">\
         <h1>orchestrator</h1>{}<form method=\"post\" action=\"/login\">\
         <label>Access token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" autofocus></label>\
         <button type=\"submit\" class=\"primary\">Log in</button></form></main></body></html>",
        error.map_or(String::new(), |e| format!("<p class=\"error\">{}</p>", esc(e)))
    )
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Login {
    token: String,
}

/// Failed logins wait their turn and a second each: a token cannot be
/// guessed by asking many times at once.
static FAILED_LOGINS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn login(State(app): State<Arc<App>>, Form(f): Form<Login>) -> Response {
    if !app.token.matches(f.token.trim()) {
        let _turn = FAILED_LOGINS.lock().await;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        return (StatusCode::FORBIDDEN, Html(login_page(Some("That is not the token.")))).into_response();
    }
    let mut r = Redirect::to("/").into_response();
    if let Ok(v) = app.token.cookie().parse() {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}
