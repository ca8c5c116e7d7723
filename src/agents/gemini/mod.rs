//! The Gemini CLI (`@google/gemini-cli`), headless: `gemini --prompt=
//! --output-format=stream-json --approval-mode=default --policy=FILE`, the
//! prompt on stdin (`--prompt` is appended to it, and is empty).
//!
//! Every stdout line is one JSON event (0.61.0): `init` (`session_id`,
//! `model`), `message` (`role`, `content`, `delta: true` for streamed
//! pieces of the model's text), `tool_use` (`tool_name`, `tool_id`,
//! `parameters`), `tool_result` (`tool_id`, `status`, `output` or `error`),
//! `error` (a warning) and `result` (`status`: `success` or `error` with an
//! `error {type, message}`, and `stats` with the tokens). The answer is the
//! model's text after its last tool call.
//!
//! Least privilege is Gemini's own policy engine: each run gets a policy file
//! (in the task's folder) that denies every tool and allows exactly the
//! granted ones, at the user tier (above the CLI's defaults, below an
//! administrator's). The model is offered only those tools. `Bash(prefix:*)`
//! becomes a `run_shell_command` rule with that `commandPrefix`, which the CLI
//! enforces. Its OpenTelemetry export is off (`GEMINI_TELEMETRY_ENABLED`);
//! its usage statistics are the user's setting (`privacy.usageStatisticsEnabled`
//! in `~/.gemini/settings.json`): a system defaults file of the daemon's would
//! replace an administrator's, and the CLI ignores one under a world-writable
//! folder. The workspace is trusted for the run, as the daemon already
//! confines it.

mod classify;
mod render;

use super::outcome::Failure;
use super::supervise::Exit;
use super::{Agent, AgentReport, LiveLimits, OutputReader, RunArgs, Sessions, ToolGrant, short};
use crate::config::AgentConfig;
use crate::vocab::{AgentKind, Tokens};
use serde_json::Value;

/// The policy file of a run, in the task's folder.
pub const POLICY_FILE: &str = "gemini-policy.toml";

/// Each tool a task may be granted, and Gemini's tools that carry it out.
const TOOLS: &[(&str, &[&str])] = &[
    ("Read", &["read_file", "read_many_files"]),
    ("LS", &["list_directory"]),
    ("Glob", &["glob"]),
    ("Grep", &["grep_search"]),
    ("Edit", &["replace"]),
    ("MultiEdit", &["replace"]),
    ("Write", &["write_file"]),
    ("Bash", &["run_shell_command"]),
    ("WebFetch", &["web_fetch"]),
    ("WebSearch", &["google_web_search"]),
    ("TodoWrite", &["write_todos"]),
];

/// Gemini's tools for one granted tool; `Bash(cargo test:*)` is the shell
/// with a command prefix.
fn gemini_tools(tool: &str) -> Option<&'static [&'static str]> {
    let base = tool.split_once('(').map_or(tool, |(b, _)| b);
    TOOLS.iter().find(|(t, _)| *t == base).map(|(_, g)| *g)
}

/// The command prefix of `Bash(prefix:*)` (or `Bash(prefix)`).
fn shell_prefix(tool: &str) -> Option<&str> {
    let inner = tool.strip_prefix("Bash(")?.strip_suffix(')')?;
    Some(inner.strip_suffix(":*").unwrap_or(inner).trim()).filter(|p| !p.is_empty())
}

