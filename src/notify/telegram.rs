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
    let v: Value = resp
        .into_body()
        .read_json()
        .map_err(|e| Failure::retry(scrub(&format!("HTTP {status}, unreadable answer: {e}"), t)))?;
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
}
