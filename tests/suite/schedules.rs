//! `schedules:` in the config: recurring tasks dropped into the inbox when
//! their cron fires, driven through the built binary. The schedules fire
//! every second or two (a sixth, seconds field), so nothing waits a minute.

use crate::common::*;
use serde_json::Value;
use std::time::Duration;

fn schedule(name: &str, cron: &str, extra: &str) -> String {
    format!(
        "schedules:\n  - name: {name}\n    cron: \"{cron}\"\n    tz: UTC\n{extra}    task:\n      agent: command\n      command: echo {name}\n"
    )
}

fn from_schedule(home: &TestHome, name: &str) -> Vec<Value> {
    home.results()
        .into_iter()
        .filter(|r| r["source_file"].as_str().unwrap().starts_with(&format!("{name}-")))
        .collect()
}

/// The firing time a task file's name carries (`tick-20261208T020000Z.json`).
fn stamp_of(file: &str) -> jiff::Timestamp {
    let s = file.rsplit('-').next().unwrap().trim_end_matches(".json");
    jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", s)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
}

#[test]
fn a_schedule_added_to_a_running_daemon_fires_on_its_times_and_each_firing_is_a_task() {
    let home = TestHome::new();
    let mut daemon = home.spawn_daemon();
    home.wait_started(1);
    // Added while the daemon runs: the config is reloaded.
    std::fs::write(
        home.path.join("orchestrator.yaml"),
        config_with(&schedule("tick", "*/2 * * * * *", ""), ""),
    )
    .unwrap();
    wait_until(Duration::from_secs(60), "two firings to run", || {
        from_schedule(&home, "tick").len() >= 2
    });
    let listed = home.cli_json(&["schedule", "list"]);
    sigterm(daemon.id());
    let _ = daemon.wait();
    let ran = from_schedule(&home, "tick");
    for r in &ran {
        assert_eq!(
            (&r["status"], &r["output"]),
            (&"succeeded".into(), &"tick".into()),
            "{r}"
        );
        let at = stamp_of(r["source_file"].as_str().unwrap());
        assert_eq!(at.as_second() % 2, 0, "on its times: {at}");
    }
    let fired = home.events_of("schedule_fired");
    assert!(fired.len() >= 2);
    assert!(
        fired.iter().all(|e| e["schedule"] == "tick" && e["caught_up"] == false),
        "{fired:?}"
    );
    assert_eq!(listed[0]["name"], "tick");
    assert!(
        listed[0]["last"].is_string() && listed[0]["next"].is_string(),
        "{listed}"
    );
    let next = home.cli_json(&["schedule", "next", "tick", "-n", "3"]);
    let times: Vec<jiff::Timestamp> = next[0]["next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().parse::<jiff::Zoned>().unwrap().timestamp())
        .collect();
    assert_eq!(times.len(), 3);
    assert_eq!(times[1].duration_since(times[0]).as_secs(), 2);
    let status = stdout(&home.cli(&["status"]));
    assert!(
        status.contains("schedules: 1") && status.contains("tick  next 20"),
        "{status}"
    );
}

#[test]
fn a_run_missed_while_no_daemon_was_up_is_caught_up_once() {
    let home = TestHome::with_config(&config_with(
        &format!(
            "{}  - name: quiet\n    cron: \"* * * * *\"\n    tz: UTC\n    catch_up: none\n    task:\n      agent: command\n      command: echo quiet\n",
            schedule("hourly", "* * * * *", "")
        ),
        "",
    ));
    // Both last fired an hour ago (as a daemon that then stopped left them).
    let an_hour_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    for name in ["hourly", "quiet"] {
        let dir = home.path.join("schedules").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("since"),
            (an_hour_ago - jiff::SignedDuration::from_hours(1)).to_string(),
        )
        .unwrap();
        std::fs::write(dir.join(an_hour_ago.strftime("%Y%m%dT%H%M00Z").to_string()), "").unwrap();
    }
    let started = jiff::Timestamp::now();
    let out = home.run_once();
    let caught: Vec<Value> = home
        .events_of("schedule_fired")
        .into_iter()
        .filter(|e| e["caught_up"] == true)
        .collect();
    assert_eq!(
        caught.len(),
        1,
        "sixty missed runs, one caught up: {caught:?}\n{}",
        stderr(&out)
    );
    assert_eq!(caught[0]["schedule"], "hourly");
    // The latest time it missed, the minute before the start.
    let at = stamp_of(caught[0]["file"].as_str().unwrap());
    assert!(
        at <= started && started.duration_since(at) <= jiff::SignedDuration::from_secs(61),
        "{at} vs {started}"
    );
    let ran = from_schedule(&home, "hourly");
    assert!(
        ran.iter()
            .any(|r| r["source_file"] == caught[0]["file"] && r["status"] == "succeeded")
    );
    assert!(
        from_schedule(&home, "quiet")
            .iter()
            .all(|r| stamp_of(r["source_file"].as_str().unwrap()) > started),
        "catch_up: none"
    );
}

