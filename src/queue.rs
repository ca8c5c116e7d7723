//! The queue: an ordered view of the accepted files in the inbox.
//!
//! The inbox is the queue (a file there is queued; nothing else is), so this
//! is only the daemon's sorted index over it: priority first, then arrival
//! (the file's modification time, which every daemon sharing the folder sees
//! the same), then name.
//!
//! Per waiting file it keeps what ordering and starting need (name, priority,
//! agent, the repository the task may write to, arrival, size and modification
//! time), about 200 bytes, not the parsed task: a daemon holds 100,000 waiting
//! files in a few tens of megabytes. The claimed file is read and checked
//! again when its task starts.

use crate::config::AgentKind;
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// An accepted task file waiting in the inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    pub name: Arc<str>,
    pub priority: i64,
    pub agent: AgentKind,
    /// The agents it may fall through to ([`AgentKind::bit`] set): it may
    /// start while its own is paused if one of these is not.
    pub fallback: u8,
    /// The repository (or folder) the task may write to, when it is held to
    /// one writer (see `daemon::writers`).
    pub writer: Option<PathBuf>,
    pub arrival: SystemTime,
    /// Size and modification time of the file that was checked: the claim
    /// re-checks only a file that still matches both.
    pub len: u64,
    pub mtime: Option<SystemTime>,
    pub queued_at: jiff::Timestamp,
}

impl Queued {
    /// Whether the file at `path` (the claimed task file, after the rename) is
    /// still the one that was checked: same size and modification time. A
    /// rename keeps both; a rewrite changes at least the time.
    pub fn still_matches(&self, path: &Path) -> bool {
        std::fs::metadata(path)
            .is_ok_and(|m| m.len() == self.len && self.mtime.is_some() && m.modified().ok() == self.mtime)
    }
}

/// What [`Queue::pop_next`] shows of a waiting file to decide whether it may start.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub name: &'a str,
    pub agent: AgentKind,
    /// Its fallback agents ([`Queued::fallback`]).
    pub fallback: u8,
    pub writer: Option<&'a Path>,
}

/// Run order: priority (highest first), arrival (nanoseconds from the Unix
/// epoch), name. Kept small: 100,000 of them are held at once.
type Key = (Reverse<i64>, i64, Arc<str>);

/// A waiting file, as kept: its key holds the name, priority and arrival.
/// 16 bytes: 100,000 of them sit in the run order's tree nodes.
#[derive(Debug)]
struct Waiting {
    /// Milliseconds from the Unix epoch.
    queued_at: i64,
    /// Its size; [`u32::MAX`] for one that large or larger (then it never
    /// matches, and the claim checks the file whole again).
    len: u32,
    /// The writer's index into [`Queue::repos`] (most tasks share a few
    /// repositories; [`NO_WRITER`] for none) in the low 23 bits, the agent's
    /// index into [`AgentKind::ALL`] in the next 3, its fallback agents
    /// ([`AgentKind::bit`]s of the five agent CLIs; never `command`) in the
    /// next 5, and in the top bit whether the modification time was known.
    packed: u32,
}

const NO_WRITER: u32 = (1 << 23) - 1;

/// A queue this small is never compacted ([`Queue::compact`]).
const COMPACT_AFTER: usize = 4096;

impl Waiting {
    fn new(queued_at: i64, len: u64, writer: u32, agent: AgentKind, fallback: u8, mtime_known: bool) -> Self {
        let agent = AgentKind::ALL.iter().position(|a| *a == agent).unwrap_or(0) as u32;
        Self {
            queued_at,
            len: u32::try_from(len).unwrap_or(u32::MAX),
            packed: (writer & NO_WRITER)
                | ((agent & 0x7) << 23)
                | ((u32::from(fallback) & 0x1f) << 26)
                | (u32::from(mtime_known) << 31),
        }
    }
    fn len(&self) -> u64 {
        u64::from(self.len)
    }
    fn writer(&self) -> u32 {
        self.packed & NO_WRITER
    }
    fn agent(&self) -> AgentKind {
        AgentKind::ALL[((self.packed >> 23) & 0x7) as usize % AgentKind::ALL.len()]
    }
    fn fallback(&self) -> u8 {
        ((self.packed >> 26) & 0x1f) as u8
    }
    fn mtime_known(&self) -> bool {
        self.packed >> 31 == 1
    }
}

