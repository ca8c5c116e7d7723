//! The mediator: a language model between a person's loose note and the plan.
//!
//! A task file without structure (a `.txt`, Markdown without front matter)
//! is shown to the model, which proposes a title, a role, a workdir, steps,
//! success criteria and a cleaned prompt. The proposal is only a proposal:
//! it may set nothing else (tools, limits, agent, mode: a field outside the
//! schema is refused whole), and it goes through the same parser and checks
//! as a hand-written task (roles, workdir confined to the allowed roots, step
//! limits, the agent's sessions). Anything missing, invalid, slow or refused
//! leaves the parser's plan in force: mediation never fails a task. The
//! person's note is kept under the model's prompt, so nothing of it is lost.

pub mod client;

use crate::config::{Config, MediateWhen};
use crate::task::TaskSpec;
use crate::vocab::Mediation;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Does the mediator see this task?
pub fn applies(config: &Config, spec: &TaskSpec) -> bool {
    match config.mediator.as_ref().map(|m| m.when) {
        Some(MediateWhen::Loose) => spec.loose,
        Some(MediateWhen::Always) => true,
        Some(MediateWhen::Never) | None => false,
    }
}

/// Asks the model for one text field (`key`) of at most `max` characters.
fn ask_text(config: &Config, system: &str, user: &str, key: &str, max: usize) -> Result<String, client::NoAnswer> {
    let m = config
        .mediator
        .as_ref()
        .ok_or_else(|| client::NoAnswer::new("off", "no mediator"))?;
    let schema = json!({"type": "object", "properties": {key: {"type": "string"}}, "required": [key], "additionalProperties": false});
    let v = client::ask(m, system, user, &schema)?;
    match v[key].as_str().map(str::trim) {
        Some(t) if !t.is_empty() && t.chars().count() <= max => Ok(t.to_string()),
        Some(t) if !t.is_empty() => Err(client::NoAnswer::new(
            "schema_violation",
            format!("{key} is longer than {max} characters"),
        )),
        _ => Err(client::NoAnswer::new(
            "schema_violation",
            format!("the answer has no {key}"),
        )),
    }
}

/// Is the mediator on (for summaries and context)?
pub fn enabled(config: &Config) -> bool {
    config.mediator.as_ref().is_some_and(|m| m.when != MediateWhen::Never)
}

/// A short summary of a finished task, in the model's words, or `None`.
pub fn summarize(config: &Config, r: &crate::store::record::ResultRecord) -> Option<String> {
    let mut facts = format!(
        "Task: {}
Status: {}
",
        r.title,
        r.status.name()
    );
    if let Some(e) = &r.error {
        facts.push_str(&format!(
            "Error: {}: {}
",
            e.kind, e.message
        ));
    }
    if !r.files_changed.is_empty() {
        facts.push_str(&format!(
            "Files changed: {}
",
            r.files_changed.join(", ")
        ));
    }
    let answer: String = r.output.chars().take(4000).collect();
    facts.push_str(&format!(
        "The agent's answer:
{answer}"
    ));
    ask_text(
        config,
        "You summarize what an AI coding agent did, for the person who asked. Answer with JSON {\"summary\": \"...\"}: at most three plain sentences, no Markdown, nothing that is not in the facts.",
        &facts,
        "summary",
        600,
    )
    .map_err(|e| tracing::info!(reason = e.reason, detail = %config.redactor().redact(&e.detail), "the mediator wrote no summary; the summary stands without it"))
    .ok()
}

/// The digest of earlier tasks condensed by the model to half the budget,
/// or `None` (then the deterministic digest stands).
pub fn condense(config: &Config, digest: &str, budget: usize) -> Option<String> {
    let max = (budget / 2).max(200);
    ask_text(
        config,
        &format!(
            "You condense notes about earlier tasks for an AI coding agent that continues the work. Answer with JSON {{\"digest\": \"...\"}}: at most {max} characters, keeping task ids, errors, file names and decisions; invent nothing."
        ),
        digest,
        "digest",
        max,
    )
    .map_err(|e| tracing::info!(reason = e.reason, detail = %config.redactor().redact(&e.detail), "the mediator did not condense the context; the digest stands"))
    .ok()
}

/// What the model may propose, and nothing else.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Proposal {
    title: String,
    prompt: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    workdir: Option<String>,
    #[serde(default)]
    steps: Vec<String>,
    #[serde(default)]
    success_criteria: Vec<String>,
}

const MAX_LIST: usize = 20;
const MAX_TITLE: usize = 200;
const MAX_ITEM: usize = 2000;

/// The answer's JSON schema.
pub fn schema() -> Value {
    // No maxItems: grammar-constrained servers (llama.cpp) expand it into a
    // grammar that makes sampling crawl; the length is checked on the answer.
    let list = json!({"type": "array", "items": {"type": "string"}});
    json!({
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "prompt": {"type": "string"},
            "role": {"type": ["string", "null"]},
            "workdir": {"type": ["string", "null"]},
            "steps": list,
            "success_criteria": list,
        },
        "required": ["title", "prompt", "role", "workdir", "steps", "success_criteria"],
        "additionalProperties": false,
    })
}

