use super::*;
use crate::agents::classify;
use crate::config::AgentKind;

fn exit(code: i32) -> Exit {
    Exit {
        code: Some(code),
        ..Default::default()
    }
}

#[test]
fn backoff_grows_caps_and_jitters() {
    let i = Duration::from_secs(1);
    let m = Duration::from_secs(10);
    for n in 1..8 {
        let d = backoff(n, i, m);
        let nominal = (i * 2u32.pow(n - 1)).min(m);
        assert!(d >= nominal / 2 && d <= nominal, "n={n} d={d:?}");
    }
    let samples: std::collections::HashSet<_> = (0..20).map(|_| backoff(3, i, m)).collect();
    assert!(samples.len() > 1, "jitter varies");
    assert!(backoff(1000, i, m) <= m);
}

#[test]
fn api_errors_by_code_status_and_text() {
    let rep = |code: Option<&str>, status: Option<i64>, text: &str| AgentReport {
        result_seen: true,
        is_error: true,
        subtype: Some("success".into()),
        api_error: code.map(String::from),
        api_error_status: status,
        answer: Some(text.into()),
        ..Default::default()
    };
    let kind = |r: &AgentReport| classify(AgentKind::Claude, &exit(1), r).unwrap().kind;
    assert_eq!(
        kind(&rep(
            Some("model_not_found"),
            Some(404),
            "There's an issue with the selected model"
        )),
        ErrorKind::ModelNotFound
    );
    assert_eq!(
        kind(&rep(
            Some("authentication_failed"),
            Some(401),
            "Invalid API key · Fix external API key"
        )),
        ErrorKind::Auth
    );
    assert_eq!(
        kind(&rep(None, None, "Invalid API key · Please run /login")),
        ErrorKind::Auth
    );
    assert_eq!(
        kind(&rep(
            Some("overloaded"),
            Some(529),
            "API Error: Repeated 529 Overloaded errors"
        )),
        ErrorKind::Overloaded
    );
    assert_eq!(
        kind(&rep(
            None,
            None,
            "API Error: Unable to connect to API (ConnectionRefused)"
        )),
        ErrorKind::Network
    );
    assert_eq!(
        kind(&rep(Some("billing_error"), None, "Credit balance is too low")),
        ErrorKind::Billing
    );
    assert_eq!(
        kind(&rep(Some("server_error"), Some(500), "API Error: 500")),
        ErrorKind::ServerError
    );
    let limited = classify(
        AgentKind::Claude,
        &exit(1),
        &rep(None, None, "Claude AI usage limit reached|1712345678"),
    )
    .unwrap();
    assert_eq!(limited.retry, Retry::WaitForLimit(Some(1712345678)));
    let mut r = rep(
        Some("rate_limit"),
        Some(429),
        "You've hit your session limit · resets 3pm",
    );
    r.rate_limit_resets_at = Some(1785704400);
    assert_eq!(
        classify(AgentKind::Claude, &exit(1), &r).unwrap().retry,
        Retry::WaitForLimit(Some(1785704400))
    );
}

