//! The runner driven by a scripted supervisor on tokio's paused clock: its
//! retries, backoffs, pauses, budgets, timeouts and stops, decided in virtual
//! time (a ten-minute backoff passes at once) with no agent process. The files
//! it writes (plan, events, result) are real, in a temporary home.

use super::{TaskRun, run};
use crate::agents::AgentReport;
use crate::agents::supervise::{Exit, ProgressFn, Spawn, SpawnedFn, StopReason, Supervisor};
use crate::config::Config;
use crate::daemon::Shared;
use crate::daemon::pauses::Pauses;
use crate::events::EventLog;
use crate::store::index::IndexWriter;
use crate::store::record::{ResultRecord, Status};
use crate::store::{Home, TaskDir};
use crate::vocab::{AgentKind, ErrorKind};
use serde_json::Value;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Instant;

/// What one scripted run does.
enum Script {
    /// Ends at once, like this.
    End(Box<(Exit, AgentReport)>),
    /// Runs until the daemon stops it.
    UntilStopped,
}

/// A run the supervisor was asked for.
struct Seen {
    args: Vec<String>,
    stdin: String,
    /// When it started, on the (paused) clock.
    at: Instant,
    /// How long it was given.
    time_left: Duration,
}

#[derive(Default)]
struct Scripted {
    scripts: Mutex<VecDeque<Script>>,
    seen: Mutex<Vec<Seen>>,
    /// Told each time a run starts.
    started: Notify,
}

impl Supervisor for Scripted {
    fn run(
        &self,
        spec: Spawn,
        _reader: Box<dyn crate::agents::OutputReader>,
        _on_spawned: SpawnedFn,
        _on_progress: ProgressFn,
        mut stop: watch::Receiver<Option<StopReason>>,
    ) -> Pin<Box<dyn Future<Output = (Exit, AgentReport)> + Send>> {
        let now = Instant::now();
        self.seen.lock().unwrap().push(Seen {
            args: spec.args.clone(),
            stdin: String::from_utf8_lossy(&spec.stdin).into_owned(),
            at: now,
            time_left: spec.deadline.saturating_duration_since(now),
        });
        self.started.notify_one();
        let script = self.scripts.lock().unwrap().pop_front().expect("a run was scripted");
        Box::pin(async move {
            match script {
                Script::End(end) => *end,
                Script::UntilStopped => {
                    let reason = stop
                        .wait_for(Option::is_some)
                        .await
                        .ok()
                        .and_then(|r| r.clone())
                        .unwrap_or(StopReason::Shutdown);
                    let exit = Exit {
                        stopped: Some(reason),
                        signal: Some(15),
                        ..Exit::default()
                    };
                    (exit, AgentReport::default())
                }
            }
        })
    }
}

/// A successful Claude run that cost `cost`.
fn success(cost: f64) -> Script {
    let report = AgentReport {
        session_id: Some("438cf665-4e80-47c7-8eb6-22db27c519dd".into()),
        result_seen: true,
        subtype: Some("success".into()),
        answer: Some("done".into()),
        cost_usd: Some(cost),
        turns: 1,
        ..AgentReport::default()
    };
    Script::End(Box::new((exited(0), report)))
}

/// A Claude run that crashed mid-line after spending `cost` (retried).
fn crash(cost: f64) -> Script {
    let report = AgentReport {
        ended_mid_line: true,
        cost_usd: Some(cost),
        ..AgentReport::default()
    };
    Script::End(Box::new((exited(1), report)))
}

/// A Claude run turned away by a rate limit, with no reset time.
fn rate_limited() -> Script {
    let report = AgentReport {
        result_seen: true,
        is_error: true,
        subtype: Some("success".into()),
        api_error: Some("rate_limit".into()),
        answer: Some("API Error: 429 rate limit".into()),
        ..AgentReport::default()
    };
    Script::End(Box::new((exited(1), report)))
}

fn exited(code: i32) -> Exit {
    Exit {
        code: Some(code),
        ..Exit::default()
    }
}

/// A daemon's shared state in a temporary home, with `supervisor`.
struct Harness {
    _tmp: tempfile::TempDir,
    home: Home,
    shared: Arc<Shared>,
    supervisor: Arc<Scripted>,
}