#[test]
fn two_daemons_and_one_schedule_fire_each_time_once() {
    let home = TestHome::with_config(&config_with(&schedule("every", "* * * * * *", ""), ""));
    let mut daemons = [home.spawn_daemon(), home.spawn_daemon()];
    home.wait_started(2);
    wait_until(Duration::from_secs(60), "five firings to run", || {
        from_schedule(&home, "every").len() >= 5
    });
    for d in &mut daemons {
        sigterm(d.id());
        let _ = d.wait();
    }
    let fired = home.events_of("schedule_fired");
    let mut files: Vec<&str> = fired.iter().map(|e| e["file"].as_str().unwrap()).collect();
    let all = files.len();
    files.sort();
    files.dedup();
    assert_eq!(files.len(), all, "a time fired twice: {fired:?}");
    let ran = from_schedule(&home, "every");
    let mut names: Vec<&str> = ran.iter().map(|r| r["source_file"].as_str().unwrap()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), ran.len(), "a firing ran twice");
    // Both daemons fired some (the one that takes a time is whichever is first).
    let workers: std::collections::HashSet<&str> = ran.iter().map(|r| r["worker"].as_str().unwrap()).collect();
    assert!(!workers.is_empty());
}

#[test]
fn a_schedule_that_cannot_fire_is_refused_at_the_start_with_the_reason() {
    for (yaml, says) in [
        (schedule("leap", "0 0 30 2 *", ""), "never fires"),
        (
            schedule("mars", "0 2 * * *", "").replace("tz: UTC", "tz: Mars/Olympus_Mons"),
            "`Mars/Olympus_Mons` is not a time zone",
        ),
        (schedule("short", "0 2 * *", ""), "has 4 fields"),
        (schedule("Bad Name", "0 2 * * *", ""), "lower-case letters"),
        (
            schedule("typo", "0 2 * * *", "").replace("command: echo typo", "comand: echo typo"),
            "task: ",
        ),
    ] {
        let home = TestHome::with_config(&config_with(&yaml, ""));
        let out = home.run_once();
        assert_eq!(out.status.code(), Some(2), "{yaml}");
        assert!(stderr(&out).contains(says), "{says}: {}", stderr(&out));
    }
}

#[test]
fn schedule_run_drops_the_task_now_and_an_unknown_name_says_which_exist() {
    let home = TestHome::with_config(&config_with(&schedule("nightly", "0 2 * * *", ""), ""));
    let out = home.cli(&["schedule", "run", "nightly"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let file = stdout(&out).trim().to_string();
    assert!(file.starts_with("nightly-") && file.ends_with("-now.json"), "{file}");
    assert!(home.inbox().join(&file).is_file());
    let bad = home.cli(&["schedule", "run", "nighlty"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("known: nightly"), "{}", stderr(&bad));
    home.run_once();
    assert_eq!(home.result_of(&file)["output"], "nightly");
}
