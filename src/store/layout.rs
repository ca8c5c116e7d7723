//! Where everything lives inside an orchestrator home.
//!
//! One folder holds the whole state of the product (see SPEC "The home"). Every
//! other module asks this one for paths instead of joining strings itself, so the
//! layout is written down exactly once.

use std::io;
use std::path::{Path, PathBuf};

/// Sub-folders of the inbox that are not part of the queue.
pub const INBOX_SUBDIRS: [&str; 2] = ["rejected", "cancelled"];

/// The home folder and the paths inside it.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// A home rooted at `root`. The path is made absolute (not canonicalized:
    /// a home on a share keeps the name the operator gave it).
    pub fn new(root: impl AsRef<Path>) -> io::Result<Self> {
        let root = std::path::absolute(root.as_ref())?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn config_file(&self) -> PathBuf {
        self.root.join("orchestrator.yaml")
    }
    pub fn inbox(&self) -> PathBuf {
        self.root.join("inbox")
    }
    pub fn rejected(&self) -> PathBuf {
        self.inbox().join("rejected")
    }
    pub fn cancelled(&self) -> PathBuf {
        self.inbox().join("cancelled")
    }
    pub fn results(&self) -> PathBuf {
        self.root.join("results")
    }
    pub fn task_dir(&self, id: &str) -> PathBuf {
        self.results().join(id)
    }
    /// The folder of task `id` when `id` has the form of an id and the folder
    /// is a real folder of this home's `results/`, not a link to elsewhere
    /// (another home's task, or anything): for ids read from files anyone
    /// who can write the home could have written.
    pub fn own_task_dir(&self, id: &str) -> Option<PathBuf> {
        if !crate::ids::is_well_formed(id) {
            return None;
        }
        let dir = self.task_dir(id);
        std::fs::symlink_metadata(&dir)
            .is_ok_and(|m| m.file_type().is_dir())
            .then_some(dir)
    }
    pub fn index_file(&self) -> PathBuf {
        self.results().join("index.json")
    }
    /// Serialises writers of `index.json` across daemons sharing the home.
    pub fn index_lock(&self) -> PathBuf {
        self.results().join(".index.lock")
    }
    pub fn summaries(&self) -> PathBuf {
        self.root.join("summaries")
    }
    pub fn summary_file(&self, id: &str) -> PathBuf {
        self.summaries().join(format!("{id}.md"))
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn events_log(&self) -> PathBuf {
        self.logs().join("events.ndjson")
    }
    /// Serialises appends and rotation of the event log across processes.
    pub fn events_lock(&self) -> PathBuf {
        self.logs().join(".events.lock")
    }
    /// Live daemons advertise themselves here (one file each, locked while alive).
    pub fn daemons(&self) -> PathBuf {
        self.root.join("run")
    }

    /// Worktrees and copies of isolated runs (`isolate`), one folder per task.
    pub fn worktrees(&self) -> PathBuf {
        worktrees_of(&self.root)
    }

    /// Creates every folder of the layout that is missing.
    pub fn ensure_layout(&self) -> io::Result<()> {
        for dir in [
            self.inbox(),
            self.rejected(),
            self.cancelled(),
            self.results(),
            self.summaries(),
            self.logs(),
            self.daemons(),
        ] {
            std::fs::create_dir_all(&dir)?;
        }
        Ok(())
    }
}

const WORKTREES: &str = "worktrees";
/// What the orchestrator keeps in a home: its folders and its config file.
const OWN_PARTS: [&str; 10] = [
    "inbox",
    "results",
    "summaries",
    "logs",
    "run",
    "notify",
    "schedules",
    "spend",
    WORKTREES,
    "orchestrator.yaml",
];

/// The worktrees folder of the home at `root` ([`Home::worktrees`]).
pub fn worktrees_of(root: &Path) -> PathBuf {
    root.join(WORKTREES)
}

/// Is `path` the home at `root` itself, or one of its folders or its config
/// file (or inside one)? Such paths are never an agent's work: they are left
/// out of a workdir's copy and of what git says changed, whether the home lies
/// inside the workdir or is the workdir (the default).
pub fn is_own_part(root: &Path, path: &Path) -> bool {
    path == root
        || path
            .strip_prefix(root)
            .ok()
            .and_then(|rel| rel.components().next())
            .and_then(|c| c.as_os_str().to_str())
            .is_some_and(|first| OWN_PARTS.contains(&first))
}

/// Is `name` one plain file name, nothing that a join could turn into
/// another place (`..`, a separator, a Windows drive like `C:foo`)?
pub fn is_plain_name(name: &str) -> bool {
    let mut parts = Path::new(name).components();
    matches!(parts.next(), Some(std::path::Component::Normal(_)))
        && parts.next().is_none()
        && !name.contains(['/', '\\'])
}

/// Files of one task folder, `results/<id>/`.
#[derive(Debug, Clone)]
pub struct TaskDir {
    pub dir: PathBuf,
}

impl TaskDir {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }
    /// Held with an OS lock by the daemon running the task; no lock and no
    /// result means the task was orphaned by a dead daemon.
    /// Started, not finished, and no live daemon holds it: its daemon died or
    /// stopped, and a daemon's recovery runs it again.
    pub fn is_orphan(&self) -> bool {
        !self.result().exists() && self.task_file().is_some() && !super::lock::is_locked(&self.lock_file())
    }
    pub fn lock_file(&self) -> PathBuf {
        self.dir.join("owner.lock")
    }
    pub fn plan(&self) -> PathBuf {
        self.dir.join("plan.json")
    }
    pub fn progress(&self) -> PathBuf {
        self.dir.join("progress.json")
    }
    pub fn result(&self) -> PathBuf {
        self.dir.join("result.json")
    }
    /// Created by `orchestrator cancel`; the daemon running the task stops it.
    /// The sandbox of an isolated run (`isolate::Sandbox`).
    pub fn isolation(&self) -> PathBuf {
        self.dir.join("isolation.json")
    }
    /// An isolated run's changes, as a unified diff.
    pub fn changes_diff(&self) -> PathBuf {
        self.dir.join("changes.diff")
    }
    /// Written by `apply` once the diff is applied.
    pub fn applied(&self) -> PathBuf {
        self.dir.join("applied.json")
    }
    pub fn cancel_request(&self) -> PathBuf {
        self.dir.join("cancel.request")
    }
    pub fn attempt_out(&self, n: u32) -> PathBuf {
        self.dir.join(format!("attempt-{n}.out"))
    }
    pub fn attempt_err(&self, n: u32) -> PathBuf {
        self.dir.join(format!("attempt-{n}.err"))
    }
    /// The claimed task file, whatever its extension.
    pub fn task_file(&self) -> Option<PathBuf> {
        let entries = std::fs::read_dir(&self.dir).ok()?;
        entries
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_stem().is_some_and(|s| s == "task") && p.extension().is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_homes_own_folders_are_never_an_agents_work() {
        let root = Path::new("/home/dev/work");
        for own in [
            "inbox/a.md",
            "results/x/result.json",
            "notify/outbox/1.json",
            "schedules/nightly/since",
            "spend/2026-12.ndjson",
            "orchestrator.yaml",
        ] {
            assert!(is_own_part(root, &root.join(own)), "{own}");
        }
        for work in ["src/main.rs", "spending.md", "notify.rs"] {
            assert!(!is_own_part(root, &root.join(work)), "{work}");
        }
    }

    #[test]
    fn a_plain_name_is_one_normal_component() {
        for ok in ["a.md", "01jd3k8q7x9v2m4n6p8r0t2w4y-x", "é ü.txt"] {
            assert!(is_plain_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a\\b", "/abs"] {
            assert!(!is_plain_name(bad), "{bad}");
        }
    }
}
