//! A task with an agent list (`agent: [claude, codex]`) falls through to the
//! next agent when the first is paused by a limit or missing, on the real
//! CLIs against scripted APIs; and never to an agent that would widen it.

use crate::common::mock_api::{MockApi, Reply};
#[cfg(unix)]
use crate::common::real::git_repo;
use crate::common::real::{Cli, RealHome, find};
use crate::common::*;

/// A home whose daemon runs the real Claude Code against `claude_api` and the
/// real Codex against `codex_api`, with `claude` as Claude's program.
fn both(claude_api: MockApi, codex_api: &MockApi, claude: Option<&str>, test: &str) -> Option<RealHome> {
    both_with(claude_api, codex_api, claude, "", test)
}

/// [`both`], with `codex` lines (indented by 4) in `agents.codex`.
fn both_with(
    claude_api: MockApi,
    codex_api: &MockApi,
    claude: Option<&str>,
    codex_lines: &str,
    test: &str,
) -> Option<RealHome> {
    let codex = find(Cli::Codex, test)?;
    let claude_cli = match claude {
        Some(p) => std::path::PathBuf::from(p),
        None => find(Cli::Claude, test)?,
    };
    let agents = format!("  codex:\n    command: {}\n{codex_lines}", codex.display());
    let h = RealHome::claude(claude_cli, claude_api, "", &agents);
    h.configure_codex(codex_api);
    Some(h)
}

