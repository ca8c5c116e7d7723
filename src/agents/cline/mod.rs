//! The Cline CLI 3.x, headless: `cline --json -v -c <workdir> "<lead-in>"`, the
//! prompt on stdin.
//!
//! Cline 3.0.65 in `--json` mode refuses a prompt given only on stdin, and takes
//! a prompt argument only when it contains whitespace (a one-word argument is an
//! unknown command). Piped stdin is appended to the argument as
//! `"<argument>\n\n<stdin>"`. So the argument is a fixed lead-in with a space
//! ([`PROMPT_ARG`]) and the task's prompt goes on stdin, as for Claude: a prompt
//! in argv would hit Windows' 32 KiB command-line limit
//! (`tests/data/agent-output/SCHEMA-NOTES.md`, section 7).
//!
//! Every stdout line is one JSON record with a `type`: `run_start` (session and
//! model, with `-v`), `agent_event` (iterations, tool calls, text, usage, errors),
//! `run_result` (finish reason, iterations, usage with the cost, the answer) and
//! `run_aborted`. Errors of the CLI itself go to stderr as
//! `{"type":"error","message"}`. Cline has no per-tool permission flag (it
//! approves every tool), no turn limit and no budget flag: the reader enforces
//! `max_turns` and `budget_usd` while the agent runs, and stops it when one is
//! passed ([`super::LiveLimits`]).

mod classify;
mod render;

use super::outcome::Failure;
use super::supervise::Exit;
use super::{
    Agent, AgentReport, LineOutcome, LiveLimits, OutputReader, RunArgs, Sessions, ToolGrant, looks_interactive,
};
use crate::config::AgentConfig;
use crate::vocab::AgentKind;
use serde_json::Value;
use std::path::Path;

/// Environment every Cline run gets (unless `agents.cline.env` sets it):
/// the local session backend. By default ("auto") the first run starts a hub,
/// `cline --cline-hub-daemon`, in a session of its own that outlives the task;
/// later runs then execute their sessions and tool commands inside it, without
/// the task's environment and out of reach of cancel and timeout. Local runs
/// keep everything in the agent's own process tree.
pub const ENV: &[(&str, &str)] = &[("CLINE_SESSION_BACKEND_MODE", "local")];

/// The prompt argument: the CLI appends the real prompt, read from stdin, after
/// a blank line.
pub const PROMPT_ARG: &str = "Carry out the task below.";

/// The arguments after the program name. (No `--id`: it cannot continue a
/// session headlessly, see [`Cline::sessions`].)
pub fn args(extra_args: &[String], workdir: &Path) -> Vec<String> {
    let mut v: Vec<String> = extra_args.to_vec();
    // `-v` adds `run_start` (the model).
    v.extend(["--json", "-v"].map(String::from));
    v.push(format!("--cwd={}", workdir.display()));
    v.push(PROMPT_ARG.to_string());
    v
}

/// Reads Cline's `--json` records into an [`AgentReport`].
#[derive(Debug, Default)]
pub struct ClineReader {
    report: AgentReport,
    limits: LiveLimits,
}

impl ClineReader {
    pub fn new(limits: LiveLimits) -> Self {
        Self {
            report: AgentReport::default(),
            limits,
        }
    }

    fn on_agent_event(&mut self, e: &Value) -> bool {
        let r = &mut self.report;
        let s = |k: &str| e.get(k).and_then(Value::as_str);
        match s("type") {
            Some("iteration_start") => {
                let n = e.get("iteration").and_then(Value::as_u64).unwrap_or(0) as u32;
                r.turns = r.turns.max(n);
                r.last_event = Some(format!("turn {n}"));
                true
            }
            Some("content_start") if s("contentType") == Some("tool") => {
                r.tool_calls += 1;
                let name = s("toolName").unwrap_or("tool");
                let arg = e
                    .get("input")
                    .and_then(super::main_argument)
                    .map(|a| format!("({a})"))
                    .unwrap_or_default();
                r.last_event = Some(format!("{name}{arg}"));
                true
            }
            Some("content_end") if s("contentType") == Some("text") => {
                if let Some(t) = s("text").or_else(|| s("accumulated")) {
                    r.last_text = Some(t.to_string());
                }
                false
            }
            Some("content_end") if s("contentType") == Some("tool") => {
                if let Some(err) = s("error") {
                    r.last_event = Some(format!("tool error: {}", super::tail_str(err, 200)));
                    return true;
                }
                false
            }
            Some("usage") => {
                let cost = e.get("totalCost").or_else(|| e.get("cost")).and_then(Value::as_f64);
                if let Some(c) = cost.filter(|c| c.is_finite()) {
                    r.cost_usd = Some(c);
                    return true;
                }
                false
            }
            Some("notice") => {
                r.last_event = s("message").map(String::from);
                r.last_event.is_some()
            }
            Some("done") => {
                if let Some(t) = s("text") {
                    r.last_text = Some(t.to_string());
                }
                false
            }
            Some("error") => {
                let err = e.get("error").unwrap_or(&Value::Null);
                let msg = err.get("message").and_then(Value::as_str).unwrap_or("error");
                r.result_errors.push(msg.to_string());
                // Cline's own class (`auth`, `context_window_exceeded`; local runs
                // only) says more than the error's JavaScript name.
                r.api_error = match s("errorClass") {
                    Some("auth") => Some("authentication_failed".to_string()),
                    Some(c) if c != "unknown" => Some(c.to_string()),
                    _ => err.get("name").and_then(Value::as_str).map(String::from),
                };
                r.last_event = Some(format!("error: {}", super::tail_str(msg, 200)));
                true
            }
            _ => false,
        }
    }

