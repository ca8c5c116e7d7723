//! The product's vocabulary: the words its records, events and CLI share.
//!
//! A leaf: it imports nothing from the rest of the crate, so every layer (the
//! store at the bottom, the runner and the CLI above it) can use it without
//! reaching up. What is written in `result.json`, `progress.json` and the
//! events is spelled here once.

mod event;

pub use event::*;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A task's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    /// Its daemon died or stopped; it will run again or fail.
    Interrupted,
    Succeeded,
    Failed,
    Cancelled,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Interrupted => "interrupted",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether an agent's edits land in the workdir or are staged as a diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Apply,
    Guarded,
}

/// Where the agent works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// In the workdir itself.
    #[default]
    None,
    /// In a git worktree on a new branch `orchestrator/<id>`.
    Worktree,
    /// In a copy of the workdir.
    Copy,
}

/// Where a task's agent works, recorded in `results/<id>/isolation.json`
/// (read by recovery, `apply` and `clean`) and in `result.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sandbox {
    pub kind: Isolation,
    /// The worktree or copy.
    pub root: PathBuf,
    /// The agent's working directory: the workdir's place inside `root`.
    pub run_dir: PathBuf,
    /// The repository of a worktree, its branch and base commit.
    pub repo: Option<PathBuf>,
    pub branch: Option<String>,
    pub base: Option<String>,
    /// The diff's size, once the run is over.
    #[serde(default)]
    pub stat: Option<DiffStat>,
    /// The work was committed on `branch` (`mode: apply`), not kept for `apply`.
    #[serde(default)]
    pub committed: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DiffStat {
    pub files: usize,
    pub insertions: usize,
    pub deletions: usize,
}

impl DiffStat {
    /// Counted from a unified diff's text.
    pub fn of(diff: &str) -> Self {
        let mut s = DiffStat::default();
        for line in diff.lines() {
            let new_file = line.starts_with("+++ ");
            if new_file || line.starts_with("Binary files ") || line.starts_with("GIT binary patch") {
                s.files += 1;
            } else if line.starts_with('+') {
                s.insertions += 1;
            } else if line.starts_with('-') && !line.starts_with("--- ") {
                s.deletions += 1;
            }
        }
        s
    }
}

impl std::fmt::Display for DiffStat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} file(s) changed, {} insertion(s)(+), {} deletion(s)(-)",
            self.files, self.insertions, self.deletions
        )
    }
}

