//! The bridges to agent CLIs: what to run, how to read what it prints, and
//! what its failures mean.
//!
//! Everything that differs between agents is one [`Agent`] implementation,
//! one module each: [`claude`], [`cline`], [`codex`], [`gemini`], [`opencode`], [`command`]. The rest of the daemon
//! asks [`of`] for the agent of a task and never names one. Running the
//! process (process tree, limits, capped logs) is [`supervise`]'s job and is
//! the same for every agent; what failures have in common (the daemon's own
//! stops, model-API errors, backoff) is [`outcome`].
//!
//! Adding an agent: a variant of [`AgentKind`] (its name in task files), a
//! module implementing [`Agent`] with its tests, and its line in [`of`].

pub mod claude;
pub mod cline;
pub mod codex;
pub(crate) mod command;
pub mod gemini;
pub(crate) mod identity;
pub(crate) mod leftovers;
pub mod opencode;
pub mod outcome;
mod report;
pub mod supervise;
pub mod watchdog;

pub use report::{AgentReport, LimitHit, LineOutcome, LiveLimits, OutputReader};

use crate::config::AgentConfig;
use crate::vocab::AgentKind;
use outcome::Failure;
use serde_json::Value;
use std::path::Path;
use supervise::Exit;

/// Everything the daemon needs to know about one agent CLI.
///
/// Implementations are stateless unit structs; per-run state lives in the
/// [`OutputReader`] they make.
pub trait Agent: Sync {
    /// Its name in task files, the config and results.
    fn kind(&self) -> AgentKind;

    /// How messages name it, with the version its behaviour was learned from.
    fn describe(&self) -> &'static str;

    /// The program run when `agents.<name>.command` is not set.
    fn default_program(&self) -> &'static str;

    /// Tool policy: of the tools a task asks for (`None`: it did not say),
    /// which it gets and which are dropped, given the agent's config (its
    /// `allowed_tools` ceiling and `default_tools`).
    fn grant_tools(&self, asked: Option<&[String]>, config: &AgentConfig) -> ToolGrant;

    /// Why tools a task asked for were not granted: the warning's kind and
    /// message (in events, `result.json` and the summary).
    fn dropped_tools_warning(&self) -> (&'static str, &'static str);

    /// Does it hold the agent to the tools it grants? An agent that does not
    /// (Cline, a command) is never fallen through to from one that does.
    fn enforces_tools(&self) -> bool {
        true
    }

    /// Can a run with these granted tools change files? Runs that can are held
    /// to one writer per repository; a run that cannot is checked for answers
    /// that claim edits.
    fn may_edit(&self, granted: &[String]) -> bool;

    /// The arguments after the program for one run.
    fn args(&self, run: &RunArgs) -> Vec<String>;

    /// What goes on the agent's stdin for one run: the prompt, and for step
    /// `k` of `n` the step (after the prompt when the step starts a session,
    /// alone in a session that already has it).
    fn stdin(&self, prompt: &str, step: Option<Step>, in_session: bool) -> String {
        match step {
            None => prompt.to_string(),
            Some(Step { k, n, text }) if !in_session && !prompt.is_empty() => {
                format!("{prompt}\n\nStep {k} of {n}: {text}")
            }
            Some(Step { k, n, text }) => format!("Step {k} of {n}: {text}"),
        }
    }

