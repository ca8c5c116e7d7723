//! `orchestrator doctor`: checks the home, the config and the agents; each
//! failing check says what to do. Exit 1 if any check fails.

use super::common::print_json;
use super::{Cli, exit};
use crate::config::AgentKind;
use crate::store::{TaskDir, daemons};
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  orchestrator doctor --json")]
pub struct Args {
    /// Print JSON (one document) instead of text, for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// `warn` checks do not fail the run.
    pub level: &'static str,
    pub detail: String,
    pub fix: Option<String>,
}

fn check(name: &str, ok: bool, detail: String, fix: &str) -> Check {
    Check {
        name: name.into(),
        ok,
        level: "error",
        detail,
        fix: (!ok).then(|| fix.to_string()),
    }
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let home = cli.home()?;
    let checks = checks(&home, cli.load_config(&home, &[]), true);
    let failed = checks.iter().any(|c| !c.ok && c.level == "error");
    if args.json {
        print_json(&serde_json::json!({"ok": !failed, "checks": checks}))?;
    } else {
        for c in &checks {
            let mark = match (c.ok, c.level) {
                (true, _) => super::common::paint("ok  ", "32"),
                (false, "warn") => super::common::paint("warn", "33"),
                _ => super::common::paint("FAIL", "31"),
            };
            println!("{mark}  {:<20} {}", c.name, c.detail);
            if let Some(f) = &c.fix {
                println!("      fix: {f}");
            }
        }
    }
    Ok(if failed { exit::FAILED } else { exit::OK })
}

