//! Resolving a task's working directory and confining it to the allowed roots.
//!
//! The path is canonicalised (`..` and symlinks resolved, on Windows junctions
//! too) before the check, so `../../etc` or a symlink pointing out of a root is
//! caught, not just a literal prefix.

use super::Rejection;
use crate::config::expand_tilde;
use std::path::{Path, PathBuf};

/// Resolves `requested` (or the default) against `home` and checks it lies in one of `roots`.
pub fn resolve(requested: Option<&str>, default: &Path, home: &Path, roots: &[PathBuf]) -> Result<PathBuf, Rejection> {
    let raw = match requested {
        Some(w) => home.join(expand_tilde(Path::new(w))),
        None => default.to_path_buf(),
    };
    let resolved = canonical(&raw).map_err(|e| {
        Rejection::new(
            "workdir_missing",
            format!("workdir {} cannot be used: {e}", raw.display()),
            "create the folder, or fix the workdir path",
        )
    })?;
    if !resolved.is_dir() {
        return Err(Rejection::new(
            "workdir_not_a_folder",
            format!("workdir {} is not a folder", resolved.display()),
            "point workdir at a folder",
        ));
    }
    // `resolved` is canonical, so a root that is literally a prefix of it is a
    // real folder on its path: inside, without canonicalising the roots (a few
    // syscalls a root, for every task). Any other root is canonicalised first.
    let inside = roots.iter().any(|root| resolved.starts_with(root))
        || roots
            .iter()
            .filter_map(|r| canonical(r).ok())
            .any(|root| resolved.starts_with(&root));
    if !inside {
        let list: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        return Err(Rejection::new(
            "workdir_outside_roots",
            format!(
                "workdir {} resolves to {}, outside the allowed roots ({})",
                raw.display(),
                resolved.display(),
                list.join(", ")
            ),
            "use a workdir inside an allowed root, or add its folder to allowed_roots in orchestrator.yaml",
        ));
    }
    Ok(resolved)
}

/// `canonicalize`, without Windows' verbatim prefix where the plain form means
/// the same (`\\?\C:\work` becomes `C:\work`): that is the path people and
/// agents know, and the one recorded in plans and results.
pub fn canonical(path: &Path) -> std::io::Result<PathBuf> {
    let p = std::fs::canonicalize(path)?;
    #[cfg(windows)]
    {
        let s = p.to_string_lossy();
        if let Some(rest) = s.strip_prefix(r"\\?\")
            && rest.as_bytes().get(1) == Some(&b':')
            && rest.len() < 248
        {
            return Ok(PathBuf::from(rest));
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confines_to_roots() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("root");
        let outside = base.path().join("outside");
        std::fs::create_dir_all(root.join("proj")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let roots = vec![root.clone()];
        let ok = resolve(Some("proj"), &root, &root, &roots).unwrap();
        assert!(ok.ends_with("proj"));
        assert_eq!(
            resolve(None, &root, &root, &roots).unwrap(),
            std::fs::canonicalize(&root).unwrap()
        );
        let r = resolve(Some("proj/../../outside"), &root, &root, &roots).unwrap_err();
        assert_eq!(r.reason, "workdir_outside_roots");
        assert!(r.is_security_violation());
        let r = resolve(Some(outside.to_str().unwrap()), &root, &root, &roots).unwrap_err();
        assert_eq!(r.reason, "workdir_outside_roots");
        assert_eq!(
            resolve(Some("missing"), &root, &root, &roots).unwrap_err().reason,
            "workdir_missing"
        );
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
            assert_eq!(
                resolve(Some("link"), &root, &root, &roots).unwrap_err().reason,
                "workdir_outside_roots"
            );
        }
    }

    /// Roots that are not literally a prefix of the canonical workdir (a `..`
    /// in them, a symlink on their path) are canonicalised before the check:
    /// inside stays inside, outside stays outside.
    #[test]
    fn roots_spelled_differently_are_canonicalised() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("root");
        std::fs::create_dir_all(root.join("proj")).unwrap();
        std::fs::create_dir_all(base.path().join("other")).unwrap();
        let dotted = base.path().join("other").join("..").join("root");
        assert!(resolve(Some("proj"), &root, &root, std::slice::from_ref(&dotted)).is_ok());
        let other = vec![base.path().join("root").join("..").join("other")];
        assert_eq!(
            resolve(Some("proj"), &root, &root, &other).unwrap_err().reason,
            "workdir_outside_roots"
        );
        #[cfg(unix)]
        {
            let link = base.path().join("root-link");
            std::os::unix::fs::symlink(&root, &link).unwrap();
            assert!(resolve(Some("proj"), &root, &root, &[link]).is_ok());
        }
    }
}
