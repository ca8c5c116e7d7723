//! Task + config -> plan: the exact argv, workdir and limits a task runs with.
//!
//! Building a plan is pure (the workdir is resolved before), so `plan FILE` can
//! print exactly what would run. The plan is written to `plan.json` when the
//! task is claimed and is what a recovered task runs with: the config in force
//! for a task is the one it started with.

use crate::agents;
use crate::config::{AgentKind, Config};
use crate::duration::Dur;
use crate::task::{Isolation, Mode, TaskSpec};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub schema_version: u32,
    pub id: String,
    pub title: String,
    pub source_file: String,
    /// How the task was understood: `parser` (deterministic) or `mediator`.
    pub parsed_by: String,
    pub agent: AgentKind,
    /// The agents still to fall through to, in order (`agent: [claude, codex]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<AgentKind>,
    /// The agents the task fell through from, in order: the plan is the
    /// one of the agent it went on with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub switched_from: Vec<AgentKind>,
    /// The tools the task asked for (`None`: it named none), kept to grant
    /// them again to an agent it falls through to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools_asked: Option<Vec<String>>,
    /// The task's own `max_turns` and `stall_timeout` (its role's included),
    /// kept to fill in the next agent's defaults where it set none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_turns_asked: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_timeout_asked: Option<Dur>,
    pub prompt: String,
    pub prompt_truncated: bool,
    pub workdir: PathBuf,
    /// Program and arguments, exactly as spawned (the prompt goes on stdin).
    pub program: String,
    pub args: Vec<String>,
    /// Names of the extra environment variables set from the config (values are
    /// not recorded: they are often secrets).
    pub env_keys: Vec<String>,
    pub allowed_tools: Vec<String>,
    /// Tools the task asked for that the agent's ceiling does not allow.
    pub tools_dropped: Vec<String>,
    pub max_turns: Option<u32>,
    #[serde(default)]
    pub max_tool_calls: Option<u32>,
    pub budget_usd: Option<f64>,
    /// Tokens (input and output) the task may use over all its runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_tokens: Option<u64>,
    pub timeout: Dur,
    /// The agent is stopped (and tried again) when it prints nothing this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_timeout: Option<Dur>,
    pub max_attempts: u32,
    pub backoff_initial: Dur,
    pub backoff_max: Dur,
    pub max_output_bytes: u64,
    pub kill_grace: Dur,
    pub priority: i64,
    #[serde(default)]
    pub mode: Mode,
    pub parent_task_id: Option<String>,
    pub turn_of: Option<String>,
    pub queued_at: Option<String>,
    /// The multi-step plan (empty: one step, the prompt).
    #[serde(default)]
    pub steps: Vec<String>,
    /// Start in this agent session (`resume`, `reply`); later steps continue it.
    #[serde(default)]
    pub resume_session: Option<String>,
    #[serde(default = "one")]
    pub start_step: u32,
    /// `agents.<name>.extra_args`, kept to rebuild the argv of later steps.
    #[serde(default)]
    pub extra_args: Vec<String>,
    /// Where the agent works: in the workdir, a git worktree, or a copy.
    #[serde(default)]
    pub isolation: Isolation,
    /// The role the task named; its settings are already in this plan.
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub success_criteria: Vec<String>,
    /// What the parser read from a loose note, and the words that decided each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intent: Vec<crate::task::intent::Decision>,
    /// The mediator's part, when it saw the task: used, or why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mediation: Option<crate::vocab::Mediation>,
    /// The digest of earlier tasks put before the prompt, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<crate::context::ContextUsed>,
    /// The command that says the work is done, and its rounds (`verify:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<crate::task::Verify>,
    /// While a verify round asks the agent again: what it is told (the
    /// check's exit code and output), instead of the prompt.
    #[serde(skip)]
    pub verify_feedback: Option<String>,
}

impl Plan {
    pub fn guarded(&self) -> bool {
        self.mode == Mode::Guarded
    }
}

fn one() -> u32 {
    1
}

/// One run of the agent: what is spawned and what goes on its stdin.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub program: String,
    pub args: Vec<String>,
    pub stdin: String,
    /// Environment of this run ([`agents::Agent::run_env`]).
    pub env: Vec<(String, String)>,
    /// Files written into the task's folder before it ([`agents::Agent::run_files`]).
    pub files: Vec<(&'static str, String)>,
}

