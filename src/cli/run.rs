//! `orchestrator run [--once]`: the daemon in the foreground.

use super::{Cli, exit};
use crate::daemon::{self, RunOptions};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  orchestrator --home ~/agents run          # until Ctrl-C or SIGTERM\n  orchestrator --home ~/agents run --once   # drain the inbox; exit 0 if all succeeded\n\nIn a terminal it says when each task starts and ends; its diagnostics go to\nstderr and logs/orchestrator.log (ORCHESTRATOR_LOG=debug for more)."
)]
pub struct Args {
    /// Drain the inbox, wait for every task, then exit: 0 if all succeeded, 1 otherwise.
    #[arg(long)]
    pub once: bool,
    /// Tasks running at once (overrides max_concurrent).
    #[arg(long, value_name = "N")]
    pub max_concurrent: Option<usize>,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let home = cli.home()?;
    std::fs::create_dir_all(home.logs())?;
    init_logging(&home);
    let mut flags = Vec::new();
    if let Some(n) = args.max_concurrent {
        flags.push(("max_concurrent".to_string(), n.to_string()));
    }
    let loaded = match cli.load_config(&home, &flags) {
        Ok(l) => l,
        Err(e) => {
            refused(&e);
            return Ok(exit::USAGE);
        }
    };
    crate::memory::one_arena();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .thread_stack_size(512 * 1024)
        .enable_all()
        .build()?;
    // A daemon that cannot start (inbox permissions, watcher, registry) is a setup error: exit 2.
    // The daemon loop runs as a task on the workers, not on this thread: a
    // runner that frees a slot wakes it on its own worker (no cross-thread
    // wake-up), and the runners it spawns start there too.
    let mut all_flags = cli.set.clone();
    all_flags.extend(flags);
    let opts = RunOptions {
        once: args.once,
        config_file: cli.config.clone(),
        flags: all_flags,
        console: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let daemon = runtime.spawn(daemon::run(home, loaded, opts));
    let summary = match runtime
        .block_on(daemon)
        .unwrap_or_else(|e| Err(anyhow::anyhow!("the daemon loop panicked: {e}")))
    {
        Ok(s) => s,
        Err(e) => {
            refused(&format!("{e:#}"));
            return Ok(exit::USAGE);
        }
    };
    if args.once {
        eprintln!(
            "orchestrator: {} succeeded, {} failed, {} cancelled, {} rejected, {} interrupted, {} not claimed",
            summary.succeeded,
            summary.failed,
            summary.cancelled,
            summary.rejected,
            summary.interrupted,
            summary.unclaimed
        );
        return Ok(if summary.all_succeeded() {
            exit::OK
        } else {
            exit::FAILED
        });
    }
    Ok(exit::OK)
}

/// Events of this target go to logs/orchestrator.log only (stderr has said
/// them in its own words).
const FILE_ONLY: &str = "orchestrator::file_only";

/// A daemon that does not start says why on stderr and in the home's log: a
/// service's stderr goes nowhere a person looks (Windows), and the log is
/// where `doctor` sends them.
fn refused(why: &dyn std::fmt::Display) {
    eprintln!("error: {why}");
    tracing::error!(target: FILE_ONLY, "the daemon did not start: {why}");
}

/// Diagnostics to stderr and to logs/orchestrator.log (daily files, 7 kept).
/// `ORCHESTRATOR_LOG` (or `RUST_LOG`) sets the filter, default `info`.
///
/// The file is written synchronously: diagnostics are few (warnings, errors,
/// start and stop), and tracing-appender's non-blocking writer preallocates a
/// 128,000-line channel, 4 MB of the daemon's memory for nothing.
fn init_logging(home: &crate::store::Home) {
    use tracing_subscriber::{EnvFilter, fmt, prelude::*};
    let filter = || {
        EnvFilter::try_from_env("ORCHESTRATOR_LOG")
            .or_else(|_| EnvFilter::try_from_default_env())
            .unwrap_or_else(|_| EnvFilter::new("info"))
    };
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("orchestrator")
        .filename_suffix("log")
        .max_log_files(7)
        .build(home.logs())
        .ok();
    // Colour codes only for a person at a terminal: a service manager's journal
    // or a redirected log would keep them as garbage.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let stderr_layer = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .with_filter(filter())
        .with_filter(tracing_subscriber::filter::filter_fn(|m| m.target() != FILE_ONLY));
    match appender {
        Some(a) => {
            let file_layer = fmt::layer()
                .with_writer(a)
                .with_ansi(false)
                .with_target(false)
                .with_filter(filter());
            let _ = tracing_subscriber::registry()
                .with(stderr_layer)
                .with(file_layer)
                .try_init();
        }
        None => {
            let _ = tracing_subscriber::registry().with(stderr_layer).try_init();
        }
    }
}
