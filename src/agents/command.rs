//! `agent: command`: a plain shell command run in the workdir.
//!
//! The command is the task's `command` field (or its prompt). It runs through
//! the platform shell (`sh -c` on Unix, `cmd /C` on Windows) because users write
//! shell syntax; it comes from the task file, which the operator trusts to run
//! commands, and is passed as one argument, never spliced into another string.
//! The prompt is on stdin, and the answer is the tail of stdout.

use super::{AgentReport, LineOutcome, OutputReader, looks_interactive, tail_str};

/// Kept of stdout as the task's answer.
const ANSWER_BYTES: usize = 16 * 1024;

/// argv for running `command` through the platform shell.
pub fn argv(command: &str) -> Vec<String> {
    if cfg!(windows) {
        vec!["cmd".into(), "/C".into(), command.into()]
    } else {
        vec!["sh".into(), "-c".into(), command.into()]
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