/// The error classes, as written in `result.json` (`error.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    RateLimited,
    Overloaded,
    ServerError,
    Network,
    Auth,
    Billing,
    ModelNotFound,
    PromptTooLong,
    InvalidRequest,
    ApiError,
    Timeout,
    MaxTurns,
    MaxToolCalls,
    /// The agent wrote nothing for its `stall_timeout`.
    Stalled,
    BudgetExceeded,
    AgentCrashed,
    AgentError,
    InteractivePrompt,
    NotFound,
    BadInvocation,
    InvalidOutput,
    CommandFailed,
    Cancelled,
    Interrupted,
    InvalidTask,
    ValidationFailed,
    IsolationFailed,
    SessionNotFound,
    TaskFileChanged,
    SecurityViolation,
    /// The task itself kills the daemon that runs it: quarantined, not run again.
    PoisonPill,
    /// A task it waited for (`after:`) failed or was cancelled: it never ran.
    DependencyFailed,
    /// Its `verify` command still failed after the last round.
    VerifyFailed,
    /// A kind this version does not know (a record written by a newer one).
    #[serde(other)]
    Unknown,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::ServerError => "server_error",
            ErrorKind::Network => "network",
            ErrorKind::Auth => "auth",
            ErrorKind::Billing => "billing",
            ErrorKind::ModelNotFound => "model_not_found",
            ErrorKind::PromptTooLong => "prompt_too_long",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::ApiError => "api_error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::MaxTurns => "max_turns",
            ErrorKind::MaxToolCalls => "max_tool_calls",
            ErrorKind::Stalled => "stalled",
            ErrorKind::BudgetExceeded => "budget_exceeded",
            ErrorKind::AgentCrashed => "agent_crashed",
            ErrorKind::AgentError => "agent_error",
            ErrorKind::InteractivePrompt => "interactive_prompt",
            ErrorKind::NotFound => "not_found",
            ErrorKind::BadInvocation => "bad_invocation",
            ErrorKind::InvalidOutput => "invalid_output",
            ErrorKind::CommandFailed => "command_failed",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::InvalidTask => "invalid_task",
            ErrorKind::ValidationFailed => "validation_failed",
            ErrorKind::IsolationFailed => "isolation_failed",
            ErrorKind::SessionNotFound => "session_not_found",
            ErrorKind::TaskFileChanged => "task_file_changed",
            ErrorKind::SecurityViolation => "security_violation",
            ErrorKind::PoisonPill => "poison_pill",
            ErrorKind::DependencyFailed => "dependency_failed",
            ErrorKind::VerifyFailed => "verify_failed",
            ErrorKind::Unknown => "unknown",
        }
    }

    /// One line: what the operator can do about it.
    pub fn suggestion(self) -> &'static str {
        match self {
            ErrorKind::RateLimited => {
                "The agent hit a rate or usage limit; the orchestrator waits for the reset and retries. Lower max_concurrent if it happens often."
            }
            ErrorKind::Overloaded => "The API was overloaded (529); retried with backoff. If it persists, try later.",
            ErrorKind::ServerError => {
                "The API returned a server error; retried with backoff. Check the provider's status page if it persists."
            }
            ErrorKind::Network => {
                "The agent could not reach its API. Check the network, proxy (HTTPS_PROXY) and DNS of this machine."
            }
            ErrorKind::Auth => {
                "The agent is not authenticated. Log in (`claude` then /login) or set a valid ANTHROPIC_API_KEY for the daemon's user, then `orchestrator retry ID`."
            }
            ErrorKind::Billing => "The account has no credit or is on hold. Fix billing, then `orchestrator retry ID`.",
            ErrorKind::ModelNotFound => {
                "The configured model does not exist or is not available to this account. Fix --model in agents.<name>.extra_args."
            }
            ErrorKind::PromptTooLong => {
                "The prompt (with context) is too long for the model. Shorten the task or split it."
            }
            ErrorKind::InvalidRequest => {
                "The API rejected the request. Check agents.<name>.extra_args and the task's options."
            }
            ErrorKind::ApiError => "The API returned an error; see the message and attempt-<n>.out.",
            ErrorKind::Timeout => {
                "The task ran longer than its timeout and was stopped. Raise `timeout` in the task or config, or split the task."
            }
            ErrorKind::MaxTurns => "The agent used all its turns. Raise max_turns, or make the task smaller.",
            ErrorKind::Stalled => {
                "The agent printed nothing for its stall_timeout, so it was stopped and tried again; it stalled on every attempt. Look at attempt-<n>.err, raise stall_timeout for work that is quiet for long, or make the task smaller."
            }
            ErrorKind::MaxToolCalls => {
                "The agent made more tool calls than max_tool_calls allows and was stopped. Raise max_tool_calls, or make the task smaller."
            }
            ErrorKind::BudgetExceeded => {
                "The agent's cost passed budget_usd and it was stopped. Raise budget_usd or make the task smaller."
            }
            ErrorKind::AgentCrashed => {
                "The agent process died without finishing; retried. See attempt-<n>.err for why."
            }
            ErrorKind::AgentError => {
                "The agent reported an error during execution; see the message and attempt-<n>.out."
            }
            ErrorKind::InteractivePrompt => {
                "The agent asked a question nobody can answer headless. Run it once by hand in the workdir (e.g. accept the folder-trust prompt), or pass the flag that skips the question."
            }
            ErrorKind::NotFound => {
                "The agent CLI was not found. Install it, or set agents.<name>.command in orchestrator.yaml to its full path."
            }
            ErrorKind::BadInvocation => {
                "The agent rejected its command line. Check agents.<name>.extra_args and the CLI's version (`orchestrator doctor`)."
            }
            ErrorKind::InvalidOutput => {
                "The agent exited without a final result. Check its version (`orchestrator doctor`) and attempt-<n>.out."
            }
            ErrorKind::CommandFailed => "The command exited with an error; see the answer and attempt-<n>.err.",
            ErrorKind::Cancelled => "The task was cancelled. `orchestrator retry ID` runs it again.",
            ErrorKind::Interrupted => {
                "The daemon stopped or died while the task ran, more often than max_interruptions allows; look for what kills it (OOM killer, a supervisor, the machine), then `orchestrator retry ID`."
            }
            ErrorKind::PoisonPill => {
                "Its daemon died each time this task ran alone: the task kills the daemon (an agent that signals its parent, exhausts memory, or crashes the machine). It is quarantined; look at attempt-<n>.out/.err, fix the task, then submit it again."
            }
            ErrorKind::DependencyFailed => {
                "A task it waited for (`after:`) failed or was cancelled, so this one never ran. Fix that task and run it again (`orchestrator retry` of it), then drop this task's file into the inbox again: it is kept as task.<ext> in this task's folder of results/ (with `after:` naming the new run's id). `after_any:` waits for the end whatever the status."
            }
            ErrorKind::VerifyFailed => {
                "The agent finished, but the task's verify command still failed after its last round; see verify[] in result.json (each round's exit code and output), fix what it reports or raise verify_rounds, then `orchestrator retry ID`."
            }
            ErrorKind::InvalidTask => "The claimed task file could not be parsed; fix it and submit it again.",
            ErrorKind::ValidationFailed => {
                "The run ended but its result failed validation (fail_on_validation is on); see validation.warnings in result.json."
            }
            ErrorKind::IsolationFailed => {
                "The worktree or copy for an isolated run could not be made (see the message); fix that, or use isolation: copy / mode: apply, then `orchestrator retry ID`."
            }
            ErrorKind::SecurityViolation => {
                "The task's workdir no longer resolves to the folder it was checked as (a symlink or a moved folder put it elsewhere); nothing more was run. Check who changed it, then submit the task again."
            }
            ErrorKind::TaskFileChanged => {
                "The task file was still being written when it was claimed. Write it under a temporary name (or outside the inbox) and rename it into the inbox when it is complete, then submit it again."
            }
            ErrorKind::SessionNotFound => {
                "The agent session to continue does not exist for this agent's HOME and workdir (it was deleted, or the task runs elsewhere); not retried. Start afresh with `orchestrator retry ID` of the first task."
            }
            ErrorKind::Unknown => "See the message; this version of orchestrator does not know this kind of error.",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which agent CLI a task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum AgentKind {
    Claude,
    Cline,
    Codex,
    Gemini,
    Opencode,
    Command,
}

impl AgentKind {
    /// Every agent, in the order `doctor` checks them.
    pub const ALL: [AgentKind; 6] = [
        AgentKind::Claude,
        AgentKind::Cline,
        AgentKind::Codex,
        AgentKind::Gemini,
        AgentKind::Opencode,
        AgentKind::Command,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AgentKind::Claude => "claude",
            AgentKind::Cline => "cline",
            AgentKind::Codex => "codex",
            AgentKind::Gemini => "gemini",
            AgentKind::Opencode => "opencode",
            AgentKind::Command => "command",
        }
    }
    /// Every agent's name, for messages: `claude, cline, codex, command`.
    pub fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == text)
    }
    /// Its bit in a set of agents ([`crate::queue`] keeps a task's fallbacks so).
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Tokens a run (or a task's runs together) used, as the agent's CLI
/// reported them. `input` counts every input token, cached ones included;
/// `cached` is the part read from the provider's prompt cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    #[serde(default)]
    pub cached: u64,
}

