//! Isolated workspaces: the agent works on a git worktree or a copy of
//! the workdir, and the workdir itself is not touched.
//!
//! - **worktree** (the workdir is in a git repository): `git worktree add` on a
//!   new branch `orchestrator/<id>` from HEAD, in `<home>/worktrees/<id>`; the
//!   agent runs in the workdir's place inside it. The changes are what git sees
//!   there against the base commit (`git add -A`, `git diff --cached --binary`),
//!   so new, deleted and binary files are all in the diff.
//! - **copy** (no repository): the workdir is copied (the orchestrator's own folders
//!   left out) and compared file by file afterwards; each changed text file
//!   becomes a unified diff made with `similar`.
//!
//! Guarded mode keeps only `changes.diff` until `orchestrator apply`, which
//! checks that the patch still applies to the workdir as it is now (a conflict
//! is refused whole: nothing half-applied). `mode: apply` with `isolation:
//! worktree` commits the work on its branch and leaves it for review. The
//! sandbox itself stays until `orchestrator clean` removes it.
//!
//! Applying uses `git apply` (also outside repositories, where it acts like
//! `patch`): it checks the context of every hunk and applies all or nothing.

use crate::git;
use crate::store::layout::is_own_part;
use crate::task::Isolation;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub use crate::vocab::{DiffStat, Sandbox};

/// The folder of task `id`'s sandbox.
pub fn sandbox_root(home: &Path, id: &str) -> PathBuf {
    crate::store::layout::worktrees_of(home).join(id)
}

/// Makes the sandbox of task `id` (or finds the one an interrupted run made).
pub fn prepare(kind: Isolation, workdir: &Path, home: &Path, id: &str) -> Result<Sandbox, String> {
    let root = sandbox_root(home, id);
    match kind {
        Isolation::None => Err("no isolation asked for".into()),
        Isolation::Worktree => {
            let top = PathBuf::from(git::text(workdir, &["rev-parse", "--show-toplevel"])?.trim());
            let top = crate::task::workdir::canonical(&top).unwrap_or(top);
            let base = git::text(&top, &["rev-parse", "--verify", "HEAD"])
                .map_err(|_| {
                    "the repository has no commit yet: a worktree needs one (commit once, or use isolation: copy)"
                        .to_string()
                })?
                .trim()
                .to_string();
            let sub = workdir.strip_prefix(&top).unwrap_or(Path::new("")).to_path_buf();
            let branch = format!("orchestrator/{id}");
            if !root.exists() {
                std::fs::create_dir_all(root.parent().unwrap_or(home)).map_err(|e| e.to_string())?;
                git::text(
                    &top,
                    &["worktree", "add", "-q", "-b", &branch, &root.to_string_lossy(), &base],
                )?;
            }
            Ok(Sandbox {
                kind,
                run_dir: root.join(sub),
                root,
                repo: Some(top),
                branch: Some(branch),
                base: Some(base),
                stat: None,
                committed: false,
            })
        }
        Isolation::Copy => {
            if !root.exists() {
                let partial = root.with_extension("partial");
                let _ = std::fs::remove_dir_all(&partial);
                copy_tree(workdir, &partial, home).map_err(|e| format!("cannot copy the workdir: {e}"))?;
                std::fs::rename(&partial, &root).map_err(|e| e.to_string())?;
            }
            Ok(Sandbox {
                kind,
                run_dir: root.clone(),
                root,
                repo: None,
                branch: None,
                base: None,
                stat: None,
                committed: false,
            })
        }
    }
}

