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

use crate::queue::{Queue, Queued};
use crate::store::layout::INBOX_SUBDIRS;
use crate::task::Rejection;
use crate::task::TaskSpec;
use crate::task::parse::{Limits, is_ignored_name};
use std::collections::HashMap;
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
    /// The agents of an accepted task's list it could fall through to
    /// ([`crate::plan::Plan::reachable_fallbacks`]).
    pub fallbacks_of: FallbacksOf,
}

/// See [`Rules::fallbacks_of`]: decided by the daemon, which has the config.
#[derive(Clone)]
pub struct FallbacksOf(pub Arc<FallbacksFn>);

/// See [`FallbacksOf`].
pub type FallbacksFn = dyn Fn(&TaskSpec, &Path) -> u8 + Send + Sync;

impl FallbacksOf {
    /// Every agent of the list (no config to ask).
    #[cfg(test)]
    pub fn listed() -> Self {
        Self(Arc::new(|spec, _| spec.fallback.iter().fold(0, |m, a| m | a.bit())))
    }
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
    #[cfg(test)]
    pub fn none() -> Self {
        Self(Arc::new(|_, _| None))
    }
}

impl std::fmt::Debug for WriterOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriterOf(..)")
    }
}

impl std::fmt::Debug for FallbacksOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FallbacksOf(..)")
    }
}

/// A file's identity for "has it changed?": its size and modification time
/// (nanoseconds from the Unix epoch; [`NO_MTIME`] where the OS gives none).
/// 16 bytes: a big inbox holds 100,000 of them while it is taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime: i64,
}

const NO_MTIME: i64 = i64::MIN;

impl Stamp {
    fn mtime(&self) -> Option<SystemTime> {
        (self.mtime != NO_MTIME).then(|| crate::queue::time_of(self.mtime))
    }
}

/// A file still settling: 24 bytes, for the same reason as [`Stamp`].
#[derive(Debug)]
struct Settling {
    stamp: Stamp,
    /// When it last changed, in nanoseconds from the intake's `epoch`, times
    /// two; plus one while a writer holds it open (only tracked where the
    /// watcher reports closes).
    changed: i64,
}

/// `at` in nanoseconds from `epoch` (negative before it), within ±146 years.
fn nanos_from(epoch: Instant, at: Instant) -> i64 {
    const LIMIT: i64 = i64::MAX / 2;
    let clamp = |n: u128| i64::try_from(n).unwrap_or(LIMIT).min(LIMIT);
    match at.checked_duration_since(epoch) {
        Some(d) => clamp(d.as_nanos()),
        None => -clamp(epoch.duration_since(at).as_nanos()),
    }
}

fn instant_at(epoch: Instant, nanos: i64) -> Instant {
    let d = std::time::Duration::from_nanos(nanos.unsigned_abs());
    if nanos >= 0 {
        epoch + d
    } else {
        epoch.checked_sub(d).unwrap_or(epoch)
    }
}

impl Settling {
    fn new(stamp: Stamp, changed_at: Instant, open_for_writing: bool, epoch: Instant) -> Self {
        Self {
            stamp,
            changed: nanos_from(epoch, changed_at) * 2 + i64::from(open_for_writing),
        }
    }

    fn changed_at(&self, epoch: Instant) -> Instant {
        instant_at(epoch, self.changed.div_euclid(2))
    }

    fn open_for_writing(&self) -> bool {
        self.changed.rem_euclid(2) == 1
    }

    fn set(&mut self, changed_at: Instant, open_for_writing: bool, epoch: Instant) {
        *self = Self::new(self.stamp, changed_at, open_for_writing, epoch);
    }

