//! Running git, for the parts that read or make repository state
//! ([`crate::changes`], [`crate::isolate`]). Git is run as a program: it is there
//! wherever agents edit code, and its own rules (`.gitignore`, attributes,
//! submodules) are the ones the user expects.

use std::path::Path;
use std::process::{Command, Stdio};

/// `git -C dir ARGS`: its stdout, or why it failed (git's own stderr). Commits
/// made through here are authored by `orchestrator`, whatever the user's config.
/// The repository `dir` lies in: the nearest folder at or above it with a
/// `.git` that is one (a folder with `HEAD`, or a worktree's `gitdir:`
/// file). A stray empty `.git` (a sandbox's mount point left behind, say)
/// is no repository. A few stats, no process: asked for every task.
pub fn repository_of(dir: &Path) -> Option<&Path> {
    dir.ancestors().find(|d| {
        let git = d.join(".git");
        // One stat for a folder without `.git`, the common case on the way up.
        match std::fs::metadata(&git) {
            Ok(m) if m.is_dir() => git.join("HEAD").is_file(),
            Ok(m) if m.is_file() => std::fs::read(&git).is_ok_and(|b| b.starts_with(b"gitdir:")),
            _ => false,
        }
    })
}

pub fn run(dir: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "orchestrator")
        .env("GIT_AUTHOR_EMAIL", "orchestrator@localhost")
        .env("GIT_COMMITTER_NAME", "orchestrator")
        .env("GIT_COMMITTER_EMAIL", "orchestrator@localhost")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// [`run`], its output as text.
pub fn text(dir: &Path, args: &[&str]) -> Result<String, String> {
    run(dir, args).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// `path` relative to `base`, with `/` separators as git writes paths
/// (`None` if it is not inside `base`).
pub fn slash_path(base: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(base).ok()?;
    Some(
        rel.components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stray_empty_git_folder_is_no_repository() {
        let d = tempfile::tempdir().unwrap();
        let wd = d.path().join("a/b");
        std::fs::create_dir_all(&wd).unwrap();
        std::fs::create_dir_all(d.path().join(".git")).unwrap();
        assert_eq!(repository_of(&wd), None, "an empty .git above");
        std::fs::create_dir_all(d.path().join("a/.git")).unwrap();
        std::fs::write(d.path().join("a/.git/HEAD"), "ref: refs/heads/main\n").unwrap();
        assert_eq!(repository_of(&wd), Some(d.path().join("a").as_path()));
        std::fs::write(wd.join(".git"), "gitdir: /elsewhere/.git/worktrees/b\n").unwrap();
        assert_eq!(repository_of(&wd), Some(wd.as_path()), "a worktree's .git file");
    }
}
