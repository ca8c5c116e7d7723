//! The Codex CLI (`@openai/codex`), headless: `codex exec --json ... -`, the
//! prompt on stdin.
//!
//! Every stdout line is one JSON event (0.171.0): `thread.started` (the
//! session, `thread_id`), `turn.started`, `item.started` / `item.updated` /
//! `item.completed` (an `item` of type `agent_message`, `reasoning`,
//! `command_execution`, `file_change`, `mcp_tool_call`, `web_search`,
//! `todo_list` or a non-fatal `error`), `turn.completed` (token `usage`),
//! `turn.failed` (the `error` that ended the turn) and top-level `error`
//! records (each of the CLI's own retries says `Reconnecting... n/m (...)`).
//! The answer is the last `agent_message`. It reports tokens, never dollars:
//! a cost comes from the config's price table, if any.
//!
//! Least privilege: Codex has sandbox modes, not per-tool permissions. A task
//! whose tools only read runs `--sandbox read-only` (it may still run commands
//! that read); a task granted `Bash` runs `--sandbox workspace-write` (edits
//! and commands inside the workdir, no network). Editing tools without `Bash`,
//! `Bash(prefix:*)` patterns and `WebFetch` cannot be enforced, so they are not
//! granted (and the plan says so) rather than widened. Its web search exists
//! only when `WebSearch` is granted. Analytics and the update check are off.
//!
//! It has no turn, tool-call or budget flag: the reader enforces them, and
//! stops it (SIGINT: it ends in well under a second, mid-stream).

mod classify;
mod render;

use super::outcome::Failure;
use super::supervise::Exit;
use super::{Agent, AgentReport, LiveLimits, OutputReader, RunArgs, Sessions, ToolGrant, short};
use crate::config::AgentConfig;
use crate::tools::tool_allowed;
use crate::vocab::{AgentKind, Tokens};
use serde_json::Value;

/// Tools that only read: with nothing else granted, the run is read-only.
const READ_TOOLS: [&str; 5] = ["Read", "Glob", "Grep", "LS", "NotebookRead"];
/// Tools that edit files: granted only with `Bash` (see the module's text).
const EDIT_TOOLS: [&str; 4] = ["Edit", "MultiEdit", "Write", "NotebookEdit"];
/// A task's tools when it names none and the ceiling allows the shell.
const DEFAULT_WITH_SHELL: [&str; 8] = ["Read", "Glob", "Grep", "LS", "Edit", "MultiEdit", "Write", "Bash"];

/// The sandbox a run with these granted tools gets.
pub fn sandbox(granted: &[String]) -> &'static str {
    if granted.iter().any(|t| t == "Bash") {
        "workspace-write"
    } else {
        "read-only"
    }
}

/// The arguments after the program name. Options come before `resume`, which
/// takes them too; `-` reads the prompt from stdin.
pub fn args(extra_args: &[String], tools: &[String], session: Option<&str>) -> Vec<String> {
    let mut v: Vec<String> = extra_args.to_vec();
    v.extend(["exec", "--json", "--skip-git-repo-check"].map(String::from));
    v.push(format!("--sandbox={}", sandbox(tools)));
    for setting in [
        "analytics.enabled=false",
        "check_for_update_on_startup=false",
        "feedback.enabled=false",
    ] {
        v.extend(["-c".to_string(), setting.to_string()]);
    }
    if !tools.iter().any(|t| t == "WebSearch") {
        v.extend(["-c".to_string(), "web_search=\"disabled\"".to_string()]);
    }
    if let Some(id) = session {
        v.extend(["resume".to_string(), id.to_string()]);
    }
    v.push("-".to_string());
    v
}

/// A `turn.completed` usage: `input_tokens` (cached ones included),
/// `cached_input_tokens`, `output_tokens` (reasoning included).
fn usage(u: &Value) -> Tokens {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    Tokens {
        input: n("input_tokens"),
        output: n("output_tokens"),
        cached: n("cached_input_tokens"),
    }
}

