//! Scripted model APIs on 127.0.0.1 for the real agent CLIs, and a proxy that
//! refuses everything else they try to reach.
//!
//! - [`MockApi::anthropic`]: the Anthropic Messages API (`POST /v1/messages`,
//!   streamed as server-sent events: text, `tool_use`, HTTP errors), what
//!   Claude Code talks to with `ANTHROPIC_BASE_URL`.
//! - [`MockApi::openai`]: an OpenAI-compatible chat completions API
//!   (`POST /v1/chat/completions`, streamed chunks with native tool calls),
//!   what Cline talks to as the `openai-compatible` provider.
//! - [`MockApi::gemini`]: the Gemini API (`POST /v1beta/models/M:streamGenerateContent?alt=sse`,
//!   [`super::mock_gemini`]), what the Gemini CLI talks to with
//!   `GOOGLE_GEMINI_BASE_URL`.
//! - [`MockApi::responses`]: the OpenAI Responses API (`POST /v1/responses`,
//!   streamed events; [`super::mock_responses`]), what Codex talks to through
//!   a custom provider's `base_url`.
//!
//! Each test hands a [`Script`]: a function from the request (the parsed JSON
//! body and how far the conversation is) to a [`Reply`]. Every request is kept,
//! so a test can check what the CLI sent (the tools it offered the model, the
//! prompt it received). Responses close the connection (`Connection: close`):
//! no keep-alive bookkeeping, and a client must cope with that anyway.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: String,
    pub path: String,
    pub body: Value,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl ApiRequest {
    /// The conversation's messages (the Responses API's `input` items).
    pub fn messages(&self) -> &[Value] {
        self.body["messages"]
            .as_array()
            .or_else(|| self.body["input"].as_array())
            .or_else(|| self.body["contents"].as_array())
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Assistant turns already in the conversation: 0 for the first request of a
    /// run, 1 after one tool call, ...
    pub fn turn(&self) -> usize {
        self.messages()
            .iter()
            .filter(|m| m["role"] == "assistant" || m["role"] == "model" || m["type"] == "function_call")
            .count()
    }

    /// All text the request carries (system prompt and messages), for scripts
    /// that choose their answer by a keyword in the prompt.
    pub fn text(&self) -> String {
        self.body.to_string()
    }

    pub fn mentions(&self, word: &str) -> bool {
        self.text().contains(word)
    }

    /// The names of the tools offered to the model.
    pub fn tool_names(&self) -> Vec<String> {
        let tools = self.body["tools"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        // Gemini's: groups of `functionDeclarations`.
        let gemini = tools
            .iter()
            .flat_map(|g| g["functionDeclarations"].as_array().map(Vec::as_slice).unwrap_or(&[]));
        tools
            .iter()
            .chain(gemini)
            .filter_map(|t| t["name"].as_str().or_else(|| t["function"]["name"].as_str()))
            .map(String::from)
            .collect()
    }

    /// Is this a run's own conversation (it offers tools), rather than a side
    /// request of the CLI (a title, a summary)?
    pub fn offers_tools(&self) -> bool {
        !self.tool_names().is_empty()
    }

    /// The text of the tool results sent back so far, in order.
    pub fn tool_results(&self) -> Vec<String> {
        let mut out = Vec::new();
        for m in self.messages() {
            if m["role"] == "tool" {
                out.push(content_text(&m["content"]));
            }
            if m["type"] == "function_call_output" {
                out.push(content_text(&m["output"]));
            }
            for part in m["parts"].as_array().into_iter().flatten() {
                if let Some(r) = part.get("functionResponse") {
                    out.push(r["response"].to_string());
                }
            }
            for block in m["content"].as_array().into_iter().flatten() {
                if block["type"] == "tool_result" {
                    out.push(content_text(&block["content"]));
                }
            }
        }
        out
    }
}

fn content_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

/// What the scripted model does with a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A final text answer.
    Text(String),
    /// One tool call (`input` is the tool's arguments).
    Tool { name: String, input: Value },
    /// The text streamed in `pieces` with `delay` between them.
    Slow { pieces: Vec<String>, delay: Duration },
    /// `reply`, sent this long after the request came: a model's time to
    /// answer (the pace of a loop of tool calls).
    After(Duration, Box<Reply>),
    /// An HTTP error with the provider's error body.
    Error {
        status: u16,
        kind: String,
        message: String,
        retry_after: Option<u64>,
    },
}

impl Reply {
    pub fn text(t: impl Into<String>) -> Self {
        Reply::Text(t.into())
    }
    pub fn tool(name: &str, input: Value) -> Self {
        Reply::Tool {
            name: name.to_string(),
            input,
        }
    }
    pub fn error(status: u16, kind: &str, message: &str) -> Self {
        Reply::Error {
            status,
            kind: kind.to_string(),
            message: message.to_string(),
            retry_after: Some(0),
        }
    }
}

pub type Script = Arc<dyn Fn(&ApiRequest) -> Reply + Send + Sync>;

#[derive(Clone, Copy, PartialEq)]
enum Flavor {
    Anthropic,
    OpenAi,
    Responses,
    Gemini,
}

/// A scripted model API listening on 127.0.0.1 until dropped.
pub struct MockApi {
    pub port: u16,
    requests: Arc<Mutex<Vec<ApiRequest>>>,
    stop: Arc<AtomicBool>,
}

impl MockApi {
    pub fn anthropic(script: impl Fn(&ApiRequest) -> Reply + Send + Sync + 'static) -> Self {
        Self::start(Flavor::Anthropic, Arc::new(script))
    }

    pub fn openai(script: impl Fn(&ApiRequest) -> Reply + Send + Sync + 'static) -> Self {
        Self::start(Flavor::OpenAi, Arc::new(script))
    }

    pub fn responses(script: impl Fn(&ApiRequest) -> Reply + Send + Sync + 'static) -> Self {
        Self::start(Flavor::Responses, Arc::new(script))
    }

    pub fn gemini(script: impl Fn(&ApiRequest) -> Reply + Send + Sync + 'static) -> Self {
        Self::start(Flavor::Gemini, Arc::new(script))
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The requests received so far (model calls only: `GET`s are left out).
    pub fn requests(&self) -> Vec<ApiRequest> {
        self.requests.lock().unwrap().clone()
    }

    fn start(flavor: Flavor, script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the mock API");
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let reqs = requests.clone();
        accept_until(listener, stop.clone(), move |conn| {
            let _ = serve(conn, flavor, &script, &reqs);
        });
        Self { port, requests, stop }
    }
}

impl Drop for MockApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Serves each connection `listener` accepts on a thread of its own, until
/// `stop` is set (then one more connection wakes the loop to see it).
pub fn accept_until(listener: TcpListener, stop: Arc<AtomicBool>, serve: impl Fn(TcpStream) + Send + Sync + 'static) {
    let serve = Arc::new(serve);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let Ok(conn) = conn else { continue };
            let serve = serve.clone();
            std::thread::spawn(move || serve(conn));
        }
    });
}

