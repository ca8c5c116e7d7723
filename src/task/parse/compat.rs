//! The seed (Python) orchestrator's `NAME.task.md` files, accepted as they are
//! so its users can move their inboxes over unchanged (SPEC, Compatibility).
//!
//! Front matter `id`, `type` (code_review | summarize | fix | analyze),
//! `priority` (high | medium | low), `created`, `cwd`, `timeout_sec`,
//! `template_id`; a body with `# Title`, `**Target Files:**`, `**Prompt:**`,
//! `**Success Criteria:**` and `**Context:**` sections. Mapped: type -> role
//! of that name, cwd -> workdir, timeout_sec -> timeout, medium -> normal; the
//! title from the heading; the prompt from the Prompt section followed by the
//! target files, success criteria and context; the success criteria also
//! kept apart for the result's validation. `id`, `created` and `template_id`
//! are accepted and not used (the orchestrator gives its own id).
//!
//! A `.task.md` file is read this way only when its front matter has a key the
//! seed used and today's format does not; any other `.task.md` is a normal task.

use super::{Fields, PrioritySpec, Rejection, split_raw};
use crate::duration::Dur;
use serde::Deserialize;

/// The seed's front matter. Unknown keys are an error here too.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFields {
    id: Option<serde_json::Value>,
    #[serde(rename = "type")]
    kind: Option<String>,
    priority: Option<String>,
    created: Option<serde_json::Value>,
    cwd: Option<String>,
    timeout_sec: Option<serde_json::Value>,
    template_id: Option<serde_json::Value>,
}

const SEED_ONLY: [&str; 6] = ["id", "type", "created", "cwd", "timeout_sec", "template_id"];

/// A seed task, mapped.
pub(super) struct Seed {
    pub fields: Fields,
    pub body: String,
    pub success_criteria: Vec<String>,
}

pub(super) fn is_seed_name(file_name: &str) -> bool {
    file_name.to_ascii_lowercase().ends_with(".task.md")
}

/// `Ok(None)`: not a seed file (read it as a normal task).
pub(super) fn parse(text: &str) -> Result<Option<Seed>, Rejection> {
    let Some((yaml, body)) = split_raw(text)? else {
        return Ok(None);
    };
    let Ok(value) = crate::yaml::from_str::<serde_json::Value>(yaml) else {
        return Ok(None);
    };
    let is_seed = value
        .as_object()
        .is_some_and(|m| m.keys().any(|k| SEED_ONLY.contains(&k.as_str())));
    if !is_seed {
        return Ok(None);
    }
    let seed: SeedFields = serde_json::from_value(value).map_err(|e| {
        Rejection::new(
            "invalid_fields",
            format!("seed task file: {e}"),
            "a seed NAME.task.md has id, type, priority, created, cwd, timeout_sec and template_id in its front matter",
        )
    })?;
    let _ = (&seed.id, &seed.created, &seed.template_id);
    let mut f = Fields {
        role: seed.kind.map(|t| t.trim().to_string()),
        workdir: seed.cwd,
        ..Fields::default()
    };
    f.priority = match seed.priority.as_deref().map(str::trim) {
        None => None,
        Some("medium") => Some(PrioritySpec::Name("normal".into())),
        Some(p) => Some(PrioritySpec::Name(p.to_string())),
    };
    f.timeout = match seed.timeout_sec {
        None => None,
        Some(v) => match v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())) {
            Some(secs) if secs > 0 => Some(Dur(std::time::Duration::from_secs(secs))),
            _ => {
                return Err(Rejection::new(
                    "invalid_value",
                    format!("timeout_sec: `{v}` is not a positive number of seconds"),
                    "write timeout_sec as whole seconds, e.g. 600",
                ));
            }
        },
    };
    let sections = Sections::read(body);
    f.title = sections.title.clone();
    let mut prompt = sections.get("prompt").unwrap_or_default();
    if prompt.is_empty() {
        // No Prompt section: the body without its heading.
        prompt = sections.untitled_body.trim().to_string();
    }
    let mut parts = vec![prompt];
    for (key, label) in [
        ("target files", "Target files"),
        ("success criteria", "Success criteria"),
        ("context", "Context"),
    ] {
        if let Some(text) = sections.get(key).filter(|t| !t.is_empty()) {
            parts.push(format!("{label}:\n{text}"));
        }
    }
    let success_criteria = sections
        .get("success criteria")
        .map(|t| {
            t.lines()
                .map(|l| l.trim().trim_start_matches(['-', '*']).trim().to_string())
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(Seed {
        fields: f,
        body: parts
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("\n\n"),
        success_criteria,
    }))
}

/// The body's `# Title` and `**Name:**` sections.
struct Sections {
    title: Option<String>,
    /// The body with the heading line removed.
    untitled_body: String,
    named: Vec<(String, String)>,
}

impl Sections {
    fn read(body: &str) -> Self {
        let mut title = None;
        let mut untitled = Vec::new();
        let mut named: Vec<(String, String)> = Vec::new();
        for line in body.lines() {
            let t = line.trim();
            if title.is_none() && named.is_empty() && t.starts_with("# ") {
                title = Some(t[2..].trim().to_string());
                continue;
            }
            untitled.push(line);
            // `**Name:**` starts a section; text after it on the line belongs to it.
            if let Some(rest) = t.strip_prefix("**")
                && let Some((name, after)) = rest.split_once(":**")
            {
                named.push((name.trim().to_ascii_lowercase(), after.trim().to_string()));
                continue;
            }
            if let Some((_, text)) = named.last_mut() {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(line);
            }
        }
        Self {
            title,
            untitled_body: untitled.join("\n"),
            named,
        }
    }

