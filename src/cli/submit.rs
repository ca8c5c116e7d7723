//! `orchestrator submit`: write a task into the inbox atomically and print its id.
//!
//! The task is written as a JSON task file named after a fresh, well-formed id
//! (so the daemon keeps that id), under a temporary name first and then renamed,
//! so no daemon ever reads it half-written. It is checked with the daemon's own
//! parser before it is written: a bad submission fails here, not in the inbox.

use super::common::{UsageError, load_progress, load_result, paint, print_json, status_color};
use super::{Cli, exit};
use crate::store::Home;
use serde_json::{Map, Value, json};
use std::io::{IsTerminal, Read, Write};
use std::time::Duration;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  orchestrator submit \"Fix the flaky login test\" --workdir ~/code/api --priority high\n  echo 'make test' | orchestrator submit - --agent command --wait"
)]
pub struct Args {
    /// The prompt, or `-` to read it from stdin.
    pub prompt: Option<String>,
    /// The task's title (default: the prompt's first line).
    #[arg(long)]
    pub title: Option<String>,
    /// claude, cline, codex, gemini, opencode or command (default: the config's default_agent).
    #[arg(long)]
    pub agent: Option<String>,
    /// Where the agent runs; must be inside allowed_roots (default: default_workdir).
    #[arg(long)]
    pub workdir: Option<String>,
    /// high, normal, low, or an integer.
    #[arg(long)]
    pub priority: Option<String>,
    /// A role preset from the config.
    #[arg(long)]
    pub role: Option<String>,
    /// For --agent command: the shell command (default: the prompt).
    #[arg(long)]
    pub command: Option<String>,
    /// Follow the task to its end; exit 0 if it succeeded, 1 if not.
    #[arg(long)]
    pub wait: bool,
    /// Print the id (and with --wait the result) as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let home = cli.home()?;
    let prompt = match args.prompt.as_deref() {
        Some("-") => {
            // Never more than a task may hold: the rest of a huge stream is not read.
            let max = cli.load_config(&home, &[]).map_or(1 << 20, |l| l.config.max_task_bytes);
            let mut bytes = Vec::new();
            std::io::stdin().take(max + 1).read_to_end(&mut bytes)?;
            if bytes.len() as u64 > max {
                return Err(UsageError(format!(
                    "the prompt on stdin is larger than max_task_bytes ({max} bytes): shorten it, or raise max_task_bytes"
                ))
                .into());
            }
            String::from_utf8(bytes).map_err(|_| {
                UsageError("the prompt on stdin is not valid UTF-8: convert it first (e.g. `iconv -t UTF-8`)".into())
            })?
        }
        Some(p) => p.to_string(),
        None if args.command.is_some() => String::new(),
        None => return Err(UsageError("give a prompt, or `-` to read it from stdin".into()).into()),
    };
    let mut fields = Map::new();
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            fields.insert(k.into(), Value::String(v.clone()));
        }
    };
    put("title", &args.title);
    put("agent", &args.agent);
    put("workdir", &args.workdir);
    put("role", &args.role);
    put("command", &args.command);
    if let Some(p) = &args.priority {
        let v = p
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(p.clone()));
        fields.insert("priority".into(), v);
    }
    if !prompt.trim().is_empty() {
        fields.insert("prompt".into(), Value::String(prompt));
    }
    let id = write_task(cli, &home, fields)?;
    if !args.wait {
        if args.json {
            print_json(&json!({"id": id}))?;
        } else {
            println!("{id}");
        }
        return Ok(exit::OK);
    }
    if !args.json {
        eprintln!("submitted {id}");
    }
    wait(&home, &id, args.json)
}

/// Checks `fields` with the daemon's parser and writes them as `inbox/<id>.json`.
pub fn write_task(cli: &Cli, home: &Home, fields: Map<String, Value>) -> anyhow::Result<String> {
    let loaded = cli.load_config(home, &[]).map_err(|e| UsageError(e.to_string()))?;
    crate::followups::write_task(home, &loaded.config, fields).map_err(|e| match e {
        crate::followups::WriteError::Invalid(..) => UsageError(e.to_string()).into(),
        crate::followups::WriteError::Io(e) => anyhow::Error::from(e),
    })
}

/// Follows a submitted task to its end.
fn wait(home: &Home, id: &str, json: bool) -> anyhow::Result<u8> {
    let tty = std::io::stderr().is_terminal() && !json;
    let dir = crate::store::TaskDir::new(home.task_dir(id));
    let started = std::time::Instant::now();
    let mut last_line = String::new();
    loop {
        if let Some(r) = load_result(&dir) {
            if tty {
                eprint!("\r\x1b[K");
            }
            let ok = r.status == crate::store::record::Status::Succeeded;
            if json {
                print_json(&r)?;
            } else {
                let status = r.status.name();
                eprintln!(
                    "{} {} in {}",
                    paint(status, status_color(status)),
                    id,
                    super::common::human_ms(r.duration_ms)
                );
                if let Some(e) = &r.error {
                    eprintln!("{}: {}\n{}", e.kind, e.message, e.suggestion);
                }
                println!("{}", r.output);
            }
            return Ok(if ok { exit::OK } else { exit::FAILED });
        }
        let rejected = home.rejected().join(format!("{id}.json.error.json"));
        if let Ok(bytes) = std::fs::read(&rejected) {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            if json {
                print_json(&json!({"id": id, "status": "rejected", "error": v}))?;
            } else {
                eprintln!(
                    "rejected: {} ({})",
                    v["error"].as_str().unwrap_or("?"),
                    v["hint"].as_str().unwrap_or("")
                );
            }
            return Ok(exit::FAILED);
        }
        let line = match load_progress(&dir) {
            Some(p) => format!(
                "{} attempt {} · {} turns · {} tool calls · {} · {}",
                p.status.map_or("running", |s| s.name()),
                p.attempt,
                p.turns,
                p.tool_calls,
                p.cost_usd.map_or("no cost yet".to_string(), |c| format!("${c:.4}")),
                p.last_event.unwrap_or_default()
            ),
            None if dir.dir.is_dir() => "starting".to_string(),
            None => "queued".to_string(),
        };
        if tty {
            let elapsed = humantime::format_duration(Duration::from_secs(started.elapsed().as_secs()));
            let mut shown = format!("{elapsed} · {line}");
            shown.truncate(150);
            eprint!("\r\x1b[K{shown}");
            let _ = std::io::stderr().flush();
        } else if line != last_line && !json {
            eprintln!("{line}");
        }
        last_line = line;
        std::thread::sleep(Duration::from_millis(250));
    }
}
