//! What an agent's output told, and the reader that learns it line by line.

use serde_json::Value;

/// Everything learned from an agent's output. Fields an agent does not report stay empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentReport {
    pub session_id: Option<String>,
    pub model: Option<String>,
    pub turns: u32,
    pub tool_calls: u32,
    pub cost_usd: Option<f64>,
    /// Tokens this run used, where the CLI reports them.
    pub tokens: crate::vocab::Tokens,
    /// The session's whole count at the run's end, where the CLI reports
    /// that instead of the run's (Codex): the next run of the session
    /// subtracts it ([`LiveLimits::session_tokens_before`]).
    pub session_tokens: Option<crate::vocab::Tokens>,
    /// The final answer (Claude's `result`; a command's stdout tail).
    pub answer: Option<String>,
    /// The last assistant text seen, used when no `result` line came.
    pub last_text: Option<String>,
    /// A final `result` line was read.
    pub result_seen: bool,
    pub is_error: bool,
    pub subtype: Option<String>,
    pub terminal_reason: Option<String>,
    pub api_error_status: Option<i64>,
    /// The `error` of a synthetic API-error assistant message (`rate_limit`, `authentication_failed`, ...).
    pub api_error: Option<String>,
    pub result_errors: Vec<String>,
    pub permission_denials: Vec<Value>,
    /// Epoch seconds when a rejected rate limit resets.
    pub rate_limit_resets_at: Option<i64>,
    pub api_retries: u32,
    pub last_api_retry_error: Option<String>,
    /// A short description of the last thing the agent did, for progress.
    pub last_event: Option<String>,
    /// Lines that were not JSON (Claude) or too long to keep.
    pub invalid_lines: u32,
    /// Output that looks like a question to a person.
    pub interactive_prompt: Option<String>,
    /// The output ended in the middle of a line (the agent died while writing).
    pub ended_mid_line: bool,
    /// The limit the reader stopped the agent for.
    pub limit_hit: Option<LimitHit>,
}

/// A limit passed while the agent ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    Turns,
    Budget,
    ToolCalls,
}

/// Limits the readers enforce while the agent runs: the plan's `max_turns`,
/// `budget_usd` and `max_tool_calls`, checked against what the stream reports
/// after every line. Cline has no flags for any of them: this is its only
/// guard. Claude's CLI enforces turns and budget itself (and reports its cost
/// only at the end), so for Claude only `max_tool_calls` is checked here.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LiveLimits {
    pub max_turns: Option<u32>,
    pub budget_usd: Option<f64>,
    pub max_tool_calls: Option<u32>,
    /// Tokens (input and output) this run may use: what the task has left.
    pub budget_tokens: Option<u64>,
    /// What the session this run continues had used before it, for CLIs
    /// that report a session's whole count ([`AgentReport::session_tokens`]).
    pub session_tokens_before: crate::vocab::Tokens,
    /// The agent's prices from the config: for a CLI that reports tokens but
    /// no dollars (Codex, Gemini, opencode), `budget_usd` is held against
    /// the tokens' cost while it runs, not only once it ended.
    pub prices: Option<crate::config::Prices>,
}

impl LiveLimits {
    /// The reason to stop the agent, the first time `report` passes a limit
    /// (recorded in `report.limit_hit`); `None` otherwise and afterwards.
    pub fn check(&self, report: &mut AgentReport) -> Option<String> {
        if report.limit_hit.is_some() {
            return None;
        }
        let cost = report.cost_usd.or_else(|| {
            self.prices
                .filter(|_| !report.tokens.is_zero())
                .map(|p| p.cost(report.tokens))
        });
        // Worded only when a limit is passed: this runs on every line.
        let spent = || cost.map_or(String::new(), |c| format!(", ${c:.4} spent"));
        if let Some(max) = self.max_turns
            && report.turns > max
        {
            report.limit_hit = Some(LimitHit::Turns);
            return Some(format!(
                "stopped at {} turns: max_turns is {max}{}, {} tool calls",
                report.turns,
                spent(),
                report.tool_calls
            ));
        }
        if let Some(max) = self.max_tool_calls
            && report.tool_calls > max
        {
            report.limit_hit = Some(LimitHit::ToolCalls);
            return Some(format!(
                "stopped at {} tool calls: max_tool_calls is {max}{}, after {} turns",
                report.tool_calls,
                spent(),
                report.turns
            ));
        }
        if let Some(budget) = self.budget_tokens
            && report.tokens.total() > budget
        {
            report.limit_hit = Some(LimitHit::Budget);
            return Some(format!(
                "stopped at {} tokens: budget_tokens left for this run is {budget}, after {} turns and {} tool calls",
                report.tokens.total(),
                report.turns,
                report.tool_calls
            ));
        }
        if let Some(budget) = self.budget_usd
            && let Some(cost) = cost
            && cost > budget
        {
            report.limit_hit = Some(LimitHit::Budget);
            return Some(format!(
                "stopped at ${cost:.4}: budget_usd left for this run is ${budget:.4}, after {} turns and {} tool calls",
                report.turns, report.tool_calls
            ));
        }
        None
    }
}

