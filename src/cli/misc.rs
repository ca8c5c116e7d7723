//! Small verbs: `create-sample`, `plan FILE`, `config`, `completions`.

use super::common::{UsageError, print_json};
use super::{Cli, exit};
use crate::config::Origin;
use crate::vocab::AgentKind;
use serde_json::{Value, json};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  orchestrator create-sample\n  orchestrator create-sample --agent command")]
pub struct SampleArgs {
    /// claude, cline, codex, gemini, opencode or command (default: the home's default_agent).
    #[arg(long)]
    pub agent: Option<String>,
}

/// Writes a sample task into the inbox (atomically) and prints its path.
pub fn create_sample(cli: &Cli, args: &SampleArgs) -> anyhow::Result<u8> {
    let home = cli.home()?;
    // The home's own agent: a home whose default is `command` gets a sample
    // that runs there.
    let agent = match &args.agent {
        Some(a) => a.clone(),
        None => cli
            .load_config(&home, &[])
            .map_err(|e| UsageError(e.to_string()))?
            .config
            .default_agent
            .name()
            .to_string(),
    };
    let text = match agent.as_str() {
        "claude" => {
            "---\ntitle: Sample - describe this folder\nagent: claude\nallowed_tools: [Read, Glob, Grep]\nmax_turns: 5\ntimeout: 10m\npriority: normal\n---\nList the files in this folder and describe in three sentences what the project is.\n"
        }
        // A command the platform's shell has: `cmd /C` on Windows knows no `ls`.
        "command" if cfg!(windows) => {
            "---\ntitle: Sample - list the folder\nagent: command\ncommand: dir\ntimeout: 1m\n---\n"
        }
        "command" => "---\ntitle: Sample - list the folder\nagent: command\ncommand: ls -la\ntimeout: 1m\n---\n",
        // Read-only unless agents.codex.allowed_tools grants Bash.
        "codex" => {
            "---\ntitle: Sample - describe this folder\nagent: codex\nallowed_tools: [Read, Glob, Grep]\nmax_turns: 5\ntimeout: 10m\n---\nList the files in this folder and describe in three sentences what the project is.\n"
        }
        "gemini" | "opencode" => {
            return write_sample(
                &home,
                &agent,
                &format!(
                    "---\ntitle: Sample - describe this folder\nagent: {agent}\nallowed_tools: [Read, Glob, Grep]\nmax_turns: 5\ntimeout: 10m\n---\nList the files in this folder and describe in three sentences what the project is.\n"
                ),
            );
        }
        "cline" => {
            "---\ntitle: Sample - describe this folder\nagent: cline\nmax_turns: 5\ntimeout: 10m\n---\nList the files in this folder and describe in three sentences what the project is.\n"
        }
        other => {
            return Err(UsageError(format!(
                "no sample for agent `{other}`: use one of {}",
                AgentKind::names()
            ))
            .into());
        }
    };
    write_sample(&home, &agent, text)
}

