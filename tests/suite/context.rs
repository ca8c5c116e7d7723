//! Context from earlier tasks: `retry` and `context_from` put a digest of
//! them before the prompt, within `context_budget`.

use crate::common::*;

fn plan_of(home: &TestHome, id: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(home.task_dir(id).join("plan.json")).unwrap()).unwrap()
}

#[test]
fn a_retry_and_a_context_from_task_see_the_earlier_answers_and_errors() {
    let home = TestHome::new();
    home.drop_task(
        "first.yaml",
        "title: First try\nagent: command\ncommand: 'echo parsed 41 records; echo disk full >&2; exit 3'\n",
    );
    home.run_once();
    let first = home.result_of("first.yaml");
    let first_id = first["id"].as_str().unwrap().to_string();
    assert_eq!(first["status"], "failed");

    // A retry: a command that prints its stdin shows what the agent got.
    let out = home.cli_json(&["retry", &first_id]);
    let retry_id = out["id"].as_str().unwrap().to_string();
    // Made to print its stdin instead (the retry's file is in the inbox, not yet run).
    let path = home.inbox().join(format!("{retry_id}.json"));
    let mut task: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    task["command"] = "cat".into();
    std::fs::write(&path, serde_json::to_vec(&task).unwrap()).unwrap();
    home.drop_task(
        "later.yaml",
        format!("title: Later\nagent: command\ncommand: cat\ncontext_from: [{first_id}]\nprompt: the task itself\n"),
    );
    home.run_once();

    for id in [
        retry_id.clone(),
        home.result_of("later.yaml")["id"].as_str().unwrap().to_string(),
    ] {
        let result: serde_json::Value =
            serde_json::from_slice(&std::fs::read(home.task_dir(&id).join("result.json")).unwrap()).unwrap();
        let stdin = result["output"].as_str().unwrap();
        assert!(stdin.starts_with("Context from earlier tasks"), "{stdin}");
        assert!(
            stdin.contains(&format!("## Earlier task {first_id}: First try (failed)")),
            "{stdin}"
        );
        assert!(stdin.contains("Answer:\nparsed 41 records"), "{stdin}");
        assert!(stdin.contains("Error: command_failed:"), "{stdin}");
        let plan = plan_of(&home, &id);
        assert_eq!(plan["context"]["from"][0], first_id.as_str());
        assert_eq!(plan["context"]["cut"], 0);
    }
    let later = home.result_of("later.yaml");
    assert!(
        later["output"]
            .as_str()
            .unwrap()
            .trim_end()
            .ends_with("the task itself")
    );
}

#[test]
fn a_digest_over_the_budget_keeps_its_start_and_end_and_says_what_was_cut() {
    let home = TestHome::with_config(&(base_config() + "context_budget: 300\n"));
    let long: String = (0..200).map(|i| format!("line {i} of the answer\n")).collect();
    std::fs::write(home.path.join("long.txt"), &long).unwrap();
    home.drop_task(
        "first.yaml",
        format!(
            "agent: command\ncommand: cat {}\n",
            home.path.join("long.txt").display()
        ),
    );
    home.run_once();
    let first_id = home.result_of("first.yaml")["id"].as_str().unwrap().to_string();
    home.drop_task(
        "next.yaml",
        format!("agent: command\ncommand: cat\ncontext_from: [{first_id}]\nprompt: go on\n"),
    );
    home.run_once();
    let next = home.result_of("next.yaml");
    let stdin = next["output"].as_str().unwrap();
    assert!(stdin.contains("line 0 of the answer"), "the start is kept");
    assert!(stdin.contains("line 199 of the answer"), "the end is kept");
    assert!(!stdin.contains("line 100 of the answer"), "the middle is cut");
    assert!(stdin.contains("characters of earlier context cut here to fit the context budget"));
    let plan = plan_of(&home, next["id"].as_str().unwrap());
    assert!(
        plan["context"]["cut"].as_u64().unwrap() > 3000,
        "{}",
        plan["context"]["cut"]
    );
}

#[test]
fn context_from_must_name_task_ids() {
    let home = TestHome::new();
    home.drop_task("bad.yaml", "prompt: x\ncontext_from: [\"../etc\"]\n");
    home.run_once();
    let r = home.rejected("bad.yaml");
    assert!(r["error"].as_str().unwrap().contains("context_from"), "{r}");
}
