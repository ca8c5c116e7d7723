//! Codex's `--json` events as text for `orchestrator logs`.

use serde_json::Value;

/// One Codex event. Items are shown when they complete (a command when it
/// starts too, so a long one is seen running).
pub fn render(v: &Value) -> Option<String> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let item = &v["item"];
    match (s(v, "type").as_str(), s(item, "type").as_str()) {
        ("thread.started", _) => Some(format!("● codex (thread {})", s(v, "thread_id"))),
        ("item.completed", "agent_message") => Some(s(item, "text")).filter(|t| !t.is_empty()),
        ("item.started", "command_execution") => Some(format!("→ {}", s(item, "command"))),
        ("item.completed", "command_execution") => match item["exit_code"].as_i64() {
            Some(0) => None,
            Some(code) => Some(format!("  ✗ exit {code}")),
            None => Some(format!("  ✗ {}", s(item, "status"))),
        },
        ("item.completed", "file_change") => {
            let paths: Vec<String> = item["changes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| format!("{} {}", s(c, "kind"), s(c, "path")))
                .collect();
            Some(format!("→ edit: {}", paths.join(", ")))
        }
        ("item.completed", "mcp_tool_call") => Some(format!("→ {}.{}", s(item, "server"), s(item, "tool"))),
        ("item.completed", "web_search") => Some(format!("→ web search: {}", s(item, "query"))),
        ("item.completed", "error") => Some(format!("! {}", s(item, "message"))),
        ("turn.completed", _) => {
            let u = &v["usage"];
            let n = |k: &str| u[k].as_u64().unwrap_or(0);
            Some(format!(
                "■ completed, {} tokens in ({} cached), {} out",
                n("input_tokens"),
                n("cached_input_tokens"),
                n("output_tokens")
            ))
        }
        ("turn.failed", _) => Some(format!(
            "■ failed: {}",
            v["error"]["message"].as_str().unwrap_or("error")
        )),
        ("error", _) => Some(format!("✗ {}", s(v, "message"))),
        _ => None,
    }
}
