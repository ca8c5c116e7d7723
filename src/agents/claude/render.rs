//! Claude's stream-json records as text for `orchestrator logs`: the session,
//! the agent's words, each tool call with its main argument, tool errors, API
//! retries, rate limits and the result.

use crate::agents::main_argument;
use serde_json::Value;

/// One record (`None`: nothing worth showing).
pub fn render(v: &Value) -> Option<String> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    match s("type") {
        "system" => match s("subtype") {
            "init" => Some(format!(
                "● session {} ({}) in {}",
                s("session_id"),
                s("model"),
                s("cwd")
            )),
            "api_retry" => Some(format!(
                "↻ API retry {}/{} ({})",
                v["attempt"].as_u64().unwrap_or(0),
                v["max_retries"].as_u64().unwrap_or(0),
                s("error")
            )),
            "task_started" => Some(format!("◆ subagent: {}", s("description"))),
            _ => None,
        },
        "assistant" => {
            let mut parts = Vec::new();
            if let Some(e) = v.get("error").and_then(Value::as_str) {
                parts.push(format!("✗ API error ({e})"));
            }
            let sub = if v.get("parent_tool_use_id").is_some_and(|p| !p.is_null()) {
                "  "
            } else {
                ""
            };
            for b in v["message"]["content"].as_array().into_iter().flatten() {
                match b["type"].as_str() {
                    Some("text") => parts.push(format!("{sub}{}", b["text"].as_str().unwrap_or(""))),
                    Some("tool_use") => {
                        let name = b["name"].as_str().unwrap_or("?");
                        let arg = main_argument(&b["input"]).map(|a| format!("({a})")).unwrap_or_default();
                        parts.push(format!("{sub}→ {name}{arg}"));
                    }
                    _ => {}
                }
            }
            (!parts.is_empty()).then(|| parts.join("\n"))
        }
        "user" => {
            let errors: Vec<String> = v["message"]["content"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|b| b["is_error"].as_bool() == Some(true))
                .map(|b| {
                    let text = match &b["content"] {
                        Value::String(t) => t.clone(),
                        other => other.to_string(),
                    };
                    format!("  ✗ {}", text.lines().next().unwrap_or(""))
                })
                .collect();
            (!errors.is_empty()).then(|| errors.join("\n"))
        }
        "rate_limit_event" if v["rate_limit_info"]["status"] == "rejected" => Some(format!(
            "⏸ rate limited (resets at {})",
            v["rate_limit_info"]["resetsAt"]
        )),
        "result" => {
            let cost = v
                .get("total_cost_usd")
                .and_then(Value::as_f64)
                .map(|c| format!(", ${c:.4}"))
                .unwrap_or_default();
            let err = if v["is_error"].as_bool() == Some(true) {
                " (error)"
            } else {
                ""
            };
            let errors = v["errors"]
                .as_array()
                .map(|e| {
                    format!(
                        ": {}",
                        e.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; ")
                    )
                })
                .unwrap_or_default();
            Some(format!(
                "■ {}{err}, {} turns{cost}{errors}",
                s("subtype"),
                v["num_turns"].as_u64().unwrap_or(0)
            ))
        }
        _ => None,
    }
}
