//! The parsed tasks of the files a small queue holds, kept from their
//! judging to their claim: a task claimed soon after it was queued (a burst of
//! a few hundred, say) is not read and parsed a second time. A big queue keeps
//! none (100,000 waiting files keep only what ordering needs, see
//! `crate::queue`), and neither does one whose prompts are large.
//!
//! A kept task is used only for the very bytes that were judged: the claimed
//! file is read again and compared (a file rewritten in place, even with the
//! same size and time by `cp -p`, is parsed again), under the config it was
//! judged with (a reload forgets them all). Its workdir is placed again at the
//! claim all the same (a folder on its path may have become a symlink). What
//! is saved is the parse.

use crate::task::TaskSpec;
use std::collections::HashMap;
use std::sync::Arc;

/// Queues longer than this keep no parsed tasks.
const MAX_QUEUE: usize = 1024;
/// What the kept tasks' text may take, all together.
const MAX_BYTES: usize = 2 * 1024 * 1024;

/// A parsed task and the bytes it was parsed from: used at the claim only
/// if the claimed file still holds those bytes.
#[derive(Debug)]
pub struct Judged {
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

    /// The parsed task of `name`, if it was kept (the claim compares its bytes).
    pub fn take(&mut self, name: &str) -> Option<Judged> {
        let j = self.kept.remove(name)?;
        self.bytes -= weight(&j);
        Some(j)
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

    fn judged(prompt: &str) -> Judged {
        let limits = crate::task::parse::Limits::of(&Default::default());
        let mut spec = crate::task::parse::parse("a.txt", b"x", &limits).unwrap();
        spec.prompt = prompt.to_string();
        Judged {
            spec,
            bytes: prompt.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_kept_task_is_given_back_once_and_a_new_one_replaces_it() {
        let mut j = JudgedTasks::default();
        j.keep("a.txt".into(), judged("first"), 1);
        j.keep("a.txt".into(), judged("hello"), 1);
        assert_eq!(j.take("a.txt").unwrap().spec.prompt, "hello");
        assert!(j.take("a.txt").is_none(), "given once");
        assert_eq!(j.bytes, 0);
    }

    #[test]
    fn a_big_queue_or_big_prompts_keep_nothing() {
        let mut j = JudgedTasks::default();
        j.keep("a.txt".into(), judged("x"), 1);
        j.keep("b.txt".into(), judged("y"), MAX_QUEUE + 1);
        assert!(j.kept.is_empty(), "a queue past the bound drops them all");
        j.keep("c.txt".into(), judged(&"p".repeat(MAX_BYTES)), 1);
        assert!(j.kept.is_empty() && j.bytes == 0);
    }
}
