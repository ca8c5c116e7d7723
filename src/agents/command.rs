//! `agent: command`: a plain shell command run in the workdir.
//!
//! The command is the task's `command` field (or its prompt). It runs through
//! the platform shell (`sh -c` on Unix, `cmd /C` on Windows) because users write
//! shell syntax; it comes from the task file, which the operator trusts to run
//! commands, and is passed as one argument, never spliced into another string.
//! The prompt is on stdin, and the answer is the tail of stdout.

use super::outcome::{ErrorKind, Failure, Retry, exit_text, last_line};
use super::supervise::Exit;
use super::{
    Agent, AgentReport, LineOutcome, LiveLimits, Output, OutputReader, RunArgs, Sessions, Step, ToolGrant,
    looks_interactive, tail_str,
};
use crate::config::AgentConfig;
use crate::vocab::AgentKind;

/// Kept of stdout as the task's answer.
const ANSWER_BYTES: usize = 16 * 1024;

/// The platform shell's arguments that run `command` (after `sh` or `cmd`).
pub fn shell_args(command: &str) -> Vec<String> {
    if cfg!(windows) {
        vec!["/C".into(), command.into()]
    } else {
        vec!["-c".into(), command.into()]
    }
}

/// Keeps the tail of stdout as the answer.
#[derive(Debug, Default)]
pub struct PlainReader {
    report: AgentReport,
    tail: String,
}

impl PlainReader {
    fn push(&mut self, text: &str) {
        self.tail.push_str(text);
        if self.tail.len() > 2 * ANSWER_BYTES {
            self.tail = tail_str(&self.tail, ANSWER_BYTES).to_string();
        }
    }
}

impl OutputReader for PlainReader {
    fn on_line(&mut self, line: &[u8]) -> LineOutcome {
        let text = String::from_utf8_lossy(line);
        if self.report.interactive_prompt.is_none() && looks_interactive(&text) {
            self.report.interactive_prompt = Some(text.trim().to_string());
        }
        self.push(&text);
        self.push("\n");
        let last: String = text.trim().chars().take(120).collect();
        if !last.is_empty() {
            self.report.last_event = Some(last);
        }
        LineOutcome {
            progress: true,
            stop: None,
        }
    }
    fn on_oversized_line(&mut self) {
        self.report.invalid_lines += 1;
    }
    fn on_partial_tail(&mut self, tail: &[u8]) {
        // A command that does not end its output with a newline is normal.
        let text = String::from_utf8_lossy(tail).into_owned();
        self.push(&text);
    }
    fn report(&self) -> &AgentReport {
        &self.report
    }
    fn into_report(mut self: Box<Self>) -> AgentReport {
        let answer = tail_str(&self.tail, ANSWER_BYTES).trim_end().to_string();
        self.report.answer = Some(answer);
        self.report
    }
}

/// A plain command run through the platform shell.
pub struct Command;

impl Agent for Command {
    fn kind(&self) -> AgentKind {
        AgentKind::Command
    }
    fn describe(&self) -> &'static str {
        "a command"
    }
    fn default_program(&self) -> &'static str {
        if cfg!(windows) { "cmd" } else { "sh" }
    }
    fn grant_tools(&self, asked: Option<&[String]>, _config: &AgentConfig) -> ToolGrant {
        ToolGrant::none(asked)
    }
    fn dropped_tools_warning(&self) -> (&'static str, &'static str) {
        (
            "tools_not_enforced",
            "a command agent has no tools to allow: allowed_tools is ignored",
        )
    }
    /// A command is the operator's own program, and commands in one
    /// repository run side by side on purpose: not held to one writer.
    fn may_edit(&self, _granted: &[String]) -> bool {
        false
    }
    fn enforces_tools(&self) -> bool {
        false
    }
    /// The shell's arguments for the run's command (a step, or the task's
    /// `command`), else what the plan spelled out.
    fn args(&self, run: &RunArgs) -> Vec<String> {
        match run.command {
            Some(command) => shell_args(command),
            None => run.planned.to_vec(),
        }
    }
    /// The prompt, for every step: a step is a command, not a message.
    fn stdin(&self, prompt: &str, _step: Option<Step>, _in_session: bool) -> String {
        prompt.to_string()
    }
    fn reader(&self, _limits: LiveLimits) -> Box<dyn OutputReader> {
        Box::new(PlainReader::default())
    }
    fn classify(&self, exit: &Exit, report: &AgentReport) -> Option<Failure> {
        classify(exit, report)
    }
    fn sessions(&self) -> Sessions {
        Sessions::None
    }
    fn valid_session_id(&self, _id: &str) -> bool {
        false
    }
    fn version_args(&self) -> Option<&'static [&'static str]> {
        None
    }
    fn output(&self) -> Output {
        Output::Text
    }
}

/// A command that did not exit 0 failed (127: its program was not found); a signal is a crash, retried.
fn classify(exit: &Exit, report: &AgentReport) -> Option<Failure> {
    if exit.code == Some(0) {
        return None;
    }
    let stderr = last_line(&exit.stderr_tail);
    let detail = if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    };
    if exit.code.is_none() {
        return Some(Failure {
            kind: ErrorKind::AgentCrashed,
            message: format!("the command was {}{detail}", exit_text(exit)),
            retry: Retry::Backoff,
        });
    }
    if let Some(q) = &report.interactive_prompt {
        return Some(Failure {
            kind: ErrorKind::InteractivePrompt,
            message: format!("the command asked: {q} ({})", exit_text(exit)),
            retry: Retry::No,
        });
    }
    // 127 is the shell's "command not found": the task's program, not an
    // agent CLI (whose advice `not_found` gives) is missing.
    let message = if exit.code == Some(127) {
        format!(
            "the shell did not find the command's program ({}){detail}: check its spelling, and that it is installed on the daemon's PATH",
            exit_text(exit)
        )
    } else {
        format!("the command failed with {}{detail}", exit_text(exit))
    };
    Some(Failure {
        kind: ErrorKind::CommandFailed,
        message,
        retry: Retry::No,
    })
}
