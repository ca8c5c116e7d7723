//! `dashboard:`: where `orchestrator dashboard` listens and who may use it.

use serde::{Deserialize, Serialize};

/// The address the dashboard listens on when neither `--listen` nor the file names one.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8765";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    /// `ADDRESS:PORT`. Anything but a loopback address needs `token_env`.
    pub listen: String,
    /// The environment variable that holds the access token. With it set,
    /// every client presents the token (a login form, or
    /// `Authorization: Bearer`); without it the page is for this machine only.
    pub token_env: Option<String>,
    /// More names the page may be reached by (a reverse proxy's, the
    /// machine's); `localhost` and IP addresses always work.
    pub hosts: Vec<String>,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.into(),
            token_env: None,
            hosts: Vec::new(),
        }
    }
}

impl DashboardConfig {
    /// The token, when `token_env` names a variable that is set and not empty.
    pub fn token(&self) -> Option<String> {
        let name = self.token_env.as_deref()?;
        std::env::var(name).ok().filter(|t| !t.trim().is_empty())
    }

    /// The token as a secret for the redactor.
    pub fn secrets(&self) -> Vec<(String, String)> {
        match (&self.token_env, self.token()) {
            (Some(name), Some(token)) => vec![(name.clone(), token)],
            _ => Vec::new(),
        }
    }
}
