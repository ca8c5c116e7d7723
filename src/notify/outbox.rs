//! The notifications waiting to be sent: one file each in `notify/outbox/`,
//! so that a restart loses none. Names sort by when they were made; a file
//! is rewritten after a failed attempt (its count and next time), removed
//! once sent, and set aside in `notify/failed/` when its attempts are spent
//! or the backlog is full (both bounded).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// One notification for one sink (and, for Telegram, one chat).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Item {
    /// `webhook` or `telegram`.
    pub sink: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<i64>,
    /// The event line, as written to the event log (redacted).
    pub event: Value,
    #[serde(default)]
    pub attempts: u32,
    /// Not before this (epoch milliseconds).
    #[serde(default)]
    pub next_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

pub struct Outbox {
    dir: PathBuf,
    failed: PathBuf,
    /// How many wait, as this process knows it (others may add some): the
    /// folder is listed only when it reaches the backlog, not at every push.
    waiting: std::sync::Mutex<Option<usize>>,
}

/// Orders the items one process makes within a millisecond.
static SEQ: AtomicU64 = AtomicU64::new(0);

pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl Outbox {
    pub fn new(notify_dir: &Path) -> Self {
        Self {
            dir: notify_dir.join("outbox"),
            failed: notify_dir.join("failed"),
            waiting: std::sync::Mutex::new(None),
        }
    }

    /// Adds `item`. With `backlog` items waiting already, the oldest are set aside first.
    pub fn push(&self, item: &Item, backlog: usize) -> io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        let mut known = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let mut n = match *known {
            Some(n) => n,
            None => self.names()?.len(),
        };
        if n >= backlog {
            let waiting = self.names()?;
            n = waiting.len();
            if n >= backlog {
                for name in &waiting[..=n - backlog] {
                    tracing::warn!(file = %name, backlog, "notification backlog full: the oldest is set aside");
                    match self.move_aside(&self.dir.join(name)) {
                        // The sender finished it between the listing and now.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        other => other?,
                    }
                }
                n = backlog - 1;
            }
        }
        let name = format!(
            "{:013}-{}-{:06}.json",
            now_ms(),
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = self.dir.join(name);
        crate::store::atomic::write_json_atomic(&path, item)?;
        *known = Some(n + 1);
        Ok(path)
    }

    fn names(&self) -> io::Result<Vec<String>> {
        let mut names: Vec<String> = match std::fs::read_dir(&self.dir) {
            Ok(d) => d
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        names.sort();
        Ok(names)
    }

    /// Everything waiting, oldest first, with its path. Unreadable files are set aside.
    pub fn waiting(&self) -> Vec<(PathBuf, Item)> {
        let mut out = Vec::new();
        // Counted under the lock `push` holds: a push between the listing and
        // the count would otherwise be forgotten, and the backlog overrun.
        let names = {
            let mut known = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            let names = self.names().unwrap_or_default();
            *known = Some(names.len());
            names
        };
        for name in names {
            let path = self.dir.join(&name);
            match crate::store::read::json(&path) {
                Some(item) => out.push((path, item)),
                None => {
                    let _ = self.set_aside(&path);
                }
            }
        }
        out
    }

    /// Sent: gone.
    pub fn done(&self, path: &Path) {
        if std::fs::remove_file(path).is_ok() {
            self.one_less();
        }
    }

    fn one_less(&self) {
        if let Some(n) = self.waiting.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            *n = n.saturating_sub(1);
        }
    }

    /// Failed this time: kept with its new count and time.
    pub fn update(&self, path: &Path, item: &Item) -> io::Result<()> {
        crate::store::atomic::write_json_atomic(path, item)
    }

    /// Moved to `notify/failed/`, which keeps its newest 1,000.
    pub fn set_aside(&self, path: &Path) -> io::Result<()> {
        self.move_aside(path)?;
        self.one_less();
        Ok(())
    }

    fn move_aside(&self, path: &Path) -> io::Result<()> {
        if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            crate::store::keep::move_into(path, &self.failed, name)?;
        }
        let mut failed: Vec<PathBuf> = std::fs::read_dir(&self.failed)?.flatten().map(|e| e.path()).collect();
        if failed.len() > 1000 {
            failed.sort();
            for p in &failed[..failed.len() - 1000] {
                let _ = std::fs::remove_file(p);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: u32) -> Item {
        Item {
            sink: "webhook".into(),
            chat: None,
            event: serde_json::json!({"event": "task_succeeded", "n": n}),
            attempts: 0,
            next_at_ms: 0,
            last_error: None,
        }
    }

    #[test]
    fn items_wait_in_order_survive_a_new_outbox_and_the_backlog_is_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let o = Outbox::new(tmp.path());
        for n in 0..3 {
            o.push(&item(n), 10).unwrap();
        }
        // A restart: a new outbox on the same folder finds them, oldest first.
        let o = Outbox::new(tmp.path());
        let w = o.waiting();
        assert_eq!(
            w.iter()
                .map(|(_, i)| i.event["n"].as_u64().unwrap())
                .collect::<Vec<_>>(),
            [0, 1, 2]
        );
        o.done(&w[0].0);
        assert_eq!(o.waiting().len(), 2);
        // A backlog of 2: the next push sets the oldest aside.
        o.push(&item(3), 2).unwrap();
        let w = o.waiting();
        assert_eq!(
            w.iter()
                .map(|(_, i)| i.event["n"].as_u64().unwrap())
                .collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(std::fs::read_dir(tmp.path().join("failed")).unwrap().count(), 1);
    }

    #[test]
    fn pushes_while_the_sender_lists_never_overrun_the_backlog() {
        let tmp = tempfile::tempdir().unwrap();
        let o = std::sync::Arc::new(Outbox::new(tmp.path()));
        let backlog = 5;
        let pusher = {
            let o = o.clone();
            std::thread::spawn(move || {
                for n in 0..2000 {
                    o.push(&item(n), backlog).unwrap();
                }
            })
        };
        let mut most = 0;
        while !pusher.is_finished() {
            // The sender's pass: list, and finish the first now and then.
            let w = o.waiting();
            if let Some((p, _)) = w.first().filter(|_| w.len().is_multiple_of(2)) {
                o.done(p);
            }
            most = most.max(o.names().unwrap().len());
        }
        pusher.join().unwrap();
        most = most.max(o.names().unwrap().len());
        assert!(most <= backlog, "{most} waited with a backlog of {backlog}");
    }
}
