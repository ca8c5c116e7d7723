//! opencode (`opencode-ai`), headless: `opencode run --format=json
//! [--session=ID]`, the prompt on stdin.
//!
//! Every stdout line is one JSON event (1.18.33) with a `sessionID`:
//! `step_start` (one model call), `text` (`part.text`), `tool_use`
//! (`part.tool`, `part.state {status, input, error}`), `step_finish`
//! (`part.reason`: `tool-calls` or the call's end, `part.tokens {input,
//! output, reasoning, cache {read, write}}`, `part.cost`) and `error`
//! (`error.name`, `error.data {message, statusCode, isRetryable}`) when the
//! run fails. There is no final record: a run that ended with a step whose
//! reason is not `tool-calls` and exited 0 succeeded; its answer is the text
//! of that last step.
//!
//! Least privilege is its permission config, given to each run in
//! `OPENCODE_CONFIG_CONTENT` (merged over the user's own config): every tool
//! denied (`"*": "deny"`) but the granted ones; the model is offered only
//! those. `Bash(cargo test:*)` is the shell with only that command pattern
//! allowed, which opencode enforces. Paths outside the project are denied
//! (`*` covers its `external_directory` permission).
//! Updates, sharing and language-server downloads are off.

mod classify;
mod render;

use super::outcome::Failure;
use super::supervise::Exit;
use super::{Agent, AgentReport, LiveLimits, OutputReader, RunArgs, Sessions, ToolGrant, short};
use crate::config::AgentConfig;
use crate::vocab::{AgentKind, Tokens};
use serde_json::{Map, Value, json};

/// Each tool a task may be granted, and opencode's permission that carries it.
const TOOLS: &[(&str, &[&str])] = &[
    ("Read", &["read"]),
    ("LS", &["list"]),
    ("Glob", &["glob"]),
    ("Grep", &["grep"]),
    ("Edit", &["edit"]),
    ("MultiEdit", &["edit"]),
    ("Write", &["edit", "write"]),
    ("Bash", &["bash"]),
    ("WebFetch", &["webfetch"]),
    ("WebSearch", &["websearch"]),
    ("TodoWrite", &["todowrite", "todoread"]),
];

fn permissions_of(tool: &str) -> Option<&'static [&'static str]> {
    let base = tool.split_once('(').map_or(tool, |(b, _)| b);
    TOOLS.iter().find(|(t, _)| *t == base).map(|(_, p)| *p)
}

/// The config a run gets on top of the user's: the permissions that let the
/// agent use `granted` and nothing else.
pub fn config(granted: &[String]) -> String {
    let mut perm = Map::new();
    perm.insert("*".into(), json!("deny"));
    let mut shell_patterns: Vec<String> = Vec::new();
    let mut whole_shell = false;
    for t in granted {
        if let Some(inner) = t.strip_prefix("Bash(").and_then(|r| r.strip_suffix(')')) {
            let prefix = inner.strip_suffix(":*").unwrap_or(inner).trim();
            if !prefix.is_empty() {
                shell_patterns.push(format!("{prefix}*"));
            }
            continue;
        }
        whole_shell |= t == "Bash";
        for p in permissions_of(t).unwrap_or(&[]) {
            perm.insert((*p).to_string(), json!("allow"));
        }
    }
    if !whole_shell && !shell_patterns.is_empty() {
        let mut bash = Map::new();
        bash.insert("*".into(), json!("deny"));
        for p in shell_patterns {
            bash.insert(p, json!("allow"));
        }
        perm.insert("bash".into(), Value::Object(bash));
    }
    json!({ "permission": perm }).to_string()
}

/// Environment of every run (unless `agents.opencode.env` sets it).
pub const ENV: &[(&str, &str)] = &[
    ("OPENCODE_DISABLE_AUTOUPDATE", "1"),
    ("OPENCODE_DISABLE_SHARE", "1"),
    ("OPENCODE_DISABLE_LSP_DOWNLOAD", "1"),
];

/// The arguments after the program name.
pub fn args(extra_args: &[String], session: Option<&str>) -> Vec<String> {
    let mut v: Vec<String> = extra_args.to_vec();
    v.extend(["run", "--format=json"].map(String::from));
    if let Some(id) = session {
        v.push(format!("--session={id}"));
    }
    v
}

