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

/// The answer's JSON schema: no empty strings, and a role only from the
/// config's roles.
pub fn schema(config: &Config) -> Value {
    // No maxItems: grammar-constrained servers (llama.cpp) expand it into a
    // grammar that makes sampling crawl; the length is checked on the answer.
    let text = json!({"type": "string", "minLength": 1});
    let list = json!({"type": "array", "items": text});
    let mut roles: Vec<Value> = config.roles.keys().map(|r| json!(r)).collect();
    roles.push(Value::Null);
    json!({
        "type": "object",
        "properties": {
            "title": text,
            "prompt": text,
            "role": {"enum": roles},
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
    let note = if spec.loose {
        raw_note(config, spec)
    } else {
        spec.prompt.clone()
    };
    let answer = match client::ask(m, &instructions(config, home), &note, &schema(config)) {
        Ok(v) => v,
        Err(e) => return (None, fallback(e.reason, &e.detail, &m.model, ms())),
    };
    match adopt(config, home, spec, answer) {
        Ok((task, wd, dropped)) => (
            Some((task, wd)),
            Mediation {
                used: true,
                reason: None,
                detail: None,
                model: m.model.clone(),
                duration_ms: ms(),
                dropped,
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
        dropped: Vec::new(),
    }
}

/// The proposal in `answer`, adopted field by field onto the parser's plan,
/// or why none of it was. Each field goes through the parser's own checks
/// (as a hand-written task's would) and is kept only if the task is no wider
/// than the parser's: a field that fails is dropped with its reason, and the
/// rest stand. A proposal that sets a field beyond the schema (tools, limits)
/// is refused whole: that model is not to be trusted with the rest either.
fn adopt(
    config: &Config,
    home: &Path,
    spec: &TaskSpec,
    answer: Value,
) -> Result<(TaskSpec, PathBuf, Vec<Dropped>), (&'static str, String)> {
    let schema = schema(config);
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
    let base_wd = crate::task::place(spec, config, home).map_err(|r| ("rejected_by_checks", r.error))?;
    let dropped = std::cell::RefCell::new(Vec::new());
    let drop = |field: &str, why: String| {
        dropped.borrow_mut().push(Dropped {
            field: field.into(),
            reason: why,
        })
    };
    let criteria_ok = |list: &[String]| {
        list.len() <= MAX_LIST
            && list
                .iter()
                .all(|s| !s.trim().is_empty() && s.chars().count() <= MAX_ITEM)
    };
    if !spec.loose {
        // A file with structure keeps every field its author wrote; the model
        // adds only the success criteria.
        let mut task = spec.clone();
        if task.success_criteria.is_empty() && !p.success_criteria.is_empty() {
            if criteria_ok(&p.success_criteria) {
                task.success_criteria = p.success_criteria;
            } else {
                drop(
                    "success_criteria",
                    format!("more than {MAX_LIST} items, or an empty or overlong one"),
                );
            }
        }
        return Ok((task, base_wd, dropped.into_inner()));
    }
    let note = raw_note(config, spec);
    // The parser's plan as a task file: what each field is tried on.
    let mut fields = Map::new();
    fields.insert("title".into(), json!(spec.title));
    fields.insert("prompt".into(), json!(note));
    fields.insert("workdir".into(), json!(base_wd.display().to_string()));
    if let Some(r) = &spec.role {
        fields.insert("role".into(), json!(r));
    }
    if let Some(t) = &spec.allowed_tools {
        fields.insert("allowed_tools".into(), json!(t));
    }
    if !spec.steps.is_empty() {
        fields.insert("steps".into(), json!(spec.steps));
    }
    let check = |fields: &Map<String, Value>| -> Result<(TaskSpec, PathBuf), String> {
        let bytes = serde_json::to_vec(&Value::Object(fields.clone())).map_err(|e| e.to_string())?;
        let (task, wd) = crate::task::check("mediated.json", &bytes, config, home)
            .map_err(|r| format!("{}: {}", r.reason, r.error))?;
        match wider(config, &task, spec) {
            Some(why) => Err(why),
            None => Ok((task, wd)),
        }
    };
    let mut current = check(&fields).map_err(|e| ("rejected_by_checks", e))?;
    let mut used = false;
    let try_field = |fields: &mut Map<String, Value>, key: &str, value: Value, current: &mut (TaskSpec, PathBuf)| {
        let mut next = fields.clone();
        next.insert(key.into(), value);
        match check(&next) {
            Ok(t) => {
                *fields = next;
                *current = t;
                true
            }
            Err(why) => {
                drop(key, why);
                false
            }
        }
    };
    // The parser read whether the work only reads; a model may pick another
    // role of the same kind, not turn a fix into a review (a narrower plan
    // that cannot do the work is no better).
    let reads_only = |tools: Option<&Vec<String>>| {
        tools.is_some_and(|t| {
            t.iter()
                .all(|t| crate::task::intent::READ_ONLY_TOOLS.contains(&t.as_str()))
        })
    };
    let parser_reads = reads_only(spec.allowed_tools.as_ref());
    let role_reads = |r: &str| reads_only(config.roles.get(r).and_then(|r| r.allowed_tools.as_ref()));
    let proposed_role = p
        .role
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(String::from);
    if let Some(r) = proposed_role.clone()
        && spec.role.as_deref() != Some(r.as_str())
        && config.roles.contains_key(&r)
        && role_reads(&r) != parser_reads
    {
        drop(
            "role",
            if parser_reads {
                format!("`{r}` may change files, and the note asks only to read")
            } else {
                format!("`{r}` only reads, and the note asks for changes")
            },
        );
    } else if let Some(r) = proposed_role
        && spec.role.as_deref() != Some(r.as_str())
    {
        // The role's tools, not the parser's: the role is the narrower one or it is dropped.
        let mut with_role = fields.clone();
        with_role.remove("allowed_tools");
        let mut cur = current.clone();
        if try_field(&mut with_role, "role", json!(r), &mut cur) {
            fields = with_role;
            current = cur;
            used = true;
        }
    }
    if let Some(w) = p.workdir.map(|w| w.trim().to_string()).filter(|w| !w.is_empty())
        && !spec.workdir_from_note
    {
        // Only a folder the note itself names: not one the model thought of.
        let named = w.trim_start_matches("./").trim_end_matches(['/', '\\']);
        if named.is_empty() || !note.contains(named) {
            drop("workdir", format!("the note does not name `{w}`"));
        } else {
            used |= try_field(&mut fields, "workdir", json!(w), &mut current);
        }
    }
    if p.steps.len() == 1 {
        drop("steps", "one step is no split of the work".into());
    } else if !p.steps.is_empty() && spec.steps.is_empty() && !names_stages(&note) {
        drop("steps", "the note names no stages (first, then, finally ...)".into());
    } else if !p.steps.is_empty() && spec.steps.is_empty() {
        if criteria_ok(&p.steps) {
            used |= try_field(&mut fields, "steps", json!(p.steps), &mut current);
        } else {
            drop(
                "steps",
                format!("more than {MAX_LIST} steps, or an empty or overlong one"),
            );
        }
    }
    let title = p.title.trim();
    match relevant(title, &note) {
        Ok(()) if title.chars().count() <= MAX_TITLE && title != spec.title => {
            used |= try_field(&mut fields, "title", json!(title), &mut current);
        }
        Ok(()) if title == spec.title => {}
        Ok(()) => drop("title", format!("longer than {MAX_TITLE} characters")),
        Err(why) => drop("title", why),
    }
    let rewrite = p.prompt.trim();
    match relevant(rewrite, &note) {
        Ok(()) => {
            // The note stays the prompt; the model's words go above it, marked.
            let prompt = format!("{rewrite}\n\n---\nThe note as its author wrote it:\n\n{note}");
            used |= try_field(&mut fields, "prompt", json!(prompt), &mut current);
        }
        Err(why) => drop("prompt", why),
    }
    let (mut task, wd) = current;
    task.success_criteria = spec.success_criteria.clone();
    if task.success_criteria.is_empty() && !p.success_criteria.is_empty() && !states_a_condition(&note) {
        drop(
            "success_criteria",
            "the note states no condition of done (must, ensure, passes ...)".into(),
        );
    } else if task.success_criteria.is_empty() && !p.success_criteria.is_empty() {
        if criteria_ok(&p.success_criteria) {
            task.success_criteria = p.success_criteria;
            used = true;
        } else {
            drop(
                "success_criteria",
                format!("more than {MAX_LIST} items, or an empty or overlong one"),
            );
        }
    }
    task.loose = true;
    task.intent = spec.intent.clone();
    let dropped = dropped.into_inner();
    if !used {
        return Err((
            "nothing_adopted",
            dropped
                .iter()
                .map(|d| format!("{}: {}", d.field, d.reason))
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }
    Ok((task, wd, dropped))
}

/// A field of a proposal that was not adopted, and why.
pub use crate::vocab::Dropped;

/// The note as its author wrote it: the parser's prompt without the prefix
/// of the role the parser chose.
fn raw_note(config: &Config, spec: &TaskSpec) -> String {
    let prefix = spec
        .role
        .as_ref()
        .and_then(|r| config.roles.get(r))
        .and_then(|r| r.prompt_prefix.clone())
        .unwrap_or_default();
    let prefix = prefix.trim();
    match spec.prompt.strip_prefix(prefix) {
        Some(rest) if !prefix.is_empty() => rest.trim_start().to_string(),
        _ => spec.prompt.clone(),
    }
}

/// Why `task` gives the agent more than `base` does, if it does: other
/// agent, more tools, higher limits, no guard.
fn wider(config: &Config, task: &TaskSpec, base: &TaskSpec) -> Option<String> {
    if task.agent != base.agent {
        return Some(format!(
            "it would run {} instead of {}",
            task.agent.name(),
            base.agent.name()
        ));
    }
    let agent = crate::agents::of(task.agent);
    let cfg = config.agent(task.agent);
    let granted = agent.grant_tools(task.allowed_tools.as_deref(), &cfg).granted;
    let before = agent.grant_tools(base.allowed_tools.as_deref(), &cfg).granted;
    if let Some(t) = granted.iter().find(|t| !before.contains(t)) {
        return Some(format!("it would grant {t}, which the parser's plan does not"));
    }
    let more = |new: Option<f64>, old: Option<f64>| match (new, old) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(n), Some(o)) => n > o,
    };
    let limits = [
        (
            "max_turns",
            task.max_turns.map(f64::from),
            base.max_turns.map(f64::from),
        ),
        (
            "max_tool_calls",
            task.max_tool_calls.map(f64::from),
            base.max_tool_calls.map(f64::from),
        ),
        (
            "timeout",
            task.timeout.map(|d| d.as_secs_f64()),
            base.timeout.map(|d| d.as_secs_f64()),
        ),
        ("budget_usd", task.budget_usd, base.budget_usd),
        ("retries", task.retries.map(f64::from), base.retries.map(f64::from)),
    ];
    if let Some((name, _, _)) = limits.iter().find(|(_, n, o)| more(*n, *o)) {
        return Some(format!("it would raise {name}"));
    }
    if base.mode == crate::task::Mode::Guarded && task.mode != crate::task::Mode::Guarded {
        return Some("it would drop the guarded mode".into());
    }
    None
}

/// Does the note speak of stages, so that a model's steps may be its own?
fn names_stages(note: &str) -> bool {
    let lower = format!(" {} ", note.to_lowercase().replace(['\n', ',', '.', ';', ':'], " "));
    let marks = [
        " first ",
        " then ",
        " next ",
        " after that ",
        " afterwards ",
        " finally ",
        " step ",
        " steps ",
        " stages ",
        " phase ",
    ];
    marks.iter().filter(|m| lower.contains(*m)).count() >= 2
}

/// Does the note state when the work is done, so that a model's criteria may be its own?
fn states_a_condition(note: &str) -> bool {
    let lower = note.to_lowercase();
    [
        "must",
        "should",
        "ensure",
        "make sure",
        "so that",
        "until",
        "pass",
        "green",
        "without breaking",
        "no regression",
        "done when",
        "expected",
        "acceptance",
    ]
    .iter()
    .any(|w| lower.contains(w))
}

/// Words of four letters or more, lower-case.
fn long_words(text: &str) -> std::collections::HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 4)
        .map(str::to_lowercase)
        .collect()
}

/// Is the model's `text` about the `note`? It must not open with a link, and
/// must share words with the note (a small model's answer that shares none is
/// about something else).
fn relevant(text: &str, note: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("empty".into());
    }
    let lower = text.trim_start().to_lowercase();
    if ["http://", "https://", "www.", "ftp://"]
        .iter()
        .any(|p| lower.starts_with(p))
    {
        return Err("it opens with a link".into());
    }
    let theirs = long_words(text);
    let ours = long_words(note);
    if ours.is_empty() || theirs.is_empty() {
        // A note (or answer) of short words only: nothing to compare.
        return Ok(());
    }
    let shared = theirs.iter().filter(|w| ours.contains(*w)).count();
    let needed = if theirs.len() <= 3 { 1 } else { 2.max(theirs.len() / 4) };
    if shared < needed {
        return Err(format!(
            "it shares {shared} of its {} words of four letters or more with the note (needs {needed}): not about it",
            theirs.len()
        ));
    }
    Ok(())
}
