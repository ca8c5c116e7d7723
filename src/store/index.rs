//! `results/index.json`: one row per finished task, a cache of the result files.
//!
//! Rewriting the whole index for every finished task makes a burst O(n²) (pueue
//! met the same with its state file), so rows are collected and flushed in batches: the index is
//! current within a second, as the spec asks, and a burst of 1,000 tasks causes
//! a handful of rewrites instead of 1,000.
//!
//! Several daemons may share the index, so a flush takes `.index.lock`, reads
//! the file, merges its rows in, and renames a new file into place. Rows already
//! in the file are carried through as raw JSON text, never parsed into
//! structures. A missing or corrupt index is rebuilt from the result files:
//! they are the truth.

use super::Home;
use super::atomic::write_atomic;
use super::record::{ResultRecord, SCHEMA_VERSION, Status};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::io;
use std::sync::Mutex;
use std::time::Duration;

/// Shortest pause between flushes.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// Longest: the index is current within a second of a task finishing.
pub const FLUSH_AT_MOST_EVERY: Duration = Duration::from_millis(900);

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
    pub error_kind: Option<crate::vocab::ErrorKind>,
    pub started_at: String,
    /// The inbox file's name, so the CLI can find a task by it.
    #[serde(default)]
    pub source_file: String,
    /// `mediated`, or why the mediator's proposal was not used (tasks it saw only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mediation: Option<String>,
    /// Runs of a step that had run before ([`ResultRecord::retries`]); absent
    /// in rows written before it was counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// The role preset it ran with, if any (so the dashboard filters by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The task this one follows up (`retry`, `resume`, `reply`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_task_id: Option<String>,
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
            error_kind: r.error.as_ref().map(|e| e.kind),
            started_at: r.started_at.clone(),
            source_file: r.source_file.clone(),
            mediation: r.mediation.as_ref().map(crate::vocab::Mediation::outcome),
            retries: Some(r.retries()),
            role: r.role.clone(),
            parent_task_id: r.parent_task_id.clone(),
        }
    }
}

/// The index, parsed.
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

/// The index with each row kept as raw JSON text.
#[derive(Debug, Serialize, Deserialize)]
struct RawIndex {
    schema_version: u32,
    tasks: BTreeMap<String, Box<RawValue>>,
}

/// Only the ids of the index (rows are skipped without being built).
#[derive(Debug, Deserialize)]
struct IndexKeys {
    schema_version: u32,
    tasks: HashMap<String, IgnoredAny>,
}

/// `results/index.counts.json`: finished tasks by status, kept beside the index
/// so `status` answers without reading a 100,000-row index.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub total: usize,
    pub by_status: BTreeMap<String, usize>,
}

impl Counts {
    fn add(&mut self, status: Status) {
        self.total += 1;
        *self.by_status.entry(status.name().to_string()).or_default() += 1;
    }
}

pub fn read_counts(home: &Home) -> Option<Counts> {
    super::read::json(&home.results().join("index.counts.json"))
}

fn write_counts(home: &Home, counts: &Counts) -> io::Result<()> {
    write_atomic(
        &home.results().join("index.counts.json"),
        &serde_json::to_vec(counts).map_err(io::Error::other)?,
    )
}

/// Counts every row of a raw index (parsing only each row's status).
fn recount(index: &RawIndex) -> Counts {
    #[derive(Deserialize)]
    struct StatusOnly {
        status: Status,
    }
    let mut c = Counts::default();
    for row in index.tasks.values() {
        if let Ok(s) = serde_json::from_str::<StatusOnly>(row.get()) {
            c.add(s.status);
        }
    }
    c
}

/// Rebuilds the index when it is missing (a reading verb on a home whose
/// index was deleted must not say "no tasks"): from the result files, written
/// for the next reader when this user may, else kept for this one.
pub fn ensure(home: &Home) {
    if home.index_file().exists() || !home.results().is_dir() {
        return;
    }
    if let Err(e) = reconcile(home) {
        tracing::debug!(error = %e, "could not write the rebuilt index");
    }
}

