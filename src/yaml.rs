//! YAML with limits: task files and config are untrusted, so alias expansion,
//! nesting and size are bounded (an alias bomb or a 10,000-deep nest is an
//! error, never a hang or a stack overflow). serde-saphyr is built for this.

use serde::de::DeserializeOwned;

/// Parses `text` as YAML into `T`, within a small budget. The error is one line
/// a person can act on.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_aliases: 100,
            max_anchors: 100,
            max_depth: 64,
            max_events: 200_000,
            max_nodes: 100_000,
            max_documents: 1,
        },
    };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| first_line(&e.to_string()))
}

/// serde-saphyr's messages are a summary line and then a source snippet; the
/// summary is what belongs in an event or `error.json`.
fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("invalid YAML");
    one_line(line.strip_prefix("error: ").unwrap_or(line))
}

/// Error texts of parsers can span several lines with source snippets; events
/// and `error.json` want one line.
pub fn one_line(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            out.push_str(" | ");
        }
        out.push_str(line);
        if out.len() > 400 {
            out.truncate(400);
            out.push('…');
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn alias_bomb_is_refused() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            doc.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let started = std::time::Instant::now();
        assert!(from_str::<Value>(&doc).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let doc = format!("{}x{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(from_str::<Value>(&doc).is_err());
    }
}