/// A request as read off the wire: method, path, headers (lower-case names), body.
pub type RawRequest = (String, String, Vec<(String, String)>, Vec<u8>);

/// Reads one HTTP/1.1 request: the request line, the headers, and a body by
/// `Content-Length` or chunked transfer encoding.
pub fn read_request(conn: &TcpStream) -> std::io::Result<RawRequest> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Ok((method, path, headers, body))
}

fn serve(mut conn: TcpStream, flavor: Flavor, script: &Script, reqs: &Mutex<Vec<ApiRequest>>) -> std::io::Result<()> {
    let (method, path, _headers, body) = read_request(&conn)?;
    if method == "GET" {
        // Model listings and health checks: one model, whatever was asked.
        let body =
            json!({"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "mock"}]});
        return respond_json(&mut conn, 200, &[], &body);
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let req = ApiRequest {
        method,
        path,
        body,
        at: std::time::Instant::now(),
    };
    reqs.lock().unwrap().push(req.clone());
    let reply = match script(&req) {
        // The model's time to answer, as a real one takes it: the scripted
        // server's own behaviour (a test waits on conditions, never on this).
        Reply::After(delay, reply) => {
            std::thread::sleep(delay);
            *reply
        }
        reply => reply,
    };
    let model = req.body["model"].as_str().unwrap_or(MODEL).to_string();
    match (flavor, reply) {
        (
            _,
            Reply::Error {
                status,
                kind,
                message,
                retry_after,
            },
        ) => {
            let body = match flavor {
                Flavor::Anthropic => json!({"type": "error", "error": {"type": kind, "message": message}}),
                Flavor::OpenAi => json!({"error": {"message": message, "type": kind, "code": kind}}),
                // A usage limit says when it resets (`retry_after` seconds
                // from now), as OpenAI's does.
                Flavor::Responses => json!({"error": {"message": message, "type": kind, "code": kind,
                    "resets_at": jiff::Timestamp::now().as_second() + retry_after.unwrap_or(3600) as i64}}),
                // Google's: the HTTP status, the words, the gRPC status name.
                Flavor::Gemini => json!({"error": {"code": status, "message": message, "status": kind}}),
            };
            let mut extra = Vec::new();
            if let Some(s) = retry_after {
                extra.push(("retry-after".to_string(), s.to_string()));
            }
            respond_json(&mut conn, status, &extra, &body)
        }
        (Flavor::Anthropic, reply) => anthropic_stream(&mut conn, &model, reply),
        (Flavor::OpenAi, reply) => openai_stream(&mut conn, &model, reply),
        (Flavor::Responses, reply) => super::mock_responses::stream(&mut conn, reply),
        (Flavor::Gemini, reply) => super::mock_gemini::stream(&mut conn, &req, reply),
    }
}

/// The model a mock reports when the request names none: a real model name, so
/// the CLIs price its tokens.
pub const MODEL: &str = "claude-opus-5-5";

pub fn respond_json(
    conn: &mut TcpStream,
    status: u16,
    extra: &[(String, String)],
    body: &Value,
) -> std::io::Result<()> {
    respond_raw(conn, status, extra, &body.to_string())
}

/// A response whose body is `text` as it is (which may not be valid JSON).
pub fn respond_raw(conn: &mut TcpStream, status: u16, extra: &[(String, String)], text: &str) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        reason(status),
        text.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    conn.write_all(text.as_bytes())?;
    conn.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        529 => "Overloaded",
        _ => "Error",
    }
}

pub(super) fn start_stream(conn: &mut TcpStream) -> std::io::Result<()> {
    conn.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n",
    )
}

