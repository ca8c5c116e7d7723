//! HTML out of hostile text.
//!
//! Everything the page shows came from a task file, an agent or a file name,
//! so every piece of text goes through [`esc`] (terminal escapes shown as
//! `\u{1b}`, then `<>&"'` as entities) and the only markup is the page's own.
//! Nothing is rendered as Markdown or as a link unless the page made the link
//! from a checked id.

use std::fmt::Write;

/// Text as HTML text or a quoted attribute value.
pub fn esc(text: &str) -> String {
    let text = crate::redact::escape_controls(text);
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A piece of a URL path or query (ids and file names in links).
pub fn url_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The link to a task's page.
pub fn task_link(id: &str, label: &str) -> String {
    format!("<a href=\"/tasks/{}\">{}</a>", url_part(id), esc(label))
}

/// What every page shares: the head (the one stylesheet and the one script,
/// both served by the dashboard), the navigation, and the body.
pub struct Page<'a> {
    pub title: &'a str,
    /// The CSRF token every form posts back.
    pub csrf: &'a str,
    pub read_only: bool,
    /// Which navigation entry is this page.
    pub nav: &'a str,
}

impl Page<'_> {
    pub fn render(&self, body: &str) -> String {
        let mut nav = String::new();
        for (href, label) in [("/", "Board"), ("/new", "New task"), ("/stats", "Stats & health")] {
            if label == "New task" && self.read_only {
                continue;
            }
            let current = if label == self.nav {
                " aria-current=\"page\""
            } else {
                ""
            };
            let _ = write!(nav, "<a href=\"{href}\"{current}>{label}</a>");
        }
        let mode = if self.read_only {
            "<span class=\"badge\">read-only</span>"
        } else {
            ""
        };
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <meta name=\"csrf\" content=\"{csrf}\">\
             <title>{title} · orchestrator</title>\
             <link rel=\"stylesheet\" href=\"/assets/app.css\">\
             <script src=\"/assets/app.js\" defer></script></head>\
             <body data-read-only=\"{ro}\"><header><strong>orchestrator</strong><nav>{nav}</nav>{mode}\
             <span id=\"live\" class=\"live\" title=\"live updates\"></span></header>\
             <main>{body}</main></body></html>\n",
            csrf = esc(self.csrf),
            title = esc(self.title),
            ro = self.read_only,
        )
    }
}

/// A POST form with the CSRF token: one button, optional extra fields.
pub fn action(path: &str, csrf: &str, label: &str, fields: &str, class: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\" class=\"action {class}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">{fields}<button type=\"submit\">{}</button></form>",
        esc(path),
        esc(csrf),
        esc(label)
    )
}

/// A status as a coloured badge.
pub fn status(status: &str) -> String {
    format!("<span class=\"status s-{}\">{}</span>", url_part(status), esc(status))
}

pub fn money(cost: Option<f64>) -> String {
    match cost {
        Some(c) if c > 0.0 => format!("${c:.4}"),
        _ => "–".into(),
    }
}

pub fn duration(ms: Option<u64>) -> String {
    ms.map_or("–".into(), crate::store::summary::human_ms)
}

/// A diff, line by line, each line escaped and classed by its first character.
pub fn diff(text: &str) -> String {
    let mut out = String::from("<pre class=\"diff\">");
    for line in text.lines() {
        let class = if line.starts_with("+++") || line.starts_with("---") || line.starts_with("diff ") {
            "file"
        } else if line.starts_with('+') {
            "add"
        } else if line.starts_with('-') {
            "del"
        } else if line.starts_with("@@") {
            "hunk"
        } else {
            "ctx"
        };
        // Each line a block of its own (its colour across the width); no
        // newline between them, or the <pre> would show it as an empty line.
        let _ = write!(out, "<span class=\"{class}\">{}</span>", esc(line));
    }
    out.push_str("</pre>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_terminal_escapes_come_out_as_text() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(esc("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(url_part("a b/../c?d"), "a%20b%2F..%2Fc%3Fd");
        let d = diff("+<img src=x onerror=alert(1)>\n-old\n@@ -1 +1 @@");
        assert!(
            d.contains("<span class=\"add\">+&lt;img src=x onerror=alert(1)&gt;</span>"),
            "{d}"
        );
        assert!(!d.contains("<img"));
    }
}
