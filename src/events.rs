//! The event log, `logs/events.ndjson`: one JSON object a line.
//!
//! Several daemons may share a home, so every append takes an exclusive OS lock
//! on `logs/.events.lock` and writes one whole line in one call to the log,
//! opened in append mode. Rotation happens under the same lock, so no line is
//! ever split between two files or lost. The log stays open between lines; under
//! the lock the writer checks (by inode, on Unix) that its handle is still the
//! file at `events.ndjson` and reopens it if another daemon rotated it, so no
//! writer keeps writing into a rotated file. (Windows has no stable file id in
//! std, so there the log is reopened for every line.)

use serde_json::{Map, Value};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Appends events; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct EventLog {
    path: PathBuf,
    lock_path: PathBuf,
    rotate_bytes: u64,
    keep: usize,
    /// Serialises writers inside this process (the file lock does it across
    /// processes) and holds the open handles.
    open: Mutex<Handles>,
    /// Secrets never reach the log (replaced when a reload learns new ones).
    redactor: std::sync::RwLock<std::sync::Arc<crate::redact::Redactor>>,
    /// Told of every line as it is written (the notifier).
    subscriber: SubscriberSlot,
}

#[derive(Default)]
struct SubscriberSlot(std::sync::RwLock<Option<Subscriber>>);

impl std::fmt::Debug for SubscriberSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubscriberSlot")
    }
}

/// Called with each event's name and its line (redacted, without the newline).
pub type Subscriber = std::sync::Arc<dyn Fn(&str, &[u8]) + Send + Sync>;

#[derive(Debug, Default)]
struct Handles {
    lock: Option<File>,
    /// The open log and its identity (device, inode), taken when it was opened:
    /// an open file's identity never changes, so each line costs one stat of
    /// the path, not two.
    log: Option<(File, FileId)>,
    /// Where the log ends after this process's last append (unknown: `None`).
    expected_end: Option<u64>,
}

type FileId = (u64, u64);

/// The identity of a file (Unix: device and inode; elsewhere none, and the log
/// is reopened for every line).
fn file_id(m: &std::fs::Metadata) -> FileId {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (m.dev(), m.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        (0, 0)
    }
}

pub use crate::vocab::{Event, Finished, Interruption, Violation, now_ts, ts};

/// An event's name and its fields, as the log writes them.
pub fn parts(event: &Event) -> (String, Value) {
    let mut fields = serde_json::to_value(event).unwrap_or_else(|_| serde_json::json!({"event": "unserializable"}));
    // Shifted out, not swapped: the fields keep their declared order.
    let name = match fields.as_object_mut().and_then(|f| f.shift_remove("event")) {
        Some(Value::String(name)) => name,
        _ => "unknown".to_string(),
    };
    (name, fields)
}

/// Events gathered to be written together ([`EventLog::add`], [`EventLog::write`]).
#[derive(Debug, Default)]
pub struct Batch(Vec<u8>);

impl Batch {
    /// Lines held back past this are written: 100,000 files queued at once
    /// would otherwise hold 15 MB of lines (and the copies a growing buffer
    /// makes) until the last is judged.
    const FULL: usize = 256 * 1024;

    /// Holds enough to be written now.
    pub fn is_full(&self) -> bool {
        self.0.len() >= Self::FULL
    }
}

impl EventLog {
    /// The event log of `home`, rotated as `events` says.
    pub fn of_home(home: &crate::store::Home, events: &crate::config::EventsConfig) -> Self {
        Self::new(home.events_log(), home.events_lock(), events.rotate_bytes, events.keep)
    }

    pub fn new(path: PathBuf, lock_path: PathBuf, rotate_bytes: u64, keep: usize) -> Self {
        Self {
            path,
            lock_path,
            rotate_bytes,
            keep,
            open: Mutex::new(Handles::default()),
            redactor: Default::default(),
            subscriber: Default::default(),
        }
    }

