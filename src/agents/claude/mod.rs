//! The Claude Code CLI, headless: `claude -p --output-format stream-json --verbose`.
//!
//! The prompt goes on stdin, which is then closed: a positional prompt would hit
//! Windows' 32 KiB command-line limit, and `--allowedTools` is variadic, so a
//! prompt after it would be swallowed as one more tool (see
//! `tests/data/agent-output/SCHEMA-NOTES.md`, section 1).
//!
//! The task's tools are the only tools that exist for the agent: `--tools`
//! names the built-in set (Claude Code 2.1.332 offers the model nothing else;
//! names it does not know are ignored), and `--allowedTools` pre-approves the
//! same list. `--allowedTools` alone is not enough: tools not listed still
//! exist, and read-only shell commands (`echo`, `cat`) run without approval.
//! A `Bash(prefix:*)` grant makes the shell exist, so Claude Code's read-only
//! commands run too, whatever the prefix; only leaving Bash out takes the
//! shell away.
//!
//! The reader follows the stream as it comes and tolerates what it does not know:
//! new CLI versions add message types and fields, and a reader that failed on them
//! would fail every task after an upgrade.

mod classify;
mod render;

use super::outcome::Failure;
use super::supervise::Exit;
use super::{
    Agent, AgentReport, LineOutcome, LiveLimits, OutputReader, RunArgs, Sessions, ToolGrant, looks_interactive,
    main_argument, short,
};
use crate::config::AgentConfig;
use crate::tools::can_write;
use crate::vocab::AgentKind;
use serde_json::Value;

/// What the plan knows that shapes Claude's command line.
#[derive(Debug, Clone, Default)]
pub struct ClaudeArgs<'a> {
    pub extra_args: &'a [String],
    pub max_turns: Option<u32>,
    pub budget_usd: Option<f64>,
    pub allowed_tools: &'a [String],
    /// Continue this session (`--resume`).
    pub resume_session: Option<&'a str>,
}

