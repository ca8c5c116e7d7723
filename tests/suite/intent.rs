//! A loose note read for what it asks (src/task/intent.rs), through the built
//! binary's `plan FILE --json`, against notes labelled by hand
//! (tests/data/notes/labels.json): the share of labels right, and that no
//! note's plan is ever wider than the plan of a task that sets nothing.

use crate::common::*;
use serde_json::Value;
use std::time::Duration;

const READ_ONLY: &[&str] = &["Read", "Glob", "Grep", "LS"];

fn plan_of(home: &TestHome, name: &str, text: &str, extra: &[&str]) -> (Option<i32>, Value) {
    let path = home.path.join("notes").join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    let child = home
        .cmd()
        .args(extra)
        .args(["plan", "--json"])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_output(child, Duration::from_secs(60));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), v)
}

#[test]
fn the_parser_reads_nine_in_ten_labels_of_loose_notes_right_and_never_widens_a_plan() {
    let labels: Value = serde_json::from_str(include_str!("../data/notes/labels.json")).unwrap();
    let home = TestHome::new();
    for f in labels["folders"].as_array().unwrap() {
        std::fs::create_dir_all(home.path.join(f.as_str().unwrap())).unwrap();
    }
    // What a task that sets nothing gets: the ceiling for every note.
    let (_, base) = plan_of(&home, "base.yaml", "prompt: do the work\n", &[]);
    let base = &base["plan"];
    let base_tools: Vec<&str> = base["allowed_tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let (mut right, mut total) = (0, 0);
    let mut misses = Vec::new();
    for (n, l) in labels["notes"].as_array().unwrap().iter().enumerate() {
        let note = l["note"].as_str().unwrap();
        let (code, v) = plan_of(&home, &format!("note-{n:02}.txt"), note, &[]);
        assert_eq!(code, Some(0), "note {n} was not planned: {v}");
        let p = &v["plan"];
        let tools: Vec<&str> = p["allowed_tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        // Never wider than a task that sets nothing.
        assert!(
            tools.iter().all(|t| base_tools.contains(t)),
            "note {n}: tools {tools:?} beyond {base_tools:?}"
        );
        for k in [
            "agent",
            "mode",
            "max_attempts",
            "budget_usd",
            "timeout",
            "max_tool_calls",
        ] {
            assert_eq!(p[k], base[k], "note {n}: {k} changed");
        }
        if let Some(t) = p["max_turns"].as_u64() {
            assert!(
                base["max_turns"].as_u64().is_none_or(|b| t <= b),
                "note {n}: max_turns {t}"
            );
        }
        let title = p["title"].as_str().unwrap();
        assert!(
            !title.is_empty() && title.chars().count() <= 80,
            "note {n}: title {title:?}"
        );
        let workdir = p["workdir"].as_str().unwrap();
        let got = [
            (
                "read_only",
                Value::Bool(!tools.is_empty() && tools.iter().all(|t| READ_ONLY.contains(t))),
            ),
            (
                "workdir",
                match std::path::Path::new(workdir).strip_prefix(&home.path) {
                    Ok(rel) if rel.as_os_str().is_empty() => Value::Null,
                    Ok(rel) => Value::String(rel.display().to_string()),
                    Err(_) => Value::String(workdir.to_string()),
                },
            ),
            ("steps", Value::from(p["steps"].as_array().map_or(0, Vec::len))),
            (
                "criteria",
                Value::from(p["success_criteria"].as_array().map_or(0, Vec::len)),
            ),
        ];
        for (label, value) in got {
            total += 1;
            if l[label] == value {
                right += 1;
            } else {
                misses.push(format!("note {n} {label}: labelled {}, read {value}", l[label]));
            }
        }
        // Every finding says what decided it.
        for d in p["intent"].as_array().into_iter().flatten() {
            assert!(!d["because"].as_str().unwrap_or("").is_empty(), "note {n}: {d}");
        }
    }
    let share = right as f64 / total as f64;
    eprintln!(
        "intent: {right} of {total} labels right ({:.1}%); misses:\n  {}",
        share * 100.0,
        misses.join("\n  ")
    );
    assert!(
        share >= 0.9,
        "{right} of {total} labels right; misses:\n  {}",
        misses.join("\n  ")
    );
}

#[test]
fn plan_says_which_words_decided_what() {
    let home = TestHome::new();
    std::fs::create_dir_all(home.path.join("services/billing")).unwrap();
    let path = home.path.join("note.txt");
    std::fs::write(
        &path,
        "in services/billing: review the retry logic, don't change anything.\nMake sure the tests still pass.\n",
    )
    .unwrap();
    let out = home.cli(&["plan", path.to_str().unwrap()]);
    let text = stdout(&out);
    assert!(
        text.contains("read:      read_only = review (from \"don't change\")"),
        "{text}"
    );
    assert!(text.contains("read:      workdir = services/billing"), "{text}");
    assert!(text.contains("criterion: Make sure the tests still pass"), "{text}");
    assert!(text.contains("tools:     Read, Glob, Grep, LS"), "{text}");
    assert!(
        text.contains(&format!("workdir:   {}", home.path.join("services/billing").display())),
        "{text}"
    );
    // A folder that is not there: the default workdir stays, nothing is refused.
    std::fs::write(&path, "in services/nowhere: add a cache\n").unwrap();
    let out = home.cli(&["plan", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("workdir:   {}\n", home.path.display())),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_note_that_runs_is_held_to_what_it_read() {
    let home = TestHome::new();
    home.drop_task(
        "ask.txt",
        "@fake success\nWhy is the build slow? Don't change anything.\n",
    );
    assert!(home.run_once().status.success());
    let res = home.result_of("ask.txt");
    let plan: Value =
        serde_json::from_slice(&std::fs::read(home.task_dir(res["id"].as_str().unwrap()).join("plan.json")).unwrap())
            .unwrap();
    assert_eq!(plan["allowed_tools"], serde_json::json!(READ_ONLY), "{plan}");
    assert_eq!(plan["role"], "analyze");
    // The fake agent was started with exactly those tools.
    let args: Vec<&str> = plan["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--tools=Read,Glob,Grep,LS"), "{args:?}");
}

#[test]
fn odd_notes_are_planned_or_refused_with_a_reason_never_hang() {
    let home = TestHome::new();
    let big = format!("review this\n{}", "word ".repeat(2 << 20));
    for (name, text, extra) in [
        ("big.txt", big.as_str(), vec!["--set", "max_task_bytes=20000000"]),
        ("blank.txt", "   \n\t\n", vec![]),
        ("list.md", "- a\n- b\n- c\n", vec![]),
        ("path.txt", "src/auth\n", vec![]),
        ("script.txt", "ᚠᚢᚦᚨᚱᚲ ᚷᚹᚺᚾ ᛁᛃᛇᛈ\n", vec![]),
        ("bidi.txt", "\u{202e}review this\u{202c} and fix it\n", vec![]),
    ] {
        let started = std::time::Instant::now();
        let (code, v) = plan_of(&home, name, text, &extra);
        assert!(
            code == Some(0) || code == Some(1) && v["reason"].is_string(),
            "{name}: {code:?} {v}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{name}: {:?}",
            started.elapsed()
        );
    }
}
