//! `notify.telegram`: a message per chosen event to each chat, and the bot's
//! commands from those chats (long polling: the daemon needs no public
//! address).
//!
//! The bot token is part of every Bot API address: no error text that could
//! hold an address leaves this module without the token cut out of it.

use super::Failure;
use crate::config::TelegramConfig;
use crate::store::Home;
use serde_json::{Value, json};
use std::time::Duration;

/// `text` with the bot's token replaced: for errors and logs.
pub fn scrub(text: &str, t: &TelegramConfig) -> String {
    if t.bot_token.is_empty() {
        return text.to_string();
    }
    text.replace(&t.bot_token, "<bot token>")
}

fn method_url(t: &TelegramConfig, method: &str) -> String {
    format!("{}/bot{}/{method}", t.api_url.trim_end_matches('/'), t.bot_token)
}

/// Calls a Bot API method; its `result`.
fn call(http: &ureq::Agent, t: &TelegramConfig, method: &str, body: &Value) -> Result<Value, Failure> {
    let resp = http
        .post(method_url(t, method))
        .send_json(body)
        .map_err(|e| Failure::retry(scrub(&e.to_string(), t)))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .read_to_vec()
        .map_err(|e| Failure::retry(scrub(&format!("HTTP {status}, unreadable answer: {e}"), t)))?;
    let v: Value = parse_lenient(&bytes)
        .ok_or_else(|| Failure::retry(scrub(&format!("HTTP {status}, an answer that is not JSON"), t)))?;
    if v["ok"] == true {
        return Ok(v["result"].clone());
    }
    let why = scrub(
        &format!(
            "Telegram answered {}: {}",
            v["error_code"].as_i64().unwrap_or(status as i64),
            v["description"].as_str().unwrap_or("no description")
        ),
        t,
    );
    let after = v["parameters"]["retry_after"].as_u64().map(Duration::from_secs);
    Err(Failure { why, after })
}

/// JSON as a chat can make it: a message's text may carry bytes that are not
/// UTF-8 or a lone surrogate escape (`\ud800`), which a strict parser refuses
/// whole; then the offset would never move past that update and the bot would
/// hear nothing more. Such text is mended (U+FFFD) before parsing.
fn parse_lenient(bytes: &[u8]) -> Option<Value> {
    if let Ok(v) = serde_json::from_slice(bytes) {
        return Some(v);
    }
    let text = String::from_utf8_lossy(bytes);
    serde_json::from_str(&mend_surrogates(&text)).ok()
}

/// `text` (JSON) with every `\uXXXX` escape of a surrogate that is not part
/// of a pair replaced by `\ufffd`.
fn mend_surrogates(text: &str) -> String {
    let hex = |s: &str| u16::from_str_radix(s, 16).ok();
    let b = text.as_bytes();
    let escape_at = |i: usize| -> Option<u16> {
        (b.get(i) == Some(&b'\\') && b.get(i + 1) == Some(&b'u'))
            .then(|| text.get(i + 2..i + 6).and_then(hex))
            .flatten()
    };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            let c = text[i..].chars().next().unwrap_or('\u{fffd}');
            out.push(c);
            i += c.len_utf8();
            continue;
        }
        match escape_at(i) {
            Some(0xD800..=0xDBFF) if matches!(escape_at(i + 6), Some(0xDC00..=0xDFFF)) => {
                out.push_str(&text[i..i + 12]);
                i += 12;
            }
            Some(0xD800..=0xDFFF) => {
                out.push_str("\\ufffd");
                i += 6;
            }
            _ => {
                // Any other escape: copied with the character it escapes.
                out.push('\\');
                if let Some(c) = text[i + 1..].chars().next() {
                    out.push(c);
                    i += c.len_utf8();
                }
                i += 1;
            }
        }
    }
    out
}

/// Sends `text` to `chat`.
pub fn send_message(http: &ureq::Agent, t: &TelegramConfig, chat: i64, text: &str) -> Result<(), Failure> {
    let text: String = text.chars().take(4000).collect();
    call(
        http,
        t,
        "sendMessage",
        &json!({"chat_id": chat, "text": text, "disable_web_page_preview": true}),
    )
    .map(|_| ())
}

/// Updates after `offset`, waiting up to `wait` for one (long polling).
pub fn updates(http: &ureq::Agent, t: &TelegramConfig, offset: i64, wait: Duration) -> Result<Vec<Value>, Failure> {
    let r = call(
        http,
        t,
        "getUpdates",
        &json!({"offset": offset, "timeout": wait.as_secs(), "allowed_updates": ["message"]}),
    )?;
    Ok(r.as_array().cloned().unwrap_or_default())
}

