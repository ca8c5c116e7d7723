//! `orchestrator dashboard`: the home in a browser.
//!
//! A process of its own (the daemon's memory and speed stay as they are) that
//! reads the home as every verb does, so it works with or without a daemon
//! running, and changes it only through the verbs' own functions (cancel,
//! retry, resume, reply, apply, submit). Pages are rendered on the server from
//! escaped text ([`html`]); one stylesheet and one small script are embedded in
//! the binary, and the pages work without the script (forms post, pages
//! reload). Live updates come from the event log ([`live`]), not from
//! re-reading the results.

// A handler's error is the response it sends (axum's `Response`, 128 bytes):
// boxing it would only add an allocation to every refusal.
#![allow(clippy::result_large_err)]

mod actions;
mod board;
mod guard;
mod html;
mod live;
mod stats;
mod task;

use crate::cli::common::UsageError;
use crate::config::Config;
use crate::store::Home;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  orchestrator dashboard --open\n  \
    orchestrator dashboard --read-only --listen 127.0.0.1:9000\n  \
    ORCH_DASHBOARD_TOKEN=... orchestrator dashboard --listen 0.0.0.0:8765 --set dashboard.token_env=ORCH_DASHBOARD_TOKEN")]
pub struct Args {
    /// ADDRESS:PORT to serve on (default: dashboard.listen, 127.0.0.1:8765).
    /// An address other than loopback needs an access token (dashboard.token_env).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Open the page in the default browser once it is served.
    #[arg(long)]
    pub open: bool,
    /// Show everything, change nothing: every POST is answered 405.
    #[arg(long)]
    pub read_only: bool,
}

/// What every handler shares.
pub struct App {
    pub home: Home,
    config_file: Option<std::path::PathBuf>,
    set: Vec<(String, String)>,
    pub read_only: bool,
    /// Every form carries it back; made fresh at each start.
    csrf: String,
    token: guard::Token,
    hosts: guard::Hosts,
    pub live: live::Hub,
    /// `doctor`'s checks and when they were made: they run agents'
    /// `--version` and may ask the mediator, so not at every look.
    checked: std::sync::Mutex<Option<(std::time::Instant, Vec<crate::cli::doctor::Check>)>>,
}

impl App {
    /// The config as it is now (it may change while the page is open).
    pub fn loaded(&self) -> Result<crate::config::Loaded, crate::config::ConfigError> {
        crate::config::load(
            &self.home.config_file(),
            self.config_file.as_deref(),
            std::env::vars(),
            &self.set,
        )
    }

    pub fn config(&self) -> Config {
        self.loaded().map(|l| l.config).unwrap_or_default()
    }

    pub fn page<'a>(&'a self, title: &'a str, nav: &'a str) -> html::Page<'a> {
        html::Page {
            title,
            csrf: &self.csrf,
            read_only: self.read_only,
            nav,
        }
    }

    /// `doctor`'s checks (made without writing anything), at most every 30 s.
    pub fn health_checks(&self) -> Vec<crate::cli::doctor::Check> {
        let mut cached = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, checks)) = cached.as_ref()
            && at.elapsed() < std::time::Duration::from_secs(30)
        {
            return checks.clone();
        }
        let checks = crate::cli::doctor::checks(&self.home, self.loaded(), false);
        *cached = Some((std::time::Instant::now(), checks.clone()));
        checks
    }

    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// The form's CSRF token is this process's: else 403.
    pub fn csrf_ok(&self, given: &str) -> Result<(), Response> {
        if guard::same(given.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err((
                StatusCode::FORBIDDEN,
                "refused: the form's token is missing or stale (reload the page and try again)\n",
            )
                .into_response())
        }
    }
}

/// Runs `work` (file reads and writes) off the async threads.
///
/// What a page parsed (a 100,000-row index for the stats) is given back to
/// the OS once it is rendered: the dashboard idles small.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Response> {
    let done = tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| error_page(StatusCode::INTERNAL_SERVER_ERROR, &format!("internal error: {e}")));
    // After the answer is ready, not before it: the trim costs the page nothing.
    tokio::task::spawn_blocking(crate::memory::release_freed);
    done
}

/// A plain page that says what went wrong (escaped).
pub fn error_page(code: StatusCode, message: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{code}</title>\
         <link rel=\"stylesheet\" href=\"/assets/app.css\"></head><body><main><h1>{code}</h1>\
         <p class=\"error\">{}</p><p><a href=\"/\">Back to the board</a></p></main></body></html>",
        html::esc(message)
    );
    (code, Html(body)).into_response()
}