impl Harness {
    fn new(config: Config, scripts: Vec<Script>) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::new(tmp.path()).unwrap();
        home.ensure_layout().unwrap();
        let supervisor = Arc::new(Scripted {
            scripts: Mutex::new(scripts.into()),
            ..Scripted::default()
        });
        let shared = Arc::new(Shared {
            home: home.clone(),
            events: Arc::new(EventLog::of_home(&home, &config.events)),
            index: Arc::new(IndexWriter::new(home.clone())),
            pauses: Pauses::default(),
            slots: Arc::new(Semaphore::new(config.max_concurrent)),
            worker: "test:1".into(),
            wake: Notify::new(),
            redactor: std::sync::RwLock::new(Arc::new(crate::redact::Redactor::new(Vec::new()))),
            committer: crate::store::commit::Committer::start(Some(&home.results())).unwrap(),
            owner_only: None,
            supervisor: supervisor.clone(),
            started: Instant::now(),
            awaited: Default::default(),
            in_flight: Default::default(),
            spend_left: Default::default(),
            config: std::sync::RwLock::new(Arc::new(config)),
        });
        Self {
            _tmp: tmp,
            home,
            shared,
            supervisor,
        }
    }

    /// Claims `task` (a task file's text) and starts its runner; the stop
    /// switch is returned with it.
    fn start(
        &self,
        task: &str,
    ) -> (
        tokio::task::JoinHandle<(String, Status)>,
        watch::Sender<Option<StopReason>>,
        TaskDir,
    ) {
        std::fs::write(self.home.inbox().join("t.md"), task).unwrap();
        let claimed = crate::claim::claim(&self.home, "t.md").unwrap().unwrap();
        let dir = claimed.dir.clone();
        let (tx, rx) = watch::channel(None);
        let run = TaskRun {
            claimed,
            recovered: None,
            queued: None,
            spec: None,
            doomed: None,
            waited_for: None,
        };
        (tokio::spawn(run_task(self.shared.clone(), run, rx)), tx, dir)
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Vec<Seen>> {
        self.supervisor.seen.lock().unwrap()
    }

    fn events(&self, name: &str) -> Vec<Value> {
        std::fs::read_to_string(self.home.events_log())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["event"] == name)
            .collect()
    }
}

fn run_task(
    shared: Arc<Shared>,
    task: TaskRun,
    stop: watch::Receiver<Option<StopReason>>,
) -> impl Future<Output = (String, Status)> + Send {
    run(shared, task, None, stop)
}

fn config(edit: impl FnOnce(&mut Config)) -> Config {
    let mut c = Config::default();
    edit(&mut c);
    c
}