    fn on_json(&mut self, v: &Value) -> bool {
        let s = |k: &str| v.get(k).and_then(Value::as_str);
        match s("type") {
            Some("run_start") => {
                self.report.session_id = s("sessionId").map(String::from);
                self.report.model = s("modelId").map(String::from);
                self.report.last_event = Some(format!("started ({})", s("modelId").unwrap_or("unknown model")));
                true
            }
            Some("agent_event") => self.on_agent_event(v.get("event").unwrap_or(&Value::Null)),
            Some("run_result") => {
                let r = &mut self.report;
                r.result_seen = true;
                r.subtype = s("finishReason").map(String::from);
                r.is_error = r.subtype.as_deref() != Some("completed");
                r.answer = s("text").map(String::from);
                if let Some(n) = v.get("iterations").and_then(Value::as_u64) {
                    r.turns = n as u32;
                }
                let usage = v
                    .get("aggregateUsage")
                    .filter(|u| u.is_object())
                    .or_else(|| v.get("usage"));
                // This run's own (`usage`); cache reads and writes counted
                // apart, included in `input` here.
                if let Some(u) = v.get("usage").filter(|u| u.is_object()).or(usage) {
                    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
                    let cached = n("cacheReadTokens");
                    r.tokens = crate::vocab::Tokens {
                        input: n("inputTokens") + cached + n("cacheWriteTokens"),
                        output: n("outputTokens"),
                        cached,
                    };
                }
                if let Some(c) = usage
                    .and_then(|u| u.get("totalCost"))
                    .and_then(Value::as_f64)
                    .filter(|c| c.is_finite())
                {
                    r.cost_usd = Some(c);
                }
                if r.session_id.is_none() {
                    r.session_id = s("sessionId").map(String::from);
                }
                true
            }
            Some("run_aborted") => {
                self.report.terminal_reason = s("reason").map(String::from);
                if let Some(m) = s("message") {
                    self.report.result_errors.push(m.to_string());
                }
                true
            }
            _ => false,
        }
    }
}

impl OutputReader for ClineReader {
    fn on_line(&mut self, line: &[u8]) -> LineOutcome {
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            return LineOutcome::default();
        }
        let progress = match serde_json::from_slice::<Value>(trimmed) {
            Ok(v) => self.on_json(&v),
            Err(_) => {
                self.report.invalid_lines += 1;
                let text = String::from_utf8_lossy(trimmed);
                if looks_interactive(&text) {
                    self.report.interactive_prompt = Some(super::tail_str(&text, 200).to_string());
                    return LineOutcome {
                        progress: true,
                        stop: Some(format!("the agent asked a question nobody will answer: {text}")),
                    };
                }
                false
            }
        };
        LineOutcome {
            progress,
            stop: self.limits.check(&mut self.report),
        }
    }

    fn on_partial_tail(&mut self, tail: &[u8]) {
        if !tail.trim_ascii().is_empty() {
            self.report.ended_mid_line = true;
        }
    }

    fn report(&self) -> &AgentReport {
        &self.report
    }

    fn into_report(self: Box<Self>) -> AgentReport {
        self.report
    }
}

/// Cline, as 3.0.65 behaves.
pub struct Cline;

