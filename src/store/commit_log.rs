//! The commit log: results made durable in batches, as a database does with its
//! write-ahead log.
//!
//! A result must survive a power loss once it has its name. Flushing each
//! `result.json` before naming it did that, but each flush is a round trip to
//! the disk (on a disk without a journal, also the new folders above the file):
//! measured 17% of a 1,000-task burst. Instead the commit thread appends the
//! results that finish together to this daemon's log, flushes the log once
//! (one `fdatasync` for the whole batch), and only then names each
//! `result.json`, unflushed. The result files reach the disk with the kernel's
//! own writeback; the log keeps them safe meanwhile.
//!
//! A log is retired ([`retire`]) after its files have been flushed one by one,
//! when it is old enough (35 s: past Linux's default writeback delay, so by then
//! most are written and a flush costs little), on a background thread that no
//! task waits for. A log whose daemon died (its lock is free) is replayed by the
//! next daemon to start or to take over the dead one's tasks ([`replay_dead`]):
//! a result file that is missing (the daemon died between the log and the
//! name) or torn (a power loss: not valid JSON) is written again, flushed, and the task is finished, not run again. So after a
//! power loss nothing finished is lost or run twice; a torn `result.json` can be
//! seen only until the next daemon starts.
//!
//! Logs live in `results/.commits/<ulid>.ndjson`, one a daemon at a time, each
//! locked while its daemon (or its retirement) holds it. A line is
//! `{"path": "<id>/result.json", "bytes": "<the file's text>"}`; a torn last line
//! (a crash mid-append) was never acknowledged, so nothing was named from it.

use crate::store::{atomic, lock};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How old a log must be before its files are flushed and it is deleted.
pub const RETIRE_AFTER: Duration = Duration::from_secs(35);
/// A log takes at most this many results (or this long) before a new one is begun.
const MAX_RECORDS: usize = 4096;
const MAX_AGE: Duration = Duration::from_secs(30);

#[derive(Serialize, Deserialize)]
struct Record {
    /// Relative to `results/` (a home moved or mounted elsewhere still replays).
    path: String,
    bytes: String,
}

/// This daemon's current log.
pub struct CommitLog {
    results: PathBuf,
    path: PathBuf,
    file: File,
    /// The files named since the log began: flushed when it is retired.
    named: Vec<PathBuf>,
    began: Instant,
    /// An append failed: the log may end in a partial line, so nothing more is
    /// appended (a record after it would be lost in that line). It is still
    /// retired, for the files it did make durable.
    broken: bool,
    /// Records appended; a log that never got one is deleted when dropped.
    records: usize,
    /// Its files are flushed: it is deleted when dropped.
    retired: bool,
}

impl Drop for CommitLog {
    fn drop(&mut self) {
        // Otherwise it stays, and the next daemon replays it.
        if self.records == 0 || self.retired {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The folder of the logs inside `results/`.
pub fn dir_of(results: &Path) -> PathBuf {
    results.join(".commits")
}

impl CommitLog {
    /// Begins a new log in `results/.commits/`, locked for this process.
    pub fn begin(results: &Path) -> io::Result<Self> {
        let dir = dir_of(results);
        std::fs::create_dir_all(&dir)?;
        let name = format!("{}.ndjson", ulid::Ulid::generate().to_string().to_ascii_lowercase());
        let path = dir.join(name);
        let file = lock::try_lock(&path)?.ok_or_else(|| io::Error::other("a fresh commit log is locked"))?;
        Ok(Self {
            results: results.to_path_buf(),
            path,
            file,
            named: Vec::new(),
            began: Instant::now(),
            broken: false,
            records: 0,
            retired: false,
        })
    }

    /// Appends every file of a batch and flushes the log once. Only text files
    /// (results are JSON) are logged.
    pub fn append(&mut self, files: &[(&Path, &[u8])]) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other("an earlier append to this commit log failed"));
        }
        let mut out = Vec::new();
        for (path, bytes) in files {
            let rel = path.strip_prefix(&self.results).unwrap_or(path);
            let record = Record {
                path: rel.to_string_lossy().replace('\\', "/"),
                bytes: std::str::from_utf8(bytes)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
                    .to_string(),
            };
            serde_json::to_writer(&mut out, &record).map_err(io::Error::other)?;
            out.push(b'\n');
        }
        // Through the locking handle, at the end (another handle may not write a locked file on Windows).
        let written = self
            .file
            .metadata()
            .and_then(|m| write_all_at(&self.file, &out, m.len()))
            .and_then(|()| self.file.sync_data());
        self.broken = written.is_err();
        self.records += files.len() * usize::from(written.is_ok());
        written
    }

