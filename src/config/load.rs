//! Loading the config: built-in defaults < `orchestrator.yaml` <
//! `ORCHESTRATOR_*` variables < `--set` flags, merged as JSON values and then
//! checked whole, with errors that say which key and what to do.
//!
//! The file may not be a config at all (a link to another file, a file
//! written by someone else): an error never quotes a value from it, and
//! names an unknown key only when it looks like one.

use super::{AgentKind, Config, MediatorConfig, Prices};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where an effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Default,
    File,
    Env,
    Flag,
}

/// A config error, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid YAML: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error("{origin} sets `{key}` to `{value}`, which is not valid YAML: {message}")]
    Override {
        origin: String,
        key: String,
        value: String,
        message: String,
    },
    #[error(
        "invalid configuration: {0}. Fix the key in orchestrator.yaml (or the ORCHESTRATOR_* variable / flag that sets it)"
    )]
    Invalid(String),
}

/// The effective config and where each value came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// Dotted key -> origin, for every leaf that is not a default.
    pub origins: BTreeMap<String, Origin>,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
}

/// Environment variables named `ORCHESTRATOR_*` that are not config keys.
/// (An agent's own environment has the task's marks: an `orchestrator` command
/// run by an agent must not read them as config keys.)
const NON_CONFIG_ENV: &[&str] = &[
    "ORCHESTRATOR_HOME",
    "ORCHESTRATOR_LOG",
    "ORCHESTRATOR_CONFIG",
    "ORCHESTRATOR_TASK_ID",
    "ORCHESTRATOR_ATTEMPT",
    "ORCHESTRATOR_DAEMON_PID",
    "ORCHESTRATOR_UNIT_DIR",
    "ORCHESTRATOR_SYSTEMCTL",
    "ORCHESTRATOR_LAUNCHCTL",
];

/// Loads the config for `home`: `file` (or `orchestrator.yaml` in the home if
/// present), then `env` (pairs of `ORCHESTRATOR_*` variables), then `flags`
/// (dotted key, YAML value).
pub fn load(
    home_config: &Path,
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    flags: &[(String, String)],
) -> Result<Loaded, ConfigError> {
    let mut merged = serde_json::to_value(Config::default()).expect("defaults serialise");
    let mut origins = BTreeMap::new();

    let path = file
        .map(Path::to_path_buf)
        .or_else(|| home_config.exists().then(|| home_config.to_path_buf()));
    if let Some(path) = &path {
        let text = crate::store::read::read_text(path, crate::store::read::max::CONFIG).map_err(|source| {
            ConfigError::Read {
                path: path.clone(),
                source,
            }
        })?;
        let value: Value = if text.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            crate::yaml::from_str(&text).map_err(|message| ConfigError::Yaml {
                path: path.clone(),
                message,
            })?
        };
        if !value.is_object() && !value.is_null() {
            return Err(ConfigError::Yaml {
                path: path.clone(),
                message: "the top level must be a mapping of keys".into(),
            });
        }
        merge(&mut merged, value, "", Origin::File, &mut origins);
    }

    let mut env: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("ORCHESTRATOR_") && !NON_CONFIG_ENV.contains(&k.as_str()))
        .collect();
    env.sort();
    for (name, value) in env {
        let key = name["ORCHESTRATOR_".len()..].to_ascii_lowercase().replace("__", ".");
        apply_override(&mut merged, &key, &value, &name, Origin::Env, &mut origins)?;
    }
    for (key, value) in flags {
        apply_override(
            &mut merged,
            key,
            value,
            &format!("--set {key}"),
            Origin::Flag,
            &mut origins,
        )?;
    }

    let config: Config = serde_path_to_error::deserialize(merged).map_err(|e| ConfigError::Invalid(describe(&e)))?;
    validate(&config)?;
    Ok(Loaded {
        config,
        origins,
        file: path,
    })
}

