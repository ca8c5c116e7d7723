//! `run/`: which daemons are alive on this home, and what each is doing.
//!
//! Each daemon holds an OS lock on `run/daemon-<host>-<pid>.lock` for its whole
//! life (so a free lock means it died, whatever killed it) and publishes its
//! state in `daemon-<host>-<pid>.json` beside it: running tasks and agent pauses.
//! `status` reads these instead of scanning `results/`.

use super::Home;
use super::atomic::write_json_atomic;
use super::lock;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A daemon's published state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonState {
    pub pid: u32,
    /// `host:pid`.
    pub worker: String,
    pub started_at: String,
    pub max_concurrent: usize,
    pub version: String,
    /// Ids of the tasks it owns now (running, or waiting between attempts).
    pub running: Vec<String>,
    /// Agent -> when its rate-limit pause ends.
    pub paused: BTreeMap<String, String>,
    /// The queue as this daemon sees it (`status` reads this instead of
    /// reading every file in the inbox).
    #[serde(default)]
    pub queued: QueueHead,
    /// The `budget:` cap reached, while the queue waits for its period to end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend_cap: Option<crate::spend::CapHit>,
    pub updated_at: String,
}

/// How many accepted files wait, and the first of them in run order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueHead {
    pub total: usize,
    pub next: Vec<String>,
}

/// How many of the first queued files a daemon publishes.
pub const QUEUE_HEAD: usize = 20;

/// The state is rewritten at most this often (each rewrite replaces a file).
const PUBLISH_EVERY: Duration = Duration::from_millis(500);

/// This daemon's entry in `run/`.
#[derive(Debug)]
pub struct Registration {
    _lock: File,
    lock_path: PathBuf,
    state_path: PathBuf,
    pub state: DaemonState,
    dirty: bool,
    last_publish: Option<Instant>,
}

fn stem(host: &str, pid: u32) -> String {
    format!("daemon-{}-{pid}", crate::ids::slug(host))
}

/// A publication's time, to the microsecond, always six digits (so the
/// strings sort as the times do): `status` compares it with the inbox's
/// modification time, and to the millisecond a publish made in the same
/// millisecond as the change it reflects read as older than that change,
/// which sent `status` listing a big inbox.
pub(crate) fn published_now() -> String {
    format!("{:.6}", jiff::Timestamp::now())
}

impl Registration {
    /// Takes the lock and publishes the first state.
    pub fn register(home: &Home, state: DaemonState, host: &str) -> std::io::Result<Self> {
        let stem = stem(host, state.pid);
        let lock_path = home.daemons().join(format!("{stem}.lock"));
        let lock = lock::try_lock(&lock_path)?
            .ok_or_else(|| std::io::Error::other(format!("{} is locked by another process", lock_path.display())))?;
        let mut me = Self {
            _lock: lock,
            lock_path,
            state_path: home.daemons().join(format!("{stem}.json")),
            state,
            dirty: true,
            last_publish: None,
        };
        me.publish_now();
        Ok(me)
    }

    pub fn lock_path(&self) -> &Path {
        &self.lock_path
    }

    /// Records a change; it is published by [`Self::publish_due`].
    pub fn update(&mut self, running: Vec<String>, paused: BTreeMap<String, String>) {
        if running != self.state.running || paused != self.state.paused {
            self.state.running = running;
            self.state.paused = paused;
            self.dirty = true;
        }
    }

    /// Records the spend cap reached, if one is.
    pub fn update_spend_cap(&mut self, hit: Option<&crate::spend::CapHit>) {
        if self.state.spend_cap.as_ref() != hit {
            self.state.spend_cap = hit.cloned();
            self.dirty = true;
        }
    }

