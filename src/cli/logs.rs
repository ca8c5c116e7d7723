//! `orchestrator logs ID [--follow] [--raw]`: the agent's output, for people.
//!
//! Claude's stream-json and Cline's `--json` records are rendered as text: the
//! session or model, the agent's words, each tool call with its main argument,
//! tool errors, retries, rate limits and the result. Anything else (a command's
//! output, non-JSON lines) is shown as is.

use super::common::{load_plan, load_progress, load_result, resolve_task};
use super::{Cli, exit};
use crate::agents::claude::main_argument;
use serde_json::Value;
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  orchestrator logs 01m80jw --follow\n  orchestrator logs fix-login.md --raw --attempt 1"
)]
pub struct Args {
    /// Id, unique id prefix, or the original file name.
    pub task: String,
    /// Keep printing as the agent writes, until the task finishes.
    #[arg(short, long)]
    pub follow: bool,
    /// The bytes as the agent wrote them.
    #[arg(long)]
    pub raw: bool,
    /// Which attempt (default: the latest).
    #[arg(long)]
    pub attempt: Option<u32>,
    /// Show stderr instead of stdout.
    #[arg(long)]
    pub stderr: bool,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let home = cli.home()?;
    let (id, dir) = resolve_task(&home, &args.task)?;
    // The latest attempt from the records: an attempt that wrote nothing has no file.
    let latest = || {
        load_result(&dir)
            .map(|r| r.attempts.len() as u32)
            .or_else(|| load_progress(&dir).map(|p| p.attempt))
            .unwrap_or(1)
            .max(1)
    };
    let attempt = args.attempt.unwrap_or_else(latest);
    // An attempt is over when a later one started or the task finished.
    let attempt_over = || dir.result().exists() || load_progress(&dir).is_some_and(|p| p.attempt > attempt);
    let path = if args.stderr {
        dir.attempt_err(attempt)
    } else {
        dir.attempt_out(attempt)
    };
    let stream_json =
        !args.stderr && !args.raw && load_plan(&dir).is_some_and(|p| p.agent != crate::config::AgentKind::Command);
    let mut out = std::io::stdout().lock();
    let mut pos = 0u64;
    let mut pending = Vec::new();
    loop {
        if let Ok(mut f) = crate::events::open_shared(&path) {
            f.seek(SeekFrom::Start(pos))?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            pos += buf.len() as u64;
            if stream_json {
                pending.extend_from_slice(&buf);
                while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=i).collect();
                    if let Some(text) = render(&line[..line.len() - 1]) {
                        writeln!(out, "{}", super::common::for_stdout(&text))?;
                    }
                }
            } else {
                out.write_all(&buf)?;
            }
            out.flush()?;
        } else if attempt_over() {
            let stream = if args.stderr { "stderr" } else { "stdout" };
            eprintln!("attempt {attempt} of {id} wrote nothing to {stream}");
            return Ok(exit::OK);
        } else if !args.follow {
            eprintln!("{id} has no output for attempt {attempt} yet");
            return Ok(exit::FAILED);
        }
        if !args.follow || dir.result().exists() {
            if !pending.is_empty()
                && let Some(text) = render(&pending)
            {
                writeln!(out, "{}", super::common::for_stdout(&text))?;
            }
            return Ok(exit::OK);
        }
        // A newer attempt started: follow it.
        if args.attempt.is_none() && load_progress(&dir).is_some_and(|p| p.attempt > attempt) {
            return run(cli, args);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One line of stream-json as a person wants to read it (`None`: nothing worth showing).
pub fn render(line: &[u8]) -> Option<String> {
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() {
        return None;
    }
    let Ok(v) = serde_json::from_slice::<Value>(trimmed) else {
        return Some(String::from_utf8_lossy(trimmed).into_owned());
    };
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    match s("type") {
        "run_start" | "agent_event" | "run_result" | "run_aborted" | "hook_event" => render_cline(&v),
        "system" => match s("subtype") {
            "init" => Some(format!(
                "● session {} ({}) in {}",
                s("session_id"),
                s("model"),
                s("cwd")
            )),
            "api_retry" => Some(format!(
                "↻ API retry {}/{} ({})",
                v["attempt"].as_u64().unwrap_or(0),
                v["max_retries"].as_u64().unwrap_or(0),
                s("error")
            )),
            "task_started" => Some(format!("◆ subagent: {}", s("description"))),
            _ => None,
        },
        "assistant" => {
            let mut parts = Vec::new();
            if let Some(e) = v.get("error").and_then(Value::as_str) {
                parts.push(format!("✗ API error ({e})"));
            }
            let sub = if v.get("parent_tool_use_id").is_some_and(|p| !p.is_null()) {
                "  "
            } else {
                ""
            };
            for b in v["message"]["content"].as_array().into_iter().flatten() {
                match b["type"].as_str() {
                    Some("text") => parts.push(format!("{sub}{}", b["text"].as_str().unwrap_or(""))),
                    Some("tool_use") => {
                        let name = b["name"].as_str().unwrap_or("?");
                        let arg = main_argument(&b["input"]).map(|a| format!("({a})")).unwrap_or_default();
                        parts.push(format!("{sub}→ {name}{arg}"));
                    }
                    _ => {}
                }
            }
            (!parts.is_empty()).then(|| parts.join("\n"))
        }
        "user" => {
            let errors: Vec<String> = v["message"]["content"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|b| b["is_error"].as_bool() == Some(true))
                .map(|b| {
                    let text = match &b["content"] {
                        Value::String(t) => t.clone(),
                        other => other.to_string(),
                    };
                    format!("  ✗ {}", text.lines().next().unwrap_or(""))
                })
                .collect();
            (!errors.is_empty()).then(|| errors.join("\n"))
        }
        "rate_limit_event" if v["rate_limit_info"]["status"] == "rejected" => Some(format!(
            "⏸ rate limited (resets at {})",
            v["rate_limit_info"]["resetsAt"]
        )),
        "result" => {
            let cost = v
                .get("total_cost_usd")
                .and_then(Value::as_f64)
                .map(|c| format!(", ${c:.4}"))
                .unwrap_or_default();
            let err = if v["is_error"].as_bool() == Some(true) {
                " (error)"
            } else {
                ""
            };
            let errors = v["errors"]
                .as_array()
                .map(|e| {
                    format!(
                        ": {}",
                        e.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; ")
                    )
                })
                .unwrap_or_default();
            Some(format!(
                "■ {}{err}, {} turns{cost}{errors}",
                s("subtype"),
                v["num_turns"].as_u64().unwrap_or(0)
            ))
        }
        _ => None,
    }
}

/// One Cline record. Streamed text arrives as many `content_start` pieces;
/// only the finished text (`content_end`) is shown.
fn render_cline(v: &Value) -> Option<String> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    match s(v, "type").as_str() {
        "run_start" => Some(format!("● cline ({} via {})", s(v, "modelId"), s(v, "providerId"))),
        "run_result" => {
            let cost = v["usage"]["totalCost"]
                .as_f64()
                .map(|c| format!(", ${c:.4}"))
                .unwrap_or_default();
            Some(format!(
                "■ {}, {} turns{cost}",
                s(v, "finishReason"),
                v["iterations"].as_u64().unwrap_or(0)
            ))
        }
        "run_aborted" => Some(format!("■ aborted ({}): {}", s(v, "reason"), s(v, "message"))),
        "agent_event" => {
            let e = &v["event"];
            match (s(e, "type").as_str(), s(e, "contentType").as_str()) {
                ("content_end", "text") => Some(s(e, "text")).filter(|t| !t.is_empty()),
                ("content_start", "tool") => {
                    let arg = main_argument(&e["input"]).map(|a| format!("({a})")).unwrap_or_default();
                    Some(format!("→ {}{arg}", s(e, "toolName")))
                }
                ("content_end", "tool") if e.get("error").is_some_and(|x| !x.is_null()) => {
                    let err = match &e["error"] {
                        Value::String(t) => t.clone(),
                        other => other.to_string(),
                    };
                    Some(format!("  ✗ {}", err.lines().next().unwrap_or("")))
                }
                ("error", _) => Some(format!("✗ {}", e["error"]["message"].as_str().unwrap_or("error"))),
                ("notice", _) => Some(format!("! {}", s(e, "message"))),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_all(text: &str) -> Vec<String> {
        text.lines().filter_map(|l| render(l.as_bytes())).collect()
    }

    #[test]
    fn renders_a_real_cline_run() {
        let out = render_all(include_str!("../../tests/data/agent-output/cline-3.0.65/file.out"));
        assert_eq!(
            out,
            [
                "● cline (mock-model via openai-compatible)",
                "I will create the file.",
                "→ editor(/home/dev/wd-file/created-by-cline.txt)",
                "Created created-by-cline.txt in the workdir. ANSWER-FILE-OK",
                "■ completed, 2 turns, $0.0000",
            ]
        );
        let err = render_all(include_str!("../../tests/data/agent-output/cline-3.0.65/r401.out"));
        assert!(err.iter().any(|l| l.starts_with("✗ Incorrect API key")), "{err:?}");
    }

    #[test]
    fn renders_the_main_message_kinds() {
        assert_eq!(
            render(br#"{"type":"system","subtype":"init","session_id":"s1","model":"m","cwd":"/w"}"#).unwrap(),
            "● session s1 (m) in /w"
        );
        let tool = br#"{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Bash","input":{"command":"cargo test"}}]}}"#;
        assert_eq!(render(tool).unwrap(), "→ Bash(cargo test)");
        let err = br#"{"type":"user","message":{"content":[{"type":"tool_result","is_error":true,"content":"blocked\nmore"}]}}"#;
        assert_eq!(render(err).unwrap(), "  ✗ blocked");
        let result = br#"{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":3,"errors":["Reached maximum number of turns (2)"]}"#;
        assert_eq!(
            render(result).unwrap(),
            "■ error_max_turns (error), 3 turns: Reached maximum number of turns (2)"
        );
        assert_eq!(render(b"plain text").unwrap(), "plain text");
        assert!(render(br#"{"type":"system","subtype":"hook_started"}"#).is_none());
    }
}