fn validate(c: &Config) -> Result<(), ConfigError> {
    let bad = |m: String| Err(ConfigError::Invalid(m));
    if c.max_concurrent == 0 || c.max_concurrent > 1024 {
        return bad(format!(
            "max_concurrent must be between 1 and 1024, not {}",
            c.max_concurrent
        ));
    }
    if c.max_interruptions == 0 || c.max_interruptions > 1000 {
        return bad(format!(
            "max_interruptions must be between 1 and 1000, not {}",
            c.max_interruptions
        ));
    }
    if c.retry.max_attempts == 0 || c.retry.max_attempts > 100 {
        return bad(format!(
            "retry.max_attempts must be between 1 and 100, not {}",
            c.retry.max_attempts
        ));
    }
    if c.debounce_ms > 60_000 {
        return bad(format!("debounce_ms must be at most 60000, not {}", c.debounce_ms));
    }
    if c.rescan_interval.0.is_zero() {
        return bad("rescan_interval must be more than 0".into());
    }
    if let Some(b) = c.budget_usd
        && !(b.is_finite() && b > 0.0)
    {
        return bad(format!("budget_usd must be a positive number, not {b}"));
    }
    for (name, a) in c.agents.iter() {
        if let Some(p) = a.prices.as_ref().and_then(Prices::problem) {
            return bad(format!("agents.{name}.prices: {p}"));
        }
        if a.stall_timeout.is_some_and(|d| d.0.is_zero()) {
            return bad(format!(
                "agents.{name}.stall_timeout must be more than 0 (every run would stall at once)"
            ));
        }
        if AgentKind::parse(name).is_none() {
            return bad(format!("agents.{name}: unknown agent (known: {})", AgentKind::names()));
        }
    }
    if c.max_output_bytes < 1024 {
        return bad("max_output_bytes must be at least 1024".into());
    }
    // Values that would make every task fail or spin: refused at start, not met
    // by every task.
    if c.timeout.0.is_zero() {
        return bad("timeout must be more than 0 (every task would time out at once)".into());
    }
    if c.max_task_bytes == 0 {
        return bad("max_task_bytes must be more than 0 (every task file would be too large)".into());
    }
    if c.max_prompt_chars == 0 {
        return bad("max_prompt_chars must be more than 0 (every prompt would be cut to nothing)".into());
    }
    if c.recovery_interval.0.is_zero() || c.progress_interval.0.is_zero() {
        return bad("recovery_interval and progress_interval must be more than 0".into());
    }
    if let Some(p) = c.retention.problem() {
        return bad(p);
    }
    if let Some(p) = c.notify.problem(crate::vocab::EVENT_NAMES) {
        return bad(p);
    }
    if let Some(p) = c.mediator.as_ref().and_then(MediatorConfig::problem) {
        return bad(p);
    }
    if let Some(p) = c.budget.problem() {
        return bad(p);
    }
    if let Some(p) = super::schedules::problem(&c.schedules, &crate::task::parse::Limits::of(c)) {
        return bad(p);
    }
    for (name, r) in c.roles.iter() {
        if let Some(Err((_, why))) = r.agent.as_ref().map(crate::vocab::AgentChoice::resolve) {
            return bad(format!("roles.{name}.agent: {why}"));
        }
        if let Some(m) = &r.mode
            && !["apply", "guarded"].contains(&m.as_str())
        {
            return bad(format!("roles.{name}.mode: `{m}` is not a mode (apply, guarded)"));
        }
        if let Some(i) = &r.isolation
            && !["worktree", "copy", "none"].contains(&i.as_str())
        {
            return bad(format!(
                "roles.{name}.isolation: `{i}` is not an isolation (worktree, copy, none)"
            ));
        }
    }
    Ok(())
}

/// Sets dotted `key` to `value` parsed as a YAML scalar or flow value.
fn apply_override(
    merged: &mut Value,
    key: &str,
    value: &str,
    origin_name: &str,
    origin: Origin,
    origins: &mut BTreeMap<String, Origin>,
) -> Result<(), ConfigError> {
    let parsed: Value = if value.trim().is_empty() {
        Value::Null
    } else {
        crate::yaml::from_str(value).map_err(|message| ConfigError::Override {
            origin: origin_name.to_string(),
            key: key.to_string(),
            value: value.to_string(),
            message,
        })?
    };
    let mut nested = parsed;
    for part in key.split('.').rev() {
        let mut m = Map::new();
        m.insert(part.to_string(), nested);
        nested = Value::Object(m);
    }
    merge(merged, nested, "", origin, origins);
    Ok(())
}

