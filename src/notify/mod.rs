//! Notifications: people told about tasks without watching a terminal.
//!
//! Chosen events (`notify.webhook.events`, `notify.telegram.events`) are put
//! into a durable outbox as the event log writes them ([`outbox`]): nothing
//! waits on a network, and a restart loses nothing. A thread of the daemon
//! sends them, one home at a time (a lock in `notify/`: several daemons on a
//! home send each notification once), with a timeout, retries after a backoff
//! (5 s doubling to 10 min; Telegram's `retry_after` is obeyed), and sets aside
//! in `notify/failed/` what fails `max_attempts` times. A notification sent
//! just before a crash may be sent again (the webhook's delivery id lets a
//! receiver drop it). Another thread takes the Telegram bot's commands
//! ([`commands`]) from the allowed chats, by long polling.
//!
//! Secrets: the webhook's signing key and the bot token are added to the
//! redactor (never in events or summaries), hidden by `orchestrator config`,
//! and cut out of every error text that could hold them.

pub mod commands;
pub mod outbox;
pub mod telegram;
pub mod webhook;

use crate::config::{Config, NotifyConfig};
use crate::store::Home;
use outbox::{Item, Outbox, now_ms};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

/// A failed attempt: why, and when to try again if the other side said.
#[derive(Debug)]
pub struct Failure {
    pub why: String,
    pub after: Option<Duration>,
}

impl Failure {
    pub fn retry(why: String) -> Self {
        Self { why, after: None }
    }
}

/// The notifier of one daemon: the outbox, the sending thread and the
/// Telegram command thread (both started when first needed).
pub struct Notifier {
    inner: Arc<Inner>,
    /// The sending thread, and word from it that it ended.
    sender: Option<(std::thread::JoinHandle<()>, std::sync::mpsc::Receiver<()>)>,
    poller: Option<std::thread::JoinHandle<()>>,
}

/// How long a stopping daemon waits for a send in progress: a slow sink must
/// not hold SIGTERM for `notify.timeout`. A notification cut off here is
/// still in the outbox and sent again (with the same delivery id) later.
const STOP_WAIT: Duration = Duration::from_secs(3);

struct Inner {
    home: Home,
    dir: PathBuf,
    outbox: Outbox,
    config: RwLock<Arc<Config>>,
    /// The events any sink wants: every event line is checked against it, and
    /// only those go further.
    chosen: RwLock<std::collections::HashSet<String>>,
    /// Set when there may be something to send; the sender waits on it.
    wake: (Mutex<bool>, Condvar),
    quit: AtomicBool,
}

impl Notifier {
    pub fn new(home: &Home, config: Arc<Config>) -> Self {
        let dir = home.root().join("notify");
        let inner = Arc::new(Inner {
            home: home.clone(),
            outbox: Outbox::new(&dir),
            dir,
            chosen: RwLock::new(chosen(&config.notify)),
            config: RwLock::new(config),
            wake: (Mutex::new(true), Condvar::new()),
            quit: AtomicBool::new(false),
        });
        let mut n = Self {
            inner,
            sender: None,
            poller: None,
        };
        n.start_threads();
        n
    }

    /// The hook the event log calls with each line it writes.
    pub fn hook(&self) -> crate::events::Subscriber {
        let inner = self.inner.clone();
        Arc::new(move |name: &str, line: &[u8]| inner.on_event(name, line))
    }

    /// A reloaded config: new sinks and events from now on.
    pub fn configure(&mut self, config: Arc<Config>) {
        *self.inner.chosen.write().unwrap_or_else(|e| e.into_inner()) = chosen(&config.notify);
        *self.inner.config.write().unwrap_or_else(|e| e.into_inner()) = config;
        self.inner.poke();
        self.start_threads();
    }

    fn start_threads(&mut self) {
        let n = self.inner.notify();
        if self.sender.is_none() && (n.webhook.is_some() || n.telegram.is_some()) {
            let inner = self.inner.clone();
            let (ended, ended_rx) = std::sync::mpsc::channel();
            self.sender = std::thread::Builder::new()
                .name("notify".into())
                .spawn(move || {
                    inner.send_loop();
                    let _ = ended.send(());
                })
                .map_err(|e| tracing::error!(error = %e, "cannot start the notification thread"))
                .ok()
                .map(|t| (t, ended_rx));
        }
        if self.poller.is_none() && n.telegram.as_ref().is_some_and(|t| t.commands) {
            let inner = self.inner.clone();
            self.poller = std::thread::Builder::new()
                .name("telegram".into())
                .spawn(move || inner.command_loop())
                .map_err(|e| tracing::error!(error = %e, "cannot start the Telegram command thread"))
                .ok();
        }
    }
}

