use super::*;
use serde_json::json;

#[test]
fn a_line_puts_the_logs_fields_first_and_the_events_in_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.ndjson");
    let log = EventLog::new(path.clone(), dir.path().join(".lock"), 1 << 20, 2);
    // A field named like one the log adds is dropped; a `ts` among the
    // fields is when the event happened.
    log.emit_fields(
        "task_started",
        Some("id-1"),
        serde_json::json!({"file": "a.md", "event": "forged", "ts": "2026-01-01T00:00:00Z", "task_id": "other", "n": 2}),
    );
    let (name, fields) = parts(&Event::TaskQueued {
        file: "b.md".into(),
        title: "T".into(),
        agent: crate::vocab::AgentKind::Command,
        priority: 0,
        waiting_for: Vec::new(),
        starts_at: None,
    });
    log.emit_parts(None, [(name, fields)]);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        r#"{"ts":"2026-01-01T00:00:00Z","event":"task_started","task_id":"id-1","file":"a.md","n":2}"#
    );
    let second: Map<String, Value> = serde_json::from_str(lines[1]).unwrap();
    let keys: Vec<&str> = second.keys().map(String::as_str).collect();
    assert_eq!(keys, ["ts", "event", "file", "title", "agent", "priority"]);
}

#[test]
fn an_event_never_glues_to_a_torn_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.ndjson");
    let log = EventLog::new(path.clone(), dir.path().join(".lock"), 1 << 20, 2);
    log.emit_fields("first", None, serde_json::json!({}));
    // A writer that died mid-line (or anyone else) leaves a line without its end.
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"ts\":\"torn")
        .unwrap();
    log.emit_fields("second", None, serde_json::json!({}));
    log.emit_fields("third", None, serde_json::json!({}));
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(lines[1], "{\"ts\":\"torn");
    for l in [lines[0], lines[2], lines[3]] {
        serde_json::from_str::<Value>(l).expect("whole event lines");
    }
    assert!(!text.contains("\n\n"), "no blank lines when nothing was torn: {text:?}");
}

/// An event of any name and fields, written as `emit` writes them.
fn raw(log: &EventLog, event: &str, task_id: Option<&str>, fields: Value) -> io::Result<()> {
    let line = log.line(event, task_id, fields)?;
    log.append(&line)
}

#[test]
fn typed_events_are_written_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::new(dir.path().join("events.ndjson"), dir.path().join(".lock"), 1 << 20, 2);
    log.emit(
        Some("t1"),
        Event::TaskInterrupted(Interruption::DaemonDied {
            attempt: 2,
            killed_leftover: true,
            recovered_by: "host:1".into(),
        }),
    );
    let finished = Finished {
        title: "T".into(),
        duration_ms: 5,
        attempts: 1,
        cost_usd: None,
        error: None,
        message: None,
        suggestion: None,
        late: false,
    };
    log.emit(Some("t1"), Event::TaskSucceeded(finished.clone()));
    log.emit(Some("t2"), Event::TaskFailed(Finished { late: true, ..finished }));
    log.emit(
        None,
        Event::SecurityViolation(Violation {
            reason: "workdir_moved".into(),
            error: Some("e".into()),
            ..Violation::default()
        }),
    );
    let text = std::fs::read_to_string(dir.path().join("events.ndjson")).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["event"], "task_interrupted");
    assert_eq!(lines[0]["reason"], "daemon_died");
    assert_eq!(lines[0]["task_id"], "t1");
    assert_eq!(lines[0]["attempt"], 2);
    assert_eq!(lines[1]["event"], "task_succeeded");
    assert!(lines[1].get("late").is_none(), "late only when it is: {}", lines[1]);
    assert_eq!(lines[2]["late"], true);
    assert_eq!(lines[3]["event"], "security_violation");
    let mut keys: Vec<&str> = lines[3].as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["error", "event", "reason", "ts"],
        "fields a violation does not have are left out"
    );
}

#[test]
fn lines_are_whole_and_rotation_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let log = std::sync::Arc::new(EventLog::new(
        dir.path().join("events.ndjson"),
        dir.path().join(".lock"),
        2000,
        1000,
    ));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    raw(
                        &log,
                        "task_queued",
                        Some(&format!("t{t}")),
                        json!({"n": i, "pad": "x".repeat(i % 50)}),
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut files = rotated_logs(dir.path()).unwrap();
    assert!(files.len() > 5, "rotation happened");
    files.push(dir.path().join("events.ndjson"));
    let mut count = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(std::fs::metadata(&f).unwrap().len() <= 2000 + 200);
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).expect("whole JSON line");
            assert_eq!(v["event"], "task_queued");
            assert!(v["ts"].as_str().unwrap().ends_with('Z'));
            count += 1;
        }
    }
    assert_eq!(count, 800);
}

#[test]
fn a_batch_is_written_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::new(dir.path().join("events.ndjson"), dir.path().join(".lock"), 1 << 20, 2);
    log.emit_fields("daemon_started", None, json!({}));
    log.emit_parts(
        Some("t1"),
        [
            ("task_started".to_string(), json!({"n": 1})),
            ("attempt_started".to_string(), json!({"n": 2})),
        ],
    );
    log.emit_parts(None, []);
    let text = std::fs::read_to_string(dir.path().join("events.ndjson")).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = lines.iter().map(|v| v["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["daemon_started", "task_started", "attempt_started"]);
    assert_eq!(lines[2]["task_id"], "t1");
    assert_eq!(lines[2]["n"], 2);
}

#[test]
fn an_event_written_late_keeps_the_time_it_happened() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::new(dir.path().join("events.ndjson"), dir.path().join(".lock"), 1 << 20, 2);
    let then = "2026-01-02T03:04:05.678Z";
    log.emit_parts(
        Some("t1"),
        [
            ("attempt_finished".to_string(), json!({"ts": then})),
            ("task_succeeded".to_string(), json!({})),
        ],
    );
    let text = std::fs::read_to_string(dir.path().join("events.ndjson")).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["ts"], then);
    assert_ne!(lines[1]["ts"], then, "the next one is stamped when written");
    assert_eq!(text.matches("\"ts\"").count(), 2, "one ts a line");
}

#[test]
fn keeps_only_the_newest_rotated_logs() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::new(dir.path().join("events.ndjson"), dir.path().join(".lock"), 100, 2);
    for i in 0..50 {
        raw(&log, "e", None, json!({"i": i})).unwrap();
    }
    assert_eq!(rotated_logs(dir.path()).unwrap().len(), 2);
}