/// Reads the index; `None` if it is missing or unreadable (then rebuild).
pub fn read(home: &Home) -> Option<Index> {
    let bytes = super::read::read_bounded(&home.index_file(), super::read::max::INDEX).ok()?;
    let index: Index = serde_json::from_slice(&bytes).ok()?;
    (index.schema_version == SCHEMA_VERSION).then_some(index)
}

fn read_raw(home: &Home) -> Option<RawIndex> {
    let bytes = super::read::read_bounded(&home.index_file(), super::read::max::INDEX).ok()?;
    serde_json::from_slice::<RawIndex>(&bytes)
        .ok()
        .filter(|i| i.schema_version == SCHEMA_VERSION)
}

/// The newest rows (ids sort by claim time) that pass `keep`, at most `limit`
/// (0: all). Rows are parsed one by one from the end, so listing the last 20
/// tasks of a 100,000-row index parses 20 rows, not 100,000.
pub fn newest(home: &Home, limit: usize, mut keep: impl FnMut(&str, &IndexRow) -> bool) -> Vec<(String, IndexRow)> {
    let index = match read_raw(home) {
        Some(i) => i,
        // Missing or unreadable, and not writable here: read the results.
        None => match rebuild(home).and_then(|i| raw_rows(&i.tasks)) {
            Ok(tasks) => RawIndex {
                schema_version: SCHEMA_VERSION,
                tasks,
            },
            Err(_) => return Vec::new(),
        },
    };
    let mut out = Vec::new();
    for (id, raw) in index.tasks.iter().rev() {
        let Ok(row) = serde_json::from_str::<IndexRow>(raw.get()) else {
            continue;
        };
        if keep(id, &row) {
            out.push((id.clone(), row));
            if limit > 0 && out.len() == limit {
                break;
            }
        }
    }
    out
}

/// The rows of tasks claimed after `id` (ids sort by claim time) that pass
/// `keep`, newest first: read from the end, stopping at `id`, so a task's
/// follow-ups are found without parsing the rows before it.
pub fn after(home: &Home, id: &str, mut keep: impl FnMut(&str, &IndexRow) -> bool) -> Vec<(String, IndexRow)> {
    let Some(index) = read_raw(home) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (rid, raw) in index.tasks.iter().rev() {
        if rid.as_str() <= id {
            break;
        }
        if let Ok(row) = serde_json::from_str::<IndexRow>(raw.get())
            && keep(rid, &row)
        {
            out.push((rid.clone(), row));
        }
    }
    out
}

/// Rebuilds the index from every `results/*/result.json`.
pub fn rebuild(home: &Home) -> io::Result<Index> {
    Ok(Index {
        schema_version: SCHEMA_VERSION,
        tasks: rows_not_in(home, |_| false)?,
    })
}

/// Rows for finished tasks whose id `known` does not know.
fn rows_not_in(home: &Home, known: impl Fn(&str) -> bool) -> io::Result<BTreeMap<String, IndexRow>> {
    let mut rows = BTreeMap::new();
    for entry in std::fs::read_dir(home.results())?.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || known(&name) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        match ResultRecord::load(&entry.path().join("result.json")) {
            Ok(r) => {
                rows.insert(name, IndexRow::from_result(&r));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(task = %name, error = %e, "unreadable result.json left out of the index"),
        }
    }
    Ok(rows)
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
    crate::memory::release_freed();
    out
}

/// Merges `rows` into the index file (rebuilding it if it is unreadable). Lock held.
fn merge_locked(home: &Home, rows: &BTreeMap<String, IndexRow>) -> io::Result<()> {
    let mut index = match read_raw(home) {
        Some(i) => i,
        None => RawIndex {
            schema_version: SCHEMA_VERSION,
            tasks: raw_rows(&rows_not_in(home, |_| false)?)?,
        },
    };
    let mut counts = read_counts(home).filter(|c| c.total == index.tasks.len());
    for (id, row) in rows {
        match &mut counts {
            Some(c) if !index.tasks.contains_key(id) => c.add(row.status),
            _ => counts = None,
        }
    }
    index.tasks.extend(raw_rows(rows)?);
    let counts = counts.unwrap_or_else(|| recount(&index));
    let mut bytes = serde_json::to_vec(&index).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write_atomic(&home.index_file(), &bytes)?;
    write_counts(home, &counts)
}

