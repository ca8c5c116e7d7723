//! Guarded mode and isolation, on real git repositories and plain
//! folders, with the fake agent making real edits: the workdir is never
//! touched, `changes.diff` holds exactly the edits, `apply` applies them or
//! refuses a conflict whole, `clean` removes worktrees, and `mode: apply` with
//! `isolation: worktree` leaves a branch.

use crate::common::*;
use serde_json::Value;

/// `repo/` in the home: `app/a.txt` (3 lines), `app/old.txt`, committed.
fn repo(home: &TestHome) -> std::path::PathBuf {
    let r = home.path.join("repo");
    std::fs::create_dir_all(r.join("app")).unwrap();
    std::fs::write(r.join("app/a.txt"), "one\ntwo\nthree\n").unwrap();
    std::fs::write(r.join("app/old.txt"), "old\n").unwrap();
    git_sh(&r, "git init -q && git add -A && git commit -qm init");
    r
}

const EDITS: &str = "@fake success write=a.txt,new/n.txt delete=old.txt";

fn guarded(home: &TestHome, workdir: &str) -> Value {
    home.drop_task(
        "g.md",
        format!("---\nworkdir: {workdir}\nmode: guarded\n---\n{EDITS}\nedit\n"),
    );
    let out = home.run_once();
    assert!(out.status.success(), "{}\n{}", stderr(&out), home.result_of("g.md"));
    home.result_of("g.md")
}

#[test]
fn guarded_on_a_repository_stages_an_exact_diff_and_leaves_the_workdir_alone() {
    let home = TestHome::new();
    let r = repo(&home);
    let res = guarded(&home, "repo/app");
    assert_eq!(res["isolation"]["kind"], "worktree");
    assert_eq!(
        res["files_changed"],
        serde_json::json!(["app/a.txt", "app/new/n.txt", "app/old.txt"])
    );
    // The workdir: untouched, and git sees nothing.
    assert_eq!(
        std::fs::read_to_string(r.join("app/a.txt")).unwrap(),
        "one\ntwo\nthree\n"
    );
    assert!(r.join("app/old.txt").exists() && !r.join("app/new").exists());
    assert_eq!(git_sh(&r, "git status --porcelain"), "");
    let id = res["id"].as_str().unwrap();
    let diff = std::fs::read_to_string(home.task_dir(id).join("changes.diff")).unwrap();
    let hunks: Vec<&str> = diff
        .lines()
        .filter(|l| !l.starts_with("index ") && !l.starts_with("diff --git"))
        .collect();
    assert_eq!(
        hunks,
        [
            "--- a/app/a.txt",
            "+++ b/app/a.txt",
            "@@ -1,3 +1,4 @@",
            " one",
            " two",
            " three",
            "+edited by the fake agent",
            "new file mode 100644",
            "--- /dev/null",
            "+++ b/app/new/n.txt",
            "@@ -0,0 +1 @@",
            "+edited by the fake agent",
            "deleted file mode 100644",
            "--- a/app/old.txt",
            "+++ /dev/null",
            "@@ -1 +0,0 @@",
            "-old",
        ]
    );
    let summary = std::fs::read_to_string(home.path.join("summaries").join(format!("{id}.md"))).unwrap();
    assert!(
        summary.contains("3 file(s) changed, 2 insertion(s)(+), 1 deletion(s)(-)"),
        "{summary}"
    );
    assert!(summary.contains(&format!("orchestrator apply {id}")));
}

