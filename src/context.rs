//! Context from earlier tasks: a digest of their answers, errors, files
//! changed and diff stat, put before the prompt of a task that follows them
//! (`retry`, `resume`, `reply`: its parent; any task: `context_from: [ID, ...]`).
//!
//! The digest is capped to `context_budget` characters (about four to a
//! token) by one rule: when it is longer, its start (three fifths of the
//! budget) and its end (the rest) are kept and the middle is replaced by a
//! line that says how much was cut. The start holds the first task's answer,
//! the end the last task's files and diff: what a follow-up needs most.
//! Deterministic: the same records give the same digest.

use crate::store::record::ResultRecord;
use crate::store::{Home, TaskDir};
use std::fmt::Write as _;

/// A digest and what it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Digest {
    pub text: String,
    /// Characters cut from the middle to fit the budget (0: none).
    pub cut: usize,
    /// The tasks it covers (those with a result).
    pub from: Vec<String>,
}

/// The digest of the tasks `ids` (those not finished are named as such), or
/// `None` when there is nothing to say.
pub fn digest(home: &Home, ids: &[String], budget: usize) -> Option<Digest> {
    let mut text = String::new();
    let mut from = Vec::new();
    for id in ids {
        // A link in results/ (to another home's task) is not this home's task.
        let dir = home.own_task_dir(id).map(TaskDir::new);
        let Some(Ok(r)) = dir.as_ref().map(|d| ResultRecord::load(&d.result())) else {
            let _ = writeln!(text, "## Earlier task {id}: not finished, no result to show\n");
            continue;
        };
        from.push(id.clone());
        let _ = writeln!(text, "## Earlier task {id}: {} ({})", r.title, r.status.name());
        if let Some(e) = &r.error {
            let _ = writeln!(text, "Error: {}: {}", e.kind, e.message);
        }
        if !r.output.trim().is_empty() {
            let _ = writeln!(text, "Answer:\n{}", r.output.trim());
        }
        if !r.files_changed.is_empty() {
            let shown: Vec<&str> = r.files_changed.iter().take(20).map(String::as_str).collect();
            let more = r.files_changed.len().saturating_sub(shown.len());
            let _ = write!(text, "Files changed: {}", shown.join(", "));
            let _ = if more > 0 {
                writeln!(text, " (and {more} more)")
            } else {
                writeln!(text)
            };
        }
        if let Some(stat) = dir.as_ref().and_then(diff_stat) {
            let _ = writeln!(text, "Diff: {stat}");
        }
        text.push('\n');
    }
    if text.trim().is_empty() {
        return None;
    }
    let (text, cut) = cap(text.trim_end(), budget);
    Some(Digest { text, cut, from })
}

/// `N files changed, A insertions(+), D deletions(-)` of a task's `changes.diff`.
fn diff_stat(dir: &TaskDir) -> Option<String> {
    let diff = crate::store::read::read_text(&dir.changes_diff(), crate::store::read::max::INDEX).ok()?;
    let (mut files, mut add, mut del) = (0, 0, 0);
    for line in diff.lines() {
        if line.starts_with("diff --git ") {
            files += 1;
        } else if line.starts_with('+') && !line.starts_with("+++") {
            add += 1;
        } else if line.starts_with('-') && !line.starts_with("---") {
            del += 1;
        }
    }
    (files > 0).then(|| format!("{files} files changed, {add} insertions(+), {del} deletions(-)"))
}

/// `text` within `budget` characters: its start and end, and a line saying
/// what was cut between them; with how many characters were cut.
pub fn cap(text: &str, budget: usize) -> (String, usize) {
    let total = text.chars().count();
    if total <= budget {
        return (text.to_string(), 0);
    }
    let head = budget * 3 / 5;
    let tail = budget - head;
    let cut = total - head - tail;
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(total - tail).collect();
    (
        format!("{start}\n[... {cut} characters of earlier context cut here to fit the context budget ...]\n{end}"),
        cut,
    )
}

/// What a task was given of earlier tasks (in `plan.json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ContextUsed {
    /// The earlier tasks, with a result, the digest covers.
    pub from: Vec<String>,
    /// The digest's length, in characters.
    pub chars: usize,
    /// Characters cut from its middle to fit `context_budget`.
    pub cut: usize,
    /// The digest itself, put before the prompt on the agent's stdin.
    pub text: String,
    /// The mediator condensed it (else it is the deterministic digest).
    #[serde(default)]
    pub condensed: bool,
}

