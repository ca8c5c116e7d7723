//! The command line: one file per verb, all reading the same global options.
//!
//! Exit codes: 0 ok, 1 the task or check failed, 2 usage or config error.

mod reindex;
mod run;

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
    ///
    /// Example: orchestrator run            (until Ctrl-C)
    ///          orchestrator run --once     (drain the inbox, exit 0 if all succeeded)
    Run(run::Args),
    /// Rebuild results/index.json from the result files.
    ///
    /// Example: orchestrator reindex
    Reindex,
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
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run(args) => run::run(&cli, args),
        Command::Reindex => reindex::run(&cli),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::USAGE)
        }
    }
}
