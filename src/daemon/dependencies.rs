//! Queued files that wait for other tasks (`after:`, `after_any:`).
//!
//! A file that waits stays in the inbox (the inbox is the queue), held out
//! of the run order ([`crate::queue::Queue::hold`]). This is the daemon's
//! view of what each held file still waits for, and of who waits for what,
//! so that the end of one task wakes exactly its dependents: a chain of
//! 10,000 costs a map lookup per link, not a walk of the queue.
//!
//! Everything here can be rebuilt from the files ([`crate::deps`] reads
//! them), which is how waiting survives a restart and is shared by several
//! daemons: each holds the same files; the first to claim a released one
//! runs it, as for any file. Ends it learns of itself (its own claims,
//! finishes and rejections) wake dependents at once; ends in other daemons
//! are found by [`Dependencies::look`], which the loop calls every
//! [`LOOK_EVERY`] while anything waits for a task that is not its own.

use crate::deps::{self, Target};
use crate::store::Home;
use crate::store::record::ErrorInfo;
use crate::task::Rejection;
use crate::vocab::{ErrorKind, Status};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// How often tasks of other daemons (and files that left the inbox
/// unseen) are looked at, while a held file waits for one.
pub const LOOK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// What becomes of a file the intake accepted.
#[derive(Debug)]
pub enum Admission {
    /// It waits for nothing (any more): it may start.
    Ready,
    /// Hold it: it waits.
    Wait,
    /// It can never run (a task it needs failed): end it, as cancelled.
    Doomed(ErrorInfo),
    /// Reject these files (it and, for a cycle, the held files of the cycle).
    Reject(Rejection, Vec<Arc<str>>),
}

/// A held file whose wait is over.
#[derive(Debug, PartialEq)]
pub enum Decided {
    Ready(Arc<str>),
    Doomed(Arc<str>, ErrorInfo),
}

/// One thing a held file waits for.
#[derive(Debug, Clone)]
struct Need {
    target: Target,
    /// `after` (it must succeed) rather than `after_any`.
    success: bool,
    /// As the task file names it, for messages.
    reference: String,
    /// When it was admitted: a file it waits for that leaves the inbox
    /// unseen became a task claimed after this, never an older one of the
    /// same name (less [`CLOCK_SKEW`], for daemons on several machines).
    since: jiff::Timestamp,
}

/// How far the clocks of machines sharing a home may disagree.
const CLOCK_SKEW: jiff::SignedDuration = jiff::SignedDuration::from_secs(600);

#[derive(Debug, Default)]
pub struct Dependencies {
    /// Per held file, what it still waits for.
    needs: HashMap<Arc<str>, Vec<Need>>,
    /// Per target, the held files that wait for it.
    waiters: HashMap<Target, Vec<Arc<str>>>,
    /// Per file, the ids of the tasks it waited for that ended as it needed,
    /// until it is claimed ([`Dependencies::take_met`]): its context, without
    /// looking for them again.
    met: HashMap<Arc<str>, Vec<String>>,
    /// The held files with a start time to come (`not_before`, `delay`), by time.
    timers: std::collections::BTreeSet<(SystemTime, Arc<str>)>,
    starts: HashMap<Arc<str>, SystemTime>,
    /// The ids among the targets, shared with the runners
    /// ([`super::Shared::awaited`]).
    awaited: Arc<Mutex<HashSet<String>>>,
}

impl Dependencies {
    /// Keeps the ids waited for in `awaited` too.
    pub fn new(awaited: Arc<Mutex<HashSet<String>>>) -> Self {
        Self {
            awaited,
            ..Self::default()
        }
    }

    /// `target` has a waiter now (`true`) or none any more.
    fn mark(&self, target: &Target, waited: bool) {
        if let Target::Task(id) = target {
            let mut set = self.awaited.lock().unwrap_or_else(|e| e.into_inner());
            if waited {
                set.insert(id.clone());
            } else {
                set.remove(id);
            }
        }
    }

    /// Nothing is held, timed or remembered.
    fn is_idle(&self) -> bool {
        self.needs.is_empty() && self.starts.is_empty() && self.met.is_empty()
    }

    /// How many files wait.
    pub fn len(&self) -> usize {
        self.needs.len()
    }

