//! The real agent CLIs, pinned in `agent-clis/` and installed by
//! `bash agent-clis/install`, run offline against [`super::mock_api`].
//!
//! A test that cannot find a CLI prints a `SKIPPED` line and passes, except
//! under CI (`CI` set), where a missing CLI fails the test: CI installs them.
//! Everything a CLI sends goes to 127.0.0.1: the model API to the mock, every
//! other host through a proxy that refuses, with telemetry and updates off.
#![allow(dead_code)]

use super::mock_api::{MockApi, RefusingProxy};
use super::{TestHome, config_with};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The model Codex is configured with (unknown to it: it says so once, as a
/// warning, and goes on).
pub const CODEX_MODEL: &str = "mock-codex-model";

/// Which CLI.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cli {
    Claude,
    Cline,
    Codex,
    Gemini,
    Opencode,
}

impl Cli {
    fn name(self) -> &'static str {
        match self {
            Cli::Claude => "claude",
            Cli::Cline => "cline",
            Cli::Codex => "codex",
            Cli::Gemini => "gemini",
            Cli::Opencode => "opencode",
        }
    }
}

/// The CLI's path: `ORCH_CLAUDE_BIN` / `ORCH_CLINE_BIN`, else the pinned install.
/// `None` (after printing SKIPPED) when it is not installed outside CI.
pub fn find(cli: Cli, test: &str) -> Option<PathBuf> {
    let var = format!("ORCH_{}_BIN", cli.name().to_uppercase());
    let path = std::env::var_os(&var).map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("agent-clis/node_modules/.bin")
            .join(cli.name())
    });
    if path.exists() {
        return Some(path);
    }
    let msg = format!(
        "the real {} CLI is not installed at {} (run `bash agent-clis/install`, or set {var})",
        cli.name(),
        path.display()
    );
    super::skip(test, &msg);
    None
}

/// A home whose daemon runs a real CLI against a scripted mock API.
pub struct RealHome {
    pub home: TestHome,
    pub api: MockApi,
    pub proxy: RefusingProxy,
    pub cli: PathBuf,
    /// The CLI's own HOME (sessions, settings), apart from the test's.
    pub cli_home: PathBuf,
}

impl RealHome {
    /// Claude Code against `api`, with `top` lines added to the config and
    /// `claude` lines (indented by 4) to `agents.claude`.
    pub fn claude(cli: PathBuf, api: MockApi, top: &str, claude: &str) -> Self {
        let yaml = config_with(top, claude).replace(super::fake_agent(), &cli.display().to_string());
        Self::new(cli, api, &yaml)
    }

    /// Cline against `api` (configured as its `openai-compatible` provider).
    pub fn cline(cli: PathBuf, api: MockApi, top: &str) -> Self {
        let yaml = format!("{}  cline:\n    command: {}\n", config_with(top, ""), cli.display());
        let this = Self::new(cli, api, &yaml);
        this.configure_cline();
        this
    }

    /// Codex against `api` (a Responses API provider of its own config,
    /// `~/.codex/config.toml`), with `top` lines added to the config and
    /// `codex` lines (indented by 4) to `agents.codex`.
    pub fn codex(cli: PathBuf, api: MockApi, top: &str, codex: &str) -> Self {
        let yaml = format!(
            "{}  codex:\n    command: {}\n{codex}",
            config_with(top, ""),
            cli.display()
        );
        let this = Self::new(cli, api, &yaml);
        this.configure_codex(&this.api);
        this
    }

