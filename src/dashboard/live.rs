//! Live updates: one thread follows `logs/events.ndjson` (as `tail-events -f`
//! does, across rotation) and hands each event's few fields that a page needs
//! to every open page, as server-sent events. The pages then ask for the
//! rows of the tasks that changed ([`super::board::rows`]): the dashboard
//! reads one task's files per change, never the whole home.

use super::App;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde_json::{Value, json};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// How often the log is looked at. An event reaches a page within about this
/// long plus the page's own batching.
const POLL: Duration = Duration::from_millis(100);

pub struct Hub {
    tx: broadcast::Sender<Arc<str>>,
}

impl Hub {
    pub fn start(home: &crate::store::Home) -> Self {
        let (tx, _) = broadcast::channel(4096);
        let sender = tx.clone();
        let path = home.events_log();
        std::thread::Builder::new()
            .name("event-log".into())
            .spawn(move || follow(&path, &sender))
            .map_err(|e| tracing::warn!(error = %e, "no live updates: the event log reader did not start"))
            .ok();
        Self { tx }
    }
}

/// Follows the log from its end for as long as the process lives.
fn follow(path: &Path, tx: &broadcast::Sender<Arc<str>>) {
    let mut file = open_at_end(path);
    let mut pending: Vec<u8> = Vec::new();
    loop {
        std::thread::sleep(POLL);
        let Some((f, pos)) = file.as_mut() else {
            file = crate::events::open_shared(path).ok().map(|f| (f, 0));
            continue;
        };
        read_new(f, pos, &mut pending, tx);
        if replaced(f, path, *pos) {
            // Nobody appends to a rotated log: what it still had is read above.
            file = crate::events::open_shared(path).ok().map(|f| (f, 0));
            pending.clear();
        }
    }
}

fn open_at_end(path: &Path) -> Option<(std::fs::File, u64)> {
    let mut f = crate::events::open_shared(path).ok()?;
    let end = f.seek(SeekFrom::End(0)).ok()?;
    Some((f, end))
}

fn read_new(f: &mut std::fs::File, pos: &mut u64, pending: &mut Vec<u8>, tx: &broadcast::Sender<Arc<str>>) {
    if f.seek(SeekFrom::Start(*pos)).is_err() {
        return;
    }
    let mut buf = Vec::new();
    // At most a few MiB a look: a burst is caught up over several looks.
    let Ok(n) = f.by_ref().take(4 << 20).read_to_end(&mut buf) else {
        return;
    };
    *pos += n as u64;
    pending.extend_from_slice(&buf);
    let Some(last) = pending.iter().rposition(|&b| b == b'\n') else {
        if pending.len() > 1 << 20 {
            pending.clear();
        }
        return;
    };
    let lines: Vec<u8> = pending.drain(..=last).collect();
    if tx.receiver_count() == 0 {
        return;
    }
    for line in lines.split(|&b| b == b'\n') {
        if let Some(brief) = brief(line) {
            let _ = tx.send(brief.into());
        }
    }
}

/// The fields of an event line a page uses, as compact JSON; `None` for
/// lines that are not events.
pub fn brief(line: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(line.trim_ascii()).ok()?;
    let event = v.get("event")?.as_str()?;
    let mut out = json!({"event": event});
    for key in ["task_id", "file", "ts", "status"] {
        if let Some(x) = v.get(key).filter(|x| x.is_string()) {
            out[key] = x.clone();
        }
    }
    Some(out.to_string())
}

/// Has the log at `path` been replaced (rotated) since `f` was opened?
fn replaced(f: &std::fs::File, path: &Path, pos: u64) -> bool {
    let Ok(on_disk) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = f.metadata() {
            return m.ino() != on_disk.ino() || m.dev() != on_disk.dev();
        }
    }
    let _ = f;
    on_disk.len() < pos
}

/// `GET /events`: the stream of briefs. A page that falls behind (over 4,096
/// events unread) is told to `resync` and fetches its page again once the
/// burst is over.
pub async fn events(
    State(app): State<Arc<App>>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let rx = app.live.tx.subscribe();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let event = match rx.recv().await {
            Ok(line) => Event::default().data(&*line),
            Err(broadcast::error::RecvError::Lagged(_)) => Event::default().event("resync").data("{}"),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(event), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_brief_keeps_only_what_a_page_needs() {
        let b = brief(br#"{"ts":"t","event":"task_failed","task_id":"01x","error":{"message":"secret"},"output":"x"}"#)
            .unwrap();
        assert_eq!(b, r#"{"event":"task_failed","task_id":"01x","ts":"t"}"#);
        assert!(brief(b"not json").is_none());
        assert!(brief(br#"{"no":"event"}"#).is_none());
    }
}