    /// When it may be read: one debounce after its last change, or, while a
    /// writer holds it open, once the writer gave up on it.
    fn due_at(&self, debounce: std::time::Duration, epoch: Instant) -> Instant {
        if self.open_for_writing() {
            self.changed_at(epoch) + OPEN_WRITER_LIMIT
        } else {
            self.changed_at(epoch) + debounce
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
    /// The parsed task (its title is the event's; the daemon may keep it
    /// for the claim: `daemon::judged`).
    pub spec: TaskSpec,
    /// The bytes it was parsed from: a kept task is used only for these.
    pub bytes: Vec<u8>,
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
    native_events: bool,
    /// The watcher reports closes: wait for a writer's close.
    close_events: bool,
    /// Entries whose names are not valid Unicode, found by the last rescan.
    bad_names: Vec<PathBuf>,
    /// What [`Settling`] counts its times from.
    epoch: Instant,
    /// Rescans so far (every [`FULL_RESCAN_EVERY`]th one looks names up).
    rescans: u32,
}

/// A rescan that saw as many known files as there are skips looking each
/// up, except every this many: a share that lists one entry twice could
/// otherwise hide another that vanished.
const FULL_RESCAN_EVERY: u32 = 16;

fn stat(path: &Path) -> Option<(std::fs::Metadata, Stamp)> {
    let m = std::fs::symlink_metadata(path).ok()?;
    let stamp = Stamp {
        len: m.len(),
        mtime: m.modified().map_or(NO_MTIME, crate::queue::nanos),
    };
    Some((m, stamp))
}

fn relevant(name: &str) -> bool {
    !is_ignored_name(name) && !INBOX_SUBDIRS.contains(&name)
}

impl Intake {
    /// Files noted from now on settle after `debounce` (a reloaded config).
    pub fn set_debounce(&mut self, debounce: std::time::Duration) {
        self.debounce = debounce;
    }

    pub fn new(inbox: PathBuf, debounce: std::time::Duration, native_events: bool) -> Self {
        Self {
            inbox,
            debounce,
            settling: HashMap::new(),
            native_events,
            close_events: false,
            bad_names: Vec::new(),
            epoch: Instant::now(),
            rescans: 0,
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
            s.set(s.changed_at(self.epoch), true, self.epoch);
        }
    }

    /// The writer of `name` closed it: it settles one debounce from now.
    pub fn note_closed(&mut self, name: &str, now: Instant, queue: &mut Queue) {
        self.note(name, now, queue);
        if let Some(s) = self.settling.get_mut(name) {
            s.set(now, false, self.epoch);
        }
    }

    /// When a file first seen by a rescan last changed, as far as we may tell.
    fn first_seen(&self, stamp: Stamp, now: Instant) -> Instant {
        if !self.native_events {
            return now;
        }
        let age = stamp
            .mtime()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .unwrap_or_default();
        now.checked_sub(age.min(self.debounce)).unwrap_or(now)
    }

    /// Files still settling.
    pub fn settling(&self) -> usize {
        self.settling.len()
    }

    /// Whether `name` is settling.
    pub fn is_settling(&self, name: &str) -> bool {
        self.settling.contains_key(name)
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
            if checked == (stamp.len, stamp.mtime()) {
                return;
            }
            queue.remove(name);
        }
        let open_for_writing = self.settling.get(name).is_some_and(Settling::open_for_writing);
        self.settling
            .insert(name.into(), Settling::new(stamp, now, open_for_writing, self.epoch));
    }

    /// Lists the inbox: new files start settling, vanished ones are forgotten,
    /// queued ones that changed go back to settling.
    pub fn rescan(&mut self, now: Instant, queue: &mut Queue) -> std::io::Result<()> {
        // Known files seen again: when that is all of them, none vanished and
        // nothing more is done (most rescans). Otherwise a second listing
        // says which are still there.
        let known = queue.len() + self.settling.len();
        let mut seen = 0;
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
            if queue.contains(&name) {
                // With the OS's events, a queued file that is written to is
                // noted when it happens; a stat of every waiting file at every
                // rescan (100,000 of them: a fifth of a core) would find
                // nothing new. Polling has only the rescan to notice it. (A
                // change missed anyway is found at the claim, which reads and
                // checks the file again.)
                if !self.native_events {
                    self.note(&name, now, queue);
                }
                seen += 1;
                continue;
            }
            if self.settling.contains_key(name.as_str()) {
                seen += 1;
                continue;
            }
            if let Some((_, stamp)) = stat(&entry.path()) {
                let changed_at = self.first_seen(stamp, now);
                self.settling
                    .insert(name.into(), Settling::new(stamp, changed_at, false, self.epoch));
            }
        }
        self.rescans = self.rescans.wrapping_add(1);
        if seen == known && !self.rescans.is_multiple_of(FULL_RESCAN_EVERY) {
            return Ok(());
        }
        self.forget_vanished(queue)
    }

