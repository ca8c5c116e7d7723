//! What every request passes before a handler sees it: the `Host` (no DNS
//! rebinding), the access token when one is configured, the `Origin` of a
//! POST (no cross-site forms), `--read-only`; and the headers every answer
//! carries (a strict Content-Security-Policy: no inline script, no other
//! origin). The CSRF token in each form is checked by the handler that reads
//! the form ([`App::csrf_ok`]).

use super::App;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::Digest;
use std::sync::Arc;

/// The cookie the login form sets.
pub const SESSION_COOKIE: &str = "orchestrator_session";

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The names a request's `Host` may carry.
#[derive(Debug)]
pub struct Hosts {
    names: Vec<String>,
    port: u16,
}

impl Hosts {
    pub fn new(listen: std::net::SocketAddr, extra: &[String]) -> Self {
        let mut names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "[::1]".to_string(),
            match listen.ip() {
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                ip => ip.to_string(),
            },
        ];
        names.extend(extra.iter().map(|h| h.trim().to_ascii_lowercase()));
        Self {
            names,
            port: listen.port(),
        }
    }

    /// `name` or `name:port` of the listen port, for a known name.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let (name, port_ok) = match host.rsplit_once(':') {
            // `name:port` (the port must be the one listened on); a bare
            // `[::1]` has its colons inside the brackets.
            Some((n, p)) if !p.contains(']') => (n.to_string(), p.parse::<u16>() == Ok(self.port)),
            _ => (host.clone(), true),
        };
        // An address is never a rebinding: only a name can be pointed at this
        // machine by someone else's DNS. So any IP literal is fine (the
        // machine's own addresses when it listens on 0.0.0.0).
        let literal = name.parse::<std::net::IpAddr>().is_ok()
            || name
                .strip_prefix('[')
                .and_then(|n| n.strip_suffix(']'))
                .is_some_and(|n| n.parse::<std::net::Ipv6Addr>().is_ok());
        port_ok && (literal || self.names.contains(&name))
    }
}

/// The access token, and the cookie that proves a login to this process.
///
/// Every dashboard has one: the configured one (`dashboard.token_env`), or
/// one made at its start and shown once in the login link it prints. Without
/// one, any process or user of the machine could queue a command through the
/// page (the checks of the Origin and the form token stop browsers only).
pub struct Token {
    token: String,
    /// The cookie's name: one per port, so two dashboards do not log each other out.
    name: String,
    /// A hash of the token and a nonce of this start: a restart ends every
    /// login, and the cookie is not the token.
    session: String,
}

/// A configured token shorter than this is refused: it could be guessed.
pub const MIN_TOKEN: usize = 16;

impl Token {
    pub fn new(token: String, port: u16, nonce: &[u8]) -> Self {
        let mut h = sha2::Sha256::new();
        h.update(b"orchestrator-dashboard-session\0");
        h.update(nonce);
        h.update(token.as_bytes());
        let session = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Self {
            token,
            name: format!("{SESSION_COOKIE}_{port}"),
            session,
        }
    }

    pub fn matches(&self, given: &str) -> bool {
        same(given.as_bytes(), self.token.as_bytes())
    }

    /// The token itself, for the login link a generated token is shown in.
    pub fn reveal(&self) -> &str {
        &self.token
    }

    pub fn cookie(&self) -> String {
        format!("{}={}; Path=/; HttpOnly; SameSite=Strict", self.name, self.session)
    }

    fn presented(&self, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if bearer.is_some_and(|b| self.matches(b.trim())) {
            return true;
        }
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .any(|(k, v)| k == self.name && same(v.as_bytes(), self.session.as_bytes()))
    }
}

/// Compares in time that does not depend on where the inputs differ.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

pub async fn check(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let mut response = match refuse(&app, &request) {
        Some(r) => r,
        None => next.run(request).await,
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Why a request is refused before any handler, if it is.
fn refuse(app: &App, request: &Request) -> Option<Response> {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !app.hosts.allows(host) {
        return Some(
            (
                StatusCode::MISDIRECTED_REQUEST,
                "this dashboard does not answer to that host name (add it to dashboard.hosts)\n",
            )
                .into_response(),
        );
    }
    let path = request.uri().path();
    let token = &app.token;
    if !token.presented(headers) && path != "/login" && !path.starts_with("/assets/") {
        if request.method() == Method::GET && !path.starts_with("/events") {
            return Some(axum::response::Redirect::to("/login").into_response());
        }
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                "log in first: the dashboard's token is required\n",
            )
                .into_response(),
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        if app.read_only {
            return Some(
                (
                    StatusCode::METHOD_NOT_ALLOWED,
                    "this dashboard is read-only (--read-only): nothing can be changed from it\n",
                )
                    .into_response(),
            );
        }
        let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
        let foreign = origin.is_some_and(|o| {
            let o = o.trim_end_matches('/');
            let bare = o.strip_prefix("http://").or_else(|| o.strip_prefix("https://"));
            bare.is_none_or(|b| !b.eq_ignore_ascii_case(host))
        });
        let cross_site = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == "cross-site" || v == "same-site");
        if foreign || cross_site {
            return Some((StatusCode::FORBIDDEN, "refused: the request came from another site\n").into_response());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_names_on_the_listen_port() {
        let h = Hosts::new("127.0.0.1:8765".parse().unwrap(), &["orch.lan".into()]);
        for ok in [
            "127.0.0.1:8765",
            "localhost:8765",
            "localhost",
            "ORCH.lan:8765",
            "[::1]:8765",
            "192.168.1.5:8765",
            "[fe80::1]:8765",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example:8765",
            "127.0.0.1:80",
            "",
            "localhost.evil:8765",
            "127.0.0.1:8765.evil",
            "1.2.3.4.evil:8765",
        ] {
            assert!(!h.allows(bad), "{bad}");
        }
    }

    #[test]
    fn the_cookie_proves_the_token_without_being_it() {
        let t = Token::new("s3cret".into(), 8765, b"nonce-1");
        assert!(t.matches("s3cret") && !t.matches("s3cre") && !t.matches("s3cret!"));
        assert!(!t.cookie().contains("s3cret"));
        let pair = t.cookie().split(';').next().unwrap().to_string();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&pair).unwrap());
        assert!(t.presented(&h));
        // Another start (another nonce) or another port: that cookie is no login.
        for other in [
            Token::new("s3cret".into(), 8765, b"nonce-2"),
            Token::new("s3cret".into(), 8766, b"nonce-1"),
        ] {
            assert!(!other.presented(&h));
        }
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        assert!(t.presented(&h));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer nope"));
        assert!(!t.presented(&h));
    }
}
