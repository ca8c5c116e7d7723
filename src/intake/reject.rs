//! Moving a file that is no task to `inbox/rejected/`, with its reason.

use crate::events::{EventLog, now_ts};
use crate::store::Home;
use crate::task::Rejection;
use serde_json::json;
use std::path::Path;

/// Moves a rejected file to `inbox/rejected/` with its `NAME.error.json`.
/// `Err` says why it could not be moved (the file stays in the inbox: the
/// caller says so once, as a `claim_failed` event); `Ok(false)`: it was gone.
pub fn reject(home: &Home, events: &EventLog, name: &str, r: &Rejection) -> Result<bool, String> {
    reject_path(home, events, &home.inbox().join(name), name, r)
}

/// [`reject`] for a file given by its path (its name may not be valid UTF-8;
/// `shown` is how it is named in records).
pub fn reject_path(home: &Home, events: &EventLog, src: &Path, shown: &str, r: &Rejection) -> Result<bool, String> {
    let dir = home.rejected();
    // Kept under its own name, or a distinct one: an earlier rejected file of
    // the same name is never replaced.
    let kept = match crate::store::keep::move_into(src, &dir, shown) {
        Ok(kept) => kept,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && std::fs::symlink_metadata(src).is_err() => {
            return Ok(false);
        }
        Err(e) => {
            tracing::error!(file = shown, error = %e, "could not move a rejected file to inbox/rejected");
            return Err(format!("it could not be moved to {}: {e}", dir.display()));
        }
    };
    let at = now_ts();
    // The reason may quote a value from the file: it is redacted like an event.
    let error = events.redact(&r.error).into_owned();
    let doc = json!({"file": shown, "error": error, "hint": r.hint, "reason": r.reason, "at": at, "moved_to": format!("inbox/rejected/{kept}")});
    if let Err(e) = crate::store::atomic::write_json_atomic(&dir.join(format!("{kept}.error.json")), &doc) {
        tracing::error!(file = shown, error = %e, "could not write the rejection's error.json");
    }
    if r.is_security_violation() {
        events.emit(
            None,
            crate::events::Event::SecurityViolation(crate::events::Violation {
                reason: r.reason.to_string(),
                file: Some(shown.to_string()),
                error: Some(r.error.clone()),
                ..Default::default()
            }),
        );
    }
    events.emit(
        None,
        crate::events::Event::TaskRejected {
            file: shown.to_string(),
            reason: r.reason.to_string(),
            error: r.error.clone(),
            hint: r.hint.clone(),
            moved_to: format!("inbox/rejected/{kept}"),
        },
    );
    tracing::warn!(file = shown, reason = r.reason, "rejected: {error}");
    Ok(true)
}
