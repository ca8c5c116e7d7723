//! The fake Cline CLI 3.x in `--json` mode (chosen when `--json` is on the
//! command line, which the real Claude CLI refuses). NOT part of the product.
//!
//! There is no recorded Cline transcript in the fixtures; the shapes follow
//! `tests/data/agent-output/SCHEMA-NOTES.md` section 5 (from Cline's source at
//! 21cb8d2 and npm cline@3.0.65): one JSON object a line with `ts` and `type`,
//! `run_start` only with `-v`, `agent_event`s, `run_result`, `run_aborted` after
//! a first SIGTERM (then exit 0), CLI errors on stderr as `{"type":"error"}`,
//! exit 1 for any finish reason but `completed`.
//!
//! Like the real one it refuses a prompt argument without whitespace (or several
//! arguments), wants a prompt argument or piped stdin, and knows its flags.
//! Scenarios (`@fake NAME key=value` in the prompt): success, turns (n=,
//! cost_per_turn=, turn_ms=: a long run for live limits), max_iterations,
//! mistake_limit, rate_limit, overloaded, auth, network, model_not_found,
//! crash_mid_line, no_result, hang (ignores SIGTERM, with a grandchild).

use crate::{Directive, Out, apply_edits, hang_with_a_grandchild, session_id};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const WITH_VALUE: &[&str] = &[
    "-c",
    "--cwd",
    "-m",
    "--model",
    "-P",
    "--provider",
    "-k",
    "--key",
    "-t",
    "--timeout",
    "--retries",
    "-s",
    "--system",
    "--id",
    "--data-dir",
    "--auto-approve",
];
const BOOL: &[&str] = &["--json", "-p", "--plan", "-v", "--verbose", "-y", "--yolo"];

static ABORT: AtomicBool = AtomicBool::new(false);

fn ts() -> String {
    jiff::Timestamp::now().to_string()
}

fn stderr_error(message: &str) -> i32 {
    eprintln!(
        "{}",
        serde_json::json!({"ts": ts(), "type": "error", "message": message})
    );
    1
}

fn record(out: &mut Out, v: serde_json::Value) {
    let mut v = v;
    v.as_object_mut().unwrap().insert("ts".into(), ts().into());
    out.line(&v.to_string());
}

fn event(out: &mut Out, e: serde_json::Value) {
    record(out, serde_json::json!({"type": "agent_event", "event": e}));
}

fn run_result(out: &mut Out, reason: &str, iterations: u32, cost: f64, text: &str) {
    record(
        out,
        serde_json::json!({"type": "run_result", "finishReason": reason, "iterations": iterations,
            "usage": {"inputTokens": 100 * iterations, "outputTokens": 20 * iterations, "totalCost": cost},
            "durationMs": 1200, "text": text, "model": {"id": "claude-sonnet-4-6", "provider": "anthropic"}}),
    );
}

/// A first SIGTERM aborts the run: `run_result` (aborted), `run_aborted`, exit 0.
fn on_sigterm() {
    #[cfg(unix)]
    {
        extern "C" fn handler(_: libc::c_int) {
            ABORT.store(true, Ordering::SeqCst);
        }
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(libc::SIGTERM, handler as *const () as libc::sighandler_t);
        }
    }
}

