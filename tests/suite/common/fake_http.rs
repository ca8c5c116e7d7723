//! A fake HTTP server on 127.0.0.1 for the notification tests: every request
//! is kept, and a handler answers each (status and JSON body).

use super::mock_api::{accept_until, read_request, respond_json, respond_raw};
use serde_json::Value;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A handler's body that is a string starting with this is sent as the
/// rest of the string, as it is: for answers that are not valid JSON.
pub const RAW: &str = "RAW-BODY:";

/// A request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A condition a handler can hold a request on: opened by the test, or when
/// the server is dropped (a server that "never answers" answers at the end).
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub fn open(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_all();
    }

    /// Waits until the gate opens, at most `limit`.
    pub fn wait(&self, limit: Duration) {
        let guard = self.0.0.lock().unwrap();
        let _ = self.0.1.wait_timeout_while(guard, limit, |open| !*open).unwrap();
    }
}

pub struct FakeHttp {
    pub port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    gate: Gate,
}

impl FakeHttp {
    /// Answers each request with `handler`, which may hold it on the
    /// server's gate (see [`Gate`]).
    pub fn start(handler: impl Fn(&Request, &Gate) -> (u16, Value) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake server");
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let gate = Gate::default();
        let (reqs, held) = (requests.clone(), gate.clone());
        accept_until(listener, stop.clone(), move |mut conn| {
            // Keep-alive: answer requests on this connection until it closes.
            while let Ok((method, path, headers, body)) = read_request(&conn) {
                if method.is_empty() {
                    break;
                }
                let req = Request {
                    method,
                    path,
                    headers,
                    body,
                };
                reqs.lock().unwrap().push(req.clone());
                let (status, body) = handler(&req, &held);
                let sent = match body.as_str().and_then(|b| b.strip_prefix(RAW)) {
                    Some(raw) => respond_raw(&mut conn, status, &[], raw),
                    None => respond_json(&mut conn, status, &[], &body),
                };
                if sent.is_err() {
                    break;
                }
            }
        });
        Self {
            port,
            requests,
            stop,
            gate,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        self.gate.open();
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
