//! Group commit for the files that must survive a power loss (`result.json`).
//!
//! One thread owns the durable writes. Runners hand it their bytes and wait
//! for the answer without holding a runtime worker or an agent slot. The
//! thread lets the results that finish together gather for a moment
//! ([`WINDOW`]), appends them all to the daemon's commit log with one flush
//! ([`commit_log`]), and only then gives each file its name. The guarantee:
//! a result that has its name survives a power loss (restored from the log by
//! the next daemon if the disk did not get it whole).
//!
//! Without a log (it could not be created or written: a read-only folder, a
//! full disk), each file is flushed itself before it gets its name, as before.

use crate::store::atomic;
use crate::store::commit_log::{self, CommitLog};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Most files committed in one batch: bounds the wait of the first in line.
const MAX_BATCH: usize = 64;

/// How long the first result of a batch waits for others: a burst of short
/// tasks then costs one log flush every few milliseconds instead of one flush
/// per task (measured on a 1,000-task burst: without the wait, batches are
/// one or two results and the log saves a third of the flushing; with it, all
/// of it). A result gets its name this much later, which nobody can see.
const WINDOW: Duration = Duration::from_millis(5);

struct Job {
    path: PathBuf,
    bytes: Vec<u8>,
    /// Someone waits for this file (a task's dependents): it does not wait
    /// for others to gather ([`WINDOW`]).
    urgent: bool,
    done: oneshot::Sender<io::Result<()>>,
}

/// Handle to the commit thread. Cheap to share; the thread ends when the last
/// handle is dropped (its log stays, and the next daemon replays it).
pub struct Committer {
    tx: mpsc::Sender<Job>,
    /// Set with an urgent job: the thread, parked for [`WINDOW`], commits at once.
    urgent: Arc<AtomicBool>,
    thread: std::thread::Thread,
}

impl Committer {
    /// Starts the commit thread. With `results`, results go through a commit
    /// log in `results/.commits/`; without, each file is flushed on its own.
    pub fn start(results: Option<&Path>) -> io::Result<Self> {
        Self::start_with_window(results, WINDOW)
    }

    /// [`Self::start`] with another gathering window (tests).
    fn start_with_window(results: Option<&Path>, window: Duration) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let mut log = results.and_then(|r| {
            CommitLog::begin(r)
                .map_err(|e| tracing::warn!(error = %e, "no commit log: each result is flushed on its own"))
                .ok()
        });
        // Started with the first full log: most daemons never fill one.
        let mut retire: Option<mpsc::Sender<CommitLog>> = None;
        let urgent = Arc::new(AtomicBool::new(false));
        let flag = urgent.clone();
        let thread = std::thread::Builder::new()
            .name("result-commit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    // A chain of tasks waits for each result before its next
                    // link starts: nothing would gather, and the window would
                    // be the chain's whole overhead per link. So does an
                    // urgent job sent during the window: it ends the window
                    // (the last result of a burst, say), and the batch goes.
                    if log.is_some() && !first.urgent {
                        let until = Instant::now() + window;
                        while !flag.load(Ordering::Acquire) {
                            let left = until.saturating_duration_since(Instant::now());
                            if left.is_zero() {
                                break;
                            }
                            std::thread::park_timeout(left);
                        }
                    }
                    // Cleared before the batch is taken: an urgent job sent
                    // after this is in the batch, or is the next one's first.
                    flag.store(false, Ordering::Release);
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    commit(batch, log.as_mut());
                    if let Some(full) = log.as_ref().filter(|l| l.full()) {
                        match full.begin_next() {
                            Ok(next) => {
                                if let Some(full) = log.replace(next) {
                                    retire_later(&mut retire, full);
                                }
                            }
                            Err(e) => tracing::warn!(error = %e, "cannot begin a new commit log; the full one goes on"),
                        }
                    }
                }
            })?
            .thread()
            .clone();
        Ok(Self { tx, urgent, thread })
    }

    /// Creates `path` with `bytes`, durable before it gets its name, and fails
    /// with `AlreadyExists` if it is there; batched with whatever else is
    /// being committed (`urgent`: without waiting for more to gather).
    pub async fn write_new_durable(&self, path: PathBuf, bytes: Vec<u8>, urgent: bool) -> io::Result<()> {
        let (done, answer) = oneshot::channel();
        let job = Job {
            path,
            bytes,
            urgent,
            done,
        };
        if let Err(mpsc::SendError(job)) = self.tx.send(job) {
            // The thread is gone (it panicked): write directly rather than lose the file.
            return tokio::task::spawn_blocking(move || atomic::write_new_durable(&job.path, &job.bytes))
                .await
                .map_err(io::Error::other)?;
        }
        if urgent {
            self.urgent.store(true, Ordering::Release);
            self.thread.unpark();
        }
        answer
            .await
            .unwrap_or_else(|_| Err(io::Error::other("the result commit thread stopped")))
    }
}