#[test]
fn apply_dry_run_then_apply_then_refuse_a_second_time() {
    let home = TestHome::new();
    let r = repo(&home);
    let id = guarded(&home, "repo/app")["id"].as_str().unwrap().to_string();
    let dry = home.cli(&["apply", &id, "--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(stdout(&dry).contains("dry run"));
    assert_eq!(
        std::fs::read_to_string(r.join("app/a.txt")).unwrap(),
        "one\ntwo\nthree\n"
    );
    let applied = home.cli(&["apply", &id]);
    assert!(applied.status.success(), "{}", stderr(&applied));
    assert_eq!(
        std::fs::read_to_string(r.join("app/a.txt")).unwrap(),
        "one\ntwo\nthree\nedited by the fake agent\n"
    );
    assert!(r.join("app/new/n.txt").exists() && !r.join("app/old.txt").exists());
    let ev = home.events_of("applied");
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["task_id"], id.as_str());
    let again = home.cli(&["apply", &id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("already applied"));
}

#[test]
fn apply_refuses_a_workdir_that_changed_underneath_and_changes_nothing() {
    let home = TestHome::new();
    let r = repo(&home);
    let id = guarded(&home, "repo/app")["id"].as_str().unwrap().to_string();
    // Someone edits the same lines meanwhile.
    std::fs::write(r.join("app/a.txt"), "ONE\nTWO\nTHREE\n").unwrap();
    let out = home.cli(&["apply", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("workdir changed"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(r.join("app/a.txt")).unwrap(),
        "ONE\nTWO\nTHREE\n"
    );
    assert!(!r.join("app/new").exists(), "all or nothing: no new file either");
    assert!(r.join("app/old.txt").exists());
    assert!(home.events_of("applied").is_empty());
}

#[test]
fn guarded_without_git_uses_a_copy_with_a_similar_diff_and_applies_it() {
    let home = TestHome::new();
    let wd = home.path.join("plain");
    std::fs::create_dir_all(&wd).unwrap();
    std::fs::write(wd.join("a.txt"), "one\ntwo\nthree\n").unwrap();
    std::fs::write(wd.join("old.txt"), "old\n").unwrap();
    let res = guarded(&home, "plain");
    assert_eq!(res["isolation"]["kind"], "copy");
    assert_eq!(
        res["files_changed"],
        serde_json::json!(["a.txt", "new/n.txt", "old.txt"])
    );
    let id = res["id"].as_str().unwrap();
    let diff = std::fs::read_to_string(home.task_dir(id).join("changes.diff")).unwrap();
    assert_eq!(
        diff,
        "--- a/a.txt\n+++ b/a.txt\n@@ -1,3 +1,4 @@\n one\n two\n three\n+edited by the fake agent\n\
         --- /dev/null\n+++ b/new/n.txt\n@@ -0,0 +1 @@\n+edited by the fake agent\n\
         --- a/old.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-old\n"
    );
    assert_eq!(std::fs::read_to_string(wd.join("a.txt")).unwrap(), "one\ntwo\nthree\n");
    let out = home.cli(&["apply", id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(wd.join("a.txt")).unwrap(),
        "one\ntwo\nthree\nedited by the fake agent\n"
    );
    assert!(wd.join("new/n.txt").exists() && !wd.join("old.txt").exists());
}

#[test]
fn clean_removes_the_worktree_and_git_forgets_it() {
    let home = TestHome::new();
    let r = repo(&home);
    let id = guarded(&home, "repo/app")["id"].as_str().unwrap().to_string();
    let wt = home.path.join("worktrees").join(&id);
    assert!(wt.exists());
    assert!(git_sh(&r, "git worktree list").contains(&id));
    let out = home.cli(&["clean", "--sandboxes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!wt.exists(), "the worktree is gone");
    assert!(!git_sh(&r, "git worktree list").contains(&id), "and git forgot it");
    assert!(
        !git_sh(&r, "git branch").contains(&id),
        "a guarded run's branch goes too"
    );
    // The result stays, and apply still works from changes.diff.
    assert!(home.cli(&["apply", &id]).status.success());
    assert!(r.join("app/new/n.txt").exists());
}

#[test]
fn mode_apply_with_a_worktree_leaves_a_branch_for_review() {
    let home = TestHome::new();
    let r = repo(&home);
    home.drop_task(
        "b.md",
        format!("---\nworkdir: repo/app\nisolation: worktree\n---\n{EDITS}\nedit\n"),
    );
    assert!(home.run_once().status.success());
    let res = home.result_of("b.md");
    let id = res["id"].as_str().unwrap();
    assert_eq!(res["isolation"]["committed"], true);
    assert_eq!(git_sh(&r, "git status --porcelain"), "", "the workdir is untouched");
    let branch = format!("orchestrator/{id}");
    let files = git_sh(&r, &format!("git diff --name-only HEAD {branch}"));
    assert_eq!(files, "app/a.txt\napp/new/n.txt\napp/old.txt\n");
    let refused = home.cli(&["apply", id]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("merge that branch"));
}

#[test]
fn isolation_that_cannot_be_made_fails_the_task_with_the_reason() {
    let home = TestHome::new();
    let r = home.path.join("empty-repo");
    std::fs::create_dir_all(&r).unwrap();
    git_sh(&r, "git init -q");
    home.drop_task(
        "e.md",
        "---\nworkdir: empty-repo\nmode: guarded\n---\n@fake success\nx\n",
    );
    assert_eq!(home.run_once().status.code(), Some(1));
    let res = home.result_of("e.md");
    assert_eq!(res["error"]["kind"], "isolation_failed");
    assert!(res["error"]["message"].as_str().unwrap().contains("no commit"), "{res}");
}

#[test]
fn follow_ups_of_a_guarded_task_keep_its_safety_and_limits() {
    let home = TestHome::new();
    let r = repo(&home);
    home.drop_task(
        "g.md",
        format!("---\nworkdir: repo/app\nmode: guarded\nrole: fix\nmax_tool_calls: 7\nretries: 1\nbudget_usd: 5\n---\n{EDITS}\nedit\n"),
    );
    assert!(home.run_once().status.success());
    let parent = home.result_of("g.md");
    let id = parent["id"].as_str().unwrap().to_string();
    let reply = stdout(&home.cli(&["reply", &id, "@fake success write=a.txt\nmore"]))
        .trim()
        .to_string();
    let retry = stdout(&home.cli(&["retry", &id])).trim().to_string();
    assert!(!reply.is_empty() && !retry.is_empty());
    home.run_once();
    for child in [&reply, &retry] {
        let plan: Value =
            serde_json::from_slice(&std::fs::read(home.task_dir(child).join("plan.json")).unwrap()).unwrap();
        assert_eq!(plan["mode"], "guarded", "{plan}");
        assert_eq!(plan["isolation"], "worktree", "{plan}");
        assert_eq!(plan["role"], "fix", "{plan}");
        assert_eq!(plan["max_tool_calls"], 7, "{plan}");
        assert_eq!(plan["max_attempts"], 2, "{plan}");
        assert_eq!(plan["parent_task_id"], id.as_str());
        let prefixes = plan["prompt"]
            .as_str()
            .unwrap()
            .matches("Fix the problem described below")
            .count();
        assert_eq!(prefixes, 1, "the role's prefix, once: {plan}");
    }
    // The conversation's budget is one: the reply gets what the parent left.
    let reply_plan: Value =
        serde_json::from_slice(&std::fs::read(home.task_dir(&reply).join("plan.json")).unwrap()).unwrap();
    let left = reply_plan["budget_usd"].as_f64().unwrap();
    let spent = parent["cost_usd"].as_f64().unwrap_or(0.0);
    assert!((left - (5.0 - spent)).abs() < 1e-9, "{reply_plan}");
    // Neither follow-up touched the workdir.
    assert_eq!(
        std::fs::read_to_string(r.join("app/a.txt")).unwrap(),
        "one\ntwo\nthree\n"
    );
    assert_eq!(git_sh(&r, "git status --porcelain"), "");
}

#[test]
fn a_guarded_conversation_goes_on_in_its_sandbox() {
    let home = TestHome::new();
    let r = repo(&home);
    let first = guarded(&home, "repo/app");
    let id = first["id"].as_str().unwrap().to_string();
    let out = home.cli(&["reply", &id, "@fake success write=second.txt\nand one more file"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let reply = stdout(&out).trim().to_string();
    assert!(home.run_once().status.success());
    let second: Value = home.results().into_iter().find(|x| x["id"] == reply.as_str()).unwrap();
    assert_eq!(second["status"], "succeeded", "{second}");
    assert!(first["isolation"]["root"].is_string(), "{first}");
    assert_eq!(
        second["isolation"]["root"], first["isolation"]["root"],
        "the reply ran in its parent's worktree"
    );
    // Its diff is the conversation's: the first task's edits and the reply's.
    let diff = std::fs::read_to_string(home.task_dir(&reply).join("changes.diff")).unwrap();
    assert!(
        diff.contains("app/new/n.txt") && diff.contains("app/second.txt"),
        "{diff}"
    );
    assert!(!r.join("app/second.txt").exists(), "the workdir is untouched");
    assert_eq!(git_sh(&r, "git status --porcelain"), "");
}
