//! The queue: an ordered view of the accepted files in the inbox.
//!
//! The inbox is the queue (a file there is queued; nothing else is), so this
//! is only the daemon's sorted index over it: priority first, then arrival
//! (the file's modification time, which every daemon sharing the folder sees
//! the same), then name.

use crate::task::TaskSpec;
use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::SystemTime;

/// An accepted task file waiting in the inbox.
#[derive(Debug, Clone)]
pub struct Queued {
    pub name: String,
    pub path: PathBuf,
    pub spec: TaskSpec,
    pub arrival: SystemTime,
    /// Size and modification time of the file that was read and checked: the
    /// runner reuses `spec` for the claimed file only while both still match.
    pub len: u64,
    pub mtime: Option<SystemTime>,
    pub queued_at: String,
}

impl Queued {
    /// Whether the file at `path` (the claimed task file, after the rename) is
    /// still the one that was checked: same size and modification time. A
    /// rename keeps both; a rewrite changes at least the time.
    pub fn still_matches(&self, path: &std::path::Path) -> bool {
        std::fs::metadata(path)
            .is_ok_and(|m| m.len() == self.len && self.mtime.is_some() && m.modified().ok() == self.mtime)
    }
}

type Key = (Reverse<i64>, SystemTime, String);

#[derive(Debug, Default)]
pub struct Queue {
    order: BTreeSet<Key>,
    entries: HashMap<String, Queued>,
}

impl Queue {
    fn key(q: &Queued) -> Key {
        (Reverse(q.spec.priority), q.arrival, q.name.clone())
    }

    pub fn push(&mut self, q: Queued) {
        self.remove(&q.name);
        self.order.insert(Self::key(&q));
        self.entries.insert(q.name.clone(), q);
    }

    pub fn remove(&mut self, name: &str) -> Option<Queued> {
        let q = self.entries.remove(name)?;
        self.order.remove(&Self::key(&q));
        Some(q)
    }

    pub fn get(&self, name: &str) -> Option<&Queued> {
        self.entries.get(name)
    }

    /// Takes the best entry that may start now (its agent is not paused, its
    /// repository has no other writer, ...); the others keep their places.
    pub fn pop_next(&mut self, mut may_start: impl FnMut(&Queued) -> bool) -> Option<Queued> {
        let name = self
            .order
            .iter()
            .find(|(_, _, n)| may_start(&self.entries[n]))?
            .2
            .clone();
        self.remove(&name)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.entries.keys()
    }
    /// Entries in run order.
    pub fn ordered(&self) -> impl Iterator<Item = &Queued> {
        self.order.iter().map(|(_, _, n)| &self.entries[n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AgentKind;
    use crate::task::parse::{Limits, parse};
    use std::time::Duration;

    fn q(name: &str, prio: &str, agent: &str, secs: u64) -> Queued {
        let text = format!("---\npriority: {prio}\nagent: {agent}\n---\nhi");
        let spec = parse(
            "x.md",
            text.as_bytes(),
            &Limits {
                max_bytes: 1 << 20,
                max_prompt_chars: 100,
                default_agent: AgentKind::Claude,
                roles: Default::default(),
            },
        )
        .unwrap();
        Queued {
            name: name.into(),
            path: name.into(),
            spec,
            arrival: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            len: 0,
            mtime: None,
            queued_at: String::new(),
        }
    }

    /// The runner reuses the checked spec only for the very file that was
    /// checked: a rename keeps the match, a rewrite breaks it.
    #[test]
    fn still_matches_only_the_checked_file() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("a.yaml");
        std::fs::write(&inbox, "command: \"true\"\n").unwrap();
        let meta = std::fs::metadata(&inbox).unwrap();
        let checked = Queued {
            len: meta.len(),
            mtime: meta.modified().ok(),
            ..q("a.yaml", "normal", "command", 0)
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
        queue.push(q("late-normal", "normal", "claude", 5));
        queue.push(q("early-normal", "normal", "claude", 1));
        queue.push(q("high", "high", "claude", 9));
        queue.push(q("low-cmd", "low", "command", 0));
        queue.push(q("b-same", "normal", "claude", 3));
        queue.push(q("a-same", "normal", "claude", 3));
        let order: Vec<_> = queue.ordered().map(|e| e.name.clone()).collect();
        assert_eq!(
            order,
            ["high", "early-normal", "a-same", "b-same", "late-normal", "low-cmd"]
        );
        let next = queue.pop_next(|q| q.spec.agent != AgentKind::Claude).unwrap();
        assert_eq!(next.name, "low-cmd");
        assert!(queue.pop_next(|q| q.spec.agent != AgentKind::Claude).is_none());
        assert_eq!(queue.pop_next(|_| true).unwrap().name, "high");
        // Re-pushing replaces, never duplicates.
        queue.push(q("a-same", "high", "claude", 3));
        assert_eq!(queue.len(), 4);
        assert_eq!(queue.ordered().next().unwrap().name, "a-same");
    }
}
