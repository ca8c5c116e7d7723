//! Task files in the four forms of the spec: Markdown with optional YAML front
//! matter, plain text, YAML and JSON.

use super::{Isolation, Mode, Rejection, TaskSpec, intent};
use crate::agents::Sessions;
use crate::config::{AgentKind, RoleConfig};
use crate::yaml;
use fields::{FIELD_LIST, Fields, PrioritySpec};
use std::path::Path;

/// Extensions accepted in the inbox.
pub const EXTENSIONS: &[&str] = &["md", "markdown", "txt", "yaml", "yml", "json"];

/// Suffixes of names that writers use while a file is incomplete.
const PARTIAL_SUFFIXES: &[&str] = &[".tmp", ".part", ".partial", ".swp", ".crdownload", "~"];

/// Is this inbox entry ignored until renamed (hidden, editor or download temp)?
pub fn is_ignored_name(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with('~')
        || name.ends_with(".error.json")
        || PARTIAL_SUFFIXES.iter().any(|s| name.to_ascii_lowercase().ends_with(s))
}

/// The form of a task file, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Markdown,
    Text,
    Yaml,
    Json,
}

impl Form {
    pub fn of(path: &Path) -> Option<Form> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "md" | "markdown" => Some(Form::Markdown),
            "txt" => Some(Form::Text),
            "yaml" | "yml" => Some(Form::Yaml),
            "json" => Some(Form::Json),
            _ => None,
        }
    }
}

/// Limits that apply while parsing, and the roles a task may name.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_prompt_chars: usize,
    pub default_agent: AgentKind,
    /// Shared with the config: a task's parse does not copy them.
    pub roles: std::sync::Arc<std::collections::BTreeMap<String, RoleConfig>>,
}

impl Limits {
    /// The limits `config` sets for the task parser.
    pub fn of(config: &crate::config::Config) -> Self {
        Self {
            max_bytes: config.max_task_bytes,
            max_prompt_chars: config.max_prompt_chars,
            default_agent: config.default_agent,
            roles: config.roles.clone(),
        }
    }
}

/// Parses the bytes of the task file named `file_name`.
pub fn parse(file_name: &str, bytes: &[u8], limits: &Limits) -> Result<TaskSpec, Rejection> {
    let form = Form::of(Path::new(file_name)).ok_or_else(|| {
        Rejection::new(
            "unsupported_extension",
            format!("`{file_name}` has an extension the inbox does not accept"),
            "rename it to .md, .markdown, .txt, .yaml, .yml or .json",
        )
    })?;
    if bytes.len() as u64 > limits.max_bytes {
        return Err(too_large(bytes.len() as u64, limits.max_bytes));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Rejection::new(
            "not_utf8",
            format!(
                "the file is not valid UTF-8 (first bad byte at offset {})",
                e.valid_up_to()
            ),
            "save the file as UTF-8",
        )
    })?;
    if text.contains('\0') {
        return Err(Rejection::new(
            "nul_byte",
            "the file contains NUL bytes",
            "task files must be text; remove the NUL bytes",
        ));
    }
    // Accept a BOM and Windows line ends: editors write them.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text).replace("\r\n", "\n");

    let mut criteria = Vec::new();
    let loose = match form {
        Form::Text => true,
        Form::Markdown => !compat::is_seed_name(file_name) && split_raw(&text)?.is_none(),
        Form::Yaml | Form::Json => false,
    };
    let (fields, body) = match form {
        Form::Text => (Fields::default(), text),
        // The seed orchestrator's NAME.task.md files, mapped to today's fields.
        Form::Markdown
            if compat::is_seed_name(file_name)
                && let Some(seed) = compat::parse(&text)? =>
        {
            criteria = seed.success_criteria;
            (seed.fields, seed.body)
        }
        Form::Markdown => split_front_matter(&text)?,
        Form::Yaml => (parse_yaml_fields(&text)?, String::new()),
        Form::Json => (parse_json_fields(&text)?, String::new()),
    };
    let (mut fields, body) = (fields, body);
    // A loose note for an agent: what it asks for, read by the parser's rules
    // (a command's note is its shell command, read as it is).
    let read = (loose && limits.default_agent != AgentKind::Command).then(|| intent::read(&body));
    if let Some(i) = &read {
        loose::narrow_by_intent(&mut fields, &mut criteria, i, limits);
    }
    let steps_taken = fields.steps.is_some();
    let role_taken = fields.role.clone();
    let mut deps = deps::read(
        fields.after.take(),
        fields.after_any.take(),
        fields.context.take(),
        file_name,
    )?;
    (deps.not_before, deps.delay) = deps::start(fields.not_before.take(), fields.delay.take())?;
    let check = verify::read(fields.verify.take(), fields.verify_rounds.take())?;
    let mut spec = build(fields, body, limits)?;
    spec.deps = deps;
    spec.verify = check;
    spec.success_criteria = criteria;
    spec.loose = loose;
    if let Some(i) = read {
        spec.workdir_from_note = i.workdir.is_some();
        spec.intent = i
            .decisions
            .into_iter()
            .filter(|d| d.field != "steps" || steps_taken)
            .map(|mut d| {
                if d.field == "read_only" && role_taken.is_none() {
                    d.value = format!("tools {}", intent::READ_ONLY_TOOLS.join(", "));
                }
                d
            })
            .collect();
    }
    Ok(spec)
}

