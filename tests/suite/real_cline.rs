//! The real Cline CLI (pinned in `agent-clis/`) run by the daemon against a
//! scripted OpenAI-compatible chat completions API on 127.0.0.1.

use crate::common::mock_api::{MockApi, Reply};
use crate::common::real::{Cli, RealHome, find};
use crate::common::*;

fn real(api: MockApi, top: &str, test: &str) -> Option<RealHome> {
    find(Cli::Cline, test).map(|cli| RealHome::cline(cli, api, top))
}

#[test]
fn a_cline_task_runs_and_its_answer_is_the_result() {
    let api = MockApi::openai(|_| Reply::text("MOCK-ANSWER from cline"));
    let Some(h) = real(api, "", "a_cline_task_runs") else {
        return;
    };
    h.home.drop_task("q.md", "---\nagent: cline\n---\nSummarise.\n");
    let out = h.run_once();
    let r = h.home.result_of("q.md");
    assert_eq!(r["status"], "succeeded", "{r}\n{}", stderr(&out));
    assert_eq!(r["output"], "MOCK-ANSWER from cline");
    assert_eq!(r["turns"], 1);
    let sent = h.api.requests()[0].text();
    assert!(sent.contains("Summarise."), "the prompt reached the model from stdin");
    // Cline's own hosts (telemetry, feature flags) were refused, never reached.
    for line in h.proxy.refused() {
        assert!(line.starts_with("CONNECT ") && line.contains("cline"), "{line}");
    }
}

#[test]
#[cfg(target_os = "linux")]
fn no_hub_outlives_a_cline_task() {
    let api = MockApi::openai(|_| Reply::text("ok then"));
    let Some(h) = real(api, "", "no_hub_outlives_a_cline_task") else {
        return;
    };
    h.home.drop_task("a.md", "---\nagent: cline\n---\nfirst task\n");
    h.home.drop_task("b.md", "---\nagent: cline\n---\nsecond task\n");
    h.run_once();
    for name in ["a.md", "b.md"] {
        assert_eq!(h.home.result_of(name)["status"], "succeeded");
    }
    let marker = format!("HOME={}", h.cli_home.display());
    let left = processes_with_env(&marker);
    assert!(left.is_empty(), "processes of the tasks outlived them: {left:?}");
}

#[test]
fn a_401_is_an_auth_failure_and_not_retried() {
    let api = MockApi::openai(|_| {
        Reply::error(
            401,
            "invalid_api_key",
            "Incorrect API key provided: sk-test. You can find your API key at https://example.invalid.",
        )
    });
    let Some(h) = real(api, "", "a_401_is_an_auth_failure") else {
        return;
    };
    h.home.drop_task("q.md", "---\nagent: cline\n---\nhello\n");
    h.run_once();
    let r = h.home.result_of("q.md");
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["kind"], "auth", "{r}");
    assert_eq!(r["attempts"].as_array().unwrap().len(), 1, "{r}");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(msg.contains("Incorrect API key"), "{msg}");
    assert!(!msg.contains("hook dispatch"), "{msg}");
}