/// An error's words. For a status it does not know (400, say) Codex passes
/// the provider's body on as the message: its `error.type` (OpenAI's code)
/// is kept in the report, and its `error.message` is the words.
fn api_error(msg: &str, r: &mut AgentReport) -> String {
    let Ok(body) = serde_json::from_str::<Value>(msg) else {
        return msg.to_string();
    };
    let e = &body["error"];
    let code = e["code"].as_str().or(e["type"].as_str()).unwrap_or("");
    r.api_error = match code {
        "invalid_request_error" => Some("invalid_request".to_string()),
        "rate_limit_exceeded" | "usage_limit_reached" => Some("rate_limit".to_string()),
        "invalid_api_key" => Some("authentication_failed".to_string()),
        "insufficient_quota" => Some("billing_error".to_string()),
        "context_length_exceeded" => Some("context_window_exceeded".to_string()),
        "" => r.api_error.take(),
        other => Some(other.to_string()),
    };
    e["message"].as_str().unwrap_or(msg).to_string()
}

/// Reads Codex's `--json` events into an [`AgentReport`].
#[derive(Debug, Default)]
pub struct CodexReader {
    report: AgentReport,
    limits: LiveLimits,
    /// Ids of tool items already counted when they started.
    started: Vec<String>,
}

impl CodexReader {
    pub fn new(limits: LiveLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    fn on_item(&mut self, item: &Value, completed: bool) -> bool {
        let s = |k: &str| item.get(k).and_then(Value::as_str);
        let id = s("id").unwrap_or("").to_string();
        let r = &mut self.report;
        match s("type") {
            Some("agent_message") if completed => {
                let text = s("text").unwrap_or("");
                r.turns += 1;
                r.last_text = Some(text.to_string());
                r.last_event = Some(format!("text: {}", short(text, 80)));
                true
            }
            Some(kind @ ("command_execution" | "file_change" | "mcp_tool_call" | "web_search")) => {
                // Counted once, when first seen (some commands are reported
                // only when they complete).
                if !self.started.contains(&id) {
                    self.started.push(id);
                    if self.started.len() > 64 {
                        self.started.remove(0);
                    }
                    r.tool_calls += 1;
                    r.turns += 1;
                }
                let what = match kind {
                    "command_execution" => format!("command({})", short(s("command").unwrap_or(""), 80)),
                    "file_change" => {
                        let paths: Vec<&str> = item
                            .get("changes")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .filter_map(|c| c.get("path").and_then(Value::as_str))
                            .collect();
                        format!("edit({})", short(&paths.join(", "), 80))
                    }
                    "mcp_tool_call" => format!("{}.{}", s("server").unwrap_or("mcp"), s("tool").unwrap_or("tool")),
                    _ => format!("web_search({})", short(s("query").unwrap_or(""), 80)),
                };
                r.last_event = Some(match (completed, item.get("exit_code").and_then(Value::as_i64)) {
                    (true, Some(code)) if code != 0 => format!("{what} exited {code}"),
                    _ => what,
                });
                true
            }
            // A warning of the CLI's own (an unknown model's metadata): kept
            // for progress, never the run's failure.
            Some("error") if completed => {
                r.last_event = Some(format!("warning: {}", short(s("message").unwrap_or(""), 160)));
                true
            }
            _ => false,
        }
    }

    fn on_json(&mut self, v: &Value) -> bool {
        let s = |k: &str| v.get(k).and_then(Value::as_str);
        let r = &mut self.report;
        match s("type") {
            Some("thread.started") => {
                r.session_id = s("thread_id").map(String::from);
                r.last_event = Some("started".to_string());
                true
            }
            Some("turn.started") => false,
            Some("item.started") => self.on_item(v.get("item").unwrap_or(&Value::Null), false),
            Some("item.completed") => self.on_item(v.get("item").unwrap_or(&Value::Null), true),
            Some("turn.completed") => {
                r.result_seen = true;
                r.is_error = false;
                r.subtype = Some("completed".to_string());
                r.answer = r.last_text.clone();
                // The thread's count so far, earlier runs of a resumed
                // session included: this run's share is what was added since.
                if let Some(u) = v.get("usage") {
                    let total = usage(u);
                    let before = self.limits.session_tokens_before;
                    r.session_tokens = Some(total);
                    r.tokens = Tokens {
                        input: total.input.saturating_sub(before.input),
                        output: total.output.saturating_sub(before.output),
                        cached: total.cached.saturating_sub(before.cached),
                    };
                }
                r.last_event = Some("turn completed".to_string());
                true
            }
            Some("turn.failed") => {
                r.result_seen = true;
                r.is_error = true;
                r.subtype = Some("failed".to_string());
                let msg = v["error"]["message"].as_str().unwrap_or("the turn failed");
                let msg = api_error(msg, r);
                if r.result_errors.last() != Some(&msg) {
                    r.result_errors.push(msg.clone());
                }
                r.last_event = Some(format!("failed: {}", short(&msg, 160)));
                true
            }
            Some("error") => {
                let msg = s("message").unwrap_or("error");
                if let Some(rest) = msg.strip_prefix("Reconnecting... ") {
                    r.api_retries += 1;
                    r.last_api_retry_error = Some(rest.to_string());
                    r.last_event = Some(format!("API retry {}", short(rest, 120)));
                } else {
                    let msg = api_error(msg, r);
                    r.last_event = Some(format!("error: {}", short(&msg, 160)));
                    r.result_errors.push(msg);
                }
                true
            }
            _ => false,
        }
    }
}

super::report::json_lines_reader!(CodexReader);

/// Codex, as 0.171.0 behaves.
pub struct Codex;

impl Agent for Codex {
    fn kind(&self) -> AgentKind {
        AgentKind::Codex
    }
    fn describe(&self) -> &'static str {
        "the Codex CLI (0.171.0)"
    }
    fn default_program(&self) -> &'static str {
        "codex"
    }
    /// The tools within the ceiling that its sandbox modes can honour (see
    /// the module's text); the rest are dropped, never widened.
    fn grant_tools(&self, asked: Option<&[String]>, config: &AgentConfig) -> ToolGrant {
        // Without a task's or the config's list: edits and commands where the
        // ceiling allows the shell, else reading only (Codex's own default).
        let shell_allowed = tool_allowed("Bash", &super::ceiling(config));
        let defaults: &[&str] = if shell_allowed {
            &DEFAULT_WITH_SHELL
        } else {
            &READ_TOOLS[..4]
        };
        // Editing tools only with the shell, which lets Codex edit at all.
        let shell = super::within_ceiling(asked, config, defaults)
            .granted
            .iter()
            .any(|t| t == "Bash");
        super::grant_held(asked, config, defaults, |t| {
            READ_TOOLS.contains(&t) || t == "Bash" || t == "WebSearch" || (shell && EDIT_TOOLS.contains(&t))
        })
    }
    fn dropped_tools_warning(&self) -> (&'static str, &'static str) {
        (
            "tools_dropped",
            "Codex has sandbox modes, not per-tool permissions: Bash(prefix) patterns and WebFetch cannot be enforced, editing tools need Bash (its workspace-write sandbox runs commands too), and tools outside allowed_tools are not granted; these were not granted",
        )
    }
    fn may_edit(&self, granted: &[String]) -> bool {
        granted.iter().any(|t| tool_allowed(t, &["Bash".to_string()]))
    }
    fn args(&self, run: &RunArgs) -> Vec<String> {
        args(run.extra_args, run.tools, run.session)
    }
    /// Ctrl-C is its cancel: it ends in well under a second, mid-stream
    /// (SIGTERM takes it up to two).
    fn stop_signal(&self) -> super::StopSignal {
        super::StopSignal::Interrupt
    }
    fn reader(&self, limits: LiveLimits) -> Box<dyn OutputReader> {
        Box::new(CodexReader::new(limits))
    }
    fn classify(&self, exit: &Exit, report: &AgentReport) -> Option<Failure> {
        classify::classify(exit, report)
    }
    fn sessions(&self) -> Sessions {
        Sessions::Resumable
    }
    fn render(&self, record: &Value) -> Option<String> {
        render::render(record)
    }
}

#[cfg(test)]
mod tests;
