//! `orchestrator resume ID` and `orchestrator reply ID TEXT`: new tasks that
//! continue an earlier task's agent session (`--resume <session_id>`).

use super::common::{UsageError, load_plan, load_result, print_json, resolve_task};
use super::{Cli, exit};
use crate::agents::Sessions;
use crate::store::record::Status;
use serde_json::{Map, Value, json};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  orchestrator resume 01m80jw     (a failed multi-step task goes on from the step that failed)"
)]
pub struct ResumeArgs {
    /// The failed, cancelled or interrupted task.
    pub task: String,
    /// Print JSON (one document) instead of text, for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  orchestrator reply 01m80jw \"Now add a test for it\"")]
pub struct ReplyArgs {
    /// The task whose session to continue.
    pub task: String,
    /// The follow-up prompt, or `-` to read it from stdin.
    pub text: String,
    /// Print JSON (one document) instead of text, for scripts.
    #[arg(long)]
    pub json: bool,
}

use crate::followups::base_fields;

/// A conversation's budget is one budget: a follow-up in the same session
/// (`resume`, `reply`) gets what its parent left. Refused when nothing is left.
fn budget_left(
    id: &str,
    plan: &crate::plan::Plan,
    result: &crate::store::record::ResultRecord,
    f: &mut Map<String, Value>,
) -> Result<(), UsageError> {
    if let (Some(budget), Some(used)) = (plan.budget_tokens, result.tokens.map(|t| t.total())) {
        if used >= budget {
            return Err(UsageError(format!(
                "{id} used {used} of its {budget} tokens: nothing is left for a follow-up in its session; submit a new task with its own budget_tokens"
            )));
        }
        f.insert("budget_tokens".into(), json!(budget - used));
    }
    let (Some(budget), Some(spent)) = (plan.budget_usd, result.cost_usd) else {
        return Ok(());
    };
    let left = budget - spent;
    if left < 0.000_001 {
        return Err(UsageError(format!(
            "{id} spent ${spent:.4} of its ${budget:.4} budget: nothing is left for a follow-up in its session; submit a new task with its own budget_usd"
        )));
    }
    f.insert("budget_usd".into(), json!(left));
    Ok(())
}

/// The agent session a finished task ended in (its last step's, for plans),
/// if it is a well-formed id: the agent reported it, and it goes on a command line.
fn last_session(result: &crate::store::record::ResultRecord, agent: crate::config::AgentKind) -> Option<String> {
    result
        .steps
        .iter()
        .rev()
        // A session of the agent the task ended on (it may have fallen through).
        .filter(|s| s.agent.is_none_or(|a| a == agent))
        .find_map(|s| s.session_id.clone())
        .or_else(|| result.session_id.clone())
        .filter(|s| crate::agents::valid_session_id(agent, s))
        .filter(|_| crate::agents::of(agent).sessions() == Sessions::Resumable)
}

/// A follow-up task to write: its fields, and what the verb reports of it.
pub struct FollowUp {
    pub parent: String,
    pub fields: Map<String, Value>,
    pub session: Option<String>,
    pub start_step: Option<u32>,
}

pub fn resume(cli: &Cli, args: &ResumeArgs) -> anyhow::Result<u8> {
    let home = cli.home()?;
    let f = resume_task(&home, &args.task)?;
    let new_id = super::submit::write_task(cli, &home, f.fields)?;
    if args.json {
        print_json(
            &json!({"id": new_id, "parent_task_id": f.parent, "session": f.session, "start_step": f.start_step}),
        )?;
    } else {
        println!("{new_id}");
    }
    Ok(exit::OK)
}

/// The task that resumes `query` (the CLI's `resume` and the dashboard's).
pub fn resume_task(home: &crate::store::Home, query: &str) -> Result<FollowUp, UsageError> {
    let (id, dir) = resolve_task(home, query)?;
    let Some(result) = load_result(&dir) else {
        return Err(UsageError(format!(
            "{id} has not finished: a daemon will run it on (see `orchestrator status {id}`)"
        )));
    };
    if result.status == Status::Succeeded {
        return Err(UsageError(format!(
            "{id} succeeded; nothing to resume (use `orchestrator reply` to continue its session)"
        )));
    }
    let plan = load_plan(&dir).ok_or_else(|| UsageError(format!("{id} never started; use `orchestrator retry`")))?;
    let failed_step = result.steps.iter().find(|s| s.status != Status::Succeeded).map(|s| s.n);
    let session = last_session(&result, plan.agent);
    // A command has no session to go on in: it runs again (its plan from the
    // step that failed), as `retry` would run it.
    let command = plan.agent == crate::config::AgentKind::Command;
    let mut f = if command {
        crate::followups::retry_fields(&id, &plan)
    } else {
        base_fields(&plan)
    };
    budget_left(&id, &plan, &result, &mut f)?;
    f.insert("title".into(), json!(format!("{} (resumed)", plan.title)));
    if !plan.prompt.is_empty() {
        f.insert("prompt".into(), json!(plan.prompt));
    }
    if !plan.steps.is_empty() {
        f.insert("steps".into(), json!(plan.steps));
        f.insert("start_step".into(), json!(failed_step.unwrap_or(plan.start_step)));
    }
    if let Some(s) = &session {
        f.insert("session".into(), json!(s));
    }
    f.insert("parent_task_id".into(), json!(id));
    Ok(FollowUp {
        parent: id,
        fields: f,
        session,
        start_step: failed_step,
    })
}

pub fn reply(cli: &Cli, args: &ReplyArgs) -> anyhow::Result<u8> {
    let home = cli.home()?;
    let text = if args.text == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        s
    } else {
        args.text.clone()
    };
    let f = reply_task(&home, &args.task, &text)?;
    let new_id = super::submit::write_task(cli, &home, f.fields)?;
    if args.json {
        print_json(&json!({"id": new_id, "parent_task_id": f.parent, "session": f.session}))?;
    } else {
        println!("{new_id}");
    }
    Ok(exit::OK)
}