fn result(dir: &TaskDir) -> ResultRecord {
    ResultRecord::load(&dir.result()).expect("result.json")
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_after_their_backoff_until_one_succeeds() {
    // Backoffs of ten and twenty minutes: virtual time, so the test takes none.
    let h = Harness::new(
        config(|c| {
            c.retry.backoff_initial = crate::duration::Dur::secs(600);
            c.retry.backoff_max = crate::duration::Dur::secs(3600);
        }),
        vec![crash(0.0), crash(0.0), success(0.0)],
    );
    let (task, _stop, dir) = h.start("---\nretries: 2\n---\nfix it");
    assert_eq!(task.await.unwrap().1, Status::Succeeded);
    let seen = h.seen();
    assert_eq!(seen.len(), 3);
    // Each wait is within the jittered backoff: half to all of 600 s, then of 1,200 s.
    let first = seen[1].at - seen[0].at;
    let second = seen[2].at - seen[1].at;
    assert!((300..=601).contains(&first.as_secs()), "{first:?}");
    assert!((600..=1201).contains(&second.as_secs()), "{second:?}");
    let r = result(&dir);
    assert_eq!(r.attempts.len(), 3);
    assert_eq!(r.attempts[0].error.as_ref().unwrap().kind, ErrorKind::AgentCrashed);
    let retries = h.events("retry_scheduled");
    assert_eq!(retries.len(), 2);
    assert_eq!(retries[0]["attempts_left"], 2);
}

#[tokio::test(start_paused = true)]
async fn attempts_run_out_and_the_last_error_is_the_tasks() {
    let h = Harness::new(config(|_| {}), vec![crash(0.0), crash(0.0)]);
    let (task, _stop, dir) = h.start("---\nretries: 1\n---\nfix it");
    assert_eq!(task.await.unwrap().1, Status::Failed);
    assert_eq!(h.seen().len(), 2);
    let r = result(&dir);
    assert_eq!(r.error.unwrap().kind, ErrorKind::AgentCrashed);
    assert_eq!(h.events("task_failed").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_budget_is_the_tasks_over_its_attempts() {
    // $1: the first run spends $0.70 and crashes; the second may spend what is
    // left; the task ends at $1.00 without a third run.
    let h = Harness::new(config(|_| {}), vec![crash(0.7), crash(0.3)]);
    let (task, _stop, dir) = h.start("---\nretries: 5\nbudget_usd: 1.0\n---\nfix it");
    assert_eq!(task.await.unwrap().1, Status::Failed);
    let seen = h.seen();
    assert_eq!(seen.len(), 2, "no run once the budget is spent");
    assert!(
        seen[0].args.contains(&"--max-budget-usd=1".to_string()),
        "{:?}",
        seen[0].args
    );
    assert!(
        seen[1].args.contains(&"--max-budget-usd=0.3".to_string()),
        "{:?}",
        seen[1].args
    );
    let r = result(&dir);
    assert_eq!(r.error.unwrap().kind, ErrorKind::BudgetExceeded);
    assert!((r.cost_usd.unwrap() - 1.0).abs() < 1e-9);
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_pauses_the_agent_frees_the_slot_and_spends_no_attempt() {
    let h = Harness::new(config(|_| {}), vec![rate_limited()]);
    let (task, stop, dir) = h.start("---\nretries: 0\n---\nfix it");
    // Paused until the limit lifts: the slot is free meanwhile.
    while h.shared.pauses.until(AgentKind::Claude).is_none() || h.shared.slots.available_permits() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let paused = h.events("agent_paused");
    assert_eq!(paused.len(), 1);
    assert_eq!(paused[0]["from_cli"], false);
    // A cancel while it waits ends it at once.
    stop.send(Some(StopReason::Cancelled)).unwrap();
    assert_eq!(task.await.unwrap().1, Status::Cancelled);
    assert_eq!(h.seen().len(), 1);
    let r = result(&dir);
    assert_eq!(r.attempts.len(), 1);
    assert_eq!(r.attempts[0].error.as_ref().unwrap().kind, ErrorKind::RateLimited);
    assert_eq!(r.error.unwrap().kind, ErrorKind::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn a_cancel_during_a_backoff_ends_the_task_without_another_run() {
    let h = Harness::new(
        config(|c| c.retry.backoff_initial = crate::duration::Dur::secs(3600)),
        vec![crash(0.0)],
    );
    let (task, stop, dir) = h.start("---\nretries: 3\n---\nfix it");
    while h.events("retry_scheduled").is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(Some(StopReason::Cancelled)).unwrap();
    assert_eq!(task.await.unwrap().1, Status::Cancelled);
    assert_eq!(h.seen().len(), 1);
    assert_eq!(result(&dir).status, Status::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_mid_run_leaves_the_task_for_the_next_start() {
    let h = Harness::new(config(|_| {}), vec![Script::UntilStopped]);
    let (task, stop, dir) = h.start("fix it");
    h.supervisor.started.notified().await;
    stop.send(Some(StopReason::Shutdown)).unwrap();
    assert_eq!(task.await.unwrap().1, Status::Interrupted);
    assert!(!dir.result().exists(), "no result: the next daemon runs it again");
    let interrupted = h.events("task_interrupted");
    assert_eq!(interrupted.len(), 1);
    assert_eq!(interrupted[0]["reason"], "daemon_shutdown");
}

#[tokio::test(start_paused = true)]
async fn each_attempt_gets_what_is_left_of_the_timeout_and_the_prompt_on_stdin() {
    let h = Harness::new(config(|_| {}), vec![success(0.0)]);
    let (task, _stop, _dir) = h.start("---\ntimeout: 90s\n---\nfix the login");
    assert_eq!(task.await.unwrap().1, Status::Succeeded);
    let seen = h.seen();
    assert_eq!(seen[0].time_left, Duration::from_secs(90));
    assert_eq!(seen[0].stdin, "fix the login");
    assert!(!seen[0].args.iter().any(|a| a.contains("fix the login")));
}

#[test]
fn a_result_waits_to_gather_only_while_others_are_in_flight() {
    use std::sync::atomic::Ordering::Relaxed;
    let h = Harness::new(Config::default(), Vec::new());
    h.shared.in_flight.store(2, Relaxed);
    assert!(!h.shared.commit_at_once("a"), "another task may finish with it");
    h.shared.awaited.lock().unwrap().insert("a".into());
    assert!(h.shared.commit_at_once("a"), "a queued task waits for it");
    assert!(!h.shared.commit_at_once("b"));
    h.shared.in_flight.store(1, Relaxed);
    assert!(
        h.shared.commit_at_once("b"),
        "nothing else queued or running: none would come"
    );
}
