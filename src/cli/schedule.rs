//! `orchestrator schedule list|next|run NAME`: the config's recurring tasks,
//! when they fire, and firing one by hand. Reads the config and
//! `schedules/`; needs no daemon.

use super::common::{UsageError, escape_controls, print_json};
use super::{Cli, exit};
use crate::schedule::Schedule;
use serde_json::json;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Schedules are the `schedules:` list of orchestrator.yaml: each has a name, a cron\nexpression (`0 2 * * *`: every night at 2), an optional time zone (`tz`), and the task\nit drops into the inbox when it fires.\n\nExamples:\n  orchestrator schedule list\n  orchestrator schedule next nightly -n 5\n  orchestrator schedule run nightly"
)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Every schedule: its cron, zone, next run and last run.
    List {
        /// Print JSON (one document) instead of text, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// The next runs of one schedule (or of each).
    Next {
        /// The schedule's name (default: every schedule).
        name: Option<String>,
        /// How many runs.
        #[arg(short = 'n', long, default_value_t = 5)]
        count: usize,
        /// Print JSON (one document) instead of text, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Drop the schedule's task into the inbox now (its own runs are unchanged).
    Run {
        /// The schedule's name.
        name: String,
    },
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let home = cli.home()?;
    let config = cli.load_config(&home, &[])?.config;
    let all = Schedule::all(&config);
    let named = |name: &str| -> Result<&Schedule, UsageError> {
        all.iter().find(|s| s.name() == name).ok_or_else(|| {
            let known: Vec<&str> = all.iter().map(Schedule::name).collect();
            UsageError(format!(
                "no schedule is named `{name}` ({}); schedules are the `schedules:` list of orchestrator.yaml",
                if known.is_empty() {
                    "there are none".to_string()
                } else {
                    format!("known: {}", known.join(", "))
                }
            ))
        })
    };
    let now = jiff::Timestamp::now();
    match &args.action {
        Action::List { json } => {
            let rows: Vec<serde_json::Value> = all
                .iter()
                .map(|s| {
                    json!({
                        "name": s.name(),
                        "cron": s.config.cron,
                        "tz": s.tz.iana_name().unwrap_or("local"),
                        "catch_up": s.config.catch_up,
                        "next": s.upcoming(now, 1).first().map(|z| z.to_string()),
                        "last": s.last_fired(&home).map(|t| t.to_string()),
                    })
                })
                .collect();
            if *json {
                print_json(&rows)?;
            } else if rows.is_empty() {
                println!("no schedules (add a `schedules:` list to orchestrator.yaml)");
            }
            for r in rows.iter().filter(|_| !*json) {
                println!(
                    "{}  `{}` ({})  next {}  last {}",
                    escape_controls(r["name"].as_str().unwrap_or("")),
                    escape_controls(r["cron"].as_str().unwrap_or("")),
                    r["tz"].as_str().unwrap_or(""),
                    r["next"].as_str().unwrap_or("never"),
                    r["last"].as_str().unwrap_or("never")
                );
            }
        }
        Action::Next { name, count, json } => {
            let chosen: Vec<&Schedule> = match name {
                Some(n) => vec![named(n)?],
                None => all.iter().collect(),
            };
            let runs: Vec<serde_json::Value> = chosen
                .iter()
                .map(|s| {
                    let at: Vec<String> = s.upcoming(now, *count).iter().map(ToString::to_string).collect();
                    json!({"name": s.name(), "next": at})
                })
                .collect();
            if *json {
                print_json(&runs)?;
                return Ok(exit::OK);
            }
            for r in &runs {
                println!("{}:", escape_controls(r["name"].as_str().unwrap_or("")));
                for t in r["next"].as_array().into_iter().flatten() {
                    println!("  {}", t.as_str().unwrap_or(""));
                }
            }
        }
        Action::Run { name } => {
            let file = named(name)?.run_now(&home)?;
            println!("{file}");
        }
    }
    Ok(exit::OK)
}
