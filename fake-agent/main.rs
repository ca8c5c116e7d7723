//! A fake Claude Code CLI for the orchestrator's tests. NOT part of the product.
//!
//! It checks its command line the way the real `claude` does (`-p`, stream-json
//! needs `--verbose`, unknown options, an empty prompt), reads the prompt from
//! stdin, and then does what the prompt's `@fake` line says: replay a recorded
//! real stream, or fail the ways the real CLI fails (rate limit with resetsAt,
//! usage limit, 529 overload, auth, network, model not found, max turns, budget,
//! a crash mid-line, huge output, an interactive trust prompt, a hang that
//! ignores SIGTERM with a grandchild). Output shapes follow the recorded streams
//! in tests/data/agent-output/ and the schema notes beside them.
//!
//! Directive: a prompt line `@fake SCENARIO [key=value ...]`. Keys:
//!   fail_times=N   fail only while ORCHESTRATOR_ATTEMPT <= N, then succeed
//!   sleep=MS       wait before the final result
//!   resets_in=S    for rate_limit / usage_limit: reset time from now
//!   mb=N           size for huge_output / no_newline
//!   distinct=1     (huge_output) every line a new message id, a few bytes of text
//!   answer=TEXT    the final answer of a success (underscores become spaces)
//!   fail_unless=PATH  fail only while PATH does not exist
//!   write=P1,P2    (success) append a line to these files, relative to the cwd
//!                  (folders created); a path may be absolute or use `..`
//!   delete=P1,P2   (success) delete these files
//!
//! Scenarios `overloaded`, `auth`, `network`, `server_error`, `max_turns`,
//! `budget` and `api_rate_limit`
//! replay what the real Claude Code 2.1.332 printed (`claude-2.1.332/`), with
//! their exit codes; `tests/suite/fakes_match_recordings.rs` holds every other
//! scenario to the recording it stands for.
//!
//! With `--json` on its command line it is the fake Cline CLI instead (`cline.rs`).
//!
//! Scenario `tool_loop n=N turn_ms=MS` makes N tool calls, one a turn.
//!
//! Scenario `daemonize` leaves a process in a new session holding stdout open
//! (`clear_env=1`: with an empty environment, so without the daemon's marks).
//!
//! `--resume ID` continues that session: the stream reports session_id ID, and
//! a success answer says which session and step it ran in.

mod cline;