    /// The redaction events get, for other text written beside them.
    pub fn redact<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        self.redactor().redact(text)
    }

    /// Redacts every string of every event with `r`.
    pub fn with_redactor(self, r: crate::redact::Redactor) -> Self {
        self.set_redactor(std::sync::Arc::new(r));
        self
    }

    /// Tells `s` of every line from now on.
    pub fn set_subscriber(&self, s: Subscriber) {
        *self.subscriber.0.write().unwrap_or_else(|e| e.into_inner()) = Some(s);
    }

    /// Redacts with `r` from now on.
    pub fn set_redactor(&self, r: std::sync::Arc<crate::redact::Redactor>) {
        *self.redactor.write().unwrap_or_else(|e| e.into_inner()) = r;
    }

    fn redactor(&self) -> std::sync::Arc<crate::redact::Redactor> {
        self.redactor.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Appends `{"ts", "event", "task_id"?, ...fields}`. Errors are logged, not
    /// returned: a full disk must not stop a task from finishing.
    pub fn emit(&self, task_id: Option<&str>, event: Event) {
        let (name, fields) = parts(&event);
        self.emit_fields(&name, task_id, fields);
    }

    fn emit_fields(&self, event: &str, task_id: Option<&str>, fields: Value) {
        let written = self.line(event, task_id, fields).and_then(|line| self.append(&line));
        if let Err(e) = written {
            tracing::error!(event, error = %e, "could not append to the event log");
        }
    }

    /// Appends several events of one task (or none) in one write, in order,
    /// under one lock; each as [`parts`] made it (a `ts` among the fields is
    /// the time it happened). Errors are logged, as with [`emit`](Self::emit).
    pub fn emit_parts(&self, task_id: Option<&str>, events: impl IntoIterator<Item = (String, Value)>) {
        let mut batch = Batch::default();
        for (event, fields) in events {
            self.add_fields(&mut batch, &event, task_id, fields);
        }
        self.write(batch);
    }

    /// Puts an event into `batch`, as its finished line: a burst of thousands
    /// of files queued at once holds their lines, not their JSON trees.
    pub fn add(&self, batch: &mut Batch, task_id: Option<&str>, event: Event) {
        let (name, fields) = parts(&event);
        self.add_fields(batch, &name, task_id, fields);
    }

    fn add_fields(&self, batch: &mut Batch, event: &str, task_id: Option<&str>, fields: Value) {
        match self.line(event, task_id, fields) {
            Ok(line) => batch.0.extend_from_slice(&line),
            Err(e) => tracing::error!(event, error = %e, "could not format an event"),
        }
    }

    /// Appends the events of `batch` in one write (a burst of files queued at
    /// once is one write, not one per file). Errors are logged.
    pub fn write(&self, batch: Batch) {
        if batch.0.is_empty() {
            return;
        }
        if let Err(e) = self.append(&batch.0) {
            tracing::error!(error = %e, "could not append to the event log");
        }
    }

    /// One event as a whole line, newline included. Its time is now, unless the
    /// fields carry a `ts` string: an event held back to be written with a later
    /// one keeps the time it happened.
    fn line(&self, event: &str, task_id: Option<&str>, fields: Value) -> io::Result<Vec<u8>> {
        let mut fields = match fields {
            Value::Object(f) => f,
            _ => Map::new(),
        };
        let ts = match fields.shift_remove("ts") {
            Some(Value::String(ts)) => ts,
            _ => now_ts(),
        };
        // Written field by field after the three the log adds (a field of the
        // same name as one of them is dropped): no second map of the line.
        let mut line = Vec::with_capacity(256);
        put_field(&mut line, "ts", &ts)?;
        put_field(&mut line, "event", event)?;
        if let Some(id) = task_id {
            put_field(&mut line, "task_id", id)?;
        }
        let redactor = self.redactor();
        for (k, mut v) in fields {
            if matches!(k.as_str(), "event" | "task_id") {
                continue;
            }
            redact_value(&redactor, &mut v);
            put_field(&mut line, &k, &v)?;
        }
        line.push(b'}');
        if let Some(sub) = self.subscriber.0.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            sub(event, &line);
        }
        line.push(b'\n');
        Ok(line)
    }

    fn append(&self, line: &[u8]) -> io::Result<()> {
        let mut h = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if h.lock.is_none() {
            h.lock = Some(
                OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&self.lock_path)?,
            );
        }
        let lock = h.lock.take().expect("opened above");
        lock.lock()?;
        let result = self.append_locked(&mut h, line);
        let _ = lock.unlock();
        h.lock = Some(lock);
        if result.is_err() {
            h.log = None;
        }
        result
    }

    /// Writes `lines` (whole lines) in one call, rotating first if they would
    /// pass the size. Lock held.
    fn append_locked(&self, h: &mut Handles, lines: &[u8]) -> io::Result<()> {
        let open = || -> io::Result<(File, FileId)> {
            // Readable too: an append checks the byte before it (see below).
            let f = OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(&self.path)?;
            let id = file_id(&f.metadata()?);
            Ok((f, id))
        };
        let len = match (&h.log, std::fs::metadata(&self.path)) {
            #[cfg(unix)]
            (Some((_, id)), Ok(on_disk)) if *id == file_id(&on_disk) => on_disk.len(),
            _ => {
                let (f, id) = open()?;
                let len = f.metadata()?.len();
                h.log = Some((f, id));
                len
            }
        };
        let mut start = len;
        if len > 0 && len + lines.len() as u64 > self.rotate_bytes {
            h.log = None;
            self.rotate()?;
            h.log = Some(open()?);
            start = 0;
        }
        let (f, _) = h.log.as_mut().expect("opened above");
        // Someone else wrote since our last line (another daemon, a crash that
        // tore a line, a hand edit): start on a line of our own, so our event is
        // never glued to the end of a torn one.
        if start > 0 && h.expected_end != Some(start) && !ends_with_newline(f, start) {
            f.write_all(b"\n")?;
            start += 1;
        }
        if let Err(e) = f.write_all(lines) {
            // A full disk takes part of a line: cut it off (we hold the lock, so
            // nobody appended after it), so the log holds only whole lines.
            let _ = f.set_len(start);
            h.expected_end = None;
            return Err(e);
        }
        h.expected_end = Some(start + lines.len() as u64);
        #[cfg(not(unix))]
        {
            h.log = None;
        }
        Ok(())
    }

    /// Renames the full log to `events-<timestamp>.ndjson` and prunes old ones.
    /// Called with the lock held.
    fn rotate(&self) -> io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let stamp = jiff::Timestamp::now()
            .strftime("%Y%m%dT%H%M%S%.3fZ")
            .to_string()
            .replace('.', "");
        // A sequence number keeps names unique and in order within one millisecond.
        let mut n = 0;
        let mut target = dir.join(format!("events-{stamp}-{n:03}.ndjson"));
        while target.exists() {
            n += 1;
            target = dir.join(format!("events-{stamp}-{n:03}.ndjson"));
        }
        std::fs::rename(&self.path, &target)?;
        let mut rotated = rotated_logs(dir)?;
        while rotated.len() > self.keep {
            let oldest = rotated.remove(0);
            let _ = std::fs::remove_file(oldest);
        }
        Ok(())
    }
}

