//! `schedules:` recurring tasks: each drops a task file into the inbox when
//! its cron expression fires (see `crate::schedule`).

use serde::{Deserialize, Serialize};

/// One schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Names its task files (`NAME-20261208T020000Z.json`) and its state:
    /// lower-case letters, digits and `-`.
    pub name: String,
    /// Five fields (`0 2 * * *`), or six with seconds first.
    pub cron: String,
    /// The time zone the expression is read in (`Europe/Berlin`); default:
    /// the machine's.
    #[serde(default)]
    pub tz: Option<String>,
    /// A run missed while no daemon was up: run once at the next start
    /// (`one`), or not (`none`).
    #[serde(default)]
    pub catch_up: CatchUp,
    /// The task's fields, as a task file has them (`prompt`, `agent`, ...).
    pub task: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    #[default]
    One,
    None,
}

impl ScheduleConfig {
    /// The task file this schedule drops, as bytes (JSON).
    pub fn task_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(&self.task).unwrap_or_default()
    }
}

/// What is wrong with the list, if anything: names, expressions, zones and
/// tasks are all checked when the config is loaded, so a schedule that
/// cannot fire is an error at the start, not a silence at 2 a.m.
pub fn problem(list: &[ScheduleConfig], limits: &crate::task::parse::Limits) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    for s in list {
        let at = format!("schedules `{}`", s.name);
        let plain = !s.name.is_empty()
            && s.name.len() <= 40
            && s.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.name.starts_with('-');
        if !plain {
            return Some(format!(
                "{at}: a schedule's name is 1-40 lower-case letters, digits and `-` (it names its task files)"
            ));
        }
        if !seen.insert(&s.name) {
            return Some(format!("{at}: two schedules have this name"));
        }
        let tz = match crate::schedule::zone(s.tz.as_deref()) {
            Ok(tz) => tz,
            Err(e) => return Some(format!("{at}: {e}")),
        };
        let cron = match crate::schedule::cron::Cron::parse(&s.cron) {
            Ok(c) => c,
            Err(e) => return Some(format!("{at}: cron: {e}")),
        };
        if cron.next_after(&jiff::Timestamp::now(), &tz).is_none() {
            return Some(format!(
                "{at}: cron `{}` never fires (a day that does not exist, such as February 30th)",
                s.cron
            ));
        }
        if let Err(r) = crate::task::parse::parse(&format!("{}.json", s.name), &s.task_bytes(), limits) {
            return Some(format!(
                "{at}: task: {} ({})",
                r.error.trim_end_matches('.'),
                r.hint.trim_end_matches('.')
            ));
        }
    }
    None
}