impl Plan {
    /// The prompt with the digest of earlier tasks before it, if any.
    pub fn full_prompt(&self) -> String {
        match &self.context {
            Some(c) => crate::context::with_prompt(&c.text, &self.prompt),
            None => self.prompt.clone(),
        }
    }

    /// Steps to run: the plan's steps, or one (the prompt).
    pub fn step_count(&self) -> u32 {
        self.steps.len().max(1) as u32
    }

    /// The invocation for step `k` (1-based), continuing `session` if given:
    /// the agent's argv and stdin for that run (see [`agents::Agent::args`] and
    /// [`agents::Agent::stdin`]). `cwd` is where the agent runs: the workdir,
    /// or its place in the task's worktree or copy. `budget_left` is what this
    /// run may spend: the task's budget less what its earlier runs spent.
    pub fn invocation(
        &self,
        k: u32,
        session: Option<&str>,
        cwd: &std::path::Path,
        budget_left: Option<f64>,
        files_dir: Option<&std::path::Path>,
    ) -> Invocation {
        let agent = agents::of(self.agent);
        let step = self.steps.get(k as usize - 1).map(String::as_str);
        let run = agents::RunArgs {
            extra_args: &self.extra_args,
            cwd,
            session,
            max_turns: self.max_turns,
            budget_usd: budget_left,
            tools: &self.allowed_tools,
            command: step,
            planned: &self.args,
            files_dir,
        };
        let args = agent.args(&run);
        let step = step.map(|text| agents::Step {
            k,
            n: self.step_count(),
            text,
        });
        // A verify round's question goes on in the session; an agent that
        // starts afresh gets the task again with it.
        let stdin = match &self.verify_feedback {
            Some(fb) if session.is_some() => fb.clone(),
            Some(fb) => format!("{}\n\n{fb}", self.full_prompt()),
            None => agent.stdin(&self.full_prompt(), step, session.is_some()),
        };
        Invocation {
            program: self.program.clone(),
            args,
            stdin,
            env: agent.run_env(&run),
            files: agent.run_files(&run),
        }
    }
}

