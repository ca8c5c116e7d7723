//! The model's API: one chat request that must answer JSON of a schema.
//!
//! OpenAI-compatible servers get `response_format: {type: json_schema}`;
//! Ollama's native API gets `format: <schema>`. Either way the answer is
//! parsed and checked again here: a server may ignore the schema.

use crate::config::{MediatorConfig, MediatorKind};
use serde_json::{Value, json};

/// Why the model gave no usable answer: a short, stable reason and the detail.
#[derive(Debug, Clone, PartialEq)]
pub struct NoAnswer {
    /// `timeout`, `unreachable`, `http_error`, `invalid_json`, ...
    pub reason: &'static str,
    pub detail: String,
}

impl NoAnswer {
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// A model that did not answer (unreachable, timed out, a server error) is not
/// asked again for this long: each task would wait out the timeout again.
const REST: std::time::Duration = std::time::Duration::from_secs(60);

/// When the model last failed to answer, and why.
static DOWN: std::sync::Mutex<Option<(std::time::Instant, String)>> = std::sync::Mutex::new(None);

/// Asks the model; its answer as JSON. A server error is asked again once;
/// after a failure to answer, the next minute's questions get `unavailable` at once.
pub fn ask(m: &MediatorConfig, system: &str, user: &str, schema: &Value) -> Result<Value, NoAnswer> {
    if let Some((at, why)) = DOWN.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
        && at.elapsed() < REST
    {
        return Err(NoAnswer::new(
            "unavailable",
            format!(
                "the model failed to answer {} s ago ({why}); asked again after a minute",
                at.elapsed().as_secs()
            ),
        ));
    }
    let mut answer = ask_now(m, system, user, schema);
    // One server error is asked once more (a small model server may fail a
    // request now and then); only a repeated failure rests the model.
    if matches!(&answer, Err(e) if e.reason == "http_error") {
        answer = ask_now(m, system, user, schema);
    }
    let mut down = DOWN.lock().unwrap_or_else(|e| e.into_inner());
    match &answer {
        Err(e) if matches!(e.reason, "timeout" | "unreachable" | "http_error") => {
            *down = Some((std::time::Instant::now(), format!("{}: {}", e.reason, e.detail)));
        }
        _ => *down = None,
    }
    answer
}

fn ask_now(m: &MediatorConfig, system: &str, user: &str, schema: &Value) -> Result<Value, NoAnswer> {
    let http: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(m.timeout.0))
        .http_status_as_error(false)
        .build()
        .into();
    let messages = json!([{"role": "system", "content": system}, {"role": "user", "content": user}]);
    let base = m.url.trim_end_matches('/');
    let (url, body) = match m.kind {
        MediatorKind::Openai => (
            format!("{base}/chat/completions"),
            json!({
                "model": m.model,
                "messages": messages,
                "temperature": 0,
                "stream": false,
                "response_format": {"type": "json_schema", "json_schema": {"name": "task", "strict": true, "schema": schema}},
            }),
        ),
        MediatorKind::Ollama => (
            format!("{base}/api/chat"),
            json!({"model": m.model, "messages": messages, "stream": false, "format": schema, "options": {"temperature": 0}}),
        ),
    };
    let (mut status, mut v) = post(&http, m, &url, &body)?;
    if m.kind == MediatorKind::Openai && matches!(status, 400 | 422) {
        // A server without JSON schemas (older vLLM, some hosted APIs): JSON
        // mode, the keys being in the instructions; the answer is checked anyway.
        let mut plain = body.clone();
        plain["response_format"] = json!({"type": "json_object"});
        (status, v) = post(&http, m, &url, &plain)?;
    }
    if !(200..300).contains(&status) {
        let why = v["error"]["message"]
            .as_str()
            .or(v["error"].as_str())
            .unwrap_or("no message");
        return Err(NoAnswer::new("http_error", format!("HTTP {status}: {why}")));
    }
    let content = match m.kind {
        MediatorKind::Openai => v["choices"][0]["message"]["content"].as_str(),
        MediatorKind::Ollama => v["message"]["content"].as_str(),
    };
    let Some(content) = content else {
        return Err(NoAnswer::new("invalid_answer", "the answer has no message content"));
    };
    serde_json::from_str(content.trim()).map_err(|e| NoAnswer::new("invalid_json", format!("not JSON: {e}")))
}

/// One POST; the status and the JSON answer.
fn post(http: &ureq::Agent, m: &MediatorConfig, url: &str, body: &Value) -> Result<(u16, Value), NoAnswer> {
    let mut req = http.post(url).header("content-type", "application/json");
    if let Some(key) = m.api_key_env.as_ref().and_then(|v| std::env::var(v).ok()) {
        req = req.header("authorization", format!("Bearer {key}"));
    }
    let resp = req.send_json(body).map_err(|e| match e {
        ureq::Error::Timeout(_) => NoAnswer::new("timeout", format!("no answer within {}", m.timeout)),
        other => NoAnswer::new("unreachable", other.to_string()),
    })?;
    let status = resp.status().as_u16();
    match resp.into_body().read_json() {
        Ok(v) => Ok((status, v)),
        Err(ureq::Error::Timeout(_)) => Err(NoAnswer::new("timeout", format!("no answer within {}", m.timeout))),
        Err(e) => Err(NoAnswer::new("http_error", format!("HTTP {status}, unreadable: {e}"))),
    }
}

/// Is the model there? `doctor`'s check: a tiny request that must answer JSON.
pub fn probe(m: &MediatorConfig) -> Result<(), NoAnswer> {
    let schema = json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": false});
    let v = ask(m, "Answer with JSON only.", "Reply {\"ok\": true}.", &schema)?;
    if v.is_object() {
        Ok(())
    } else {
        Err(NoAnswer::new("invalid_json", "the answer is JSON but not an object"))
    }
}