impl Agent for Cline {
    fn kind(&self) -> AgentKind {
        AgentKind::Cline
    }
    fn describe(&self) -> &'static str {
        "the Cline CLI (3.0.65)"
    }
    fn default_program(&self) -> &'static str {
        "cline"
    }
    /// It approves every tool itself: nothing can be granted, whatever was
    /// asked for is reported as not enforced.
    fn grant_tools(&self, asked: Option<&[String]>, _config: &AgentConfig) -> ToolGrant {
        ToolGrant::none(asked)
    }
    fn dropped_tools_warning(&self) -> (&'static str, &'static str) {
        (
            "tools_not_enforced",
            "the Cline CLI approves every tool itself: allowed_tools cannot be enforced for it (mode: guarded keeps its edits away from the workdir)",
        )
    }
    fn may_edit(&self, _granted: &[String]) -> bool {
        true
    }
    fn enforces_tools(&self) -> bool {
        false
    }
    fn args(&self, run: &RunArgs) -> Vec<String> {
        args(run.extra_args, run.cwd)
    }
    fn env(&self) -> &'static [(&'static str, &'static str)] {
        ENV
    }
    /// Cline 3.0.65 in the local backend ignores SIGTERM: after one a looping
    /// model got 112-144 more calls in 10 s. It ends on SIGINT in 0.1-0.2 s.
    fn stop_signal(&self) -> super::StopSignal {
        super::StopSignal::Interrupt
    }
    /// It has no flags for turns, budget or tools: its reader enforces them all.
    fn reader(&self, limits: LiveLimits) -> Box<dyn OutputReader> {
        Box::new(ClineReader::new(limits))
    }
    fn classify(&self, exit: &Exit, report: &AgentReport) -> Option<Failure> {
        classify::classify(exit, report)
    }
    /// Its hook events name the session (recorded as `session_id`), but
    /// 3.0.65 cannot continue one headlessly: `--id` switches it to its
    /// interactive chat, and that refuses `--json` ("JSON output mode
    /// requires a prompt argument or piped stdin").
    fn sessions(&self) -> Sessions {
        Sessions::NotResumable(
            "Cline 3.0.65 continues a session only in its interactive chat (`cline --id ID`), which has no headless mode",
        )
    }

    fn render(&self, record: &Value) -> Option<String> {
        render::render(record)
    }
    /// No record on stdout names the session (its hook events' `taskId` is
    /// not it); its history does: `~/.cline/data/sessions/<id>/<id>.json`.
    fn find_session(&self, run: &super::RanAt) -> Option<String> {
        find_session(&run.home.as_ref()?.join(".cline/data/sessions"), run)
    }
}

