//! What a loose note asks for, read by rules a person can check.
//!
//! A note without fields ("review src/auth for sql injection, don't change
//! anything") is the commonest task file. The parser reads from it what a
//! careful person would: a title (a Markdown heading, else the first
//! sentence), whether the work only reads (a question, review, explain,
//! "don't change anything"), the folder named as the place of the work ("in
//! services/billing:"), a list of actions as steps, and "make sure the tests
//! pass" as a success criterion. Each finding carries the words that decided
//! it ([`Decision`]), shown by `plan FILE` and kept in `plan.json`.
//!
//! Intent only narrows: it may take tools away (read-only), pick a folder
//! that must still resolve inside the allowed roots (else the default stays),
//! split the work into steps and name criteria. It never sets tools, limits,
//! an agent, a mode or a budget: a note that asks for Bash, 500 turns or $50
//! is a note, not a setting.

use serde::{Deserialize, Serialize};

/// The tools a read-only task keeps: it may read and search, not write or run.
pub const READ_ONLY_TOOLS: &[&str] = &["Read", "Glob", "Grep", "LS"];

/// How much of a note is read for intent (a longer note is read as far as this).
const READ_AT_MOST: usize = 64 * 1024;

/// One thing the parser read from a note, and the words that decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// `title`, `read_only`, `workdir`, `steps` or `success_criteria`.
    pub field: String,
    pub value: String,
    /// The note's words it was read from.
    pub because: String,
}

/// What a note asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Intent {
    pub title: Option<String>,
    /// `review`, `summarize` or `analyze`: which read-only role fits.
    pub read_only: Option<&'static str>,
    /// A folder named as the place of the work, as written.
    pub workdir: Option<String>,
    pub steps: Vec<String>,
    pub success_criteria: Vec<String>,
    pub decisions: Vec<Decision>,
}

mod words;
use words::*;

/// Reads `note` (a loose task file's text).
pub fn read(note: &str) -> Intent {
    let mut cut = note.len().min(READ_AT_MOST);
    while !note.is_char_boundary(cut) {
        cut -= 1;
    }
    let note = &note[..cut];
    let mut intent = Intent::default();
    read_title(note, &mut intent);
    let (items, criteria) = read_lists(note);
    read_criteria(note, &criteria, &mut intent);
    read_steps(&items, &mut intent);
    read_only(note, &mut intent);
    read_place(note, &mut intent);
    intent
}

fn decide(intent: &mut Intent, field: &str, value: impl Into<String>, because: impl Into<String>) {
    intent.decisions.push(Decision {
        field: field.into(),
        value: value.into(),
        because: because.into(),
    });
}

/// The words of `text`, lower-case, letters, digits, `'` and `-` only.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’' || c == '-'))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase().replace('’', "'"))
        .collect()
}

/// The first word of a clause that says what to do (past politeness and filler).
fn verb_of(clause: &str) -> Option<String> {
    words(clause).into_iter().find(|w| !FILLER.contains(&w.as_str()))
}

/// A list item's text, if `line` is one: `- x`, `* x`, `+ x`, `1. x`, `1) x`, `- [ ] x`.
fn list_item(line: &str) -> Option<&str> {
    let t = line.trim_start();
    let rest = if let Some(r) = t
        .strip_prefix("- ")
        .or_else(|| t.strip_prefix("* "))
        .or_else(|| t.strip_prefix("+ "))
    {
        r
    } else {
        let digits = t.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 || digits > 3 {
            return None;
        }
        let r = &t[digits..];
        r.strip_prefix(". ").or_else(|| r.strip_prefix(") "))?
    };
    let rest = rest
        .strip_prefix("[ ] ")
        .or_else(|| rest.strip_prefix("[x] "))
        .unwrap_or(rest)
        .trim();
    (!rest.is_empty()).then_some(rest)
}

/// A sentence or list item that states when the work is done.
fn criterion(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    let t = text.trim().trim_end_matches(['.', '!', ';']).trim();
    let starts = [
        "make sure",
        "ensure",
        "be sure",
        "verify that",
        "check that",
        "done when",
        "success means",
    ];
    let says = [
        " must pass",
        " should pass",
        " need to pass",
        " needs to pass",
        " have to pass",
        " has to pass",
        " must be green",
        " must stay green",
        " must still pass",
        " should still pass",
        " keep passing",
        " until ",
    ];
    // "the score must stay above 90", "the output must not change", "keep
    // clippy clean".
    let holds = [
        " must stay ",
        " must remain ",
        " must not change",
        " must not break",
        " should not change",
        " should not break",
        " must still ",
        " must keep ",
    ];
    let opens = starts.iter().any(|s| lower.trim_start().starts_with(s));
    let passes = says.iter().any(|s| lower.contains(s)) && (lower.contains("pass") || lower.contains("green"));
    let kept = holds.iter().any(|s| lower.contains(s))
        || lower.trim_start().starts_with("keep ")
            && ["clean", "green", "passing", "working", "warning"]
                .iter()
                .any(|w| lower.contains(w));
    (opens || passes || kept).then(|| t.to_string())
}