/// The size check done before reading a file.
pub fn too_large(size: u64, max: u64) -> Rejection {
    Rejection::new(
        "too_large",
        format!("the file is {size} bytes, more than the limit of {max}"),
        "shorten the prompt, or raise max_task_bytes in orchestrator.yaml",
    )
}

fn split_front_matter(text: &str) -> Result<(Fields, String), Rejection> {
    match split_raw(text)? {
        None => Ok((Fields::default(), text.to_string())),
        Some((yaml_text, body)) => Ok((parse_yaml_fields(yaml_text)?, body.to_string())),
    }
}

/// The front matter's YAML and the body after it (`None`: no front matter).
fn split_raw(text: &str) -> Result<Option<(&str, &str)>, Rejection> {
    let mut lines = text.split_inclusive('\n');
    let first = lines.next().unwrap_or("");
    if first.trim_end() != "---" {
        return Ok(None);
    }
    let mut yaml_len = 0;
    let mut offset = first.len();
    for line in lines {
        let t = line.trim_end();
        if t == "---" || t == "..." {
            let yaml_text = &text[first.len()..first.len() + yaml_len];
            return Ok(Some((yaml_text, &text[offset + line.len()..])));
        }
        yaml_len += line.len();
        offset += line.len();
    }
    Err(Rejection::new(
        "front_matter_unclosed",
        "the front matter starts with `---` but has no closing `---` line",
        "end the front matter with a line of three dashes `---`, then write the prompt",
    ))
}

fn field_error(message: String, form: &str) -> Rejection {
    if message.contains("unknown field") {
        let unknown = message
            .split_once("unknown field `")
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(name, _)| name);
        let known: Vec<&str> = FIELD_LIST.split(", ").collect();
        let hint = match unknown.and_then(|u| crate::suggest::closest(u, &known)) {
            Some(meant) => format!("did you mean `{meant}`? Known fields: {FIELD_LIST}"),
            None => format!("remove or correct the field; known fields: {FIELD_LIST}"),
        };
        Rejection::new("unknown_field", message, hint)
    } else {
        Rejection::new(
            "invalid_fields",
            message,
            format!("fix the {form} so it is a mapping of the task fields ({FIELD_LIST})"),
        )
    }
}

fn parse_yaml_fields(text: &str) -> Result<Fields, Rejection> {
    if text.trim().is_empty() {
        return Ok(Fields::default());
    }
    yaml::from_str::<Fields>(text).map_err(|m| field_error(m, "YAML"))
}

fn parse_json_fields(text: &str) -> Result<Fields, Rejection> {
    serde_json::from_str::<Fields>(text).map_err(|e| field_error(yaml::one_line(&e.to_string()), "JSON"))
}

fn invalid(field: &str, error: String, hint: &str) -> Rejection {
    Rejection::new("invalid_value", format!("{field}: {error}"), hint.to_string())
}

