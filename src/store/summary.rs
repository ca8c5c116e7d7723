//! `summaries/<id>.md`: what a person wants to know about a finished task.

use super::record::ResultRecord;
use std::fmt::Write;

/// `summary` with `lead` (the mediator's few sentences) as a quote under its title.
pub fn with_lead(summary: &str, lead: &str) -> String {
    let (title, rest) = summary.split_once("\n\n").unwrap_or((summary, ""));
    let quoted: Vec<String> = lead.lines().map(|l| format!("> {l}")).collect();
    format!("{title}\n\n{}\n\n{rest}", quoted.join("\n"))
}

pub fn render(r: &ResultRecord) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {}\n", r.title);
    let _ = writeln!(s, "- **Task:** `{}`", r.id);
    let _ = writeln!(s, "- **Status:** {}", r.status.name());
    let _ = writeln!(s, "- **Agent:** {}", r.agent);
    let _ = writeln!(s, "- **Workdir:** `{}`", r.workdir);
    let _ = writeln!(s, "- **Duration:** {}", human_ms(r.duration_ms));
    let _ = writeln!(s, "- **Attempts:** {}", r.attempts.len());
    match r.cost_usd {
        Some(c) => {
            let _ = writeln!(s, "- **Cost:** ${c:.4}");
        }
        None => {
            let _ = writeln!(s, "- **Cost:** not reported");
        }
    }
    if r.turns > 0 || r.tool_calls > 0 {
        let _ = writeln!(s, "- **Turns:** {}, **tool calls:** {}", r.turns, r.tool_calls);
    }
    if let Some(e) = &r.error {
        let _ = writeln!(
            s,
            "\n## Error: {}\n\n{}\n\n**What to do:** {}",
            e.kind, e.message, e.suggestion
        );
    }
    if !r.output.trim().is_empty() {
        let _ = writeln!(s, "\n## Answer\n\n{}", r.output.trim());
    }
    if let Some(sb) = &r.isolation {
        let stat = sb.stat.map(|st| st.to_string()).unwrap_or_else(|| "no diff".into());
        let _ = writeln!(s, "\n## Changes ({:?}, not in the workdir)\n\n{stat}\n", sb.kind);
        match (&sb.branch, sb.committed) {
            (Some(b), true) => {
                let _ = writeln!(
                    s,
                    "Committed on branch `{b}` for review (mode: apply with isolation: worktree)."
                );
            }
            _ => {
                let _ = writeln!(
                    s,
                    "`orchestrator apply {}` applies `changes.diff` to the workdir (`--dry-run` shows what it would change).",
                    r.id
                );
            }
        }
    }
    if !r.files_changed.is_empty() {
        let _ = writeln!(s, "\n## Files changed\n");
        for f in &r.files_changed {
            let _ = writeln!(s, "- `{f}`");
        }
    }
    if !r.verify.is_empty() {
        let _ = writeln!(s, "\n## Verify\n");
        for v in &r.verify {
            let ended = v.exit_code.map_or("stopped".to_string(), |c| format!("exit {c}"));
            let verdict = if v.exit_code == Some(0) { "passed" } else { "failed" };
            let _ = writeln!(
                s,
                "- round {}: `{}` {verdict} ({ended}, {})",
                v.round,
                v.command,
                human_ms(v.duration_ms)
            );
        }
    }
    if !r.validation.success_criteria.is_empty() {
        let _ = writeln!(s, "\n## Success criteria (to check)\n");
        for c in &r.validation.success_criteria {
            let _ = writeln!(s, "- [ ] {c}");
        }
    }
    if !r.validation.warnings.is_empty() {
        let _ = writeln!(s, "\n## Validation warnings\n");
        for w in &r.validation.warnings {
            let _ = writeln!(s, "- **{}**: {}", w.warning, w.message);
        }
    }
    if !r.permission_denials.is_empty() {
        let _ = writeln!(s, "\n## Permission denials\n");
        for d in &r.permission_denials {
            let tool = d.get("tool_name").and_then(|t| t.as_str()).unwrap_or("?");
            let _ = writeln!(s, "- {tool}");
        }
    }
    s
}

/// `850ms`, `12s`, `1h 3m 7s`: milliseconds only when under ten seconds.
pub fn human_ms(ms: u64) -> String {
    let d = if ms < 10_000 {
        std::time::Duration::from_millis(ms)
    } else {
        std::time::Duration::from_secs(ms / 1000)
    };
    humantime::format_duration(d).to_string()
}
