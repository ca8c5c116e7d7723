//! Work that takes more than one task: `after:` and `after_any:` chains,
//! driven through the built binary as a user does.

use crate::common::*;
use serde_json::Value;
use std::time::Duration;

/// Where in the event log the first event of `kind` for task `id` is (the
/// log is in the order things happened); `task_finished` is its last event,
/// whatever the status.
fn position(home: &TestHome, kind: &str, id: &str) -> usize {
    let is = |e: &Value| match kind {
        "task_finished" => {
            ["task_succeeded", "task_failed", "task_cancelled"].contains(&e["event"].as_str().unwrap_or(""))
        }
        _ => e["event"] == kind,
    };
    home.events()
        .iter()
        .position(|e| is(e) && e["task_id"] == id)
        .unwrap_or_else(|| panic!("no {kind} for {id}"))
}

fn id_of(r: &Value) -> String {
    r["id"].as_str().unwrap().to_string()
}

#[test]
fn a_chain_runs_in_order_and_a_failed_link_cancels_every_later_one() {
    let home = TestHome::new();
    home.drop_task("1-review.yaml", "agent: command\ncommand: echo reviewed\n");
    home.drop_task(
        "2-fix.yaml",
        "agent: command\ncommand: 'echo no; exit 3'\nretries: 0\nafter: [1-review.yaml]\n",
    );
    home.drop_task(
        "3-changelog.yaml",
        "title: Update the changelog\nagent: command\ncommand: echo never\nafter: [2-fix.yaml]\n",
    );
    home.drop_task(
        "4-release.yaml",
        "agent: command\ncommand: echo never\nafter: [3-changelog.yaml]\n",
    );
    let out = home.run_once();
    let (review, fix, log, release) = (
        home.result_of("1-review.yaml"),
        home.result_of("2-fix.yaml"),
        home.result_of("3-changelog.yaml"),
        home.result_of("4-release.yaml"),
    );
    assert_eq!(review["status"], "succeeded", "{}", stderr(&out));
    assert_eq!(fix["status"], "failed");
    // The fix started only once the review had finished.
    assert!(position(&home, "task_started", &id_of(&fix)) > position(&home, "task_finished", &id_of(&review)));
    for (r, waited_for) in [(&log, "2-fix.yaml"), (&release, "3-changelog.yaml")] {
        assert_eq!(r["status"], "cancelled", "{r}");
        assert_eq!(r["error"]["kind"], "dependency_failed", "{r}");
        let message = r["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("it waited for {waited_for} (task ")),
            "{message}"
        );
        assert!(message.contains("it never ran"), "{message}");
        assert_eq!(r["attempts"].as_array().unwrap().len(), 0, "{r}");
        // Never started: no task_started event, no agent run.
        assert!(
            !home.events_of("task_started").iter().any(|e| e["task_id"] == r["id"]),
            "{r}"
        );
    }
    assert_eq!(log["title"], "Update the changelog");
    assert_eq!(log["agent"], "command");
    let queued = home.events_of("task_queued");
    let fix_queued = queued.iter().find(|e| e["file"] == "2-fix.yaml").unwrap();
    assert_eq!(fix_queued["waiting_for"], serde_json::json!(["1-review.yaml"]));
    assert_eq!(home.index()["tasks"].as_object().unwrap().len(), 4);
}

#[test]
fn a_diamond_joins_both_branches_and_gets_their_answers_as_context() {
    let home = TestHome::new();
    home.drop_task("a.yaml", "agent: command\ncommand: echo from-a\n");
    home.drop_task(
        "b.yaml",
        "agent: command\ncommand: echo from-b\nafter: [a.yaml]\ncontext: false\n",
    );
    home.drop_task(
        "c.yaml",
        "agent: command\ncommand: 'echo from-c; exit 1'\nretries: 0\nafter: [a.yaml]\ncontext: false\n",
    );
    // `cat` prints what it was given: the digest of the tasks waited for, then the prompt.
    home.drop_task(
        "join.yaml",
        "agent: command\ncommand: cat\nafter: [b.yaml]\nafter_any: [c.yaml]\nprompt: join them\n",
    );
    home.drop_task(
        "quiet.yaml",
        "agent: command\ncommand: cat\nafter: [b.yaml]\ncontext: false\nprompt: no context\n",
    );
    home.run_once();
    let [a, b, c, join, quiet] = ["a.yaml", "b.yaml", "c.yaml", "join.yaml", "quiet.yaml"].map(|f| home.result_of(f));
    assert_eq!(
        [&a, &b, &c, &join, &quiet].map(|r| r["status"].as_str().unwrap().to_string()),
        ["succeeded", "succeeded", "failed", "succeeded", "succeeded"]
    );
    for branch in [&b, &c] {
        assert!(position(&home, "task_started", &id_of(branch)) > position(&home, "task_finished", &id_of(&a)));
        assert!(position(&home, "task_started", &id_of(&join)) > position(&home, "task_finished", &id_of(branch)));
    }
    let stdin = join["output"].as_str().unwrap();
    assert!(stdin.starts_with("Context from earlier tasks"), "{stdin}");
    for (r, answer) in [(&b, "from-b"), (&c, "from-c")] {
        assert!(stdin.contains(&format!("## Earlier task {}", id_of(r))), "{stdin}");
        assert!(stdin.contains(answer), "{stdin}");
    }
    assert!(stdin.trim_end().ends_with("join them"), "{stdin}");
    assert_eq!(quiet["output"].as_str().unwrap().trim(), "no context");
}

#[test]
fn cycles_a_task_waiting_for_itself_and_unknown_names_are_rejected_with_the_reason() {
    let home = TestHome::new();
    home.drop_task("ping.yaml", "agent: command\ncommand: 'true'\nafter: [pong.yaml]\n");
    home.drop_task("pong.yaml", "agent: command\ncommand: 'true'\nafter: [ping.yaml]\n");
    home.drop_task("self.yaml", "agent: command\ncommand: 'true'\nafter: [self.yaml]\n");
    home.drop_task("typo.yaml", "agent: command\ncommand: 'true'\nafter: [reveiw.md]\n");
    home.drop_task("bad.yaml", "agent: command\ncommand: 'true'\nafter: [../review.md]\n");
    home.drop_task("fine.yaml", "agent: command\ncommand: 'true'\n");
    home.run_once();
    for f in ["ping.yaml", "pong.yaml"] {
        let why = home.rejected(f);
        assert_eq!(why["reason"], "dependency_cycle", "{why}");
        let error = why["error"].as_str().unwrap();
        assert!(error.contains("ping.yaml") && error.contains("pong.yaml"), "{error}");
    }
    assert_eq!(home.rejected("self.yaml")["reason"], "dependency_cycle");
    let typo = home.rejected("typo.yaml");
    assert_eq!(typo["reason"], "unknown_dependency");
    assert!(
        typo["error"].as_str().unwrap().contains("`reveiw.md` names no task"),
        "{typo}"
    );
    assert_eq!(home.rejected("bad.yaml")["reason"], "invalid_value");
    // Nothing of them ran; the task beside them did.
    assert_eq!(home.results().len(), 1);
    assert_eq!(home.result_of("fine.yaml")["status"], "succeeded");
}

#[test]
fn waiting_is_shown_and_survives_a_daemon_killed_mid_chain() {
    let home = TestHome::new();
    let marker = home.path.join("first-ran");
    home.drop_task(
        "first.yaml",
        format!(
            "agent: command\ncommand: 'touch {}; sleep 2; echo first'\n",
            marker.display()
        ),
    );
    home.drop_task(
        "second.yaml",
        "agent: command\ncommand: echo second\nafter: [first.yaml]\n",
    );
    // Before any daemon: the file is queued and says what it waits for.
    let shown = stdout(&home.cli(&["show", "second.yaml"]));
    assert!(shown.contains("waiting for first.yaml (queued)"), "{shown}");
    let status = home.cli_json(&["status"]);
    let second = status["queued"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["file"] == "second.yaml")
        .cloned();
    assert_eq!(
        second.unwrap()["waiting_for"],
        serde_json::json!(["first.yaml (queued)"])
    );

    let mut daemon = home.spawn_daemon();
    wait_until(Duration::from_secs(30), "the first task to run", || marker.exists());
    // While first runs: status, list and show say so, with its id.
    let first_id = home.events_of("task_started")[0]["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let listed = stdout(&home.cli(&["list"]));
    assert!(
        listed.contains(&format!("waiting for first.yaml (running as {first_id})")),
        "{listed}"
    );
    wait_until(Duration::from_secs(30), "status to list the held file", || {
        stdout(&home.cli(&["status"])).contains(&format!(
            "second.yaml  (priority 0, command)  echo second  waiting for first.yaml (running as {first_id})"
        ))
    });
    kill9(daemon.id());
    let _ = daemon.wait();
    // The next daemon takes first over, and second still waits for it.
    let out = home.run_once();
    let (first, second) = (home.result_of("first.yaml"), home.result_of("second.yaml"));
    assert_eq!(
        (&first["status"], &second["status"]),
        (&"succeeded".into(), &"succeeded".into()),
        "{}",
        stderr(&out)
    );
    assert!(position(&home, "task_started", &id_of(&second)) > position(&home, "task_finished", &id_of(&first)));
}

#[test]
fn two_daemons_share_a_chain_and_each_link_runs_once_in_order() {
    let home = TestHome::new();
    let mut daemons = [home.spawn_daemon(), home.spawn_daemon()];
    home.wait_started(2);
    let n = 12;
    for i in 0..n {
        let after = if i == 0 {
            String::new()
        } else {
            format!("after: [link-{:02}.yaml]\n", i - 1)
        };
        home.drop_task(
            &format!("link-{i:02}.yaml"),
            format!("agent: command\ncommand: echo {i}\n{after}"),
        );
    }
    wait_until(Duration::from_secs(60), "every link to finish", || {
        home.results().len() == n
    });
    for d in &mut daemons {
        sigterm(d.id());
        let _ = d.wait();
    }
    let results = home.results();
    assert_eq!(results.len(), n);
    let mut previous: Option<String> = None;
    for i in 0..n {
        let r = home.result_of(&format!("link-{i:02}.yaml"));
        assert_eq!(r["status"], "succeeded", "{r}");
        if let Some(p) = previous {
            assert!(position(&home, "task_started", &id_of(&r)) > position(&home, "task_finished", &p));
        }
        previous = Some(id_of(&r));
    }
    assert_eq!(home.events_of("task_started").len(), n, "each link ran once");
}

#[test]
fn a_delayed_task_waits_from_when_it_was_dropped_and_a_past_start_time_runs_at_once() {
    let home = TestHome::new();
    home.drop_task("later.yaml", "agent: command\ncommand: echo later\ndelay: 3s\n");
    home.drop_task(
        "past.yaml",
        "agent: command\ncommand: echo past\nnot_before: 2020-01-01T00:00:00Z\n",
    );
    let shown = stdout(&home.cli(&["show", "later.yaml"]));
    assert!(shown.contains("waiting for its start time 20"), "{shown}");
    let out = home.run_once();
    let (later, past) = (home.result_of("later.yaml"), home.result_of("past.yaml"));
    assert_eq!(
        (&later["status"], &past["status"]),
        (&"succeeded".into(), &"succeeded".into()),
        "{}",
        stderr(&out)
    );
    // The delay counts from the file's arrival (its modification time, kept by the claim).
    let dropped: jiff::Timestamp = std::fs::metadata(home.task_dir(&id_of(&later)).join("task.yaml"))
        .unwrap()
        .modified()
        .unwrap()
        .try_into()
        .unwrap();
    let started: jiff::Timestamp = later["started_at"].as_str().unwrap().parse().unwrap();
    assert!(
        started >= dropped + jiff::SignedDuration::from_secs(3),
        "{started} vs {dropped}"
    );
    assert!(position(&home, "task_started", &id_of(&past)) < position(&home, "task_started", &id_of(&later)));
    // Its task_queued event says until when it waits (what `run` in a
    // terminal prints); a start time already past is none.
    let queued = home.events_of("task_queued");
    let of = |file: &str| queued.iter().find(|e| e["file"] == file).unwrap().clone();
    let due = dropped + jiff::SignedDuration::from_secs(3);
    let later_queued = of("later.yaml");
    let at: jiff::Timestamp = later_queued["ts"].as_str().unwrap().parse().unwrap();
    // (A machine so loaded that the daemon queued it only after its start
    // time has none to say.)
    if at < due - jiff::SignedDuration::from_millis(5) {
        let until: jiff::Timestamp = later_queued["starts_at"].as_str().unwrap().parse().unwrap();
        assert_eq!(until, due);
    }
    assert!(of("past.yaml").get("starts_at").is_none(), "{}", of("past.yaml"));
}

#[test]
fn a_verify_loop_runs_the_command_again_until_its_check_passes() {
    let home = TestHome::new();
    home.drop_task(
        "build.yaml",
        "agent: command\ncommand: 'echo run >> runs.txt; echo built'\nverify: 'n=$(wc -l < runs.txt); echo \"checked after $n run(s)\" >&2; test $n -ge 2 || exit 4'\nverify_rounds: 3\n",
    );
    let out = home.run_once();
    let r = home.result_of("build.yaml");
    assert_eq!(r["status"], "succeeded", "{r}\n{}", stderr(&out));
    let rounds = r["verify"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{r}");
    assert_eq!(
        (rounds[0]["round"].as_u64(), rounds[0]["exit_code"].as_i64()),
        (Some(1), Some(4))
    );
    // stderr is in the tail, in order with stdout.
    assert!(
        rounds[0]["output_tail"]
            .as_str()
            .unwrap()
            .contains("checked after 1 run(s)"),
        "{r}"
    );
    assert_eq!(
        (rounds[1]["round"].as_u64(), rounds[1]["exit_code"].as_i64()),
        (Some(2), Some(0))
    );
    assert!(rounds[1]["duration_ms"].is_u64() && rounds[0]["command"].as_str().unwrap().starts_with("n=$(wc"));
    // The command ran again for the second round: two attempts, each once.
    assert_eq!(r["attempts"].as_array().unwrap().len(), 2, "{r}");
    let checks = home.events_of("verify_finished");
    assert_eq!(
        checks
            .iter()
            .map(|e| (e["round"].as_u64().unwrap(), e["passed"].as_bool().unwrap()))
            .collect::<Vec<_>>(),
        [(1, false), (2, true)]
    );
    let shown = stdout(&home.cli(&["show", "build.yaml"]));
    assert!(shown.contains("after check 1: exit 0"), "{shown}");
    assert!(
        shown.contains("check 1: `n=$(wc") && shown.contains("` exit 4"),
        "{shown}"
    );
    assert!(shown.contains("check 2: `") && shown.contains("` exit 0"), "{shown}");
    let summary = std::fs::read_to_string(home.path.join("summaries").join(format!("{}.md", id_of(&r)))).unwrap();
    assert!(
        summary.contains("## Verify") && summary.contains("- round 2: `"),
        "{summary}"
    );
}

#[test]
fn a_check_that_never_passes_fails_the_task_after_its_rounds() {
    let home = TestHome::new();
    home.drop_task(
        "never.yaml",
        "agent: command\ncommand: echo tried\nverify: 'echo still broken; exit 1'\nverify_rounds: 2\n",
    );
    home.drop_task(
        "zero.yaml",
        "agent: command\ncommand: 'true'\nverify: 'true'\nverify_rounds: 0\n",
    );
    home.drop_task("alone.yaml", "agent: command\ncommand: 'true'\nverify_rounds: 2\n");
    home.run_once();
    let r = home.result_of("never.yaml");
    assert_eq!(
        (&r["status"], &r["error"]["kind"]),
        (&"failed".into(), &"verify_failed".into()),
        "{r}"
    );
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("still failed after 2 round(s) (exit code 1)"),
        "{r}"
    );
    let rounds = r["verify"].as_array().unwrap();
    assert_eq!(rounds.len(), 2);
    assert!(
        rounds
            .iter()
            .all(|v| v["exit_code"] == 1 && v["output_tail"] == "still broken"),
        "{r}"
    );
    assert_eq!(r["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(home.rejected("zero.yaml")["reason"], "invalid_value");
    assert!(
        home.rejected("alone.yaml")["error"]
            .as_str()
            .unwrap()
            .contains("verify_rounds: is set without `verify`")
    );
}

#[test]
fn a_failed_check_asks_the_agent_again_in_its_session_with_what_the_check_said() {
    let home = TestHome::new();
    home.drop_task(
        "fix.md",
        "---\nverify: 'echo x >> checks.txt; test $(wc -l < checks.txt) -ge 2 || { echo 3 tests failed; exit 1; }'\n---\nMake the tests pass.\n",
    );
    let out = home.run_once();
    let r = home.result_of("fix.md");
    assert_eq!(r["status"], "succeeded", "{r}\n{}", stderr(&out));
    assert_eq!(r["verify"].as_array().unwrap().len(), 2, "{r}");
    // The fake CLI answers with the session it was resumed in and the first
    // line of what it was asked.
    let session = r["session_id"].as_str().unwrap();
    let answer = r["output"].as_str().unwrap();
    assert!(
        answer.starts_with(&format!("Done in session {session}: The check `echo x >> checks.txt;")),
        "{answer}"
    );
    assert!(
        answer.contains("failed (it exited with code 1); this was check 1 of 3"),
        "{answer}"
    );
    let attempts = r["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert!(
        std::fs::read_to_string(home.task_dir(&id_of(&r)).join("attempt-2.out"))
            .unwrap()
            .contains(session)
    );
}

#[test]
fn a_daemon_killed_during_a_check_is_recovered_with_its_work_done() {
    let home = TestHome::new();
    let checking = home.path.join("checking");
    home.drop_task(
        "build.yaml",
        format!(
            "agent: command\ncommand: 'echo run >> runs.txt; echo built'\nverify: 'test -f {0} && exit 0; touch {0}; sleep 30'\n",
            checking.display()
        ),
    );
    let mut daemon = home.spawn_daemon();
    wait_until(Duration::from_secs(30), "the first check to run", || checking.exists());
    kill9(daemon.id());
    let _ = daemon.wait();
    let out = home.run_once();
    let r = home.result_of("build.yaml");
    assert_eq!(r["status"], "succeeded", "{r}\n{}", stderr(&out));
    let runs = std::fs::read_to_string(home.path.join("runs.txt")).unwrap();
    assert_eq!(runs.lines().count(), 1, "the work is not done again: {runs}");
    assert_eq!(r["output"], "built", "its answer is kept: {r}");
    assert_eq!(r["verify"].as_array().unwrap().len(), 1, "{r}");
}

#[test]
fn a_check_that_runs_into_the_timeout_ends_the_task_as_timed_out() {
    let home = TestHome::new();
    home.drop_task(
        "slow.yaml",
        "agent: command\ncommand: echo built\ntimeout: 2s\nverify: 'sleep 30'\n",
    );
    let started = std::time::Instant::now();
    home.run_once();
    let r = home.result_of("slow.yaml");
    assert_eq!(
        (&r["status"], &r["error"]["kind"]),
        (&"failed".into(), &"timeout".into()),
        "{r}"
    );
    assert!(
        r["error"]["message"].as_str().unwrap().contains("while `sleep 30` ran"),
        "{r}"
    );
    assert_eq!(r["verify"][0]["exit_code"], Value::Null, "{r}");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the check was stopped, not waited for"
    );
}

#[test]
fn a_dependency_taken_off_the_queue_ends_its_dependents_and_says_so_first() {
    let home = TestHome::new();
    home.drop_task("a.yaml", "agent: command\ncommand: echo a\n");
    home.drop_task("b.yaml", "agent: command\ncommand: echo b\nafter: [a.yaml]\n");
    home.drop_task("c.yaml", "agent: command\ncommand: echo c\nafter_any: [a.yaml]\n");
    let out = home.cli(&["cancel", "a.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&home.cli(&["show", "b.yaml"]));
    assert!(
        shown.contains("waiting for a.yaml (taken off the queue: this task ends as cancelled)"),
        "{shown}"
    );
    home.run_once();
    let (b, c) = (home.result_of("b.yaml"), home.result_of("c.yaml"));
    assert_eq!(
        (&b["status"], &b["error"]["kind"]),
        (&"cancelled".into(), &"dependency_failed".into()),
        "{b}"
    );
    assert!(
        b["error"]["message"].as_str().unwrap().contains("inbox/cancelled/"),
        "{b}"
    );
    assert_eq!(c["status"], "succeeded", "after_any: an end is an end: {c}");
}