static IDS: AtomicU64 = AtomicU64::new(1);

pub(super) fn next_id(prefix: &str) -> String {
    format!("{prefix}_mock_{:06}", IDS.fetch_add(1, Ordering::Relaxed))
}

pub(super) fn sse(conn: &mut TcpStream, event: Option<&str>, data: &Value) -> std::io::Result<()> {
    let mut s = String::new();
    if let Some(e) = event {
        s.push_str(&format!("event: {e}\n"));
    }
    s.push_str(&format!("data: {data}\n\n"));
    conn.write_all(s.as_bytes())?;
    conn.flush()
}

/// Token counts the mocks report: enough for the CLIs to price a turn.
pub const INPUT_TOKENS: u64 = 120;

fn anthropic_stream(conn: &mut TcpStream, model: &str, reply: Reply) -> std::io::Result<()> {
    start_stream(conn)?;
    let usage = json!({"input_tokens": INPUT_TOKENS, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1});
    sse(
        conn,
        Some("message_start"),
        &json!({"type": "message_start", "message": {"id": next_id("msg"), "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage}}),
    )?;
    let (stop_reason, out_tokens) = match reply {
        Reply::Text(text) => {
            text_block(conn, &[text], Duration::ZERO)?;
            ("end_turn", 25)
        }
        Reply::Slow { pieces, delay } => {
            text_block(conn, &pieces, delay)?;
            ("end_turn", 25)
        }
        Reply::Tool { name, input } => {
            sse(
                conn,
                Some("content_block_start"),
                &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": next_id("toolu"), "name": name, "input": {}}}),
            )?;
            sse(
                conn,
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": input.to_string()}}),
            )?;
            sse(
                conn,
                Some("content_block_stop"),
                &json!({"type": "content_block_stop", "index": 0}),
            )?;
            ("tool_use", 40)
        }
        Reply::Error { .. } | Reply::After(..) => {
            unreachable!("errors and delays are dealt with before a stream starts")
        }
    };
    sse(
        conn,
        Some("message_delta"),
        &json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": out_tokens}}),
    )?;
    sse(conn, Some("message_stop"), &json!({"type": "message_stop"}))
}

fn text_block(conn: &mut TcpStream, pieces: &[String], delay: Duration) -> std::io::Result<()> {
    sse(
        conn,
        Some("content_block_start"),
        &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    )?;
    for (i, p) in pieces.iter().enumerate() {
        if i > 0 {
            // The scripted model is slow on purpose: this is the server's pace, not a test wait.
            std::thread::sleep(delay);
        }
        sse(
            conn,
            Some("content_block_delta"),
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}),
        )?;
    }
    sse(
        conn,
        Some("content_block_stop"),
        &json!({"type": "content_block_stop", "index": 0}),
    )
}

fn openai_stream(conn: &mut TcpStream, model: &str, reply: Reply) -> std::io::Result<()> {
    start_stream(conn)?;
    let id = next_id("chatcmpl");
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    sse(conn, None, &chunk(json!({"role": "assistant", "content": ""}), None))?;
    let finish = match reply {
        Reply::Text(text) => {
            sse(conn, None, &chunk(json!({"content": text}), None))?;
            "stop"
        }
        Reply::Slow { pieces, delay } => {
            for (i, p) in pieces.iter().enumerate() {
                if i > 0 {
                    // The scripted model's pace, not a test wait.
                    std::thread::sleep(delay);
                }
                sse(conn, None, &chunk(json!({"content": p}), None))?;
            }
            "stop"
        }
        Reply::Tool { name, input } => {
            let call = json!({"index": 0, "id": next_id("call"), "type": "function",
                              "function": {"name": name, "arguments": input.to_string()}});
            sse(conn, None, &chunk(json!({"tool_calls": [call]}), None))?;
            "tool_calls"
        }
        Reply::Error { .. } | Reply::After(..) => {
            unreachable!("errors and delays are dealt with before a stream starts")
        }
    };
    sse(conn, None, &chunk(json!({}), Some(finish)))?;
    sse(
        conn,
        None,
        &json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [],
                "usage": {"prompt_tokens": INPUT_TOKENS, "completion_tokens": 25, "total_tokens": INPUT_TOKENS + 25}}),
    )?;
    conn.write_all(b"data: [DONE]\n\n")?;
    conn.flush()
}

/// A proxy on 127.0.0.1 that refuses every request (`403`, then close) and
/// remembers what was asked: the CLIs' telemetry, update and other hosts, so
/// nothing they try leaves the machine.
pub struct RefusingProxy {
    pub port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl RefusingProxy {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the refusing proxy");
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut line = String::new();
                let _ = BufReader::new(&conn).read_line(&mut line);
                log.lock().unwrap().push(line.trim().to_string());
                let _ = conn.write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        Self { port, seen }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The request lines refused so far (`CONNECT host:443 HTTP/1.1`, ...).
    pub fn refused(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}