    /// Forgets the queued and settling files that are no longer in the inbox.
    /// The names still there are kept as the shared strings the queue and the
    /// settling map hold, in a sorted list: 16 bytes a name, where a hash set
    /// (and the copies it grows through) took three times that at the
    /// daemon's peak with 100,000 files queued.
    fn forget_vanished(&mut self, queue: &mut Queue) -> std::io::Result<()> {
        let mut present: Vec<Arc<str>> = Vec::with_capacity(queue.len() + self.settling.len());
        for entry in std::fs::read_dir(&self.inbox)?.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let shared = queue
                .shared_name(&name)
                .or_else(|| self.settling.get_key_value(name.as_str()).map(|(n, _)| n.clone()));
            present.extend(shared);
        }
        present.sort_unstable();
        let is_present = |n: &str| present.binary_search_by(|p| (**p).cmp(n)).is_ok();
        self.settling.retain(|n, _| is_present(n));
        let gone: Vec<String> = queue.names().filter(|n| !is_present(n)).map(str::to_string).collect();
        for n in gone {
            queue.remove(&n);
        }
        Ok(())
    }

    /// When the next file may have settled.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.settling
            .values()
            .map(|s| s.due_at(self.debounce, self.epoch))
            .min()
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
        let (debounce, epoch) = (self.debounce, self.epoch);
        let mut again = Vec::new();
        loop {
            // A few thousand due files at a time move out of the map (the rest
            // stay in it until the next round): never a list of all 100,000.
            // Files to look at again go back after the last round.
            let due: Vec<(Arc<str>, Settling)> = self
                .settling
                .extract_if(|_, s| s.due_at(debounce, epoch) <= now)
                .take(JUDGED_AT_ONCE)
                .collect();
            if due.is_empty() {
                break;
            }
            // Given back as it empties, not only at the end: 100,000 waiting
            // files fill the queue while they leave this map, and the two
            // full at once were the daemon's peak.
            if self.settling.capacity() > 1024 && self.settling.capacity() >= 2 * self.settling.len() {
                self.settling.shrink_to_fit();
            }
            let mut settled = Vec::with_capacity(due.len());
            for (name, mut s) in due {
                let Some((meta, stamp)) = stat(&self.inbox.join(&*name)) else {
                    continue;
                };
                if s.stamp != stamp {
                    s = Settling::new(stamp, now, s.open_for_writing(), epoch);
                    again.push((name, s));
                    continue;
                }
                settled.push((name, meta, stamp));
            }
            for verdict in judge_all(&self.inbox, settled, rules) {
                match verdict {
                    Verdict::Moved(name) => {
                        if let Some((_, stamp)) = stat(&self.inbox.join(&*name)) {
                            again.push((name, Settling::new(stamp, now, false, epoch)));
                        }
                    }
                    v => each(v),
                }
            }
        }
        self.settling.extend(again);
        // A map that held a burst keeps its capacity when emptied: give it back.
        if self.settling.capacity() > 1024 && self.settling.capacity() > 4 * self.settling.len() {
            self.settling.shrink_to_fit();
        }
    }
}

/// How many settled files are judged (and handed on) at once.
const JUDGED_AT_ONCE: usize = 1024;

mod judge;
mod reject;
#[cfg(test)]
mod tests;

pub use crate::store::read::read_capped;
pub use judge::file_rejection;
use judge::judge_all;
pub use reject::{reject, reject_path};
