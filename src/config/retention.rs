//! `retention:` what a daemon removes by itself, as `orchestrator clean` does.

use crate::duration::Dur;
use crate::vocab::Status;
use serde::{Deserialize, Serialize};

/// Off unless `max_age` or `max_tasks` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Finished tasks that finished longer ago than this are removed (their
    /// results and summaries), with rejected and cancelled files and rotated
    /// event logs as old.
    pub max_age: Option<Dur>,
    /// At most this many finished tasks (of `statuses`) are kept: the oldest
    /// beyond them are removed, whatever their age.
    pub max_tasks: Option<usize>,
    /// Only finished tasks with these statuses (`succeeded`, `failed`,
    /// `cancelled`); empty: all of them.
    pub statuses: Vec<Status>,
    /// How often the daemon applies it (and once, a little after it starts).
    pub every: Dur,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            max_age: None,
            max_tasks: None,
            statuses: Vec::new(),
            every: Dur::secs(3600),
        }
    }
}

impl RetentionConfig {
    pub fn enabled(&self) -> bool {
        self.max_age.is_some() || self.max_tasks.is_some()
    }

    /// What is wrong with it, if anything.
    pub fn problem(&self) -> Option<String> {
        if let Some(s) = self
            .statuses
            .iter()
            .find(|s| !matches!(s, Status::Succeeded | Status::Failed | Status::Cancelled))
        {
            return Some(format!(
                "retention.statuses: `{}` is not a finished status (succeeded, failed, cancelled)",
                s.name()
            ));
        }
        if self.every.0 < std::time::Duration::from_secs(1) {
            return Some("retention.every must be at least 1s".into());
        }
        None
    }
}