impl Tokens {
    pub fn is_zero(&self) -> bool {
        self.input == 0 && self.output == 0 && self.cached == 0
    }

    /// Everything counted against a token budget: input and output.
    pub fn total(&self) -> u64 {
        self.input.saturating_add(self.output)
    }

    pub fn add(&mut self, other: Tokens) {
        self.input = self.input.saturating_add(other.input);
        self.output = self.output.saturating_add(other.output);
        self.cached = self.cached.saturating_add(other.cached);
    }

    /// `Some` unless nothing was counted (records leave the field out then).
    pub fn some(self) -> Option<Tokens> {
        (!self.is_zero()).then_some(self)
    }
}

/// `agent:` as written in a task file or a role: one agent, or a
/// preference list (`[claude, codex]`) the task falls through when the first
/// is paused by a limit, missing, or refused by its provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AgentChoice {
    One(String),
    List(Vec<String>),
}

impl AgentChoice {
    /// The agents in order, or why the list is not one: `(kind, message)`
    /// where kind is `invalid_value` or `duplicate_agent`.
    pub fn resolve(&self) -> Result<Vec<AgentKind>, (&'static str, String)> {
        let names: Vec<&str> = match self {
            AgentChoice::One(n) => vec![n.as_str()],
            AgentChoice::List(l) => l.iter().map(String::as_str).collect(),
        };
        if names.is_empty() {
            return Err(("invalid_value", "the agent list is empty".into()));
        }
        let mut out: Vec<AgentKind> = Vec::new();
        for n in names {
            let kind = AgentKind::parse(n.trim()).ok_or_else(|| {
                (
                    "invalid_value",
                    format!("`{n}` is not an agent (use one of: {})", AgentKind::names()),
                )
            })?;
            if out.contains(&kind) {
                return Err(("duplicate_agent", format!("`{n}` is named twice in the agent list")));
            }
            out.push(kind);
        }
        Ok(out)
    }
}