/// The arguments after the program name.
pub fn args(a: &ClaudeArgs) -> Vec<String> {
    let mut v: Vec<String> = a.extra_args.to_vec();
    v.extend(["-p", "--output-format", "stream-json", "--verbose"].map(String::from));
    if let Some(s) = a.resume_session {
        // One argument: a value can never be read as a flag of its own.
        v.push(format!("--resume={s}"));
    }
    if let Some(n) = a.max_turns {
        v.extend(["--max-turns".to_string(), n.to_string()]);
    }
    if let Some(b) = a.budget_usd {
        // What is left of a budget is a difference of floats: six places are
        // a millionth of a dollar, and no `0.00029999999999999997` in the argv.
        v.push(format!("--max-budget-usd={}", round6(b)));
    }
    v.push(format!("--tools={}", tool_set(a.allowed_tools).join(",")));
    // Variadic: must come last, with nothing positional after it.
    if !a.allowed_tools.is_empty() {
        v.push("--allowedTools".to_string());
        v.extend(a.allowed_tools.iter().cloned());
    }
    v
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// The built-in tools that must exist for `allowed`: each name without its
/// pattern (`Bash(git:*)` needs `Bash`), once, in order.
fn tool_set(allowed: &[String]) -> Vec<&str> {
    let mut set: Vec<&str> = Vec::new();
    for t in allowed {
        let base = t.split_once('(').map_or(t.as_str(), |(b, _)| b).trim();
        if !base.is_empty() && !set.contains(&base) {
            set.push(base);
        }
    }
    set
}

/// Reads stream-json into an [`AgentReport`].
#[derive(Debug, Default)]
pub struct ClaudeReader {
    report: AgentReport,
    limits: LiveLimits,
    /// The last top-level assistant message's id. A message's content blocks
    /// come as consecutive lines sharing its id, so a new id is a new turn; only
    /// the last is kept (memory stays flat over any number of messages).
    last_message: Option<String>,
}

impl ClaudeReader {
    /// A reader that stops the agent when it passes `limits`.
    pub fn with_limits(limits: LiveLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    fn on_json(&mut self, v: &Value) -> bool {
        let r = &mut self.report;
        if r.session_id.is_none()
            && let Some(s) = v.get("session_id").and_then(Value::as_str)
        {
            r.session_id = Some(s.to_string());
        }
        match v.get("type").and_then(Value::as_str) {
            Some("system") => match v.get("subtype").and_then(Value::as_str) {
                Some("init") => {
                    r.model = v.get("model").and_then(Value::as_str).map(String::from);
                    r.last_event = Some(format!("started ({})", r.model.as_deref().unwrap_or("unknown model")));
                    true
                }
                Some("api_retry") => {
                    r.api_retries += 1;
                    let err = v.get("error").and_then(Value::as_str).unwrap_or("unknown").to_string();
                    let attempt = v.get("attempt").and_then(Value::as_u64).unwrap_or(0);
                    let max = v.get("max_retries").and_then(Value::as_u64).unwrap_or(0);
                    r.last_event = Some(format!("API retry {attempt}/{max} ({err})"));
                    r.last_api_retry_error = Some(err);
                    true
                }
                Some("task_started") => {
                    let d = v.get("description").and_then(Value::as_str).unwrap_or("");
                    r.last_event = Some(format!("subagent: {}", short(d, 80)));
                    true
                }
                _ => false,
            },
            Some("assistant") => {
                let top_level = v.get("parent_tool_use_id").is_none_or(Value::is_null);
                let msg = v.get("message").unwrap_or(&Value::Null);
                if let Some(e) = v.get("error").and_then(Value::as_str) {
                    r.api_error = Some(e.to_string());
                }
                if top_level
                    && let Some(id) = msg.get("id").and_then(Value::as_str)
                    && self.last_message.as_deref() != Some(id)
                {
                    self.last_message = Some(id.to_string());
                    r.turns = r.turns.saturating_add(1);
                }
                for block in msg.get("content").and_then(Value::as_array).into_iter().flatten() {
                    match block.get("type").and_then(Value::as_str) {
                        Some("text") => {
                            let text = block.get("text").and_then(Value::as_str).unwrap_or("");
                            if top_level && !text.is_empty() {
                                r.last_text = Some(text.to_string());
                                r.last_event = Some(format!("text: {}", short(text, 80)));
                            }
                        }
                        Some("tool_use") => {
                            r.tool_calls += 1;
                            let name = block.get("name").and_then(Value::as_str).unwrap_or("?");
                            let arg = block.get("input").and_then(main_argument);
                            r.last_event = Some(match arg {
                                Some(a) => format!("tool: {name}({a})"),
                                None => format!("tool: {name}"),
                            });
                        }
                        _ => {}
                    }
                }
                true
            }
            Some("rate_limit_event") => {
                let info = v.get("rate_limit_info").unwrap_or(&Value::Null);
                let status = info.get("status").and_then(Value::as_str).unwrap_or("");
                if status == "rejected" {
                    r.rate_limit_resets_at = info.get("resetsAt").and_then(Value::as_i64);
                    r.last_event = Some("rate limited".to_string());
                    return true;
                }
                false
            }
            Some("result") => {
                r.result_seen = true;
                r.is_error = v.get("is_error").and_then(Value::as_bool).unwrap_or(false);
                r.subtype = v.get("subtype").and_then(Value::as_str).map(String::from);
                r.terminal_reason = v.get("terminal_reason").and_then(Value::as_str).map(String::from);
                r.api_error_status = v.get("api_error_status").and_then(Value::as_i64);
                if let Some(n) = v.get("num_turns").and_then(Value::as_u64) {
                    r.turns = n as u32;
                }
                r.cost_usd = run_cost(v);
                r.tokens = run_tokens(v);
                if let Some(text) = v.get("result").and_then(Value::as_str) {
                    r.answer = Some(text.to_string());
                }
                if let Some(d) = v.get("permission_denials").and_then(Value::as_array) {
                    r.permission_denials = d.clone();
                }
                if let Some(errs) = v.get("errors").and_then(Value::as_array) {
                    r.result_errors = errs.iter().filter_map(Value::as_str).map(String::from).collect();
                }
                r.last_event = Some(match (&r.subtype, r.is_error) {
                    (Some(s), false) => format!("result: {s}"),
                    (Some(s), true) => format!("result: {s} (error)"),
                    (None, _) => "result".to_string(),
                });
                true
            }
            // stream_event, user (tool results), and types newer than this reader.
            _ => false,
        }
    }
}

/// What this run cost. A resumed session's `total_cost_usd` covers every run of
/// the session so far (2.1.332); `model_usage_since_last_result` holds this
/// run's share per model. Older CLIs have only the total (`total_cost_usd`
/// since 1.0; `cost_usd` / `total_cost` before), which is then this run's.
/// A figure that is not a finite, non-negative number is not a cost.
fn run_cost(v: &Value) -> Option<f64> {
    let valid = |c: f64| c.is_finite() && c >= 0.0;
    let since_last = v
        .get("model_usage_since_last_result")
        .and_then(Value::as_object)
        .and_then(|models| {
            let costs: Vec<f64> = models
                .values()
                .filter_map(|m| m.get("costUSD").and_then(Value::as_f64))
                .collect();
            (!costs.is_empty() && costs.iter().all(|c| valid(*c))).then(|| costs.iter().sum())
        });
    since_last.or_else(|| {
        ["total_cost_usd", "cost_usd", "total_cost"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_f64))
            .filter(|c| valid(*c))
    })
}

/// The tokens this run used: its share of a resumed session
/// (`model_usage_since_last_result`, per model), else the result's `usage`.
/// Claude counts cache reads and writes apart from `input_tokens`; `input`
/// here includes them.
fn run_tokens(v: &Value) -> crate::vocab::Tokens {
    let n = |o: &Value, k: &str| o.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut t = crate::vocab::Tokens::default();
    if let Some(models) = v.get("model_usage_since_last_result").and_then(Value::as_object) {
        for m in models.values() {
            let cached = n(m, "cacheReadInputTokens");
            t.add(crate::vocab::Tokens {
                input: n(m, "inputTokens") + cached + n(m, "cacheCreationInputTokens"),
                output: n(m, "outputTokens"),
                cached,
            });
        }
        return t;
    }
    let u = v.get("usage").unwrap_or(&Value::Null);
    let cached = n(u, "cache_read_input_tokens");
    crate::vocab::Tokens {
        input: n(u, "input_tokens") + cached + n(u, "cache_creation_input_tokens"),
        output: n(u, "output_tokens"),
        cached,
    }
}

impl OutputReader for ClaudeReader {
    fn on_line(&mut self, line: &[u8]) -> LineOutcome {
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            return LineOutcome::default();
        }
        match serde_json::from_slice::<Value>(trimmed) {
            Ok(v) if v.is_object() => LineOutcome {
                progress: self.on_json(&v),
                stop: self.limits.check(&mut self.report),
            },
            _ => {
                self.report.invalid_lines += 1;
                let text = String::from_utf8_lossy(trimmed);
                if looks_interactive(&text) {
                    let q = short(&text, 200);
                    self.report.interactive_prompt = Some(q.clone());
                    // Claude in -p mode never asks; if it does, nobody will answer.
                    return LineOutcome {
                        progress: true,
                        stop: Some(format!("the agent is waiting for an answer: {q}")),
                    };
                }
                LineOutcome::default()
            }
        }
    }
    fn on_oversized_line(&mut self) {
        self.report.invalid_lines += 1;
    }
    fn on_partial_tail(&mut self, tail: &[u8]) {
        // A complete JSON object without its newline is still a message.
        if serde_json::from_slice::<Value>(tail.trim_ascii()).is_ok_and(|v| v.is_object()) {
            self.on_line(tail);
        } else if !tail.trim_ascii().is_empty() {
            self.report.ended_mid_line = true;
            let text = String::from_utf8_lossy(tail);
            if looks_interactive(&text) {
                self.report.interactive_prompt = Some(short(&text, 200));
            }
        }
    }
    fn report(&self) -> &AgentReport {
        &self.report
    }
    fn into_report(self: Box<Self>) -> AgentReport {
        let mut r = self.report;
        if r.answer.is_none() {
            r.answer = r.last_text.clone();
        }
        r
    }
}

