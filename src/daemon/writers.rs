//! One writer per repository: agent tasks that may change files in the same
//! git repository (or the same folder outside git) do not run at the same time.
//!
//! Two agents editing one working tree see each other's half-done edits, can
//! write the same file, and each task's `files_changed` (git's view of the
//! tree) would hold the other's files. So such a task takes a lock on its
//! repository, `run/writers/<hash>.lock` in the home, before it is claimed and
//! holds it until it ends; a task whose repository is locked keeps its place
//! in the queue while later tasks that can run do. The lock is a file lock, so
//! several daemons sharing the home respect each other's writers, and a dead
//! daemon's locks go with it.
//!
//! Not held back: tasks that run isolated (`mode: guarded`, or a worktree or a
//! copy), Claude tasks whose tools cannot write, command tasks (scripts their
//! author runs side by side on purpose), and everything when
//! `one_writer_per_repo: false`.

use crate::config::Config;
use crate::task::{Isolation, Mode, TaskSpec};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The repository (or folder) a task may write to, if it is held to one writer:
/// the git repository around its (resolved) workdir, else the workdir itself.
pub fn key(spec: &TaskSpec, workdir: &Path, config: &Config) -> Option<PathBuf> {
    if !config.one_writer_per_repo {
        return None;
    }
    if spec.mode == Mode::Guarded || matches!(spec.isolation, Some(Isolation::Worktree | Isolation::Copy)) {
        return None;
    }
    // Any agent of its list may be the one that runs it: held if any of them
    // could write.
    let writes = std::iter::once(spec.agent)
        .chain(spec.fallback.iter().copied())
        .any(|kind| {
            let agent = crate::agents::of(kind);
            agent.may_edit(
                &agent
                    .grant_tools(spec.allowed_tools.as_deref(), &config.agent(kind))
                    .granted,
            )
        });
    if !writes {
        return None;
    }
    let repo = crate::git::repository_of(workdir).unwrap_or(workdir).to_path_buf();
    Some(repo)
}

/// The locks this daemon holds, by the name of the task (while it is being
/// claimed) or its id (while it runs).
#[derive(Debug, Default)]
pub struct Writers {
    held: HashMap<String, File>,
}

impl Writers {
    /// May a task writing to `repo` start now? If so its lock is taken and
    /// kept under `owner` until [`Self::release`].
    pub fn try_take(&mut self, dir: &Path, owner: &str, repo: &Path) -> bool {
        let path = dir.join(format!("{:016x}.lock", fnv1a(repo.as_os_str().as_encoded_bytes())));
        let _ = std::fs::create_dir_all(dir);
        let Ok(file) = File::options().create(true).truncate(false).write(true).open(&path) else {
            // No lock can be had (a read-only home): do not hold the task back forever.
            return true;
        };
        match file.try_lock() {
            Ok(()) => {
                self.held.insert(owner.to_string(), file);
                true
            }
            Err(_) => false,
        }
    }

    /// The lock taken for the task named `from` now belongs to its id `to`.
    pub fn rename(&mut self, from: &str, to: &str) {
        if let Some(f) = self.held.remove(from) {
            self.held.insert(to.to_string(), f);
        }
    }

    /// Gives back the lock `owner` held, if any.
    pub fn release(&mut self, owner: &str) {
        self.held.remove(owner);
    }

    /// Keeps only the locks whose owner passes `keep`.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.held.retain(|owner, _| keep(owner));
    }
}

/// A stable hash of the repository's path for its lock's name (the same in
/// every daemon and every build, unlike std's hasher).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_lock_per_repository_across_holders() {
        let dir = tempfile::tempdir().unwrap();
        let (mut a, mut b) = (Writers::default(), Writers::default());
        let repo = Path::new("/work/repo");
        assert!(a.try_take(dir.path(), "t1.md", repo));
        assert!(!b.try_take(dir.path(), "t2.md", repo), "a second daemon waits");
        assert!(b.try_take(dir.path(), "t3.md", Path::new("/work/other")));
        a.rename("t1.md", "id-1");
        a.release("t1.md");
        assert!(!b.try_take(dir.path(), "t2.md", repo), "still held under the task's id");
        a.release("id-1");
        assert!(b.try_take(dir.path(), "t2.md", repo));
    }

    #[test]
    fn a_task_whose_fallback_agent_could_write_is_held_to_one_writer() {
        let spec = |text: &str| {
            let limits = crate::task::parse::Limits::of(&Config::default());
            crate::task::parse::parse("t.md", text.as_bytes(), &limits).unwrap()
        };
        let mut config = Config::default();
        config.agents.insert(
            "codex".into(),
            crate::config::AgentConfig {
                allowed_tools: Some(["Read", "Bash"].map(String::from).to_vec()),
                ..Default::default()
            },
        );
        let wd = Path::new("/work/repo");
        // Read-only on Claude (no shell in its ceiling), workspace-write on Codex.
        assert_eq!(
            key(
                &spec("---\nagent: claude\nallowed_tools: [Read, Bash]\n---\nx\n"),
                wd,
                &config
            ),
            None
        );
        assert!(
            key(
                &spec("---\nagent: [claude, codex]\nallowed_tools: [Read, Bash]\n---\nx\n"),
                wd,
                &config
            )
            .is_some()
        );
    }
}
