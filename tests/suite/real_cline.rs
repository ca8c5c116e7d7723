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

#[cfg(unix)]
#[test]
fn a_cancel_gives_the_real_cli_its_grace_although_the_npm_wrapper_dies_at_once() {
    let api = MockApi::openai(|_| Reply::Slow {
        pieces: (0..60).map(|i| format!("piece {i} ")).collect(),
        delay: std::time::Duration::from_millis(100),
    });
    let Some(h) = real(api, "kill_grace: 30s", "a_cancel_gives_the_real_cli_its_grace") else {
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
    let out = h.cmd().args(["cancel", "slow.md"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    wait_until(std::time::Duration::from_secs(60), "the task to end", || {
        !h.home.results().is_empty()
    });
    sigterm(daemon.id());
    let _ = daemon.wait();
    let r = h.home.result_of("slow.md");
    assert_eq!(r["status"], "cancelled", "{r}");
    let text = std::fs::read_to_string(out_file().unwrap()).unwrap();
    // Cline's binary, given its grace, ends the run and says so; SIGKILLed it says nothing.
    assert!(text.contains("\"run_result\""), "no run_result: {text}");
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
