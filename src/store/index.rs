//! `results/index.json`: one row per finished task, a cache of the result files.
//!
//! Rewriting the whole index for every finished task makes a burst O(n²) (pueue's
//! issue #573), so rows are collected and flushed at most every
//! [`FLUSH_EVERY`]: the index is current within a second, as the spec asks, and
//! a burst of 1,000 tasks causes a few dozen rewrites instead of 1,000.
//!
//! Several daemons may share the index, so a flush takes `.index.lock`, reads
//! the file, merges its rows in, and renames a new file into place. A missing or
//! corrupt index is rebuilt from the result files: they are the truth.

use super::Home;
use super::atomic::write_atomic;
use super::record::{ResultRecord, SCHEMA_VERSION, Status};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io;
use std::sync::Mutex;
use std::time::Duration;

pub const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// One task in the index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexRow {
    pub status: Status,
    pub title: String,
    pub finished_at: String,
    /// Path of `result.json`, relative to the home.
    pub result: String,
    pub agent: String,
    pub duration_ms: u64,
    pub cost_usd: Option<f64>,
    pub attempts: u32,
    pub error_kind: Option<String>,
    pub started_at: String,
}

impl IndexRow {
    pub fn from_result(r: &ResultRecord) -> Self {
        Self {
            status: r.status,
            title: r.title.clone(),
            finished_at: r.finished_at.clone(),
            result: format!("results/{}/result.json", r.id),
            agent: r.agent.clone(),
            duration_ms: r.duration_ms,
            cost_usd: r.cost_usd,
            attempts: r.attempts.len() as u32,
            error_kind: r.error.as_ref().map(|e| e.kind.clone()),
            started_at: r.started_at.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    pub schema_version: u32,
    pub tasks: BTreeMap<String, IndexRow>,
}

impl Default for Index {
    fn default() -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            tasks: BTreeMap::new(),
        }
    }
}

/// Reads the index; `None` if it is missing or unreadable (then rebuild).
pub fn read(home: &Home) -> Option<Index> {
    let bytes = std::fs::read(home.index_file()).ok()?;
    let index: Index = serde_json::from_slice(&bytes).ok()?;
    (index.schema_version == SCHEMA_VERSION).then_some(index)
}

/// Rebuilds the index from every `results/*/result.json`.
pub fn rebuild(home: &Home) -> io::Result<Index> {
    let mut index = Index::default();
    add_missing(home, &mut index)?;
    Ok(index)
}

/// Adds rows for finished tasks the index does not know; returns how many.
fn add_missing(home: &Home, index: &mut Index) -> io::Result<usize> {
    let mut added = 0;
    for entry in std::fs::read_dir(home.results())?.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || index.tasks.contains_key(&name) || !entry.path().is_dir() {
            continue;
        }
        match ResultRecord::load(&entry.path().join("result.json")) {
            Ok(r) => {
                index.tasks.insert(name, IndexRow::from_result(&r));
                added += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(task = %name, error = %e, "unreadable result.json left out of the index")
            }
        }
    }
    Ok(added)
}

/// Holds the lock on the index for one read-modify-write.
fn with_lock<T>(home: &Home, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(home.index_lock())?;
    lock.lock()?;
    let out = f();
    let _ = lock.unlock();
    out
}

fn write(home: &Home, index: &Index) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(index).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write_atomic(&home.index_file(), &bytes)
}

/// Makes the index agree with the result files: rebuilt if missing or corrupt,
/// rows added for results it lacks. Returns the number of rows added.
pub fn reconcile(home: &Home) -> io::Result<usize> {
    with_lock(home, || {
        let (mut index, rebuilt) = match read(home) {
            Some(i) => (i, false),
            None => (Index::default(), home.index_file().exists()),
        };
        let added = add_missing(home, &mut index)?;
        if added > 0 || rebuilt || !home.index_file().exists() {
            write(home, &index)?;
        }
        Ok(added)
    })
}

/// Collects finished tasks and flushes them into the index in batches.
#[derive(Debug)]
pub struct IndexWriter {
    home: Home,
    pending: Mutex<BTreeMap<String, IndexRow>>,
    pub wake: tokio::sync::Notify,
}

impl IndexWriter {
    pub fn new(home: Home) -> Self {
        Self {
            home,
            pending: Mutex::new(BTreeMap::new()),
            wake: tokio::sync::Notify::new(),
        }
    }

    pub fn record(&self, id: &str, row: IndexRow) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), row);
        self.wake.notify_one();
    }

    /// Writes pending rows now. On failure they stay pending for the next try.
    pub fn flush(&self) -> io::Result<()> {
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if batch.is_empty() {
            return Ok(());
        }
        let result = with_lock(&self.home, || {
            let mut index = match read(&self.home) {
                Some(i) => i,
                None => rebuild(&self.home)?,
            };
            index.tasks.extend(batch.clone());
            write(&self.home, &index)
        });
        if result.is_err() {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            for (k, v) in batch {
                pending.entry(k).or_insert(v);
            }
        }
        result
    }

    /// Flushes whenever rows arrive, at most every [`FLUSH_EVERY`], until dropped.
    pub async fn run(self: std::sync::Arc<Self>) {
        loop {
            self.wake.notified().await;
            tokio::time::sleep(FLUSH_EVERY).await;
            let me = self.clone();
            let r = tokio::task::spawn_blocking(move || me.flush()).await;
            if let Ok(Err(e)) = r {
                tracing::error!(error = %e, "could not write results/index.json; will retry");
            }
        }
    }
}