/// Mid-stream, the npm wrapper (`cline`, a node script) dies at once on the
/// stop signal and the real binary it started goes on: the tree is given its
/// grace all the same, and the binary ends on SIGINT mid-stream (in local mode
/// it would finish the stream first on SIGTERM, then run on).
#[cfg(unix)]
#[test]
fn a_cancel_mid_stream_ends_the_real_cli_by_its_signal_although_the_npm_wrapper_dies_at_once() {
    let api = MockApi::openai(|_| Reply::Slow {
        pieces: (0..100).map(|i| format!("piece {i} ")).collect(),
        delay: std::time::Duration::from_millis(100),
    });
    let Some(h) = real(api, "kill_grace: 30s", "a_cancel_mid_stream_ends_the_real_cli") else {
        return;
    };
    h.home.drop_task("slow.md", "---\nagent: cline\n---\ntake your time\n");
    let mut c = h.cmd();
    c.arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut daemon = c.spawn().unwrap();
    let out_file = || {
        let dir = std::fs::read_dir(h.home.path.join("results"))
            .ok()?
            .flatten()
            .find(|e| e.path().is_dir() && !e.file_name().to_string_lossy().starts_with('.'))?;
        Some(dir.path().join("attempt-1.out"))
    };
    wait_until(std::time::Duration::from_secs(60), "the model's text to stream", || {
        out_file()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .is_some_and(|t| t.contains("content_start"))
    });
    let asked = std::time::Instant::now();
    let out = h.cmd().args(["cancel", "slow.md"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let took = asked.elapsed();
    sigterm(daemon.id());
    let _ = daemon.wait();
    let r = h.home.result_of("slow.md");
    assert_eq!(r["status"], "cancelled", "{r}");
    // The 10 s stream was cut, and no SIGKILL was needed (that comes after 30 s).
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    let text = std::fs::read_to_string(out_file().unwrap()).unwrap();
    assert!(!text.contains("piece 99"), "the stream ran to its end: {text}");
}

#[cfg(unix)]
#[test]
fn a_cline_tool_call_makes_a_real_edit() {
    let workdir = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let wd = workdir.clone();
    let api = MockApi::openai(move |r| {
        if r.turn() == 0 {
            let path = format!("{}/made-by-cline.txt", wd.lock().unwrap());
            Reply::tool(
                "editor",
                serde_json::json!({"path": path, "new_text": "hello from the mock\n"}),
            )
        } else {
            Reply::text("Created made-by-cline.txt")
        }
    });
    let Some(h) = real(api, "", "a_cline_tool_call_makes_a_real_edit") else {
        return;
    };
    let repo = h.home.path.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git_sh(&repo, "git init -q && git commit -q --allow-empty -m init");
    *workdir.lock().unwrap() = repo.display().to_string();
    h.home
        .drop_task("e.md", "---\nagent: cline\nworkdir: repo\n---\nmake the file\n");
    h.run_once();
    let r = h.home.result_of("e.md");
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(
        (r["turns"].as_u64(), r["tool_calls"].as_u64()),
        (Some(2), Some(1)),
        "{r}"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("made-by-cline.txt")).unwrap(),
        "hello from the mock\n"
    );
    assert_eq!(r["files_changed"], serde_json::json!(["made-by-cline.txt"]), "{r}");
}

/// A model that never stops: every answer is one more command to run, a
/// tenth of a second after it is asked (as a fast model answers).
#[cfg(unix)]
fn looping() -> MockApi {
    MockApi::openai(|r| {
        let tool = Reply::tool(
            "run_commands",
            serde_json::json!({"commands": [format!("echo tick {}", r.turn() + 1)]}),
        );
        Reply::After(std::time::Duration::from_millis(100), Box::new(tool))
    })
}

/// Runs `task` to its end with a 30 s `kill_grace` (so a CLI that ignored
/// its stop signal would run on for 30 s), and says how long the task ran on
/// after the last model request, and how many requests came after the `nth`
/// (the one past the limit; the CLI may be stopped before it makes it, when
/// it announces the turn first).
#[cfg(unix)]
fn stopped_after(test: &str, task: &str, nth: usize) -> Option<(serde_json::Value, std::time::Duration, usize)> {
    let h = real(looping(), "kill_grace: 30s", test)?;
    h.home.drop_task("loop.md", task);
    let ran = std::time::Instant::now();
    h.run_once_within(std::time::Duration::from_secs(120));
    let ended = std::time::Instant::now();
    let r = h.home.result_of("loop.md");
    let reqs = h.api.requests();
    assert!(reqs.len() + 1 >= nth, "{} requests: {r}", reqs.len());
    let last = reqs.last().unwrap().at;
    eprintln!(
        "{test}: {} requests in {:?}; the task ended {:?} after the last",
        reqs.len(),
        ended - ran,
        ended - last
    );
    Some((r, ended - last, reqs.len().saturating_sub(nth)))
}

#[cfg(unix)]
#[test]
fn max_turns_stops_the_real_cline_at_once() {
    let Some((r, took, more)) = stopped_after(
        "max_turns_stops_the_real_cline_at_once",
        "---\nagent: cline\nmax_turns: 5\nretries: 0\n---\nkeep going\n",
        6,
    ) else {
        return;
    };
    assert_eq!(r["error"]["kind"], "max_turns", "{r}");
    assert!(r["turns"].as_u64().unwrap() <= 6, "{r}");
    assert!(more <= 1, "{more} more model calls after the limit: {r}");
    // Its `run --once` wrote the result after the CLI ended: well within the
    // 30 s grace that SIGTERM would have run into.
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
}

#[cfg(unix)]
#[test]
fn max_tool_calls_stops_the_real_cline_at_once() {
    let Some((r, took, more)) = stopped_after(
        "max_tool_calls_stops_the_real_cline_at_once",
        "---\nagent: cline\nmax_tool_calls: 3\nretries: 0\n---\nkeep going\n",
        4,
    ) else {
        return;
    };
    assert_eq!(r["error"]["kind"], "max_tool_calls", "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("max_tool_calls is 3"),
        "{r}"
    );
    assert!(r["tool_calls"].as_u64().unwrap() <= 4, "{r}");
    assert!(more <= 1, "{more} more model calls after the limit: {r}");
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
}

#[cfg(unix)]
#[test]
fn a_cancel_stops_the_real_cline_within_a_second() {
    let Some(h) = real(
        looping(),
        "kill_grace: 30s",
        "a_cancel_stops_the_real_cline_within_a_second",
    ) else {
        return;
    };
    h.home.drop_task("loop.md", "---\nagent: cline\n---\nkeep going\n");
    let mut c = h.cmd();
    c.arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut daemon = c.spawn().unwrap();
    wait_until(
        std::time::Duration::from_secs(60),
        "the loop to turn a few times",
        || h.api.requests().len() >= 3,
    );
    let asked = std::time::Instant::now();
    let out = h.cmd().args(["cancel", "loop.md"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let took = asked.elapsed();
    let more = h.api.requests().iter().filter(|r| r.at > asked).count();
    sigterm(daemon.id());
    let _ = daemon.wait();
    let r = h.home.result_of("loop.md");
    assert_eq!(r["status"], "cancelled", "{r}");
    eprintln!("cancel: {took:?} to cancelled, {more} model calls after it was asked");
    // The daemon notices a cancel within a quarter second (two or three
    // turns of this loop); with SIGTERM it went on for hundreds.
    assert!(more <= 5, "{more} model calls after the cancel");
    // `cancel` waits for the task to end: a daemon checks within a second,
    // and the CLI ends on SIGINT in a fraction of one (30 s of grace unused).
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    // Nothing of the task is left running.
    let marker = format!("HOME={}", h.cli_home.display());
    wait_until(
        std::time::Duration::from_secs(10),
        "no process of the task left",
        || processes_with_env(&marker).is_empty(),
    );
}

/// Cline's hook events name its session, which is recorded; 3.0.65 cannot
/// continue one headlessly (`--id` switches to its interactive chat, which
/// refuses `--json`), so `reply` says so and names the session to open by hand.
#[test]
fn a_cline_session_is_recorded_and_reply_says_why_it_cannot_go_on() {
    let api = MockApi::openai(|_| Reply::text("FIRST-ANSWER-TEXT"));
    let Some(h) = real(api, "", "a_cline_session_is_recorded") else {
        return;
    };
    h.home.drop_task("q.md", "---\nagent: cline\n---\nFIRST-QUESTION\n");
    h.run_once();
    let first = h.home.result_of("q.md");
    assert_eq!(first["status"], "succeeded", "{first}");
    let session = first["session_id"].as_str().unwrap_or_default().to_string();
    assert!(!session.is_empty(), "{first}");
    // The id is Cline's own: its history lists it (and nothing else, here).
    let history = std::process::Command::new(&h.cli)
        .args(["history", "--json"])
        .envs(h.env())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&history.stdout);
    assert!(
        listed.contains(&session),
        "cline history: {listed}{}",
        String::from_utf8_lossy(&history.stderr)
    );
    let out = h.cmd().args(["reply", "q.md", "SECOND-QUESTION"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("interactive chat") && err.contains(&session), "{err}");
}