pub fn run(cli: &crate::cli::Cli, args: &Args) -> anyhow::Result<u8> {
    let home = cli.home()?;
    let loaded = cli.load_config(&home, &[])?;
    let settings = loaded.config.dashboard.clone();
    let listen = args.listen.clone().unwrap_or(settings.listen.clone());
    let addr = parse_listen(&listen)?;
    let configured = match (&settings.token_env, settings.token()) {
        (Some(_), Some(t)) if t.chars().count() < guard::MIN_TOKEN => {
            return Err(UsageError(format!(
                "the dashboard's access token is shorter than {} characters: it could be guessed; set a longer one",
                guard::MIN_TOKEN
            ))
            .into());
        }
        (Some(_), Some(t)) => Some(t),
        (Some(name), None) => {
            return Err(UsageError(format!(
                "dashboard.token_env names `{name}`, which is not set (or empty): set it to the access token, or remove token_env"
            ))
            .into());
        }
        (None, _) => None,
    };
    if !addr.ip().is_loopback() && configured.is_none() {
        return Err(UsageError(format!(
            "refusing to listen on {addr} without an access token: anyone who reaches it could run agents. \
             Set dashboard.token_env to the name of an environment variable that holds a token (and set it), \
             or listen on 127.0.0.1"
        ))
        .into());
    }
    // Bound before anything else starts: a port in use is a clear error, and
    // the names the page answers to carry the port really bound (`:0` picks one).
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        UsageError(format!(
            "cannot listen on {addr}: {e} (is another dashboard running? pick another port with --listen)"
        ))
    })?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let random = |what: &str| -> anyhow::Result<[u8; 32]> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random numbers for the {what}: {e}"))?;
        Ok(bytes)
    };
    let hex = |bytes: [u8; 32]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    // Without a configured token, one made for this start and shown once in
    // the login link: other users and processes of this machine get nothing.
    let generated = configured.is_none();
    let token = guard::Token::new(
        match configured {
            Some(t) => t,
            None => hex(random("access token")?),
        },
        bound.port(),
        &random("session")?,
    );
    let app = Arc::new(App {
        hosts: guard::Hosts::new(bound, &settings.hosts),
        live: live::Hub::start(&home),
        home,
        config_file: cli.config.clone(),
        set: cli.set.clone(),
        read_only: args.read_only,
        csrf: hex(random("form token")?),
        token,
        checked: std::sync::Mutex::new(None),
    });
    crate::memory::one_arena();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(serve(app, listener, args.open, generated))
}

/// `ADDR:PORT`, or `localhost:PORT`.
fn parse_listen(listen: &str) -> Result<SocketAddr, UsageError> {
    let bad = || {
        UsageError(format!(
            "`{listen}` is not an address to listen on: give ADDRESS:PORT, e.g. 127.0.0.1:8765"
        ))
    };
    if let Ok(a) = listen.parse() {
        return Ok(a);
    }
    let (name, port) = listen.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if name.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    Err(bad())
}

async fn serve(app: Arc<App>, listener: std::net::TcpListener, open: bool, generated: bool) -> anyhow::Result<u8> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let bound = listener.local_addr()?;
    // A generated token is in the link, printed for the user who started it;
    // a configured one is never shown: its owner knows it.
    let url = if generated {
        format!("http://{bound}/login?token={}", app.token.reveal())
    } else {
        format!("http://{bound}/")
    };
    println!("dashboard: {url} (home {}; Ctrl-C to stop)", app.home.root().display());
    let _ = std::io::Write::flush(&mut std::io::stdout());
    if open {
        open_browser(&url);
    }
    // A dropped file may be as large as the config allows, and a little more
    // for the form around it.
    let max_body = usize::try_from(app.config().max_task_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024)
        .max(actions::MAX_BODY);
    let router = routes(app.clone(), max_body);
    // On Ctrl-C or SIGTERM requests in flight finish; open event streams
    // never end by themselves, so the server is given two seconds, then left.
    // (A form's work runs on a blocking thread, which the runtime waits for.)
    let stop = Arc::new(tokio::sync::Notify::new());
    let told = stop.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        stopped().await;
        told.notify_waiters();
    });
    tokio::select! {
        served = server => served?,
        _ = async {
            stop.notified().await;
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        } => {}
    }
    Ok(crate::cli::exit::OK)
}

fn routes(app: Arc<App>, max_body: usize) -> Router {
    Router::new()
        .route("/", get(board::page))
        .route("/rows", get(board::rows))
        .route("/tasks/{key}", get(task::page))
        .route("/tasks/{key}/output", get(task::output))
        .route("/tasks/{key}/cancel", post(actions::cancel))
        .route("/tasks/{key}/retry", post(actions::retry))
        .route("/tasks/{key}/resume", post(actions::resume))
        .route("/tasks/{key}/reply", post(actions::reply))
        .route("/tasks/{key}/apply", post(actions::apply))
        .route("/new", get(actions::new_form).post(actions::submit))
        .route("/upload", post(actions::upload))
        .route("/stats", get(stats::page))
        .route("/events", get(live::events))
        .route("/login", get(actions::login_form).post(actions::login))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(app.clone(), guard::check))
        .with_state(app)
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("assets/app.css"),
    )
}

async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("assets/app.js"),
    )
}

/// Ctrl-C, or SIGTERM on Unix.
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn open_browser(url: &str) {
    #[cfg(windows)]
    let spawned = std::process::Command::new("cmd").args(["/C", "start", "", url]).spawn();
    #[cfg(target_os = "macos")]
    let spawned = std::process::Command::new("open").arg(url).spawn();
    #[cfg(all(unix, not(target_os = "macos")))]
    let spawned = std::process::Command::new("xdg-open").arg(url).spawn();
    if let Err(e) = spawned {
        eprintln!("could not open a browser ({e}); open {url} by hand");
    }
}