/// Sleeps `ms`, waking early on an abort; true if aborted.
fn nap(ms: u64) -> bool {
    let end = std::time::Instant::now() + Duration::from_millis(ms);
    while std::time::Instant::now() < end {
        if ABORT.load(Ordering::SeqCst) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    ABORT.load(Ordering::SeqCst)
}

fn aborted(out: &mut Out, iterations: u32, cost: f64) -> i32 {
    run_result(out, "aborted", iterations, cost, "");
    record(
        out,
        serde_json::json!({"type": "run_aborted", "reason": "external_abort", "message": "Run aborted by signal"}),
    );
    0
}

fn api_failure(out: &mut Out, name: &str, message: &str) -> i32 {
    event(
        out,
        serde_json::json!({"type": "error", "error": {"name": name, "message": message, "stack": ""}, "recoverable": false, "iteration": 1}),
    );
    run_result(out, "error", 1, 0.0, "");
    1
}

pub fn run() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut positional = Vec::new();
    let (mut cwd, mut id, mut verbose, mut timeout) = (None, None, false, None::<u64>);
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        // Commander's `--flag=value` form, or the value in the next argument.
        let inline = a
            .split_once('=')
            .filter(|(n, _)| n.starts_with("--") && WITH_VALUE.contains(n));
        if BOOL.contains(&a) {
            verbose |= a == "-v" || a == "--verbose";
        } else if inline.is_some() || WITH_VALUE.contains(&a) {
            let (name, v) = match inline {
                Some((n, v)) => (n, v.to_string()),
                None => {
                    let Some(v) = args.get(i + 1).cloned() else {
                        eprintln!("error: option '{a} <value>' argument missing");
                        return 1;
                    };
                    i += 1;
                    (a, v)
                }
            };
            match name {
                "-c" | "--cwd" => cwd = Some(v),
                "--id" => id = Some(v),
                "-t" | "--timeout" => timeout = v.parse().ok(),
                _ => {}
            }
        } else if a.starts_with('-') {
            eprintln!("error: unknown option '{a}'");
            return 1;
        } else {
            positional.push(a.to_string());
        }
        i += 1;
    }
    if positional.len() > 1 || positional.first().is_some_and(|p| !p.contains(char::is_whitespace)) {
        eprintln!(
            "Unknown command or unquoted prompt: {}\nPrompt text must be passed as a single quoted argument, for example: cline \"fix the tests\". Use \"cline --help\" to see available commands and flags.",
            positional.join(" ")
        );
        return 1;
    }
    let mut stdin = String::new();
    let _ = std::io::stdin().read_to_string(&mut stdin);
    let prompt = match (positional.first(), stdin.is_empty()) {
        (Some(p), false) => format!("{p}\n\n{stdin}"),
        (Some(p), true) => p.clone(),
        // 3.0.65 refuses a prompt only on stdin in --json mode (recording `noprovider`).
        (None, _) => {
            return stderr_error(
                "JSON output mode requires a prompt argument or piped stdin (interactive mode is unsupported)",
            );
        }
    };
    if let Some(dir) = &cwd
        && std::env::set_current_dir(dir).is_err()
    {
        return stderr_error(&format!("ENOENT: no such file or directory, chdir '{dir}'"));
    }
    let directive = Directive::from_prompt(&prompt);
    let attempt: u64 = std::env::var("ORCHESTRATOR_ATTEMPT")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let failing = directive.num("fail_times").is_none_or(|n| attempt <= n);
    let scenario = if failing {
        directive.scenario.as_str()
    } else {
        "success"
    };
    // 3.0.65 prints no session id anywhere (recording `plain`); `--id` is kept for
    // the record only.
    let _ = id.unwrap_or_else(session_id);
    let mut out = Out::new();
    on_sigterm();
    if verbose {
        record(
            &mut out,
            serde_json::json!({"type": "run_start", "providerId": "anthropic", "modelId": "claude-sonnet-4-6", "catalog": "live", "thinking": "off", "mode": "act"}),
        );
    }
    let started = std::time::Instant::now();
    let timed_out = |limit: Option<u64>| limit.is_some_and(|s| started.elapsed() >= Duration::from_secs(s));
    match scenario {
        "" | "success" => {
            apply_edits(&directive);
            event(&mut out, serde_json::json!({"type": "iteration_start", "iteration": 1}));
            event(
                &mut out,
                serde_json::json!({"type": "content_start", "contentType": "tool", "toolName": "read_file", "toolCallId": "call_1", "input": {"path": "README.md"}}),
            );
            event(
                &mut out,
                serde_json::json!({"type": "content_end", "contentType": "tool", "toolName": "read_file", "toolCallId": "call_1", "output": "ok", "durationMs": 3}),
            );
            event(
                &mut out,
                serde_json::json!({"type": "usage", "inputTokens": 100, "outputTokens": 20, "totalInputTokens": 100, "totalOutputTokens": 20, "totalCost": 0.01}),
            );
            if nap(directive.num("sleep").unwrap_or(0)) {
                return aborted(&mut out, 1, 0.01);
            }
            let first = prompt
                .lines()
                .find(|l| !l.contains("@fake") && !l.trim().is_empty())
                .unwrap_or("");
            let answer = directive
                .get("answer")
                .map(|a| a.replace('_', " "))
                .unwrap_or_else(|| format!("Done: {first}"));
            event(&mut out, serde_json::json!({"type": "iteration_start", "iteration": 2}));
            event(
                &mut out,
                serde_json::json!({"type": "content_end", "contentType": "text", "text": answer}),
            );
            event(&mut out, serde_json::json!({"type": "usage", "totalCost": 0.02}));
            event(
                &mut out,
                serde_json::json!({"type": "done", "reason": "completed", "text": answer, "iterations": 2}),
            );
            run_result(&mut out, "completed", 2, 0.02, &answer);
            0
        }
        "turns" => {
            let n = directive.num("n").unwrap_or(10) as u32;
            let per: f64 = directive
                .get("cost_per_turn")
                .and_then(|c| c.parse().ok())
                .unwrap_or(0.01);
            let turn_ms = directive.num("turn_ms").unwrap_or(50);
            let mut cost = 0.0;
            for k in 1..=n {
                event(&mut out, serde_json::json!({"type": "iteration_start", "iteration": k}));
                event(
                    &mut out,
                    serde_json::json!({"type": "content_start", "contentType": "tool", "toolName": "execute_command", "toolCallId": format!("call_{k}"), "input": {"command": "cargo test"}}),
                );
                cost += per;
                event(&mut out, serde_json::json!({"type": "usage", "totalCost": cost}));
                if nap(turn_ms) {
                    return aborted(&mut out, k, cost);
                }
                if timed_out(timeout) {
                    return stderr_error(&format!("run timed out after {}s", timeout.unwrap_or(0)));
                }
            }
            run_result(&mut out, "completed", n, cost, "All turns done.");
            0
        }
        "max_iterations" => {
            event(&mut out, serde_json::json!({"type": "iteration_start", "iteration": 1}));
            run_result(&mut out, "max_iterations", 50, 0.3, "");
            1
        }
        "mistake_limit" => {
            run_result(&mut out, "mistake_limit", 3, 0.05, "");
            1
        }
        "rate_limit" => api_failure(
            &mut out,
            "RateLimitError",
            "429 Rate limit exceeded: please retry after 1s",
        ),
        "overloaded" => api_failure(&mut out, "APIError", "529 Overloaded"),
        "auth" => api_failure(&mut out, "AuthenticationError", "401 invalid x-api-key"),
        "network" => api_failure(&mut out, "APIConnectionError", "Connection error."),
        "model_not_found" => api_failure(&mut out, "NotFoundError", "404 model: claude-nonexistent"),
        "crash_mid_line" => {
            event(&mut out, serde_json::json!({"type": "iteration_start", "iteration": 1}));
            out.raw(r#"{"ts":"x","type":"agent_event","event":{"type":"content_st"#);
            out.flush();
            std::process::abort();
        }
        "no_result" => {
            event(&mut out, serde_json::json!({"type": "iteration_start", "iteration": 1}));
            0
        }
        "hang" => {
            hang_with_a_grandchild();
            event(&mut out, serde_json::json!({"type": "iteration_start", "iteration": 1}));
            std::thread::sleep(Duration::from_secs(600));
            0
        }
        other => stderr_error(&format!("fake cline: unknown scenario `{other}`")),
    }
}
