//! Moving a file into a keeping folder (`inbox/rejected/`,
//! `inbox/cancelled/`) without ever replacing what is already kept there.
//!
//! A plain rename replaces its target, so a second `cancel` of a file named
//! like an earlier one would destroy the earlier copy. Here the rename itself
//! refuses to replace (`renameat2(RENAME_NOREPLACE)` on Linux, `MoveFileExW`
//! without `MOVEFILE_REPLACE_EXISTING` on Windows; elsewhere, or on a
//! filesystem without that flag, a check just before the rename), and a name
//! that is taken gets a unique suffix.

use std::io;
use std::path::Path;

/// Names are at most 255 bytes, and a kept file may get `.error.json` beside it.
const ROOM: usize = 255 - ".error.json".len() - ".0123456789".len();

/// Moves `src` into `dir` under `name`, or under a distinct name when `name`
/// is taken or too long; returns the name it got. `NotFound` when `src` is
/// gone (someone else moved it first).
pub fn move_into(src: &Path, dir: &Path, name: &str) -> io::Result<String> {
    std::fs::create_dir_all(dir)?;
    if name.len() <= ROOM - 16 {
        match rename_no_replace(src, &dir.join(name)) {
            Ok(()) => return Ok(name.to_string()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    loop {
        let other = suffixed(name);
        match rename_no_replace(src, &dir.join(&other)) {
            Ok(()) => return Ok(other),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `name` shortened to fit, with a unique suffix before its extension:
/// `notes.md` -> `notes.6x1q2w3e4r.md`.
fn suffixed(name: &str) -> String {
    let p = Path::new(name);
    let ext = p
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| e.len() <= 16)
        .map(|e| format!(".{e}"))
        .unwrap_or_default();
    let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or(name);
    let mut cut = stem.len().min(ROOM - 16 - ext.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    let suffix = ulid::Ulid::generate().to_string().to_ascii_lowercase();
    format!("{}.{}{ext}", &stem[..cut], &suffix[16..])
}

/// Renames `src` to `dst`; `AlreadyExists` instead of replacing `dst`.
pub fn rename_no_replace(src: &Path, dst: &Path) -> io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
        match renameat2(AT_FDCWD, src, AT_FDCWD, dst, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => return Ok(()),
            // The filesystem has no such flag (some network shares): check, then rename.
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOSYS) => {}
            Err(e) => return Err(e.into()),
        }
    }
    #[cfg(windows)]
    {
        windows_move(src, dst)
    }
    #[cfg(not(windows))]
    {
        if std::fs::symlink_metadata(dst).is_ok() {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "the name is taken"));
        }
        std::fs::rename(src, dst)
    }
}

/// `MoveFileExW` without `MOVEFILE_REPLACE_EXISTING` fails on an existing target.
/// Paths go in verbatim form (`\\?\C:\...`, `\\?\UNC\...`), as std's own
/// rename does, so names past 260 characters move too.
#[cfg(windows)]
fn windows_move(src: &Path, dst: &Path) -> io::Result<()> {
    use windows_sys::Win32::Storage::FileSystem::MoveFileExW;
    let (s, d) = (verbatim(src), verbatim(dst));
    // SAFETY: both are NUL-terminated UTF-16 strings that outlive the call.
    let ok = unsafe { MoveFileExW(s.as_ptr(), d.as_ptr(), 0) };
    if ok != 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    // ERROR_ALREADY_EXISTS (183) and ERROR_FILE_EXISTS (80).
    if matches!(e.raw_os_error(), Some(80 | 183)) {
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, "the name is taken"));
    }
    Err(e)
}

/// `p` made absolute, in verbatim form, NUL-terminated UTF-16.
#[cfg(windows)]
fn verbatim(p: &Path) -> Vec<u16> {
    use std::os::windows::ffi::OsStrExt;
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let w: Vec<u16> = abs.as_os_str().encode_wide().collect();
    let utf16 = |s: &str| s.encode_utf16().collect::<Vec<u16>>();
    let mut out = if w.starts_with(&utf16(r"\\?\")) {
        w
    } else if w.starts_with(&utf16(r"\\")) {
        let mut v = utf16(r"\\?\UNC\");
        v.extend_from_slice(&w[2..]);
        v
    } else {
        let mut v = utf16(r"\\?\");
        v.extend_from_slice(&w);
        v
    };
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_file_of_the_same_name_gets_its_own_name() {
        let d = tempfile::tempdir().unwrap();
        let keep = d.path().join("kept");
        std::fs::write(d.path().join("a.md"), "first").unwrap();
        assert_eq!(move_into(&d.path().join("a.md"), &keep, "a.md").unwrap(), "a.md");
        std::fs::write(d.path().join("a.md"), "second").unwrap();
        let second = move_into(&d.path().join("a.md"), &keep, "a.md").unwrap();
        assert_ne!(second, "a.md");
        assert!(second.starts_with("a.") && second.ends_with(".md"), "{second}");
        assert_eq!(std::fs::read_to_string(keep.join("a.md")).unwrap(), "first");
        assert_eq!(std::fs::read_to_string(keep.join(&second)).unwrap(), "second");
    }

    #[test]
    fn a_vanished_source_is_not_found() {
        let d = tempfile::tempdir().unwrap();
        let e = move_into(&d.path().join("gone.md"), d.path(), "gone2.md").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_long_name_is_shortened() {
        let d = tempfile::tempdir().unwrap();
        let name = format!("{}.md", "x".repeat(250));
        std::fs::write(d.path().join("src"), "x").unwrap();
        let kept = move_into(&d.path().join("src"), &d.path().join("k"), &name).unwrap();
        assert!(kept.len() + ".error.json".len() <= 255, "{kept}");
        assert!(kept.ends_with(".md"));
    }
}