/// Reads opencode's JSON events into an [`AgentReport`].
#[derive(Debug, Default)]
pub struct OpencodeReader {
    report: AgentReport,
    limits: LiveLimits,
    /// The text of the current step.
    text: String,
}

impl OpencodeReader {
    pub fn new(limits: LiveLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    fn on_json(&mut self, v: &Value) -> bool {
        let r = &mut self.report;
        if r.session_id.is_none() {
            r.session_id = v["sessionID"].as_str().map(String::from);
        }
        let part = &v["part"];
        match v["type"].as_str() {
            Some("step_start") => {
                r.turns += 1;
                self.text.clear();
                false
            }
            Some("text") => {
                let t = part["text"].as_str().unwrap_or("");
                self.text.push_str(t);
                r.last_text = Some(self.text.clone());
                r.last_event = Some(format!("text: {}", short(&self.text, 80)));
                true
            }
            Some("tool_use") => {
                r.tool_calls += 1;
                let name = part["tool"].as_str().unwrap_or("tool");
                let state = &part["state"];
                r.last_event = Some(match (state["status"].as_str(), state["error"].as_str()) {
                    (Some("error"), Some(e)) => format!("tool {name} failed: {}", short(e, 120)),
                    _ => match state.get("input").and_then(super::main_argument) {
                        Some(a) => format!("tool: {name}({a})"),
                        None => format!("tool: {name}"),
                    },
                });
                true
            }
            Some("step_finish") => {
                let t = &part["tokens"];
                let n = |v: &Value| v.as_u64().unwrap_or(0);
                let cached = n(&t["cache"]["read"]);
                r.tokens.add(Tokens {
                    input: n(&t["input"]) + cached + n(&t["cache"]["write"]),
                    output: n(&t["output"]) + n(&t["reasoning"]),
                    cached,
                });
                if let Some(c) = part["cost"].as_f64().filter(|c| c.is_finite() && *c > 0.0) {
                    r.cost_usd = Some(r.cost_usd.unwrap_or(0.0) + c);
                }
                let reason = part["reason"].as_str().unwrap_or("");
                if reason != "tool-calls" {
                    r.result_seen = true;
                    r.subtype = Some(reason.to_string());
                    r.answer = Some(self.text.clone());
                }
                true
            }
            Some("error") => {
                let e = &v["error"];
                let data = &e["data"];
                let msg = data["message"].as_str().or(e["name"].as_str()).unwrap_or("error");
                r.is_error = true;
                r.result_errors.push(msg.to_string());
                r.api_error_status = data["statusCode"].as_i64().or(r.api_error_status);
                r.api_error = e["name"].as_str().map(String::from);
                r.last_event = Some(format!("error: {}", short(msg, 160)));
                true
            }
            _ => false,
        }
    }
}

super::report::json_lines_reader!(OpencodeReader);

/// opencode, as 1.18.33 behaves.
pub struct Opencode;

impl Agent for Opencode {
    fn kind(&self) -> AgentKind {
        AgentKind::Opencode
    }
    fn describe(&self) -> &'static str {
        "opencode (1.18.33)"
    }
    fn default_program(&self) -> &'static str {
        "opencode"
    }
    /// Claude's policy (the ceiling, the defaults); tools opencode has no
    /// permission for are dropped.
    fn grant_tools(&self, asked: Option<&[String]>, config: &AgentConfig) -> ToolGrant {
        super::grant_held(asked, config, super::claude::DEFAULT_TOOLS, |t| {
            permissions_of(t).is_some()
        })
    }
    fn dropped_tools_warning(&self) -> (&'static str, &'static str) {
        (
            "tools_dropped",
            "the agent's allowed_tools ceiling does not include these tools, or opencode has no permission like them; they were not granted",
        )
    }
    fn may_edit(&self, granted: &[String]) -> bool {
        crate::tools::can_write(granted)
    }
    fn args(&self, run: &RunArgs) -> Vec<String> {
        args(run.extra_args, run.session)
    }
    fn env(&self) -> &'static [(&'static str, &'static str)] {
        ENV
    }
    fn run_env(&self, run: &RunArgs) -> Vec<(String, String)> {
        vec![("OPENCODE_CONFIG_CONTENT".into(), config(run.tools))]
    }
    /// It has no flags for turns, tool calls or budget: its reader enforces them.
    fn reader(&self, limits: LiveLimits) -> Box<dyn OutputReader> {
        Box::new(OpencodeReader::new(limits))
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
