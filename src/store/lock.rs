//! OS file locks that tell a live owner from a dead one.
//!
//! A lock held through `std::fs::File::try_lock` is released by the OS when the
//! process dies, whatever the cause (kill -9, power loss on a share after the
//! lease expires). So "file exists but is not locked" means "its owner is gone".

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::Path;

/// Opens (creating) `path` and takes an exclusive lock without waiting.
/// `Ok(None)` means someone else holds it.
pub fn try_lock(path: &Path) -> io::Result<Option<File>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Is `path` locked by a live process? A missing file is not locked.
pub fn is_locked(path: &Path) -> bool {
    let Ok(file) = OpenOptions::new().read(true).write(true).open(path) else {
        return false;
    };
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(TryLockError::WouldBlock) => true,
        Err(TryLockError::Error(_)) => false,
    }
}

/// What a claim's `owner.lock` says about its task, besides being locked: the
/// original file name, the attempts so far (the last one running) and its agent process.
/// Rewritten in place through the held lock's own handle when an agent starts:
/// no new file, so the record costs no inode on the hot path, and it is there
/// before the agent can do anything (a task that kills its daemon still has
/// its attempt counted, and cannot rerun forever).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OwnerRecord {
    pub source_file: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<crate::store::record::AttemptRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<crate::store::record::AgentProcess>,
}

impl OwnerRecord {
    /// Reads a record; a lock file written before records existed holds only the name.
    pub fn parse(text: &str) -> Option<Self> {
        let line = text.lines().next()?.trim();
        if line.is_empty() {
            return None;
        }
        serde_json::from_str(line).ok().or_else(|| {
            // Not JSON: the bare file name (or a record torn by a crash: then unusable).
            (!line.starts_with('{')).then(|| OwnerRecord {
                source_file: line.to_string(),
                ..Default::default()
            })
        })
    }

    /// Replaces the content of the locked file `f` with this record.
    pub fn write_to(&self, f: &File) -> io::Result<()> {
        let mut bytes = serde_json::to_vec(self).map_err(io::Error::other)?;
        bytes.push(b'\n');
        #[cfg(unix)]
        std::os::unix::fs::FileExt::write_all_at(f, &bytes, 0)?;
        #[cfg(windows)]
        {
            // Through the handle that holds the lock: another handle may not write the locked range.
            let mut done = 0;
            while done < bytes.len() {
                done += std::os::windows::fs::FileExt::seek_write(f, &bytes[done..], done as u64)?;
            }
        }
        // Records mostly grow (name, then attempts, then the agent): truncate
        // only when this one is shorter, which costs a stat instead of a
        // truncate (that dirties the inode) on every write.
        if f.metadata()?.len() > bytes.len() as u64 {
            f.set_len(bytes.len() as u64)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_seen_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("owner.lock");
        assert!(!is_locked(&p));
        let held = try_lock(&p).unwrap().expect("free");
        assert!(is_locked(&p));
        assert!(try_lock(&p).unwrap().is_none());
        drop(held);
        assert!(!is_locked(&p));
    }

    #[test]
    fn a_record_round_trips_through_a_locked_file_and_old_files_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("owner.lock");
        let f = try_lock(&p).unwrap().unwrap();
        let long = OwnerRecord {
            source_file: "a much longer original name.md".into(),
            ..Default::default()
        };
        long.write_to(&f).unwrap();
        let short = OwnerRecord {
            source_file: "b.md".into(),
            ..Default::default()
        };
        short.write_to(&f).unwrap();
        assert_eq!(OwnerRecord::parse(&std::fs::read_to_string(&p).unwrap()), Some(short));
        assert_eq!(
            OwnerRecord::parse("plain name.md").unwrap().source_file,
            "plain name.md"
        );
        assert_eq!(OwnerRecord::parse("{\"source_fi"), None, "a torn record is not a name");
    }
}