/// The message for an event line: what happened, to which task, and for a
/// finished task its cost and the first lines of its summary.
pub fn message(home: &Home, event: &Value) -> String {
    let s = |k: &str| event[k].as_str().unwrap_or("").to_string();
    let name = s("event");
    let id = s("task_id");
    let head = match name.as_str() {
        "task_succeeded" => "✅ succeeded",
        "task_failed" => "❌ failed",
        "task_cancelled" => "⏹ cancelled",
        "agent_paused" => "⏸ agent paused",
        "task_interrupted" => "⚠ interrupted",
        "spend_cap_reached" => "💸 spend cap reached: nothing starts",
        "spend_cap_lifted" => "▶ spend cap lifted: the queue goes on",
        other => other,
    };
    let mut text = match event["title"].as_str() {
        Some(title) => format!("{head}: {title}"),
        None => head.to_string(),
    };
    let mut facts = Vec::new();
    if !id.is_empty() {
        facts.push(id.clone());
    }
    if let Some(ms) = event["duration_ms"].as_u64() {
        facts.push(format!("{:.1} s", ms as f64 / 1000.0));
    }
    if let Some(c) = event["cost_usd"].as_f64() {
        facts.push(format!("${c:.4}"));
    }
    if name == "agent_paused" {
        facts.push(format!("{} until {}", s("agent"), s("until")));
    }
    if name == "spend_cap_reached" {
        facts.push(format!(
            "budget.{} {:.4} spent of {:.4}, until {}",
            s("cap"),
            event["spent"].as_f64().unwrap_or(0.0),
            event["limit"].as_f64().unwrap_or(0.0),
            s("resumes_at")
        ));
    }
    if !facts.is_empty() {
        text.push('\n');
        text.push_str(&facts.join(" · "));
    }
    for k in ["message", "suggestion", "reason"] {
        if let Some(v) = event[k].as_str().filter(|v| !v.is_empty()) {
            text.push('\n');
            text.push_str(v);
        }
    }
    if name.starts_with("task_") && !id.is_empty() {
        let summary =
            crate::store::read::read_text(&home.summary_file(&id), crate::store::read::max::RECORD).unwrap_or_default();
        // From its first section (the answer, or the error): the head above
        // it repeats what the message already says.
        let lines: Vec<&str> = summary
            .lines()
            .skip_while(|l| !l.starts_with("## "))
            .filter(|l| !l.trim().is_empty())
            .take(8)
            .collect();
        if !lines.is_empty() {
            text.push_str("\n\n");
            text.push_str(&lines.join("\n"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_task_reads_as_a_person_wants_it() {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::new(tmp.path()).unwrap();
        std::fs::create_dir_all(home.summaries()).unwrap();
        std::fs::write(
            home.summary_file("01abc"),
            "# Fix the login\n\n- **Status:** failed\n\n## Error\n\nexit code 3\n\n## Answer\n\nthe answer\n",
        )
        .unwrap();
        let line = json!({"event": "task_failed", "task_id": "01abc", "title": "Fix the login",
            "duration_ms": 12300, "cost_usd": 0.0123, "message": "exit code 3", "suggestion": "look at the logs"});
        assert_eq!(
            message(&home, &line),
            "❌ failed: Fix the login\n01abc · 12.3 s · $0.0123\nexit code 3\nlook at the logs\n\n## Error\nexit code 3\n## Answer\nthe answer"
        );
    }

    #[test]
    fn a_spend_cap_says_which_what_is_spent_and_until_when() {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::new(tmp.path()).unwrap();
        let line = json!({"event": "spend_cap_reached", "cap": "daily_usd", "limit": 20.0, "spent": 20.5,
            "resumes_at": "2026-12-09T00:00:00+01:00[Europe/Berlin]"});
        assert_eq!(
            message(&home, &line),
            "💸 spend cap reached: nothing starts\nbudget.daily_usd 20.5000 spent of 20.0000, until 2026-12-09T00:00:00+01:00[Europe/Berlin]"
        );
        // On by default: the queue stopping is news.
        assert!(
            TelegramConfig::default()
                .events()
                .contains(&"spend_cap_reached".to_string())
        );
    }

    #[test]
    fn the_token_never_leaves_in_an_error() {
        let t = TelegramConfig {
            bot_token: "123:SECRET".into(),
            ..TelegramConfig::default()
        };
        assert_eq!(
            scrub("https://api.telegram.org/bot123:SECRET/sendMessage: refused", &t),
            "https://api.telegram.org/bot<bot token>/sendMessage: refused"
        );
    }

    #[test]
    fn updates_with_lone_surrogates_or_bad_bytes_are_mended_not_refused() {
        let raw = br#"{"ok":true,"result":[{"update_id":7,"message":{"text":"bad \ud800 x \\ud800 \ud83d\ude00"}}]}"#;
        let v = parse_lenient(raw).unwrap();
        assert_eq!(v["result"][0]["update_id"], 7);
        assert_eq!(v["result"][0]["message"]["text"], "bad \u{fffd} x \\ud800 \u{1f600}");
        let mut bytes = br#"{"ok":true,"result":[{"update_id":8,"message":{"text":"x"#.to_vec();
        bytes.extend([0xff, 0xfe]);
        bytes.extend(br#""}}]}"#);
        assert_eq!(parse_lenient(&bytes).unwrap()["result"][0]["update_id"], 8);
    }
}