fn instructions(config: &Config, home: &Path) -> String {
    let roles: Vec<String> = config.roles.keys().cloned().collect();
    let roots: Vec<String> = config
        .allowed_roots(home)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    format!(
        "You turn a person's note into a task for an AI coding agent. Answer with one JSON object and nothing else, with these keys:\n\
         - title: a short title (under 80 characters)\n\
         - prompt: the note rewritten as clear instructions for the agent; keep every requirement, invent none\n\
         - role: one of [{}] that fits the work, or null\n\
         - workdir: the folder the work is in, only if the note names one inside [{}], else null\n\
         - steps: an ordered list of steps if the work has distinct stages, else []\n\
         - success_criteria: what must be true when the work is done, else []",
        roles.join(", "),
        roots.join(", "),
    )
}

/// Structures the task `spec` with the model.
/// `Some` with the new task and its workdir when the proposal is used; the
/// record says which, and why, either way. Blocks for up to the timeout.
pub fn mediate(config: &Config, home: &Path, spec: &TaskSpec) -> (Option<(TaskSpec, PathBuf)>, Mediation) {
    let Some(m) = config.mediator.as_ref() else {
        return (None, fallback("off", "no mediator", "", 0));
    };
    let started = Instant::now();
    let ms = || started.elapsed().as_millis() as u64;
    let answer = match client::ask(m, &instructions(config, home), &spec.prompt, &schema()) {
        Ok(v) => v,
        Err(e) => return (None, fallback(e.reason, &e.detail, &m.model, ms())),
    };
    match adopt(config, home, spec, answer) {
        Ok(task) => (
            Some(task),
            Mediation {
                used: true,
                reason: None,
                detail: None,
                model: m.model.clone(),
                duration_ms: ms(),
            },
        ),
        Err((reason, detail)) => (None, fallback(reason, &detail, &m.model, ms())),
    }
}

fn fallback(reason: &str, detail: &str, model: &str, duration_ms: u64) -> Mediation {
    Mediation {
        used: false,
        reason: Some(reason.to_string()),
        detail: Some(detail.chars().take(500).collect()),
        model: model.to_string(),
        duration_ms,
    }
}

/// The proposal in `answer`, checked and made a task, or why not.
fn adopt(
    config: &Config,
    home: &Path,
    spec: &TaskSpec,
    answer: Value,
) -> Result<(TaskSpec, PathBuf), (&'static str, String)> {
    let schema = schema();
    if let Some(obj) = answer.as_object()
        && let Some(k) = obj.keys().find(|k| schema["properties"].get(k.as_str()).is_none())
    {
        return Err((
            "forbidden_field",
            format!(
                "the proposal sets `{k}`, which a mediator may not (only title, prompt, role, workdir, steps, success_criteria)"
            ),
        ));
    }
    let p: Proposal = serde_json::from_value(answer)
        .map_err(|e| ("schema_violation", format!("the proposal does not fit the schema: {e}")))?;
    let bad = |what: String| Err(("schema_violation", what));
    if p.title.trim().is_empty() || p.title.chars().count() > MAX_TITLE {
        return bad(format!("the title is empty or longer than {MAX_TITLE} characters"));
    }
    if p.prompt.trim().is_empty() {
        return bad("the prompt is empty".into());
    }
    for list in [&p.steps, &p.success_criteria] {
        if list.len() > MAX_LIST || list.iter().any(|s| s.trim().is_empty() || s.chars().count() > MAX_ITEM) {
            return bad(format!(
                "steps and success_criteria hold at most {MAX_LIST} non-empty items of at most {MAX_ITEM} characters"
            ));
        }
    }
    if !spec.loose {
        // A file with structure keeps every field its author wrote; the model
        // adds only the success criteria.
        let mut task = spec.clone();
        let wd = crate::task::place(&task, config, home).map_err(|r| ("rejected_by_checks", r.error))?;
        if task.success_criteria.is_empty() {
            task.success_criteria = p.success_criteria;
        }
        return Ok((task, wd));
    }
    let mut fields = Map::new();
    fields.insert("title".into(), json!(p.title.trim()));
    fields.insert(
        "prompt".into(),
        json!(format!(
            "{}\n\n---\nThe note as its author wrote it:\n\n{}",
            p.prompt.trim(),
            spec.prompt
        )),
    );
    if let Some(r) = p.role.filter(|r| !r.trim().is_empty()) {
        fields.insert("role".into(), json!(r.trim()));
    }
    if let Some(w) = p.workdir.filter(|w| !w.trim().is_empty()) {
        fields.insert("workdir".into(), json!(w.trim()));
    }
    if !p.steps.is_empty() {
        fields.insert("steps".into(), json!(p.steps));
    }
    let bytes = serde_json::to_vec(&Value::Object(fields)).map_err(|e| ("schema_violation", e.to_string()))?;
    let (mut task, wd) = crate::task::check("mediated.json", &bytes, config, home)
        .map_err(|r| ("rejected_by_checks", format!("{}: {}", r.reason, r.error)))?;
    task.success_criteria = p.success_criteria;
    task.loose = true;
    Ok((task, wd))
}
