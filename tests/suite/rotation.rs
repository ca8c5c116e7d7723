//! Event log rotation under load: many tasks, a tiny `rotate_bytes`,
//! several writers (daemons) at once. Every line whole and valid, none lost
//! (counted against what the tasks must have said), and `tail-events -f`
//! sees every one of them as it is written, across every rotation.
//! (Unix: the daemons are stopped with SIGTERM to end their logs cleanly.)

use crate::common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

#[test]
fn rotation_under_load_loses_no_line_and_tail_follows_every_one() {
    const TASKS: usize = 150;
    let home = TestHome::with_config(&config_with(
        "max_concurrent: 4\nevents:\n  rotate_bytes: 4096\n  keep: 100000\n",
        "",
    ));
    // The follower starts first, on a log of one empty run's two events: once it
    // printed them, it follows.
    assert!(home.run_once().status.success());
    let tail = home.follow_events(2);
    let first = tail.until(Duration::from_secs(20), |seen| seen.len() == 2);
    assert_eq!(first.len(), 2, "the follower printed the log so far");

    // Two daemons write to the same log while tasks pour in.
    let daemons: Vec<_> = (0..2).map(|_| home.spawn_daemon()).collect();
    for i in 0..TASKS {
        home.drop_task(&format!("r{i:03}.yaml"), "agent: command\ncommand: echo hi\n");
    }
    wait_until(Duration::from_secs(120), "every task to finish", || {
        std::fs::read_dir(home.path.join("results"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().join("result.json").exists())
            .count()
            == TASKS
    });
    for d in &daemons {
        sigterm(d.id());
    }
    for d in daemons {
        assert!(wait_output(d, Duration::from_secs(20)).status.success());
    }

    // Every file: whole, valid lines; count them by kind.
    let mut files: Vec<_> = std::fs::read_dir(home.path.join("logs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ndjson"))
        .collect();
    files.sort();
    assert!(files.len() > 20, "the log rotated many times: {} files", files.len());
    let mut on_disk = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{} ends with a whole line",
            f.display()
        );
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: {e}: {line}", f.display()));
            on_disk.push(v);
        }
    }
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for v in &on_disk {
        *kinds.entry(v["event"].as_str().unwrap().to_string()).or_default() += 1;
    }
    // What the tasks must have said: each one queued (by at least one daemon),
    // started, one attempt, finished; each daemon started and stopped.
    for kind in ["task_started", "attempt_started", "attempt_finished", "task_succeeded"] {
        assert_eq!(kinds.get(kind), Some(&TASKS), "{kind}: {kinds:?}");
    }
    assert!(kinds["task_queued"] >= TASKS, "{kinds:?}");
    assert_eq!(kinds["daemon_started"], 3, "two daemons and the empty run first");
    assert_eq!(kinds["daemon_stopped"], 3);

    // The follower saw exactly the lines on disk, each once.
    let mut seen = first;
    seen.extend(tail.until(Duration::from_secs(20), |s| s.len() + 2 >= on_disk.len()));
    seen.extend(tail.stop());
    let key = |v: &Value| v.to_string();
    let mut a: Vec<String> = on_disk.iter().map(key).collect();
    let mut b: Vec<String> = seen.iter().map(key).collect();
    a.sort();
    b.sort();
    eprintln!(
        "rotation under load: {} lines in {} files, tail -f saw {}",
        a.len(),
        files.len(),
        b.len()
    );
    assert_eq!(a.len(), b.len(), "tail -f saw every line once");
    assert!(a == b, "tail -f saw the same lines");
}
