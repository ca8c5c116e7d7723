//! The parsed tasks of the files a small queue holds, kept from their
//! judging to their claim: a task claimed soon after it was queued (a burst of
//! a few hundred, say) is not read and parsed a second time. A big queue keeps
//! none (100,000 waiting files keep only what ordering needs, see
//! `crate::queue`), and neither does one whose prompts are large.
//!
//! A kept task is used only for the very bytes that were judged: the claimed
//! file is read again and compared (a file rewritten in place with the same
//! size and time, by `cp -p` say, is parsed again), under the config it was
//! judged with (a reload forgets them all). Its workdir is placed again at the
//! claim all the same (a folder on its path may have become a symlink). What
//! is saved is the parse.

use crate::task::TaskSpec;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

/// Queues longer than this keep no parsed tasks.
const MAX_QUEUE: usize = 1024;
/// What the kept tasks' text may take, all together.
const MAX_BYTES: usize = 2 * 1024 * 1024;

/// A parsed task and the file it was parsed from.
#[derive(Debug)]
pub struct Judged {
    pub spec: TaskSpec,
    /// The bytes it was parsed from.
    pub bytes: Vec<u8>,
    pub len: u64,
    pub mtime: Option<SystemTime>,
}

/// A kept task, for the claim: used if the claimed file still holds `bytes`.
#[derive(Debug)]
pub struct Kept {
    pub spec: TaskSpec,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct JudgedTasks {
    kept: HashMap<Arc<str>, Judged>,
    bytes: usize,
}

fn weight(j: &Judged) -> usize {
    let spec = &j.spec;
    512 + j.bytes.len() + spec.prompt.len() + spec.title.len() + spec.steps.iter().map(String::len).sum::<usize>()
}

impl JudgedTasks {
    /// Keeps `judged` for the file `name` if the queue (`queued` files, this
    /// one included) and the text kept so far are small enough.
    pub fn keep(&mut self, name: Arc<str>, judged: Judged, queued: usize) {
        self.forget(&name);
        if queued > MAX_QUEUE {
            self.clear();
            return;
        }
        let w = weight(&judged);
        if self.bytes + w > MAX_BYTES {
            return;
        }
        self.bytes += w;
        self.kept.insert(name, judged);
    }

    /// The parsed task of `name`, if it was kept for a file of this size and
    /// modification time (the claim compares the bytes).
    pub fn take(&mut self, name: &str, len: u64, mtime: Option<SystemTime>) -> Option<Kept> {
        let j = self.kept.remove(name)?;
        self.bytes -= weight(&j);
        (j.len == len && j.mtime.is_some() && j.mtime == mtime).then_some(Kept {
            spec: j.spec,
            bytes: j.bytes,
        })
    }

    pub fn forget(&mut self, name: &str) {
        if let Some(j) = self.kept.remove(name) {
            self.bytes -= weight(&j);
        }
    }

    /// Forgets all (a reload: the tasks must be judged under the new config).
    pub fn clear(&mut self) {
        self.kept = HashMap::new();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(prompt: &str, len: u64, mtime: Option<SystemTime>) -> Judged {
        let limits = crate::task::parse::Limits::of(&Default::default());
        let mut spec = crate::task::parse::parse("a.txt", b"x", &limits).unwrap();
        spec.prompt = prompt.to_string();
        Judged {
            spec,
            bytes: b"x".to_vec(),
            len,
            mtime,
        }
    }

    #[test]
    fn a_kept_task_is_given_back_only_for_the_same_file() {
        let t = Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(7));
        let mut j = JudgedTasks::default();
        j.keep("a.txt".into(), judged("hello", 5, t), 1);
        assert!(j.take("a.txt", 6, t).is_none(), "another size");
        j.keep("a.txt".into(), judged("hello", 5, t), 1);
        assert_eq!(j.take("a.txt", 5, t).unwrap().spec.prompt, "hello");
        assert!(j.take("a.txt", 5, t).is_none(), "given once");
        assert_eq!(j.bytes, 0);
    }

    #[test]
    fn a_big_queue_or_big_prompts_keep_nothing() {
        let t = Some(SystemTime::UNIX_EPOCH);
        let mut j = JudgedTasks::default();
        j.keep("a.txt".into(), judged("x", 1, t), 1);
        j.keep("b.txt".into(), judged("y", 1, t), MAX_QUEUE + 1);
        assert!(j.kept.is_empty(), "a queue past the bound drops them all");
        j.keep("c.txt".into(), judged(&"p".repeat(MAX_BYTES), 1, t), 1);
        assert!(j.kept.is_empty() && j.bytes == 0);
    }
}