    /// What the accepted file `name`, which arrived at `arrival`, waits for,
    /// judged from the home now.
    pub fn admit(
        &mut self,
        home: &Home,
        name: &Arc<str>,
        deps: &crate::task::Dependencies,
        arrival: SystemTime,
    ) -> Admission {
        // A burst of files that wait for nothing, while nothing waits: no
        // lookups at all.
        if deps.is_empty() && deps.not_before.is_none() && deps.delay.is_none() && self.is_idle() {
            return Admission::Ready;
        }
        self.forget(name);
        let start = deps.start_to_come(arrival);
        if deps.is_empty() {
            return match start {
                None => Admission::Ready,
                Some(t) => {
                    self.start_at(name, t);
                    Admission::Wait
                }
            };
        }
        let mut needs = Vec::new();
        let mut doomed = None;
        for (reference, success) in deps.each() {
            let Some(target) = deps::resolve(home, reference) else {
                // A file that was taken off the queue or rejected never ran:
                // an end for `after_any`, a failure for `after`.
                let gone = [
                    (
                        home.cancelled(),
                        "was taken off the queue (inbox/cancelled/), so it never ran",
                    ),
                    (
                        home.rejected(),
                        "was rejected (see inbox/rejected/ for why), so it never ran",
                    ),
                ]
                .into_iter()
                .find(|(dir, _)| std::fs::symlink_metadata(dir.join(reference)).is_ok());
                match gone {
                    Some(_) if !success => continue,
                    Some((_, what)) => {
                        doomed.get_or_insert_with(|| never_ran(reference, what));
                        continue;
                    }
                    None => return Admission::Reject(unknown(reference), vec![name.clone()]),
                }
            };
            if let Target::Task(id) = &target
                && let Some(status) = deps::ended(home, id)
            {
                if !deps::met(status, success) {
                    doomed.get_or_insert_with(|| failed(reference, id, status));
                }
                self.met.entry(name.clone()).or_default().push(id.clone());
                continue;
            }
            needs.push(Need {
                target,
                success,
                reference: reference.to_string(),
                since: jiff::Timestamp::now() - CLOCK_SKEW,
            });
        }
        if let Some(e) = doomed {
            return Admission::Doomed(e);
        }
        if let Some(t) = start {
            self.start_at(name, t);
        }
        if needs.is_empty() {
            return match start {
                None => Admission::Ready,
                Some(_) => Admission::Wait,
            };
        }
        for n in &needs {
            self.mark(&n.target, true);
            self.waiters.entry(n.target.clone()).or_default().push(name.clone());
        }
        self.needs.insert(name.clone(), needs);
        if let Some(cycle) = self.cycle_through(name) {
            for n in &cycle {
                self.forget(n);
            }
            let path: Vec<&str> = cycle.iter().map(|n| &**n).chain([&**name]).collect();
            let r = Rejection::new(
                "dependency_cycle",
                format!("the tasks wait for each other in a circle: {}", path.join(" -> ")),
                "none of them can ever start: remove one of the `after:` entries and drop the files in again",
            );
            return Admission::Reject(r, cycle);
        }
        Admission::Wait
    }

    fn start_at(&mut self, name: &Arc<str>, t: SystemTime) {
        self.timers.insert((t, name.clone()));
        self.starts.insert(name.clone(), t);
    }

    /// The earliest start time still to come.
    pub fn next_start(&self) -> Option<SystemTime> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// The held files whose start time came by `now`: ready, unless they
    /// still wait for tasks.
    pub fn due(&mut self, now: SystemTime) -> Vec<Decided> {
        let mut decided = Vec::new();
        while let Some((t, _)) = self.timers.first()
            && *t <= now
        {
            let Some((_, name)) = self.timers.pop_first() else {
                break;
            };
            self.starts.remove(&name);
            if !self.needs.contains_key(&name) {
                decided.push(Decided::Ready(name));
            }
        }
        decided
    }

