//! `orchestrator logs ID [--follow] [--raw]`: the agent's output, for people.
//!
//! An agent's JSON records are rendered as text by its module (Claude's
//! stream-json, Cline's `--json`: the session or model, the agent's words, each
//! tool call with its main argument, tool errors, retries, rate limits and the
//! result). Anything else (a command's output, non-JSON lines) is shown as is.

use super::common::{load_plan, load_progress, load_result, resolve_task};
use super::{Cli, exit};
use crate::agents::{self, Agent, Output};
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
    let agent = load_plan(&dir).map(|p| agents::of(p.agent));
    let records = agent.filter(|a| !args.stderr && !args.raw && a.output() == Output::Records);
    let mut out = std::io::stdout().lock();
    let mut pos = 0u64;
    let mut pending = Vec::new();
    loop {
        if let Ok(mut f) = crate::events::open_shared(&path) {
            f.seek(SeekFrom::Start(pos))?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            pos += buf.len() as u64;
            if let Some(agent) = records {
                pending.extend_from_slice(&buf);
                while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=i).collect();
                    if let Some(text) = render(agent, &line[..line.len() - 1]) {
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
            if let Some(agent) = records
                && !pending.is_empty()
                && let Some(text) = render(agent, &pending)
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

/// One line of an agent's output as a person wants to read it (`None`:
/// nothing worth showing). Lines that are not JSON are shown as they are.
pub fn render(agent: &dyn Agent, line: &[u8]) -> Option<String> {
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() {
        return None;
    }
    match serde_json::from_slice::<Value>(trimmed) {
        Ok(v) => agent.render(&v),
        Err(_) => Some(String::from_utf8_lossy(trimmed).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::AgentKind;

    fn render_all(text: &str) -> Vec<String> {
        text.lines()
            .filter_map(|l| super::render(agents::of(AgentKind::Cline), l.as_bytes()))
            .collect()
    }

    fn render(line: &[u8]) -> Option<String> {
        super::render(agents::of(AgentKind::Claude), line)
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