#[derive(Debug, Default)]
pub struct Queue {
    /// The files that may start, in run order.
    order: BTreeMap<Key, Waiting>,
    /// The files that wait for other tasks to end (`after:`), out of the run
    /// order: a chain of 10,000 is not walked past at every start.
    held: HashMap<Arc<str>, Waiting>,
    /// Every file of both, with its place in the run order.
    by_name: HashMap<Arc<str>, (Reverse<i64>, i64)>,
    repos: Vec<Arc<Path>>,
    repo_ids: HashMap<Arc<Path>, u32>,
    /// Files put in the run order since it was last compacted.
    pushed: usize,
}

/// Nanoseconds from the Unix epoch (negative before it), clamped to `i64`.
pub(crate) fn nanos(t: SystemTime) -> i64 {
    let clamp = |n: u128| i64::try_from(n).unwrap_or(i64::MAX);
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => clamp(d.as_nanos()),
        Err(e) => -clamp(e.duration().as_nanos()),
    }
}

/// The time [`nanos`] gave.
pub(crate) fn time_of(nanos: i64) -> SystemTime {
    let d = std::time::Duration::from_nanos(nanos.unsigned_abs());
    if nanos >= 0 {
        SystemTime::UNIX_EPOCH + d
    } else {
        SystemTime::UNIX_EPOCH - d
    }
}

impl Queue {
    pub fn push(&mut self, q: Queued) {
        let (name, prio_time, waiting) = self.entry(q);
        self.order.insert((prio_time.0, prio_time.1, name.clone()), waiting);
        self.by_name.insert(name, prio_time);
        // Amortized: a compaction walks the whole order, after at least half
        // as many files came in since the last one.
        self.pushed += 1;
        if self.pushed >= COMPACT_AFTER && self.pushed * 2 >= self.order.len() {
            self.compact();
        }
    }

    /// Queues a file that may not start yet: it waits for other tasks
    /// ([`Self::release`] puts it in the run order).
    pub fn hold(&mut self, q: Queued) {
        let (name, prio_time, waiting) = self.entry(q);
        self.held.insert(name.clone(), waiting);
        self.by_name.insert(name, prio_time);
    }

    /// A held file may start now; false if it is not held.
    pub fn release(&mut self, name: &str) -> bool {
        let Some((name, waiting)) = self.held.remove_entry(name) else {
            return false;
        };
        let Some((prio, arrival)) = self.by_name.get(&name).copied() else {
            return false;
        };
        self.order.insert((prio, arrival, name), waiting);
        true
    }

    /// Whether `name` is queued and held.
    pub fn is_held(&self, name: &str) -> bool {
        self.held.contains_key(name)
    }

    fn entry(&mut self, q: Queued) -> (Arc<str>, (Reverse<i64>, i64), Waiting) {
        self.remove(&q.name);
        let writer = q.writer.map_or(NO_WRITER, |repo| self.repo_id(repo));
        let prio_time = (Reverse(q.priority), nanos(q.arrival));
        let waiting = Waiting::new(
            q.queued_at.as_millisecond(),
            q.len,
            writer,
            q.agent,
            q.fallback,
            q.mtime.is_some(),
        );
        (q.name, prio_time, waiting)
    }

    fn repo_id(&mut self, repo: PathBuf) -> u32 {
        if let Some(id) = self.repo_ids.get(repo.as_path()) {
            return *id;
        }
        let repo: Arc<Path> = repo.into();
        let id = u32::try_from(self.repos.len()).unwrap_or(NO_WRITER).min(NO_WRITER);
        self.repos.push(repo.clone());
        self.repo_ids.insert(repo, id);
        id
    }