/// Copies `src` into a new `dst`, leaving out the home's own folders ([`is_own_part`]).
fn copy_tree(src: &Path, dst: &Path, exclude: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        if is_own_part(exclude, &from) {
            continue;
        }
        let to = dst.join(entry.file_name());
        let t = entry.file_type()?;
        if t.is_dir() {
            copy_tree(&from, &to, exclude)?;
        } else if t.is_symlink() {
            #[cfg(unix)]
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
            #[cfg(windows)]
            {
                // Windows symlinks need a privilege; copy what they point to.
                let _ = std::fs::copy(&from, &to);
            }
        } else if t.is_file() {
            std::fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

/// The sandbox's changes as a unified diff, and the changed paths (relative to
/// the repository's top for a worktree, to the workdir for a copy).
pub fn changes(sb: &Sandbox, workdir: &Path, home: &Path) -> Result<(String, Vec<String>), String> {
    match sb.kind {
        Isolation::Worktree => {
            let base = sb.base.as_deref().ok_or("the worktree has no base commit")?;
            git::text(&sb.root, &["add", "-A"])?;
            let diff = git::text(&sb.root, &["diff", "--cached", "--binary", "--no-renames", base])?;
            let names = git::text(&sb.root, &["diff", "--cached", "--name-only", "--no-renames", base])?;
            Ok((diff, names.lines().map(String::from).collect()))
        }
        Isolation::Copy => copy_diff(workdir, &sb.root, home),
        Isolation::None => Ok((String::new(), Vec::new())),
    }
}

/// Commits the worktree's changes on its branch (`mode: apply` with a worktree:
/// the branch is left for review).
pub fn commit_branch(sb: &Sandbox, message: &str) -> Result<(), String> {
    if git::text(&sb.root, &["diff", "--cached", "--quiet"]).is_ok() {
        return Ok(());
    }
    git::text(&sb.root, &["commit", "-q", "--no-verify", "-m", message]).map(drop)
}

/// Every file under `dir` (relative, `/`-separated), leaving out `home`'s own folders.
fn files_under(dir: &Path, home: Option<&Path>) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if home.is_some_and(|h| is_own_part(h, &p)) {
                continue;
            }
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(_) => out.extend(git::slash_path(dir, &p)),
                Err(_) => {}
            }
        }
    }
    out
}

/// What one path of the workdir or its copy holds, read without trusting it:
/// an agent wrote the copy, and may have left a symlink to a file outside the
/// sandbox (whose content must not enter the diff, nor `apply` make it an
/// ordinary file), a FIFO (which would block a reader forever), a device
/// (`/dev/zero`: endless) or a huge file.
#[derive(Debug, PartialEq)]
enum Entry {
    /// A regular file of at most [`MAX_DIFF_FILE`] bytes.
    File(Vec<u8>),
    /// A regular file too large to diff: its length and a hash of its bytes.
    Large(u64, u64),
    /// A symbolic link: its target, never followed.
    Link(PathBuf),
    /// A FIFO, socket or device: not read.
    Special,
}

/// Files larger than this are compared, not diffed.
const MAX_DIFF_FILE: u64 = 8 << 20;

/// Reads `path` as an [`Entry`]. A regular file is opened without following a
/// link and without blocking, and checked to be regular once open (it may have
/// been swapped since it was listed).
fn entry(path: &Path) -> Option<Entry> {
    use std::io::Read;
    let meta = std::fs::symlink_metadata(path).ok()?;
    let t = meta.file_type();
    if t.is_symlink() {
        return std::fs::read_link(path).ok().map(Entry::Link);
    }
    if !t.is_file() {
        return Some(Entry::Special);
    }
    let mut open = std::fs::File::options();
    open.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut open, libc::O_NOFOLLOW | libc::O_NONBLOCK);
    let file = open.open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return Some(Entry::Special);
    }
    if meta.len() > MAX_DIFF_FILE {
        // Streamed through a hash: bounded memory whatever the size.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let (mut r, mut buf, mut len) = (std::io::BufReader::new(file), vec![0u8; 64 * 1024], 0u64);
        loop {
            let n = r.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            len += n as u64;
            h = buf[..n]
                .iter()
                .fold(h, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
        }
        return Some(Entry::Large(len, h));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_DIFF_FILE + 1).read_to_end(&mut bytes).ok()?;
    Some(Entry::File(bytes))
}