    /// Environment every run gets unless `agents.<name>.env` sets the same name.
    fn env(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// Environment of one run that names its files ([`RunArgs::file`]),
    /// unless `agents.<name>.env` sets the same name.
    fn run_env(&self, run: &RunArgs) -> Vec<(String, String)> {
        let _ = run;
        Vec::new()
    }

    /// Files the run's command line or environment names, written into the
    /// task's folder before it starts: `(name, contents)`. For a CLI whose
    /// least privilege is a file of its own (Gemini's policy).
    fn run_files(&self, run: &RunArgs) -> Vec<(&'static str, String)> {
        let _ = run;
        Vec::new()
    }

    /// How it is asked to stop (Unix): the signal its CLI ends on, sent to its
    /// process group and to what left it; SIGKILL follows after `kill_grace`.
    /// A CLI that ignores SIGTERM would work on for the whole grace.
    fn stop_signal(&self) -> StopSignal {
        StopSignal::Term
    }

    /// A reader for one run's stdout. `limits` are the plan's (with what is
    /// left of the budget); the reader enforces those the CLI cannot.
    fn reader(&self, limits: LiveLimits) -> Box<dyn OutputReader>;

    /// How a run that ended by itself went (`None`: it succeeded), from its
    /// report and exit. The daemon's own stops are decided before
    /// ([`outcome::decided_by_the_daemon`]).
    fn classify(&self, exit: &Exit, report: &AgentReport) -> Option<Failure>;

    /// What it can continue: sessions for `steps`, `reply` and `resume`.
    fn sessions(&self) -> Sessions;

    /// The session a run that reported none on stdout had, found where the
    /// CLI keeps its own history (`None`: not found, or no history).
    fn find_session(&self, run: &RanAt) -> Option<String> {
        let _ = run;
        None
    }

    /// Is `id` one of its session ids? It reaches the command line, so it
    /// must never be read as a flag. The default: letters, digits, `-` and
    /// `_`, not starting with `-`, at most 100 characters.
    fn valid_session_id(&self, id: &str) -> bool {
        !id.is_empty()
            && id.len() <= 100
            && !id.starts_with('-')
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }

    /// The arguments that make it print its version, for `doctor`.
    fn version_args(&self) -> Option<&'static [&'static str]> {
        Some(&["--version"])
    }

    /// What its stdout is: JSON records, or a program's own text.
    fn output(&self) -> Output {
        Output::Records
    }

    /// One of its stdout records as a person wants to read it in
    /// `orchestrator logs` (`None`: nothing worth showing).
    fn render(&self, record: &Value) -> Option<String> {
        let _ = record;
        None
    }
}

/// The signal that asks an agent to stop ([`Agent::stop_signal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StopSignal {
    /// SIGTERM.
    #[default]
    Term,
    /// SIGINT, as Ctrl-C sends it.
    Interrupt,
}

impl StopSignal {
    /// The signal's number.
    #[cfg(unix)]
    pub fn number(self) -> i32 {
        match self {
            StopSignal::Term => libc::SIGTERM,
            StopSignal::Interrupt => libc::SIGINT,
        }
    }
}

/// The agent of a kind.
pub fn of(kind: AgentKind) -> &'static dyn Agent {
    match kind {
        AgentKind::Claude => &claude::Claude,
        AgentKind::Cline => &cline::Cline,
        AgentKind::Codex => &codex::Codex,
        AgentKind::Gemini => &gemini::Gemini,
        AgentKind::Opencode => &opencode::Opencode,
        AgentKind::Command => &command::Command,
    }
}

/// Classifies one run: the daemon's own stops first, then the agent's reading
/// of its output. `None` means it succeeded.
pub fn classify(kind: AgentKind, exit: &Exit, report: &AgentReport) -> Option<Failure> {
    outcome::decided_by_the_daemon(exit, report).or_else(|| of(kind).classify(exit, report))
}

/// Is `id` a session id of `kind`'s form?
pub fn valid_session_id(kind: AgentKind, id: &str) -> bool {
    of(kind).valid_session_id(id)
}

/// The tools a task gets, and those it asked for and does not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolGrant {
    pub granted: Vec<String>,
    pub dropped: Vec<String>,
}

impl ToolGrant {
    /// For an agent without per-tool permissions: nothing granted, whatever
    /// was asked for reported as not enforced.
    pub fn none(asked: Option<&[String]>) -> Self {
        Self {
            granted: Vec::new(),
            dropped: asked.map(<[String]>::to_vec).unwrap_or_default(),
        }
    }
}

/// The tools asked for (else the config's `default_tools`, else `defaults`)
/// split by the ceiling (the config's `allowed_tools`, else
/// [`claude::TOOL_CEILING`], which leaves the shell out): granted and dropped.
pub fn within_ceiling(asked: Option<&[String]>, config: &AgentConfig, defaults: &[&str]) -> ToolGrant {
    let wanted = asked
        .map(<[String]>::to_vec)
        .or_else(|| config.default_tools.clone())
        .unwrap_or_else(|| defaults.iter().map(|s| s.to_string()).collect());
    let ceiling = ceiling(config);
    let (granted, dropped) = wanted
        .into_iter()
        .partition(|t| crate::tools::tool_allowed(t, &ceiling));
    ToolGrant { granted, dropped }
}