#[test]
fn a_claude_usage_limit_sends_the_task_on_to_codex_which_finishes_it() {
    let claude_api = MockApi::anthropic(|_| {
        Reply::error(
            429,
            "rate_limit_error",
            "Number of requests has exceeded your rate limit",
        )
    });
    let codex_api = MockApi::responses(|_| Reply::text("finished on codex"));
    let Some(h) = both(claude_api, &codex_api, None, "a_claude_usage_limit_sends_the_task_on") else {
        return;
    };
    h.home.drop_task(
        "q.md",
        "---\nagent: [claude, codex]\nallowed_tools: [Read, Grep]\nretries: 0\n---\nLook at the folder.\n",
    );
    h.run_once();
    let r = h.home.result_of("q.md");
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(
        (r["agent"].as_str(), r["output"].as_str()),
        (Some("codex"), Some("finished on codex")),
        "{r}"
    );
    let attempts = r["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{r}");
    assert_eq!(
        (attempts[0]["agent"].as_str(), attempts[0]["error"]["kind"].as_str()),
        (Some("claude"), Some("rate_limited"))
    );
    assert_eq!(attempts[1]["agent"], "codex");
    let switched = h.home.events_of("agent_switched");
    assert_eq!(switched.len(), 1, "{switched:?}");
    assert_eq!(
        (switched[0]["from"].as_str(), switched[0]["to"].as_str()),
        (Some("claude"), Some("codex"))
    );
    assert!(
        switched[0]["reason"].as_str().unwrap().contains("usage or rate limit"),
        "{}",
        switched[0]
    );
    // Claude stays paused for tasks that have no other agent.
    assert_eq!(h.home.events_of("agent_paused")[0]["agent"], "claude");
    let started: Vec<String> = h
        .home
        .events_of("attempt_started")
        .iter()
        .map(|e| e["agent"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(started, ["claude", "codex"]);
    // The task's prompt reached Codex; the same tools, in its read-only sandbox.
    assert!(codex_api.requests()[0].text().contains("Look at the folder."));
    let plan = h.home.task_dir(r["id"].as_str().unwrap()).join("plan.json");
    // plan.json is now Codex's, and says where it came from.
    let plan: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(plan).unwrap()).unwrap();
    assert_eq!(
        (plan["agent"].as_str(), &plan["switched_from"]),
        (Some("codex"), &serde_json::json!(["claude"]))
    );
    assert!(plan["args"].to_string().contains("--sandbox=read-only"), "{plan}");
    let shown = stdout(&h.cmd().args(["show", "q.md"]).output().unwrap());
    assert!(
        shown.contains("attempt 1 on claude") && shown.contains("attempt 2 on codex"),
        "{shown}"
    );
    // A reply goes on in the thread it ended in: Codex's.
    let out = h
        .cmd()
        .args(["reply", r["id"].as_str().unwrap(), "and then?"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let reply_id = stdout(&out).trim().to_string();
    h.run_once();
    let second = h
        .home
        .results()
        .into_iter()
        .find(|x| x["id"] == reply_id.as_str())
        .unwrap();
    assert_eq!(
        (second["status"].as_str(), second["agent"].as_str()),
        (Some("succeeded"), Some("codex")),
        "{second}"
    );
    assert_eq!(second["session_id"], r["session_id"]);
    assert!(
        codex_api
            .requests()
            .last()
            .unwrap()
            .text()
            .contains("Look at the folder."),
        "the thread's history"
    );
}

#[test]
fn a_missing_first_cli_falls_through_at_once() {
    let claude_api = MockApi::anthropic(|_| Reply::text("never asked"));
    let codex_api = MockApi::responses(|_| Reply::text("codex was there"));
    let missing = std::env::temp_dir().join("no-such-dir-for-orchestrator").join("claude");
    let Some(h) = both(
        claude_api,
        &codex_api,
        Some(missing.to_str().unwrap()),
        "a_missing_first_cli_falls_through",
    ) else {
        return;
    };
    h.home.drop_task(
        "q.md",
        "---\nagent: [claude, codex]\nallowed_tools: [Read]\n---\nhello\n",
    );
    let started = std::time::Instant::now();
    h.run_once();
    let r = h.home.result_of("q.md");
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["output"], "codex was there");
    assert_eq!(r["attempts"][0]["error"]["kind"], "not_found", "{r}");
    assert!(
        h.home.events_of("retry_scheduled").is_empty(),
        "no backoff before the switch"
    );
    let switched = h.home.events_of("agent_switched");
    assert!(
        switched[0]["reason"].as_str().unwrap().starts_with("not installed"),
        "{switched:?}"
    );
    // A missing program pauses nothing.
    assert!(h.home.events_of("agent_paused").is_empty());
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

#[test]
fn never_to_an_agent_that_cannot_hold_the_task_to_its_tools() {
    // Claude is missing, Cline would run with every tool: the task fails as
    // it would alone, and says why it did not switch.
    let yaml = config_with("", "").replace(fake_agent(), "/no/such/dir/claude");
    let home = TestHome::with_config(&yaml);
    home.drop_task(
        "q.md",
        "---\nagent: [claude, cline]\nallowed_tools: [Read]\n---\nhello\n",
    );
    let mut c = home.cmd();
    c.args(["run", "--once"]);
    let _ = wait_output(
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
        std::time::Duration::from_secs(120),
    );
    let r = home.result_of("q.md");
    assert_eq!(
        (r["status"].as_str(), r["error"]["kind"].as_str()),
        (Some("failed"), Some("not_found")),
        "{r}"
    );
    assert_eq!(r["agent"], "claude");
    assert!(home.events_of("agent_switched").is_empty());
    let warnings = r["validation"]["warnings"].to_string();
    assert!(
        warnings.contains("agent_not_switched") && warnings.contains("cannot hold"),
        "{r}"
    );
}

/// A guarded task switches inside its worktree: the next agent's edits land
/// there, and the workdir is untouched until `apply`.
#[cfg(unix)]
#[test]
fn a_guarded_task_switches_inside_its_worktree() {
    let claude_api = MockApi::anthropic(|_| Reply::text("never asked"));
    let codex_api = MockApi::responses(|r| {
        if r.tool_results().is_empty() {
            Reply::tool(
                "exec_command",
                serde_json::json!({"cmd": "echo from codex > hello.txt"}),
            )
        } else {
            Reply::text("wrote hello.txt")
        }
    });
    let missing = std::env::temp_dir().join("no-such-dir-for-orchestrator").join("claude");
    let shell = "    allowed_tools: [Read, Edit, Write, Bash]\n";
    let Some(h) = both_with(
        claude_api,
        &codex_api,
        Some(missing.to_str().unwrap()),
        shell,
        "a_guarded_task_switches",
    ) else {
        return;
    };
    let repo = git_repo(&h);
    h.home.drop_task(
        "g.md",
        "---\nagent: [claude, codex]\nworkdir: repo\nmode: guarded\nallowed_tools: [Read, Edit, Bash]\n---\nwrite hello.txt\n",
    );
    h.run_once();
    let r = h.home.result_of("g.md");
    assert_eq!(
        (r["status"].as_str(), r["agent"].as_str()),
        (Some("succeeded"), Some("codex")),
        "{r}"
    );
    assert_eq!(r["isolation"]["kind"], "worktree", "{r}");
    assert!(!repo.join("hello.txt").exists(), "the workdir was touched before apply");
    let diff = std::fs::read_to_string(h.home.task_dir(r["id"].as_str().unwrap()).join("changes.diff")).unwrap();
    assert!(diff.contains("+from codex"), "{diff}");
    // Codex ran in the worktree the task was given.
    let wt = r["isolation"]["run_dir"].as_str().unwrap().to_string();
    assert!(codex_api.requests()[0].text().contains(&wt), "codex's workspace: {wt}");
}