/// Compares the workdir with its copy, path by path. Text files become unified
/// diffs; links are compared by target and written as a `Symlink` line (never
/// followed); special files are skipped and named in a `Skipped` line; files
/// that cannot be applied from a diff (binary, large, links) are named so
/// `apply` refuses them.
fn copy_diff(workdir: &Path, copy: &Path, home: &Path) -> Result<(String, Vec<String>), String> {
    let before = files_under(workdir, Some(home));
    let after = files_under(copy, None);
    let mut diff = String::new();
    let mut changed = Vec::new();
    for rel in before.union(&after) {
        let a = if before.contains(rel) {
            entry(&workdir.join(rel))
        } else {
            None
        };
        let b = if after.contains(rel) {
            entry(&copy.join(rel))
        } else {
            None
        };
        if a == b {
            continue;
        }
        if matches!(a, Some(Entry::Special)) || matches!(b, Some(Entry::Special)) {
            diff.push_str(&format!(
                "Skipped {rel}: not a regular file (a FIFO, socket or device)\n"
            ));
            continue;
        }
        changed.push(rel.clone());
        let (old_name, new_name) = (
            if a.is_some() {
                format!("a/{rel}")
            } else {
                "/dev/null".into()
            },
            if b.is_some() {
                format!("b/{rel}")
            } else {
                "/dev/null".into()
            },
        );
        let text = |e: &Option<Entry>| match e {
            None => Some(String::new()),
            Some(Entry::File(bytes)) if !bytes.contains(&0) => String::from_utf8(bytes.clone()).ok(),
            _ => None,
        };
        if let Some(Entry::Link(target)) = &b {
            diff.push_str(&format!("Symlink {new_name} -> {}\n", target.display()));
            continue;
        }
        match (text(&a), text(&b)) {
            (Some(old), Some(new)) => {
                let d = similar::TextDiff::from_lines(&old, &new);
                diff.push_str(
                    &d.unified_diff()
                        .context_radius(3)
                        .missing_newline_hint(true)
                        .header(&old_name, &new_name)
                        .to_string(),
                );
            }
            _ => diff.push_str(&format!("Binary files {old_name} and {new_name} differ\n")),
        }
    }
    Ok((diff, changed))
}

