//! What a person watching `orchestrator run` in a terminal sees: a line when
//! a task starts and one when it ends, with its status. Fed by the event log
//! (the lines it writes), so it says exactly what the log says. Only when
//! stderr is a terminal: a service's journal or a pipe gets the diagnostics
//! alone, as before.

use serde_json::Value;
use std::io::Write;

/// The events a person is told of; the rest pass without being parsed.
const TOLD: &[&str] = &[
    "task_queued",
    "task_started",
    "task_succeeded",
    "task_failed",
    "task_cancelled",
    "task_interrupted",
    "task_rejected",
    "agent_paused",
];

/// Says `line` (an event line named `name`) on stderr, if a person is told of it.
pub fn tell(name: &str, line: &[u8]) {
    if let Some(text) = said(name, line) {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }
}

/// What [`tell`] says of `line`, if anything.
fn said(name: &str, line: &[u8]) -> Option<String> {
    if !TOLD.contains(&name) {
        return None;
    }
    // Most queued files wait for nothing: their lines (100,000 in a big
    // burst) say nothing to a person and are not parsed.
    if name == "task_queued"
        && std::str::from_utf8(line).is_ok_and(|t| !t.contains("\"waiting_for\"") && !t.contains("\"starts_at\""))
    {
        return None;
    }
    describe(&serde_json::from_slice::<Value>(line).ok()?)
}

/// The line for event `e`, with control characters escaped (titles and
/// messages come from task files and agents).
pub fn describe(e: &Value) -> Option<String> {
    let s = |k: &str| e[k].as_str().unwrap_or("");
    let time = s("ts").get(11..19).unwrap_or("");
    let id = s("task_id");
    let text = match s("event") {
        "task_started" => format!("started    {id}  {} ({})", s("title"), s("agent")),
        name @ ("task_succeeded" | "task_failed" | "task_cancelled") => {
            let status = name.trim_start_matches("task_");
            let mut t = format!("{status:<10} {id}  {}", s("title"));
            if let Some(ms) = e["duration_ms"].as_u64() {
                t.push_str(&format!("  {}", crate::store::summary::human_ms(ms)));
            }
            if let Some(c) = e["cost_usd"].as_f64() {
                t.push_str(&format!("  ${c:.4}"));
            }
            if !e["error"].is_null() {
                t.push_str(&format!("\n           {}: {}", s("error"), s("message")));
                if !s("suggestion").is_empty() {
                    t.push_str(&format!("\n           fix: {}", s("suggestion")));
                }
            }
            t
        }
        // Only a file that is held: `run --once` would otherwise wait for
        // it without a word.
        "task_queued" => {
            let after: Vec<&str> = e["waiting_for"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut t = format!("waiting    {}", s("file"));
            if !after.is_empty() {
                t.push_str(&format!("  for {}", after.join(", ")));
            }
            match e["starts_at"].as_str() {
                Some(at) => {
                    let at = at
                        .parse::<jiff::Timestamp>()
                        .and_then(|t| t.round(jiff::Unit::Second))
                        .map_or(at.to_string(), |t| t.to_string());
                    t.push_str(&format!("  until {at}"));
                }
                None if after.is_empty() => return None,
                None => {}
            }
            t
        }
        "task_interrupted" => format!("interrupted {id}  ({}: it runs again)", s("reason")),
        "task_rejected" => format!(
            "rejected   {}  {}\n           fix: {} (kept in {})",
            s("file"),
            s("error"),
            s("hint"),
            s("moved_to")
        ),
        "agent_paused" => format!("paused     agent {} until {} ({})", s("agent"), s("until"), s("reason")),
        _ => return None,
    };
    Some(format!("{time} {}", crate::redact::escape_controls(&text)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn starts_and_ends_read_as_a_person_wants_them() {
        let started = json!({"ts": "2026-12-07T11:02:03.123Z", "event": "task_started", "task_id": "01abc-hello", "title": "Say hello", "agent": "claude"});
        assert_eq!(
            describe(&started).unwrap(),
            "11:02:03 started    01abc-hello  Say hello (claude)"
        );
        let failed = json!({"ts": "2026-12-07T11:02:09.000Z", "event": "task_failed", "task_id": "01abc-hello", "title": "Say \u{1b}[2Jhello",
            "duration_ms": 6100, "attempts": 1, "cost_usd": null, "error": "auth", "message": "bad key", "suggestion": "set the key"});
        let text = describe(&failed).unwrap();
        assert!(
            text.starts_with("11:02:09 failed     01abc-hello  Say \\u{1b}[2Jhello  6s 100ms\n"),
            "{text}"
        );
        assert!(
            text.contains("auth: bad key") && text.contains("fix: set the key"),
            "{text}"
        );
        assert!(!text.contains('$'), "no cost reported, none shown: {text}");
        assert!(describe(&json!({"event": "agent_progress"})).is_none());
        // A queued file is told of only when it is held.
        let queued = json!({"ts": "2026-12-07T11:02:03.123Z", "event": "task_queued", "file": "a.md"});
        assert!(describe(&queued).is_none());
        let held = json!({"ts": "2026-12-07T11:02:03.123Z", "event": "task_queued", "file": "b.md",
            "waiting_for": ["a.md"], "starts_at": "2026-12-08T01:59:59.700123Z"});
        assert_eq!(
            describe(&held).unwrap(),
            "11:02:03 waiting    b.md  for a.md  until 2026-12-08T02:00:00Z"
        );
    }

    #[test]
    fn only_held_queued_lines_are_read() {
        let line = |v: Value| serde_json::to_vec(&v).unwrap();
        let queued = line(json!({"ts": "2026-12-07T11:02:03.123Z", "event": "task_queued", "file": "a.md"}));
        assert_eq!(said("task_queued", &queued), None);
        let waiting = line(
            json!({"ts": "2026-12-07T11:02:03.123Z", "event": "task_queued", "file": "b.md", "waiting_for": ["a.md"]}),
        );
        assert_eq!(
            said("task_queued", &waiting).as_deref(),
            Some("11:02:03 waiting    b.md  for a.md")
        );
        let later = line(
            json!({"ts": "2026-12-07T11:02:03.123Z", "event": "task_queued", "file": "c.md", "starts_at": "2026-12-08T02:00:00Z"}),
        );
        assert!(said("task_queued", &later).is_some_and(|t| t.contains("until 2026-12-08T02:00:00Z")));
        assert_eq!(said("agent_progress", &line(json!({"event": "agent_progress"}))), None);
    }
}