/// The session in Cline's history folder `sessions` that `run` had: started
/// (its id begins with the epoch milliseconds it started at) no earlier than
/// the run, in the run's folder, with the run's prompt (the argument and
/// stdin, as the CLI joins them); the first such. Only names of the run's
/// time are read.
pub fn find_session(sessions: &Path, run: &super::RanAt) -> Option<String> {
    let since = run
        .started
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis()
        // The CLI's clock and ours are the same; a little slack for rounding.
        .saturating_sub(1000);
    let mut ids: Vec<(u128, String)> = std::fs::read_dir(sessions)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|id| {
            let ms: u128 = id.split_once('_')?.0.parse().ok()?;
            (ms >= since && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')).then_some((ms, id))
        })
        .collect();
    ids.sort();
    let cwd = crate::task::workdir::canonical(&run.cwd).unwrap_or_else(|_| run.cwd.clone());
    let stdin = String::from_utf8_lossy(&run.stdin);
    ids.into_iter().map(|(_, id)| id).find(|id| {
        let meta = sessions.join(id).join(format!("{id}.json"));
        let Ok(bytes) = crate::store::read::read_bounded(&meta, 4 * 1024 * 1024) else {
            return false;
        };
        let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
            return false;
        };
        let same_cwd = v["cwd"]
            .as_str()
            .is_some_and(|c| crate::task::workdir::canonical(Path::new(c)).is_ok_and(|c| c == cwd));
        same_cwd
            && v["prompt"]
                .as_str()
                .is_some_and(|p| p.starts_with(PROMPT_ARG) && p.trim_end().ends_with(stdin.trim()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::LimitHit;

    fn read(lines: &[&str], limits: LiveLimits) -> (AgentReport, Option<String>) {
        let mut r = ClineReader::new(limits);
        let mut stop = None;
        for l in lines {
            stop = stop.or(r.on_line(l.as_bytes()).stop);
        }
        (Box::new(r).into_report(), stop)
    }

    #[test]
    fn a_run_is_read_field_by_field() {
        let (r, stop) = read(
            &[
                r#"{"ts":"2026-08-22T10:00:00.000Z","type":"run_start","providerId":"anthropic","modelId":"claude-sonnet-4-6","catalog":"live","thinking":"off","mode":"act","sessionId":"sess-1"}"#,
                r#"{"ts":"t","type":"agent_event","event":{"type":"iteration_start","iteration":1}}"#,
                r#"{"ts":"t","type":"agent_event","event":{"type":"content_start","contentType":"tool","toolName":"read_file","toolCallId":"c1","input":{"path":"src/main.rs"}}}"#,
                r#"{"ts":"t","type":"agent_event","event":{"type":"usage","inputTokens":10,"outputTokens":5,"totalInputTokens":10,"totalOutputTokens":5,"totalCost":0.012}}"#,
                r#"{"ts":"t","type":"agent_event","event":{"type":"future_event","x":1}}"#,
                r#"{"ts":"t","type":"agent_event","event":{"type":"content_end","contentType":"text","text":"Done."}}"#,
                r#"{"ts":"t","type":"run_result","finishReason":"completed","iterations":2,"usage":{"inputTokens":20,"outputTokens":9,"totalCost":0.02},"durationMs":1500,"text":"All tests pass.","model":{"id":"claude-sonnet-4-6","provider":"anthropic"}}"#,
            ],
            LiveLimits::default(),
        );
        assert_eq!(stop, None);
        assert_eq!(r.session_id.as_deref(), Some("sess-1"));
        assert_eq!(r.model.as_deref(), Some("claude-sonnet-4-6"));
        assert_eq!((r.turns, r.tool_calls), (2, 1));
        assert_eq!(r.cost_usd, Some(0.02));
        assert_eq!(r.answer.as_deref(), Some("All tests pass."));
        assert!(r.result_seen && !r.is_error);
    }

    #[test]
    fn limits_stop_the_run_while_it_goes() {
        let turn = |n: u32| format!(r#"{{"type":"agent_event","event":{{"type":"iteration_start","iteration":{n}}}}}"#);
        let lines: Vec<String> = (1..=5).map(turn).collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (r, stop) = read(
            &refs,
            LiveLimits {
                max_turns: Some(3),
                ..LiveLimits::default()
            },
        );
        assert!(stop.unwrap().contains("4 turns"), "stopped at the 4th turn");
        assert_eq!(r.limit_hit, Some(LimitHit::Turns));

        let cost = r#"{"type":"agent_event","event":{"type":"usage","totalCost":0.30}}"#;
        let (r, stop) = read(
            &[cost],
            LiveLimits {
                budget_usd: Some(0.25),
                ..LiveLimits::default()
            },
        );
        assert!(stop.unwrap().contains("$0.30"));
        assert_eq!(r.limit_hit, Some(LimitHit::Budget));
    }

    #[test]
    fn errors_and_aborts_are_kept() {
        let (r, _) = read(
            &[
                r#"{"type":"agent_event","event":{"type":"error","error":{"name":"APIError","message":"429 rate limit exceeded"},"recoverable":false,"iteration":1}}"#,
                r#"{"type":"run_result","finishReason":"error","iterations":1,"usage":{"inputTokens":1,"outputTokens":0},"durationMs":10,"text":""}"#,
                r#"{"type":"run_aborted","reason":"external_abort","message":"aborted"}"#,
            ],
            LiveLimits::default(),
        );
        assert!(r.is_error);
        assert_eq!(r.subtype.as_deref(), Some("error"));
        assert_eq!(r.result_errors, vec!["429 rate limit exceeded", "aborted"]);
        assert_eq!(r.api_error.as_deref(), Some("APIError"));
        assert_eq!(r.terminal_reason.as_deref(), Some("external_abort"));
    }

    #[test]
    fn the_session_is_found_in_clines_history_by_time_folder_and_prompt() {
        let d = tempfile::tempdir().unwrap();
        let sessions = d.path().join("sessions");
        let wd = d.path().join("wd");
        std::fs::create_dir_all(&wd).unwrap();
        let started = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_796_643_047_000);
        let write = |id: &str, cwd: &Path, prompt: &str| {
            std::fs::create_dir_all(sessions.join(id)).unwrap();
            let meta = serde_json::json!({"sessionId": id, "cwd": cwd, "prompt": prompt});
            std::fs::write(sessions.join(id).join(format!("{id}.json")), meta.to_string()).unwrap();
        };
        let ours = format!("{PROMPT_ARG}\n\nfix the login");
        write("1796643040000_old01", &wd, &ours); // before the run
        write("1796643047500_other", &wd, &format!("{PROMPT_ARG}\n\nanother task"));
        write("1796643047600_elsew", d.path(), &ours); // another folder
        write("1796643047948_mdulu", &wd, &ours);
        let run = crate::agents::RanAt {
            home: None,
            cwd: wd.clone(),
            started,
            stdin: b"fix the login\n".as_slice().into(),
        };
        assert_eq!(find_session(&sessions, &run).as_deref(), Some("1796643047948_mdulu"));
        assert_eq!(find_session(&d.path().join("none"), &run), None);
    }
}