/// Appends `"key":value` to the object being written in `line`, opening it
/// or adding a comma first.
fn put_field<T: serde::Serialize + ?Sized>(line: &mut Vec<u8>, key: &str, value: &T) -> io::Result<()> {
    line.push(if line.is_empty() { b'{' } else { b',' });
    serde_json::to_writer(&mut *line, key).map_err(io::Error::other)?;
    line.push(b':');
    serde_json::to_writer(&mut *line, value).map_err(io::Error::other)
}

/// Redacts each string inside `v` (not the serialised line, whose quotes a
/// pattern like `"api_key":"..."` could swallow).
fn redact_value(r: &crate::redact::Redactor, v: &mut Value) {
    match v {
        Value::String(s) => {
            if let std::borrow::Cow::Owned(clean) = r.redact(s) {
                *s = clean;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| redact_value(r, x)),
        Value::Object(m) => m.values_mut().for_each(|x| redact_value(r, x)),
        _ => {}
    }
}

/// Rotated logs in `dir`, oldest first (their names sort by rotation time).
pub fn rotated_logs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("events-") && n.ends_with(".ndjson"))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Does the file end with a newline at `len` (its length)?
fn ends_with_newline(f: &File, len: u64) -> bool {
    let mut last = [0u8; 1];
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        f.read_at(&mut last, len - 1).is_ok_and(|n| n == 1) && last[0] == b'\n'
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        f.seek_read(&mut last, len - 1).is_ok_and(|n| n == 1) && last[0] == b'\n'
    }
}

/// Opens a log for reading without blocking writers or rotation (on Windows the
/// share mode must allow the writer's delete/rename).
pub fn open_shared(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true);
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        // FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE
        o.share_mode(0x1 | 0x2 | 0x4);
    }
    o.open(path)
}

#[cfg(test)]
mod tests;
