//! Judging a settled file without trusting it: what kind of entry it is,
//! its size before reading, at most `max_task_bytes + 1` bytes read, the
//! parse, the workdir's confinement. Many files at once are judged on a few
//! threads.

use super::{Accepted, Queued, Rules, Stamp, Verdict, stat};
use crate::store::read::read_capped;
use crate::task::parse;
use crate::task::{Rejection, workdir};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// Below this many files, judging them on more threads costs more than it saves.
const PARALLEL_JUDGING_FROM: usize = 64;

/// Judges settled files, in their order. Many at once (a daemon starting on a
/// full inbox, a burst dropped in one go) are judged on a few threads: reading
/// and parsing a thousand files is tens of milliseconds the agents would
/// otherwise wait for, with the other cores idle.
pub(super) fn judge_all(
    inbox: &Path,
    settled: Vec<(Arc<str>, std::fs::Metadata, Stamp)>,
    rules: &Rules,
) -> Vec<Verdict> {
    // The default workdir is resolved once for the files judged together (on
    // each thread): most tasks name none, and each resolution is a few
    // syscalls a folder of its path. The claim resolves it again.
    let judge_part = |part: &[(Arc<str>, std::fs::Metadata, Stamp)]| {
        let default = std::cell::OnceCell::new();
        part.iter()
            .filter_map(|(name, meta, stamp)| judge(name, &inbox.join(&**name), meta, *stamp, rules, &default))
            .collect::<Vec<_>>()
    };
    // Asked once, and only for a big batch: on Linux the answer reads cgroup files.
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let threads = || *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(4));
    if settled.len() < PARALLEL_JUDGING_FROM || threads() < 2 {
        return judge_part(&settled);
    }
    let chunk = settled.len().div_ceil(threads());
    std::thread::scope(|scope| {
        let judge_part = &judge_part;
        let parts: Vec<_> = settled
            .chunks(chunk)
            .map(|part| scope.spawn(move || judge_part(part)))
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    })
}

/// The default workdir as resolved for a batch (see [`judge_all`]).
type DefaultWorkdir = std::cell::OnceCell<Result<std::path::PathBuf, Rejection>>;

fn judge(
    name: &Arc<str>,
    path: &Path,
    meta: &std::fs::Metadata,
    stamp: Stamp,
    rules: &Rules,
    default: &DefaultWorkdir,
) -> Option<Verdict> {
    let reject = |rejection: Rejection| {
        Some(Verdict::Reject {
            name: name.to_string(),
            rejection,
        })
    };
    if let Some(r) = file_rejection(meta, rules.owner_only) {
        return reject(r);
    }
    if parse::Form::of(path).is_none() {
        return reject(Rejection::new(
            "unsupported_extension",
            format!("`{name}` has an extension the inbox does not accept"),
            "rename it to .md, .markdown, .txt, .yaml, .yml or .json",
        ));
    }
    if stamp.len > rules.limits.max_bytes {
        return reject(parse::too_large(stamp.len, rules.limits.max_bytes));
    }
    let bytes = match read_capped(path, rules.limits.max_bytes) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            return reject(Rejection::new(
                "unreadable",
                format!("the file cannot be read: {e}"),
                "check the file's permissions",
            ));
        }
    };
    // Written to while it was read: what was read may be half of it.
    if stat(path).is_some_and(|(_, now)| now != stamp) {
        return Some(Verdict::Moved(name.clone()));
    }
    let spec = match parse::parse(name, &bytes, &rules.limits) {
        Ok(s) => s,
        Err(r) => return reject(r),
    };
    let resolve = |wd: Option<&str>| match wd {
        None => default
            .get_or_init(|| workdir::resolve(None, &rules.default_workdir, &rules.home, &rules.allowed_roots))
            .clone(),
        Some(_) => workdir::resolve(wd, &rules.default_workdir, &rules.home, &rules.allowed_roots),
    };
    let workdir = match resolve(spec.workdir.as_deref()) {
        Ok(w) => w,
        // A folder a note named is a guess (as in `task::place`): the default stays.
        Err(_) if spec.workdir_from_note => match resolve(None) {
            Ok(w) => w,
            Err(r) => return reject(r),
        },
        Err(r) => return reject(r),
    };
    Some(Verdict::Accept(Box::new(Accepted {
        queued: Queued {
            name: name.clone(),
            priority: spec.priority,
            agent: spec.agent,
            fallback: if spec.fallback.is_empty() {
                0
            } else {
                (rules.fallbacks_of.0)(&spec, &workdir)
            },
            writer: (rules.writer_of.0)(&spec, &workdir),
            arrival: stamp.mtime().unwrap_or(SystemTime::UNIX_EPOCH),
            len: stamp.len,
            mtime: stamp.mtime(),
            queued_at: jiff::Timestamp::now(),
        },
        spec,
        bytes,
    })))
}

/// What makes an inbox entry no task whatever it says: a link, a folder, a
/// FIFO or device, a hard link, another user's file under a root daemon.
/// Asked when a file settles and again of the claimed file, before it is read.
pub fn file_rejection(meta: &std::fs::Metadata, owner_only: Option<u32>) -> Option<Rejection> {
    let ft = meta.file_type();
    if ft.is_symlink() {
        return Some(Rejection::new(
            "symlink",
            "the inbox entry is a symbolic link",
            "copy the file into the inbox instead of linking it",
        ));
    }
    if ft.is_dir() {
        return Some(Rejection::new(
            "directory",
            "the inbox entry is a folder",
            "put task files directly in the inbox; folders are not tasks",
        ));
    }
    if !ft.is_file() {
        return Some(Rejection::new(
            "not_a_file",
            "the inbox entry is not a regular file (FIFO, socket or device)",
            "write the task to a regular file",
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // A hard link shares its content with a file elsewhere, maybe outside the
        // home and not readable by whoever made the link: a daemon running with
        // more rights would read it as a task and show it to an agent.
        if meta.nlink() > 1 {
            return Some(Rejection::new(
                "hard_link",
                format!("the file has {} names (a hard link to a file elsewhere)", meta.nlink()),
                "copy the file into the inbox instead of linking it",
            ));
        }
        // A daemon running as root takes tasks only from the home's owner (and
        // root): anyone else who can write into the inbox would run agents as root.
        if owner_only.is_some_and(|owner| meta.uid() != owner && meta.uid() != 0) {
            return Some(Rejection::new(
                "foreign_owner",
                format!(
                    "the file belongs to user {}, not to the home's owner, and the daemon runs as root",
                    meta.uid()
                ),
                "have the home's owner submit it (or run the daemon as an unprivileged user)",
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = owner_only;
    None
}