    /// The Gemini CLI against `api` (`GOOGLE_GEMINI_BASE_URL`, an API key),
    /// with `top` lines added to the config and `gemini` lines (indented by
    /// 4) to `agents.gemini`.
    pub fn gemini(cli: PathBuf, api: MockApi, top: &str, gemini: &str) -> Self {
        let yaml = format!(
            "{}  gemini:\n    command: {}\n{gemini}",
            config_with(top, ""),
            cli.display()
        );
        let this = Self::new(cli, api, &yaml);
        let dir = this.cli_home.join(".gemini");
        std::fs::create_dir_all(&dir).unwrap();
        // An API key as its login; one model (else each turn first asks a
        // router model which to use); two tries of a request of its own (the
        // default is ten, with backoff): a test of an error needs no more. Its
        // usage statistics are the user's to turn off, as the docs say.
        std::fs::write(
            dir.join("settings.json"),
            r#"{"security": {"auth": {"selectedType": "gemini-api-key"}}, "model": {"name": "gemini-2.5-pro"}, "general": {"maxAttempts": 2}, "privacy": {"usageStatisticsEnabled": false}}"#,
        )
        .unwrap();
        this
    }

    /// opencode against `api` (an OpenAI-compatible provider of its own
    /// config, `~/.config/opencode/opencode.json`), with `top` lines added to
    /// the config and `opencode` lines (indented by 4) to `agents.opencode`.
    pub fn opencode(cli: PathBuf, api: MockApi, top: &str, opencode: &str) -> Self {
        let yaml = format!(
            "{}  opencode:\n    command: {}\n{opencode}",
            config_with(top, ""),
            cli.display()
        );
        let this = Self::new(cli, api, &yaml);
        let dir = this.cli_home.join(".config/opencode");
        std::fs::create_dir_all(&dir).unwrap();
        let config = serde_json::json!({
            "provider": {"mock": {"npm": "@ai-sdk/openai-compatible", "name": "Mock",
                "options": {"baseURL": format!("{}/v1", this.api.base_url()), "apiKey": "sk-test-not-a-real-key"},
                "models": {super::mock_api::MODEL: {"name": "Mock"}}}},
            "model": format!("mock/{}", super::mock_api::MODEL),
        });
        std::fs::write(dir.join("opencode.json"), config.to_string()).unwrap();
        this
    }

