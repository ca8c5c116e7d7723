//! While tasks run, a thread of its own looks a few times a second for what
//! the daemon's loop must not stop to look for: cancel requests, and (on Unix)
//! an agent watchdog that died.
//!
//! A cancel request is a file, `results/<id>/cancel.request`, written by
//! `orchestrator cancel` from any process, possibly on another machine sharing
//! the home: no watcher event can be relied on for it (network shares send
//! none), so it is looked for, one `stat` per running task. Doing that here
//! keeps the loop's runtime worker free for hints and task ends; the loop only
//! hears the ids whose request was found, as events, and stops those tasks.
//! With no task running the thread sleeps until one starts.

use crate::store::{Home, TaskDir};
use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// How often running tasks are looked at: a cancel takes effect well within a second.
pub const POLL: Duration = Duration::from_millis(250);

#[derive(Default)]
struct State {
    /// Tasks running in this daemon.
    running: HashSet<String>,
    /// Of those, the ones whose request was found and reported.
    reported: HashSet<String>,
    quit: bool,
}

/// The lookout thread, started with the first task (an idle daemon has
/// none); stopped and joined on drop.
pub struct Lookout {
    state: Arc<(Mutex<State>, Condvar)>,
    home: Home,
    cancels: UnboundedSender<String>,
    thread: Option<JoinHandle<()>>,
}

impl Lookout {
    /// The ids of tasks whose cancel was requested will be sent on
    /// `cancels`, each once.
    pub fn new(home: Home, cancels: UnboundedSender<String>) -> Self {
        Self {
            state: Arc::new((Mutex::new(State::default()), Condvar::new())),
            home,
            cancels,
            thread: None,
        }
    }

    /// A task started: look for its cancel request.
    pub fn add(&mut self, id: &str) {
        let was_idle = {
            let mut st = lock(&self.state.0);
            let idle = st.running.is_empty();
            st.running.insert(id.to_string());
            idle
        };
        // Only a thread with nothing to look at sleeps until told; one that
        // looks takes the new task at its next look (within POLL). A wake-up
        // for every task was a context switch for nothing.
        if was_idle {
            self.state.1.notify_all();
        }
        if self.thread.is_none() {
            let (home, state, cancels) = (self.home.clone(), self.state.clone(), self.cancels.clone());
            match std::thread::Builder::new()
                .name("lookout".into())
                .spawn(move || watch(&home, &state, &cancels))
            {
                Ok(t) => self.thread = Some(t),
                // Tried again at the next task; meanwhile cancel waits.
                Err(e) => tracing::error!(error = %e, "cannot start the thread that looks for cancel requests"),
            }
        }
    }

    /// A task ended.
    pub fn remove(&self, id: &str) {
        let mut st = lock(&self.state.0);
        st.running.remove(id);
        st.reported.remove(id);
    }
}

impl Drop for Lookout {
    fn drop(&mut self) {
        lock(&self.state.0).quit = true;
        self.state.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn watch(home: &Home, state: &(Mutex<State>, Condvar), cancels: &UnboundedSender<String>) {
    let (mutex, wake) = state;
    loop {
        let ids: Vec<String> = {
            let mut st = lock(mutex);
            while st.running.is_empty() && !st.quit {
                st = wake.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.quit {
                return;
            }
            st.running.difference(&st.reported).cloned().collect()
        };
        // While agents run, a watchdog that was killed is replaced at once.
        #[cfg(unix)]
        crate::agents::watchdog::check();
        for id in ids {
            if TaskDir::new(home.task_dir(&id)).cancel_request().exists() {
                let mut st = lock(mutex);
                // Still running (it may have ended while we looked), and not reported yet.
                if st.running.contains(&id) && st.reported.insert(id.clone()) {
                    drop(st);
                    tracing::info!(task = %id, "cancel requested");
                    if cancels.send(id).is_err() {
                        return;
                    }
                }
            }
        }
        let st = lock(mutex);
        let _ = wake.wait_timeout_while(st, POLL, |st| !st.quit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_for_a_running_task_is_reported_once_and_others_never() {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::new(tmp.path()).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut lookout = Lookout::new(home.clone(), tx);
        for id in ["asked", "not-asked", "not-running"] {
            std::fs::create_dir_all(home.task_dir(id)).unwrap();
        }
        for id in ["asked", "not-running"] {
            std::fs::write(TaskDir::new(home.task_dir(id)).cancel_request(), "now").unwrap();
        }
        lookout.add("asked");
        lookout.add("not-asked");
        assert_eq!(rx.blocking_recv().as_deref(), Some("asked"));
        // Several more looks: nothing else is reported.
        let deadline = std::time::Instant::now() + POLL * 4;
        while std::time::Instant::now() < deadline {
            assert!(rx.try_recv().is_err(), "reported twice, or a task that is not asked");
            std::thread::park_timeout(POLL / 4);
        }
        lookout.remove("asked");
        drop(lookout);
        assert!(rx.blocking_recv().is_none(), "the thread ended and dropped its sender");
    }
}