/// Deep-merges `over` into `base`; objects merge key by key, anything else replaces.
fn merge(base: &mut Value, over: Value, prefix: &str, origin: Origin, origins: &mut BTreeMap<String, Origin>) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match b.get_mut(&k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v, &key, origin, origins),
                    _ => {
                        b.insert(k, v);
                        origins.insert(key, origin);
                    }
                }
            }
        }
        (b, o) => {
            *b = o;
            origins.insert(prefix.to_string(), origin);
        }
    }
}

/// What is wrong, for a person: the key's dotted path, a suggestion for a
/// misspelt key, and never a value from the file (it may be a secret, or a
/// line of another file the config links to).
fn describe(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    let inner = e.inner().to_string();
    let at = |what: &str| {
        if path == "." || path.is_empty() {
            what.to_string()
        } else {
            format!("`{path}`: {what}")
        }
    };
    if let Some(rest) = inner.strip_prefix("unknown field `") {
        let (key, rest) = rest.split_once('`').unwrap_or((rest, ""));
        let known: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
        let parent = path.rsplit_once('.').map(|(p, _)| p).filter(|_| path.contains('.'));
        let full = |k: &str| match parent {
            Some(p) => format!("{p}.{k}"),
            None => k.to_string(),
        };
        if !looks_like_key(key) {
            return format!(
                "a key that is not a config key, and does not look like one (not shown){}; is this file a config?",
                parent.map(|p| format!(" under `{p}`")).unwrap_or_default()
            );
        }
        let hint = match crate::suggest::closest(key, &known) {
            Some(k) => format!("; did you mean `{}`?", full(k)),
            None if known.is_empty() => String::new(),
            None => format!(" (known here: {})", known.join(", ")),
        };
        return format!("unknown key `{}`{hint}", full(key));
    }
    at(&without_quoted_values(&inner))
}

/// A key a person may have meant: lower-case letters, digits and `_`, short.
fn looks_like_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// serde's message with the values it quotes left out: `"..."` anywhere, and
/// `` `...` `` before "expected" (after it come the names a value may take,
/// which help: "unknown variant, expected one of `claude`, `cline`").
fn without_quoted_values(text: &str) -> String {
    let (said, expected) = match text.find("expected") {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let mut out = String::new();
    let mut quote: Option<char> = None;
    for c in said.chars() {
        match (quote, c) {
            (None, '"' | '`') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, c) => out.push(c),
        }
    }
    for c in expected.chars().filter(|c| *c != '"') {
        out.push(c);
    }
    out.replace("  ", " ").replace(" ,", ",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(yaml: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("orchestrator.yaml");
        std::fs::write(&f, yaml).unwrap();
        load(&f, None, Vec::new(), &[]).unwrap_err().to_string()
    }

    #[test]
    fn a_misspelt_key_gets_the_key_it_meant() {
        let e = error_of("max_concurent: 2\n");
        assert!(
            e.contains("unknown key `max_concurent`; did you mean `max_concurrent`?"),
            "{e}"
        );
        let e = error_of("agents:\n  command:\n    comand: sh\n");
        assert!(
            e.contains("unknown key `agents.command.comand`; did you mean `agents.command.command`?"),
            "{e}"
        );
        let e = error_of("retry:\n  max_attemps: 2\n");
        assert!(e.contains("did you mean `retry.max_attempts`?"), "{e}");
    }

    #[test]
    fn no_value_of_the_file_is_quoted() {
        let e = error_of("max_concurrent: \"SECRET-VALUE-123\"\n");
        assert!(!e.contains("SECRET-VALUE-123"), "{e}");
        assert!(e.contains("`max_concurrent`: invalid type: string, expected"), "{e}");
        // A line of another file, as a link to /etc/shadow would give.
        let e = error_of("default_agent: s3cr3t-value\ntimeout: hunter2\n");
        assert!(!e.contains("s3cr3t") && e.contains("`claude`"), "{e}");
        let e = error_of("timeout: hunter2\n");
        assert!(!e.contains("hunter2") && e.contains("`timeout`"), "{e}");
        let e = error_of("root:$6$saltsalt$HASHVALUE:19000:0:99999:7:::\n");
        assert!(!e.contains("HASHVALUE") && !e.contains("root"), "{e}");
        assert!(e.contains("is this file a config?"), "{e}");
    }
}