/// The events any configured sink wants.
fn chosen(n: &NotifyConfig) -> std::collections::HashSet<String> {
    let webhook = n.webhook.iter().flat_map(|w| w.events());
    let telegram = n.telegram.iter().flat_map(|t| t.events());
    webhook.chain(telegram).collect()
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.inner.quit.store(true, Ordering::Release);
        self.inner.poke();
        // The sender stops between two sends, or is left to end with the
        // process when a send takes longer than STOP_WAIT; the poller may sit
        // in a long poll and is left to end with the process.
        if let Some((t, ended)) = self.sender.take() {
            match ended.recv_timeout(STOP_WAIT) {
                Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = t.join();
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    tracing::info!(
                        "a notification was still being sent; it stays in notify/outbox/ for the next start"
                    );
                }
            }
        }
    }
}

impl Inner {
    fn notify(&self) -> NotifyConfig {
        self.config.read().unwrap_or_else(|e| e.into_inner()).notify.clone()
    }

    fn poke(&self) {
        *self.wake.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.wake.1.notify_all();
    }

    /// Waits up to `d`, or until poked or told to quit. True: quit.
    fn pause(&self, d: Duration) -> bool {
        let guard = self.wake.0.lock().unwrap_or_else(|e| e.into_inner());
        let (mut poked, _) = self
            .wake
            .1
            .wait_timeout_while(guard, d, |p| !*p && !self.quit.load(Ordering::Acquire))
            .unwrap_or_else(|e| e.into_inner());
        *poked = false;
        self.quit.load(Ordering::Acquire)
    }

    /// An event line was written: into the outbox for each sink that wants it.
    fn on_event(&self, name: &str, line: &[u8]) {
        if !self.chosen.read().unwrap_or_else(|e| e.into_inner()).contains(name) {
            return;
        }
        let n = self.notify();
        let webhook = n.webhook.as_ref().is_some_and(|w| w.events().iter().any(|e| e == name));
        let telegram = n.telegram.as_ref().filter(|t| t.events().iter().any(|e| e == name));
        if !webhook && telegram.is_none() {
            return;
        }
        let Ok(event) = serde_json::from_slice::<Value>(line) else {
            return;
        };
        let item = |sink: &str, chat| Item {
            sink: sink.into(),
            chat,
            event: event.clone(),
            attempts: 0,
            next_at_ms: 0,
            last_error: None,
        };
        let mut items = Vec::new();
        if webhook {
            items.push(item("webhook", None));
        }
        if let Some(t) = telegram {
            items.extend(t.chat_ids.iter().map(|c| item("telegram", Some(*c))));
        }
        for i in &items {
            if let Err(e) = self.outbox.push(i, n.backlog) {
                tracing::warn!(error = %e, event = name, "could not put a notification in notify/outbox/");
            }
        }
        self.poke();
    }

    /// The lock `notify/<name>`, if no other daemon holds it.
    fn lock(&self, name: &str) -> Option<std::fs::File> {
        let _ = std::fs::create_dir_all(&self.dir);
        crate::store::lock::try_lock(&self.dir.join(name)).ok().flatten()
    }

    fn http(&self, timeout: Duration) -> ureq::Agent {
        ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into()
    }

