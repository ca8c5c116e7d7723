//! Claiming a task: the only way a task starts.
//!
//! The daemon creates `results/<id>/`, locks `owner.lock` in it, and renames
//! the inbox file to `results/<id>/task.<ext>`. The rename is atomic, so when
//! several daemons (on one machine or several sharing the folder) race for a
//! file, exactly one wins; the losers see "not found" and tidy their empty folder.

use crate::ids;
use crate::store::{Home, TaskDir, lock};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// A task this daemon now owns. Dropping `lock` gives it up.
#[derive(Debug)]
pub struct Claimed {
    pub id: String,
    pub dir: TaskDir,
    pub lock: std::sync::Arc<File>,
    pub task_file: PathBuf,
    /// The name the file had in the inbox.
    pub source_file: String,
}

/// Tries to claim `inbox/<name>`. `Ok(None)`: another daemon took it (or it vanished).
pub fn claim(home: &Home, name: &str) -> io::Result<Option<Claimed>> {
    let src = home.inbox().join(name);
    let path = Path::new(name);
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("task");
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("txt")
        .to_ascii_lowercase();

    let mut id = if ids::is_well_formed(stem) {
        stem.to_string()
    } else {
        ids::new_id(stem)
    };
    let dir = loop {
        let dir = home.task_dir(&id);
        match std::fs::create_dir(&dir) {
            Ok(()) => break dir,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => id = ids::new_id(stem),
            Err(e) => return Err(e),
        }
    };
    let task_dir = TaskDir::new(dir.clone());
    // A claim that fails half-way (a full disk) leaves no folder behind: it
    // would hold only an empty owner.lock, for every retry of every file.
    let undo = |e: io::Error| {
        let _ = std::fs::remove_dir_all(&dir);
        e
    };
    let Some(lock) = lock::try_lock(&task_dir.lock_file()).map_err(undo)? else {
        // Nobody else can know this fresh id; treat as lost and leave it.
        return Ok(None);
    };
    // The original file name, for a daemon that takes the task over before
    // plan.json exists (the task file itself is renamed to task.<ext>).
    if let Err(e) = (lock::OwnerRecord {
        source_file: name.to_string(),
        ..Default::default()
    })
    .write_to(&lock)
    {
        drop(lock);
        return Err(undo(e));
    }
    let task_file = dir.join(format!("task.{ext}"));
    match std::fs::rename(&src, &task_file) {
        Ok(()) => Ok(Some(Claimed {
            id,
            dir: task_dir,
            lock: std::sync::Arc::new(lock),
            task_file,
            source_file: name.to_string(),
        })),
        Err(e) => {
            drop(lock);
            let _ = std::fs::remove_dir_all(&dir);
            if e.kind() == io::ErrorKind::NotFound {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_winner_and_well_formed_stems_keep_their_id() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path()).unwrap();
        home.ensure_layout().unwrap();
        std::fs::write(home.inbox().join("Fix Login.md"), "hi").unwrap();
        let c = claim(&home, "Fix Login.md").unwrap().expect("claimed");
        assert!(c.id.ends_with("-fix-login"));
        assert_eq!(std::fs::read_to_string(&c.task_file).unwrap(), "hi");
        assert!(claim(&home, "Fix Login.md").unwrap().is_none(), "second claim loses");
        assert_eq!(
            std::fs::read_dir(home.results()).unwrap().count(),
            1,
            "loser left no folder"
        );

        let id = ids::new_id("mine");
        std::fs::write(home.inbox().join(format!("{id}.txt")), "x").unwrap();
        let c2 = claim(&home, &format!("{id}.txt")).unwrap().unwrap();
        assert_eq!(c2.id, id);
        assert!(lock::is_locked(&c2.dir.lock_file()));
    }
}
