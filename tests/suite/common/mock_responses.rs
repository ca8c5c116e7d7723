//! The OpenAI Responses API's stream (`POST /v1/responses`), for
//! [`super::mock_api::MockApi::responses`]: `response.created`, then each
//! output item (`response.output_item.done`: an assistant message or a
//! `function_call`), streamed text as `response.output_text.delta`, and
//! `response.completed` with the usage. What Codex 0.171.0 reads.
#![allow(dead_code)]

use super::mock_api::{INPUT_TOKENS, Reply, next_id, sse, start_stream};
use serde_json::{Value, json};
use std::io::Write;
use std::net::TcpStream;

/// Output tokens each response reports.
pub const OUTPUT_TOKENS: u64 = 25;
/// Cached input tokens each response reports.
pub const CACHED_TOKENS: u64 = 40;

fn event(conn: &mut TcpStream, data: Value) -> std::io::Result<()> {
    let kind = data["type"].as_str().unwrap_or("").to_string();
    sse(conn, Some(&kind), &data)
}

fn message(text: &str) -> Value {
    json!({"type": "message", "role": "assistant", "id": next_id("msg"), "status": "completed",
           "content": [{"type": "output_text", "text": text, "annotations": []}]})
}

pub fn stream(conn: &mut TcpStream, reply: Reply) -> std::io::Result<()> {
    start_stream(conn)?;
    let id = next_id("resp");
    event(conn, json!({"type": "response.created", "response": {"id": id}}))?;
    let item = match reply {
        Reply::Text(text) => message(&text),
        Reply::Slow { pieces, delay } => {
            let item_id = next_id("msg");
            for (i, p) in pieces.iter().enumerate() {
                if i > 0 {
                    // The scripted model's pace, not a test wait.
                    std::thread::sleep(delay);
                }
                event(
                    conn,
                    json!({"type": "response.output_text.delta", "item_id": item_id, "output_index": 0,
                           "content_index": 0, "delta": p}),
                )?;
            }
            message(&pieces.concat())
        }
        Reply::Tool { name, input } => json!({"type": "function_call", "id": next_id("fc"),
            "call_id": next_id("call"), "name": name, "arguments": input.to_string(), "status": "completed"}),
        Reply::Error { .. } | Reply::After(..) => {
            unreachable!("errors and delays are dealt with before a stream starts")
        }
    };
    event(
        conn,
        json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
    )?;
    event(
        conn,
        json!({"type": "response.completed", "response": {"id": id, "status": "completed",
            "usage": {"input_tokens": INPUT_TOKENS, "input_tokens_details": {"cached_tokens": CACHED_TOKENS},
                      "output_tokens": OUTPUT_TOKENS, "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS}}}),
    )?;
    conn.flush()
}
