//! `orchestrator show ID` (a task's full record) and `orchestrator results ID`
//! (just the agent's final answer).

use super::common::{
    Found, UsageError, escape_controls, human_ms, load_plan, load_progress, load_result, paint, print_json, resolve,
    status_color,
};
use super::{Cli, exit};
use serde_json::json;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  orchestrator show 01m80jw\n  orchestrator show fix-login.md --json")]
pub struct Args {
    /// Id, unique id prefix, or the original file name.
    pub task: String,
    /// Print JSON (one document) instead of text, for scripts.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    show(cli, &args.task, args.json)
}

pub fn show(cli: &Cli, query: &str, as_json: bool) -> anyhow::Result<u8> {
    let home = cli.home()?;
    let (id, dir) = match resolve(&home, query)? {
        Found::Queued { file } => {
            let config = cli.load_config(&home, &[]).map(|l| l.config).unwrap_or_default();
            let limits = crate::task::parse::Limits::of(&config);
            let waiting = super::status::describe(&home.inbox().join(&file), &file, &limits)
                .map(|(_, _, q)| q.waiting_for)
                .unwrap_or_default();
            if as_json {
                print_json(&json!({"file": file, "status": "queued", "waiting_for": waiting}))?;
            } else if waiting.is_empty() {
                println!("{file}: queued in the inbox");
            } else {
                println!(
                    "{file}: queued in the inbox, waiting for {}",
                    escape_controls(&waiting.join(", "))
                );
            }
            return Ok(exit::OK);
        }
        Found::Task { id, dir } => (id, dir),
    };
    if let Some(r) = load_result(&dir) {
        if as_json {
            print_json(&r)?;
            return Ok(exit::OK);
        }
        let status = r.status.name();
        println!("{}  {}", paint(&r.id, "36"), escape_controls(&r.title));
        println!("status:    {}", paint(status, status_color(status)));
        println!("agent:     {}   workdir: {}", r.agent, r.workdir);
        println!("file:      {}   worker: {}", r.source_file, r.worker);
        println!(
            "started:   {}   finished: {}   ({})",
            r.started_at,
            r.finished_at,
            human_ms(r.duration_ms)
        );
        println!(
            "turns:     {}   tool calls: {}   cost: {}",
            r.turns,
            r.tool_calls,
            r.cost_usd.map_or("-".into(), |c| format!("${c:.4}"))
        );
        if let Some(t) = r.tokens {
            println!("tokens:    {} in ({} cached), {} out", t.input, t.cached, t.output);
        }
        if let Some(s) = &r.session_id {
            println!("session:   {s}");
        }
        if let Some(p) = &r.parent_task_id {
            println!("parent:    {p}");
        }
        if r.interruptions > 0 {
            println!(
                "interrupted: {} times from outside (not counted as attempts)",
                r.interruptions
            );
        }
        // With steps, each run says its step, and which try of it it was;
        // a task that changed agents says which agent each run had.
        let stepped = r.attempts.iter().any(|a| a.step > 1);
        // Runs past the plan's steps asked again after a failed check (`verify:`).
        let plan_steps = r.steps.iter().map(|s| s.n).max().unwrap_or(1);
        let switched = r.attempts.iter().filter_map(|a| a.agent).any(|x| x.name() != r.agent);
        let mut tries: std::collections::BTreeMap<u32, u32> = std::collections::BTreeMap::new();
        for a in &r.attempts {
            let label = if !r.verify.is_empty() && a.step > plan_steps {
                format!("after check {}", a.step - plan_steps)
            } else if stepped {
                let n = tries.entry(a.step).or_default();
                *n += 1;
                match *n {
                    1 => format!("step {}", a.step),
                    n => format!("step {}, try {n}", a.step),
                }
            } else {
                format!("attempt {}", a.n)
            };
            let err = a
                .error
                .as_ref()
                .map(|e| format!("  {}: {}", e.kind, escape_controls(&e.message)))
                .unwrap_or_default();
            let how = match (a.cut_short, a.alone) {
                (Some(crate::vocab::CutShort::DaemonDied), true) => "  (its daemon died; it ran alone)",
                (Some(crate::vocab::CutShort::DaemonDied), false) => "  (its daemon died)",
                (Some(crate::vocab::CutShort::DaemonShutdown), _) => "  (its daemon stopped)",
                (None, true) => "  (ran alone)",
                (None, false) => "",
            };
            let on = match a.agent {
                Some(x) if switched => format!(" on {}", x.name()),
                _ => String::new(),
            };
            println!(
                "{label}{on}: exit {}  {}{err}{how}",
                a.exit_code.map_or("-".into(), |c| c.to_string()),
                a.duration_ms.map(human_ms).unwrap_or_default()
            );
        }
        for v in &r.verify {
            println!(
                "check {}: `{}` {}  {}",
                v.round,
                escape_controls(&v.command),
                v.exit_code.map_or("stopped".to_string(), |c| format!("exit {c}")),
                human_ms(v.duration_ms)
            );
        }
        if let Some(e) = &r.error {
            println!(
                "\n{}: {}\nwhat to do: {}",
                paint(e.kind.as_str(), "31"),
                escape_controls(&e.message),
                e.suggestion
            );
        }
        if !r.permission_denials.is_empty() {
            let tools: Vec<&str> = r
                .permission_denials
                .iter()
                .filter_map(|d| d["tool_name"].as_str())
                .collect();
            println!("permission denials: {}", tools.join(", "));
        }
        if !r.output.is_empty() {
            println!("\n{}", escape_controls(r.output.trim_end()));
        }
        return Ok(exit::OK);
    }
    let plan = load_plan(&dir);
    let progress = load_progress(&dir);
    let status = progress.as_ref().and_then(|p| p.status).map_or("running", |s| s.name());
    if as_json {
        print_json(&json!({"id": id, "status": status, "plan": plan, "progress": progress}))?;
        return Ok(exit::OK);
    }
    let plan = plan.ok_or_else(|| UsageError(format!("{id} is being claimed; try again in a moment")))?;
    println!("{}  {}", paint(&id, "36"), escape_controls(&plan.title));
    println!("status:    {}", paint(status, status_color(status)));
    println!("agent:     {}   workdir: {}", plan.agent.name(), plan.workdir.display());
    println!("command:   {} {}", plan.program, plan.args.join(" "));
    if let Some(p) = progress {
        println!(
            "attempt:   {} of {}   turns: {}   tool calls: {}   cost: {}",
            p.attempt,
            plan.max_attempts,
            p.turns,
            p.tool_calls,
            p.cost_usd.map_or("-".to_string(), |c| format!("${c:.4}"))
        );
        if let Some(e) = p.last_event {
            println!("last:      {}", escape_controls(&e));
        }
        if let Some(w) = p.waiting_until {
            println!("waiting until {w}");
        }
    }
    Ok(exit::OK)
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  orchestrator results 01m80jw > answer.md")]
pub struct ResultsArgs {
    /// Id, unique id prefix, or the original file name.
    pub task: String,
    /// Print JSON (one document) instead of text, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// `results ID`: the final answer on stdout; exit 1 if the task failed or has not finished.
pub fn results(cli: &Cli, args: &ResultsArgs) -> anyhow::Result<u8> {
    let home = cli.home()?;
    let (id, dir) = super::common::resolve_task(&home, &args.task)?;
    let Some(r) = load_result(&dir) else {
        eprintln!("{id} has not finished yet (`orchestrator status {id}`)");
        return Ok(exit::FAILED);
    };
    if args.json {
        print_json(&json!({"id": r.id, "status": r.status, "output": r.output, "error": r.error}))?;
    } else {
        if !r.output.is_empty() {
            println!("{}", super::common::for_stdout(&r.output));
        }
        // A task that did not succeed says why where a person looks, and a
        // script reading stdout gets only the answer (if any).
        if r.status != crate::store::record::Status::Succeeded {
            match &r.error {
                Some(e) => {
                    eprintln!("{id} {}: {}: {}", r.status.name(), e.kind, escape_controls(&e.message));
                    if !e.suggestion.is_empty() {
                        eprintln!("fix: {}", escape_controls(&e.suggestion));
                    }
                }
                None => eprintln!("{id} {}", r.status.name()),
            }
        }
    }
    Ok(if r.status == crate::store::record::Status::Succeeded {
        exit::OK
    } else {
        exit::FAILED
    })
}