/// Hands a full log to the thread that retires logs once their files are on
/// disk ([`commit_log::retire`]), starting it the first time: nothing waits
/// for it. A log it has not retired when the daemon exits stays, and the next
/// daemon replays it (as it does when the thread cannot be started).
fn retire_later(retire: &mut Option<mpsc::Sender<CommitLog>>, log: CommitLog) {
    if retire.is_none() {
        let (tx, rx) = mpsc::channel::<CommitLog>();
        let started = std::thread::Builder::new().name("result-retire".into()).spawn(move || {
            for log in rx {
                if let Err(e) = commit_log::retire(log, commit_log::RETIRE_AFTER) {
                    tracing::warn!(error = %e, "could not retire a commit log; the next daemon replays it");
                }
            }
        });
        match started {
            Ok(_) => *retire = Some(tx),
            Err(e) => tracing::warn!(error = %e, "cannot start the thread that retires commit logs"),
        }
    }
    if let Some(tx) = retire {
        let _ = tx.send(log);
    }
}

/// Writes every file of the batch to a temporary file, makes the batch durable
/// (one log flush, or a flush of each file when there is no log), then names
/// each one (refusing to replace an existing file).
fn commit(batch: Vec<Job>, mut log: Option<&mut CommitLog>) {
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
    // Only what is staged is logged: a record means "this file is on its way".
    let logged = log.as_deref_mut().is_some_and(|l| {
        let files: Vec<(&Path, &[u8])> = staged
            .iter()
            .filter(|(_, tmp)| tmp.is_ok())
            .map(|(j, _)| (j.path.as_path(), j.bytes.as_slice()))
            .collect();
        files.is_empty()
            || l.append(&files)
                .map_err(|e| tracing::warn!(error = %e, "cannot write the commit log; flushing each result instead"))
                .is_ok()
    });
    for (job, tmp) in staged {
        let durable = if logged {
            tmp
        } else {
            tmp.and_then(|t| t.as_file().sync_all().map(|()| t))
        };
        let result = durable.and_then(|t| t.persist_noclobber(&job.path).map(drop).map_err(|e| e.error));
        if logged && result.is_ok() {
            log.as_deref_mut().expect("logged").named(job.path.clone());
        }
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
        let c = Arc::new(Committer::start(None).unwrap());
        let mut set = tokio::task::JoinSet::new();
        for i in 0..200 {
            let c = c.clone();
            let p = dir.path().join(format!("r{i}.json"));
            set.spawn(async move { c.write_new_durable(p, format!("{i}").into_bytes(), i % 2 == 0).await });
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
        let again = c
            .write_new_durable(dir.path().join("r7.json"), b"x".to_vec(), false)
            .await;
        assert_eq!(again.unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(dir.path().join("r7.json")).unwrap(), "7");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_a_log_every_file_is_logged_once_then_named() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("results");
        std::fs::create_dir_all(results.join("t")).unwrap();
        let c = Arc::new(Committer::start(Some(&results)).unwrap());
        let mut set = tokio::task::JoinSet::new();
        for i in 0..50 {
            let c = c.clone();
            let p = results.join(format!("t/r{i}.json"));
            set.spawn(async move {
                c.write_new_durable(p, format!("{{\"n\":{i}}}").into_bytes(), false)
                    .await
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap().unwrap();
        }
        let logs: Vec<_> = std::fs::read_dir(commit_log::dir_of(&results))
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(logs.len(), 1);
        let text = std::fs::read_to_string(logs[0].path()).unwrap();
        assert_eq!(text.lines().count(), 50, "one record a file");
        for i in 0..50 {
            assert_eq!(
                std::fs::read_to_string(results.join(format!("t/r{i}.json"))).unwrap(),
                format!("{{\"n\":{i}}}")
            );
            assert!(text.contains(&format!("\"path\":\"t/r{i}.json\"")));
        }
        assert_eq!(
            std::fs::read_dir(results.join("t")).unwrap().count(),
            50,
            "no temporary file left"
        );
    }

    #[tokio::test]
    async fn a_failed_file_does_not_fail_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let c = Committer::start(None).unwrap();
        let bad = c.write_new_durable(dir.path().join("missing/r.json"), b"x".to_vec(), true);
        let good = c.write_new_durable(dir.path().join("r.json"), b"y".to_vec(), false);
        let (bad, good) = tokio::join!(bad, good);
        assert!(bad.is_err());
        good.unwrap();
        assert_eq!(std::fs::read(dir.path().join("r.json")).unwrap(), b"y");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_urgent_file_ends_the_window_of_the_batch_it_joins() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("results");
        std::fs::create_dir_all(&results).unwrap();
        // A window no test waits out: only the urgent file can end it.
        let c = Arc::new(Committer::start_with_window(Some(&results), Duration::from_secs(600)).unwrap());
        // The first file is handed over (one poll sends it) before the urgent one.
        let first = c.write_new_durable(results.join("a.json"), b"a".to_vec(), false);
        tokio::pin!(first);
        tokio::select! {
            biased;
            _ = &mut first => panic!("committed without waiting for others"),
            _ = std::future::ready(()) => {}
        }
        let urgent = c.write_new_durable(results.join("b.json"), b"b".to_vec(), true);
        let (a, b) = tokio::time::timeout(Duration::from_secs(60), async { tokio::join!(first, urgent) })
            .await
            .expect("the urgent file ended the window");
        a.unwrap();
        b.unwrap();
        assert_eq!(std::fs::read(results.join("a.json")).unwrap(), b"a");
        assert_eq!(std::fs::read(results.join("b.json")).unwrap(), b"b");
    }
}
