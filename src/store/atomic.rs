//! Whole-file writes: every file the daemon writes appears complete or not at all.
//!
//! The bytes go to a temporary file in the destination folder (same filesystem, so
//! the rename is atomic), and the file is renamed into place.
//! A crash at any instant leaves either the old file or the new one, plus at worst
//! a stray `.tmp*` file that readers ignore and `clean` removes.
//!
//! Durability is a separate, per-file choice. A process crash (kill -9, panic)
//! loses nothing that was renamed into place: the page cache survives it. Only
//! an OS crash or power loss can lose unsynced data, so only the files that
//! cannot be rebuilt are made durable before they are named (`result.json`, the
//! record of a finished task: through the commit log, [`super::commit_log`], or
//! flushed itself when there is none). Progress, plans, summaries and
//! the index are rebuildable and skip the flush: on this machine each fsync costs
//! about a millisecond and blocks a runtime thread, which made them the largest
//! cost of a short task.

use serde::Serialize;
use std::io::{self, Write};
use std::path::Path;

/// A temporary file in `path`'s folder, to be renamed to `path`.
pub(crate) fn temp_in(path: &Path) -> io::Result<tempfile::NamedTempFile> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    temp_in_dir(dir)
}

/// A temporary file in `dir`, named so readers skip it ([`is_temp_name`]).
fn temp_in_dir(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new().prefix(".tmp").tempfile_in(dir)
}

/// Replaces `path` with `bytes` atomically (not flushed to disk: see the module docs).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = temp_in(path)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Replaces `path` with `bytes` atomically, the temporary file made in
/// `staging` (a folder that is normally on the same filesystem) and renamed
/// across. Where the rename cannot cross (another filesystem), the file is
/// written through its own folder instead ([`write_atomic`]).
///
/// Why: on ext4 a new file's inode is allocated near its folder, and a folder
/// that gains a file per task (`summaries/`) ends up in a block group whose
/// allocator scans take longer with every file (on a disk without a journal,
/// past every recently freed inode too: measured 5.5% of a burst's CPU for
/// summaries vs 2% for a file made in the task's fresh folder).
pub fn write_atomic_staged(staging: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let staged = temp_in_dir(staging).and_then(|mut tmp| {
        tmp.write_all(bytes)?;
        tmp.persist(path).map_err(|e| e.error)
    });
    match staged {
        Ok(_) => Ok(()),
        Err(_) => write_atomic(path, bytes),
    }
}

/// Creates `path` atomically, its content flushed to disk before it gets its
/// name; fails with `AlreadyExists` if it is there. For files written once and
/// never changed (`result.json`, when the commit log cannot be used). The
/// folder itself is not flushed: after a power loss the name may be missing,
/// but a file with that name is never empty or partial.
pub fn write_new_durable(path: &Path, bytes: &[u8]) -> io::Result<()> {
    flushed_temp(path, bytes)?
        .persist_noclobber(path)
        .map_err(|e| e.error)?;
    Ok(())
}

/// Replaces `path` with `bytes`, flushed to disk before it gets its name (a
/// result restored from the commit log).
pub fn write_durable(path: &Path, bytes: &[u8]) -> io::Result<()> {
    flushed_temp(path, bytes)?.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A temporary file beside `path` holding `bytes`, flushed to disk.
fn flushed_temp(path: &Path, bytes: &[u8]) -> io::Result<tempfile::NamedTempFile> {
    let mut tmp = temp_in(path)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

/// Pretty JSON, atomically, with a trailing newline.
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Is this a temporary file left by [`write_atomic`]?
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(".tmp")
}

/// Removes the temporary files a crash left in `dir` (a writer killed between
/// creating its temporary file and renaming it), if they are at least `min_age`
/// old: a writer that is alive renames its file within milliseconds. Returns
/// how many were removed.
pub fn remove_stray_temps(dir: &Path, min_age: std::time::Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let now = std::time::SystemTime::now();
    entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(is_temp_name))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| {
            min_age.is_zero()
                || e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| now.duration_since(t).unwrap_or_default() >= min_age)
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_new_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("result.json");
        write_new_durable(&p, b"one").unwrap();
        let err = write_new_durable(&p, b"two").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        // No temp file is left behind by either call.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_staged_write_lands_whole_and_leaves_no_temp_behind() {
        let dir = tempfile::tempdir().unwrap();
        let (staging, dest) = (dir.path().join("task"), dir.path().join("summaries"));
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::create_dir_all(&dest).unwrap();
        let p = dest.join("t.md");
        write_atomic_staged(&staging, &p, b"one").unwrap();
        write_atomic_staged(&staging, &p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 1);
        // A staging folder that cannot be used: written through the file's own folder.
        write_atomic_staged(&dir.path().join("gone"), &p, b"three").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"three");
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 1);
    }

    #[test]
    fn stray_temps_are_removed_by_age_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".tmpAbC123"), "torn").unwrap();
        std::fs::write(dir.path().join("result.json"), "{}").unwrap();
        std::fs::create_dir(dir.path().join(".tmpdir")).unwrap();
        assert_eq!(
            remove_stray_temps(dir.path(), std::time::Duration::from_secs(3600)),
            0,
            "too young"
        );
        assert_eq!(remove_stray_temps(dir.path(), std::time::Duration::ZERO), 1);
        assert!(dir.path().join("result.json").exists() && dir.path().join(".tmpdir").exists());
    }

    #[test]
    fn write_atomic_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
    }
}
