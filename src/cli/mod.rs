//! The command line: one file per verb, all reading the same global options.
//!
//! Exit codes: 0 ok, 1 the task or check failed, 2 usage or config error.

pub(crate) mod apply;
pub(crate) mod cancel;
mod clean;
pub(crate) mod common;
pub(crate) mod doctor;
pub(crate) mod followup;
mod list;
pub(crate) mod logs;
mod misc;
mod reindex;
mod retry;
mod run;
mod schedule;
mod service;
mod show;
mod stats;
pub(crate) mod status;
mod submit;
pub(crate) mod tail_events;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Run AI coding agents unattended: drop task files into inbox/, get results.
#[derive(Debug, Parser)]
#[command(name = "orchestrator", version, about, long_about = None)]
pub struct Cli {
    /// The home folder (inbox/, results/, logs/ ...). Default: the current directory.
    #[arg(long, global = true, env = "ORCHESTRATOR_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// Config file to read instead of <home>/orchestrator.yaml.
    #[arg(long, global = true, env = "ORCHESTRATOR_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Override a config key for this run, e.g. --set max_concurrent=4 --set retry.max_attempts=1
    #[arg(long = "set", global = true, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub set: Vec<(String, String)>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground: watch the inbox and run tasks.
    Run(run::Args),
    /// Write a task into the inbox and print its id (works with or without a running daemon).
    Submit(submit::Args),
    /// Is a daemon running, what runs, what waits, what finished. Or one task.
    Status(status::Args),
    /// Tasks, newest first.
    List(list::Args),
    /// A task's full record.
    Show(show::Args),
    /// Just the agent's final answer (exit 1 if the task failed or has not finished).
    Results(show::ResultsArgs),
    /// The agent's output, rendered for people (or --raw).
    Logs(logs::Args),
    /// Stop a running task (its whole process tree) or take a file off the queue.
    Cancel(cancel::Args),
    /// Run a task again, as a new task that points back to it.
    Retry(retry::Args),
    /// Apply a guarded task's changes.diff to its workdir (refused whole if the workdir changed).
    Apply(apply::Args),
    /// Continue a failed multi-step task from the step that failed, in the same agent session.
    Resume(followup::ResumeArgs),
    /// A follow-up turn in a finished task's agent session.
    Reply(followup::ReplyArgs),
    /// The event log, from the end; -f follows it across rotation.
    TailEvents(tail_events::Args),
    /// Counts, success rate, durations, retries and cost.
    Stats(stats::Args),
    /// Retention: remove old finished tasks, rejected/cancelled files and rotated event logs.
    Clean(clean::Args),
    /// Check the home, config, agents, disk and daemons; each problem with a fix.
    Doctor(doctor::Args),
    /// The home in a browser: the board, each task's page, new tasks, stats and health.
    ///
    /// Serves 127.0.0.1:8765 by default; works with or without a daemon running.
    Dashboard(crate::dashboard::Args),
    /// Run the daemon as a service: systemd (Linux), launchd (macOS).
    Service(service::Args),
    /// Write a sample task into the inbox.
    CreateSample(misc::SampleArgs),
    /// Dry run: parse and plan a task file, show the exact command line; runs nothing.
    Plan(misc::PlanArgs),
    /// Rebuild results/index.json from the result files.
    ///
    /// Example: orchestrator reindex
    Reindex,
    /// The effective config, and where each value came from (default, file, env, flag).
    Config(misc::ConfigArgs),
    /// Shell completions: bash, zsh, fish, powershell, elvish.
    Completions(misc::CompletionsArgs),
    /// Recurring tasks (`schedules:` in the config): list them, their next runs, or run one now.
    Schedule(schedule::Args),
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    if k.trim().is_empty() {
        return Err(format!("`{s}` has an empty key"));
    }
    Ok((k.trim().to_string(), v.to_string()))
}

/// Exit codes of the CLI.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
}

impl Cli {
    pub fn home(&self) -> anyhow::Result<crate::store::Home> {
        let root = match &self.home {
            Some(h) => h.clone(),
            None => std::env::current_dir()?,
        };
        Ok(crate::store::Home::new(root)?)
    }

    /// Loads the layered config.
    pub fn load_config(
        &self,
        home: &crate::store::Home,
        extra_flags: &[(String, String)],
    ) -> Result<crate::config::Loaded, crate::config::ConfigError> {
        let mut flags = self.set.clone();
        flags.extend_from_slice(extra_flags);
        crate::config::load(&home.config_file(), self.config.as_deref(), std::env::vars(), &flags)
    }
}

/// Parses arguments, runs the verb, and maps errors to exit codes.
pub fn main() -> ExitCode {
    ExitCode::from(run_with(std::env::args_os()))
}

/// [`main`] for given arguments.
pub fn run_with(args: impl IntoIterator<Item = std::ffi::OsString>) -> u8 {
    run_reporting(args, |error| eprintln!("error: {error}"))
}

/// [`run_with`], handing the error that ends a verb to `report` (the Windows
/// service, which has no stderr, puts it in the event log).
pub fn run_reporting(args: impl IntoIterator<Item = std::ffi::OsString>, report: impl FnOnce(&str)) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { exit::USAGE } else { exit::OK };
        }
    };
    if !matches!(cli.command, Command::Run(_)) {
        quiet_on_closed_pipe();
    }
    let result = match &cli.command {
        Command::Run(args) => run::run(&cli, args),
        Command::Submit(args) => submit::run(&cli, args),
        Command::Status(args) => status::run(&cli, args),
        Command::List(args) => list::run(&cli, args),
        Command::Show(args) => show::run(&cli, args),
        Command::Results(args) => show::results(&cli, args),
        Command::Logs(args) => logs::run(&cli, args),
        Command::Cancel(args) => cancel::run(&cli, args),
        Command::Retry(args) => retry::run(&cli, args),
        Command::Apply(args) => apply::run(&cli, args),
        Command::Resume(args) => followup::resume(&cli, args),
        Command::Reply(args) => followup::reply(&cli, args),
        Command::TailEvents(args) => tail_events::run(&cli, args),
        Command::Stats(args) => stats::run(&cli, args),
        Command::Clean(args) => clean::run(&cli, args),
        Command::Doctor(args) => doctor::run(&cli, args),
        Command::Dashboard(args) => crate::dashboard::run(&cli, args),
        Command::Service(args) => service::run(&cli, args),
        Command::CreateSample(args) => misc::create_sample(&cli, args),
        Command::Plan(args) => misc::plan(&cli, args),
        Command::Reindex => reindex::run(&cli),
        Command::Config(args) => misc::config(&cli, args),
        Command::Completions(args) => misc::completions(args),
        Command::Schedule(args) => schedule::run(&cli, args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            report(&format!("{e:#}"));
            // Usage and config errors exit 2; anything else (I/O) means the command failed.
            let usage = e.downcast_ref::<common::UsageError>().is_some()
                || e.downcast_ref::<crate::config::ConfigError>().is_some();
            if usage { exit::USAGE } else { exit::FAILED }
        }
    }
}

/// Reading verbs end quietly when their reader goes away (`orchestrator list | head`),
/// like other Unix tools. Not the daemon: it writes prompts into agents' stdin,
/// and an agent that exits early must not kill it. Unix: the default SIGPIPE.
/// Windows has no SIGPIPE: a write to a closed pipe fails (os error 232), and
/// `println!` panics on it; that one panic ends the process quietly instead.
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: resetting a signal disposition before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") {
            std::process::exit(0);
        }
        default(info);
    }));
}