use std::io::{Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const FIXTURES: &[(&str, &str)] = &[
    (
        "tools",
        include_str!("../tests/data/agent-output/claude-stream-json-archistrator-success-with-tools-v2.1.220.ndjson"),
    ),
    (
        "subagent",
        include_str!(
            "../tests/data/agent-output/claude-stream-json-archistrator-success-with-subagent-v2.1.220.ndjson"
        ),
    ),
    (
        "model_not_found",
        include_str!(
            "../tests/data/agent-output/claude-stream-json-archistrator-api-error-model-not-found-v2.1.220.ndjson"
        ),
    ),
    (
        "basic",
        include_str!("../tests/data/agent-output/claude-stream-json-gleam-basic-query-v2.1.7.ndjson"),
    ),
    (
        "ls",
        include_str!("../tests/data/agent-output/claude-stream-json-gleam-ls-tool-v2.1.3.ndjson"),
    ),
    (
        "permission_denied",
        include_str!(
            "../tests/data/agent-output/claude-stream-json-rust-claude-codes-permission-denied-v2.1.15.ndjson"
        ),
    ),
];

/// Scenarios that replay a run of the real Claude Code 2.1.332 as recorded
/// (`tests/data/agent-output/claude-2.1.332/`), with this run's session id:
/// (scenario, stdout, exit code).
const RECORDED: &[(&str, &str, i32)] = &[
    (
        "overloaded",
        include_str!("../tests/data/agent-output/claude-2.1.332/overloaded.out"),
        1,
    ),
    (
        "auth",
        include_str!("../tests/data/agent-output/claude-2.1.332/auth.out"),
        1,
    ),
    (
        "max_turns",
        include_str!("../tests/data/agent-output/claude-2.1.332/max_turns.out"),
        1,
    ),
    (
        "budget",
        include_str!("../tests/data/agent-output/claude-2.1.332/budget.out"),
        1,
    ),
    (
        "network",
        include_str!("../tests/data/agent-output/claude-2.1.332/network.out"),
        1,
    ),
    (
        "server_error",
        include_str!("../tests/data/agent-output/claude-2.1.332/server_error.out"),
        1,
    ),
    (
        "api_rate_limit",
        include_str!("../tests/data/agent-output/claude-2.1.332/rate_limit.out"),
        1,
    ),
];

/// Prints a recorded run with `session` in place of the recorded session id.
fn replay_recorded(out: &mut Out, text: &str, session: &str) {
    let recorded = text
        .lines()
        .find_map(|l| {
            serde_json::from_str::<serde_json::Value>(l).ok()?["session_id"]
                .as_str()
                .map(String::from)
        })
        .unwrap_or_default();
    for line in text.lines() {
        if recorded.is_empty() {
            out.line(line);
        } else {
            out.line(&line.replace(&recorded, session));
        }
    }
}

/// Options the real CLI knows (a subset is enough: others are "unknown option").
const FLAGS_WITH_VALUE: &[&str] = &[
    "--output-format",
    "--input-format",
    "--max-turns",
    "--max-budget-usd",
    "--model",
    "--resume",
    "-r",
    "--session-id",
    "--permission-mode",
    "--append-system-prompt",
    "--system-prompt",
    "--fallback-model",
    "--settings",
];
const FLAGS_VARIADIC: &[&str] = &[
    "--allowedTools",
    "--allowed-tools",
    "--disallowedTools",
    "--disallowed-tools",
    "--add-dir",
    "--mcp-config",
    "--betas",
    "--tools",
];
const FLAGS_BOOL: &[&str] = &[
    "-p",
    "--print",
    "--verbose",
    "--dangerously-skip-permissions",
    "-c",
    "--continue",
    "--include-partial-messages",
    "--replay-user-messages",
    "--debug",
];

fn main() {
    if std::env::var("FAKE_AGENT_ROLE").as_deref() == Ok("sleeper") {
        ignore_sigterm();
        std::thread::sleep(Duration::from_secs(600));
        return;
    }
    // The real Claude CLI refuses `--json`; the real Cline CLI needs it.
    let code = if std::env::args().skip(1).any(|a| a == "--json") {
        cline::run()
    } else {
        run()
    };
    std::process::exit(code);
}

fn fail_usage(msg: &str) -> i32 {
    eprintln!("{msg}");
    1
}

struct Cli {
    print: bool,
    verbose: bool,
    output_format: Option<String>,
    positional: Vec<String>,
    max_turns: Option<u32>,
    resume: Option<String>,
}

/// Sets a valued option, as the real CLI validates it.
fn set_value(cli: &mut Cli, a: &str, v: String) -> Result<(), String> {
    match a {
        "--output-format" => cli.output_format = Some(v),
        "--max-turns" => {
            cli.max_turns = Some(
                v.parse()
                    .map_err(|_| format!("error: option '--max-turns' invalid: {v}"))?,
            )
        }
        "--max-budget-usd" => {
            let b: f64 = v.parse().unwrap_or(0.0);
            if b.is_nan() || b <= 0.0 {
                return Err("--max-budget-usd must be a positive number greater than 0".into());
            }
        }
        "--resume" | "-r" => cli.resume = Some(v),
        _ => {}
    }
    Ok(())
}

fn parse_args() -> Result<Cli, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--version") {
        return Err("VERSION".into());
    }
    let mut cli = Cli {
        print: false,
        verbose: false,
        output_format: None,
        positional: Vec::new(),
        max_turns: None,
        resume: None,
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "--" {
            cli.positional.extend(args[i + 1..].iter().cloned());
            break;
        }
        if FLAGS_BOOL.contains(&a) {
            match a {
                "-p" | "--print" => cli.print = true,
                "--verbose" => cli.verbose = true,
                _ => {}
            }
        } else if let Some((name, v)) = a.split_once('=').filter(|(n, _)| n.starts_with("--")) {
            // Commander's `--flag=value` form, for valued and variadic options alike.
            if FLAGS_WITH_VALUE.contains(&name) {
                set_value(&mut cli, name, v.to_string())?;
            } else if !FLAGS_VARIADIC.contains(&name) {
                return Err(format!("error: unknown option '{name}'"));
            }
        } else if FLAGS_WITH_VALUE.contains(&a) {
            let v = args
                .get(i + 1)
                .ok_or_else(|| format!("error: option '{a} <value>' argument missing"))?
                .clone();
            set_value(&mut cli, a, v)?;
            i += 1;
        } else if FLAGS_VARIADIC.contains(&a) {
            // Like commander's variadic options: everything up to the next option.
            while i + 1 < args.len() && !args[i + 1].starts_with('-') {
                i += 1;
            }
        } else if a.starts_with('-') {
            return Err(format!("error: unknown option '{a}'"));
        } else {
            cli.positional.push(a.to_string());
        }
        i += 1;
    }
    Ok(cli)
}