/// Writes a sample task into the inbox (renamed into place) and names it.
fn write_sample(home: &crate::store::Home, agent: &str, text: &str) -> anyhow::Result<u8> {
    std::fs::create_dir_all(home.inbox())?;
    let name = format!("sample-{agent}-{}.md", &crate::ids::new_id("s")[18..26]);
    let tmp = home.inbox().join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, home.inbox().join(&name))?;
    println!("inbox/{name}");
    Ok(exit::OK)
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  orchestrator plan drafts/fix-login.md")]
pub struct PlanArgs {
    /// A task file (anywhere; it is not moved).
    pub file: PathBuf,
    /// Print JSON (one document) instead of text, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// Dry run: parse, validate and plan a task file; show the exact command line. Runs nothing.
pub fn plan(cli: &Cli, args: &PlanArgs) -> anyhow::Result<u8> {
    let home = cli.home()?;
    let config = cli
        .load_config(&home, &[])
        .map_err(|e| UsageError(e.to_string()))?
        .config;
    let name = args
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("task.md")
        .to_string();
    let bytes = crate::intake::read_capped(&args.file, config.max_task_bytes)
        .map_err(|e| UsageError(format!("cannot read {}: {e}", args.file.display())))?;
    let checked = crate::task::check(&name, &bytes, &config, home.root());
    let (mut spec, mut workdir) = match checked {
        Ok(x) => x,
        Err(r) => {
            if args.json {
                print_json(&json!({"ok": false, "reason": r.reason, "error": r.error, "hint": r.hint}))?;
            } else {
                println!("would be rejected ({}): {}\nfix: {}", r.reason, r.error, r.hint);
            }
            return Ok(exit::FAILED);
        }
    };
    // What the daemon would do with it: the mediator's plan when it sees the
    // task and its answer passes, the parser's otherwise.
    let mut mediation = None;
    if crate::mediator::applies(&config, &spec) {
        let (mediated, record) = crate::mediator::mediate(&config, home.root(), &spec);
        if let Some((s, w)) = mediated {
            (spec, workdir) = (s, w);
        }
        mediation = Some(record);
    }
    let context = crate::context::gather(
        &home,
        config.context_budget,
        &spec,
        &crate::deps::ids(&home, &spec.deps),
    )
    .map(|c| c.condense(&config));
    let mut plan = crate::plan::build(
        &spec,
        &config,
        crate::plan::Context {
            id: "(assigned at claim)",
            source_file: &name,
            workdir,
            queued_at: None,
        },
    );
    if let Some(m) = mediation {
        if m.used {
            plan.parsed_by = "mediator".into();
        }
        plan.mediation = Some(m);
    }
    plan.context = context;
    let program = which::which(&plan.program).map(|p| p.display().to_string()).ok();
    let mut warnings = Vec::new();
    if !plan.tools_dropped.is_empty() {
        warnings.push(format!(
            "not granted (beyond the agent's allowed_tools ceiling): {}",
            plan.tools_dropped.join(", ")
        ));
    }
    if program.is_none() {
        warnings.push(format!(
            "`{}` is not on PATH: the task would fail with not_found",
            plan.program
        ));
    }
    if args.json {
        print_json(&json!({"ok": true, "plan": plan, "program_path": program, "warnings": warnings}))?;
        return Ok(exit::OK);
    }
    println!("title:     {}", plan.title);
    match &plan.mediation {
        Some(m) if m.used => {
            println!("planned:   by the mediator ({}, {} ms)", m.model, m.duration_ms);
            for d in &m.dropped {
                println!("dropped:   the model's {}: {}", d.field, d.reason);
            }
        }
        Some(m) => println!(
            "planned:   by the parser: the mediator's answer was not used ({}: {})",
            m.reason.as_deref().unwrap_or(""),
            m.detail.as_deref().unwrap_or("")
        ),
        None => {}
    }
    if let Some(c) = &plan.context {
        println!(
            "context:   {} characters from {}{}{}",
            c.chars,
            c.from.join(", "),
            if c.condensed { ", condensed by the mediator" } else { "" },
            if c.cut > 0 {
                format!(" ({} cut to fit context_budget)", c.cut)
            } else {
                String::new()
            }
        );
    }
    for d in &plan.intent {
        println!("read:      {} = {} (from {})", d.field, d.value, d.because);
    }
    for (i, step) in plan.steps.iter().enumerate() {
        println!("step {}:    {step}", i + 1);
    }
    for c in &plan.success_criteria {
        println!("criterion: {c}");
    }
    println!(
        "agent:     {}   priority: {}   attempts: {}   timeout: {}",
        plan.agent.name(),
        plan.priority,
        plan.max_attempts,
        plan.timeout
    );
    println!("workdir:   {}", plan.workdir.display());
    println!(
        "argv:      {}",
        std::iter::once(plan.program.as_str())
            .chain(plan.args.iter().map(String::as_str))
            .map(quote)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "stdin:     the prompt ({} characters{})",
        plan.prompt.chars().count(),
        if plan.prompt_truncated {
            ", cut to max_prompt_chars"
        } else {
            ""
        }
    );
    if !plan.allowed_tools.is_empty() {
        println!("tools:     {}", plan.allowed_tools.join(", "));
    }
    for w in &warnings {
        println!("warning:   {w}");
    }
    Ok(exit::OK)
}

/// Quotes an argument for display the way a POSIX shell would need it.
fn quote(a: &str) -> String {
    if !a.is_empty()
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  ORCHESTRATOR_MAX_CONCURRENT=4 orchestrator config --json")]
pub struct ConfigArgs {
    /// Print JSON (one document) instead of text, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// The effective config, each value with where it came from.
pub fn config(cli: &Cli, args: &ConfigArgs) -> anyhow::Result<u8> {
    let home = cli.home()?;
    let loaded = cli.load_config(&home, &[]).map_err(|e| UsageError(e.to_string()))?;
    let mut value = serde_json::to_value(&loaded.config)?;
    redact_agent_env(&mut value);
    let mut leaves = Vec::new();
    flatten("", &value, &mut leaves);
    let origin_of = |key: &str| -> Origin {
        // The most specific recorded origin for this key or one of its parents.
        let mut k = key.to_string();
        loop {
            if let Some(o) = loaded.origins.get(&k) {
                return *o;
            }
            match k.rfind('.') {
                Some(i) => k.truncate(i),
                None => return Origin::Default,
            }
        }
    };
    if args.json {
        let rows: Vec<Value> = leaves
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v, "origin": origin_of(k)}))
            .collect();
        print_json(&json!({"file": loaded.file, "config": value, "values": rows}))?;
        return Ok(exit::OK);
    }
    println!(
        "# file: {}",
        loaded
            .file
            .as_ref()
            .map_or("(none: defaults)".to_string(), |f| f.display().to_string())
    );
    for (k, v) in &leaves {
        let origin = serde_json::to_value(origin_of(k))?;
        println!("{k} = {v}    # {}", origin.as_str().unwrap_or(""));
    }
    Ok(exit::OK)
}

/// What `config` prints for an agent's environment value: they are API keys
/// and tokens more often than not, and a config printout is pasted into issues
/// and chats. The names stay, so a missing variable can still be seen.
const HIDDEN: &str = "<hidden>";

fn redact_agent_env(config: &mut Value) {
    // The notifiers' secrets: a webhook's signing key, a bot's token.
    for path in [["notify", "webhook", "secret"], ["notify", "telegram", "bot_token"]] {
        if let Some(v) = config
            .pointer_mut(&format!("/{}", path.join("/")))
            .filter(|v| !v.is_null())
        {
            *v = Value::String(HIDDEN.into());
        }
    }
    let Some(agents) = config.get_mut("agents").and_then(Value::as_object_mut) else {
        return;
    };
    for agent in agents.values_mut() {
        if let Some(env) = agent.get_mut("env").and_then(Value::as_object_mut) {
            for v in env.values_mut() {
                *v = Value::String(HIDDEN.into());
            }
        }
    }
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  orchestrator completions bash > /etc/bash_completion.d/orchestrator")]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

pub fn completions(args: &CompletionsArgs) -> anyhow::Result<u8> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(args.shell, &mut cmd, "orchestrator", &mut std::io::stdout());
    Ok(exit::OK)
}
