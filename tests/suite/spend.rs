//! `budget:` spend caps for the whole home, driven through the built binary
//! with the fake Claude CLI (each run reports $0.0123).

use crate::common::*;
use std::time::Duration;

#[test]
fn a_daily_cap_reached_mid_burst_holds_the_queue_until_it_is_raised() {
    let caps = "max_concurrent: 1\nbudget:\n  daily_usd: 0.05\n  tz: UTC\n";
    let home = TestHome::with_config(&config_with(caps, ""));
    // Yesterday's spend is not today's: $100 a day ago does not hold anything.
    let spend = home.path.join("spend");
    std::fs::create_dir_all(&spend).unwrap();
    let yesterday = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(25);
    std::fs::write(
        spend.join(format!("{}.ndjson", yesterday.strftime("%Y-%m"))),
        format!("{{\"at\":\"{yesterday}\",\"id\":\"old\",\"usd\":100.0,\"tokens\":0}}\n"),
    )
    .unwrap();
    for i in 0..8 {
        home.drop_task(
            &format!("t{i}.md"),
            format!("---\ntitle: task {i}\n---\n@fake success\n"),
        );
    }
    let mut daemon = home.spawn_daemon();
    wait_until(Duration::from_secs(60), "the cap to be reached", || {
        !home.events_of("spend_cap_reached").is_empty()
    });
    wait_until(Duration::from_secs(30), "status to say so", || {
        stdout(&home.cli(&["status"])).contains("spend cap reached: budget.daily_usd is $0.0500")
    });
    let reached = &home.events_of("spend_cap_reached")[0];
    assert_eq!(reached["cap"], "daily_usd");
    assert!(reached["spent"].as_f64().unwrap() >= 0.05, "{reached}");
    assert!(
        reached["resumes_at"].as_str().unwrap().contains("T00:00:00+00:00[UTC]"),
        "{reached}"
    );
    // $0.0123 a run: the fifth passes $0.05, and nothing starts after it.
    let finished = home.results().len();
    assert!((4..=5).contains(&finished), "{finished} finished");
    let doctor = stdout(&home.cli(&["doctor"]));
    assert!(doctor.contains("budget.daily_usd is reached"), "{doctor}");
    assert!(!doctor.contains("waiting for over a minute"), "{doctor}");
    // The queue holds: each file still waits, none is failed or lost.
    assert_eq!(
        home.results().len()
            + std::fs::read_dir(home.inbox())
                .unwrap()
                .flatten()
                .filter(|e| e.path().is_file())
                .count(),
        8
    );
    assert!(home.results().iter().all(|r| r["status"] == "succeeded"));
    // Raised: the reload lifts it and the rest run.
    std::fs::write(
        home.path.join("orchestrator.yaml"),
        config_with("max_concurrent: 1\nbudget:\n  daily_usd: 10\n  tz: UTC\n", ""),
    )
    .unwrap();
    wait_until(Duration::from_secs(60), "the rest to run", || home.results().len() == 8);
    sigterm(daemon.id());
    let _ = daemon.wait();
    assert_eq!(home.events_of("spend_cap_lifted")[0]["cap"], "daily_usd");
    // Every run's cost is in the ledger, once.
    let ledger =
        std::fs::read_to_string(spend.join(format!("{}.ndjson", jiff::Timestamp::now().strftime("%Y-%m")))).unwrap();
    assert_eq!(
        ledger.lines().filter(|l| l.contains("\"usd\":0.0123")).count(),
        8,
        "{ledger}"
    );
}

#[test]
fn a_bad_cap_is_refused_with_the_reason() {
    for (yaml, says) in [
        (
            "budget:\n  daily_usd: -5\n",
            "budget.daily_usd must be a positive number of USD (remove it for no cap)",
        ),
        (
            "budget:\n  monthly_tokens: 0\n",
            "budget.monthly_tokens must be a positive number of tokens",
        ),
        (
            "budget:\n  daily_usd: 5\n  tz: Nowhere/Land\n",
            "`Nowhere/Land` is not a time zone",
        ),
    ] {
        let home = TestHome::with_config(&config_with(yaml, ""));
        let out = home.run_once();
        assert_eq!(out.status.code(), Some(2), "{yaml}");
        assert!(stderr(&out).contains(says), "{says}: {}", stderr(&out));
        // `status` says so too, rather than showing a healthy home.
        let status = stdout(&home.cli(&["status"]));
        assert!(
            status.contains("config not valid: ") && status.contains(says),
            "{status}"
        );
    }
}

#[test]
fn two_daemons_share_one_count() {
    let caps = "max_concurrent: 1\nbudget:\n  daily_usd: 0.05\n  tz: UTC\n";
    let home = TestHome::with_config(&config_with(caps, ""));
    for i in 0..12 {
        home.drop_task(
            &format!("t{i:02}.md"),
            format!("---\ntitle: task {i}\n---\n@fake success\n"),
        );
    }
    let mut daemons = [home.spawn_daemon(), home.spawn_daemon()];
    wait_until(Duration::from_secs(60), "both daemons to hold their queues", || {
        home.events_of("spend_cap_reached").len() >= 2
    });
    wait_until(Duration::from_secs(30), "the runs started to end", || {
        std::fs::read_dir(home.path.join("results"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir() && !e.file_name().to_string_lossy().starts_with('.'))
            .all(|e| e.path().join("result.json").exists())
    });
    for d in &mut daemons {
        sigterm(d.id());
        let _ = d.wait();
    }
    // $0.05 is four runs and a bit; each daemon may start one run beside
    // the other's before it sees that run's cost: six at the very most.
    let finished = home.results().len();
    assert!((4..=6).contains(&finished), "{finished} of 12 ran under one $0.05 cap");
}