/// The policy that lets the agent use `granted` and nothing else.
pub fn policy(granted: &[String]) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut out = String::from(
        "# Written by orchestrator for one run: every tool is denied but the task's.\n\n[[rule]]\ntoolName = \"*\"\ndecision = \"deny\"\npriority = 998\n",
    );
    let mut names: Vec<&str> = Vec::new();
    let mut prefixes: Vec<&str> = Vec::new();
    for t in granted {
        match (shell_prefix(t), gemini_tools(t)) {
            (Some(p), _) => prefixes.push(p),
            (None, Some(g)) => {
                for n in g.iter() {
                    if !names.contains(n) {
                        names.push(n);
                    }
                }
            }
            (None, None) => {}
        }
    }
    if !names.is_empty() {
        let list: Vec<String> = names.iter().map(|n| quote(n)).collect();
        out.push_str(&format!(
            "\n[[rule]]\ntoolName = [{}]\ndecision = \"allow\"\npriority = 999\n",
            list.join(", ")
        ));
    }
    if !prefixes.is_empty() && !names.contains(&"run_shell_command") {
        let list: Vec<String> = prefixes.iter().map(|p| quote(p)).collect();
        out.push_str(&format!(
            "\n[[rule]]\ntoolName = \"run_shell_command\"\ncommandPrefix = [{}]\ndecision = \"allow\"\npriority = 999\n",
            list.join(", ")
        ));
    }
    out
}

/// Environment of every run (unless `agents.gemini.env` sets it).
pub const ENV: &[(&str, &str)] = &[
    ("GEMINI_TELEMETRY_ENABLED", "false"),
    // The daemon confines the workdir; the CLI's own folder-trust question
    // would stop a headless run.
    ("GEMINI_CLI_TRUST_WORKSPACE", "true"),
];

/// The arguments after the program name.
pub fn args(extra_args: &[String], policy_file: &str, session: Option<&str>) -> Vec<String> {
    let mut v: Vec<String> = extra_args.to_vec();
    // An empty prompt argument, one token (an empty argv element can vanish
    // through a Windows .cmd wrapper): the prompt is stdin.
    v.extend(["--prompt=", "--output-format=stream-json", "--approval-mode=default"].map(String::from));
    v.push(format!("--policy={policy_file}"));
    if let Some(id) = session {
        v.push(format!("--resume={id}"));
    }
    v
}

/// Reads Gemini's stream-json into an [`AgentReport`].
#[derive(Debug, Default)]
pub struct GeminiReader {
    report: AgentReport,
    limits: LiveLimits,
    /// The model's text since its last tool call.
    text: String,
    /// The model's current response has been counted as a turn.
    in_response: bool,
}