impl ContextUsed {
    /// With the mediator on, the digest in the model's fewer words (blocks up
    /// to its timeout); unchanged if it has none.
    pub fn condense(mut self, config: &crate::config::Config) -> Self {
        if crate::mediator::enabled(config)
            && let Some(short) = crate::mediator::condense(config, &self.text, config.context_budget)
        {
            self.chars = short.chars().count();
            self.text = short;
            self.condensed = true;
        }
        self
    }
}

/// The digest of the task's parent, its `context_from` tasks and the tasks
/// it waited for (`waited_for`: the ids its `after`, `after_any` named), to go
/// before its prompt (the task's own prompt stays as written: a retry of
/// it gets a fresh digest, not one inside another). A follow-up that goes on
/// in its parent's agent session (`reply`, `resume` with a session) gets no
/// digest of the parent: the conversation holds it already.
pub fn gather(home: &Home, budget: usize, spec: &crate::task::TaskSpec, waited_for: &[String]) -> Option<ContextUsed> {
    let mut ids: Vec<String> = spec
        .parent_task_id
        .iter()
        .filter(|_| spec.session.is_none())
        .cloned()
        .collect();
    // The tasks it waited for give their answers too, unless `context: false`.
    let waited_for = if spec.deps.no_context { &[][..] } else { waited_for };
    for id in spec.context_from.iter().chain(waited_for) {
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    if ids.is_empty() || budget == 0 {
        return None;
    }
    let d = digest(home, &ids, budget)?;
    Some(ContextUsed {
        from: d.from,
        chars: d.text.chars().count(),
        cut: d.cut,
        text: d.text,
        condensed: false,
    })
}

/// The prompt with the digest before it.
pub fn with_prompt(digest: &str, prompt: &str) -> String {
    format!("Context from earlier tasks (for reference; the task itself follows):\n\n{digest}\n\n---\n\n{prompt}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_digest_keeps_its_start_and_end_and_says_what_was_cut() {
        let text: String = (0..1000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        let (capped, cut) = cap(&text, 100);
        assert_eq!(cut, 900);
        assert!(capped.starts_with(&text[..60]));
        assert!(capped.ends_with(&text[960..]));
        assert!(capped.contains("[... 900 characters of earlier context cut here"));
        assert_eq!(cap("short", 100), ("short".to_string(), 0));
    }

    #[test]
    fn a_digest_names_answers_errors_files_and_the_diff() {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::new(tmp.path()).unwrap();
        let id = "01m8p5qnm7weqgpkcvt4a8av6n-fix";
        let dir = TaskDir::new(home.task_dir(id));
        std::fs::create_dir_all(&dir.dir).unwrap();
        let mut r: ResultRecord = serde_json::from_value(serde_json::json!({
            "schema_version": 1, "id": id, "title": "Fix it", "source_file": "f.md", "status": "failed",
            "agent": "claude", "workdir": "/w", "queued_at": null, "started_at": "t", "finished_at": "t",
            "duration_ms": 1, "attempts": [], "output": "I changed the parser.", "session_id": null,
            "cost_usd": null, "turns": 0, "tool_calls": 0, "files_changed": ["src/a.rs"],
            "permission_denials": [], "validation": {"warnings": []}, "error": null,
            "parent_task_id": null, "turn_of": null, "worker": "w"
        }))
        .unwrap();
        r.error = Some(crate::store::record::ErrorInfo {
            kind: crate::vocab::ErrorKind::Timeout,
            message: "too slow".into(),
            suggestion: String::new(),
        });
        std::fs::write(dir.result(), serde_json::to_vec(&r).unwrap()).unwrap();
        std::fs::write(
            dir.changes_diff(),
            "diff --git a/src/a.rs b/src/a.rs\n--- a/src/a.rs\n+++ b/src/a.rs\n-old\n+new\n+more\n",
        )
        .unwrap();
        let d = digest(
            &home,
            &[id.to_string(), "01m8p5qnm7weqgpkcvt4a8av6z-gone".into()],
            10_000,
        )
        .unwrap();
        assert_eq!(d.from, [id]);
        assert_eq!(d.cut, 0);
        for part in [
            "## Earlier task 01m8p5qnm7weqgpkcvt4a8av6n-fix: Fix it (failed)",
            "Error: timeout: too slow",
            "Answer:\nI changed the parser.",
            "Files changed: src/a.rs",
            "Diff: 1 files changed, 2 insertions(+), 1 deletions(-)",
            "not finished, no result to show",
        ] {
            assert!(d.text.contains(part), "{part}: {}", d.text);
        }
    }
}
