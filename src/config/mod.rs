//! The configuration: built-in defaults < `orchestrator.yaml` < `ORCHESTRATOR_*`
//! environment < command-line flags.
//!
//! Layers are merged as JSON values before one strict deserialisation, so every
//! layer obeys the same rules (unknown keys are errors everywhere, a typo never
//! passes silently) and the origin of each effective value can be reported.

mod budget;
mod dashboard;
mod load;
mod mediator;
mod notify;
mod retention;
mod roles;
mod schedules;
use crate::duration::Dur;
pub use budget::BudgetCaps;
pub use dashboard::{DEFAULT_LISTEN, DashboardConfig};
pub use load::{ConfigError, Loaded, Origin, load};
pub use mediator::{MediateWhen, MediatorConfig, MediatorKind};
pub use notify::{NotifyConfig, TelegramConfig, WebhookConfig};
pub use retention::RetentionConfig;
pub use roles::{RoleConfig, builtin_roles};
pub use schedules::{CatchUp, ScheduleConfig};
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::vocab::AgentKind;

/// How the inbox is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchMode {
    /// OS notifications (inotify, FSEvents, ReadDirectoryChangesW) plus a periodic rescan.
    Native,
    /// Polling only, for network shares that never deliver events.
    Poll,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts in all (first run included) when a task sets no `retries`.
    pub max_attempts: u32,
    pub backoff_initial: Dur,
    pub backoff_max: Dur,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff_initial: Dur::secs(5),
            backoff_max: Dur::secs(300),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// The event log is rotated once it would pass this size.
    pub rotate_bytes: u64,
    /// Rotated logs kept; older ones are deleted at rotation.
    pub keep: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            rotate_bytes: 64 * 1024 * 1024,
            keep: 10,
        }
    }
}

/// Per-agent settings: `agents.claude`, `agents.cline`, `agents.command`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// The executable; default: the agent's name looked up on PATH.
    pub command: Option<String>,
    /// Arguments added before the orchestrator's own.
    pub extra_args: Vec<String>,
    /// The ceiling: a task may ask for these tools and no others.
    pub allowed_tools: Option<Vec<String>>,
    /// Tools a task gets when it names none.
    pub default_tools: Option<Vec<String>>,
    pub max_turns: Option<u32>,
    /// Its tasks' `stall_timeout` when they set none.
    pub stall_timeout: Option<Dur>,
    /// Extra environment for the agent process.
    pub env: BTreeMap<String, String>,
    /// What its tokens cost, for an agent whose CLI reports tokens but no
    /// dollars (Codex): turns `tokens` into `cost_usd`, so `budget_usd`
    /// holds for it too.
    pub prices: Option<Prices>,
}

/// USD per million tokens (`agents.codex.prices: {input: 1.25, output: 10,
/// cached: 0.125}`); cached input costs `input` when `cached` is not given.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    pub input: f64,
    pub output: f64,
    #[serde(default)]
    pub cached: Option<f64>,
}

impl Prices {
    /// What `t` cost.
    pub fn cost(&self, t: crate::vocab::Tokens) -> f64 {
        let cached = t.cached.min(t.input);
        let per = |n: u64, price: f64| n as f64 * price / 1e6;
        per(t.input - cached, self.input) + per(cached, self.cached.unwrap_or(self.input)) + per(t.output, self.output)
    }