/// Every check, in the order `doctor` prints them (the dashboard shows them too).
///
/// `probe_writes`: whether a folder is writable is found by writing a file
/// into it (`doctor`), or (false) from its permissions alone, so that the
/// look changes nothing.
pub fn checks(
    home: &crate::store::Home,
    loaded: Result<crate::config::Loaded, crate::config::ConfigError>,
    probe_writes: bool,
) -> Vec<Check> {
    let home = home.clone();
    let mut checks = Vec::new();
    let config = match &loaded {
        Ok(l) => {
            let from = l
                .file
                .as_ref()
                .map_or("built-in defaults".to_string(), |f| f.display().to_string());
            checks.push(check("config", true, format!("valid ({from})"), ""));
            l.config.clone()
        }
        Err(e) => {
            checks.push(check(
                "config",
                false,
                e.to_string(),
                "fix the key it names in orchestrator.yaml",
            ));
            Default::default()
        }
    };
    for (name, dir) in [
        ("inbox", home.inbox()),
        ("results", home.results()),
        ("summaries", home.summaries()),
        ("logs", home.logs()),
    ] {
        // A probe file written and removed; a look that must change nothing
        // (the dashboard) asks the OS whether this user may write instead.
        let writable = if probe_writes {
            let probe = dir.join(format!(".doctor-{}", std::process::id()));
            let ok = std::fs::write(&probe, b"").is_ok();
            let _ = std::fs::remove_file(&probe);
            ok
        } else {
            may_write(&dir)
        };
        let detail = if !dir.exists() {
            "missing (created on start)".to_string()
        } else if writable {
            "present, writable".into()
        } else {
            "not writable".into()
        };
        checks.push(check(
            &format!("folder {name}"),
            !dir.exists() || writable,
            format!("{}: {detail}", dir.display()),
            &format!("make {} writable by the daemon's user", dir.display()),
        ));
    }
    if home.inbox().exists() {
        // The home, its inbox, rejected/ and results/, and every folder above the
        // home: nobody but this user (and root) may change them.
        let problems = crate::daemon::homecheck::problems(&home);
        checks.push(check(
            "home permissions",
            problems.is_empty(),
            if problems.is_empty() && cfg!(windows) {
                "not checked on Windows (ACLs are not read): keep the home's ACLs to its user".into()
            } else if problems.is_empty() {
                "only this user (and root) can change the home and the folders above it".into()
            } else {
                problems.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join("; ")
            },
            "apply the fix each line names (chmod o-w / chown)",
        ));
    }
    let queued_agents = queued_agents(&home, &config);
    for kind in AgentKind::ALL {
        let agent = crate::agents::of(kind);
        let cfg = config.agent(kind);
        let program = cfg.command.clone().unwrap_or_else(|| agent.default_program().into());
        // Missing is a failure for an agent the config or a role uses, a
        // warning for the rest.
        let used = config.default_agent == kind
            || config.agents.contains_key(kind.name())
            || config.roles.values().any(|r| {
                r.agent
                    .as_ref()
                    .and_then(|a| a.resolve().ok())
                    .is_some_and(|list| list.contains(&kind))
            })
            || queued_agents.contains(&kind);
        let mut c = match which::which(&program) {
            Ok(path) => {
                let version = agent.version_args().and_then(|args| version_of(&path, args));
                check(
                    &format!("agent {}", kind.name()),
                    true,
                    format!("{} {}", path.display(), version.unwrap_or_default())
                        .trim()
                        .to_string(),
                    "",
                )
            }
            Err(_) => check(
                &format!("agent {}", kind.name()),
                false,
                format!("`{program}` not found on PATH"),
                &format!("install it, or set agents.{}.command to its full path", kind.name()),
            ),
        };
        if !used {
            c.level = "warn";
        }
        checks.push(c);
    }
    for root in config.allowed_roots(home.root()) {
        checks.push(check(
            "allowed root",
            root.is_dir(),
            root.display().to_string(),
            "create the folder or fix allowed_roots",
        ));
    }
    if let Some(m) = config
        .mediator
        .as_ref()
        .filter(|m| m.when != crate::config::MediateWhen::Never)
    {
        // Reachable, the model there, a JSON answer: what a task would need.
        checks.push(match crate::mediator::client::probe(m) {
            Ok(()) => check(
                "mediator",
                true,
                format!("{} at {} answers JSON", m.model, m.url),
                "",
            ),
            Err(e) => {
                let mut c = check(
                    "mediator",
                    false,
                    format!("{} at {}: {} ({})", m.model, m.url, e.reason, e.detail),
                    "start the model server, pull the model (ollama pull MODEL), or fix mediator.url/model; tasks fall back to the parser meanwhile",
                );
                // Tasks still run without it.
                c.level = "warn";
                c
            }
        });
    }
    if let Some(free) = free_bytes(home.root()) {
        let mut c = check(
            "disk space",
            free > 1 << 30,
            format!("{:.1} GiB free", free as f64 / (1u64 << 30) as f64),
            "free some space: results and logs need room (see `orchestrator clean`)",
        );
        c.level = if free > 100 << 20 { "warn" } else { "error" };
        checks.push(c);
    }
    let live = daemons::live(&home);
    checks.push(Check {
        name: "daemons".into(),
        ok: true,
        level: "warn",
        detail: if live.is_empty() {
            "none running".into()
        } else {
            live.iter()
                .map(|d| format!("{} (pid {})", d.worker, d.pid))
                .collect::<Vec<_>>()
                .join(", ")
        },
        fix: None,
    });
    if let Some(hit) = live.iter().find_map(|d| d.spend_cap.as_ref()) {
        checks.push(Check {
            name: "spend cap".into(),
            ok: false,
            level: "warn",
            detail: format!(
                "budget.{} is reached ({:.4} of {:.4}): no task starts until {}",
                hit.cap, hit.spent, hit.limit, hit.until
            ),
            fix: Some(format!(
                "wait for the period to end, or raise budget.{} in orchestrator.yaml (the daemon reloads it)",
                hit.cap
            )),
        });
    }
    checks.push(listing(
        "stale task folders",
        &orphans(&home),
        "none",
        "without result or owner",
        "start a daemon: it takes them over and runs them again",
    ));
    // Files a live daemon should have taken long ago: a claim or a rejection
    // that keeps failing (its `claim_failed` event says why).
    let stuck_after = config.rescan_interval.0 * 10 + Duration::from_secs(60);
    // Files that wait on purpose (for other tasks, a start time, a spend cap) are not stuck.
    let limits = crate::task::parse::Limits::of(&config);
    let capped = live.iter().any(|d| d.spend_cap.is_some());
    let stuck: Vec<String> = stuck_in_inbox(&home, stuck_after)
        .into_iter()
        .filter(|name| {
            !capped
                && super::status::describe(&home.inbox().join(name), name, &limits)
                    .is_none_or(|(_, _, q)| q.waiting_for.is_empty())
        })
        .collect();
    checks.push(listing(
        "inbox",
        &stuck,
        "nothing waiting longer than it should",
        "file(s) waiting for over a minute",
        "see why with `orchestrator tail-events --event claim_failed` (no daemon running? results/ or inbox/rejected/ not writable?)",
    ));
    let canonical_home = crate::task::workdir::canonical(home.root()).unwrap_or_else(|_| home.root().to_path_buf());
    let mut c = match super::service::installed(&canonical_home, config.shutdown_grace.0) {
        Some(what) => check("service", true, format!("installed: {what}"), ""),
        None => check(
            "service",
            true,
            "not installed (the daemon runs when started by hand)".into(),
            "",
        ),
    };
    c.level = "info";
    checks.push(c);
    let size = std::fs::metadata(home.events_log()).map(|m| m.len()).unwrap_or(0);
    checks.push(check(
        "event log",
        size <= config.events.rotate_bytes.saturating_mul(2),
        format!("{:.1} MiB", size as f64 / 1048576.0),
        "start a daemon (it rotates the log) or lower events.rotate_bytes",
    ));

    checks
}

