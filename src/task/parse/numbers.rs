//! A task's numbers, each checked against its range: limits, attempts,
//! budget, priority.

use super::{Fields, PrioritySpec, invalid};
use crate::duration::Dur;
use crate::task::Rejection;
use std::time::Duration;

pub(super) struct Numbers {
    pub max_turns: Option<u32>,
    pub max_tool_calls: Option<u32>,
    pub retries: Option<u32>,
    pub timeout: Option<Duration>,
    pub stall_timeout: Option<Duration>,
    pub budget_usd: Option<f64>,
    pub budget_tokens: Option<u64>,
    pub priority: i64,
}

/// `value` if it lies in `lo..=hi`, else the rejection for `field` with `hint`.
fn ranged<T: PartialOrd + std::fmt::Display + Copy>(
    field: &str,
    value: Option<T>,
    lo: T,
    hi: T,
    hint: &str,
) -> Result<Option<T>, Rejection> {
    match value {
        Some(v) if !(lo..=hi).contains(&v) => Err(invalid(field, format!("{v} is out of range"), hint)),
        v => Ok(v),
    }
}

pub(super) fn of(f: &Fields) -> Result<Numbers, Rejection> {
    let max_turns = ranged("max_turns", f.max_turns, 1, 10_000, "use a number from 1 to 10000")?;
    let max_tool_calls = ranged(
        "max_tool_calls",
        f.max_tool_calls,
        1,
        100_000,
        "use a number from 1 to 100000",
    )?;
    let retries = ranged("retries", f.retries, 0, 50, "use a number from 0 to 50")?;
    let timeout = match f.timeout {
        Some(d) if !(1..=7 * 24 * 3600).contains(&d.0.as_secs()) => {
            return Err(invalid(
                "timeout",
                format!("{d} is out of range"),
                "use a duration from 1s to 7d, e.g. 30m",
            ));
        }
        d => d.map(|Dur(d)| d),
    };
    let stall_timeout = match f.stall_timeout {
        Some(d) if !(1..=7 * 24 * 3600).contains(&d.0.as_secs()) => {
            return Err(invalid(
                "stall_timeout",
                format!("{d} is out of range"),
                "use a duration from 1s to 7d, e.g. 10m",
            ));
        }
        d => d.map(|Dur(d)| d),
    };
    // NaN is in no range: `contains` is false for it.
    let budget_usd = match f.budget_usd {
        Some(b) if !(b.is_finite() && b > 0.0 && b <= 100_000.0) => {
            return Err(invalid(
                "budget_usd",
                format!("{b} is out of range"),
                "use a positive amount in USD, e.g. 2.5",
            ));
        }
        b => b,
    };
    let budget_tokens = ranged(
        "budget_tokens",
        f.budget_tokens,
        1,
        1_000_000_000_000,
        "use a positive number of tokens (input and output together), e.g. 2000000",
    )?;
    let priority = match &f.priority {
        None => 0,
        Some(PrioritySpec::Int(n)) => ranged(
            "priority",
            Some(*n),
            -1_000_000,
            1_000_000,
            "use high, normal, low or an integer from -1000000 to 1000000",
        )?
        .unwrap_or(0),
        Some(PrioritySpec::Name(name)) => match name.as_str() {
            "high" => 100,
            "normal" | "medium" => 0,
            "low" => -100,
            other => {
                return Err(invalid(
                    "priority",
                    format!("`{other}` is not a priority"),
                    "use high, normal, low or an integer",
                ));
            }
        },
    };
    Ok(Numbers {
        max_turns: max_turns.map(|n| n as u32),
        max_tool_calls: max_tool_calls.map(|n| n as u32),
        retries: retries.map(|n| n as u32),
        timeout,
        stall_timeout,
        budget_usd,
        budget_tokens: budget_tokens.map(|n| n as u64),
        priority,
    })
}
