//! Group commit for the files that must survive a power loss (`result.json`).
//!
//! Each durable file costs an fsync: about 0.3 ms on this project's ext4 test
//! machines, more on slow disks, and the runner that waits for it cannot start
//! the next task meanwhile. One thread owns those flushes instead. Runners
//! hand it their bytes and wait for the answer without holding a runtime
//! worker or an agent slot; the thread takes every request that queued up
//! while it was busy, writes them all, flushes them back to back (a journaling
//! filesystem folds flushes that come together into fewer commits: measured
//! 0.25 vs 0.35 ms a file for batches of 8), and only then gives each file its
//! name. Under load, batches form by themselves; a lone task waits no longer
//! than it would have alone. The guarantee is unchanged: a file that has its
//! name is whole and on disk.

use crate::store::atomic;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Most files flushed in one batch: bounds the wait of the first in line.
const MAX_BATCH: usize = 64;

struct Job {
    path: PathBuf,
    bytes: Vec<u8>,
    done: oneshot::Sender<io::Result<()>>,
}

/// Handle to the commit thread. Cheap to share; the thread ends when the last
/// handle is dropped.
pub struct Committer {
    tx: mpsc::Sender<Job>,
}

impl Committer {
    pub fn start() -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("result-commit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    commit(batch);
                }
            })?;
        Ok(Self { tx })
    }

    /// Creates `path` with `bytes`, flushed to disk before it gets its name, and
    /// fails with `AlreadyExists` if it is there: [`atomic::write_new_durable`],
    /// batched with whatever else is being committed.
    pub async fn write_new_durable(&self, path: PathBuf, bytes: Vec<u8>) -> io::Result<()> {
        let (done, answer) = oneshot::channel();
        if let Err(mpsc::SendError(job)) = self.tx.send(Job { path, bytes, done }) {
            // The thread is gone (it panicked): write directly rather than lose the file.
            return tokio::task::spawn_blocking(move || atomic::write_new_durable(&job.path, &job.bytes))
                .await
                .map_err(io::Error::other)?;
        }
        answer
            .await
            .unwrap_or_else(|_| Err(io::Error::other("the result commit thread stopped")))
    }
}

/// Writes every file of the batch to a temporary file, flushes them all, then
/// names each one (refusing to replace an existing file).
fn commit(batch: Vec<Job>) {
    let staged: Vec<(Job, io::Result<tempfile::NamedTempFile>)> = batch
        .into_iter()
        .map(|job| {
            let tmp = atomic::temp_in(&job.path).and_then(|mut tmp| {
                tmp.write_all(&job.bytes)?;
                Ok(tmp)
            });
            (job, tmp)
        })
        .collect();
    let synced: Vec<_> = staged
        .into_iter()
        .map(|(job, tmp)| (job, tmp.and_then(|t| t.as_file().sync_all().map(|()| t))))
        .collect();
    for (job, tmp) in synced {
        let result = tmp.and_then(|t| t.persist_noclobber(&job.path).map(drop).map_err(|e| e.error));
        // The runner may have stopped waiting (shutdown); the file stays either way.
        let _ = job.done.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commits_many_files_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let c = std::sync::Arc::new(Committer::start().unwrap());
        let mut set = tokio::task::JoinSet::new();
        for i in 0..200 {
            let c = c.clone();
            let p = dir.path().join(format!("r{i}.json"));
            set.spawn(async move { c.write_new_durable(p, format!("{i}").into_bytes()).await });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap().unwrap();
        }
        for i in 0..200 {
            assert_eq!(
                std::fs::read_to_string(dir.path().join(format!("r{i}.json"))).unwrap(),
                format!("{i}")
            );
        }
        // No temporary file is left, and a second write of a name is refused.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 200);
        let again = c.write_new_durable(dir.path().join("r7.json"), b"x".to_vec()).await;
        assert_eq!(again.unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(dir.path().join("r7.json")).unwrap(), "7");
    }

    #[tokio::test]
    async fn a_failed_file_does_not_fail_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let c = Committer::start().unwrap();
        let bad = c.write_new_durable(dir.path().join("missing/r.json"), b"x".to_vec());
        let good = c.write_new_durable(dir.path().join("r.json"), b"y".to_vec());
        let (bad, good) = tokio::join!(bad, good);
        assert!(bad.is_err());
        good.unwrap();
        assert_eq!(std::fs::read(dir.path().join("r.json")).unwrap(), b"y");
    }
}