/// What the supervisor should do after a line.
#[derive(Debug, Default, PartialEq)]
pub struct LineOutcome {
    /// The report changed in a way worth showing in `progress.json`.
    pub progress: bool,
    /// Stop the agent now, for this reason (it is waiting for an answer that can never come).
    pub stop: Option<String>,
}

/// Reads one agent's stdout, a line at a time.
pub trait OutputReader: Send {
    fn on_line(&mut self, line: &[u8]) -> LineOutcome;
    /// A line longer than the reader's limit was skipped.
    fn on_oversized_line(&mut self) {}
    /// Output ended with this incomplete line.
    fn on_partial_tail(&mut self, tail: &[u8]);
    fn report(&self) -> &AgentReport;
    fn into_report(self: Box<Self>) -> AgentReport;
}

/// The [`OutputReader`] of an agent whose stdout is JSON events, one a line:
/// each object goes to the reader's own `on_json(&mut self, &Value) -> bool`
/// (did the report change in a way worth showing), anything else is counted
/// as an invalid line, and the limits are checked after every line. The
/// reader has `report: AgentReport` and `limits: LiveLimits` fields.
macro_rules! json_lines_reader {
    ($reader:ty) => {
        impl $crate::agents::OutputReader for $reader {
            fn on_line(&mut self, line: &[u8]) -> $crate::agents::LineOutcome {
                let trimmed = line.trim_ascii();
                if trimmed.is_empty() {
                    return $crate::agents::LineOutcome::default();
                }
                let progress = match serde_json::from_slice::<serde_json::Value>(trimmed) {
                    Ok(v) if v.is_object() => self.on_json(&v),
                    _ => {
                        self.report.invalid_lines += 1;
                        false
                    }
                };
                $crate::agents::LineOutcome {
                    progress,
                    stop: self.limits.check(&mut self.report),
                }
            }

            fn on_partial_tail(&mut self, tail: &[u8]) {
                if !tail.trim_ascii().is_empty() {
                    self.report.ended_mid_line = true;
                }
            }

            fn report(&self) -> &$crate::agents::AgentReport {
                &self.report
            }

            fn into_report(self: Box<Self>) -> $crate::agents::AgentReport {
                self.report
            }
        }
    };
}
pub(crate) use json_lines_reader;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Prices;
    use crate::vocab::Tokens;

    /// A CLI that reports no dollars is held to `budget_usd` while it runs
    /// when the config prices its tokens.
    #[test]
    fn prices_hold_a_dollar_budget_while_the_run_reports_only_tokens() {
        let limits = LiveLimits {
            budget_usd: Some(0.01),
            prices: Some(Prices {
                input: 10.0,
                output: 40.0,
                cached: Some(1.0),
            }),
            ..LiveLimits::default()
        };
        let mut r = AgentReport {
            tokens: Tokens {
                input: 900,
                output: 10,
                cached: 0,
            },
            ..AgentReport::default()
        };
        // 900 * 10 / 1e6 + 10 * 40 / 1e6 = $0.0094: under.
        assert_eq!(limits.check(&mut r), None);
        r.tokens = Tokens {
            input: 1_000,
            output: 20,
            cached: 500,
        };
        // 500 * 10 + 500 * 1 + 20 * 40 = 6,300 millionths: under.
        assert_eq!(limits.check(&mut r), None);
        r.tokens.output = 200;
        // 5,000 + 500 + 8,000 = $0.0135: over.
        let why = limits.check(&mut r).expect("stopped");
        assert!(why.contains("budget_usd"), "{why}");
        assert_eq!(r.limit_hit, Some(LimitHit::Budget));
        // A cost the CLI reports is the cost: the prices are not used.
        let mut r = AgentReport {
            tokens: Tokens {
                input: 1_000_000,
                output: 0,
                cached: 0,
            },
            cost_usd: Some(0.001),
            ..AgentReport::default()
        };
        assert_eq!(limits.check(&mut r), None);
        // No tokens yet: no cost from prices either.
        let mut r = AgentReport::default();
        assert_eq!(
            LiveLimits {
                budget_usd: Some(0.0),
                ..limits
            }
            .check(&mut r),
            None
        );
        // Without prices, tokens alone never pass a dollar budget.
        let mut r = AgentReport {
            tokens: Tokens {
                input: 1_000_000,
                output: 0,
                cached: 0,
            },
            ..AgentReport::default()
        };
        assert_eq!(LiveLimits { prices: None, ..limits }.check(&mut r), None);
    }
}