/// How an attempt was cut short from outside (it used none of the task's attempts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CutShort {
    /// The daemon running it died (killed, crashed, the machine went down).
    DaemonDied,
    /// The daemon was stopped (Ctrl-C, SIGTERM, a service stop).
    DaemonShutdown,
}

/// How a task file became a plan: by the mediator (a language model), or by
/// the parser alone because the mediator's answer was not usable (`reason`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mediation {
    /// The model's proposal was used.
    pub used: bool,
    /// Why not: `timeout`, `unreachable`, `http_error`, `invalid_answer`,
    /// `invalid_json`, `schema_violation`, `forbidden_field`, `rejected_by_checks`,
    /// `nothing_adopted` (every field was dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub model: String,
    pub duration_ms: u64,
    /// Fields of a used proposal that were not adopted, each with its reason
    /// (the rest of the proposal stands).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<Dropped>,
}

/// A field of the mediator's proposal that was dropped, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dropped {
    pub field: String,
    pub reason: String,
}

impl Mediation {
    /// `mediated`, or the reason it fell back.
    pub fn outcome(&self) -> String {
        if self.used {
            "mediated".into()
        } else {
            self.reason.clone().unwrap_or_else(|| "fallback".into())
        }
    }
}

/// The current time as the event log writes it: RFC 3339, UTC, milliseconds.
pub fn now_ts() -> String {
    ts(jiff::Timestamp::now())
}

/// A timestamp as every record writes it: UTC, milliseconds.
pub fn ts(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_read_back_as_written_and_unknown_ones_do_not_fail() {
        for k in [
            ErrorKind::RateLimited,
            ErrorKind::SessionNotFound,
            ErrorKind::TaskFileChanged,
        ] {
            let text = serde_json::to_string(&k).unwrap();
            assert_eq!(text, format!("\"{}\"", k.as_str()));
            assert_eq!(serde_json::from_str::<ErrorKind>(&text).unwrap(), k);
        }
        assert_eq!(
            serde_json::from_str::<ErrorKind>("\"a_kind_from_the_future\"").unwrap(),
            ErrorKind::Unknown
        );
    }
}
