//! What agents change, from git, and the validation of their results:
//! real git repositories in temp folders, the fake agents doing real edits.

use crate::common::*;
use serde_json::Value;
use std::path::Path;

/// A repository at `dir` with `app/a.txt`, `app/old.txt` and `other/b.txt` committed.
fn git_repo(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    git_sh(
        dir,
        "git init -q && mkdir -p app other && echo a > app/a.txt && echo old > app/old.txt && echo b > other/b.txt \
         && git add -A && git commit -qm init",
    );
}

fn warnings(r: &Value) -> Vec<String> {
    r["validation"]["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["warning"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn files_changed_come_from_git_not_from_the_agent() {
    let home = TestHome::new();
    git_repo(&home.path.join("repo"));
    home.drop_task(
        "edit.md",
        "---\nworkdir: repo\n---\n@fake success write=app/a.txt,app/new/n.txt delete=app/old.txt\nedit things",
    );
    assert!(home.run_once().status.success());
    let r = home.result_of("edit.md");
    assert_eq!(
        r["files_changed"],
        serde_json::json!(["app/a.txt", "app/new/n.txt", "app/old.txt"])
    );
    assert!(warnings(&r).is_empty(), "{r}");
}

#[test]
fn a_command_task_in_a_repository_gets_files_changed_too() {
    let home = TestHome::new();
    git_repo(&home.path.join("repo"));
    home.drop_task(
        "cmd.yaml",
        "agent: command\nworkdir: repo/app\ncommand: echo x > made.txt\n",
    );
    assert!(home.run_once().status.success());
    assert_eq!(
        home.result_of("cmd.yaml")["files_changed"],
        serde_json::json!(["app/made.txt"])
    );
}

#[test]
fn writes_outside_the_workdir_are_a_security_violation() {
    let home = TestHome::new();
    git_repo(&home.path.join("repo"));
    home.drop_task(
        "escape.md",
        "---\nworkdir: repo/app\n---\n@fake success write=a.txt,../other/b.txt\nedit",
    );
    home.run_once();
    let r = home.result_of("escape.md");
    assert!(warnings(&r).contains(&"writes_outside_workdir".to_string()), "{r}");
    let v = home.events_of("security_violation");
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["files"], serde_json::json!(["other/b.txt"]));
    assert_eq!(r["files_changed"], serde_json::json!(["app/a.txt", "other/b.txt"]));
}

#[test]
fn an_agent_claiming_edits_git_does_not_show_is_flagged() {
    let home = TestHome::new();
    git_repo(&home.path.join("repo"));
    home.drop_task(
        "liar.md",
        "---\nworkdir: repo\n---\n@fake success answer=I_have_updated_the_parser_to_accept_tabs.\nfix",
    );
    assert!(home.run_once().status.success(), "advisory by default");
    let r = home.result_of("liar.md");
    assert_eq!(r["status"], "succeeded");
    assert_eq!(warnings(&r), ["claimed_edits_not_in_git"]);
    assert_eq!(
        home.events_of("validation_warning")[0]["warning"],
        "claimed_edits_not_in_git"
    );
    let summary = std::fs::read_to_string(
        home.path
            .join("summaries")
            .join(format!("{}.md", r["id"].as_str().unwrap())),
    )
    .unwrap();
    assert!(
        summary.contains("## Validation warnings") && summary.contains("claimed_edits_not_in_git"),
        "{summary}"
    );
}

#[test]
fn a_read_only_task_that_changed_files_is_flagged() {
    let home = TestHome::new();
    git_repo(&home.path.join("repo"));
    home.drop_task(
        "review.md",
        "---\nworkdir: repo\nallowed_tools: [Read, Grep]\n---\n@fake success write=app/a.txt answer=Reviewed,_two_nits.\nreview",
    );
    home.run_once();
    assert_eq!(warnings(&home.result_of("review.md")), ["read_only_changed_files"]);
}

#[test]
fn fail_on_validation_makes_findings_fatal() {
    let home = TestHome::with_config(&config_with("fail_on_validation: true", ""));
    git_repo(&home.path.join("repo"));
    home.drop_task(
        "liar.md",
        "---\nworkdir: repo\n---\n@fake success answer=I_fixed_the_bug_in_the_parser.\nfix",
    );
    assert_eq!(home.run_once().status.code(), Some(1));
    let r = home.result_of("liar.md");
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["kind"], "validation_failed");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("claimed_edits_not_in_git")
    );
}

#[test]
fn an_answer_that_echoes_the_prompt_is_flagged() {
    let home = TestHome::new();
    home.drop_task(
        "echo.md",
        "@fake success answer=Please_summarize_the_design_of_the_billing_module_in_detail\nPlease summarize the design of the billing module in detail",
    );
    home.run_once();
    assert_eq!(warnings(&home.result_of("echo.md")), ["echoes_prompt"]);
}