/// [`within_ceiling`], keeping granted only the tools the agent's CLI can
/// hold it to (`holds`); the rest are dropped with those over the ceiling.
pub fn grant_held(
    asked: Option<&[String]>,
    config: &AgentConfig,
    defaults: &[&str],
    holds: impl Fn(&str) -> bool,
) -> ToolGrant {
    let within = within_ceiling(asked, config, defaults);
    let (granted, mut dropped): (Vec<String>, Vec<String>) = within.granted.into_iter().partition(|t| holds(t));
    dropped.extend(within.dropped);
    ToolGrant { granted, dropped }
}

/// The agent's `allowed_tools`, else [`claude::TOOL_CEILING`].
pub fn ceiling(config: &AgentConfig) -> Vec<String> {
    config
        .allowed_tools
        .clone()
        .unwrap_or_else(|| claude::TOOL_CEILING.iter().map(|s| s.to_string()).collect())
}

/// Step `k` of `n`, and what it says.
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    pub k: u32,
    pub n: u32,
    pub text: &'a str,
}

/// What shapes one run's command line.
#[derive(Debug, Clone, Copy)]
pub struct RunArgs<'a> {
    /// `agents.<name>.extra_args`, put first.
    pub extra_args: &'a [String],
    /// Where the agent runs.
    pub cwd: &'a Path,
    /// Continue this session.
    pub session: Option<&'a str>,
    pub max_turns: Option<u32>,
    /// What this run may spend.
    pub budget_usd: Option<f64>,
    pub tools: &'a [String],
    /// The shell command this run carries (a command task's `command`, or
    /// its step); `None` for agents, and for a command run the plan already
    /// spelled out.
    pub command: Option<&'a str>,
    /// The arguments recorded in the plan when it was built.
    pub planned: &'a [String],
    /// The task's folder, where the files of [`Agent::run_files`] are
    /// written before the run (`None` while planning: not claimed yet).
    pub files_dir: Option<&'a Path>,
}

impl RunArgs<'_> {
    /// Where the run's file `name` is: in the task's folder, or said as
    /// `<task folder>/NAME` while planning.
    pub fn file(&self, name: &str) -> String {
        match self.files_dir {
            Some(d) => d.join(name).display().to_string(),
            None => format!("<task folder>/{name}"),
        }
    }
}

/// Where and when a run was, for [`Agent::find_session`].
#[derive(Debug, Clone)]
pub struct RanAt {
    /// The HOME the agent ran with (where a CLI keeps its state).
    pub home: Option<std::path::PathBuf>,
    /// Its working folder.
    pub cwd: std::path::PathBuf,
    /// When it started.
    pub started: std::time::SystemTime,
    /// What it was given on stdin.
    pub stdin: std::sync::Arc<[u8]>,
}

/// What an agent can continue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sessions {
    /// No conversation at all: each run stands alone.
    None,
    /// It has sessions, but its CLI cannot continue one headlessly, for the
    /// reason given: each run starts afresh (a session id it reports is
    /// still recorded, for a person to open by hand).
    NotResumable(&'static str),
    /// It reports its session id and continues a session given back to it.
    Resumable,
}

/// What an agent prints on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// One JSON record a line: rendered by `logs`; its answer is an agent's,
    /// checked by the validation heuristics.
    Records,
    /// A program's own text: shown as it is, not checked as an answer.
    Text,
}

/// Does this text look like a program asking a person something?
/// Headless agents must never ask; when one does, nobody will answer.
pub fn looks_interactive(line: &str) -> bool {
    let l = line.trim().to_ascii_lowercase();
    const PATTERNS: &[&str] = &[
        "do you trust the files in this folder",
        "do you want to proceed",
        "(y/n)",
        "[y/n]",
        "(yes/no)",
        "press enter to continue",
        "enter to confirm",
        "are you sure you want to",
    ];
    PATTERNS.iter().any(|p| l.contains(p)) || l.ends_with("password:") || l.ends_with("passphrase:")
}

