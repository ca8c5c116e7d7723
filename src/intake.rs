//! Intake: from "something is in the inbox" to a queued task or a rejection.
//!
//! A file is read only once it has settled: the daemon saw no change to its
//! size or modification time, and no watcher event for it, for the debounce
//! interval. So a file written in pieces is never read half-written, and one
//! renamed in whole is read one debounce after it appears.
//!
//! A file found by a rescan (at start, say) whose modification time is already
//! older than the debounce has, by definition, not changed for that long, and
//! is ready at once: `run --once` on a full inbox does not wait. This uses the
//! filesystem's clock, so it is off with `watch: poll` (network shares, whose
//! server clock may differ from ours).
//!
//! Where the watcher reports a writer closing a file (Linux), a file that was
//! created or written to is not read until its writer closed it, however long
//! the writer pauses with it open (up to [`OPEN_WRITER_LIMIT`] without a
//! change). Everywhere, the size and modification time are checked again after
//! reading: a file that moved while it was read goes back to settling.
//!
//! Settled files are checked without trusting them: symlinks, folders and FIFOs
//! are rejected without being opened, sizes are checked before reading, and at
//! most `max_task_bytes + 1` bytes are ever read.

use crate::events::{EventLog, now_ts};
use crate::queue::{Queue, Queued};
use crate::store::Home;
use crate::store::layout::INBOX_SUBDIRS;
use crate::task::TaskSpec;
use crate::task::parse::{self, Limits, is_ignored_name};
use crate::task::{Rejection, workdir};
use serde_json::json;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// What intake needs to judge a file.
#[derive(Debug, Clone)]
pub struct Rules {
    pub limits: Limits,
    pub home: PathBuf,
    pub default_workdir: PathBuf,
    pub allowed_roots: Vec<PathBuf>,
    /// Running as root: only files of this user (the home's owner) or root are tasks.
    pub owner_only: Option<u32>,
    /// The repository an accepted task may write to (the daemon's one-writer rule).
    pub writer_of: WriterOf,
}

/// Which repository a task (its spec, its resolved workdir) may write to, if it
/// is held to one writer; decided by the daemon, asked here while the parsed
/// task is at hand, since the queue does not keep it.
#[derive(Clone)]
pub struct WriterOf(pub Arc<WriterFn>);

/// See [`WriterOf`].
pub type WriterFn = dyn Fn(&TaskSpec, &Path) -> Option<PathBuf> + Send + Sync;

impl WriterOf {
    /// No task is held to one writer.
    pub fn none() -> Self {
        Self(Arc::new(|_, _| None))
    }
}

impl std::fmt::Debug for WriterOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriterOf(..)")
    }
}

/// A file's identity for "has it changed?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime: Option<SystemTime>,
}

#[derive(Debug)]
struct Settling {
    stamp: Stamp,
    changed_at: Instant,
    /// A writer created or wrote it and has not closed it yet (only tracked
    /// where the watcher reports closes).
    open_for_writing: bool,
}

impl Settling {
    /// When it may be read: one debounce after its last change, or, while a
    /// writer holds it open, once the writer gave up on it.
    fn due_at(&self, debounce: std::time::Duration) -> Instant {
        if self.open_for_writing {
            self.changed_at + OPEN_WRITER_LIMIT
        } else {
            self.changed_at + debounce
        }
    }
}

/// How long a file held open by a writer, without changing, is waited for
/// before it is taken anyway (a writer that never closes its file).
pub const OPEN_WRITER_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// An accepted file: its queue entry, and its title for the `task_queued` event.
#[derive(Debug)]
pub struct Accepted {
    pub queued: Queued,
    pub title: String,
}

/// The outcome for one settled file.
#[derive(Debug)]
pub enum Verdict {
    Accept(Box<Accepted>),
    Reject {
        name: String,
        rejection: Rejection,
    },
    /// It changed while it was read: settle it again.
    Moved(Arc<str>),
}