    /// The held files of a cycle through `start` (`start` first), if it closes one.
    fn cycle_through(&self, start: &Arc<str>) -> Option<Vec<Arc<str>>> {
        // Nobody waits for it yet: it closes no circle (a chain dropped in
        // order costs nothing here).
        if !self.waiters.contains_key(&Target::File(start.to_string())) {
            return None;
        }
        let mut came_from: HashMap<Arc<str>, Arc<str>> = HashMap::new();
        let mut seen: HashSet<Arc<str>> = HashSet::from([start.clone()]);
        let mut stack = vec![start.clone()];
        while let Some(at) = stack.pop() {
            for need in self.needs.get(&at).into_iter().flatten() {
                let Target::File(f) = &need.target else { continue };
                if **f == **start {
                    // Walk back from `at` to `start`.
                    let mut path = vec![at.clone()];
                    while let Some(prev) = came_from.get(path.last()?) {
                        path.push(prev.clone());
                    }
                    path.reverse();
                    return Some(path);
                }
                let Some((next, _)) = self.needs.get_key_value(f.as_str()) else {
                    continue;
                };
                if seen.insert(next.clone()) {
                    came_from.insert(next.clone(), at.clone());
                    stack.push(next.clone());
                }
            }
        }
        None
    }

    /// The ids of the tasks `name` waited for, once it is claimed (`None`:
    /// this daemon did not see them end, and the runner looks them up).
    pub fn take_met(&mut self, name: &str) -> Option<Vec<String>> {
        self.met.remove(name)
    }

    /// `name` is no longer queued here (claimed, changed, gone): it waits for nothing.
    pub fn forget(&mut self, name: &str) {
        self.met.remove(name);
        if let Some((name, t)) = self.starts.remove_entry(name) {
            self.timers.remove(&(t, name));
        }
        self.forget_needs(name);
    }

    fn forget_needs(&mut self, name: &str) {
        let Some(needs) = self.needs.remove(name) else {
            return;
        };
        for n in needs {
            if let Some(w) = self.waiters.get_mut(&n.target) {
                w.retain(|x| **x != *name);
                if w.is_empty() {
                    self.waiters.remove(&n.target);
                    self.mark(&n.target, false);
                }
            }
        }
    }

    /// This daemon claimed inbox file `name` as task `id`: who waited for the
    /// file now waits for the task.
    pub fn claimed(&mut self, name: &str, id: &str) {
        if self.waiters.is_empty() {
            return;
        }
        let Some(waiting) = self.waiters.remove(&Target::File(name.to_string())) else {
            return;
        };
        let task = Target::Task(id.to_string());
        self.mark(&task, true);
        for w in &waiting {
            for n in self.needs.get_mut(w).into_iter().flatten() {
                if n.target == Target::File(name.to_string()) {
                    n.target = task.clone();
                }
            }
        }
        self.waiters.entry(task).or_default().extend(waiting);
    }

    /// Task `id` ended with `status`: its dependents, decided where they can be.
    pub fn ended(&mut self, id: &str, status: Status) -> Vec<Decided> {
        if self.waiters.is_empty() {
            return Vec::new();
        }
        self.settle(&Target::Task(id.to_string()), |reference, success| {
            (!deps::met(status, success)).then(|| failed(reference, id, status))
        })
    }

    /// Inbox file `name` was rejected: whoever needed it to succeed cannot
    /// start; whoever waited for its end (`after_any`) may.
    pub fn rejected(&mut self, name: &str) -> Vec<Decided> {
        self.settle(&Target::File(name.to_string()), |reference, success| {
            success.then(|| never_ran(reference, "was rejected (see inbox/rejected/ for why), so it never ran"))
        })
    }

    /// Forgets the files that are no longer held in the queue (deleted,
    /// changed, claimed elsewhere), so nothing is looked at for them.
    pub fn keep_only(&mut self, held: impl Fn(&str) -> bool) {
        let gone: Vec<Arc<str>> = self
            .needs
            .keys()
            .chain(self.starts.keys())
            .filter(|n| !held(n))
            .cloned()
            .collect();
        for n in gone {
            self.forget(&n);
        }
    }

