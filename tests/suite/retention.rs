//! The daemon's own retention (`retention:`), as `clean` does it, never
//! touching a task that is not finished.

use crate::common::*;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// Runs `tasks` (name, content) to their end, then marks those named in
/// `old` as finished in 2020 (result.json and the index, as `reindex` reads them).
fn finished_tasks(home: &TestHome, tasks: &[(&str, &str)], old: &[&str]) {
    for (name, text) in tasks {
        home.drop_task(name, text);
    }
    home.run_once();
    for r in home.results() {
        if old.contains(&r["source_file"].as_str().unwrap()) {
            let id = r["id"].as_str().unwrap();
            let path = home.task_dir(id).join("result.json");
            let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            v["finished_at"] = "2020-01-01T00:00:00.000Z".into();
            std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        }
    }
    assert!(home.cli(&["reindex"]).status.success());
}

fn ids_left(home: &TestHome) -> Vec<String> {
    let mut files: Vec<String> = home
        .results()
        .iter()
        .map(|r| r["source_file"].as_str().unwrap().to_string())
        .collect();
    files.sort();
    files
}

#[test]
fn the_daemon_removes_what_its_retention_says_and_never_a_running_task() {
    let home = TestHome::new();
    let ok = "agent: command\ncommand: echo done\n";
    finished_tasks(
        &home,
        &[("old1.yaml", ok), ("old2.yaml", ok), ("recent.yaml", ok)],
        &["old1.yaml", "old2.yaml"],
    );
    let release = home.path.join("release");
    std::fs::write(
        home.path.join("orchestrator.yaml"),
        base_config() + "retention:\n  max_age: 1h\n  every: 1s\n",
    )
    .unwrap();
    let mut daemon = home.spawn_daemon();
    home.wait_started(1);
    home.drop_task(
        "running.yaml",
        format!(
            "agent: command\ncommand: 'while [ ! -f \"{}\" ]; do sleep 0.05; done'\n",
            release.display()
        ),
    );
    wait_until(LONG, "the retention pass", || {
        !home.events_of("retention_applied").is_empty()
    });
    let e = &home.events_of("retention_applied")[0];
    assert_eq!(e["tasks"], 2, "{e}");
    assert_eq!(ids_left(&home), ["recent.yaml"]);
    let index = home.index();
    assert_eq!(
        index["tasks"].as_object().unwrap().len(),
        1,
        "their index rows went too"
    );
    let summaries = std::fs::read_dir(home.path.join("summaries")).unwrap().count();
    assert_eq!(summaries, 1);
    // The running task is untouched, finishes, and stays (it is recent).
    wait_until(LONG, "the task to start", || !home.events_of("task_started").is_empty());
    std::fs::write(&release, "").unwrap();
    wait_until(LONG, "the task to finish", || home.results().len() == 2);
    assert_eq!(ids_left(&home), ["recent.yaml", "running.yaml"]);
    sigterm(daemon.id());
    assert!(daemon.wait().unwrap().success());
}

#[test]
fn max_tasks_keeps_the_newest_of_the_statuses_it_names() {
    let home = TestHome::new();
    let ok = "agent: command\ncommand: echo done\n";
    let fail = "agent: command\ncommand: exit 3\n";
    finished_tasks(
        &home,
        &[("a.yaml", ok), ("b.yaml", ok), ("c.yaml", ok), ("f.yaml", fail)],
        &["a.yaml", "b.yaml", "c.yaml", "f.yaml"],
    );
    std::fs::write(
        home.path.join("orchestrator.yaml"),
        base_config() + "retention:\n  max_tasks: 1\n  statuses: [succeeded]\n",
    )
    .unwrap();
    let mut daemon = home.spawn_daemon();
    home.wait_started(1);
    wait_until(LONG, "the retention pass", || {
        !home.events_of("retention_applied").is_empty()
    });
    assert_eq!(home.events_of("retention_applied")[0]["tasks"], 2);
    // The newest succeeded task (ids sort by claim time) and the failed one stay.
    let left = ids_left(&home);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&"f.yaml".to_string()), "{left:?}");
    sigterm(daemon.id());
    assert!(daemon.wait().unwrap().success());
}

#[test]
fn a_bad_retention_section_is_an_error_that_names_the_key() {
    let home = TestHome::with_config(&(base_config() + "retention:\n  max_age: 1h\n  keep: 3\n"));
    let out = home.cli(&["config"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("keep"), "{}", stderr(&out));
    let home = TestHome::with_config(&(base_config() + "retention:\n  statuses: [running]\n"));
    let out = home.cli(&["config"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("retention.statuses"), "{}", stderr(&out));
}