    /// Records the queue's size and first names (only when they changed: this
    /// is called on every turn of the daemon's loop).
    pub fn update_queue<'a>(&mut self, total: usize, head: impl Iterator<Item = &'a str> + Clone) {
        let known = &self.state.queued;
        if known.total == total && head.clone().take(QUEUE_HEAD).eq(known.next.iter().map(String::as_str)) {
            return;
        }
        self.state.queued = QueueHead {
            total,
            next: head.take(QUEUE_HEAD).map(str::to_string).collect(),
        };
        self.dirty = true;
    }

    /// Publishes if something changed and the last write is old enough;
    /// returns when to call again if a change is still waiting.
    pub fn publish_due(&mut self, now: Instant) -> Option<Instant> {
        if !self.dirty {
            return None;
        }
        match self.last_publish {
            Some(t) if now < t + PUBLISH_EVERY => Some(t + PUBLISH_EVERY),
            _ => {
                self.publish_now();
                None
            }
        }
    }

    fn publish_now(&mut self) {
        self.state.updated_at = published_now();
        if let Err(e) = write_json_atomic(&self.state_path, &self.state) {
            tracing::warn!(error = %e, "could not publish the daemon state in run/");
        }
        self.dirty = false;
        self.last_publish = Some(Instant::now());
    }

    /// Removes the entry (clean exit). Tasks the stop left unfinished are
    /// kept in `<stem>.<ulid>.interrupted.json`, for `status` and `list` to
    /// show until a daemon runs them again.
    pub fn remove(self, unfinished: &[String]) {
        if !unfinished.is_empty() {
            // A name of its own: a later daemon with the same pid on the same
            // host (a container's pid 1) must not replace an earlier record.
            let unique = ulid::Ulid::generate().to_string().to_ascii_lowercase();
            let path = self.state_path.with_extension(format!("{unique}.interrupted.json"));
            if let Err(e) = write_json_atomic(&path, &unfinished) {
                tracing::warn!(error = %e, "could not record the interrupted tasks in run/");
            }
        }
        let _ = std::fs::remove_file(&self.state_path);
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// Lock files in `run/` of daemons that died without removing them. `own` is ours.
pub fn dead(home: &Home, own: &Path) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(home.daemons()) else {
        return Vec::new();
    };
    dir.flatten()
        .map(|e| e.path())
        .filter(|p| p != own && p.extension().is_some_and(|x| x == "lock") && !lock::is_locked(p))
        .collect()
}

/// Forgets a dead daemon's entry.
pub fn remove_dead(lock_path: &Path) {
    let _ = std::fs::remove_file(lock_path.with_extension("json"));
    let _ = std::fs::remove_file(lock_path);
}

/// Tasks that daemons no longer alive left unfinished: the last published
/// `running` of a daemon that died, and what one that stopped recorded. Some
/// may have been taken over or finished since: the caller checks.
pub fn left_unfinished(home: &Home) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(home.daemons()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in dir.flatten().map(|e| e.path()) {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let ids: Vec<String> = if name.ends_with(".interrupted.json") {
            super::read::json(&p).unwrap_or_default()
        } else if name.ends_with(".lock") && !lock::is_locked(&p) {
            super::read::json::<DaemonState>(&p.with_extension("json"))
                .map(|s| s.running)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        out.extend(ids);
    }
    out.sort();
    out.dedup();
    out
}

/// Forgets the records of interrupted tasks that have all been taken over
/// or finished (by the recovery scan that takes them over).
pub fn forget_interrupted(home: &Home, still_unfinished: impl Fn(&str) -> bool) {
    let Ok(dir) = std::fs::read_dir(home.daemons()) else {
        return;
    };
    for p in dir.flatten().map(|e| e.path()) {
        if !p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".interrupted.json"))
        {
            continue;
        }
        let ids: Vec<String> = super::read::json(&p).unwrap_or_default();
        if !ids.iter().any(|id| still_unfinished(id)) {
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// The published state of every live daemon.
pub fn live(home: &Home) -> Vec<DaemonState> {
    let Ok(dir) = std::fs::read_dir(home.daemons()) else {
        return Vec::new();
    };
    let mut out: Vec<DaemonState> = dir
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "lock") && lock::is_locked(p))
        .filter_map(|p| super::read::json(&p.with_extension("json")))
        .collect();
    out.sort_by(|a, b| a.worker.cmp(&b.worker));
    out
}
