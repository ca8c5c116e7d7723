//! The dashboard in tests: the built binary serving a test home, a raw
//! HTTP/1.1 client (so a test sets any `Host` or `Origin` it likes), and
//! Debian's Chromium driven over WebDriver by chromedriver.

use super::{TestHome, wait_until};
use serde_json::{Value, json};
use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request on its own connection. `headers` may set `Host`.
pub fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
    out
}

/// `application/x-www-form-urlencoded` of `fields`.
pub fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `orchestrator dashboard` on a free port of 127.0.0.1, stopped (by its pid)
/// when dropped. Its requests carry the access token from the link it printed.
pub struct Dashboard {
    child: Child,
    pub addr: String,
    /// The token in the printed login link (none when one is configured).
    pub token: Option<String>,
    /// The link it printed.
    pub link: String,
}

impl Dashboard {
    pub fn start(home: &TestHome, extra: &[&str]) -> Self {
        Self::start_with(home, extra, &[])
    }

    pub fn start_with(home: &TestHome, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut c = home.cmd();
        c.args(["dashboard", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let link = line
            .strip_prefix("dashboard: ")
            .and_then(|r| r.split(' ').next())
            .unwrap_or_else(|| panic!("the dashboard says where it listens, not {line:?}"))
            .to_string();
        let addr = link["http://".len()..].split('/').next().unwrap().to_string();
        let token = link.split_once("/login?token=").map(|(_, t)| t.to_string());
        // Keep reading so the pipe never fills.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Self {
            child,
            addr,
            token,
            link,
        }
    }

    /// `Authorization: Bearer TOKEN`.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token.as_deref().unwrap_or(""))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn get(&self, path: &str) -> Resp {
        request(&self.addr, "GET", path, &[("Authorization", &self.bearer())], b"")
    }

    /// The CSRF token the pages carry.
    pub fn csrf(&self) -> String {
        let page = self.get("/").body;
        let mark = "name=\"csrf\" content=\"";
        let at = page.find(mark).expect("the page's token") + mark.len();
        page[at..at + 64].to_string()
    }

    /// A form POST as the page's own form sends it (same origin, the token).
    pub fn post(&self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let csrf = self.csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        let origin = format!("http://{}", self.addr);
        request(
            &self.addr,
            "POST",
            path,
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Origin", &origin),
                ("Authorization", &self.bearer()),
            ],
            form(&all).as_bytes(),
        )
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Chromium under chromedriver, headless, its own profile, every connection
/// but loopback sent to a proxy that is not there.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    _profile: tempfile::TempDir,
}

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";

impl Browser {
    /// `None` when Chromium or chromedriver is not installed.
    pub fn start() -> Option<Self> {
        if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = std::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        wait_until(Duration::from_secs(30), "chromedriver to answer", || {
            agent.get(&format!("{base}/status")).call().is_ok()
        });
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-default-apps", "--no-default-browser-check", "--disable-extensions",
                    "--proxy-server=http://127.0.0.1:9", "--window-size=1400,1400",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let mut me = Self {
            driver,
            base,
            session: String::new(),
            agent,
            _profile: profile,
        };
        let v = me.call("POST", "/session", Some(caps));
        me.session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("a WebDriver session: {v}"))
            .to_string();
        Some(me)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let mut r = match (method, body) {
            ("GET", _) => self.agent.get(&url).call().unwrap(),
            ("DELETE", _) => self.agent.delete(&url).call().unwrap(),
            (_, b) => self.agent.post(&url).send_json(b.unwrap_or(json!({}))).unwrap(),
        };
        r.body_mut().read_json().unwrap_or(Value::Null)
    }

    fn s(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    pub fn goto(&self, url: &str) {
        let v = self.call("POST", &self.s("/url"), Some(json!({"url": url})));
        assert!(v["value"].is_null(), "navigating to {url}: {v}");
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub fn js(&self, script: &str, args: Value) -> Value {
        let v = self.call(
            "POST",
            &self.s("/execute/sync"),
            Some(json!({"script": script, "args": args})),
        );
        v["value"].clone()
    }

    /// The element matching `css`, if any.
    pub fn find(&self, css: &str) -> Option<String> {
        let v = self.call(
            "POST",
            &self.s("/element"),
            Some(json!({"using": "css selector", "value": css})),
        );
        v["value"]
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .map(String::from)
    }

    pub fn click(&self, css: &str) {
        let el = self.find(css).unwrap_or_else(|| panic!("no element {css}"));
        let v = self.call("POST", &self.s(&format!("/element/{el}/click")), Some(json!({})));
        assert!(v["value"].is_null(), "clicking {css}: {v}");
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).unwrap_or_else(|| panic!("no element {css}"));
        let v = self.call(
            "POST",
            &self.s(&format!("/element/{el}/value")),
            Some(json!({"text": text})),
        );
        assert!(v["value"].is_null(), "typing into {css}: {v}");
    }

    /// Waits until `script` (a function body returning a boolean) is true in the page.
    pub fn wait_for(&self, limit: Duration, what: &str, script: &str) {
        wait_until(limit, what, || self.js(script, json!([])) == Value::Bool(true));
    }

    pub fn screenshot(&self, path: &PathBuf) {
        let v = self.call("GET", &self.s("/screenshot"), None);
        let b64 = v["value"].as_str().expect("a screenshot");
        std::fs::write(path, base64(b64)).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &self.s(""), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Decodes standard base64 (a screenshot).
fn base64(text: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= (val(*c) as u32) << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}