    fn send_loop(&self) {
        loop {
            let n = self.notify();
            let http = self.http(n.timeout.0);
            let mut next = Duration::from_secs(30);
            // One sender a home: the others put into the outbox and wait.
            let lock = self.lock("send.lock");
            if lock.is_none() {
                next = Duration::from_secs(1);
            } else {
                for (path, mut item) in self.outbox.waiting() {
                    if self.quit.load(Ordering::Acquire) {
                        return;
                    }
                    let wait = item.next_at_ms - now_ms();
                    if wait > 0 {
                        next = next.min(Duration::from_millis(wait as u64));
                        continue;
                    }
                    let delivery = path.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_string();
                    match self.send(&http, &n, &delivery, &item) {
                        Ok(()) => self.outbox.done(&path),
                        Err(f) => {
                            item.attempts += 1;
                            item.last_error = Some(f.why.clone());
                            if item.attempts >= n.max_attempts {
                                tracing::warn!(sink = %item.sink, error = %f.why, attempts = item.attempts, "a notification failed every attempt; set aside in notify/failed/");
                                let _ = self.outbox.update(&path, &item);
                                let _ = self.outbox.set_aside(&path);
                                continue;
                            }
                            let after = f.after.unwrap_or_else(|| {
                                crate::agents::outcome::backoff(
                                    item.attempts,
                                    n.backoff_initial.0,
                                    Duration::from_secs(600),
                                )
                            });
                            tracing::info!(sink = %item.sink, error = %f.why, retry_in = ?after, "a notification failed; it is tried again");
                            item.next_at_ms = now_ms() + after.as_millis() as i64;
                            next = next.min(after);
                            let _ = self.outbox.update(&path, &item);
                        }
                    }
                }
            }
            drop(lock);
            if self.pause(next) {
                return;
            }
        }
    }

    fn send(&self, http: &ureq::Agent, n: &NotifyConfig, delivery: &str, item: &Item) -> Result<(), Failure> {
        match (item.sink.as_str(), &n.webhook, &n.telegram, item.chat) {
            ("webhook", Some(w), _, _) => webhook::send(http, w, delivery, &item.event),
            ("telegram", _, Some(t), Some(chat)) => {
                telegram::send_message(http, t, chat, &telegram::message(&self.home, &item.event))
            }
            // The sink was removed from the config: nothing to send it to.
            _ => Err(Failure::retry(format!("notify.{} is no longer configured", item.sink))),
        }
    }

    fn command_loop(&self) {
        let mut recent: HashMap<i64, VecDeque<Instant>> = HashMap::new();
        let offset_file = self.dir.join("telegram.offset");
        loop {
            if self.quit.load(Ordering::Acquire) {
                return;
            }
            let config = self.config.read().unwrap_or_else(|e| e.into_inner()).clone();
            let Some(t) = config.notify.telegram.clone().filter(|t| t.commands) else {
                if self.pause(Duration::from_secs(5)) {
                    return;
                }
                continue;
            };
            // One poller a home (Telegram allows one `getUpdates` per bot).
            let lock = self.lock("telegram.lock");
            if lock.is_none() {
                if self.pause(Duration::from_secs(5)) {
                    return;
                }
                continue;
            }
            let offset: i64 = crate::store::read::read_text(&offset_file, 64)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            let wait = Duration::from_secs(20);
            let http = self.http(wait + config.notify.timeout.0);
            let updates = match telegram::updates(&http, &t, offset, wait) {
                Ok(u) => u,
                Err(f) => {
                    tracing::warn!(error = %f.why, "Telegram: could not read the bot's messages");
                    if self.pause(f.after.unwrap_or(Duration::from_secs(5))) {
                        return;
                    }
                    continue;
                }
            };
            let Some(last) = updates.iter().filter_map(|u| u["update_id"].as_i64()).max() else {
                continue;
            };
            // Taken before they are acted on: a crash must not run a command twice.
            if let Err(e) = crate::store::atomic::write_atomic(&offset_file, (last + 1).to_string().as_bytes()) {
                tracing::warn!(error = %e, "Telegram: could not record the messages read");
            }
            for u in &updates {
                let msg = &u["message"];
                let (Some(chat), Some(text)) = (msg["chat"]["id"].as_i64(), msg["text"].as_str()) else {
                    continue;
                };
                if !t.chat_ids.contains(&chat) {
                    tracing::info!(
                        chat,
                        "Telegram: a message from a chat not in notify.telegram.chat_ids was ignored"
                    );
                    continue;
                }
                let window = recent.entry(chat).or_default();
                let now = Instant::now();
                while window
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
                {
                    window.pop_front();
                }
                let reply = if window.len() >= t.commands_per_minute as usize {
                    Some(format!(
                        "slow down: at most {} commands a minute",
                        t.commands_per_minute
                    ))
                } else {
                    window.push_back(now);
                    commands::answer(&self.home, &config, text)
                };
                if let Some(reply) = reply
                    && let Err(f) = telegram::send_message(&http, &t, chat, &reply)
                {
                    tracing::warn!(error = %f.why, "Telegram: could not answer a command");
                }
            }
        }
    }
}