#[test]
fn result_subtypes_and_process_failures() {
    let mut r = AgentReport {
        result_seen: true,
        is_error: true,
        subtype: Some("error_max_turns".into()),
        ..Default::default()
    };
    assert_eq!(
        classify(AgentKind::Claude, &exit(1), &r).unwrap().kind,
        ErrorKind::MaxTurns
    );
    r.subtype = Some("error_max_budget_usd".into());
    assert_eq!(
        classify(AgentKind::Claude, &exit(1), &r).unwrap().kind,
        ErrorKind::BudgetExceeded
    );
    let ok = AgentReport {
        result_seen: true,
        subtype: Some("success".into()),
        ..Default::default()
    };
    assert!(classify(AgentKind::Claude, &exit(0), &ok).is_none());
    let crashed = AgentReport {
        ended_mid_line: true,
        session_id: Some("s".into()),
        ..Default::default()
    };
    let f = classify(
        AgentKind::Claude,
        &Exit {
            signal: Some(6),
            ..Default::default()
        },
        &crashed,
    )
    .unwrap();
    assert_eq!((f.kind, f.retry), (ErrorKind::AgentCrashed, Retry::Backoff));
    assert_eq!(
        classify(AgentKind::Claude, &exit(0), &AgentReport::default())
            .unwrap()
            .kind,
        ErrorKind::InvalidOutput
    );
    let usage = Exit {
        code: Some(1),
        stderr_tail: "Error: When using --print, --output-format=stream-json requires --verbose\n".into(),
        ..Default::default()
    };
    assert_eq!(
        classify(AgentKind::Claude, &usage, &AgentReport::default())
            .unwrap()
            .kind,
        ErrorKind::BadInvocation
    );
    let missing = Exit {
        spawn_error: Some(std::io::Error::from(std::io::ErrorKind::NotFound)),
        ..Default::default()
    };
    assert_eq!(
        classify(AgentKind::Claude, &missing, &AgentReport::default())
            .unwrap()
            .kind,
        ErrorKind::NotFound
    );
    let timeout = Exit {
        stopped: Some(StopReason::Timeout),
        ..Default::default()
    };
    assert_eq!(
        classify(AgentKind::Claude, &timeout, &AgentReport::default())
            .unwrap()
            .kind,
        ErrorKind::Timeout
    );
}

#[test]
fn commands() {
    assert!(classify(AgentKind::Command, &exit(0), &AgentReport::default()).is_none());
    assert_eq!(
        classify(AgentKind::Command, &exit(3), &AgentReport::default())
            .unwrap()
            .kind,
        ErrorKind::CommandFailed
    );
    // 127: the task's own program was not found, not an agent CLI.
    let f = classify(AgentKind::Command, &exit(127), &AgentReport::default()).unwrap();
    assert_eq!(f.kind, ErrorKind::CommandFailed);
    assert!(
        f.message.contains("did not find the command's program"),
        "{}",
        f.message
    );
}

#[test]
fn a_wall_clock_reset_is_read_in_the_machines_zone() {
    let zone = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    let now = jiff::civil::date(2026, 12, 7)
        .at(16, 21, 0, 0)
        .to_zoned(zone.clone())
        .unwrap();
    // The end of the minute named: the minute is cut, not rounded.
    let at = |h, m, day| {
        jiff::civil::date(2026, 12, day)
            .at(h, m, 0, 0)
            .to_zoned(zone.clone())
            .unwrap()
            .timestamp()
            .as_second()
            + 60
    };
    // Codex 0.171.0, lower-cased as the classifier reads it.
    assert_eq!(clock_reset("5:23 pm.", now.clone()), Some(at(17, 23, 7)));
    assert_eq!(
        clock_reset("4:21 pm.", now.clone()),
        Some(at(16, 21, 7)),
        "within this minute"
    );
    assert_eq!(clock_reset("12:10 am", now.clone()), Some(at(0, 10, 7)));
    assert_eq!(
        clock_reset("dec 29th, 2026 10:15 pm.", now.clone()),
        Some(at(22, 15, 29))
    );
    assert_eq!(clock_reset("later.", now.clone()), None);
    let r = AgentReport::default();
    let f = classify_api_text(&r, "You\u{2019}ve hit your usage limit. Try again at 5:23 PM.").unwrap();
    assert_eq!(f.kind, ErrorKind::RateLimited);
    // The time was read (when it lies today; past or not, the pause is
    // clamped to the future by the runner).
    assert!(matches!(f.retry, Retry::WaitForLimit(Some(_))), "{f:?}");
}

#[cfg(unix)]
#[test]
fn a_program_that_cannot_start_for_now_is_retried_not_taken_for_missing() {
    let exit = |e: std::io::Error| Exit {
        spawn_error: Some(e),
        ..Default::default()
    };
    let r = AgentReport::default();
    let f = decided_by_the_daemon(&exit(std::io::Error::from_raw_os_error(libc::EAGAIN)), &r).unwrap();
    assert_eq!((f.kind, f.retry), (ErrorKind::AgentCrashed, Retry::Backoff));
    let f = decided_by_the_daemon(&exit(std::io::Error::from_raw_os_error(libc::ENOENT)), &r).unwrap();
    assert_eq!((f.kind, f.retry), (ErrorKind::NotFound, Retry::No));
}