/// The list items of the note that are not criteria, and the ones that are.
fn read_lists(note: &str) -> (Vec<String>, Vec<String>) {
    let mut items = Vec::new();
    let mut criteria = Vec::new();
    let mut in_code = false;
    for line in note.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        if let Some(item) = list_item(line) {
            match criterion(item) {
                Some(c) => criteria.push(c),
                None => items.push(item.to_string()),
            }
        }
    }
    (items, criteria)
}

fn read_title(note: &str, intent: &mut Intent) {
    let heading = note
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim())
        .filter(|l| !l.is_empty());
    if let Some(h) = heading {
        let title = cut_at_word(h, 80);
        decide(intent, "title", &title, format!("the heading `# {h}`"));
        intent.title = Some(title);
        return;
    }
    let Some(first) = note
        .lines()
        .map(|l| list_item(l).unwrap_or(l).trim())
        .find(|l| !l.is_empty())
    else {
        return;
    };
    let sentence = first_sentence(first);
    // "in services/billing: add retries" is titled by what it asks.
    let sentence = match place_prefix(sentence) {
        Some((_, rest)) if !rest.trim().is_empty() => rest.trim(),
        _ => sentence,
    };
    let title = cut_at_word(sentence, 80);
    if title.is_empty() {
        return;
    }
    decide(intent, "title", &title, "the first sentence");
    intent.title = Some(title);
}

/// Up to the first `.`, `!` or `?` that ends a sentence (followed by a space or the end).
fn first_sentence(line: &str) -> &str {
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(c, '.' | '!' | '?') && chars.peek().is_none_or(|(_, n)| n.is_whitespace()) {
            // A question keeps its mark; a statement loses its full stop.
            return if c == '?' { &line[..=i] } else { &line[..i] };
        }
    }
    line
}

/// `text` cut to at most `max` characters at a word, with `…` when cut.
pub fn cut_at_word(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_string();
    }
    let head: String = text.chars().take(max - 1).collect();
    let at = head
        .rfind(char::is_whitespace)
        .filter(|&i| i > max / 2)
        .unwrap_or(head.len());
    format!("{}…", head[..at].trim_end_matches([',', ';', ':', ' ']))
}

fn read_criteria(note: &str, from_lists: &[String], intent: &mut Intent) {
    let mut found: Vec<String> = from_lists.to_vec();
    for line in note.lines().filter(|l| list_item(l).is_none()) {
        for sentence in sentences(line) {
            if let Some(c) = criterion(sentence) {
                found.push(c);
            }
        }
    }
    found.dedup();
    found.truncate(20);
    for c in &found {
        decide(intent, "success_criteria", c, format!("\"{c}\""));
    }
    intent.success_criteria = found;
}

fn sentences(line: &str) -> impl Iterator<Item = &str> {
    line.split_inclusive(['.', '!', '?', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn read_steps(items: &[String], intent: &mut Intent) {
    if items.len() < 2 || items.len() > 50 {
        return;
    }
    let is_action = |item: &String| {
        verb_of(item).is_some_and(|v| {
            WRITE_VERBS.contains(&v.as_str())
                || STEP_VERBS_EXTRA.contains(&v.as_str())
                || READ_VERBS.iter().any(|(r, _)| *r == v)
        })
    };
    // A list of actions, not of files or findings: most items open with a verb.
    let actions = items.iter().filter(|i| is_action(i)).count();
    if actions * 3 < items.len() * 2 {
        return;
    }
    decide(
        intent,
        "steps",
        items.len().to_string(),
        format!(
            "a list of {} actions, from \"{}\"",
            items.len(),
            cut_at_word(&items[0], 40)
        ),
    );
    intent.steps = items.to_vec();
}

fn read_only(note: &str, intent: &mut Intent) {
    let lower = note.to_lowercase().replace('’', "'");
    if let Some(p) = NO_CHANGES.iter().find(|p| contains_phrase(&lower, p)) {
        let role = first_read_verb(note).unwrap_or("analyze");
        decide(intent, "read_only", role, format!("\"{p}\""));
        intent.read_only = Some(role);
        return;
    }
    // Otherwise what the clauses open with: any that changes things wins.
    let clauses: Vec<&str> = note
        .lines()
        .map(|l| list_item(l).unwrap_or(l))
        .flat_map(|l| l.split(['.', '!', ';', ',', ':']))
        .flat_map(|c| c.split(" and ").flat_map(|c| c.split(" then ")))
        .filter(|c| !c.trim().is_empty())
        .collect();
    let writes = clauses
        .iter()
        .filter(|c| !c.trim_start().starts_with('#'))
        .filter_map(|c| verb_of(c))
        .find(|v| WRITE_VERBS.contains(&v.as_str()));
    if let Some(v) = writes {
        let _ = v;
        return;
    }
    // Nothing changes things, and something asks to read ("Files to look at:
    // ... Find the leak", "in src/auth: explain the flow").
    if let Some((verb, role)) = clauses
        .iter()
        .filter(|c| !c.trim_start().starts_with('#'))
        .find_map(|c| first_read_verb_of(c).map(|r| (verb_of(c).unwrap_or_default(), r)))
    {
        decide(
            intent,
            "read_only",
            role,
            format!("it asks to {verb}, and nothing that changes files"),
        );
        intent.read_only = Some(role);
        return;
    }
    let first = note
        .lines()
        .map(|l| list_item(l).unwrap_or(l).trim())
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    let first = first_sentence(first);
    let opener = words(first).into_iter().next().unwrap_or_default();
    if first.trim_end().ends_with('?') || QUESTION_WORDS.contains(&opener.as_str()) && note.contains('?') {
        decide(intent, "read_only", "analyze", "it is a question");
        intent.read_only = Some("analyze");
    }
}

/// `phrase` in `text` at word boundaries.
fn contains_phrase(text: &str, phrase: &str) -> bool {
    text.match_indices(phrase).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + phrase.len()..].chars().next();
        before.is_none_or(|c| !c.is_alphanumeric()) && after.is_none_or(|c| !c.is_alphanumeric())
    })
}