fn build(mut f: Fields, body: String, limits: &Limits) -> Result<TaskSpec, Rejection> {
    let role = f.role.clone().map(|r| r.trim().to_string());
    let prefix = match &role {
        Some(name) => role::apply_role(&mut f, name, &limits.roles)?,
        None => None,
    };
    let numbers::Numbers {
        max_turns,
        max_tool_calls,
        retries,
        timeout,
        stall_timeout,
        budget_usd,
        budget_tokens,
        priority,
    } = numbers::of(&f)?;
    let (agent, fallback) = match &f.agent {
        None => (limits.default_agent, Vec::new()),
        Some(choice) => {
            let agents = choice.resolve().map_err(|(kind, message)| {
                Rejection::new(
                    kind,
                    format!("agent: {message}"),
                    format!(
                        "name one agent, or a list of different ones in the order to try: [claude, codex] (agents: {})",
                        AgentKind::names()
                    ),
                )
            })?;
            (agents[0], agents[1..].to_vec())
        }
    };
    if fallback.contains(&AgentKind::Command) || (agent == AgentKind::Command && !fallback.is_empty()) {
        return Err(invalid(
            "agent",
            "a command is not an agent to fall back to or from".into(),
            "list only agent CLIs (claude, cline, codex), or use agent: command alone",
        ));
    }
    let mode = match f.mode.as_deref() {
        None | Some("apply") => Mode::Apply,
        Some("guarded") => Mode::Guarded,
        Some(other) => {
            return Err(invalid(
                "mode",
                format!("`{other}` is not a mode"),
                "use apply or guarded",
            ));
        }
    };

    let isolation = match f.isolation.as_deref() {
        None => None,
        Some("none") => Some(Isolation::None),
        Some("worktree") => Some(Isolation::Worktree),
        Some("copy") => Some(Isolation::Copy),
        Some(other) => {
            return Err(invalid(
                "isolation",
                format!("`{other}` is not an isolation"),
                "use worktree (a git worktree on a new branch), copy, or none",
            ));
        }
    };
    if mode == Mode::Guarded && isolation == Some(Isolation::None) {
        return Err(invalid(
            "isolation",
            "mode: guarded needs an isolated copy, not isolation: none".into(),
            "remove `isolation` (guarded picks worktree or copy) or use mode: apply",
        ));
    }

    let prompt_field = f.prompt.unwrap_or_default();
    let body = body.trim();
    let mut prompt = match (prompt_field.trim().is_empty(), body.is_empty()) {
        (false, false) => {
            return Err(Rejection::new(
                "prompt_twice",
                "the prompt is given both in the `prompt` field and in the body",
                "keep one of them",
            ));
        }
        (false, true) => prompt_field.trim().to_string(),
        (true, _) => body.to_string(),
    };
    let command = f.command.map(|c| c.trim().to_string()).filter(|c| !c.is_empty());
    // A NUL written as an escape (`\u0000` in JSON or YAML) passes the byte check
    // above; no program can take it in an argument or read it as text.
    let nul_in = |v: Option<&str>| v.is_some_and(|t| t.contains('\0'));
    if nul_in(Some(&prompt))
        || nul_in(command.as_deref())
        || nul_in(f.title.as_deref())
        || f.steps.iter().flatten().any(|st| st.contains('\0'))
    {
        return Err(Rejection::new(
            "nul_byte",
            "a field holds a NUL character (\\u0000)",
            "remove the NUL from the prompt, command, title or steps",
        ));
    }
    if command.is_some() && agent != AgentKind::Command {
        return Err(invalid(
            "command",
            format!("`command` is only for agent: command (this task uses {})", agent.name()),
            "set agent: command, or remove `command`",
        ));
    }
    let steps: Vec<String> = f
        .steps
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.trim().to_string())
        .collect();
    let sessions = crate::agents::of(agent).sessions();
    if let Sessions::NotResumable(why) = sessions
        && steps.len() > 1
    {
        // Steps continue one agent session; an agent that cannot continue
        // one would silently start each step afresh.
        return Err(Rejection::new(
            "unsupported_field",
            format!("`steps` need one agent session across the steps: {why}"),
            "put the steps in the prompt as a list, use agent: claude, or submit one task per step",
        ));
    }
    if steps.len() > 50 {
        return Err(invalid(
            "steps",
            format!("{} steps", steps.len()),
            "use at most 50 steps",
        ));
    }
    if let Some(i) = steps.iter().position(String::is_empty) {
        return Err(invalid(
            "steps",
            format!("step {} is empty", i + 1),
            "write what each step should do",
        ));
    }
    if command.is_some() && !steps.is_empty() {
        return Err(invalid(
            "steps",
            "a command task has either `command` or `steps`".into(),
            "for agent: command, each step is a shell command; drop `command`",
        ));
    }
    let start_step = match f.start_step {
        None => 1,
        Some(n) if n >= 1 && (n as usize) <= steps.len().max(1) => n as u32,
        Some(n) => {
            return Err(invalid(
                "start_step",
                format!("{n} is not a step of this task"),
                "use a step number from 1 to the number of steps",
            ));
        }
    };
    if let (Some(s), Sessions::NotResumable(why)) = (&f.session, sessions) {
        return Err(invalid(
            "session",
            format!("`{}` cannot be continued: {why}", s.trim()),
            "remove `session` (the task then starts a new session)",
        ));
    }
    let session = match f.session.map(|s| s.trim().to_string()) {
        None => None,
        Some(s) if sessions == Sessions::None => {
            return Err(invalid(
                "session",
                format!("`{s}`: {} has no agent session", crate::agents::of(agent).describe()),
                "remove `session`",
            ));
        }
        Some(s) if crate::agents::valid_session_id(agent, &s) => Some(s),
        Some(s) => {
            return Err(invalid(
                "session",
                format!("`{s}` is not a {} session id", agent.name()),
                "use the session_id of an earlier result (Claude's are UUIDs)",
            ));
        }
    };
    if prompt.is_empty() && steps.is_empty() && !(agent == AgentKind::Command && command.is_some()) {
        return Err(Rejection::new(
            "empty_prompt",
            "the task has no prompt",
            "write what the agent should do: the body of a .md/.txt file, or the `prompt` field of a .yaml/.json file",
        ));
    }
    let mut prompt_truncated = false;
    if prompt.chars().count() > limits.max_prompt_chars {
        prompt = prompt.chars().take(limits.max_prompt_chars).collect();
        prompt_truncated = true;
    }

    if let Some(tools) = &f.allowed_tools
        && let Some(bad) = tools
            .iter()
            .find(|t| t.trim().is_empty() || t.len() > 200 || t.contains(['\n', '\0']))
    {
        return Err(invalid(
            "allowed_tools",
            format!("`{bad}` is not a tool name"),
            "list tool names such as Read, Edit, \"Bash(cargo test:*)\"",
        ));
    }
    let context_from = f.context_from.clone().unwrap_or_default();
    if context_from.len() > 10 {
        return Err(invalid(
            "context_from",
            format!("{} tasks", context_from.len()),
            "name at most 10 earlier tasks",
        ));
    }
    if let Some(bad) = context_from.iter().find(|id| !crate::ids::is_well_formed(id)) {
        return Err(invalid(
            "context_from",
            format!("`{bad}` is not a task id"),
            "list ids of earlier tasks, as printed by `orchestrator submit`",
        ));
    }
    for (name, value) in [("parent_task_id", &f.parent_task_id), ("turn_of", &f.turn_of)] {
        if let Some(v) = value
            && !crate::ids::is_well_formed(v)
        {
            return Err(invalid(
                name,
                format!("`{v}` is not a task id"),
                "use the id of an earlier task, as printed by `orchestrator submit`",
            ));
        }
    }
    let title = match f.title.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()) {
        Some(t) if t.chars().count() > 200 => {
            return Err(invalid(
                "title",
                "longer than 200 characters".into(),
                "shorten the title",
            ));
        }
        Some(t) if t.contains('\n') => {
            return Err(invalid(
                "title",
                "has a line break".into(),
                "write the title on one line",
            ));
        }
        Some(t) => t,
        None => default_title(if !prompt.is_empty() {
            &prompt
        } else if let Some(c) = command.as_deref() {
            c
        } else {
            steps.first().map_or("", String::as_str)
        }),
    };
    if let Some(w) = &f.workdir
        && (w.trim().is_empty() || w.contains('\0'))
    {
        return Err(invalid(
            "workdir",
            "is empty".into(),
            "give a folder path, or remove workdir to use the default",
        ));
    }

    let prompt = match prefix {
        // A follow-up (`retry`, `resume`) carries its parent's prompt, which has the prefix already.
        Some(p) if !prompt.is_empty() && !prompt.starts_with(p.trim()) => format!("{}\n\n{prompt}", p.trim()),
        _ => prompt,
    };
    Ok(TaskSpec {
        title,
        role,
        success_criteria: Vec::new(),
        loose: false,
        intent: Vec::new(),
        workdir_from_note: false,
        context_from,
        deps: Default::default(),
        verify: None,
        prompt,
        prompt_truncated,
        agent,
        fallback,
        workdir: f.workdir,
        allowed_tools: f.allowed_tools,
        max_turns,
        max_tool_calls,
        timeout,
        stall_timeout,
        retries,
        priority,
        budget_usd,
        budget_tokens,
        mode,
        isolation,
        command,
        parent_task_id: f.parent_task_id,
        turn_of: f.turn_of,
        steps,
        session,
        start_step,
    })
}

/// The first non-empty line of the prompt, without Markdown heading marks, cut to 80 characters.
pub fn default_title(prompt: &str) -> String {
    let line = prompt
        .lines()
        .map(|l| l.trim().trim_start_matches('#').trim())
        .find(|l| !l.is_empty())
        .unwrap_or("untitled");
    if line.chars().count() > 80 {
        let mut t: String = line.chars().take(79).collect();
        t.push('…');
        t
    } else {
        line.to_string()
    }
}

mod compat;
mod deps;
mod fields;
mod loose;
mod numbers;
mod role;
#[cfg(test)]
mod tests;
mod verify;