/// Checks (and unless `dry_run`, applies) `diff_file` to the workdir. Returns
/// git's `--stat` of the patch.
pub fn apply(sb: &Sandbox, diff_file: &Path, workdir: &Path, dry_run: bool) -> Result<String, String> {
    let diff = std::fs::read_to_string(diff_file).map_err(|e| format!("cannot read {}: {e}", diff_file.display()))?;
    let line_starts = |p: &str| diff.starts_with(p) || diff.contains(&format!("\n{p}"));
    if line_starts("Binary files ") {
        return Err("the diff changes binary files of a copy, which cannot be applied from a diff: copy them from the sandbox by hand".into());
    }
    if line_starts("Symlink ") {
        return Err("the diff makes symbolic links in a copy, which are not applied from a diff (a link may point anywhere): review them in the sandbox and make them by hand".into());
    }
    let (dir, ceiling) = match sb.kind {
        // A worktree's diff is relative to the repository's top.
        Isolation::Worktree => (sb.repo.clone().ok_or("no repository recorded")?, None),
        // A copy's diff is relative to the workdir: keep git from finding a repository above it.
        _ => (workdir.to_path_buf(), workdir.parent().map(Path::to_path_buf)),
    };
    let run = |args: &[&str]| -> Result<String, String> {
        let mut c = Command::new("git");
        c.args(args).arg(diff_file).current_dir(&dir).stdin(Stdio::null());
        if let Some(ceiling) = &ceiling {
            c.env("GIT_CEILING_DIRECTORIES", ceiling);
        }
        let out = c.output().map_err(|e| format!("cannot run git: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    };
    let stat = run(&["apply", "--stat"])?;
    run(&["apply", "--check"]).map_err(|why| {
        format!("the workdir changed since the task ran, so its diff no longer applies; nothing was changed.\n{why}\nReview changes.diff and apply it by hand, or retry the task on the workdir as it is now")
    })?;
    if !dry_run {
        run(&["apply"]).map_err(|why| format!("git apply failed; nothing was changed: {why}"))?;
    }
    Ok(stat)
}

/// Removes the sandbox (a worktree through git, so the repository forgets it;
/// the branch is kept when it holds committed work).
pub fn remove(sb: &Sandbox, keep_branch: bool) {
    if let (Isolation::Worktree, Some(repo)) = (&sb.kind, &sb.repo) {
        let _ = git::text(repo, &["worktree", "remove", "--force", &sb.root.to_string_lossy()]);
        let _ = git::text(repo, &["worktree", "prune"]);
        if !keep_branch && let Some(b) = &sb.branch {
            let _ = git::text(repo, &["branch", "-D", b]);
        }
    }
    let _ = std::fs::remove_dir_all(&sb.root);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn links_fifos_and_devices_in_a_copy_are_never_followed_or_read() {
        let d = tempfile::tempdir().unwrap();
        let (wd, home) = (d.path().join("wd"), d.path().join("home"));
        std::fs::create_dir_all(&wd).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(wd.join("a.txt"), "a\n").unwrap();
        let sb = prepare(Isolation::Copy, &wd, &home, "t1").unwrap();
        let secret = d.path().join("outside-secret.txt");
        std::fs::write(&secret, "TOP-SECRET\n").unwrap();
        std::os::unix::fs::symlink(&secret, sb.run_dir.join("host.txt")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", sb.run_dir.join("z.txt")).unwrap();
        nix::unistd::mkfifo(&sb.run_dir.join("f.txt"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let (diff, files) = changes(&sb, &wd, &home).unwrap();
        assert!(!diff.contains("TOP-SECRET"), "a link's target is never read: {diff}");
        assert!(
            diff.contains(&format!("Symlink b/host.txt -> {}", secret.display())),
            "{diff}"
        );
        assert!(diff.contains("Symlink b/z.txt -> /dev/zero"), "{diff}");
        assert!(diff.contains("Skipped f.txt: not a regular file"), "{diff}");
        assert_eq!(files, ["host.txt", "z.txt"]);
        let diff_file = d.path().join("changes.diff");
        std::fs::write(&diff_file, &diff).unwrap();
        let refused = apply(&sb, &diff_file, &wd, false).unwrap_err();
        assert!(refused.contains("symbolic links"), "{refused}");
        assert!(!wd.join("host.txt").exists());
    }

    #[test]
    fn a_copy_diff_has_edits_new_and_deleted_files() {
        let d = tempfile::tempdir().unwrap();
        let (wd, home) = (d.path().join("wd"), d.path().join("wd/.home"));
        std::fs::create_dir_all(wd.join("src")).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(wd.join("src/a.txt"), "one\ntwo\nthree\n").unwrap();
        std::fs::write(wd.join("gone.txt"), "bye\n").unwrap();
        std::fs::write(home.join("result.json"), "{}").unwrap();
        let sb = prepare(Isolation::Copy, &wd, &home, "t1").unwrap();
        assert!(!sb.root.join(".home").exists(), "the home is not copied");
        // A workdir that is the home itself: its own folders are left out.
        std::fs::create_dir_all(home.join("results/x")).unwrap();
        std::fs::write(home.join("notes.txt"), "mine\n").unwrap();
        let own = prepare(Isolation::Copy, &home, &home, "t2").unwrap();
        assert!(own.root.join("notes.txt").exists());
        assert!(!own.root.join("results").exists() && !own.root.join("worktrees").exists());
        std::fs::write(sb.run_dir.join("src/a.txt"), "one\n2\nthree\n").unwrap();
        std::fs::write(sb.run_dir.join("new.txt"), "hello\n").unwrap();
        std::fs::remove_file(sb.run_dir.join("gone.txt")).unwrap();
        let (diff, files) = changes(&sb, &wd, &home).unwrap();
        assert_eq!(files, ["gone.txt", "new.txt", "src/a.txt"]);
        assert_eq!(
            diff,
            "--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n\
             --- /dev/null\n+++ b/new.txt\n@@ -0,0 +1 @@\n+hello\n\
             --- a/src/a.txt\n+++ b/src/a.txt\n@@ -1,3 +1,3 @@\n one\n-two\n+2\n three\n"
        );
        assert_eq!(
            DiffStat::of(&diff),
            DiffStat {
                files: 3,
                insertions: 2,
                deletions: 2
            }
        );
        assert_eq!(
            std::fs::read_to_string(wd.join("src/a.txt")).unwrap(),
            "one\ntwo\nthree\n",
            "untouched"
        );
    }
}
