//! `after:`, `after_any:` and `context:`: the tasks a task waits for.
//!
//! A reference is a task id (as `submit` prints it) or the name a file has
//! in the inbox, extension included: files dropped together name each other
//! so. Whether a reference names anything is the daemon's to say when it
//! queues the file (`unknown_dependency`); here only its form is checked,
//! and a task that waits for itself is refused at once.

use super::{Form, invalid};
use crate::task::{Dependencies, Rejection};
use std::path::Path;

/// At most this many references in `after` and `after_any` together.
const MAX_REFERENCES: usize = 50;

/// The task file `file_name`'s dependencies, checked.
pub fn read(
    after: Option<Vec<String>>,
    after_any: Option<Vec<String>>,
    context: Option<bool>,
    file_name: &str,
) -> Result<Dependencies, Rejection> {
    let mut deps = Dependencies {
        after: tidy("after", after.unwrap_or_default())?,
        after_any: tidy("after_any", after_any.unwrap_or_default())?,
        no_context: context == Some(false),
        ..Dependencies::default()
    };
    if deps.after.len() + deps.after_any.len() > MAX_REFERENCES {
        return Err(invalid(
            "after",
            format!("{} tasks", deps.after.len() + deps.after_any.len()),
            &format!("wait for at most {MAX_REFERENCES} tasks"),
        ));
    }
    // Waiting for success already waits for the end.
    deps.after_any.retain(|r| !deps.after.contains(r));
    let stem = Path::new(file_name).file_stem().and_then(|s| s.to_str());
    if let Some(me) = deps.references().find(|r| *r == file_name || Some(*r) == stem) {
        return Err(Rejection::new(
            "dependency_cycle",
            format!("the task waits for itself (`{me}` is this file)"),
            "remove it from `after`/`after_any`: a task cannot wait for its own end",
        ));
    }
    Ok(deps)
}

/// The longest `delay`.
const MAX_DELAY: std::time::Duration = std::time::Duration::from_secs(366 * 24 * 3600);

/// `not_before` (an RFC 3339 time with its offset) and `delay`, checked.
pub fn start(
    not_before: Option<String>,
    delay: Option<crate::duration::Dur>,
) -> Result<(Option<jiff::Timestamp>, Option<std::time::Duration>), Rejection> {
    let not_before = match not_before {
        None => None,
        Some(t) => Some(t.trim().parse::<jiff::Timestamp>().map_err(|e| {
            invalid(
                "not_before",
                format!("`{t}` is not a time with its offset ({e})"),
                "write an RFC 3339 time with its zone, e.g. 2026-12-08T02:00:00Z or 2026-12-08T03:00:00+01:00",
            )
        })?),
    };
    let delay = delay.map(|d| d.0);
    if let Some(d) = delay
        && d > MAX_DELAY
    {
        return Err(invalid(
            "delay",
            format!("{}s is more than a year", d.as_secs()),
            "give a delay of at most 366d, or a not_before time",
        ));
    }
    Ok((not_before, delay))
}

/// The references of one list, trimmed, checked and without repeats.
fn tidy(field: &str, list: Vec<String>) -> Result<Vec<String>, Rejection> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for r in list {
        let r = r.trim().to_string();
        let id = crate::ids::is_well_formed(&r);
        let file = crate::store::layout::is_plain_name(&r)
            && r.len() <= 255
            && !crate::task::parse::is_ignored_name(&r)
            && Form::of(Path::new(&r)).is_some();
        if !id && !file {
            return Err(invalid(
                field,
                format!("`{r}` is neither a task id nor the name of a task file"),
                "name an id (as `orchestrator submit` prints it) or a file in the inbox with its extension, e.g. `review.md`",
            ));
        }
        if !out.contains(&r) {
            out.push(r);
        }
    }
    Ok(out)
}