#[derive(Debug)]
pub struct Intake {
    inbox: PathBuf,
    debounce: std::time::Duration,
    /// Names shared with the queue entry a file becomes (no second copy).
    settling: HashMap<Arc<str>, Settling>,
    /// The watcher has the OS's events (not polling): credit a file found by
    /// rescan with the quiet time its mtime shows, and rely on the events for
    /// changes to queued files.
    trust_mtime: bool,
    /// The watcher reports closes: wait for a writer's close.
    close_events: bool,
    /// Entries whose names are not valid Unicode, found by the last rescan.
    bad_names: Vec<PathBuf>,
}

fn stat(path: &Path) -> Option<(std::fs::Metadata, Stamp)> {
    let m = std::fs::symlink_metadata(path).ok()?;
    let stamp = Stamp {
        len: m.len(),
        mtime: m.modified().ok(),
    };
    Some((m, stamp))
}

fn relevant(name: &str) -> bool {
    !is_ignored_name(name) && !INBOX_SUBDIRS.contains(&name)
}

impl Intake {
    pub fn new(inbox: PathBuf, debounce: std::time::Duration, trust_mtime: bool) -> Self {
        Self {
            inbox,
            debounce,
            settling: HashMap::new(),
            trust_mtime,
            close_events: false,
            bad_names: Vec::new(),
        }
    }

    /// Inbox entries whose names are not valid Unicode, found since the last call.
    pub fn take_bad_names(&mut self) -> Vec<PathBuf> {
        std::mem::take(&mut self.bad_names)
    }

    /// Waits for a writer's close before reading a file it wrote (the watcher
    /// reports closes).
    pub fn with_close_events(mut self, on: bool) -> Self {
        self.close_events = on;
        self
    }

    /// A writer created or wrote to `name`: it is not read before the writer closes it.
    pub fn note_written(&mut self, name: &str, now: Instant, queue: &mut Queue) {
        self.note(name, now, queue);
        if self.close_events
            && let Some(s) = self.settling.get_mut(name)
        {
            s.open_for_writing = true;
        }
    }

    /// The writer of `name` closed it: it settles one debounce from now.
    pub fn note_closed(&mut self, name: &str, now: Instant, queue: &mut Queue) {
        self.note(name, now, queue);
        if let Some(s) = self.settling.get_mut(name) {
            s.open_for_writing = false;
            s.changed_at = now;
        }
    }

    /// When a file first seen by a rescan last changed, as far as we may tell.
    fn first_seen(&self, stamp: Stamp, now: Instant) -> Instant {
        if !self.trust_mtime {
            return now;
        }
        let age = stamp
            .mtime
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .unwrap_or_default();
        now.checked_sub(age.min(self.debounce)).unwrap_or(now)
    }

    /// Files still settling.
    pub fn settling(&self) -> usize {
        self.settling.len()
    }

    /// A watcher hint for `name`: (re)start its settle clock.
    pub fn note(&mut self, name: &str, now: Instant, queue: &mut Queue) {
        if !relevant(name) {
            return;
        }
        let Some((_, stamp)) = stat(&self.inbox.join(name)) else {
            self.settling.remove(name);
            queue.remove(name);
            return;
        };
        if let Some(checked) = queue.stamp(name) {
            if checked == (stamp.len, stamp.mtime) {
                return;
            }
            queue.remove(name);
        }
        let open_for_writing = self.settling.get(name).is_some_and(|s| s.open_for_writing);
        self.settling.insert(
            name.into(),
            Settling {
                stamp,
                changed_at: now,
                open_for_writing,
            },
        );
    }