    /// Why these are not prices, if they are not.
    pub fn problem(&self) -> Option<String> {
        [Some(self.input), Some(self.output), self.cached]
            .into_iter()
            .flatten()
            .find(|p| !(p.is_finite() && *p >= 0.0 && *p <= 10_000.0))
            .map(|p| format!("{p} is not a price in USD per million tokens (0 to 10000)"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Tasks running at once (per daemon).
    pub max_concurrent: usize,
    /// A file is read once it has not changed for this long.
    pub debounce_ms: u64,
    /// The inbox is listed this often even when the watcher is quiet.
    pub rescan_interval: Dur,
    pub watch: WatchMode,
    pub default_agent: AgentKind,
    /// Where tasks run when they name no workdir; default: the home.
    pub default_workdir: Option<PathBuf>,
    /// A task's workdir must resolve inside one of these; default: the default workdir.
    pub allowed_roots: Vec<PathBuf>,
    /// Running time a task may use in all its attempts together.
    pub timeout: Dur,
    pub retry: RetryConfig,
    /// Default budget per task, in USD of reported agent cost.
    pub budget_usd: Option<f64>,
    pub agents: BTreeMap<String, AgentConfig>,
    /// Cap on each of `attempt-<n>.out` and `.err`; output past it is read and dropped.
    pub max_output_bytes: u64,
    /// Task files larger than this are rejected without being read.
    pub max_task_bytes: u64,
    /// Prompts are cut to this many characters.
    pub max_prompt_chars: usize,
    pub events: EventsConfig,
    /// After SIGTERM to an agent's process tree, SIGKILL follows after this long.
    pub kill_grace: Dur,
    /// On Ctrl-C / SIGTERM, running agents get this long to finish before being stopped.
    pub shutdown_grace: Dur,
    /// `progress.json` is rewritten at most this often.
    pub progress_interval: Dur,
    /// Orphaned task folders of dead daemons are looked for this often.
    pub recovery_interval: Dur,
    /// A successful run with validation warnings fails (`validation_failed`)
    /// instead of only reporting them.
    pub fail_on_validation: bool,
    /// Agent tasks (Claude, Cline) that may write to one repository (or one
    /// folder outside git) run one at a time, unless they run isolated (a
    /// worktree or a copy); the queue keeps its order and other tasks run
    /// meanwhile. Command tasks are never held back.
    pub one_writer_per_repo: bool,
    /// Named presets a task picks with `role:` (built-ins: [`builtin_roles`];
    /// the file can change their fields or add roles).
    pub roles: std::sync::Arc<BTreeMap<String, RoleConfig>>,
    /// What the daemon removes by itself (off by default).
    pub retention: RetentionConfig,
    /// Where people are told about tasks (nowhere by default).
    pub notify: NotifyConfig,
    /// A language model that structures loose task files (off by default).
    pub mediator: Option<MediatorConfig>,
    /// Characters of earlier tasks' digest put before a follow-up's prompt
    /// (about four a token; 0: none).
    pub context_budget: usize,
    /// Times a task may be cut short from outside (its daemon killed or
    /// stopped) before it fails `interrupted`; these use none of its attempts.
    pub max_interruptions: u32,
    /// `orchestrator dashboard`: its address and access token.
    pub dashboard: DashboardConfig,
    /// Recurring tasks: each drops a task file into the inbox when its cron fires.
    pub schedules: Vec<ScheduleConfig>,
    /// Spend caps for the whole home, a day and a month (off by default).
    pub budget: BudgetCaps,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_concurrent: 2,
            debounce_ms: 200,
            rescan_interval: Dur::secs(2),
            watch: WatchMode::Native,
            default_agent: AgentKind::Claude,
            default_workdir: None,
            allowed_roots: Vec::new(),
            timeout: Dur::secs(30 * 60),
            retry: RetryConfig::default(),
            budget_usd: None,
            agents: BTreeMap::new(),
            max_output_bytes: 16 * 1024 * 1024,
            max_task_bytes: 1024 * 1024,
            max_prompt_chars: 32_000,
            events: EventsConfig::default(),
            kill_grace: Dur::secs(5),
            shutdown_grace: Dur::secs(10),
            progress_interval: Dur::millis(500),
            recovery_interval: Dur::secs(10),
            fail_on_validation: false,
            one_writer_per_repo: true,
            roles: std::sync::Arc::new(builtin_roles()),
            retention: RetentionConfig::default(),
            notify: NotifyConfig::default(),
            mediator: None,
            context_budget: 8000,
            max_interruptions: 10,
            dashboard: DashboardConfig::default(),
            schedules: Vec::new(),
            budget: BudgetCaps::default(),
        }
    }
}

impl Config {
    /// The redactor for this config: secret-named variables of the process
    /// and of `agents.<name>.env`, and the notifiers' and the mediator's keys
    /// whatever they are called.
    pub fn redactor(&self) -> crate::redact::Redactor {
        crate::redact::Redactor::new(self.agents.values().flat_map(|a| a.env.clone()))
            .and(self.notify.secrets())
            .and(self.mediator.iter().flat_map(MediatorConfig::secrets))
            .and(self.dashboard.secrets())
    }

