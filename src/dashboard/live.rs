//! Live updates: one thread follows `logs/events.ndjson` (as `tail-events -f`
//! does, across rotation) and hands each event's few fields that a page needs
//! to every open page, as server-sent events. The pages then ask for the
//! rows of the tasks that changed ([`super::board::rows`]): the dashboard
//! reads one task's files per change, never the whole home.

use super::App;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use serde_json::json;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// How often the log is looked at. An event reaches a page within about this
/// long plus the page's own batching; what arrived meanwhile goes as one message.
const POLL: Duration = Duration::from_millis(100);

pub struct Hub {
    tx: broadcast::Sender<Arc<Look>>,
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
fn follow(path: &Path, tx: &broadcast::Sender<Arc<Look>>) {
    let mut file = open_at_end(path);
    let mut pending: Vec<u8> = Vec::new();
    loop {
        std::thread::sleep(POLL);
        let Some((f, pos)) = file.as_mut() else {
            file = crate::events::open_shared(path).ok().map(|f| (f, 0));
            continue;
        };
        read_new(f, pos, &mut pending, tx);
        if crate::cli::tail_events::rotated(Some(f), path, *pos) {
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

fn read_new(f: &mut std::fs::File, pos: &mut u64, pending: &mut Vec<u8>, tx: &broadcast::Sender<Arc<Look>>) {
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
    let briefs: Vec<Brief> = lines.split(|&b| b == b'\n').filter_map(Brief::of).collect();
    if !briefs.is_empty() {
        let _ = tx.send(Arc::new(Look(briefs)));
    }
}

/// What a page needs of one event line.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Brief {
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

impl Brief {
    /// `None` for lines that are not events.
    pub fn of(line: &[u8]) -> Option<Self> {
        serde_json::from_slice(line.trim_ascii()).ok()
    }
}

/// The events one look at the log found, parsed once for every page.
#[derive(Debug)]
pub struct Look(Vec<Brief>);

/// A board is told of this many changes a look at most; past it, only that
/// there were many (it then fetches itself whole, once the burst allows).
pub const MANY: usize = 40;

impl Look {
    /// The message for a page: a task's page hears of its task only; a board
    /// of every change, or in a burst only how many there were.
    fn message(&self, task: Option<&str>) -> Option<String> {
        match task {
            Some(id) => {
                let mine: Vec<&Brief> = self.0.iter().filter(|b| b.task_id.as_deref() == Some(id)).collect();
                (!mine.is_empty()).then(|| serde_json::to_string(&mine).unwrap_or_default())
            }
            None if self.0.len() > MANY => Some(json!({"many": self.0.len()}).to_string()),
            None => Some(serde_json::to_string(&self.0).unwrap_or_default()),
        }
    }
}

/// `GET /events`: the stream of briefs, a JSON array of them a message. A
/// page that falls behind (over 4,096 messages unread) is told to `resync`
/// and fetches its page again once the burst is over.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Follow {
    /// A task's page: only that task's events.
    task: Option<String>,
}

pub async fn events(
    State(app): State<Arc<App>>,
    Query(follow): Query<Follow>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let rx = app.live.tx.subscribe();
    let stream = futures_util::stream::unfold((rx, follow.task), |(mut rx, task)| async move {
        let event = loop {
            match rx.recv().await {
                Ok(look) => match look.message(task.as_deref()) {
                    Some(text) => break Event::default().data(text),
                    None => continue,
                },
                Err(broadcast::error::RecvError::Lagged(_)) => break Event::default().event("resync").data("{}"),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        };
        Some((Ok(event), (rx, task)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_hears_what_it_shows() {
        let line = |i: usize, id: &str| {
            format!(r#"{{"ts":"t","event":"task_failed","task_id":"{id}","error":{{"message":"secret {i}"}}}}"#)
        };
        let look = |n: usize| {
            Look(
                (0..n)
                    .filter_map(|i| Brief::of(line(i, if i == 0 { "01a" } else { "01b" }).as_bytes()))
                    .collect(),
            )
        };
        assert!(Brief::of(b"not json").is_none());
        assert!(Brief::of(br#"{"no":"event"}"#).is_none());
        let two = look(2);
        assert_eq!(
            two.message(None).unwrap(),
            r#"[{"event":"task_failed","task_id":"01a"},{"event":"task_failed","task_id":"01b"}]"#
        );
        assert_eq!(
            two.message(Some("01a")).unwrap(),
            r#"[{"event":"task_failed","task_id":"01a"}]"#
        );
        assert!(two.message(Some("01c")).is_none());
        assert_eq!(
            look(MANY + 1).message(None).unwrap(),
            format!(r#"{{"many":{}}}"#, MANY + 1)
        );
    }
}
