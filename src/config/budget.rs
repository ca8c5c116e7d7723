//! `budget:` spend caps for the whole home, across tasks and daemons.

use serde::{Deserialize, Serialize};

/// Off unless a cap is set. Each counts the costs (and tokens) of the tasks
/// that finished in the period, and of those running now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetCaps {
    /// USD a day (from local midnight in `tz`).
    pub daily_usd: Option<f64>,
    /// USD a month (from the 1st, 00:00 in `tz`).
    pub monthly_usd: Option<f64>,
    /// Tokens (input and output) a day.
    pub daily_tokens: Option<i64>,
    /// Tokens a month.
    pub monthly_tokens: Option<i64>,
    /// The zone whose midnight and 1st start the periods; default: the machine's.
    pub tz: Option<String>,
}

impl BudgetCaps {
    pub fn enabled(&self) -> bool {
        self.daily_usd.is_some()
            || self.monthly_usd.is_some()
            || self.daily_tokens.is_some()
            || self.monthly_tokens.is_some()
    }

    /// What is wrong with it, if anything.
    pub fn problem(&self) -> Option<String> {
        for (key, v) in [("daily_usd", self.daily_usd), ("monthly_usd", self.monthly_usd)] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0)
            {
                return Some(format!(
                    "budget.{key} must be a positive number of USD (remove it for no cap)"
                ));
            }
        }
        for (key, v) in [
            ("daily_tokens", self.daily_tokens),
            ("monthly_tokens", self.monthly_tokens),
        ] {
            if let Some(v) = v
                && v <= 0
            {
                return Some(format!(
                    "budget.{key} must be a positive number of tokens (remove it for no cap)"
                ));
            }
        }
        // Only a named zone is checked: the machine's is found when a cap is
        // counted (looking it up loads the zone database, ~80 KB the daemon
        // would keep for nothing without caps).
        if let Some(name) = self.tz.as_deref()
            && let Err(e) = crate::schedule::zone(Some(name))
        {
            return Some(format!("budget.{e}"));
        }
        None
    }
}
