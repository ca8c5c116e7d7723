//! Cline's `--json` records as text for `orchestrator logs`.

use crate::agents::main_argument;
use serde_json::Value;

/// One Cline record. Streamed text arrives as many `content_start` pieces;
/// only the finished text (`content_end`) is shown.
pub fn render(v: &Value) -> Option<String> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    match s(v, "type").as_str() {
        "run_start" => Some(format!("● cline ({} via {})", s(v, "modelId"), s(v, "providerId"))),
        "run_result" => {
            let cost = v["usage"]["totalCost"]
                .as_f64()
                .map(|c| format!(", ${c:.4}"))
                .unwrap_or_default();
            Some(format!(
                "■ {}, {} turns{cost}",
                s(v, "finishReason"),
                v["iterations"].as_u64().unwrap_or(0)
            ))
        }
        "run_aborted" => Some(format!("■ aborted ({}): {}", s(v, "reason"), s(v, "message"))),
        "agent_event" => {
            let e = &v["event"];
            match (s(e, "type").as_str(), s(e, "contentType").as_str()) {
                ("content_end", "text") => Some(s(e, "text")).filter(|t| !t.is_empty()),
                ("content_start", "tool") => {
                    let arg = main_argument(&e["input"]).map(|a| format!("({a})")).unwrap_or_default();
                    Some(format!("→ {}{arg}", s(e, "toolName")))
                }
                ("content_end", "tool") if e.get("error").is_some_and(|x| !x.is_null()) => {
                    let err = match &e["error"] {
                        Value::String(t) => t.clone(),
                        other => other.to_string(),
                    };
                    Some(format!("  ✗ {}", err.lines().next().unwrap_or("")))
                }
                ("error", _) => Some(format!("✗ {}", e["error"]["message"].as_str().unwrap_or("error"))),
                ("notice", _) => Some(format!("! {}", s(e, "message"))),
                _ => None,
            }
        }
        _ => None,
    }
}
