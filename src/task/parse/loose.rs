//! A loose note's fields, filled from what it asks for (see `task::intent`).

use super::{Fields, Limits};
use crate::agents::Sessions;
use crate::task::intent;

/// Fills a loose note's fields from what it asks for: only ever narrower
/// (read-only tools and a read-only role, steps, criteria, a folder that must
/// still resolve inside the roots) than the same note without them.
pub(super) fn narrow_by_intent(f: &mut Fields, criteria: &mut Vec<String>, i: &intent::Intent, limits: &Limits) {
    f.title = i.title.clone();
    if let Some(role) = i.read_only {
        f.allowed_tools = Some(intent::READ_ONLY_TOOLS.iter().map(|t| t.to_string()).collect());
        // The role too (its prompt and turn limit), when the config's role of
        // that name still only reads.
        let reads_only = limits.roles.get(role).is_some_and(|r| {
            r.allowed_tools
                .as_ref()
                .is_some_and(|t| t.iter().all(|t| intent::READ_ONLY_TOOLS.contains(&t.as_str())))
        });
        if reads_only {
            f.role = Some(role.to_string());
        }
    }
    // Steps continue one agent session: only for an agent that keeps one.
    if !i.steps.is_empty() && crate::agents::of(limits.default_agent).sessions() == Sessions::Resumable {
        f.steps = Some(i.steps.clone());
    }
    f.workdir = i.workdir.clone();
    criteria.extend(i.success_criteria.iter().cloned());
}