    /// Lists the inbox: new files start settling, vanished ones are forgotten,
    /// queued ones that changed go back to settling.
    pub fn rescan(&mut self, now: Instant, queue: &mut Queue) -> std::io::Result<()> {
        // The names seen, as the same shared strings the queue and the settling
        // map hold: a rescan of 100,000 waiting files copies none of them.
        let mut present: std::collections::HashSet<Arc<str>> = std::collections::HashSet::new();
        for entry in std::fs::read_dir(&self.inbox)?.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                // Not valid Unicode: it cannot be named in events or by the CLI,
                // nor read as a task. The daemon moves it to rejected/.
                self.bad_names.push(entry.path());
                continue;
            };
            if !relevant(&name) {
                continue;
            }
            if let Some(known) = queue.shared_name(&name) {
                // With the OS's events, a queued file that is written to is
                // noted when it happens; a stat of every waiting file at every
                // rescan (100,000 of them: a fifth of a core) would find
                // nothing new. Polling has only the rescan to notice it. (A
                // change missed anyway is found at the claim, which reads and
                // checks the file again.)
                if !self.trust_mtime {
                    self.note(&name, now, queue);
                }
                present.insert(known);
                continue;
            }
            if let Some((known, _)) = self.settling.get_key_value(name.as_str()) {
                present.insert(known.clone());
                continue;
            }
            if let Some((_, stamp)) = stat(&entry.path()) {
                let changed_at = self.first_seen(stamp, now);
                let name: Arc<str> = name.into();
                self.settling.insert(
                    name.clone(),
                    Settling {
                        stamp,
                        changed_at,
                        open_for_writing: false,
                    },
                );
                present.insert(name);
            }
        }
        self.settling.retain(|n, _| present.contains(n));
        let gone: Vec<String> = queue
            .names()
            .filter(|n| !present.contains(*n))
            .map(str::to_string)
            .collect();
        for n in gone {
            queue.remove(&n);
        }
        Ok(())
    }

    /// When `s` may be read: one debounce after its last change, or, while a
    /// writer holds it open, once the writer gave up on it.
    fn due_at(&self, s: &Settling) -> Instant {
        s.due_at(self.debounce)
    }

    /// When the next file may have settled.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.settling.values().map(|s| self.due_at(s)).min()
    }

    /// Judges every file that has settled by `now` (the tests' view of
    /// [`Self::settle_each`]).
    #[cfg(test)]
    pub fn settle(&mut self, now: Instant, rules: &Rules) -> Vec<Verdict> {
        let mut verdicts = Vec::new();
        self.settle_each(now, rules, |v| verdicts.push(v));
        verdicts
    }

    /// Judges every file that has settled by `now`, handing each verdict to
    /// `each` a few thousand at a time: a daemon starting on 100,000 files
    /// never holds 100,000 verdicts (nor the memory they leave behind).
    pub fn settle_each(&mut self, now: Instant, rules: &Rules, mut each: impl FnMut(Verdict)) {
        // Names move out of the map, not copied.
        let debounce = self.debounce;
        let due: Vec<(Arc<str>, Settling)> = self.settling.extract_if(|_, s| s.due_at(debounce) <= now).collect();
        // A map that held a burst keeps its capacity when emptied: give it back.
        if self.settling.capacity() > 1024 && self.settling.capacity() > 4 * self.settling.len() {
            self.settling.shrink_to_fit();
        }
        let mut due = due.into_iter().peekable();
        while due.peek().is_some() {
            let mut settled = Vec::with_capacity(JUDGED_AT_ONCE);
            for (name, mut s) in due.by_ref().take(JUDGED_AT_ONCE) {
                let Some((meta, stamp)) = stat(&self.inbox.join(&*name)) else {
                    continue;
                };
                if s.stamp != stamp {
                    s.stamp = stamp;
                    s.changed_at = now;
                    self.settling.insert(name, s);
                    continue;
                }
                settled.push((name, meta, stamp));
            }
            for verdict in judge_all(&self.inbox, settled, rules) {
                match verdict {
                    Verdict::Moved(name) => {
                        if let Some((_, stamp)) = stat(&self.inbox.join(&*name)) {
                            self.settling.insert(
                                name,
                                Settling {
                                    stamp,
                                    changed_at: now,
                                    open_for_writing: false,
                                },
                            );
                        }
                    }
                    v => each(v),
                }
            }
        }
    }
}

/// How many settled files are judged (and handed on) at once.
const JUDGED_AT_ONCE: usize = 4096;

/// Below this many files, judging them on more threads costs more than it saves.
const PARALLEL_JUDGING_FROM: usize = 64;