    fn get(&self, key: &str) -> Option<String> {
        self.named
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{AgentKind, builtin_roles};
    use crate::task::TaskSpec;
    use crate::task::parse::{Limits, parse};

    const SEED: &str = "---\nid: task-20240115-001\ntype: code_review\npriority: medium\ncreated: 2024-01-15T10:30:00\ncwd: /srv/project\ntimeout_sec: 600\ntemplate_id: review-v1\n---\n# Review the auth module\n\n**Target Files:**\n- src/auth.py\n- src/session.py\n\n**Prompt:**\nReview the authentication flow for security issues.\n\n**Success Criteria:**\n- Every finding names a file and line\n- No files are modified\n\n**Context:**\nThe module was rewritten last week.\n";

    fn limits() -> Limits {
        Limits {
            max_bytes: 1 << 20,
            max_prompt_chars: 32_000,
            default_agent: AgentKind::Claude,
            roles: builtin_roles().into(),
        }
    }

    fn seed(text: &str) -> TaskSpec {
        parse("review.task.md", text.as_bytes(), &limits()).unwrap_or_else(|r| panic!("{r:?}"))
    }

    fn with(line: &str, value: &str) -> String {
        SEED.lines()
            .map(|l| {
                if l.starts_with(&format!("{line}:")) {
                    format!("{line}: {value}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_whole_seed_file_maps_to_this_spec() {
        let s = seed(SEED);
        assert_eq!(s.title, "Review the auth module");
        assert_eq!(s.role.as_deref(), Some("code_review"));
        assert_eq!(s.workdir.as_deref(), Some("/srv/project"));
        assert_eq!(s.timeout, Some(std::time::Duration::from_secs(600)));
        assert_eq!(s.priority, 0);
        assert_eq!(
            s.prompt,
            "You are reviewing code. Do not modify any file. Report each finding with its file and line, most important first.\n\n\
             Review the authentication flow for security issues.\n\n\
             Target files:\n- src/auth.py\n- src/session.py\n\n\
             Success criteria:\n- Every finding names a file and line\n- No files are modified\n\n\
             Context:\nThe module was rewritten last week."
        );
        assert_eq!(
            s.success_criteria,
            ["Every finding names a file and line", "No files are modified"]
        );
        assert_eq!(
            s.allowed_tools,
            Some(vec!["Read".into(), "Glob".into(), "Grep".into(), "LS".into()])
        );
    }

    #[test]
    fn field_type_picks_the_role_of_that_name() {
        for (t, tools) in [("code_review", 4), ("summarize", 4), ("analyze", 4), ("fix", 7)] {
            let s = seed(&with("type", t));
            assert_eq!(s.role.as_deref(), Some(t));
            assert_eq!(s.allowed_tools.unwrap().len(), tools, "{t}");
        }
        let r = parse("x.task.md", with("type", "deploy").as_bytes(), &limits()).unwrap_err();
        assert_eq!(r.reason, "unknown_role");
    }

    #[test]
    fn field_priority_medium_is_normal() {
        assert_eq!(seed(&with("priority", "medium")).priority, 0);
        assert_eq!(seed(&with("priority", "high")).priority, 100);
        assert_eq!(seed(&with("priority", "low")).priority, -100);
    }

    #[test]
    fn field_cwd_is_the_workdir() {
        assert_eq!(seed(&with("cwd", "~/code/api")).workdir.as_deref(), Some("~/code/api"));
    }

    #[test]
    fn field_timeout_sec_is_the_timeout() {
        assert_eq!(
            seed(&with("timeout_sec", "90")).timeout,
            Some(std::time::Duration::from_secs(90))
        );
        let r = parse("x.task.md", with("timeout_sec", "-5").as_bytes(), &limits()).unwrap_err();
        assert_eq!(r.reason, "invalid_value");
    }

    #[test]
    fn fields_id_created_and_template_id_are_accepted_and_unused() {
        let s = seed(&with("template_id", "other-v9"));
        assert_eq!(s.title, "Review the auth module");
        let r = parse("x.task.md", with("template_id", "x\nowner: me").as_bytes(), &limits()).unwrap_err();
        assert_eq!(r.reason, "invalid_fields", "an unknown seed key is still an error");
    }

    #[test]
    fn section_title_is_the_title() {
        assert_eq!(
            seed(&SEED.replace("# Review the auth module", "# Check sessions")).title,
            "Check sessions"
        );
    }

    #[test]
    fn section_prompt_leads_the_prompt() {
        let s = seed(&SEED.replace("Review the authentication flow", "Audit the flow"));
        assert!(
            s.prompt
                .contains("\n\nAudit the flow for security issues.\n\nTarget files:"),
            "{}",
            s.prompt
        );
    }

    #[test]
    fn section_target_files_go_into_the_prompt() {
        assert!(
            seed(SEED)
                .prompt
                .contains("Target files:\n- src/auth.py\n- src/session.py")
        );
    }

    #[test]
    fn section_success_criteria_go_into_the_prompt_and_the_validation() {
        let s = seed(SEED);
        assert!(
            s.prompt
                .contains("Success criteria:\n- Every finding names a file and line")
        );
        assert_eq!(s.success_criteria.len(), 2);
    }

    #[test]
    fn section_context_goes_into_the_prompt() {
        assert!(
            seed(SEED)
                .prompt
                .ends_with("Context:\nThe module was rewritten last week.")
        );
    }

    #[test]
    fn a_task_md_in_todays_format_is_a_normal_task() {
        let s = parse(
            "today.task.md",
            b"---\ntitle: New style\nmax_turns: 3\n---\nDo it.\n",
            &limits(),
        )
        .unwrap();
        assert_eq!(
            (s.title.as_str(), s.max_turns, s.prompt.as_str()),
            ("New style", Some(3), "Do it.")
        );
        assert!(s.success_criteria.is_empty());
    }
}
