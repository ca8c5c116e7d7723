//! Advisory checks of a finished run: does the result look like the
//! agent did what it was asked? Each finding is a `validation_warning` event and
//! an entry in `result.json`'s `validation.warnings`; with `fail_on_validation`
//! a successful run with findings fails as `validation_failed`.
//!
//! The checks are cheap heuristics on facts the daemon has (the answer, the
//! prompt, git's view of the workdir, the permission denials), never on the
//! agent's own claims about itself.

use serde_json::Value;

/// What a check needs to know about the run.
pub struct Run<'a> {
    pub prompt: &'a str,
    pub answer: &'a str,
    pub succeeded: bool,
    /// Files git saw change; `None` when the workdir is not a git repository.
    pub files_changed: Option<&'a [String]>,
    pub permission_denials: &'a [Value],
    /// The task could not write (its tools are all read-only).
    pub read_only: bool,
}

/// One finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Warning {
    pub kind: &'static str,
    pub message: String,
}

impl Warning {
    pub fn finding(&self) -> crate::vocab::Finding {
        crate::vocab::Finding::new(self.kind, self.message.clone())
    }
}

/// Answers this much (0..1) copied from the prompt, in order, merely echo it.
const ECHO_RATIO: f32 = 0.95;

pub fn check(run: &Run) -> Vec<Warning> {
    let mut out = Vec::new();
    let mut warn = |kind, message: String| out.push(Warning { kind, message });
    let answer = run.answer.trim();
    if run.succeeded && answer.is_empty() {
        warn("empty_answer", "the agent succeeded without a word of answer".into());
    }
    if answer.chars().count() >= 40 && echo_ratio(run.prompt.trim(), answer) >= ECHO_RATIO {
        warn("echoes_prompt", "the answer merely repeats the prompt".into());
    }
    if let Some(why) = low_entropy(answer) {
        warn("low_entropy", format!("the answer is repetitive: {why}"));
    }
    if let Some(files) = run.files_changed {
        if files.is_empty()
            && let Some(claim) = claims_edits(answer)
        {
            warn(
                "claimed_edits_not_in_git",
                format!("the answer says \"{claim}\" but git shows no changed file"),
            );
        }
        if run.read_only && !files.is_empty() {
            warn(
                "read_only_changed_files",
                format!("a read-only task changed {} file(s): {}", files.len(), files.join(", ")),
            );
        }
    }
    if run.succeeded && !run.permission_denials.is_empty() {
        let tools: Vec<&str> = run
            .permission_denials
            .iter()
            .filter_map(|d| d.get("tool_name").and_then(Value::as_str))
            .collect();
        warn(
            "succeeded_with_denials",
            format!(
                "the run succeeded but {} tool call(s) were refused ({}): the work may be incomplete",
                run.permission_denials.len(),
                tools.join(", ")
            ),
        );
    }
    out
}

/// How much of `answer` (0..1) is the prompt's text, in order: the characters
/// `similar`'s diff keeps equal, over the answer's length (at most 4 KiB of each
/// is compared: enough to tell an echo, bounded in time).
fn echo_ratio(prompt: &str, answer: &str) -> f32 {
    let cut = |s: &str| -> String { s.chars().take(4096).collect() };
    let (p, a) = (cut(prompt), cut(answer));
    let diff = similar::TextDiff::from_chars(p.as_str(), a.as_str());
    let equal: usize = diff
        .ops()
        .iter()
        .filter(|op| op.tag() == similar::DiffTag::Equal)
        .map(|op| op.new_range().len())
        .sum();
    equal as f32 / a.chars().count().max(1) as f32
}

/// Why `text` is too repetitive to be a real answer, if it is: few distinct
/// lines among many, or very low character entropy over a long text.
fn low_entropy(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.len() >= 10 {
        let distinct: std::collections::HashSet<&&str> = lines.iter().collect();
        if distinct.len() * 5 <= lines.len() {
            return Some(format!("{} distinct lines out of {}", distinct.len(), lines.len()));
        }
    }
    let n = text.chars().count();
    if n >= 200 {
        let mut freq: std::collections::HashMap<char, usize> = std::collections::HashMap::new();
        for c in text.chars() {
            *freq.entry(c).or_default() += 1;
        }
        let bits: f64 = freq
            .values()
            .map(|&k| {
                let p = k as f64 / n as f64;
                -p * p.log2()
            })
            .sum();
        if bits < 2.0 {
            return Some(format!("{bits:.2} bits of entropy per character"));
        }
    }
    None
}

/// A phrase of the answer claiming the agent edited files, if there is one.
fn claims_edits(answer: &str) -> Option<String> {
    const VERBS: [&str; 12] = [
        "updated",
        "modified",
        "edited",
        "changed",
        "created",
        "fixed",
        "wrote",
        "added",
        "removed",
        "deleted",
        "refactored",
        "renamed",
    ];
    let lower = answer.to_lowercase();
    for subject in ["i have ", "i've ", "i ", "we have ", "we've "] {
        for verb in VERBS {
            let phrase = format!("{subject}{verb} ");
            if let Some(i) = lower.find(&phrase) {
                let end = (i + phrase.len() + 30).min(lower.len());
                let end = (end..=lower.len())
                    .find(|&e| lower.is_char_boundary(e))
                    .unwrap_or(lower.len());
                return Some(lower[i..end].trim().to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run<'a>(prompt: &'a str, answer: &'a str, files: Option<&'a [String]>) -> Run<'a> {
        Run {
            prompt,
            answer,
            succeeded: true,
            files_changed: files,
            permission_denials: &[],
            read_only: false,
        }
    }

    fn kinds(w: Vec<Warning>) -> Vec<&'static str> {
        w.into_iter().map(|w| w.kind).collect()
    }

    #[test]
    fn a_good_answer_has_no_warning() {
        let files = vec!["src/a.rs".to_string()];
        let r = run(
            "Fix the failing login test in src/a.rs",
            "I fixed the off-by-one in the session expiry check; the login test passes now.",
            Some(&files),
        );
        assert!(check(&r).is_empty(), "{:?}", check(&r));
    }

    #[test]
    fn each_finding() {
        assert_eq!(kinds(check(&run("do it", "  ", None))), ["empty_answer"]);
        let p = "Summarize the architecture of the payment service in three paragraphs";
        assert_eq!(kinds(check(&run(p, p, None))), ["echoes_prompt"]);
        let spam = "ok\n".repeat(50);
        assert_eq!(kinds(check(&run("x", &spam, None))), ["low_entropy"]);
        let none: Vec<String> = Vec::new();
        assert_eq!(
            kinds(check(&run(
                "fix",
                "I have updated the config parser to accept tabs.",
                Some(&none)
            ))),
            ["claimed_edits_not_in_git"]
        );
        let files = vec!["a.txt".to_string()];
        let mut ro = run("review", "Looks fine to me overall, two nits.", Some(&files));
        ro.read_only = true;
        assert_eq!(kinds(check(&ro)), ["read_only_changed_files"]);
        let denials = vec![json!({"tool_name": "Bash", "tool_input": {"command": "rm -rf /"}})];
        let mut d = run("clean", "Done, cleaned what I could.", None);
        d.permission_denials = &denials;
        let w = check(&d);
        assert_eq!(kinds(w.clone()), ["succeeded_with_denials"]);
        assert!(w[0].message.contains("Bash"));
    }

    #[test]
    fn a_claim_is_only_a_warning_when_git_can_tell() {
        assert!(check(&run("fix", "I have updated the parser.", None)).is_empty());
    }
}