    /// Takes `target` off every waiter: `verdict` says, per waiter's
    /// reference and need, whether that dooms it.
    fn settle(&mut self, target: &Target, verdict: impl Fn(&str, bool) -> Option<ErrorInfo>) -> Vec<Decided> {
        let Some(waiting) = self.waiters.remove(target) else {
            return Vec::new();
        };
        self.mark(target, false);
        let mut decided = Vec::new();
        for w in waiting {
            let Some(needs) = self.needs.get_mut(&w) else { continue };
            let mut doom = None;
            needs.retain(|n| {
                if n.target != *target {
                    return true;
                }
                if doom.is_none() {
                    doom = verdict(&n.reference, n.success);
                }
                false
            });
            if let Some(e) = doom {
                self.forget(&w);
                decided.push(Decided::Doomed(w, e));
                continue;
            }
            if let Target::Task(id) = target {
                self.met.entry(w.clone()).or_default().push(id.clone());
            }
            if needs.is_empty() {
                self.needs.remove(&w);
                // A start time to come releases it then ([`Self::due`]).
                if !self.starts.contains_key(&w) {
                    decided.push(Decided::Ready(w));
                }
            }
        }
        decided
    }

    /// Looks at the targets `local` does not vouch for, in the home: a file
    /// another daemon claimed now names its task; a task that ended (here
    /// or elsewhere) decides its waiters; a file that left the inbox without
    /// becoming a task (rejected, deleted) dooms them.
    pub fn look(&mut self, home: &Home, local: impl Fn(&Target) -> bool) -> Vec<Decided> {
        let targets: Vec<Target> = self.waiters.keys().filter(|t| !local(t)).cloned().collect();
        let mut decided = Vec::new();
        for t in targets {
            match &t {
                Target::File(name) => {
                    if deps::in_inbox(home, name) {
                        continue;
                    }
                    // The earliest admission among its waiters bounds which task it became.
                    let since = self
                        .waiters
                        .get(&t)
                        .into_iter()
                        .flatten()
                        .filter_map(|w| self.needs.get(w))
                        .flatten()
                        .filter(|n| n.target == t)
                        .map(|n| n.since)
                        .min();
                    match deps::newest_task_from(home, name, since) {
                        Some(id) => {
                            self.claimed(name, &id);
                            if let Some(status) = deps::ended(home, &id) {
                                decided.extend(self.ended(&id, status));
                            }
                        }
                        None if home.inbox().join("rejected").join(name).exists() => {
                            decided.extend(self.rejected(name));
                        }
                        None => decided.extend(self.settle(&t, |reference, success| {
                            success.then(|| {
                                never_ran(
                                    reference,
                                    "left the inbox without being run (deleted, or cancelled into inbox/cancelled/?)",
                                )
                            })
                        })),
                    }
                }
                Target::Task(id) => {
                    if let Some(status) = deps::ended(home, id) {
                        decided.extend(self.ended(id, status));
                    } else if home.own_task_dir(id).is_none() {
                        decided.extend(self.settle(&t, |reference, success| {
                            success.then(|| never_ran(reference, "is no longer in results/ (removed?)"))
                        }));
                    }
                }
            }
        }
        decided
    }

    /// What `name` still waits for, as its file names them.
    #[cfg(test)]
    fn waiting_for(&self, name: &str) -> Vec<String> {
        self.needs
            .get(name)
            .map(|n| n.iter().map(|n| n.target.to_string()).collect())
            .unwrap_or_default()
    }
}

fn unknown(reference: &str) -> Rejection {
    Rejection::new(
        "unknown_dependency",
        format!(
            "`{reference}` names no task: no file of that name is in the inbox, and no task in results/ has that id or came from such a file"
        ),
        "check the name (with its extension) or the id (`orchestrator list` shows them); files dropped together may name each other",
    )
}

fn failed(reference: &str, id: &str, status: Status) -> ErrorInfo {
    let shown = if reference == id {
        id.to_string()
    } else {
        format!("{reference} (task {id})")
    };
    ErrorInfo {
        kind: ErrorKind::DependencyFailed,
        message: format!("it waited for {shown}, which {status}; it never ran"),
        suggestion: ErrorKind::DependencyFailed.suggestion().into(),
    }
}

fn never_ran(reference: &str, what: &str) -> ErrorInfo {
    ErrorInfo {
        kind: ErrorKind::DependencyFailed,
        message: format!("it waited for {reference}, which {what}; it never ran"),
        suggestion: ErrorKind::DependencyFailed.suggestion().into(),
    }
}

#[cfg(test)]
mod tests;
