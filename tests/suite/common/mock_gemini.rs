//! The Gemini API's stream (`POST /v1beta/models/MODEL:streamGenerateContent?alt=sse`)
//! for [`super::mock_api::MockApi::gemini`]: each chunk a `GenerateContentResponse`
//! (`candidates[0].content.parts`, text or a `functionCall`), the last with its
//! `finishReason` and `usageMetadata`. What the Gemini CLI 0.61.0 reads. A
//! request that is not a stream (`:generateContent`, `:countTokens`) gets the
//! same answer whole.
#![allow(dead_code)]

use super::mock_api::{ApiRequest, INPUT_TOKENS, Reply, sse, start_stream};
use super::mock_responses::{CACHED_TOKENS, OUTPUT_TOKENS};
use serde_json::{Value, json};
use std::io::Write;
use std::net::TcpStream;

fn chunk(parts: Value, last: bool) -> Value {
    let mut c = json!({"candidates": [{"content": {"parts": parts, "role": "model"}, "index": 0}],
                       "modelVersion": "gemini-2.5-pro"});
    if last {
        c["candidates"][0]["finishReason"] = json!("STOP");
        c["usageMetadata"] = json!({"promptTokenCount": INPUT_TOKENS, "candidatesTokenCount": OUTPUT_TOKENS,
            "totalTokenCount": INPUT_TOKENS + OUTPUT_TOKENS, "cachedContentTokenCount": CACHED_TOKENS});
    }
    c
}

pub fn stream(conn: &mut TcpStream, req: &ApiRequest, reply: Reply) -> std::io::Result<()> {
    if req.path.contains(":countTokens") {
        return super::mock_api::respond_json(conn, 200, &[], &json!({"totalTokens": INPUT_TOKENS}));
    }
    let parts = |reply: &Reply| match reply {
        Reply::Text(t) => json!([{"text": t}]),
        Reply::Tool { name, input } => json!([{"functionCall": {"name": name, "args": input}}]),
        _ => json!([]),
    };
    if !req.path.contains("alt=sse") {
        let whole = match &reply {
            Reply::Slow { pieces, .. } => json!([{"text": pieces.concat()}]),
            r => parts(r),
        };
        return super::mock_api::respond_json(conn, 200, &[], &chunk(whole, true));
    }
    start_stream(conn)?;
    match reply {
        Reply::Slow { pieces, delay } => {
            for (i, p) in pieces.iter().enumerate() {
                if i > 0 {
                    // The scripted model's pace, not a test wait.
                    std::thread::sleep(delay);
                }
                sse(conn, None, &chunk(json!([{"text": p}]), i + 1 == pieces.len()))?;
            }
        }
        Reply::Error { .. } | Reply::After(..) => {
            unreachable!("errors and delays are dealt with before a stream starts")
        }
        r => sse(conn, None, &chunk(parts(&r), true))?,
    }
    conn.flush()
}