/// Tools Claude Code may be granted by default. Shell access (`Bash`, `Bash(...)`)
/// is deliberately absent: the config must allow it explicitly.
pub const TOOL_CEILING: &[&str] = &[
    "Read",
    "Glob",
    "Grep",
    "LS",
    "Edit",
    "MultiEdit",
    "Write",
    "NotebookEdit",
    "TodoWrite",
    "WebFetch",
    "WebSearch",
    "Task",
];
/// What a Claude task gets when it names no tools: read and edit files, no shell.
pub const DEFAULT_TOOLS: &[&str] = &["Read", "Glob", "Grep", "LS", "Edit", "MultiEdit", "Write"];

/// Claude Code, as 2.1.332 behaves.
pub struct Claude;

impl Agent for Claude {
    fn kind(&self) -> AgentKind {
        AgentKind::Claude
    }
    fn describe(&self) -> &'static str {
        "the Claude Code CLI (2.1.332)"
    }
    fn default_program(&self) -> &'static str {
        "claude"
    }
    /// The tools asked for (else the config's `default_tools`, else
    /// [`DEFAULT_TOOLS`]) within the ceiling (the config's `allowed_tools`,
    /// else [`TOOL_CEILING`]).
    fn grant_tools(&self, asked: Option<&[String]>, config: &AgentConfig) -> ToolGrant {
        super::within_ceiling(asked, config, DEFAULT_TOOLS)
    }
    fn dropped_tools_warning(&self) -> (&'static str, &'static str) {
        (
            "tools_dropped",
            "the agent's allowed_tools ceiling does not include these tools; they were not granted",
        )
    }
    fn may_edit(&self, granted: &[String]) -> bool {
        can_write(granted)
    }
    fn args(&self, run: &RunArgs) -> Vec<String> {
        args(&ClaudeArgs {
            extra_args: run.extra_args,
            max_turns: run.max_turns,
            budget_usd: run.budget_usd,
            allowed_tools: run.tools,
            resume_session: run.session,
        })
    }
    /// The CLI enforces turns (`--max-turns`) and budget (`--max-budget-usd`)
    /// itself, and reports its cost only at the end: the reader checks only
    /// `max_tool_calls`.
    fn reader(&self, limits: LiveLimits) -> Box<dyn OutputReader> {
        Box::new(ClaudeReader::with_limits(LiveLimits {
            max_tool_calls: limits.max_tool_calls,
            ..LiveLimits::default()
        }))
    }
    fn classify(&self, exit: &Exit, report: &AgentReport) -> Option<Failure> {
        classify::classify(exit, report)
    }
    fn sessions(&self) -> Sessions {
        Sessions::Resumable
    }
    /// A UUID: the CLI refuses anything else.
    fn valid_session_id(&self, id: &str) -> bool {
        let parts: Vec<&str> = id.split('-').collect();
        parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
            && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
    }
    fn render(&self, record: &Value) -> Option<String> {
        render::render(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_puts_variadic_tools_last_and_no_prompt() {
        let tools = vec!["Read".to_string(), "Bash(cargo test:*)".to_string()];
        let extra = vec!["--model".to_string(), "opus".to_string()];
        let a = args(&ClaudeArgs {
            extra_args: &extra,
            max_turns: Some(5),
            budget_usd: Some(1.5),
            allowed_tools: &tools,
            resume_session: None,
        });
        assert_eq!(
            a,
            [
                "--model",
                "opus",
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--max-turns",
                "5",
                "--max-budget-usd=1.5",
                "--tools=Read,Bash",
                "--allowedTools",
                "Read",
                "Bash(cargo test:*)"
            ]
        );
    }

    #[test]
    fn a_resumed_run_costs_its_own_share_not_the_session_total() {
        let line = |total: f64, since: Option<f64>| {
            let mut v =
                serde_json::json!({"type": "result", "subtype": "success", "is_error": false, "total_cost_usd": total});
            if let Some(c) = since {
                v["model_usage_since_last_result"] =
                    serde_json::json!({"m1": {"costUSD": c * 0.25}, "m2": {"costUSD": c * 0.75}});
            }
            v
        };
        assert_eq!(run_cost(&line(0.00218, Some(0.0012))), Some(0.0012));
        assert_eq!(run_cost(&line(0.00098, None)), Some(0.00098));
        assert_eq!(run_cost(&line(-3.0, None)), None, "a negative cost is no cost");
        assert_eq!(run_cost(&serde_json::json!({"total_cost_usd": 1e308 * 10.0})), None);
    }

    #[test]
    fn unknown_types_and_garbage_are_tolerated() {
        let mut r = ClaudeReader::default();
        assert_eq!(r.on_line(br#"{"type":"brand_new_type","x":1}"#), LineOutcome::default());
        assert_eq!(r.on_line(b"not json at all"), LineOutcome::default());
        assert_eq!(r.report().invalid_lines, 1);
        let out = r.on_line(b"Do you trust the files in this folder?");
        assert!(out.stop.is_some());
        r.on_partial_tail(br#"{"type":"assistant","mess"#);
        assert!(r.report().ended_mid_line);
    }
}