/// The task that continues `query`'s session with `text` (the CLI's `reply`
/// and the dashboard's).
pub fn reply_task(home: &crate::store::Home, query: &str, text: &str) -> Result<FollowUp, UsageError> {
    let (id, dir) = resolve_task(home, query)?;
    let result =
        load_result(&dir).ok_or_else(|| UsageError(format!("{id} has not finished yet; reply when it has")))?;
    let plan = load_plan(&dir).ok_or_else(|| UsageError(format!("{id} has no plan.json")))?;
    let session = last_session(&result, plan.agent);
    let session = session.ok_or_else(|| {
        let agent = crate::agents::of(plan.agent);
        let why = match agent.sessions() {
            Sessions::NotResumable(why) => match &result.session_id {
                Some(s) => format!("{why}; open its session {s} there by hand"),
                None => why.to_string(),
            },
            Sessions::None => format!("{} has none", agent.describe()),
            Sessions::Resumable => "the agent reported none, or one that is not a well-formed id".into(),
        };
        UsageError(format!(
            "{id} has no agent session to continue: {why}. Submit a new task with the context it needs"
        ))
    })?;
    if text.trim().is_empty() {
        return Err(UsageError(
            "the reply is empty: say what the agent should do next".into(),
        ));
    }
    let mut f = base_fields(&plan);
    budget_left(&id, &plan, &result, &mut f)?;
    f.insert("prompt".into(), json!(text));
    f.insert("session".into(), json!(session));
    f.insert("parent_task_id".into(), json!(id));
    f.insert(
        "turn_of".into(),
        json!(result.turn_of.clone().unwrap_or_else(|| id.clone())),
    );
    Ok(FollowUp {
        parent: id,
        fields: f,
        session: Some(session),
        start_step: None,
    })
}
