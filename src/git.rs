//! Running git, for the parts that read or make repository state
//! ([`crate::changes`], [`crate::isolate`]). Git is run as a program: it is there
//! wherever agents edit code, and its own rules (`.gitignore`, attributes,
//! submodules) are the ones the user expects.

use std::path::Path;
use std::process::{Command, Stdio};

/// `git -C dir ARGS`: its stdout, or why it failed (git's own stderr). Commits
/// made through here are authored by `orchestrator`, whatever the user's config.
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
