//! `mediator:` a language model between a person's loose note and the plan.

use crate::duration::Dur;
use serde::{Deserialize, Serialize};

/// Which API the mediator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MediatorKind {
    /// Any OpenAI-compatible `/chat/completions` (Ollama's `/v1`, llama.cpp's
    /// server, vLLM, LM Studio, hosted APIs), with a JSON schema for the answer.
    #[default]
    Openai,
    /// Ollama's own `/api/chat`, with `format` as the JSON schema.
    Ollama,
}

/// Which task files the mediator sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MediateWhen {
    /// Files without structure: a `.txt`, Markdown without front matter.
    #[default]
    Loose,
    /// Every task file (its fields win over what the model proposes).
    Always,
    /// None: the mediator is off.
    Never,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediatorConfig {
    pub kind: MediatorKind,
    /// The API's base: `http://127.0.0.1:11434/v1` (OpenAI-compatible: the
    /// daemon posts to `URL/chat/completions`), `http://127.0.0.1:11434`
    /// (Ollama: `URL/api/chat`).
    pub url: String,
    pub model: String,
    /// The environment variable that holds the API key, if the server wants one.
    pub api_key_env: Option<String>,
    /// The longest a task waits for the model; then the parser's plan is used.
    pub timeout: Dur,
    pub when: MediateWhen,
}

impl Default for MediatorConfig {
    fn default() -> Self {
        Self {
            kind: MediatorKind::Openai,
            url: String::new(),
            model: String::new(),
            api_key_env: None,
            timeout: Dur::secs(20),
            when: MediateWhen::Loose,
        }
    }
}

impl MediatorConfig {
    /// The API key it sends (`(name, value)`), for the redactor: the variable
    /// may have any name.
    pub fn secrets(&self) -> Vec<(String, String)> {
        self.api_key_env
            .as_ref()
            .and_then(|name| std::env::var(name).ok().map(|v| (name.clone(), v)))
            .into_iter()
            .collect()
    }

    /// What is wrong with it, if anything.
    pub fn problem(&self) -> Option<String> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Some(format!(
                "mediator.url: `{}` is not an http(s) URL (e.g. http://127.0.0.1:11434/v1)",
                self.url
            ));
        }
        if self.model.trim().is_empty() {
            return Some("mediator.model is empty: name the model the server should use".into());
        }
        if self.timeout.0.is_zero() || self.timeout.0 > std::time::Duration::from_secs(600) {
            return Some("mediator.timeout must be between 1ms and 10m".into());
        }
        None
    }
}
