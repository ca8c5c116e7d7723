//! opencode's JSON events as text for `orchestrator logs`.

use crate::agents::main_argument;
use serde_json::Value;

/// One opencode event.
pub fn render(v: &Value) -> Option<String> {
    let part = &v["part"];
    match v["type"].as_str()? {
        "text" => part["text"].as_str().map(String::from).filter(|t| !t.trim().is_empty()),
        "tool_use" => {
            let tool = part["tool"].as_str().unwrap_or("tool");
            let state = &part["state"];
            let arg = state
                .get("input")
                .and_then(main_argument)
                .map(|a| format!("({a})"))
                .unwrap_or_default();
            Some(match state["error"].as_str() {
                Some(e) => format!("→ {tool}{arg}\n  ✗ {}", e.lines().next().unwrap_or("")),
                None => format!("→ {tool}{arg}"),
            })
        }
        "step_finish" if part["reason"] != "tool-calls" => {
            let t = &part["tokens"];
            let n = |v: &Value| v.as_u64().unwrap_or(0);
            Some(format!(
                "■ {}, {} tokens in ({} cached), {} out",
                part["reason"].as_str().unwrap_or(""),
                n(&t["input"]) + n(&t["cache"]["read"]) + n(&t["cache"]["write"]),
                n(&t["cache"]["read"]),
                n(&t["output"]) + n(&t["reasoning"])
            ))
        }
        "error" => Some(format!(
            "✗ {}",
            v["error"]["data"]["message"]
                .as_str()
                .or(v["error"]["name"].as_str())
                .unwrap_or("error")
        )),
        _ => None,
    }
}
