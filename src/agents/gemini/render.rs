//! Gemini's stream-json events as text for `orchestrator logs`.

use crate::agents::main_argument;
use serde_json::Value;

/// One Gemini event. Streamed text comes in pieces (`delta`); each is shown
/// as it came, on its own line only when it ends one.
pub fn render(v: &Value) -> Option<String> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    match s("type").as_str() {
        "init" => Some(format!("● gemini ({}, session {})", s("model"), s("session_id"))),
        "message" if s("role") == "assistant" => Some(s("content")).filter(|t| !t.trim().is_empty()),
        "tool_use" => {
            let arg = v
                .get("parameters")
                .and_then(main_argument)
                .map(|a| format!("({a})"))
                .unwrap_or_default();
            Some(format!("→ {}{arg}", s("tool_name")))
        }
        "tool_result" if s("status") == "error" => Some(format!(
            "  ✗ {}",
            v["error"]["message"]
                .as_str()
                .unwrap_or("failed")
                .lines()
                .next()
                .unwrap_or("")
        )),
        "error" => Some(format!("! {}", s("message"))),
        "result" => {
            let st = &v["stats"];
            let n = |k: &str| st[k].as_u64().unwrap_or(0);
            match s("status").as_str() {
                "success" => Some(format!(
                    "■ success, {} tokens in ({} cached), {} out, {} tool calls",
                    n("input_tokens"),
                    n("cached"),
                    n("output_tokens"),
                    n("tool_calls")
                )),
                other => Some(format!("■ {other}: {}", v["error"]["message"].as_str().unwrap_or(""))),
            }
        }
        _ => None,
    }
}
