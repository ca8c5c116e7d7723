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
}
