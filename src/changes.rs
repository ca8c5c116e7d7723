//! What an agent changed in its workdir, from git (never from the agent's words).
//!
//! Before a task runs, a [`Snapshot`] records the repository's HEAD and every
//! path `git status` lists (modified, staged, untracked) with the hash of its
//! content. After the run a second snapshot is compared with it: a path whose
//! status or content differs changed, and so did every path in the commits the
//! agent made (HEAD moved). A file that was already dirty and that the agent
//! edited again is caught by its hash. Paths are relative to the repository's
//! top; changes outside the task's workdir (a workdir that is a subfolder of its
//! repository) are reported apart, as a security violation. Without git, or
//! outside a repository, there is simply no snapshot.

use crate::store::layout::is_own_part;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The state of a repository at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    top: PathBuf,
    head: Option<String>,
    /// Path (relative to `top`) -> (status code, content hash if the file exists).
    dirty: BTreeMap<String, (String, Option<String>)>,
}

/// Files changed between two snapshots.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Every changed path, relative to the repository's top, sorted.
    pub files: Vec<String>,
    /// Those outside the task's workdir.
    pub outside_workdir: Vec<String>,
}

fn git(dir: &Path, args: &[&str]) -> Option<Vec<u8>> {
    crate::git::run(dir, args).ok()
}

fn trimmed(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).trim().to_string()
}

