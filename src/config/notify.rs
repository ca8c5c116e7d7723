//! `notify:` where to tell people about tasks: a webhook, Telegram.

use crate::duration::Dur;
use serde::{Deserialize, Serialize};

/// The events a sink gets unless it names its own.
pub const DEFAULT_EVENTS: &[&str] = &["task_succeeded", "task_failed", "task_cancelled", "spend_cap_reached"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    pub webhook: Option<WebhookConfig>,
    pub telegram: Option<TelegramConfig>,
    /// One attempt's time limit.
    pub timeout: Dur,
    /// Attempts per notification (with a backoff from `backoff_initial` to 10 min) before
    /// it is set aside in `notify/failed/`.
    pub max_attempts: u32,
    /// Notifications waiting at most: beyond, the oldest is set aside.
    pub backlog: usize,
    /// The first retry's wait; each next one doubles, up to 10 minutes.
    pub backoff_initial: Dur,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            webhook: None,
            telegram: None,
            timeout: Dur::secs(10),
            max_attempts: 10,
            backlog: 1000,
            backoff_initial: Dur::secs(5),
        }
    }
}

/// `notify.webhook`: a JSON POST of the event line, for each chosen event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    pub url: String,
    /// Event names (default: [`DEFAULT_EVENTS`]).
    pub events: Vec<String>,
    /// Signs each body: `X-Orchestrator-Signature: sha256=<hex HMAC-SHA256 of the body>`.
    pub secret: Option<String>,
}

/// `notify.telegram`: a message per chosen event to each chat; commands from those chats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelegramConfig {
    pub bot_token: String,
    /// The chats messages go to, and the only ones whose commands are taken.
    pub chat_ids: Vec<i64>,
    /// Event names (default: [`DEFAULT_EVENTS`] and `agent_paused`).
    pub events: Vec<String>,
    /// Take `/status`, `/progress ID`, `/cancel ID`, `/retry ID` from the chats.
    pub commands: bool,
    /// Commands a chat may send a minute; more are answered with a refusal.
    pub commands_per_minute: u32,
    /// The Bot API's address (a test server, a local Bot API server).
    pub api_url: String,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        Self {
            bot_token: String::new(),
            chat_ids: Vec::new(),
            events: Vec::new(),
            commands: true,
            commands_per_minute: 20,
            api_url: "https://api.telegram.org".into(),
        }
    }
}

impl WebhookConfig {
    pub fn events(&self) -> Vec<String> {
        if self.events.is_empty() {
            DEFAULT_EVENTS.iter().map(|s| s.to_string()).collect()
        } else {
            self.events.clone()
        }
    }
}

impl TelegramConfig {
    pub fn events(&self) -> Vec<String> {
        if self.events.is_empty() {
            DEFAULT_EVENTS
                .iter()
                .chain(&["agent_paused"])
                .map(|s| s.to_string())
                .collect()
        } else {
            self.events.clone()
        }
    }
}

fn http_url(url: &str) -> bool {
    (url.starts_with("http://") || url.starts_with("https://")) && url.len() > "https://".len()
}

impl NotifyConfig {
    /// The secrets it holds (`(name, value)`), for the redactor.
    pub fn secrets(&self) -> Vec<(String, String)> {
        let mut v = Vec::new();
        if let Some(s) = self.webhook.as_ref().and_then(|w| w.secret.clone()) {
            v.push(("notify.webhook.secret".into(), s));
        }
        if let Some(t) = self.telegram.as_ref().filter(|t| !t.bot_token.is_empty()) {
            v.push(("notify.telegram.bot_token".into(), t.bot_token.clone()));
        }
        v
    }

    /// What is wrong with it, if anything. `known` is every event name.
    pub fn problem(&self, known: &[&str]) -> Option<String> {
        let unknown = |events: &[String], key: &str| {
            events
                .iter()
                .find(|e| !known.contains(&e.as_str()))
                .map(|e| format!("{key}: `{e}` is not an event (known: {})", known.join(", ")))
        };
        if let Some(w) = &self.webhook {
            if !http_url(&w.url) {
                return Some(format!("notify.webhook.url: `{}` is not an http(s) URL", w.url));
            }
            if let Some(p) = unknown(&w.events, "notify.webhook.events") {
                return Some(p);
            }
        }
        if let Some(t) = &self.telegram {
            if t.bot_token.trim().is_empty() {
                return Some("notify.telegram.bot_token is empty (the token @BotFather gave)".into());
            }
            if t.chat_ids.is_empty() {
                return Some("notify.telegram.chat_ids is empty: name the chats to write to".into());
            }
            if !http_url(&t.api_url) {
                return Some(format!(
                    "notify.telegram.api_url: `{}` is not an http(s) URL",
                    t.api_url
                ));
            }
            if let Some(p) = unknown(&t.events, "notify.telegram.events") {
                return Some(p);
            }
        }
        if self.max_attempts == 0 || self.backlog == 0 || self.timeout.0.is_zero() {
            return Some("notify.max_attempts, notify.backlog and notify.timeout must be more than 0".into());
        }
        None
    }
}
