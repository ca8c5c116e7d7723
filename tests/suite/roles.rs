//! Roles: named presets for agent, tools (a ceiling), mode, limits and
//! a prompt prefix; built-ins like the seed orchestrator's task types; `plan`
//! and `config` show what a role resolves to.

use crate::common::*;
use serde_json::Value;

fn plan_of(home: &TestHome, name: &str, text: &str) -> Value {
    std::fs::write(home.path.join(name), text).unwrap();
    let v = home.cli_json(&["plan", home.path.join(name).to_str().unwrap()]);
    assert_eq!(v["ok"], true, "{v}");
    v["plan"].clone()
}

#[test]
fn a_role_fills_tools_limits_and_prompt_and_the_task_wins_where_it_speaks() {
    let home = TestHome::new();
    let p = plan_of(&home, "r.md", "---\nrole: review\n---\nlook at the parser\n");
    assert_eq!(p["role"], "review");
    assert_eq!(p["allowed_tools"], serde_json::json!(["Read", "Glob", "Grep", "LS"]));
    assert_eq!(p["max_turns"], 30);
    assert!(
        p["prompt"]
            .as_str()
            .unwrap()
            .starts_with("You are reviewing code. Do not modify any file.")
    );
    assert!(p["prompt"].as_str().unwrap().ends_with("look at the parser"));
    assert_eq!(
        p["title"], "look at the parser",
        "the title comes from the task, not the prefix"
    );
    let p = plan_of(
        &home,
        "f.md",
        "---\nrole: fix\nmax_turns: 5\nallowed_tools: [Read, Edit]\n---\nfix it\n",
    );
    assert_eq!(p["max_turns"], 5);
    assert_eq!(p["allowed_tools"], serde_json::json!(["Read", "Edit"]));
}

#[test]
fn a_task_cannot_ask_for_more_than_its_role_allows() {
    let home = TestHome::new();
    home.drop_task(
        "greedy.md",
        "---\nrole: review\nallowed_tools: [Read, Edit]\n---\nreview and fix\n",
    );
    home.drop_task("nope.md", "---\nrole: wizard\n---\nmagic\n");
    assert_eq!(home.run_once().status.code(), Some(1));
    let e = home.rejected("greedy.md");
    assert_eq!(e["reason"], "tool_not_in_role");
    assert!(e["error"].as_str().unwrap().contains("Edit"), "{e}");
    let e = home.rejected("nope.md");
    assert_eq!(e["reason"], "unknown_role");
    assert!(e["hint"].as_str().unwrap().contains("review"), "lists the roles: {e}");
}

#[test]
fn roles_from_the_config_add_to_and_change_the_built_ins() {
    let home = TestHome::with_config(&config_with(
        "roles:\n  docs:\n    agent: command\n    mode: guarded\n    timeout: 2m\n  review:\n    max_turns: 9\n",
        "",
    ));
    let p = plan_of(&home, "d.yaml", "role: docs\ncommand: echo hi\n");
    assert_eq!(p["agent"], "command");
    assert_eq!(p["mode"], "guarded");
    assert_eq!(p["timeout"], "2m");
    let p = plan_of(&home, "r.md", "---\nrole: review\n---\nx y\n");
    assert_eq!(p["max_turns"], 9, "changed");
    assert_eq!(
        p["allowed_tools"].as_array().unwrap().len(),
        4,
        "the rest of the built-in kept"
    );
    let cfg = home.cli_json(&["config"]);
    assert_eq!(cfg["config"]["roles"]["docs"]["mode"], "guarded");
    assert!(cfg["config"]["roles"]["implement"].is_object());
}

#[cfg(unix)]
#[test]
fn a_read_only_role_that_changed_files_is_caught() {
    let home = TestHome::new();
    let repo = home.path.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git_sh(&repo, "git init -q && echo a > a.txt && git add -A && git commit -qm i");
    home.drop_task(
        "sneaky.md",
        "---\nrole: review\nworkdir: repo\n---\n@fake success write=a.txt answer=Looks_good,_two_nits.\nreview",
    );
    home.run_once();
    let r = home.result_of("sneaky.md");
    let kinds: Vec<&str> = r["validation"]["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["warning"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["read_only_changed_files"]);
    assert_eq!(r["files_changed"], serde_json::json!(["a.txt"]));
}

#[test]
fn a_seed_orchestrator_task_file_runs_unchanged() {
    let home = TestHome::new();
    std::fs::create_dir_all(home.path.join("proj")).unwrap();
    home.drop_task(
        "auth.task.md",
        format!(
            "---\nid: task-20240115-001\ntype: code_review\npriority: medium\ncreated: 2024-01-15T10:30:00\ncwd: {}\ntimeout_sec: 600\ntemplate_id: review-v1\n---\n# Review the auth module\n\n**Target Files:**\n- src/auth.py\n\n**Prompt:**\n@fake success answer=Two_findings.\nReview the authentication flow.\n\n**Success Criteria:**\n- Every finding names a file and line\n",
            home.path.join("proj").display()
        ),
    );
    let out = home.run_once();
    assert!(out.status.success(), "{}", stderr(&out));
    let r = home.result_of("auth.task.md");
    assert_eq!(r["title"], "Review the auth module");
    assert_eq!(r["status"], "succeeded");
    assert!(r["workdir"].as_str().unwrap().ends_with("proj"));
    assert_eq!(
        r["validation"]["success_criteria"],
        serde_json::json!(["Every finding names a file and line"])
    );
    let id = r["id"].as_str().unwrap();
    let plan: Value = serde_json::from_slice(&std::fs::read(home.task_dir(id).join("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["role"], "code_review");
    assert_eq!(plan["timeout"], "10m");
    let summary = std::fs::read_to_string(home.path.join("summaries").join(format!("{id}.md"))).unwrap();
    assert!(
        summary.contains("## Success criteria (to check)\n\n- [ ] Every finding names a file and line"),
        "{summary}"
    );
}