/// Hashes of `paths` (relative to `top`) as git would store them.
fn hashes(top: &Path, paths: &[&String]) -> Vec<Option<String>> {
    if paths.is_empty() {
        return Vec::new();
    }
    let child = Command::new("git")
        .arg("-C")
        .arg(top)
        .args(["hash-object", "--stdin-paths"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return vec![None; paths.len()];
    };
    if let Some(mut stdin) = child.stdin.take() {
        for p in paths {
            let _ = writeln!(stdin, "{p}");
        }
    }
    let out = child.wait_with_output().map(|o| o.stdout).unwrap_or_default();
    let lines: Vec<String> = String::from_utf8_lossy(&out).lines().map(String::from).collect();
    if lines.len() != paths.len() {
        return vec![None; paths.len()];
    }
    lines.into_iter().map(Some).collect()
}

/// Whether `workdir` lies in a git repository (a `.git` in it or above it).
/// Most workdirs of a burst are not repositories: a few stats tell, where
/// asking git would start a process per task; cheap enough to ask on the
/// async runtime, so a task outside a repository needs no blocking thread.
pub fn in_repository(workdir: &Path) -> bool {
    crate::git::repository_of(workdir).is_some()
}

/// The repository state around `workdir`; `None` outside a repository or without git.
/// The orchestrator's own folders of `home`, if they live in the repository, are
/// left out ([`is_own_part`]).
pub fn snapshot(workdir: &Path, home: &Path) -> Option<Snapshot> {
    if !in_repository(workdir) {
        return None;
    }
    let top = PathBuf::from(trimmed(git(workdir, &["rev-parse", "--show-toplevel"])?));
    let top = crate::task::workdir::canonical(&top).unwrap_or(top);
    let head = git(&top, &["rev-parse", "-q", "--verify", "HEAD"]).map(trimmed);
    let status = git(
        &top,
        &[
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--no-renames",
        ],
    )?;
    let home = crate::task::workdir::canonical(home).unwrap_or_else(|_| home.to_path_buf());
    let mut entries: Vec<(String, String)> = Vec::new();
    for rec in status.split(|&b| b == 0).filter(|r| r.len() > 3) {
        let code = String::from_utf8_lossy(&rec[..2]).to_string();
        let path = String::from_utf8_lossy(&rec[3..]).to_string();
        if is_own_part(&home, &top.join(&path)) {
            continue;
        }
        entries.push((path, code));
    }
    let existing: Vec<&String> = entries
        .iter()
        .filter(|(p, _)| top.join(p).is_file())
        .map(|(p, _)| p)
        .collect();
    let hashed: BTreeMap<&String, Option<String>> = existing.iter().copied().zip(hashes(&top, &existing)).collect();
    let dirty = entries
        .iter()
        .map(|(p, code)| (p.clone(), (code.clone(), hashed.get(p).cloned().flatten())))
        .collect();
    Some(Snapshot { top, head, dirty })
}

/// `path` relative to `top`, `/`-separated (`None` if it is not inside).
fn relative(top: &Path, path: &Path) -> Option<String> {
    let path = crate::task::workdir::canonical(path).unwrap_or_else(|_| path.to_path_buf());
    crate::git::slash_path(top, &path)
}

/// Is repository path `path` at or under folder `dir` (both relative, `/`-separated)?
fn under(path: &str, dir: &str) -> bool {
    dir.is_empty() || path == dir || path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

/// What changed since `before`, taking a new snapshot now.
pub fn since(before: &Snapshot, workdir: &Path, home: &Path) -> Changes {
    let Some(after) = snapshot(workdir, home) else {
        return Changes::default();
    };
    let mut files: BTreeSet<String> = BTreeSet::new();
    if let (Some(a), Some(b)) = (&before.head, &after.head)
        && a != b
        && let Some(out) = git(&after.top, &["diff", "--name-only", "-z", "--no-renames", a, b])
    {
        files.extend(
            out.split(|&b| b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| String::from_utf8_lossy(p).to_string()),
        );
    }
    for path in before.dirty.keys().chain(after.dirty.keys()) {
        if before.dirty.get(path) != after.dirty.get(path) {
            files.insert(path.clone());
        }
    }
    let scope = relative(&after.top, workdir).unwrap_or_default();
    let outside_workdir = files.iter().filter(|p| !under(p, &scope)).cloned().collect();
    Changes {
        files: files.into_iter().collect(),
        outside_workdir,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn sh(dir: &Path, script: &str) {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .status()
            .unwrap()
            .success();
        assert!(ok, "{script}");
    }

    #[cfg(unix)]
    fn repo() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        sh(
            d.path(),
            "git init -q && mkdir -p app other && echo a > app/a.txt && echo b > other/b.txt && echo dirty > app/d.txt \
             && git add -A && git commit -qm init && echo dirty2 >> app/d.txt",
        );
        d
    }

    #[cfg(unix)]
    #[test]
    fn edits_new_files_deletions_commits_and_re_edits_of_dirty_files_are_seen() {
        let d = repo();
        let app = d.path().join("app");
        let none = d.path().join("no-home");
        let before = snapshot(&app, &none).expect("a repository");
        assert_eq!(since(&before, &app, &none), Changes::default(), "nothing changed yet");
        sh(
            &app,
            "echo more >> a.txt && echo new > n.txt && echo again >> d.txt && git rm -q --cached a.txt && git add a.txt \
             && echo c > c.txt && git add c.txt && git commit -qm agent-commit",
        );
        let c = since(&before, &app, &none);
        assert_eq!(c.files, vec!["app/a.txt", "app/c.txt", "app/d.txt", "app/n.txt"]);
        assert!(c.outside_workdir.is_empty());
        sh(d.path(), "rm other/b.txt");
        let c = since(&before, &app, &none);
        assert_eq!(c.outside_workdir, vec!["other/b.txt"], "a write outside the workdir");
    }

    #[cfg(unix)]
    #[test]
    fn the_orchestrator_home_inside_the_repository_is_not_a_change() {
        let d = repo();
        let home = d.path().join("app/.orch");
        std::fs::create_dir_all(home.join("results/t1")).unwrap();
        let before = snapshot(d.path(), &home).unwrap();
        std::fs::write(home.join("results/t1/result.json"), "{}").unwrap();
        assert!(since(&before, d.path(), &home).files.is_empty());
        // The default setup: the home is the workdir (and the repository's top).
        // Its own folders are left out, the agent's work is not.
        let before = snapshot(d.path(), d.path()).unwrap();
        std::fs::create_dir_all(d.path().join("summaries")).unwrap();
        std::fs::write(d.path().join("summaries/t1.md"), "# t1").unwrap();
        std::fs::write(d.path().join("app/work.txt"), "done").unwrap();
        assert_eq!(since(&before, d.path(), d.path()).files, vec!["app/work.txt"]);
    }

    #[test]
    fn outside_a_repository_there_is_no_snapshot() {
        let d = tempfile::tempdir().unwrap();
        assert!(snapshot(d.path(), d.path()).is_none());
    }
}