fn raw_rows(rows: &BTreeMap<String, IndexRow>) -> io::Result<BTreeMap<String, Box<RawValue>>> {
    rows.iter()
        .map(|(k, v)| Ok((k.clone(), serde_json::value::to_raw_value(v).map_err(io::Error::other)?)))
        .collect()
}

/// Makes the index agree with the result files: rebuilt if missing or corrupt,
/// rows added for results it lacks. Returns the ids of the rows added to an
/// index that was behind (none when it was rebuilt whole): tasks that finished
/// just before a crash, whose final event may be missing too.
pub fn reconcile(home: &Home) -> io::Result<Vec<String>> {
    with_lock(home, || {
        let keys = super::read::read_bounded(&home.index_file(), super::read::max::INDEX)
            .ok()
            .and_then(|b| serde_json::from_slice::<IndexKeys>(&b).ok())
            .filter(|k| k.schema_version == SCHEMA_VERSION);
        match keys {
            Some(keys) => {
                let missing = rows_not_in(home, |id| keys.tasks.contains_key(id))?;
                if !missing.is_empty() || read_counts(home).is_none_or(|c| c.total != keys.tasks.len()) {
                    merge_locked(home, &missing)?;
                }
                Ok(missing.into_keys().collect())
            }
            None => {
                let index = rebuild(home)?;
                write_full(home, &index)?;
                tracing::info!(
                    rows = index.tasks.len(),
                    "results/index.json rebuilt from the result files"
                );
                Ok(Vec::new())
            }
        }
    })
}

/// Removes rows (tasks deleted by `clean`) and recounts.
pub fn remove(home: &Home, ids: &[String]) -> io::Result<()> {
    with_lock(home, || {
        let Some(mut index) = read_raw(home) else {
            let index = rebuild(home)?;
            return write_full(home, &index);
        };
        for id in ids {
            index.tasks.remove(id);
        }
        let counts = recount(&index);
        let mut bytes = serde_json::to_vec(&index).map_err(io::Error::other)?;
        bytes.push(b'\n');
        write_atomic(&home.index_file(), &bytes)?;
        write_counts(home, &counts)
    })
}

/// Writes a whole index and its counts (used by rebuilds and `reindex`).
pub fn write_full(home: &Home, index: &Index) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(index).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write_atomic(&home.index_file(), &bytes)?;
    let mut counts = Counts::default();
    for row in index.tasks.values() {
        counts.add(row.status);
    }
    write_counts(home, &counts)
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
        let result = with_lock(&self.home, || merge_locked(&self.home, &batch));
        if result.is_err() {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            for (k, v) in batch {
                pending.entry(k).or_insert(v);
            }
        }
        result
    }

    /// Flushes whenever rows arrive, until dropped. The pause between flushes
    /// grows with what a flush costs (three times its duration, between
    /// [`FLUSH_EVERY`] and [`FLUSH_AT_MOST_EVERY`]), so a huge index costs at most
    /// about a quarter of a core during a burst and is still current within a second.
    pub async fn run(self: std::sync::Arc<Self>) {
        let mut pause = FLUSH_EVERY;
        loop {
            self.wake.notified().await;
            tokio::time::sleep(pause).await;
            let me = self.clone();
            let started = std::time::Instant::now();
            let r = tokio::task::spawn_blocking(move || me.flush()).await;
            pause = (started.elapsed() * 3).clamp(FLUSH_EVERY, FLUSH_AT_MOST_EVERY);
            if let Ok(Err(e)) = r {
                tracing::error!(error = %e, "could not write results/index.json; will retry");
            }
        }
    }
}
