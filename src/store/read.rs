//! Reading files that anyone who can write the home may have replaced: only
//! regular files, bounded, and never blocking.
//!
//! A FIFO in place of a file would block `open` until a writer came (the
//! notifier or a config reload hung, and SIGTERM could not stop the daemon);
//! a link to `/dev/zero` would be read until memory ran out; a 200 MiB config
//! would be read whole. So a file is opened without blocking (`O_NONBLOCK` on
//! Unix: no effect on a regular file, `open` returns at once on a FIFO), its
//! type is checked on the open handle (no window between a check and the
//! open), and at most the caller's bound is read. A link is followed (a
//! config kept elsewhere and linked into the home is common), but what it
//! points at must be a regular file too.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Opens `path` for reading if it is (or links to) a regular file.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok(file)
}

/// Reads at most `max + 1` bytes of a regular file (one more than `max`, so a
/// caller can tell "exactly max" from "more").
pub fn read_capped(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads a whole regular file of at most `max` bytes; a larger one is an
/// error that says the bound.
pub fn read_bounded(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let bytes = read_capped(path, max)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(bytes)
}

/// [`read_bounded`] as UTF-8 text.
pub fn read_text(path: &Path, max: u64) -> io::Result<String> {
    String::from_utf8(read_bounded(path, max)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// A record of the home (`plan.json`, `isolation.json`, a daemon's state, an
/// outbox item ...) read within [`max::RECORD`] and parsed; `None` when it is
/// missing, not a regular file, too big or not what `T` is.
pub fn json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_slice(&read_bounded(path, max::RECORD).ok()?).ok()
}

/// A record's text, within [`max::RECORD`] (a lock file's owner record).
pub fn record_text(path: &Path) -> io::Result<String> {
    read_text(path, max::RECORD)
}

/// Bounds for the home's own records: far above what the product writes, far
/// below what would hurt the daemon.
pub mod max {
    /// A small record: `plan.json`, `progress.json`, `result.json`, a lock's
    /// record, an outbox item, a daemon's advertisement.
    pub const RECORD: u64 = 16 * 1024 * 1024;
    /// `orchestrator.yaml`.
    pub const CONFIG: u64 = 4 * 1024 * 1024;
    /// `results/index.json`: about 300 bytes a task, a million tasks.
    pub const INDEX: u64 = 1024 * 1024 * 1024;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_over_the_bound_is_refused_and_one_at_it_is_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"12345").unwrap();
        assert_eq!(read_bounded(&p, 5).unwrap(), b"12345");
        let e = read_bounded(&p, 4).unwrap_err();
        assert!(e.to_string().contains("larger than 4 bytes"), "{e}");
        assert_eq!(read_capped(&p, 2).unwrap(), b"123");
    }

    #[test]
    fn a_folder_is_not_a_regular_file() {
        let d = tempfile::tempdir().unwrap();
        assert!(read_bounded(d.path(), 10).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_and_a_device_are_refused_at_once() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // Without O_NONBLOCK this open would wait for a writer forever.
        let e = read_bounded(&fifo, 10).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let zero = d.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        assert!(read_bounded(&zero, 10).is_err());
        // A link to a regular file is followed.
        std::fs::write(d.path().join("real"), "x").unwrap();
        std::os::unix::fs::symlink(d.path().join("real"), d.path().join("link")).unwrap();
        assert_eq!(read_bounded(&d.path().join("link"), 10).unwrap(), b"x");
    }
}