impl Plan {
    /// This plan on the next agent of its list, or why it cannot go there.
    /// Its tools are granted again by the next agent's policy; the switch is
    /// refused when that would take away a tool this agent had, or run an
    /// agent that cannot hold tools to the list where this one could, or
    /// when the plan needs sessions (steps) the next agent cannot continue.
    pub fn switched(&self, config: &Config) -> Result<Plan, (AgentKind, String)> {
        let next = *self
            .fallback
            .first()
            .ok_or((self.agent, "no agent left in its list".to_string()))?;
        let (from, to) = (agents::of(self.agent), agents::of(next));
        let refuse = |why: String| Err((next, why));
        if self.step_count() > 1 && to.sessions() != agents::Sessions::Resumable {
            return refuse(format!(
                "{} cannot continue a session, and the task has steps",
                next.name()
            ));
        }
        if from.enforces_tools() && !to.enforces_tools() {
            return refuse(format!(
                "{} cannot hold an agent to the task's tools, and {} did",
                next.name(),
                self.agent.name()
            ));
        }
        let cfg = config.agent(next);
        let grant = to.grant_tools(self.tools_asked.as_deref(), &cfg);
        let lost: Vec<&String> = self
            .allowed_tools
            .iter()
            .filter(|t| !grant.granted.contains(t))
            .collect();
        if !lost.is_empty() && from.enforces_tools() {
            return refuse(format!(
                "{} would not have {} (its tool policy; see docs/agents.md)",
                next.name(),
                lost.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        let program = cfg.command.clone().unwrap_or_else(|| to.default_program().to_string());
        // The task's limits, else the next agent's own defaults.
        let max_turns = self.max_turns_asked.or(cfg.max_turns);
        let stall_timeout = self.stall_timeout_asked.or(cfg.stall_timeout);
        let args = to.args(&agents::RunArgs {
            extra_args: &cfg.extra_args,
            cwd: &self.workdir,
            session: None,
            max_turns,
            budget_usd: self.budget_usd,
            tools: &grant.granted,
            command: None,
            planned: &[],
            files_dir: None,
        });
        let mut switched_from = self.switched_from.clone();
        switched_from.push(self.agent);
        Ok(Plan {
            agent: next,
            fallback: self.fallback[1..].to_vec(),
            switched_from,
            max_turns,
            stall_timeout,
            program,
            args,
            env_keys: cfg.env.keys().cloned().collect(),
            allowed_tools: grant.granted,
            tools_dropped: grant.dropped,
            extra_args: cfg.extra_args.clone(),
            // A session belongs to the agent that had it.
            resume_session: None,
            ..self.clone()
        })
    }
}

impl Plan {
    /// The agents of its list it could fall through to, as [`Plan::switched`]
    /// would decide ([`AgentKind::bit`]s): what lets the queue start it while
    /// its own agent is paused.
    pub fn reachable_fallbacks(&self, config: &Config) -> u8 {
        let mut mask = 0;
        let mut plan = self.clone();
        while !plan.fallback.is_empty() {
            match plan.switched(config) {
                Ok(next) => {
                    mask |= next.agent.bit();
                    plan = next;
                }
                Err((skipped, _)) => plan.fallback.retain(|a| *a != skipped),
            }
        }
        mask
    }
}

/// Everything `build` needs besides the task.
pub struct Context<'a> {
    pub id: &'a str,
    pub source_file: &'a str,
    pub workdir: PathBuf,
    pub queued_at: Option<String>,
}

impl Context<'_> {
    fn workdir_in_git(&self) -> bool {
        crate::git::repository_of(&self.workdir).is_some()
    }
}

pub fn build(spec: &TaskSpec, config: &Config, cx: Context) -> Plan {
    let agent = agents::of(spec.agent);
    let agent_cfg = config.agent(spec.agent);
    let agents::ToolGrant {
        granted: allowed_tools,
        dropped: tools_dropped,
    } = agent.grant_tools(spec.allowed_tools.as_deref(), &agent_cfg);
    let max_turns = spec.max_turns.or(agent_cfg.max_turns);
    let budget_usd = spec.budget_usd.or(config.budget_usd);
    let max_attempts = spec.retries.map_or(config.retry.max_attempts, |r| r + 1);
    let isolation = match (spec.mode, spec.isolation) {
        (_, Some(i)) => i,
        // Guarded: a worktree where the workdir is in a repository (a few stats tell), else a copy.
        (Mode::Guarded, None) if cx.workdir_in_git() => Isolation::Worktree,
        (Mode::Guarded, None) => Isolation::Copy,
        (Mode::Apply, None) => Isolation::None,
    };
    let program = agent_cfg
        .command
        .clone()
        .unwrap_or_else(|| agent.default_program().to_string());
    // A command task's command is its `command` field, else its prompt.
    let command = (spec.agent == AgentKind::Command).then(|| spec.command.as_deref().unwrap_or(&spec.prompt));
    let args = agent.args(&agents::RunArgs {
        extra_args: &agent_cfg.extra_args,
        cwd: &cx.workdir,
        session: spec.session.as_deref(),
        max_turns,
        budget_usd,
        tools: &allowed_tools,
        command,
        planned: &[],
        files_dir: None,
    });

    Plan {
        schema_version: 1,
        id: cx.id.to_string(),
        title: spec.title.clone(),
        source_file: cx.source_file.to_string(),
        parsed_by: "parser".into(),
        agent: spec.agent,
        fallback: spec.fallback.clone(),
        switched_from: Vec::new(),
        tools_asked: spec.allowed_tools.clone(),
        max_turns_asked: spec.max_turns,
        stall_timeout_asked: spec.stall_timeout.map(Dur),
        prompt: spec.prompt.clone(),
        prompt_truncated: spec.prompt_truncated,
        workdir: cx.workdir,
        program,
        args,
        env_keys: agent_cfg.env.keys().cloned().collect(),
        allowed_tools,
        tools_dropped,
        max_turns,
        max_tool_calls: spec.max_tool_calls,
        budget_usd,
        budget_tokens: spec.budget_tokens,
        timeout: spec.timeout.map(Dur).unwrap_or(config.timeout),
        stall_timeout: spec.stall_timeout.map(Dur).or(agent_cfg.stall_timeout),
        max_attempts,
        backoff_initial: config.retry.backoff_initial,
        backoff_max: config.retry.backoff_max,
        max_output_bytes: config.max_output_bytes,
        kill_grace: config.kill_grace,
        priority: spec.priority,
        mode: spec.mode,
        parent_task_id: spec.parent_task_id.clone(),
        turn_of: spec.turn_of.clone(),
        queued_at: cx.queued_at,
        steps: spec.steps.clone(),
        resume_session: spec.session.clone(),
        start_step: spec.start_step,
        extra_args: agent_cfg.extra_args.clone(),
        isolation,
        role: spec.role.clone(),
        success_criteria: spec.success_criteria.clone(),
        intent: spec.intent.clone(),
        mediation: None,
        context: None,
        verify: spec.verify.clone(),
        verify_feedback: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::parse::{Limits, parse};

    fn spec(text: &str) -> TaskSpec {
        parse(
            "t.md",
            text.as_bytes(),
            &Limits {
                max_bytes: 1 << 20,
                max_prompt_chars: 1000,
                default_agent: AgentKind::Claude,
                roles: Default::default(),
            },
        )
        .unwrap()
    }
    fn cx() -> Context<'static> {
        Context {
            id: "id",
            source_file: "t.md",
            workdir: PathBuf::from("/w"),
            queued_at: None,
        }
    }

    #[test]
    fn tools_are_capped_by_the_ceiling_and_shell_is_off_by_default() {
        let s = spec("---\nallowed_tools: [Read, Edit, Bash, \"Bash(cargo test:*)\"]\n---\nhi");
        let p = build(&s, &Config::default(), cx());
        assert_eq!(p.allowed_tools, vec!["Read", "Edit"]);
        assert_eq!(p.tools_dropped, vec!["Bash", "Bash(cargo test:*)"]);
        let mut c = Config::default();
        c.agents.insert(
            "claude".into(),
            crate::config::AgentConfig {
                allowed_tools: Some(vec!["Read".into(), "Bash".into()]),
                ..Default::default()
            },
        );
        let p = build(&s, &c, cx());
        assert_eq!(p.allowed_tools, vec!["Read", "Bash", "Bash(cargo test:*)"]);
        assert_eq!(
            p.args.iter().rev().take(3).rev().collect::<Vec<_>>(),
            ["Read", "Bash", "Bash(cargo test:*)"]
        );
    }

    #[test]
    fn limits_come_from_task_then_config() {
        let p = build(
            &spec("---\nretries: 0\ntimeout: 1m\nmax_turns: 3\n---\nhi"),
            &Config::default(),
            cx(),
        );
        assert_eq!((p.max_attempts, p.timeout, p.max_turns), (1, Dur::secs(60), Some(3)));
        assert!(p.args.windows(2).any(|w| w == ["--max-turns", "3"]));
        let p = build(&spec("hi"), &Config::default(), cx());
        assert_eq!(
            (p.max_attempts, p.timeout, p.program.as_str()),
            (3, Dur::secs(1800), "claude")
        );
        assert!(!p.args.contains(&"hi".to_string()), "the prompt is never an argument");
    }

    #[test]
    fn steps_run_in_one_session() {
        let p = build(
            &spec("---\nsteps: [Read the code, Fix it]\n---\nThe login bug"),
            &Config::default(),
            cx(),
        );
        assert_eq!(p.step_count(), 2);
        let first = p.invocation(1, None, &p.workdir, None, None);
        assert_eq!(first.stdin, "The login bug\n\nStep 1 of 2: Read the code");
        assert!(!first.args.iter().any(|a| a.starts_with("--resume")));
        let second = p.invocation(2, Some("sess-1"), &p.workdir, None, None);
        assert_eq!(second.stdin, "Step 2 of 2: Fix it");
        let resume = second
            .args
            .iter()
            .position(|a| a == "--resume=sess-1")
            .expect("--resume");
        let tools = second.args.iter().position(|a| a == "--allowedTools").unwrap();
        assert!(resume < tools, "--resume before the variadic tools");
        let cmd = build(
            &spec("---\nagent: command\nsteps: [make, make test]\n---\n"),
            &Config::default(),
            cx(),
        );
        assert_eq!(
            cmd.invocation(2, None, &cmd.workdir, None, None).args.last().unwrap(),
            "make test"
        );
    }

    #[test]
    fn command_tasks_run_through_the_shell() {
        let p = build(
            &spec("---\nagent: command\ncommand: echo 'a b'\n---\n"),
            &Config::default(),
            cx(),
        );
        if cfg!(unix) {
            assert_eq!(
                (p.program.as_str(), p.args.clone()),
                ("sh", vec!["-c".to_string(), "echo 'a b'".to_string()])
            );
        }
    }

    #[test]
    fn a_plan_falls_through_to_the_next_agent_only_with_what_it_had() {
        let config = Config::default();
        let read = build(
            &spec("---\nagent: [claude, codex]\nallowed_tools: [Read, Grep]\n---\nlook\n"),
            &config,
            cx(),
        );
        let next = read.switched(&config).unwrap();
        assert_eq!((next.agent, next.fallback.clone()), (AgentKind::Codex, vec![]));
        assert_eq!(next.allowed_tools, ["Read", "Grep"]);
        assert_eq!(next.program, "codex");
        assert!(
            next.args.contains(&"--sandbox=read-only".to_string()),
            "{:?}",
            next.args
        );
        assert_eq!(
            (next.workdir.clone(), next.prompt.clone()),
            (read.workdir.clone(), read.prompt.clone())
        );
        assert!(next.switched(&config).is_err(), "nothing left");

        // Codex cannot edit without the shell, which the ceiling leaves out.
        let edits = build(&spec("---\nagent: [claude, codex]\n---\nfix it\n"), &config, cx());
        let (to, why) = edits.switched(&config).unwrap_err();
        assert_eq!(to, AgentKind::Codex);
        assert!(why.contains("Edit"), "{why}");

        // Never to an agent that cannot hold to the tools at all.
        let wide = build(
            &spec("---\nagent: [claude, cline]\nallowed_tools: [Read]\n---\nlook\n"),
            &config,
            cx(),
        );
        assert!(wide.switched(&config).unwrap_err().1.contains("cannot hold"));

        // A session is the agent's own: it is not carried over.
        let resumed = build(
            &spec(
                "---\nagent: [claude, codex]\nallowed_tools: [Read]\nsession: 123e4567-e89b-42d3-a456-426614174000\n---\ngo on\n",
            ),
            &config,
            cx(),
        );
        assert_eq!(resumed.switched(&config).unwrap().resume_session, None);
    }

    #[test]
    fn a_switched_plan_takes_the_next_agents_limits_where_the_task_set_none() {
        let mut config = Config::default();
        for (name, turns) in [("claude", 50), ("codex", 7)] {
            config.agents.insert(
                name.into(),
                crate::config::AgentConfig {
                    max_turns: Some(turns),
                    ..Default::default()
                },
            );
        }
        let own = build(
            &spec("---\nagent: [claude, codex]\nallowed_tools: [Read]\n---\nx\n"),
            &config,
            cx(),
        );
        assert_eq!(own.max_turns, Some(50));
        assert_eq!(own.switched(&config).unwrap().max_turns, Some(7), "Codex's default");
        let asked = build(
            &spec("---\nagent: [claude, codex]\nallowed_tools: [Read]\nmax_turns: 3\n---\nx\n"),
            &config,
            cx(),
        );
        assert_eq!(asked.switched(&config).unwrap().max_turns, Some(3), "the task's own");
    }

    #[test]
    fn only_the_agents_a_task_could_switch_to_let_it_start_past_a_pause() {
        let config = Config::default();
        let read = build(
            &spec("---\nagent: [claude, codex, cline]\nallowed_tools: [Read]\n---\nx\n"),
            &config,
            cx(),
        );
        assert_eq!(read.reachable_fallbacks(&config), AgentKind::Codex.bit(), "never Cline");
        // Edits, and no shell for Codex: it could switch nowhere.
        let edits = build(&spec("---\nagent: [claude, codex]\n---\nfix it\n"), &config, cx());
        assert_eq!(edits.reachable_fallbacks(&config), 0);
    }
}