fn first_read_verb(note: &str) -> Option<&'static str> {
    note.lines()
        .map(|l| list_item(l).unwrap_or(l))
        .flat_map(|l| l.split(['.', '!', ';', ',', ':']))
        .find_map(first_read_verb_of)
}

fn first_read_verb_of(clause: &str) -> Option<&'static str> {
    let v = verb_of(clause)?;
    READ_VERBS.iter().find(|(r, _)| *r == v).map(|(_, role)| *role)
}

/// `in services/billing: rest` at the start of a note: the folder, and the rest.
fn place_prefix(line: &str) -> Option<(&str, &str)> {
    let lower = line.trim_start().to_lowercase();
    for prep in ["in ", "under ", "inside ", "within "] {
        if lower.starts_with(prep) {
            let rest = &line.trim_start()[prep.len()..];
            let (path, after) = rest.split_once(':')?;
            let path = path.trim().trim_matches(['`', '"', '\'']);
            if path_like(path) {
                return Some((path, after));
            }
        }
    }
    None
}

/// A relative or absolute folder path as people write one: with a `/`, no
/// spaces, no `..`, no `~`, no URL.
fn path_like(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 200
        && (p.contains('/') || p.contains('\\'))
        && !p.contains("://")
        && !p.contains(char::is_whitespace)
        && !p.starts_with('~')
        && !p.split(['/', '\\']).any(|c| c == "..")
        && p.chars().all(|c| c.is_alphanumeric() || "/\\._-@+".contains(c))
}

fn read_place(note: &str, intent: &mut Intent) {
    let first = note.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    if let Some((path, _)) = place_prefix(first) {
        let path = path.trim_end_matches(['/', '\\']).to_string();
        decide(intent, "workdir", &path, format!("\"{}\"", cut_at_word(first, 40)));
        intent.workdir = Some(path);
        return;
    }
    // "... in services/billing", "under src/auth", "in the services/billing folder".
    let lower = note.to_lowercase();
    for prep in [" in ", " under ", " inside ", " within ", " in the ", " under the "] {
        for (i, _) in lower.match_indices(prep) {
            let at = i + prep.len();
            let rest = &note[at..];
            let token: &str = rest.split(char::is_whitespace).next().unwrap_or("");
            let path = token.trim_matches(['`', '"', '\'', ',', '.', ':', ';', ')', '(']);
            if path_like(path) && !looks_like_file(path) {
                let path = path.trim_end_matches(['/', '\\']).to_string();
                let words_at = cut_at_word(&note[i + 1..], 40);
                decide(intent, "workdir", &path, format!("\"{words_at}\""));
                intent.workdir = Some(path);
                return;
            }
        }
    }
}

/// `src/auth/login.rs` names a file, not a place to work in.
fn looks_like_file(path: &str) -> bool {
    let last = path.rsplit(['/', '\\']).next().unwrap_or(path);
    last.rsplit_once('.').is_some_and(|(stem, ext)| {
        !stem.is_empty() && !ext.is_empty() && ext.len() <= 5 && ext.chars().all(|c| c.is_ascii_alphanumeric())
    })
}

#[cfg(test)]
mod tests;