/// Judges settled files, in their order. Many at once (a daemon starting on a
/// full inbox, a burst dropped in one go) are judged on a few threads: reading
/// and parsing a thousand files is tens of milliseconds the agents would
/// otherwise wait for, with the other cores idle.
fn judge_all(inbox: &Path, settled: Vec<(Arc<str>, std::fs::Metadata, Stamp)>, rules: &Rules) -> Vec<Verdict> {
    let one = |(name, meta, stamp): &(Arc<str>, std::fs::Metadata, Stamp)| {
        judge(name, &inbox.join(&**name), meta, *stamp, rules)
    };
    // Asked once, and only for a big batch: on Linux the answer reads cgroup files.
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let threads = || *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(4));
    if settled.len() < PARALLEL_JUDGING_FROM || threads() < 2 {
        return settled.iter().filter_map(one).collect();
    }
    let chunk = settled.len().div_ceil(threads());
    std::thread::scope(|scope| {
        let parts: Vec<_> = settled
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().filter_map(one).collect::<Vec<_>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    })
}

fn judge(name: &Arc<str>, path: &Path, meta: &std::fs::Metadata, stamp: Stamp, rules: &Rules) -> Option<Verdict> {
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
    let workdir = match workdir::resolve(
        spec.workdir.as_deref(),
        &rules.default_workdir,
        &rules.home,
        &rules.allowed_roots,
    ) {
        Ok(w) => w,
        Err(r) => return reject(r),
    };
    Some(Verdict::Accept(Box::new(Accepted {
        queued: Queued {
            name: name.clone(),
            priority: spec.priority,
            agent: spec.agent,
            writer: (rules.writer_of.0)(&spec, &workdir),
            arrival: stamp.mtime.unwrap_or(SystemTime::UNIX_EPOCH),
            len: stamp.len,
            mtime: stamp.mtime,
            queued_at: jiff::Timestamp::now(),
        },
        title: spec.title,
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

/// Reads at most `max + 1` bytes (one more, to tell "exactly max" from "more").
pub fn read_capped(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Moves a rejected inbox entry to `inbox/rejected/` with `NAME.error.json`
/// beside it, and logs it. Returns false if the entry was gone (another daemon
/// rejected it first).
/// The name a rejected file is kept under in `inbox/rejected/`: its own, or,
/// when that is taken or too long to carry `.error.json` beside it (names are
/// at most 255 bytes), a shortened one with a unique suffix.
fn rejected_name(dir: &Path, name: &str) -> String {
    const ROOM: usize = 255 - ".error.json".len() - ".0123456789".len();
    if name.len() <= ROOM - 16 && std::fs::symlink_metadata(dir.join(name)).is_err() {
        return name.to_string();
    }
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

/// Moves a rejected file to `inbox/rejected/` with its `NAME.error.json`.
/// `Err` says why it could not be moved (the file stays in the inbox: the
/// caller says so once, as a `claim_failed` event); `Ok(false)`: it was gone.
pub fn reject(home: &Home, events: &EventLog, name: &str, r: &Rejection) -> Result<bool, String> {
    reject_path(home, events, &home.inbox().join(name), name, r)
}

/// [`reject`] for a file given by its path (its name may not be valid UTF-8;
/// `shown` is how it is named in records).
pub fn reject_path(home: &Home, events: &EventLog, src: &Path, shown: &str, r: &Rejection) -> Result<bool, String> {
    let dir = home.rejected();
    let _ = std::fs::create_dir_all(&dir);
    let kept = rejected_name(&dir, shown);
    let target = dir.join(&kept);
    if let Err(e) = std::fs::rename(src, &target) {
        if e.kind() == std::io::ErrorKind::NotFound && std::fs::symlink_metadata(src).is_err() {
            return Ok(false);
        }
        tracing::error!(file = shown, error = %e, "could not move a rejected file to inbox/rejected");
        return Err(format!("it could not be moved to {}: {e}", dir.display()));
    }
    let at = now_ts();
    // The reason may quote a value from the file: it is redacted like an event.
    let error = events.redact(&r.error).into_owned();
    let doc = json!({"file": shown, "error": error, "hint": r.hint, "reason": r.reason, "at": at, "moved_to": format!("inbox/rejected/{kept}")});
    if let Err(e) = crate::store::atomic::write_json_atomic(&dir.join(format!("{kept}.error.json")), &doc) {
        tracing::error!(file = shown, error = %e, "could not write the rejection's error.json");
    }
    if r.is_security_violation() {
        events.emit(
            None,
            crate::events::Event::SecurityViolation(crate::events::Violation {
                reason: r.reason.to_string(),
                file: Some(shown.to_string()),
                error: Some(r.error.clone()),
                ..Default::default()
            }),
        );
    }
    events.emit(
        None,
        crate::events::Event::TaskRejected {
            file: shown.to_string(),
            reason: r.reason.to_string(),
            error: r.error.clone(),
            hint: r.hint.clone(),
            moved_to: format!("inbox/rejected/{kept}"),
        },
    );
    tracing::warn!(file = shown, reason = r.reason, "rejected: {error}");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AgentKind;
    use std::time::Duration;

    fn rules(home: &Path) -> Rules {
        Rules {
            limits: Limits {
                max_bytes: 1 << 20,
                max_prompt_chars: 1000,
                default_agent: AgentKind::Claude,
                roles: Default::default(),
            },
            home: home.to_path_buf(),
            default_workdir: home.to_path_buf(),
            allowed_roots: vec![home.to_path_buf()],
            owner_only: None,
            writer_of: WriterOf::none(),
        }
    }

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("inbox");
        std::fs::create_dir(&inbox).unwrap();
        (dir, inbox)
    }

    fn set_mtime(path: &Path, ago: Duration) {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - ago).unwrap();
    }

    #[test]
    fn a_changed_file_waits_for_a_quiet_debounce() {
        let (dir, inbox) = setup();
        let debounce = Duration::from_millis(100);
        let mut intake = Intake::new(inbox.clone(), debounce, true);
        let mut queue = Queue::default();
        let t0 = Instant::now();
        std::fs::write(inbox.join("a.md"), "half").unwrap();
        intake.note("a.md", t0, &mut queue);
        assert!(intake.settle(t0 + debounce / 2, &rules(dir.path())).is_empty());
        std::fs::write(inbox.join("a.md"), "half and the rest").unwrap();
        // Due by the clock, but the size changed since it was noted: it starts over.
        assert!(intake.settle(t0 + debounce, &rules(dir.path())).is_empty());
        assert_eq!(intake.settling(), 1);
        let v = intake.settle(t0 + debounce * 3, &rules(dir.path()));
        assert!(
            matches!(&v[..], [Verdict::Accept(a)] if a.title == "half and the rest"),
            "{v:?}"
        );
    }

    #[test]
    fn files_found_by_rescan_get_credit_for_their_age_unless_polling() {
        let (dir, inbox) = setup();
        let debounce = Duration::from_secs(5);
        std::fs::write(inbox.join("old.txt"), "old").unwrap();
        set_mtime(&inbox.join("old.txt"), Duration::from_secs(60));
        std::fs::write(inbox.join("new.txt"), "new").unwrap();
        let now = Instant::now();

        let mut trusting = Intake::new(inbox.clone(), debounce, true);
        trusting.rescan(now, &mut Queue::default()).unwrap();
        let ready = trusting.settle(now, &rules(dir.path()));
        assert_eq!(ready.len(), 1, "only the old file is ready at once");
        assert!(matches!(&ready[0], Verdict::Accept(a) if &*a.queued.name == "old.txt"));

        let mut polling = Intake::new(inbox, debounce, false);
        polling.rescan(now, &mut Queue::default()).unwrap();
        assert!(
            polling.settle(now, &rules(dir.path())).is_empty(),
            "a share's mtime is not trusted"
        );
        assert_eq!(polling.settle(now + debounce, &rules(dir.path())).len(), 2);
    }
}
