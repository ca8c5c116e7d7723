//! Multi-step plans in one agent session; `resume` and `reply` continue sessions.

use crate::common::*;
use serde_json::Value;

fn plan_of(home: &TestHome, id: &str) -> Value {
    serde_json::from_slice(&std::fs::read(home.task_dir(id).join("plan.json")).unwrap()).unwrap()
}

#[test]
fn steps_run_one_after_another_in_one_session() {
    let home = TestHome::new();
    home.drop_task("multi.md", "---\ntitle: Three steps\nsteps:\n  - Read the code\n  - Change it\n  - Run the tests\n---\nThe login handler.\n");
    assert!(home.run_once().status.success());
    let r = home.result_of("multi.md");
    assert_eq!(r["status"], "succeeded");
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    let sid = steps[0]["session_id"].as_str().unwrap().to_string();
    assert_eq!(
        steps[0]["output"], "Done: The login handler.",
        "step 1 starts the session with the prompt as context"
    );
    assert_eq!(
        steps[1]["output"],
        format!("Done in session {sid}: Step 2 of 3: Change it")
    );
    assert_eq!(
        steps[2]["output"],
        format!("Done in session {sid}: Step 3 of 3: Run the tests")
    );
    assert!(
        steps
            .iter()
            .all(|s| s["status"] == "succeeded" && s["session_id"] == sid.as_str())
    );
    assert_eq!(r["output"], steps[2]["output"]);
    assert_eq!(
        r["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["step"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(r["turns"], 6, "turns of all steps");
    assert_eq!(
        plan_of(&home, r["id"].as_str().unwrap())["steps"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "plan.json shows the steps"
    );
    assert_eq!(home.events_of("step_finished").len(), 2);
}

#[test]
fn a_failed_step_is_recorded_and_resume_goes_on_from_it_in_the_same_session() {
    let gate = tempfile::tempdir().unwrap();
    let gate = gate.path().join("fixed");
    let home = TestHome::new();
    home.drop_task(
        "multi.md",
        format!(
            "---\nsteps:\n  - First\n  - \"@fake auth fail_unless={}\"\n  - Third\n---\nContext.\n",
            gate.display()
        ),
    );
    assert_eq!(home.run_once().status.code(), Some(1));
    let first = home.result_of("multi.md");
    assert_eq!(first["status"], "failed");
    assert_eq!(first["error"]["kind"], "auth");
    let steps = first["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(
        (steps[0]["status"].as_str(), steps[1]["status"].as_str()),
        (Some("succeeded"), Some("failed"))
    );
    assert_eq!(steps[1]["error"]["kind"], "auth");
    let sid = steps[0]["session_id"].as_str().unwrap().to_string();

    std::fs::write(&gate, b"").unwrap();
    let id = first["id"].as_str().unwrap();
    let out = home.cli_json(&["resume", id]);
    assert_eq!(out["start_step"], 2);
    assert_eq!(out["session"], sid.as_str());
    assert!(home.run_once().status.success());
    let new_id = out["id"].as_str().unwrap();
    let second = home.results().into_iter().find(|r| r["id"] == new_id).unwrap();
    assert_eq!(second["status"], "succeeded");
    assert_eq!(second["parent_task_id"], id);
    let steps = second["steps"].as_array().unwrap();
    assert_eq!(
        steps.iter().map(|s| s["n"].as_u64().unwrap()).collect::<Vec<_>>(),
        [2, 3],
        "from the failed step on"
    );
    assert!(
        steps[0]["output"]
            .as_str()
            .unwrap()
            .starts_with(&format!("Done in session {sid}")),
        "{}",
        steps[0]["output"]
    );
    let plan = plan_of(&home, new_id);
    assert!(
        plan["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str() == Some(format!("--resume={sid}").as_str()))
    );
    assert_eq!(
        home.cli(&["resume", new_id]).status.code(),
        Some(2),
        "a succeeded task has nothing to resume"
    );
}

#[test]
fn reply_is_a_follow_up_turn_in_the_same_session() {
    let home = TestHome::new();
    home.drop_task("first.md", "Write the function\n");
    assert!(home.run_once().status.success());
    let first = home.result_of("first.md");
    let id = first["id"].as_str().unwrap();
    let sid = first["session_id"].as_str().unwrap();
    let out = home.cli_json(&["reply", &id[..10], "Now add a test"]);
    assert!(home.run_once().status.success());
    let reply = home.results().into_iter().find(|r| r["id"] == out["id"]).unwrap();
    assert_eq!(reply["output"], format!("Done in session {sid}: Now add a test"));
    assert_eq!(reply["parent_task_id"], id);
    assert_eq!(reply["turn_of"], id);
    // A reply to the reply belongs to the same conversation.
    let again = home.cli_json(&["reply", reply["id"].as_str().unwrap(), "And document it"]);
    assert!(home.run_once().status.success());
    let third = home.results().into_iter().find(|r| r["id"] == again["id"]).unwrap();
    assert_eq!(third["turn_of"], id);

    home.drop_task("cmd.yaml", "agent: command\ncommand: echo hi\n");
    home.run_once();
    let cmd = home.result_of("cmd.yaml");
    let out = home.cli(&["reply", cmd["id"].as_str().unwrap(), "more"]);
    assert_eq!(out.status.code(), Some(2), "command tasks have no session");
}

#[cfg(unix)]
#[test]
fn a_crash_in_the_middle_of_a_plan_goes_on_from_the_step_it_was_in() {
    use std::time::Duration;
    let pids = tempfile::NamedTempFile::new().unwrap();
    let home = TestHome::with_config(&config_with(
        "",
        &format!("    env:\n      FAKE_AGENT_PIDS: {}", pids.path().display()),
    ));
    home.drop_task(
        "plan.md",
        "---\nsteps:\n  - One\n  - \"@fake hang fail_times=2\"\n  - Three\n---\n",
    );
    let mut daemon = home.spawn_daemon();
    wait_until(Duration::from_secs(20), "step 2 to hang", || {
        read_pids(pids.path()).len() >= 2
    });
    kill9(daemon.id());
    let _ = daemon.wait();
    assert!(home.run_once().status.success());
    let r = home.result_of("plan.md");
    assert_eq!(r["status"], "succeeded");
    let steps: Vec<u64> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["n"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [1, 2, 3], "step 1 is not run again");
    let attempts: Vec<(u64, Option<&str>)> = r["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["step"].as_u64().unwrap(), a["error"]["kind"].as_str()))
        .collect();
    assert_eq!(attempts, [(1, None), (2, Some("interrupted")), (2, None), (3, None)]);
}

#[test]
fn retry_of_a_plan_keeps_its_steps() {
    let home = TestHome::new();
    home.drop_task(
        "plan.md",
        "---\nretries: 0\nsteps: [One, \"@fake auth\"]\n---\nContext\n",
    );
    assert_eq!(home.run_once().status.code(), Some(1));
    let id = home.result_of("plan.md")["id"].as_str().unwrap().to_string();
    let new_id = home.cli_json(&["retry", &id])["id"].as_str().unwrap().to_string();
    let task: Value =
        serde_json::from_slice(&std::fs::read(home.inbox().join(format!("{new_id}.json"))).unwrap()).unwrap();
    assert_eq!(task["steps"], serde_json::json!(["One", "@fake auth"]));
    assert_eq!(task["prompt"], "Context");
    assert_eq!(task["parent_task_id"], id.as_str());
}
