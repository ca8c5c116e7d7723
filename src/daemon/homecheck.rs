//! Who else can change the home: a daemon runs agents on whatever lands in its
//! inbox, so anyone who can write there, or rename the inbox (or a folder above
//! it) away and put their own in its place, can run agents as the daemon's
//! user. Checked at start (a failure stops a daemon running as root, and is a
//! warning otherwise) and by `doctor`; while the daemon runs, the inbox is
//! checked to be the same folder at every rescan.

use crate::store::Home;
use std::path::Path;

/// One thing wrong with the home's folders, with its fix.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub text: String,
    /// Anyone at all can use it (a world-writable folder): refused for every
    /// daemon. The others (another user's folder) stop only a daemon running
    /// as root: several users may share a home on purpose.
    pub anyone: bool,
}

/// What is wrong with the home's folders and the folders above it. Empty:
/// nobody but the daemon's user (and root) can change them.
pub fn problems(home: &Home) -> Vec<Problem> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        let mut out = Vec::new();
        let mut check = |dir: &Path, own: bool| {
            let Ok(m) = std::fs::metadata(dir) else { return };
            let mode = m.permissions().mode();
            let sticky = mode & 0o1000 != 0;
            // In a sticky folder (such as /tmp) others cannot rename or remove what is not theirs.
            if mode & 0o002 != 0 && (own || !sticky) {
                out.push(Problem {
                    text: format!(
                        "{} is writable by every user (mode {:o}): fix it with `chmod o-w {}`",
                        dir.display(),
                        mode & 0o7777,
                        dir.display()
                    ),
                    anyone: true,
                });
            }
            if m.uid() != me && m.uid() != 0 {
                out.push(Problem {
                    text: format!(
                        "{} belongs to user {}, who can change what the daemon (user {me}) runs: fix it with `chown {me} {}`",
                        dir.display(),
                        m.uid(),
                        dir.display()
                    ),
                    anyone: false,
                });
            }
        };
        for dir in [home.root().to_path_buf(), home.inbox(), home.rejected(), home.results()] {
            check(&dir, true);
        }
        let root = std::fs::canonicalize(home.root()).unwrap_or_else(|_| home.root().to_path_buf());
        for dir in root.ancestors().skip(1) {
            check(dir, false);
        }
        out
    }
    #[cfg(not(unix))]
    {
        // Windows: ACLs are not read here; docs/security.md says what to set.
        let _ = home;
        Vec::new()
    }
}

/// Does the daemon run as root (so that problems stop it)?
pub fn running_as_root() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// What tells one folder from another that took its place (device, inode, owner).
pub type Identity = (u64, u64, u32);

/// The inbox's identity (device, inode, owner) on Unix: a different value
/// later means the folder was replaced while the daemon ran.
pub fn identity(dir: &Path) -> Option<Identity> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(dir).ok().map(|m| (m.dev(), m.ino(), m.uid()))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// The home's folders must not be changeable by other users: one that every
/// user can write stops any daemon, another user's folder stops a daemon
/// running as root (and is a warning otherwise: a home may be shared on purpose).
pub fn check_at_start(home: &Home) -> anyhow::Result<()> {
    let problems = problems(home);
    let text = |only_anyone: bool| {
        problems
            .iter()
            .filter(|p| p.anyone || !only_anyone)
            .map(|p| p.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    };
    if problems.iter().any(|p| p.anyone) {
        anyhow::bail!(
            "other users can change this home, so anyone could run agents as you:\n{}",
            text(true)
        );
    }
    if !problems.is_empty() {
        if running_as_root() {
            anyhow::bail!(
                "other users can change this home, and the daemon runs as root:\n{}",
                text(false)
            );
        }
        tracing::warn!(
            "other users can change this home (agents run as you on what lands in its inbox):\n{}",
            text(false)
        );
    }
    Ok(())
}

/// Running as root: tasks are taken only from the home's owner (and root).
pub fn owner_only(home: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            return std::fs::metadata(home).ok().map(|m| m.uid());
        }
    }
    let _ = home;
    None
}
