//! The fake CLIs (`fake-agent`) stand in for the real ones in the fast tests;
//! each scenario that imitates a behaviour of a real CLI is held here to the
//! recorded real run it stands for: the bridge must read both the same way
//! (the same class of outcome, the same retry decision), and the fake may print
//! no kind of record the real CLI does not.
//!
//! Scenarios with no real counterpart inject failures the CLIs cannot be made
//! to show on demand (a crash mid-line, a hang that ignores SIGTERM, huge
//! output, a daemon left behind, an interactive prompt, no result line) and
//! are not listed here.

use crate::common::fake_agent;
use orchestrator::agents::classify;
use orchestrator::agents::cline::ClineReader;
use orchestrator::agents::outcome::{ErrorKind, Failure, Retry};
use orchestrator::agents::supervise::Exit;
use orchestrator::agents::{AgentReport, LiveLimits, OutputReader, claude::ClaudeReader};
use orchestrator::config::AgentKind;
use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

fn data(path: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/agent-output/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// What the bridge makes of one run: its report, its class, and the kinds of
/// records it printed (`type` and `subtype`, or Cline's event type).
struct Reading {
    report: AgentReport,
    failure: Option<Failure>,
    kinds: BTreeSet<String>,
}

fn reading(agent: AgentKind, stdout: &str, stderr: &str, code: i32) -> Reading {
    let mut reader: Box<dyn OutputReader> = match agent {
        AgentKind::Cline => Box::new(ClineReader::new(LiveLimits::default())),
        _ => Box::new(ClaudeReader::default()),
    };
    let mut kinds = BTreeSet::new();
    for line in stdout.lines() {
        reader.on_line(line.as_bytes());
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
            let sub = v["subtype"].as_str().or(v["event"]["type"].as_str()).unwrap_or("");
            kinds.insert(format!("{}/{sub}", v["type"].as_str().unwrap_or("?")));
        }
    }
    let report = reader.into_report();
    let exit = Exit {
        code: Some(code),
        stderr_tail: stderr.to_string(),
        ..Exit::default()
    };
    let failure = classify(agent, &exit, &report);
    Reading { report, failure, kinds }
}

fn recorded(agent: AgentKind, dir: &str, name: &str) -> Reading {
    let code = data(&format!("{dir}/{name}.rc")).trim().parse().unwrap();
    reading(
        agent,
        &data(&format!("{dir}/{name}.out")),
        &data(&format!("{dir}/{name}.err")),
        code,
    )
}

fn fake(agent: AgentKind, scenario: &str) -> Reading {
    let args: Vec<&str> = match agent {
        AgentKind::Cline => vec!["--json", "-v", "--cwd=.", "Carry out the task below."],
        _ => vec!["-p", "--output-format", "stream-json", "--verbose", "--max-turns", "2"],
    };
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(fake_agent())
        .args(&args)
        .current_dir(dir.path())
        .env("ORCHESTRATOR_ATTEMPT", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("@fake {scenario}\nhello\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    reading(
        agent,
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
        out.status.code().unwrap_or(-1),
    )
}

/// The class and retry decision, with a rate limit's reset time left out (a
/// recorded reset is in the past).
fn outcome(f: &Option<Failure>) -> Option<(ErrorKind, &'static str)> {
    f.as_ref().map(|f| {
        let retry = match f.retry {
            Retry::No => "no",
            Retry::Backoff => "backoff",
            Retry::WaitForLimit(_) => "wait",
        };
        (f.kind, retry)
    })
}

fn assert_matches(agent: AgentKind, scenario: &str, dir: &str, recording: &str) {
    let (f, r) = (fake(agent, scenario), recorded(agent, dir, recording));
    assert_eq!(
        outcome(&f.failure),
        outcome(&r.failure),
        "fake `{scenario}` vs recording `{recording}`: {:?} / {:?}",
        f.failure,
        r.failure
    );
    let invented: Vec<&String> = f.kinds.difference(&r.kinds).collect();
    assert!(
        invented.is_empty(),
        "fake `{scenario}` prints records `{recording}` has not: {invented:?} (recording: {:?})",
        r.kinds
    );
    assert_eq!(f.report.result_seen, r.report.result_seen, "{scenario}");
}

#[test]
fn fake_claude_scenarios_match_the_real_runs() {
    let dir = "claude-2.1.332";
    for (scenario, recording) in [
        ("success", "write_file"),
        ("overloaded", "overloaded"),
        ("auth", "auth"),
        ("network", "network"),
        ("server_error", "server_error"),
        ("max_turns", "max_turns"),
        ("budget", "budget"),
        ("api_rate_limit", "rate_limit"),
    ] {
        assert_matches(AgentKind::Claude, scenario, dir, recording);
    }
    // The subscription rate limit (`rate_limit`, with a rejected `rate_limit_event`
    // carrying `resetsAt`) and the older `usage_limit|<epoch>` text have no
    // 2.1.332 recording (an API key never gets them): they must at least be read
    // as the recorded API-key rate limit is.
    let real = outcome(&recorded(AgentKind::Claude, dir, "rate_limit").failure);
    for scenario in ["rate_limit", "usage_limit"] {
        assert_eq!(outcome(&fake(AgentKind::Claude, scenario).failure), real, "{scenario}");
    }
}

#[test]
fn fake_cline_scenarios_match_the_real_runs() {
    let dir = "cline-3.0.65";
    for (scenario, recording) in [("success", "file"), ("auth", "r401"), ("rate_limit", "r429")] {
        assert_matches(AgentKind::Cline, scenario, dir, recording);
    }
}