/// The last `max` bytes of `text`, cut at a character boundary.
pub fn tail_str(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// `text` on one line, cut to `n` characters with an ellipsis.
pub fn short(text: &str, n: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > n {
        let mut s: String = one_line.chars().take(n).collect();
        s.push('…');
        s
    } else {
        one_line
    }
}

/// The argument of a tool call a person would want to see: the command, the file, the pattern.
pub fn main_argument(input: &Value) -> Option<String> {
    [
        "command",
        "file_path",
        "filePath",
        "path",
        "pattern",
        "url",
        "query",
        "description",
        "prompt",
    ]
    .iter()
    .find_map(|k| input.get(*k).and_then(Value::as_str))
    .map(|s| short(s, 80))
}

/// What the agents' unit tests share: a reader fed lines, an exit.
#[cfg(test)]
pub(crate) mod test_support {
    use super::{AgentReport, OutputReader, supervise::Exit};

    /// `lines` read by `reader`: its report, and the first reason it gave to stop.
    pub fn read(mut reader: Box<dyn OutputReader>, lines: &[&str]) -> (AgentReport, Option<String>) {
        let mut stop = None;
        for l in lines {
            stop = stop.or(reader.on_line(l.as_bytes()).stop);
        }
        (reader.into_report(), stop)
    }

    /// A process that exited with `code`, having written `stderr`.
    pub fn exit(code: i32, stderr: &str) -> Exit {
        Exit {
            code: Some(code),
            stderr_tail: stderr.to_string(),
            ..Exit::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_questions() {
        assert!(looks_interactive("Do you trust the files in this folder?"));
        assert!(looks_interactive("Overwrite? (y/N)"));
        assert!(looks_interactive("Enter passphrase:"));
        assert!(!looks_interactive("Created hello.txt"));
    }

    #[test]
    fn session_ids_that_could_be_flags_are_refused() {
        use AgentKind::{Claude, Cline};
        assert!(valid_session_id(Claude, "438cf665-4e80-47c7-8eb6-22db27c519dd"));
        assert!(!valid_session_id(Claude, "--dangerously-skip-permissions"));
        assert!(!valid_session_id(Claude, "sess-1"));
        assert!(valid_session_id(Cline, "conv_1796012089449_du4026f"));
        assert!(!valid_session_id(Cline, "--yolo"));
        assert!(!valid_session_id(Cline, ""));
    }

    #[test]
    fn every_kind_has_its_agent() {
        for kind in AgentKind::ALL {
            let agent = of(kind);
            assert_eq!(agent.kind(), kind);
            assert!(!agent.default_program().is_empty() && !agent.describe().is_empty());
        }
    }

    #[test]
    fn each_agent_grants_tools_by_its_policy() {
        let asked = ["Read".to_string(), "Bash".to_string()];
        let none = AgentConfig::default();
        let claude = of(AgentKind::Claude).grant_tools(Some(&asked), &none);
        assert_eq!(
            (claude.granted, claude.dropped),
            (vec!["Read".to_string()], vec!["Bash".to_string()])
        );
        let default = of(AgentKind::Claude).grant_tools(None, &none);
        assert!(default.granted.contains(&"Edit".to_string()) && default.dropped.is_empty());
        assert!(of(AgentKind::Claude).may_edit(&default.granted));
        assert!(!of(AgentKind::Claude).may_edit(&["Read".to_string(), "Grep".to_string()]));
        for kind in [AgentKind::Cline, AgentKind::Command] {
            let g = of(kind).grant_tools(Some(&asked), &none);
            assert!(g.granted.is_empty() && g.dropped == asked, "{kind:?}");
            assert_eq!(of(kind).dropped_tools_warning().0, "tools_not_enforced");
        }
        assert!(of(AgentKind::Cline).may_edit(&[]) && !of(AgentKind::Command).may_edit(&[]));
    }

    #[test]
    fn a_command_run_is_its_step_or_the_planned_command() {
        let planned = ["-c".to_string(), "make".to_string()];
        let run = |command| RunArgs {
            extra_args: &[],
            cwd: Path::new("/w"),
            session: None,
            max_turns: None,
            budget_usd: None,
            tools: &[],
            command,
            planned: &planned,
            files_dir: None,
        };
        let cmd = of(AgentKind::Command);
        assert_eq!(cmd.args(&run(None)), planned);
        assert_eq!(cmd.args(&run(Some("make test"))).last().unwrap(), "make test");
        let step = Some(Step {
            k: 2,
            n: 2,
            text: "make test",
        });
        assert_eq!(cmd.stdin("the prompt", step, false), "the prompt");
        assert_eq!(
            of(AgentKind::Claude).stdin("the prompt", step, false),
            "the prompt\n\nStep 2 of 2: make test"
        );
        assert_eq!(
            of(AgentKind::Claude).stdin("the prompt", step, true),
            "Step 2 of 2: make test"
        );
    }

    #[test]
    fn tail_respects_char_boundaries() {
        assert_eq!(tail_str("héllo", 4), "llo");
        assert_eq!(tail_str("abc", 10), "abc");
    }
}
