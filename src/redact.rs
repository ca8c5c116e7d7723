//! Keeping secrets out of events and summaries.
//!
//! Two nets: the exact values of secret-looking environment variables (the
//! daemon's own and `agents.<name>.env`: names ending in `_KEY`, `_TOKEN`,
//! `_SECRET`, or containing `PASSWORD`), and patterns of the common key formats
//! (Anthropic, OpenAI, GitHub, AWS, Slack, Google, JWTs, bearer tokens,
//! `api_key=...`). What matches becomes `[REDACTED]` or `[REDACTED:NAME]`. The
//! agent itself still gets its whole environment: only what is written for
//! people and tools is redacted.

use regex_lite::Regex;

use std::borrow::Cow;
use std::sync::OnceLock;

/// Values shorter than this are not treated as secrets (too many false hits).
const MIN_SECRET_LEN: usize = 8;

fn patterns() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        // regex-lite rather than regex: redaction runs on a few short strings per
        // task, and the full engine's code and caches cost the idle daemon about
        // 1 MB of its 6 MB budget (measured).
        regex_lite::RegexBuilder::new(concat!(
            r"sk-ant-[A-Za-z0-9_\-]{16,}",
            r"|sk-(?:proj-)?[A-Za-z0-9_\-]{20,}",
            r"|gh[pousr]_[A-Za-z0-9]{30,}",
            r"|github_pat_[A-Za-z0-9_]{20,}",
            r"|(?:AKIA|ASIA)[0-9A-Z]{16}",
            r"|xox[abprs]-[A-Za-z0-9\-]{10,}",
            r"|AIza[0-9A-Za-z_\-]{35}",
            r"|eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}",
            r"|(?i:bearer)\s+[A-Za-z0-9._~+/\-]{20,}=*",
            r"|(?i:(?:api[_-]?key|access[_-]?token|auth[_-]?token|secret|password|passwd))(?:\\?[\x22'])?\s*[:=]\s*(?:\\?[\x22'])?[^\s\x22'\\,;]{8,}",
        ))
        .build()
        .expect("redaction patterns compile")
    })
}

/// Can `text` contain a secret pattern at all? A cheap scan for the fixed
/// parts of the patterns, so the regex runs only on the rare strings that
/// might match (most event strings are ids, numbers and short words).
fn may_match(text: &str) -> bool {
    const EXACT: &[&str] = &["sk-", "gh", "github_pat_", "AKIA", "ASIA", "xox", "AIza", "eyJ"];
    const ANY_CASE: &[&str] = &["bearer", "key", "token", "secret", "passw"];
    EXACT.iter().any(|p| text.contains(p)) || ANY_CASE.iter().any(|p| contains_ignore_case(text, p))
}

fn contains_ignore_case(text: &str, needle: &str) -> bool {
    text.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Is this environment variable name one whose value is a secret?
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    ["_KEY", "_TOKEN", "_SECRET", "_SECRET_KEY", "APIKEY"]
        .iter()
        .any(|s| n.ends_with(s))
        || n.contains("PASSWORD")
        || n.contains("PASSWD")
        || n == "ANTHROPIC_API_KEY"
}

/// Redacts known secret values and secret-shaped strings.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    /// (name, value), longest values first so a value containing another is replaced whole.
    values: Vec<(String, String)>,
}

impl Redactor {
    /// From the process environment plus extra `(name, value)` pairs (agent env from the config).
    pub fn new(extra: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut values: Vec<(String, String)> = std::env::vars()
            .chain(extra)
            .filter(|(k, v)| is_secret_name(k) && v.len() >= MIN_SECRET_LEN)
            .collect();
        values.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
        values.dedup_by(|a, b| a.1 == b.1);
        Self { values }
    }

    /// This redactor and `more` secrets (`(name, value)`, taken whatever
    /// their name: the config says they are secrets): a reload keeps the
    /// secrets it knew, since a task started before may still print them.
    pub fn and(&self, more: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut values = self.values.clone();
        values.extend(more.into_iter().filter(|(_, v)| v.len() >= MIN_SECRET_LEN));
        values.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
        values.dedup_by(|a, b| a.1 == b.1);
        Self { values }
    }

    /// The secrets of both.
    pub fn merged(&self, other: &Redactor) -> Self {
        self.and(other.values.iter().cloned())
    }

    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for (name, value) in &self.values {
            if out.contains(value.as_str()) {
                out = Cow::Owned(out.replace(value.as_str(), &format!("[REDACTED:{name}]")));
            }
        }
        if !may_match(&out) {
            return out;
        }
        match patterns().replace_all(&out, "[REDACTED]") {
            Cow::Borrowed(_) => out,
            Cow::Owned(s) => Cow::Owned(s),
        }
    }
}

/// `text` with its control characters (all but newline and tab) written as
/// escapes (`\u{1b}`): an agent's answer or a stray byte in a log must not
/// move the cursor, retitle the window or hide lines on the reader's terminal.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {

    #[test]
    fn control_characters_become_visible_escapes() {
        assert_eq!(escape_controls("a\tb\nc"), "a\tb\nc", "tabs and newlines stay");
        assert_eq!(escape_controls("x\u{1b}[2Jy\u{7}"), "x\\u{1b}[2Jy\\u{7}");
        assert!(matches!(escape_controls("plain"), Cow::Borrowed(_)));
    }

    use super::*;

    fn r() -> Redactor {
        Redactor::new([("MY_SERVICE_TOKEN".to_string(), "tok_live_1234567890abcdef".to_string())])
    }

    #[test]
    fn common_key_formats_are_redacted() {
        let cases = [
            "key sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_xyz here",
            "OPENAI sk-proj-abcdefghijklmnopqrstuvwxyz012345",
            "token ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "pat github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
            "aws AKIAIOSFODNN7EXAMPLE",
            "slack xoxb-123456789012-abcdefghijkl",
            "google AIzaSyA-1234567890abcdefghijklmnopqrstu",
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345",
            "api_key=abcdef1234567890",
            r#"{"password": "hunter2hunter2"}"#,
        ];
        for c in cases {
            let out = r().redact(c).into_owned();
            assert!(out.contains("[REDACTED]"), "{c} -> {out}");
        }
        assert_eq!(
            r().redact("nothing secret here, sk-short").as_ref(),
            "nothing secret here, sk-short"
        );
        assert!(matches!(r().redact("plain text"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_prefilter_lets_every_pattern_through() {
        for c in [
            "sk-ant-x",
            "ghp_x",
            "github_pat_x",
            "AKIAX",
            "xoxb-x",
            "AIzaX",
            "eyJx",
            "BEARER x",
            "Api_Key=x",
            "TOKEN",
            "Secret",
            "PassWord",
        ] {
            assert!(may_match(c), "{c}");
        }
        assert!(!may_match("task_started 01m80jw attempt=1"));
    }

    #[test]
    fn exact_values_of_secret_variables_are_redacted_by_name() {
        let out = r().redact("the token is tok_live_1234567890abcdef, ok");
        assert_eq!(out, "the token is [REDACTED:MY_SERVICE_TOKEN], ok");
        assert!(is_secret_name("ANTHROPIC_API_KEY") && is_secret_name("db_password") && !is_secret_name("PATH"));
    }

    #[test]
    fn redacting_a_json_line_keeps_it_json() {
        let line = serde_json::json!({"message": "Invalid key sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv", "x": "api_key=\"abcdefghijk\""}).to_string();
        let out = r().redact(&line).into_owned();
        let v: serde_json::Value = serde_json::from_str(&out).expect("still JSON");
        assert!(!v["message"].as_str().unwrap().contains("sk-ant-api03"));
    }
}