    /// Records that `path` got its name (it is flushed when the log is retired).
    pub fn named(&mut self, path: PathBuf) {
        self.named.push(path);
    }

    /// Is it time to begin a new log (this one full, old or broken)?
    pub fn full(&self) -> bool {
        self.broken || self.named.len() >= MAX_RECORDS || self.began.elapsed() >= MAX_AGE
    }

    /// Begins the log that follows this one, in the same folder.
    pub fn begin_next(&self) -> io::Result<Self> {
        Self::begin(&self.results)
    }
}

#[cfg(unix)]
fn write_all_at(f: &File, bytes: &[u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, bytes, at)
}

#[cfg(windows)]
fn write_all_at(f: &File, bytes: &[u8], at: u64) -> io::Result<()> {
    let mut done = 0;
    while done < bytes.len() {
        done += std::os::windows::fs::FileExt::seek_write(f, &bytes[done..], at + done as u64)?;
    }
    Ok(())
}

/// Flushes every file `log` named, then deletes it: after this, the files
/// themselves are durable. Waits until the log is [`RETIRE_AFTER`] old first
/// (`min_age` in tests). A file that is gone (its task folder cleaned) needs nothing.
pub fn retire(mut log: CommitLog, min_age: Duration) -> io::Result<()> {
    let age = log.began.elapsed();
    if age < min_age {
        std::thread::sleep(min_age - age);
    }
    flush_files(&log.named)?;
    // Dropping it deletes it (another daemon may have replayed and deleted it
    // in between: it was locked, so only after a crash of ours).
    log.retired = true;
    Ok(())
}