/// May this process write into `dir`? From its permissions (Unix), or its
/// read-only attribute (Windows): nothing is written.
fn may_write(dir: &std::path::Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: `path` is a valid NUL-terminated string; access() only reads it.
        unsafe { libc::access(path.as_ptr(), libc::W_OK) == 0 }
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(dir).is_ok_and(|m| !m.permissions().readonly())
    }
}

/// `<cli> --version`, with a short timeout (a broken CLI must not hang doctor).
fn version_of(path: &std::path::Path, args: &[&str]) -> Option<String> {
    let mut child = std::process::Command::new(path)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if child.try_wait().ok()?.is_some() {
            let out = child.wait_with_output().ok()?;
            return Some(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string(),
            );
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            // Reaped, so a long-lived caller (the dashboard) leaves no zombie.
            let _ = child.wait();
            return Some("(--version timed out)".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Task folders with a task file, no result, and nobody holding the lock.
fn orphans(home: &crate::store::Home) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(home.results()) else {
        return Vec::new();
    };
    dir.flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            TaskDir::new(e.path())
                .is_orphan()
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

fn free_bytes(path: &std::path::Path) -> Option<u64> {
    #[cfg(unix)]
    {
        let s = nix::sys::statvfs::statvfs(path).ok()?;
        Some(s.blocks_available() as u64 * s.fragment_size() as u64)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// A warning that lists what it found (the first five), or says `none`.
fn listing(name: &str, found: &[String], none: &str, what: &str, fix: &str) -> Check {
    let detail = if found.is_empty() {
        none.to_string()
    } else {
        format!("{} {what}: {}", found.len(), found[..found.len().min(5)].join(", "))
    };
    let mut c = check(name, found.is_empty(), detail, fix);
    c.level = "warn";
    c
}

/// Inbox files (not in its subfolders, not ignored names) unchanged for longer
/// than `age`.
fn stuck_in_inbox(home: &crate::store::Home, age: Duration) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(home.inbox()) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
        .filter(|e| !crate::task::parse::is_ignored_name(&e.file_name().to_string_lossy()))
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().unwrap_or_default() > age)
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The agents the task files waiting in the inbox name first (the first
/// 1,000 files: enough to tell, and `doctor` stays quick on a full inbox),
/// read as `status` reads them.
fn queued_agents(home: &crate::store::Home, config: &crate::config::Config) -> Vec<AgentKind> {
    let limits = crate::task::parse::Limits::of(config);
    let Ok(dir) = std::fs::read_dir(home.inbox()) else {
        return Vec::new();
    };
    let mut agents = Vec::new();
    for e in dir.flatten().take(1000) {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        if crate::task::parse::is_ignored_name(&name) || !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        if let Some(kind) =
            super::status::describe(&e.path(), &name, &limits).and_then(|(_, _, q)| AgentKind::parse(&q.agent))
            && !agents.contains(&kind)
        {
            agents.push(kind);
        }
    }
    agents
}