    /// Codex's own config in this home's CLI HOME: `api` as its provider.
    pub fn configure_codex(&self, api: &MockApi) {
        let dir = self.cli_home.join(".codex");
        std::fs::create_dir_all(&dir).unwrap();
        // One retry of its own (the default is five, with backoff): a test of
        // an error needs no more.
        let config = format!(
            "model = \"{}\"\nmodel_provider = \"mock\"\n\n[model_providers.mock]\nname = \"mock\"\nbase_url = \"{}/v1\"\nenv_key = \"ORCH_TEST_OPENAI_KEY\"\nwire_api = \"responses\"\nrequest_max_retries = 1\nstream_max_retries = 1\n",
            CODEX_MODEL,
            api.base_url()
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
    }

    fn new(cli: PathBuf, api: MockApi, yaml: &str) -> Self {
        let home = TestHome::with_config(yaml);
        let cli_home = home.path.join("cli-home");
        std::fs::create_dir_all(&cli_home).unwrap();
        let proxy = RefusingProxy::start();
        Self {
            home,
            api,
            proxy,
            cli,
            cli_home,
        }
    }

    /// The environment every CLI process of this home gets: offline, quiet,
    /// its own HOME.
    pub fn env(&self) -> Vec<(String, String)> {
        let p = self.proxy.url();
        let mut v: Vec<(String, String)> = [
            ("HOME", self.cli_home.display().to_string()),
            ("XDG_CONFIG_HOME", self.cli_home.join(".config").display().to_string()),
            ("ANTHROPIC_BASE_URL", self.api.base_url()),
            ("ANTHROPIC_API_KEY", "sk-ant-test-not-a-real-key".to_string()),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".to_string()),
            ("DISABLE_TELEMETRY", "1".to_string()),
            ("DISABLE_AUTOUPDATER", "1".to_string()),
            ("DISABLE_ERROR_REPORTING", "1".to_string()),
            ("CLAUDE_CODE_MAX_RETRIES", "1".to_string()),
            ("HTTP_PROXY", p.clone()),
            ("HTTPS_PROXY", p.clone()),
            ("http_proxy", p.clone()),
            ("https_proxy", p.clone()),
            ("ALL_PROXY", p),
            ("NO_PROXY", "127.0.0.1,localhost".to_string()),
            ("no_proxy", "127.0.0.1,localhost".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        // A hub of this home's own, never one another test (or the user) started.
        v.push(("CODEX_HOME".into(), self.cli_home.join(".codex").display().to_string()));
        v.push(("ORCH_TEST_OPENAI_KEY".into(), "sk-test-not-a-real-key".into()));
        v.push(("GOOGLE_GEMINI_BASE_URL".into(), self.api.base_url()));
        v.push(("GEMINI_API_KEY".into(), "test-not-a-real-key".into()));
        // opencode's model catalogue (for prices) is fetched from the network.
        v.push(("OPENCODE_DISABLE_MODELS_FETCH".into(), "1".into()));
        let port = 20000 + (std::process::id() % 20000) as u16 + (self.api.port % 97);
        v.push(("CLINE_HUB_PORT".into(), port.to_string()));
        v
    }

    /// An orchestrator command on this home, with the CLI environment.
    pub fn cmd(&self) -> Command {
        let mut c = self.home.cmd();
        c.envs(self.env());
        c
    }

    fn configure_cline(&self) {
        let mut c = Command::new(&self.cli);
        c.args([
            "auth",
            "-p",
            "openai-compatible",
            "-k",
            "sk-test-not-a-real-key",
            "-m",
            super::mock_api::MODEL,
            "-b",
            &format!("{}/v1", self.api.base_url()),
        ])
        .envs(self.env())
        .stdin(std::process::Stdio::null());
        let out = c.output().expect("cline auth");
        assert!(
            out.status.success(),
            "cline auth: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let settings = self.cli_home.join(".cline/data/settings");
        std::fs::create_dir_all(&settings).unwrap();
        std::fs::write(
            settings.join("global-settings.json"),
            r#"{"telemetryOptOut": true, "autoUpdateEnabled": false}"#,
        )
        .unwrap();
    }

    /// `run --once` with the CLI environment, bounded by `limit`.
    pub fn run_once_within(&self, limit: std::time::Duration) -> std::process::Output {
        let mut c = self.cmd();
        c.args(["run", "--once"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        super::wait_output(c.spawn().unwrap(), limit)
    }

    pub fn run_once(&self) -> std::process::Output {
        self.run_once_within(std::time::Duration::from_secs(180))
    }
}

/// The command a model asks for in the kill tests: it outlives any test
/// that does not stop it.
pub const SLEEPER: &str = "python3 -c 'import time; time.sleep(41)'";

/// Starts this home's daemon (its one task asks for [`SLEEPER`]), waits
/// until the command runs, kills the daemon with SIGKILL, and waits until no
/// process with the task's mark is left: the watchdog's work.
#[cfg(target_os = "linux")]
pub fn kill_9_mid_command_leaves_nothing(h: &RealHome) {
    let mut c = h.cmd();
    c.arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut daemon = c.spawn().unwrap();
    let marker = || {
        let id = std::fs::read_dir(h.home.path.join("results"))
            .ok()?
            .flatten()
            .find(|e| e.path().is_dir() && !e.file_name().to_string_lossy().starts_with('.'))?
            .file_name();
        Some(format!("ORCHESTRATOR_TASK_ID={}", id.to_string_lossy()))
    };
    let marked = || marker().map(|m| super::processes_with_env(&m)).unwrap_or_default();
    super::wait_until(std::time::Duration::from_secs(60), "the agent's command to run", || {
        marked().iter().any(|(_, cmd)| cmd.contains("time.sleep(41)"))
    });
    super::kill9(daemon.id());
    let _ = daemon.wait();
    super::wait_until_or(
        std::time::Duration::from_secs(15),
        || marked().is_empty(),
        || {
            let left: Vec<String> = marked()
                .into_iter()
                .map(|(pid, cmd)| {
                    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                    format!("{pid} [{}] {cmd}", stat.rsplit(')').next().unwrap_or("").trim())
                })
                .collect();
            format!("the CLI and its command were not stopped; left: {left:#?}")
        },
    );
}

/// Runs `cli` of `h` once with `args`, `env` and "Say hello." on stdin, and
/// records its stdout, stderr and exit code as `dir/name.{out,err,rc}`,
/// with the home's path and the mock's port scrubbed: the recordings
/// `tests/suite/recordings.rs` reads.
pub fn record(h: &RealHome, args: &[String], env: &[(String, String)], dir: &Path, name: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let mut c = Command::new(&h.cli);
    c.args(args)
        .envs(h.env())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("PWD", &h.home.path)
        .current_dir(&h.home.path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"Say hello.").unwrap();
    let out = child.wait_with_output().unwrap();
    let scrub = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .replace(&h.home.path.display().to_string(), "/home/dev/check")
            .replace(&format!("127.0.0.1:{}", h.api.port), "127.0.0.1:8080")
    };
    std::fs::write(dir.join(format!("{name}.out")), scrub(&out.stdout)).unwrap();
    std::fs::write(dir.join(format!("{name}.err")), scrub(&out.stderr)).unwrap();
    std::fs::write(
        dir.join(format!("{name}.rc")),
        format!("{}\n", out.status.code().unwrap_or(-1)),
    )
    .unwrap();
    eprintln!("recorded {name}: exit {:?}", out.status.code());
}

/// Where the recordings of `cli-version` go.
pub fn recordings(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/agent-output")
        .join(dir)
}

/// Starts this home's daemon on its one task (`slow.md`, whose model streams
/// slowly), waits until the run's request reached the model (`is_run`),
/// cancels the task and waits for its result, then stops the daemon, and
/// fails if a process with the CLI's HOME is still there 10 s later. How
/// long the cancel took.
#[cfg(unix)]
pub fn cancel_mid_stream(h: &RealHome, is_run: impl Fn(&super::mock_api::ApiRequest) -> bool) -> std::time::Duration {
    let mut c = h.cmd();
    c.arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut daemon = c.spawn().unwrap();
    super::wait_until(
        std::time::Duration::from_secs(60),
        "the model's stream to start",
        || h.api.requests().iter().any(&is_run),
    );
    let asked = std::time::Instant::now();
    let out = h.cmd().args(["cancel", "slow.md"]).output().unwrap();
    assert!(out.status.success(), "{}", super::stderr(&out));
    super::wait_until(std::time::Duration::from_secs(60), "the result", || {
        h.home.results().iter().any(|r| r["status"] == "cancelled")
    });
    let took = asked.elapsed();
    super::sigterm(daemon.id());
    let _ = daemon.wait();
    // A process of the CLI still exiting (on a loaded machine) is given a
    // few seconds; one left running is what this looks for.
    let marker = format!("HOME={}", h.cli_home.display());
    super::wait_until_or(
        std::time::Duration::from_secs(10),
        || super::processes_with_env(&marker).is_empty(),
        || {
            format!(
                "processes of the CLI outlived the cancel: {:?}",
                super::processes_with_env(&marker)
            )
        },
    );
    took
}

/// A git repository `repo/` in the home, with one empty commit.
#[cfg(unix)]
pub fn git_repo(h: &RealHome) -> PathBuf {
    let repo = h.home.path.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    super::git_sh(&repo, "git init -q && git commit -q --allow-empty -m init");
    repo
}

/// Tasks whose model never stops calling tools, each with one limit (front
/// matter lines such as `max_turns: 2`, and the word its prompt carries),
/// run to their ends. Each must fail with `kind`, and is measured by the
/// requests its CLI made: no more than `most` (a few past the limit, for a
/// stop signal that lands late on a loaded machine), where a CLI that ran on
/// would have made requests until the task's 120 s timeout (each request is
/// answered at once).
pub fn limits_stop_a_looping_model(h: &RealHome, agent: &str, cases: &[(&str, &str, &str, usize)]) {
    for (i, (limit, word, _, _)) in cases.iter().enumerate() {
        h.home.drop_task(
            &format!("loop{i}.md"),
            format!("---\nagent: {agent}\n{limit}\ntimeout: 120s\nretries: 0\n---\nLook around forever: {word}\n"),
        );
    }
    h.run_once();
    for (i, (limit, word, kind, most)) in cases.iter().enumerate() {
        let r = h.home.result_of(&format!("loop{i}.md"));
        assert_eq!(r["error"]["kind"], *kind, "{limit}: {r}");
        let made = h
            .api
            .requests()
            .iter()
            .filter(|q| q.offers_tools() && q.mentions(word))
            .count();
        eprintln!("{agent} {limit}: stopped after {made} requests ({kind})");
        assert!(
            (1..=*most).contains(&made),
            "{limit}: the CLI made {made} requests (at most {most}): {r}"
        );
    }
}

/// The config's prices for the scripted APIs' tokens: $1 per million input
/// tokens, $0.10 cached, $10 output, so one request of Codex's or Gemini's
/// mock is 80 * 1 + 40 * 0.1 + 25 * 10 = 334 millionths of a dollar.
pub const PRICES: &str = "    prices: {input: 1.0, output: 10.0, cached: 0.1}\n";

/// With [`PRICES`], for a CLI that reports its tokens when a run ends: a run
/// gets its cost; a two-step task under `budget_usd: 0.0005` fails in its
/// second step against the $0.000166 the first left; `budget_tokens: 100` is
/// passed by the first run (145 tokens).
pub fn prices_and_budgets_hold(h: &RealHome, agent: &str) {
    h.home.drop_task("one.md", format!("---\nagent: {agent}\n---\nhello\n"));
    h.home.drop_task(
        "two.md",
        format!("---\nagent: {agent}\nsteps: [Look, Answer]\nbudget_usd: 0.0005\n---\nThe question\n"),
    );
    h.home.drop_task(
        "tok.md",
        format!("---\nagent: {agent}\nbudget_tokens: 100\n---\nhello\n"),
    );
    h.run_once();
    let one = h.home.result_of("one.md");
    assert_eq!(one["status"], "succeeded", "{one}");
    assert!((one["cost_usd"].as_f64().unwrap() - 0.000334).abs() < 1e-9, "{one}");
    let two = h.home.result_of("two.md");
    assert_eq!(
        (two["status"].as_str(), two["error"]["kind"].as_str()),
        (Some("failed"), Some("budget_exceeded")),
        "{two}"
    );
    assert_eq!(
        (two["steps"][0]["status"].as_str(), two["steps"][1]["status"].as_str()),
        (Some("succeeded"), Some("failed")),
        "{two}"
    );
    let why = two["error"]["message"].as_str().unwrap();
    assert!(
        why.contains("stopped at $0.0003: budget_usd left for this run is $0.0002"),
        "{why}"
    );
    let tok = h.home.result_of("tok.md");
    assert_eq!(tok["error"]["kind"], "budget_exceeded", "{tok}");
    assert!(
        tok["error"]["message"].as_str().unwrap().contains("budget_tokens"),
        "{tok}"
    );
}

/// A task with `timeout: 8s` against a model that streams its answer over
/// 20 s: it ends as `timeout` once the run's request (`is_run`) reached the
/// model, well before the stream would have ended.
pub fn a_slow_stream_is_cut_by_the_timeout(
    h: &RealHome,
    agent: &str,
    is_run: impl Fn(&super::mock_api::ApiRequest) -> bool,
) {
    h.home.drop_task(
        "slow.md",
        format!("---\nagent: {agent}\ntimeout: 8s\n---\ntake your time\n"),
    );
    h.run_once();
    let r = h.home.result_of("slow.md");
    assert_eq!(r["error"]["kind"], "timeout", "{r}");
    assert!(h.api.requests().iter().any(is_run), "the stream began");
    assert!(r["duration_ms"].as_u64().unwrap() < 18_000, "{r}");
}