fn flush_files(paths: &[PathBuf]) -> io::Result<()> {
    for p in paths {
        match open_to_flush(p) {
            Ok(f) => f.sync_all()?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Opens a file to flush it. Unix flushes through any descriptor; Windows
/// (`FlushFileBuffers`) needs one with write access, and refuses a read-only
/// one with "Access denied" (os error 5). Nothing is written through it.
fn open_to_flush(path: &Path) -> io::Result<File> {
    if cfg!(windows) {
        File::options().write(true).open(path)
    } else {
        File::open(path)
    }
}

/// What [`replay_dead`] did.
#[derive(Debug, Default, PartialEq)]
pub struct Replayed {
    /// Logs of dead daemons found and retired.
    pub logs: usize,
    /// Result files written again from a log (missing or torn).
    pub restored: Vec<PathBuf>,
}

/// Replays the logs in `results/.commits/` whose daemon is gone: restores the
/// result files they hold that are missing or torn (not valid JSON: a result
/// that is whole is never replaced, whatever the log says), flushes them all,
/// and deletes the logs. Must run before orphaned tasks are taken over (a task
/// whose result is only in a log is finished, not orphaned).
pub fn replay_dead(results: &Path) -> io::Result<Replayed> {
    let mut out = Replayed::default();
    let Ok(entries) = std::fs::read_dir(dir_of(results)) else {
        return Ok(out);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|x| x != "ndjson") {
            continue;
        }
        // Locked: its daemon is alive (or another daemon is replaying it).
        let Some(held) = lock::try_lock(&path)? else { continue };
        let text = std::fs::read(&path)?;
        let mut files = Vec::new();
        for line in text.split(|&b| b == b'\n') {
            // A torn last line was never acknowledged: nothing was named from it.
            let Ok(r) = serde_json::from_slice::<Record>(line) else {
                continue;
            };
            let file = results.join(&r.path);
            // Its task folder was cleaned since: leave it gone.
            if !file.parent().is_some_and(Path::is_dir) {
                continue;
            }
            let whole = std::fs::read(&file)
                .ok()
                .is_some_and(|b| serde_json::from_slice::<serde::de::IgnoredAny>(&b).is_ok());
            if !whole {
                atomic::write_durable(&file, r.bytes.as_bytes())?;
                // The dead daemon's temporary files in that folder (it died
                // naming this file): the task is finished, so no takeover
                // sweeps them.
                if let Some(folder) = file.parent() {
                    atomic::remove_stray_temps(folder, Duration::ZERO);
                }
                out.restored.push(file.clone());
            }
            files.push(file);
        }
        flush_files(&files)?;
        drop(held);
        std::fs::remove_file(&path)?;
        out.logs += 1;
    }
    Ok(out)
}

#[cfg(test)]
fn log_text(log: &CommitLog) -> String {
    std::fs::read_to_string(&log.path).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::io::Write;

    fn results() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("results");
        for id in ["a", "b", "c"] {
            std::fs::create_dir_all(results.join(id)).unwrap();
        }
        (dir, results)
    }

    #[test]
    fn a_batch_is_one_line_a_file_and_a_retired_log_is_gone() {
        let (_d, results) = results();
        let mut log = CommitLog::begin(&results).unwrap();
        let (a, b) = (results.join("a/result.json"), results.join("b/result.json"));
        log.append(&[(&a, b"{\"x\": \"1\n2\"}\n"), (&b, b"{}\n")]).unwrap();
        let text = log_text(&log);
        assert_eq!(text.lines().count(), 2);
        assert!(
            text.starts_with("{\"path\":\"a/result.json\",\"bytes\":\"{\\\"x\\\": \\\"1\\n2\\\"}\\n\"}"),
            "{text}"
        );
        std::fs::write(&a, b"{\"x\": \"1\n2\"}\n").unwrap();
        log.named(a.clone());
        // Live: its lock keeps other daemons from replaying it.
        assert_eq!(replay_dead(&results).unwrap(), Replayed::default());
        let path = log.path.clone();
        retire(log, Duration::ZERO).unwrap();
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir_of(&results)).unwrap().count(), 0);
    }

    #[test]
    fn a_log_that_logged_nothing_leaves_nothing() {
        let (_d, results) = results();
        drop(CommitLog::begin(&results).unwrap());
        assert_eq!(std::fs::read_dir(dir_of(&results)).unwrap().count(), 0);
    }

    #[test]
    fn a_log_is_full_after_its_record_limit() {
        let (_d, results) = results();
        let mut log = CommitLog::begin(&results).unwrap();
        assert!(!log.full() && log.named.is_empty());
        for i in 0..MAX_RECORDS {
            log.named(results.join(format!("{i}")));
        }
        assert!(log.full());
    }

    #[test]
    fn a_dead_daemons_log_restores_missing_and_torn_results_and_nothing_else() {
        let (_d, results) = results();
        let (a, b, c) = (
            results.join("a/result.json"),
            results.join("b/result.json"),
            results.join("c/result.json"),
        );
        let gone = results.join("cleaned/result.json");
        let mut log = CommitLog::begin(&results).unwrap();
        log.append(&[
            (&a, b"{\"a\":1}\n"),
            (&b, b"{\"b\":2}\n"),
            (&c, b"{\"c\":3}\n"),
            (&gone, b"{}\n"),
        ])
        .unwrap();
        // a: named and whole (and a whole file is never replaced, even when it
        // differs); b: torn by a power loss; c: never named (the daemon died).
        std::fs::write(&a, b"{\"a\":0}\n").unwrap();
        std::fs::write(&b, b"").unwrap();
        std::fs::write(results.join("c/.tmpAbCdEf"), b"{\"c\":").unwrap();
        // A crash mid-append leaves a torn last line.
        let mut f = OpenOptions::new().append(true).open(&log.path).unwrap();
        f.write_all(b"{\"path\":\"c/resu").unwrap();
        let path = log.path.clone();
        drop(log); // the daemon dies: its lock is released, the log (with records) stays
        assert!(path.exists());
        let replayed = replay_dead(&results).unwrap();
        assert_eq!(replayed.logs, 1);
        assert_eq!(replayed.restored, vec![b.clone(), c.clone()]);
        assert_eq!(std::fs::read(&a).unwrap(), b"{\"a\":0}\n");
        assert_eq!(std::fs::read(&b).unwrap(), b"{\"b\":2}\n");
        assert_eq!(std::fs::read(&c).unwrap(), b"{\"c\":3}\n");
        assert!(!results.join("cleaned").exists(), "a cleaned task is not brought back");
        assert!(!path.exists());
        for id in ["b", "c"] {
            assert_eq!(
                std::fs::read_dir(results.join(id)).unwrap().count(),
                1,
                "no temporary file left in {id}"
            );
        }
    }
}