fn run() -> i32 {
    let cli = match parse_args() {
        Ok(c) => c,
        Err(e) if e == "VERSION" => {
            println!("2.1.220 (Claude Code) [fake]");
            return 0;
        }
        Err(e) => return fail_usage(&e),
    };
    if !cli.print {
        return fail_usage("fake-agent: only headless (-p) mode is emulated");
    }
    if cli.output_format.as_deref() == Some("stream-json") && !cli.verbose {
        return fail_usage("Error: When using --print, --output-format=stream-json requires --verbose");
    }
    let mut stdin = String::new();
    let _ = std::io::stdin().read_to_string(&mut stdin);
    let prompt = [cli.positional.join(" "), stdin]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    if prompt.trim().is_empty() {
        return fail_usage(
            "Error: Input must be provided either through stdin or as a prompt argument when using --print",
        );
    }
    let directive = Directive::from_prompt(&prompt);
    let attempt: u32 = std::env::var("ORCHESTRATOR_ATTEMPT")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let failing = directive.num("fail_times").is_none_or(|n| u64::from(attempt) <= n)
        && directive
            .get("fail_unless")
            .is_none_or(|p| !std::path::Path::new(p).exists());
    let session = cli.resume.clone().unwrap_or_else(session_id);
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut out = Out::new();

    if let Some(name) = directive.get("replay") {
        let Some((_, text)) = FIXTURES.iter().find(|(n, _)| *n == name) else {
            return fail_usage(&format!("fake-agent: no fixture {name}"));
        };
        out.raw(text);
        let last = text.lines().last().unwrap_or("");
        return if last.contains("\"is_error\":true") { 1 } else { 0 };
    }
    let scenario = if failing {
        directive.scenario.as_str()
    } else {
        "success"
    };
    if let Some((_, text, code)) = RECORDED.iter().find(|(name, _, _)| *name == scenario) {
        replay_recorded(&mut out, text, &session);
        return *code;
    }
    out.line(&init(&session, &cwd));
    let sleep_ms = directive.num("sleep").unwrap_or(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    match scenario {
        "" | "success" => {
            apply_edits(&directive);
            out.line(&assistant_text(&session, "msg_1", "Working on it."));
            out.line(&tool_use(&session, "msg_1", "Read", r#"{"file_path":"README.md"}"#));
            // As a real run: the tool's result comes back before the next turn.
            out.line(&format!(r#"{{"type":"user","message":{{"role":"user","content":[{{"tool_use_id":"toolu_1","type":"tool_result","content":"1\tREADME"}}]}},"parent_tool_use_id":null,"session_id":"{session}","uuid":"u-tr-1"}}"#));
            std::thread::sleep(Duration::from_millis(sleep_ms));
            let first = prompt
                .lines()
                .find(|l| !l.starts_with("@fake") && !l.trim().is_empty())
                .unwrap_or("");
            let answer = directive
                .get("answer")
                .map(|a| a.replace('_', " "))
                .unwrap_or_else(|| match &cli.resume {
                    Some(sid) => format!("Done in session {sid}: {first}"),
                    None => format!("Done: {first}"),
                });
            out.line(&assistant_text(&session, "msg_2", &answer));
            out.line(&result_ok(&session, &answer, 2, 0.0123));
            0
        }
        "rate_limit" => {
            let resets = now + directive.num("resets_in").unwrap_or(2);
            out.line(&format!(r#"{{"type":"rate_limit_event","rate_limit_info":{{"status":"rejected","resetsAt":{resets},"rateLimitType":"five_hour","overageStatus":"rejected","isUsingOverage":false}},"uuid":"u-rl","session_id":"{session}"}}"#));
            api_error(
                &mut out,
                &session,
                "rate_limit",
                Some(429),
                "You've hit your session limit · resets 3pm (UTC)",
            )
        }
        "usage_limit" => {
            let resets = now + directive.num("resets_in").unwrap_or(2);
            api_error(
                &mut out,
                &session,
                "rate_limit",
                None,
                &format!("Claude AI usage limit reached|{resets}"),
            )
        }
        "tool_loop" => {
            // Tool call after tool call (turn_ms apart), then a success: for live limits.
            let n = directive.num("n").unwrap_or(50);
            for k in 1..=n {
                out.line(&tool_use(
                    &session,
                    &format!("msg_{k}"),
                    "Grep",
                    r#"{"pattern":"TODO"}"#,
                ));
                std::thread::sleep(Duration::from_millis(directive.num("turn_ms").unwrap_or(50)));
            }
            out.line(&result_ok(&session, "Looped.", n as u32, 0.01));
            0
        }
        "no_result" => {
            out.line(&assistant_text(&session, "msg_1", "I will stop here without a result."));
            0
        }
        "crash_mid_line" => {
            out.line(&assistant_text(&session, "msg_1", "Starting."));
            out.raw(r#"{"type":"assistant","message":{"model":"claude-sonnet-5","id":"msg_2","type":"message","role":"assistant","content":[{"type":"te"#);
            out.flush();
            std::process::abort();
        }
        "huge_output" => {
            let mb = directive.num("mb").unwrap_or(20);
            let pad = "x".repeat(1000);
            let line = assistant_text(&session, "msg_big", &pad);
            // `distinct=1`: every line a message of its own (a new id), as a long
            // run of many small turns prints them.
            let distinct = directive.num("distinct").is_some();
            let mut written = 0u64;
            let mut n = 0u64;
            while written < mb * 1024 * 1024 {
                let line = if distinct {
                    n += 1;
                    assistant_text(&session, &format!("msg_{n}"), "ok")
                } else {
                    line.clone()
                };
                out.line(&line);
                written += line.len() as u64 + 1;
            }
            out.line(&result_ok(&session, "Printed a lot.", 1, 0.01));
            0
        }
        "no_newline" => {
            let mb = directive.num("mb").unwrap_or(20);
            let chunk = "y".repeat(64 * 1024);
            for _ in 0..(mb * 16) {
                out.raw(&chunk);
            }
            0
        }
        "invalid_utf8" => {
            out.bytes(b"\xff\xfe not utf-8 \xc3\x28\n");
            out.line(&result_ok(&session, "Survived bad bytes.", 1, 0.001));
            0
        }
        "trust_prompt" => {
            // What the interactive CLI shows in a folder it does not trust yet.
            out.raw("Do you trust the files in this folder?\n\n/some/folder\n\n❯ 1. Yes, proceed\n  2. No, exit\n\nEnter to confirm · Esc to exit\n");
            out.flush();
            std::thread::sleep(Duration::from_secs(600));
            0
        }
        "daemonize" => {
            // Leaves a process in its own session that keeps stdout open, then
            // finishes normally: the way a tool that starts a server misbehaves.
            let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
            if directive.num("clear_env").is_some() {
                // Drops the daemon's marks too: only the output grace stops waiting for it.
                cmd.env_clear();
            }
            cmd.env("FAKE_AGENT_ROLE", "sleeper").stdin(std::process::Stdio::null());
            #[cfg(unix)]
            {
                use std::os::unix::process::CommandExt;
                // SAFETY: setsid is async-signal-safe.
                unsafe {
                    cmd.pre_exec(|| {
                        libc::setsid();
                        Ok(())
                    });
                }
            }
            #[allow(clippy::zombie_processes)]
            let child = cmd.spawn().expect("spawn the daemon");
            record_pids(&[child.id()]);
            out.line(&result_ok(&session, "Started a server and left it running.", 1, 0.002));
            0
        }
        "hang" => {
            hang_with_a_grandchild();
            out.line(&assistant_text(&session, "msg_1", "Thinking very hard..."));
            out.flush();
            std::thread::sleep(Duration::from_secs(600));
            0
        }
        other => fail_usage(&format!("fake-agent: unknown scenario `{other}`")),
    }
}

fn api_error(out: &mut Out, session: &str, code: &str, status: Option<u16>, text: &str) -> i32 {
    let text_json = serde_json::to_string(text).unwrap();
    out.line(&format!(
        r#"{{"type":"assistant","message":{{"id":"synthetic-1","model":"<synthetic>","role":"assistant","stop_reason":"stop_sequence","stop_sequence":"","type":"message","usage":{{"input_tokens":0,"output_tokens":0}},"content":[{{"type":"text","text":{text_json}}}]}},"parent_tool_use_id":null,"session_id":"{session}","uuid":"u-syn","error":"{code}","is_api_error_message":true}}"#
    ));
    let status = status.map_or("null".to_string(), |s| s.to_string());
    out.line(&format!(
        r#"{{"is_error":true,"duration_api_ms":0,"num_turns":1,"stop_reason":"stop_sequence","session_id":"{session}","total_cost_usd":0,"usage":{{}},"modelUsage":{{}},"permission_denials":[],"terminal_reason":"api_error","subtype":"success","api_error_status":{status},"result":{text_json},"type":"result","duration_ms":20,"uuid":"u-res"}}"#
    ));
    1
}

fn init(session: &str, cwd: &str) -> String {
    let cwd = serde_json::to_string(cwd).unwrap();
    format!(
        r#"{{"type":"system","subtype":"init","cwd":{cwd},"session_id":"{session}","tools":["Task","Bash","Glob","Grep","Read","Edit","Write"],"mcp_servers":[],"model":"claude-sonnet-5","permissionMode":"default","apiKeySource":"none","claude_code_version":"2.1.220","uuid":"u-init"}}"#
    )
}

fn assistant_text(session: &str, id: &str, text: &str) -> String {
    let text = serde_json::to_string(text).unwrap();
    format!(
        r#"{{"type":"assistant","message":{{"model":"claude-sonnet-5","id":"{id}","type":"message","role":"assistant","content":[{{"type":"text","text":{text}}}],"stop_reason":null,"usage":{{"input_tokens":2,"output_tokens":5}}}},"parent_tool_use_id":null,"session_id":"{session}","uuid":"u-{id}"}}"#
    )
}

fn tool_use(session: &str, id: &str, name: &str, input: &str) -> String {
    format!(
        r#"{{"type":"assistant","message":{{"model":"claude-sonnet-5","id":"{id}","type":"message","role":"assistant","content":[{{"type":"tool_use","id":"toolu_1","name":"{name}","input":{input}}}],"stop_reason":null,"usage":{{"input_tokens":2,"output_tokens":5}}}},"parent_tool_use_id":null,"session_id":"{session}","uuid":"u-tool-{id}"}}"#
    )
}

fn result_ok(session: &str, answer: &str, turns: u32, cost: f64) -> String {
    let answer = serde_json::to_string(answer).unwrap();
    format!(
        r#"{{"type":"result","subtype":"success","is_error":false,"duration_ms":50,"duration_api_ms":40,"num_turns":{turns},"result":{answer},"stop_reason":"end_turn","session_id":"{session}","total_cost_usd":{cost},"usage":{{"input_tokens":4,"output_tokens":10}},"permission_denials":[],"terminal_reason":"completed","uuid":"u-res"}}"#
    )
}

fn session_id() -> String {
    let n =
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 ^ (u64::from(std::process::id()) << 32);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        n >> 32,
        (n >> 16) & 0xffff,
        n & 0xfff,
        (n >> 4) & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

struct Directive {
    scenario: String,
    keys: Vec<(String, String)>,
}

impl Directive {
    fn from_prompt(prompt: &str) -> Self {
        // Anywhere in a line: a step arrives as "Step 2 of 3: @fake ...".
        let line = prompt
            .lines()
            .find_map(|l| l.find("@fake").map(|i| &l[i + 5..]))
            .unwrap_or("");
        let mut scenario = String::new();
        let mut keys = Vec::new();
        for word in line.split_whitespace() {
            match word.split_once('=') {
                Some((k, v)) => keys.push((k.to_string(), v.to_string())),
                None => scenario = word.to_string(),
            }
        }
        Self { scenario, keys }
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.keys.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }
    fn num(&self, k: &str) -> Option<u64> {
        self.get(k).and_then(|v| v.parse().ok())
    }
}

struct Out(std::io::BufWriter<std::io::Stdout>);

impl Out {
    fn new() -> Self {
        Out(std::io::BufWriter::new(std::io::stdout()))
    }
    fn line(&mut self, s: &str) {
        let _ = writeln!(self.0, "{s}");
        let _ = self.0.flush();
    }
    fn raw(&mut self, s: &str) {
        let _ = self.0.write_all(s.as_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        let _ = self.0.write_all(b);
    }
    fn flush(&mut self) {
        let _ = self.0.flush();
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        let _ = self.0.flush();
    }
}

/// Appends pids to `$FAKE_AGENT_PIDS`, so tests can check what is still alive.
fn record_pids(pids: &[u32]) {
    if let Ok(path) = std::env::var("FAKE_AGENT_PIDS") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        for pid in pids {
            writeln!(f, "{pid}").unwrap();
        }
    }
}

fn ignore_sigterm() {
    #[cfg(unix)]
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
    }
}

/// Real edits, for the tests of files_changed, guarded mode and validation.
pub(crate) fn apply_edits(d: &Directive) {
    for p in d.get("write").into_iter().flat_map(|v| v.split(',')) {
        let path = std::path::Path::new(p);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(parent);
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        writeln!(f, "edited by the fake agent").unwrap();
    }
    for p in d.get("delete").into_iter().flat_map(|v| v.split(',')) {
        let _ = std::fs::remove_file(p);
    }
}

/// Ignores SIGTERM and starts a grandchild that does too, recording both pids:
/// the start of every `hang` scenario.
pub(crate) fn hang_with_a_grandchild() {
    ignore_sigterm();
    // Never waited for on purpose: this scenario hangs until it is killed.
    #[allow(clippy::zombie_processes)]
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .env("FAKE_AGENT_ROLE", "sleeper")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn grandchild");
    record_pids(&[std::process::id(), child.id()]);
}