    pub fn agent(&self, kind: AgentKind) -> AgentConfig {
        self.agents.get(kind.name()).cloned().unwrap_or_default()
    }

    /// The default workdir, resolved against the home.
    pub fn default_workdir(&self, home: &Path) -> PathBuf {
        match &self.default_workdir {
            Some(p) => home.join(expand_tilde(p)),
            None => home.to_path_buf(),
        }
    }

    /// Allowed roots, resolved against the home; the default workdir if none are set.
    pub fn allowed_roots(&self, home: &Path) -> Vec<PathBuf> {
        if self.allowed_roots.is_empty() {
            vec![self.default_workdir(home)]
        } else {
            self.allowed_roots.iter().map(|p| home.join(expand_tilde(p))).collect()
        }
    }

    pub fn debounce(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.debounce_ms)
    }
}

/// `~/x` -> `$HOME/x` (`%USERPROFILE%` on Windows).
pub fn expand_tilde(p: &Path) -> PathBuf {
    let Ok(rest) = p.strip_prefix("~") else {
        return p.to_path_buf();
    };
    let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE"));
    match home {
        Some(h) => PathBuf::from(h).join(rest),
        None => p.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_turn_tokens_into_dollars_and_bad_ones_are_refused() {
        let p = Prices {
            input: 1.25,
            output: 10.0,
            cached: Some(0.125),
        };
        let t = crate::vocab::Tokens {
            input: 1_000_000,
            output: 100_000,
            cached: 400_000,
        };
        assert!((p.cost(t) - (0.75 + 0.05 + 1.0)).abs() < 1e-12);
        let no_cache_price = Prices { cached: None, ..p };
        assert!((no_cache_price.cost(t) - (1.25 + 1.0)).abs() < 1e-12);
        assert!(Prices { input: -1.0, ..p }.problem().is_some());
        assert!(Prices { output: f64::NAN, ..p }.problem().is_some());
        assert!(p.problem().is_none());
    }

    fn load_str(yaml: &str, env: &[(&str, &str)], flags: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("orchestrator.yaml");
        std::fs::write(&f, yaml).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let flags: Vec<_> = flags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        load(&f, None, env, &flags)
    }

    #[test]
    fn the_redactor_knows_the_notifiers_and_the_mediators_keys_whatever_their_names() {
        // SAFETY: a variable of this test's own, set before anything reads it.
        unsafe { std::env::set_var("ORCH_UNIT_TEST_MEDIATOR_CRED", "cred-value-0123456789") };
        let mut c = Config {
            mediator: Some(MediatorConfig {
                api_key_env: Some("ORCH_UNIT_TEST_MEDIATOR_CRED".into()),
                ..MediatorConfig::default()
            }),
            ..Config::default()
        };
        c.notify.webhook = Some(WebhookConfig {
            secret: Some("hook-secret-0123456789".into()),
            ..WebhookConfig::default()
        });
        let text = c
            .redactor()
            .redact("cred-value-0123456789 and hook-secret-0123456789")
            .into_owned();
        assert!(!text.contains("cred-value") && !text.contains("hook-secret"), "{text}");
    }

    #[test]
    fn layers_override_in_order_and_record_origins() {
        let l = load_str(
            "max_concurrent: 4\nretry:\n  max_attempts: 5\ntimeout: 10m\n",
            &[
                ("ORCHESTRATOR_MAX_CONCURRENT", "6"),
                ("ORCHESTRATOR_RETRY__BACKOFF_INITIAL", "1s"),
                ("ORCHESTRATOR_HOME", "/x"),
            ],
            &[("timeout", "1m")],
        )
        .unwrap();
        assert_eq!(l.config.max_concurrent, 6);
        assert_eq!(l.config.retry.max_attempts, 5);
        assert_eq!(l.config.retry.backoff_initial, Dur::secs(1));
        assert_eq!(l.config.retry.backoff_max, Dur::secs(300));
        assert_eq!(l.config.timeout, Dur::secs(60));
        assert_eq!(l.origins["max_concurrent"], Origin::Env);
        assert_eq!(l.origins["retry.max_attempts"], Origin::File);
        assert_eq!(l.origins["timeout"], Origin::Flag);
        assert!(!l.origins.contains_key("debounce_ms"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = load_str("max_concurent: 4\n", &[], &[]).unwrap_err().to_string();
        assert!(e.contains("max_concurent"), "{e}");
        let e = load_str("max_concurrent: 0\n", &[], &[]).unwrap_err().to_string();
        assert!(e.contains("max_concurrent must be"), "{e}");
        let e = load_str("timeout: soon\n", &[], &[]).unwrap_err().to_string();
        assert!(e.contains("not a duration"), "{e}");
        let e = load_str("agents:\n  gpt: {}\n", &[], &[]).unwrap_err().to_string();
        assert!(e.contains("unknown agent"), "{e}");
        let e = load_str("agents:\n  codex:\n    prices: {input: -1, output: 2}\n", &[], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("agents.codex.prices") && e.contains("not a price"), "{e}");
        let e = load_str("agents:\n  claude:\n    stall_timeout: 0s\n", &[], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("stall_timeout must be more than 0"), "{e}");
        let e = load_str("roles:\n  r:\n    agent: [codex, codex]\n", &[], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("roles.r.agent") && e.contains("twice"), "{e}");
        assert!(load_str("roles:\n  r:\n    agent: [claude, codex]\n", &[], &[]).is_ok());
        let e = load_str("", &[("ORCHESTRATOR_NOPE", "1")], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope"), "{e}");
        let e = load_str(": : :\n", &[], &[]).unwrap_err().to_string();
        assert!(e.contains("not valid YAML"), "{e}");
    }

    #[test]
    fn agents_section_parses() {
        let l = load_str(
            "agents:\n  claude:\n    command: /opt/claude\n    extra_args: [--model, opus]\n",
            &[],
            &[],
        )
        .unwrap();
        let a = l.config.agent(AgentKind::Claude);
        assert_eq!(a.command.as_deref(), Some("/opt/claude"));
        assert_eq!(a.extra_args, vec!["--model", "opus"]);
        assert_eq!(l.config.agent(AgentKind::Command), AgentConfig::default());
    }

    #[test]
    fn values_that_would_fail_every_task_are_refused() {
        for yaml in [
            "timeout: 0s\n",
            "max_task_bytes: 0\n",
            "max_prompt_chars: 0\n",
            "recovery_interval: 0s\n",
        ] {
            let e = load_str(yaml, &[], &[]).expect_err(yaml).to_string();
            assert!(e.contains("must be more than 0"), "{yaml}: {e}");
        }
    }

    #[test]
    fn an_agents_own_marks_are_not_config_keys() {
        let env = [
            ("ORCHESTRATOR_TASK_ID", "01abc-x"),
            ("ORCHESTRATOR_ATTEMPT", "2"),
            ("ORCHESTRATOR_DAEMON_PID", "7"),
        ];
        assert!(
            load_str("", &env, &[]).is_ok(),
            "an orchestrator run by an agent still loads its config"
        );
    }
}