impl GeminiReader {
    pub fn new(limits: LiveLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    fn on_json(&mut self, v: &Value) -> bool {
        let s = |k: &str| v.get(k).and_then(Value::as_str);
        let r = &mut self.report;
        match s("type") {
            Some("init") => {
                r.session_id = s("session_id").map(String::from);
                r.model = s("model").map(String::from);
                r.last_event = Some(format!("started ({})", s("model").unwrap_or("unknown model")));
                true
            }
            Some("message") if s("role") == Some("assistant") => {
                if !self.in_response {
                    self.in_response = true;
                    r.turns += 1;
                }
                let piece = s("content").unwrap_or("");
                if v.get("delta").and_then(Value::as_bool) == Some(true) {
                    self.text.push_str(piece);
                } else {
                    self.text = piece.to_string();
                }
                r.last_text = Some(self.text.clone());
                r.last_event = Some(format!("text: {}", short(&self.text, 80)));
                true
            }
            Some("tool_use") => {
                if !self.in_response {
                    r.turns += 1;
                }
                // The next words of the model are a new response.
                self.in_response = false;
                self.text.clear();
                r.tool_calls += 1;
                let name = s("tool_name").unwrap_or("tool");
                r.last_event = Some(match v.get("parameters").and_then(super::main_argument) {
                    Some(a) => format!("tool: {name}({a})"),
                    None => format!("tool: {name}"),
                });
                true
            }
            Some("tool_result") => {
                if s("status") == Some("error") {
                    let e = v["error"]["message"].as_str().or(s("output")).unwrap_or("failed");
                    r.last_event = Some(format!("tool error: {}", short(e, 160)));
                    return true;
                }
                false
            }
            Some("error") => {
                r.last_event = Some(format!("warning: {}", short(s("message").unwrap_or(""), 160)));
                true
            }
            Some("result") => {
                r.result_seen = true;
                r.subtype = s("status").map(String::from);
                r.is_error = s("status") != Some("success");
                if r.is_error {
                    let e = &v["error"];
                    let msg = e["message"].as_str().unwrap_or("the run failed");
                    let words = api_error(msg, r);
                    r.result_errors.push(words);
                } else {
                    r.answer = Some(self.text.clone());
                }
                let st = &v["stats"];
                let n = |k: &str| st.get(k).and_then(Value::as_u64).unwrap_or(0);
                r.tokens = Tokens {
                    input: n("input_tokens"),
                    output: n("output_tokens"),
                    cached: n("cached"),
                };
                r.last_event = Some(format!("result: {}", s("status").unwrap_or("?")));
                true
            }
            _ => false,
        }
    }
}

/// An error's words. An API error comes as `[API Error: {json}]`: its
/// `error.code` (the HTTP status) and `error.status` are kept in the report,
/// its `error.message` is the words.
fn api_error(msg: &str, r: &mut AgentReport) -> String {
    let inner = msg
        .trim()
        .strip_prefix("[API Error: ")
        .and_then(|m| m.strip_suffix(']'))
        .unwrap_or(msg);
    let Ok(body) = serde_json::from_str::<Value>(inner) else {
        // Its own words after a 429 it gave up on (0.61.0): "[API Error:
        // <the API's words>] Please wait and try again later. To increase your
        // limits, request a quota increase ...", or a daily quota's "Quota
        // exceeded".
        let lower = msg.to_ascii_lowercase();
        if lower.contains("request a quota increase") || lower.contains("quota exceeded") {
            r.api_error = Some("rate_limit".into());
        }
        return msg.to_string();
    };
    let e = &body["error"];
    r.api_error_status = e["code"].as_i64();
    r.api_error = match e["status"].as_str() {
        Some("UNAUTHENTICATED" | "PERMISSION_DENIED") => Some("authentication_failed".into()),
        Some("RESOURCE_EXHAUSTED") => Some("rate_limit".into()),
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION") => Some("invalid_request".into()),
        Some("NOT_FOUND") => Some("model_not_found".into()),
        Some("UNAVAILABLE") => Some("overloaded".into()),
        Some("INTERNAL") => Some("server_error".into()),
        _ => None,
    };
    e["message"].as_str().unwrap_or(msg).to_string()
}

super::report::json_lines_reader!(GeminiReader);

/// Gemini, as 0.61.0 behaves.
pub struct Gemini;

impl Agent for Gemini {
    fn kind(&self) -> AgentKind {
        AgentKind::Gemini
    }
    fn describe(&self) -> &'static str {
        "the Gemini CLI (0.61.0)"
    }
    fn default_program(&self) -> &'static str {
        "gemini"
    }
    /// Claude's policy (the ceiling, the defaults); tools Gemini has no
    /// counterpart for are dropped.
    fn grant_tools(&self, asked: Option<&[String]>, config: &AgentConfig) -> ToolGrant {
        super::grant_held(asked, config, super::claude::DEFAULT_TOOLS, |t| {
            gemini_tools(t).is_some()
        })
    }
    fn dropped_tools_warning(&self) -> (&'static str, &'static str) {
        (
            "tools_dropped",
            "the agent's allowed_tools ceiling does not include these tools, or Gemini has none like them; they were not granted",
        )
    }
    fn may_edit(&self, granted: &[String]) -> bool {
        crate::tools::can_write(granted)
    }
    fn args(&self, run: &RunArgs) -> Vec<String> {
        args(run.extra_args, &run.file(POLICY_FILE), run.session)
    }
    fn env(&self) -> &'static [(&'static str, &'static str)] {
        ENV
    }
    fn run_files(&self, run: &RunArgs) -> Vec<(&'static str, String)> {
        vec![(POLICY_FILE, policy(run.tools))]
    }
    /// Ctrl-C is its cancel.
    fn stop_signal(&self) -> super::StopSignal {
        super::StopSignal::Interrupt
    }
    /// It has no flags for turns, tool calls or budget: its reader enforces them.
    fn reader(&self, limits: LiveLimits) -> Box<dyn OutputReader> {
        Box::new(GeminiReader::new(limits))
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
