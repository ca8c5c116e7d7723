//! Live config: editing `orchestrator.yaml` (or SIGHUP) under a running
//! daemon, driven as an operator does it: edit the file, read the events.

use crate::common::*;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// A command task that runs until `release` exists in the home, then prints `$LIVE_MARK`.
fn held_task(home: &TestHome) -> String {
    let release = home.path.join("release");
    format!(
        "agent: command\ncommand: 'while [ ! -f \"{}\" ]; do sleep 0.05; done; echo \"mark=$LIVE_MARK\"'\n",
        release.display()
    )
}

fn config(max_concurrent: usize, mark: &str) -> String {
    config_with(&format!("max_concurrent: {max_concurrent}"), "")
        + &format!("  command:\n    env:\n      LIVE_MARK: {mark}\n")
}

fn reloads(home: &TestHome) -> Vec<serde_json::Value> {
    home.events_of("config_reloaded")
}

#[test]
fn max_concurrent_raised_starts_queued_tasks_and_running_ones_keep_their_config() {
    let home = TestHome::with_config(&config(1, "OLDVALUE"));
    let mut daemon = home.spawn_daemon();
    home.wait_started(1);
    for i in 0..3 {
        home.drop_task(&format!("t{i}.yaml"), held_task(&home));
    }
    wait_until(LONG, "one task to start and two to queue", || {
        home.events_of("task_started").len() == 1 && home.events_of("task_queued").len() == 3
    });

    std::fs::write(home.path.join("orchestrator.yaml"), config(3, "NEWVALUE")).unwrap();
    wait_until(LONG, "the reload", || !reloads(&home).is_empty());
    let r = &reloads(&home)[0];
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["trigger"], "file");
    let changed: Vec<&str> = r["changed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        changed.contains(&"max_concurrent") && changed.contains(&"agents.command"),
        "{changed:?}"
    );
    assert!(!r.to_string().contains("NEWVALUE"), "values are not in the event: {r}");
    wait_until(LONG, "the two queued tasks to start at once", || {
        home.events_of("task_started").len() == 3
    });

    std::fs::write(home.path.join("release"), "").unwrap();
    wait_until(LONG, "the three tasks to finish", || home.results().len() == 3);
    let mut marks: Vec<String> = home
        .results()
        .iter()
        .map(|r| r["output"].as_str().unwrap_or("").trim().to_string())
        .collect();
    marks.sort();
    // The first started under the old config and kept it; the two others started after the reload.
    assert_eq!(marks, ["mark=NEWVALUE", "mark=NEWVALUE", "mark=OLDVALUE"]);
    sigterm(daemon.id());
    assert!(daemon.wait().unwrap().success());
}

#[test]
fn a_bad_edit_is_reported_and_the_config_in_force_stays_and_sighup_never_kills() {
    let home = TestHome::with_config(&config(1, "OLDVALUE"));
    let mut daemon = home.spawn_daemon();
    home.wait_started(1);

    std::fs::write(home.path.join("orchestrator.yaml"), "max_concurrent: [oops\n").unwrap();
    wait_until(LONG, "the refused reload", || !reloads(&home).is_empty());
    let r = &reloads(&home)[0];
    assert_eq!(r["ok"], false, "{r}");
    assert!(r["error"].as_str().unwrap().contains("config in force stays"), "{r}");

    // SIGHUP reads the (still bad) file again: refused again, and the daemon lives on.
    unsafe_sighup(daemon.id());
    wait_until(LONG, "the second refused reload", || reloads(&home).len() == 2);
    assert_eq!(reloads(&home)[1]["trigger"], "sighup");
    assert!(daemon.try_wait().unwrap().is_none(), "SIGHUP must not stop the daemon");

    // The config in force (the old one) still runs tasks.
    std::fs::write(home.path.join("release"), "").unwrap();
    home.drop_task("after.yaml", held_task(&home));
    wait_until(LONG, "the task to finish", || home.results().len() == 1);
    assert_eq!(home.results()[0]["output"].as_str().unwrap().trim(), "mark=OLDVALUE");

    // Fixed: taken at the next change, with an unknown key named if there is one.
    std::fs::write(
        home.path.join("orchestrator.yaml"),
        config(1, "OLDVALUE") + "notify_me: yes\n",
    )
    .unwrap();
    wait_until(LONG, "the third reload", || reloads(&home).len() == 3);
    let r = &reloads(&home)[2];
    assert_eq!(r["ok"], false);
    assert!(r["error"].as_str().unwrap().contains("notify_me"), "{r}");
    std::fs::write(home.path.join("orchestrator.yaml"), config(2, "OLDVALUE")).unwrap();
    wait_until(LONG, "the good reload", || reloads(&home).len() == 4);
    assert_eq!(reloads(&home)[3]["ok"], true);
    assert_eq!(reloads(&home)[3]["changed"], serde_json::json!(["max_concurrent"]));

    sigterm(daemon.id());
    assert!(daemon.wait().unwrap().success());
    assert_eq!(home.events_of("daemon_stopped").len(), 1);
}

fn unsafe_sighup(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_variable_keeps_overriding_the_file_across_reloads() {
    let home = TestHome::with_config(&config(1, "OLDVALUE"));
    let mut daemon = home
        .cmd()
        .arg("run")
        .env("ORCHESTRATOR_MAX_CONCURRENT", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    home.wait_started(1);
    std::fs::write(home.path.join("orchestrator.yaml"), config(3, "NEWVALUE")).unwrap();
    wait_until(LONG, "the reload", || !reloads(&home).is_empty());
    let r = &reloads(&home)[0];
    assert_eq!(r["ok"], true);
    // The file's max_concurrent changed, but ORCHESTRATOR_MAX_CONCURRENT still sets it.
    assert_eq!(r["changed"], serde_json::json!(["agents.command"]), "{r}");
    for i in 0..2 {
        home.drop_task(&format!("t{i}.yaml"), held_task(&home));
    }
    // One runs, one waits: the daemon's published state says so (both would
    // run, in the same turn of its loop, with the file's 3).
    wait_until(LONG, "one task running and one waiting", || {
        let s = home.cli_json(&["status"]);
        s["running"].as_array().is_some_and(|r| r.len() == 1) && s["queued_total"] == 1
    });
    std::fs::write(home.path.join("release"), "").unwrap();
    wait_until(LONG, "both to finish", || home.results().len() == 2);
    sigterm(daemon.id());
    assert!(daemon.wait().unwrap().success());
}