    fn repo(&self, id: u32) -> Option<&Path> {
        self.repos.get(id as usize).map(|p| &**p)
    }

    fn materialize(&self, (prio, arrival, name): Key, w: Waiting) -> Queued {
        let arrival = time_of(arrival);
        Queued {
            name,
            priority: prio.0,
            agent: w.agent(),
            fallback: w.fallback(),
            writer: self.repo(w.writer()).map(Path::to_path_buf),
            arrival,
            len: w.len(),
            mtime: w.mtime_known().then_some(arrival),
            queued_at: jiff::Timestamp::from_millisecond(w.queued_at).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<Queued> {
        let (name, (prio, arrival)) = self.by_name.remove_entry(name)?;
        let held = self.held.remove(&name);
        let key = (prio, arrival, name);
        let waiting = match held {
            Some(w) => w,
            None => self.order.remove(&key)?,
        };
        let q = self.materialize(key, waiting);
        self.shrink();
        Some(q)
    }

    /// Rebuilds the run order's tree with full nodes. Files mostly arrive in
    /// run order, and a B-tree filled in key order leaves its nodes about
    /// half full: 92 bytes an entry against 50 when full, 4 MB for 100,000
    /// queued files. Collecting a map from its own sorted entries builds it
    /// bottom up with full nodes (`FromIterator`'s bulk build; `append` no
    /// longer does since Rust 1.96). The old tree is freed as it is drained,
    /// so the rebuild's peak is about what the half-full tree took. Linear in
    /// the queue's length: [`Self::push`] calls it once the queue has grown by
    /// half since the last time.
    fn compact(&mut self) {
        self.pushed = 0;
        self.order = std::mem::take(&mut self.order).into_iter().collect();
    }

    /// A map that held a big burst keeps its capacity when emptied: give it back.
    fn shrink(&mut self) {
        if self.by_name.capacity() > 1024 && self.by_name.capacity() > 4 * self.by_name.len() {
            self.by_name.shrink_to_fit();
        }
        if self.held.capacity() > 1024 && self.held.capacity() > 4 * self.held.len() {
            self.held.shrink_to_fit();
        }
        if self.order.is_empty() && self.held.is_empty() && !self.repos.is_empty() {
            self.repos.clear();
            self.repo_ids.clear();
        }
    }

    /// Whether `name` is queued (held or not).
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The queue's own copy of `name`, if it waits.
    pub fn shared_name(&self, name: &str) -> Option<Arc<str>> {
        self.by_name.get_key_value(name).map(|(n, _)| n.clone())
    }

    /// Size and modification time of the queued file `name` when it was checked.
    pub fn stamp(&self, name: &str) -> Option<(u64, Option<SystemTime>)> {
        let (name, (prio, arrival)) = self.by_name.get_key_value(name)?;
        let w = match self.held.get(name) {
            Some(w) => w,
            None => self.order.get(&(*prio, *arrival, name.clone()))?,
        };
        Some((w.len(), w.mtime_known().then(|| time_of(*arrival))))
    }

    /// Takes the best entry that may start now (its agent is not paused, its
    /// repository has no other writer, ...); the others keep their places.
    pub fn pop_next(&mut self, mut may_start: impl FnMut(Candidate<'_>) -> bool) -> Option<Queued> {
        let key = self
            .order
            .iter()
            .find(|((_, _, name), w)| {
                may_start(Candidate {
                    name,
                    agent: w.agent(),
                    fallback: w.fallback(),
                    writer: self.repo(w.writer()),
                })
            })?
            .0
            .2
            .clone();
        self.remove(&key)
    }

    /// Every queued file, held ones included.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(|n| &**n)
    }

    /// The held files' names, in no order.
    pub fn held_names(&self) -> impl Iterator<Item = &str> + Clone {
        self.held.keys().map(|n| &**n)
    }

    /// Names in run order (held files are not in it).
    pub fn ordered(&self) -> impl Iterator<Item = &str> + Clone {
        self.order.keys().map(|(_, _, n)| &**n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn q(name: &str, priority: i64, agent: AgentKind, secs: u64) -> Queued {
        Queued {
            name: name.into(),
            priority,
            agent,
            fallback: 0,
            writer: None,
            arrival: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            len: 0,
            mtime: None,
            queued_at: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    /// Compacting keeps every file, its place and what it says (what it
    /// saves is measured by `bench/bench_memory.py`).
    #[test]
    fn compacting_keeps_the_run_order_and_every_entry() {
        let mut queue = Queue::default();
        // Past COMPACT_AFTER: compacted once on the way in, once by hand.
        for i in 0..5000u64 {
            let mut f = q(&format!("t{i:04}.md"), (i % 3) as i64, AgentKind::Codex, 10_000 - i);
            f.len = i;
            queue.push(f);
        }
        queue.hold(q("held.md", 0, AgentKind::Claude, 1));
        let before: Vec<String> = queue.ordered().map(String::from).collect();
        queue.compact();
        let after: Vec<String> = queue.ordered().map(String::from).collect();
        assert_eq!(before, after);
        assert_eq!(queue.len(), 5001);
        assert!(queue.is_held("held.md"));
        assert_eq!(queue.stamp("t0042.md").map(|s| s.0), Some(42));
        let first = queue.pop_next(|_| true).unwrap();
        assert_eq!(
            (first.name.as_ref(), first.agent),
            (before[0].as_str(), AgentKind::Codex)
        );
        // Nothing to do for a tiny queue.
        let mut one = Queue::default();
        one.push(q("a.md", 0, AgentKind::Claude, 1));
        one.compact();
        assert_eq!(one.ordered().collect::<Vec<_>>(), ["a.md"]);
    }

    /// A held file is queued (counted, stamped, removable) but never offered
    /// to start until it is released, and then in its place of the run order.
    #[test]
    fn held_files_wait_out_of_the_run_order_until_released() {
        let mut queue = Queue::default();
        queue.push(q("late.md", 0, AgentKind::Claude, 9));
        queue.hold(q("first.md", 0, AgentKind::Claude, 1));
        assert_eq!((queue.len(), queue.is_held("first.md")), (2, true));
        assert!(queue.stamp("first.md").is_some());
        assert_eq!(queue.ordered().collect::<Vec<_>>(), ["late.md"]);
        assert!(queue.release("first.md") && !queue.release("first.md"));
        assert_eq!(queue.ordered().collect::<Vec<_>>(), ["first.md", "late.md"]);
        queue.hold(q("other.md", 0, AgentKind::Claude, 2));
        assert_eq!(queue.pop_next(|_| true).map(|q| q.name), Some("first.md".into()));
        assert_eq!(queue.remove("other.md").map(|q| q.name), Some("other.md".into()));
        assert!(!queue.is_held("other.md"));
        assert_eq!(queue.len(), 1);
    }

    /// The claim re-checks the very file that was checked only: a rename keeps
    /// the match, a rewrite breaks it.
    #[test]
    fn still_matches_only_the_checked_file() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("a.yaml");
        std::fs::write(&inbox, "command: \"true\"\n").unwrap();
        let meta = std::fs::metadata(&inbox).unwrap();
        let checked = Queued {
            len: meta.len(),
            mtime: meta.modified().ok(),
            ..q("a.yaml", 0, AgentKind::Command, 0)
        };
        let claimed = dir.path().join("task.yaml");
        std::fs::rename(&inbox, &claimed).unwrap();
        assert!(checked.still_matches(&claimed));
        // Same length, other content, later modification time.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&claimed, "command: \"echo\"\n").unwrap();
        assert!(!checked.still_matches(&claimed));
        assert!(!checked.still_matches(&dir.path().join("gone.yaml")));
        let unknown_time = Queued { mtime: None, ..checked };
        assert!(!unknown_time.still_matches(&claimed));
    }

    #[test]
    fn priority_then_arrival_then_name_skipping_paused_agents() {
        let mut queue = Queue::default();
        queue.push(q("late-normal", 0, AgentKind::Claude, 5));
        queue.push(q("early-normal", 0, AgentKind::Claude, 1));
        queue.push(q("high", 10, AgentKind::Claude, 9));
        queue.push(q("low-cmd", -10, AgentKind::Command, 0));
        queue.push(q("b-same", 0, AgentKind::Claude, 3));
        queue.push(q("a-same", 0, AgentKind::Claude, 3));
        let order: Vec<_> = queue.ordered().collect();
        assert_eq!(
            order,
            ["high", "early-normal", "a-same", "b-same", "late-normal", "low-cmd"]
        );
        let next = queue.pop_next(|c| c.agent != AgentKind::Claude).unwrap();
        assert_eq!(&*next.name, "low-cmd");
        assert!(queue.pop_next(|c| c.agent != AgentKind::Claude).is_none());
        assert_eq!(&*queue.pop_next(|_| true).unwrap().name, "high");
        // Re-pushing replaces, never duplicates.
        queue.push(q("a-same", 10, AgentKind::Claude, 3));
        assert_eq!(queue.len(), 4);
        assert_eq!(queue.ordered().next(), Some("a-same"));
    }

    #[test]
    fn arrival_times_round_trip_to_the_nanosecond_before_and_after_the_epoch() {
        for t in [
            SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789),
            SystemTime::UNIX_EPOCH - Duration::from_nanos(86_400_000_000_007),
            SystemTime::UNIX_EPOCH,
        ] {
            assert_eq!(time_of(nanos(t)), t);
        }
        assert!(nanos(SystemTime::UNIX_EPOCH - Duration::from_secs(1)) < nanos(SystemTime::UNIX_EPOCH));
    }

    /// What goes in comes out: the compact form loses nothing the daemon uses.
    #[test]
    fn an_entry_comes_out_as_it_went_in() {
        let mut queue = Queue::default();
        let mtime = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let a = Queued {
            writer: Some("/repos/one".into()),
            len: 42,
            mtime: Some(mtime),
            arrival: mtime,
            queued_at: jiff::Timestamp::from_millisecond(1_700_000_001_234).unwrap(),
            ..q("a.md", 5, AgentKind::Cline, 0)
        };
        let b = Queued {
            writer: Some("/repos/one".into()),
            ..q("b.md", 0, AgentKind::Claude, 7)
        };
        queue.push(a.clone());
        queue.push(b.clone());
        assert_eq!(queue.stamp("a.md"), Some((42, Some(mtime))));
        assert_eq!(queue.stamp("b.md"), Some((0, None)), "an unknown mtime stays unknown");
        let mut seen = Vec::new();
        let popped = queue
            .pop_next(|c| {
                seen.push((c.name.to_string(), c.writer.map(Path::to_path_buf)));
                c.name == "b.md"
            })
            .unwrap();
        assert_eq!(popped, b);
        assert_eq!(
            seen,
            [
                ("a.md".to_string(), Some(PathBuf::from("/repos/one"))),
                ("b.md".to_string(), Some(PathBuf::from("/repos/one")))
            ]
        );
        assert_eq!(queue.remove("a.md"), Some(a));
        assert!(queue.is_empty() && queue.shared_name("a.md").is_none() && queue.stamp("a.md").is_none());
    }

    #[test]
    fn a_waiting_entry_keeps_what_it_was_given_in_16_bytes() {
        assert_eq!(size_of::<Waiting>(), 16);
        for agent in AgentKind::ALL {
            for (writer, mtime, fallback) in [(0, true, 0b11110), (NO_WRITER, false, 0), (12_345, true, 0b10101)] {
                let w = Waiting::new(1_700_000_001_234, 42, writer, agent, fallback, mtime);
                assert_eq!(
                    (w.agent(), w.fallback(), w.writer(), w.mtime_known(), w.len()),
                    (agent, fallback, writer, mtime, 42)
                );
            }
        }
        // A size past u32 never matches a real file's: the claim reads it again.
        let huge = Waiting::new(0, 5 << 30, NO_WRITER, AgentKind::Command, 0, true);
        assert_eq!(huge.len(), u64::from(u32::MAX));
    }
}
