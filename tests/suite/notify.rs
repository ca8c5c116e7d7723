//! Notifications against fake servers on 127.0.0.1: a webhook that fails
//! before it takes them, one that is down across a restart, and a fake
//! Telegram Bot API with chats that send commands.

use crate::common::fake_http::{FakeHttp, RAW, Request};
use crate::common::*;
use hmac::Mac;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);
const SECRET: &str = "hook-secret-value-0123456789";
const TOKEN: &str = "424242:TEST-bot-token-value-abcdef";
const RAW_TEXT: &str = "@@raw-text@@";
const BAD_TEXT: &str = "\"broken \\ud800 text\"";

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Everything a test home wrote: event log, daemon log, summaries, results.
fn all_text(home: &TestHome) -> String {
    let mut out = String::new();
    for dir in ["logs", "summaries", "results"] {
        for entry in walk(&home.path.join(dir)) {
            out.push_str(&String::from_utf8_lossy(&std::fs::read(entry).unwrap_or_default()));
        }
    }
    out
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn outbox_len(home: &TestHome) -> usize {
    std::fs::read_dir(home.path.join("notify/outbox")).map_or(0, |d| d.count())
}

#[test]
fn a_webhook_gets_each_chosen_event_once_signed_after_its_failures() {
    let failures = Arc::new(AtomicUsize::new(2));
    let f = failures.clone();
    let server = FakeHttp::start(move |_, _| {
        if f.load(Ordering::SeqCst) > 0 {
            f.fetch_sub(1, Ordering::SeqCst);
            (500, json!({"error": "try later"}))
        } else {
            (200, json!({}))
        }
    });
    let home = TestHome::with_config(
        &(base_config()
            + &format!(
                "notify:\n  backoff_initial: 100ms\n  webhook:\n    url: {}/hook\n    secret: {SECRET}\n    events: [task_succeeded, task_failed]\n",
                server.url()
            )),
    );
    home.drop_task("ok.yaml", "agent: command\ncommand: echo fine\n");
    home.drop_task("bad.yaml", "agent: command\ncommand: exit 3\n");
    let out = home.run_once();
    assert_eq!(out.status.code(), Some(1), "one task failed");
    // `run --once` leaves what it could not send yet in the outbox; a daemon sends it.
    let mut daemon = home.spawn_daemon();
    wait_until(LONG, "both events delivered", || {
        server
            .requests()
            .iter()
            .filter(|r| r.header("x-orchestrator-event").is_some())
            .count()
            >= 4
            && outbox_len(&home) == 0
    });
    sigterm(daemon.id());
    daemon.wait().unwrap();

    let requests = server.requests();
    let mut by_delivery: BTreeMap<String, Vec<&Request>> = BTreeMap::new();
    for r in &requests {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/hook");
        by_delivery
            .entry(r.header("x-orchestrator-delivery").unwrap().to_string())
            .or_default()
            .push(r);
    }
    assert_eq!(by_delivery.len(), 2, "two notifications, each with its own delivery id");
    assert_eq!(requests.len(), 4, "two failed attempts, then one success each");
    let mut events: Vec<String> = Vec::new();
    for r in &requests {
        let sig = r.header("x-orchestrator-signature").unwrap();
        assert_eq!(sig, format!("sha256={}", hmac_hex(SECRET, &r.body)));
        let body = r.json();
        assert_eq!(body["event"].as_str(), r.header("x-orchestrator-event"));
        assert!(body["task_id"].is_string() && body["ts"].is_string(), "{body}");
        events.push(body["event"].as_str().unwrap().to_string());
    }
    events.sort();
    events.dedup();
    assert_eq!(events, ["task_failed", "task_succeeded"]);
    assert!(!all_text(&home).contains(SECRET), "the secret is in no record");
    assert!(!stdout(&home.cli(&["config"])).contains(SECRET), "config hides it");
}

#[test]
fn notifications_wait_in_the_outbox_across_a_restart_and_are_sent_once() {
    let down = Arc::new(AtomicBool::new(true));
    let d = down.clone();
    let server = FakeHttp::start(move |_, _| {
        if d.load(Ordering::SeqCst) {
            (503, json!({}))
        } else {
            (204, json!({}))
        }
    });
    let home = TestHome::with_config(
        &(base_config()
            + &format!(
                "notify:\n  backoff_initial: 100ms\n  webhook:\n    url: {}/h\n",
                server.url()
            )),
    );
    let mut daemon = home.spawn_daemon();
    home.wait_started(1);
    home.drop_task("one.yaml", "agent: command\ncommand: echo one\n");
    wait_until(LONG, "a failed attempt", || !server.requests().is_empty());
    sigterm(daemon.id());
    daemon.wait().unwrap();
    assert_eq!(outbox_len(&home), 1, "kept for the next start");

    down.store(false, Ordering::SeqCst);
    let before = server.requests().len();
    let mut daemon = home.spawn_daemon();
    wait_until(LONG, "the delivery", || outbox_len(&home) == 0);
    sigterm(daemon.id());
    daemon.wait().unwrap();
    let after: Vec<Request> = server.requests().split_off(before);
    assert_eq!(after.len(), 1, "sent once after the restart");
    assert_eq!(after[0].json()["event"], "task_succeeded");
}

/// A fake Telegram Bot API: `getUpdates` hands out `updates` (each once, by
/// offset), holding the request up to its `timeout` while there are none (a
/// long poll, woken by [`FakeTelegram::say`]); `sendMessage` is recorded.
struct FakeTelegram {
    server: FakeHttp,
    updates: Arc<(Mutex<Vec<Value>>, Condvar)>,
}

impl FakeTelegram {
    fn start() -> Self {
        let updates: Arc<(Mutex<Vec<Value>>, Condvar)> = Arc::default();
        let u = updates.clone();
        let server = FakeHttp::start(move |r, _| {
            assert!(r.path.starts_with(&format!("/bot{TOKEN}/")), "{}", r.path);
            if r.path.ends_with("/getUpdates") {
                let body = r.json();
                let offset = body["offset"].as_i64().unwrap_or(0);
                let wait = Duration::from_secs(body["timeout"].as_u64().unwrap_or(0));
                let after = |all: &Vec<Value>| -> Vec<Value> {
                    all.iter()
                        .filter(|x| x["update_id"].as_i64().unwrap() >= offset)
                        .cloned()
                        .collect()
                };
                let (lock, said) = &*u;
                let all = said
                    .wait_timeout_while(lock.lock().unwrap(), wait, |all| after(all).is_empty())
                    .unwrap()
                    .0;
                let body = json!({"ok": true, "result": after(&all)}).to_string();
                // A text said raw replaces its placeholder as it is.
                match body.find(RAW_TEXT) {
                    Some(_) => (
                        200,
                        Value::String(format!("{RAW}{}", body.replace(&format!("\"{RAW_TEXT}\""), BAD_TEXT))),
                    ),
                    None => (200, json!({"ok": true, "result": after(&all)})),
                }
            } else {
                (200, json!({"ok": true, "result": {"message_id": 1}}))
            }
        });
        Self { server, updates }
    }

    /// A message whose text is not valid JSON text (a lone surrogate and
    /// bytes that are not UTF-8), as a chat client can send.
    fn say_bad_text(&self, chat: i64) {
        self.say(chat, RAW_TEXT);
    }

    fn say(&self, chat: i64, text: &str) {
        let (lock, said) = &*self.updates;
        let mut u = lock.lock().unwrap();
        let id = 100 + u.len() as i64;
        u.push(json!({"update_id": id, "message": {"message_id": id, "chat": {"id": chat}, "text": text}}));
        said.notify_all();
    }

    fn sent(&self) -> Vec<(i64, String)> {
        self.server
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/sendMessage"))
            .map(|r| {
                let b = r.json();
                (b["chat_id"].as_i64().unwrap(), b["text"].as_str().unwrap().to_string())
            })
            .collect()
    }

    fn sent_containing(&self, chat: i64, part: &str) -> Option<String> {
        self.sent()
            .into_iter()
            .find(|(c, t)| *c == chat && t.contains(part))
            .map(|(_, t)| t)
    }
}

#[test]
fn telegram_tells_each_chat_and_takes_commands_only_from_them_within_a_rate() {
    let tg = FakeTelegram::start();
    let release = tempfile::tempdir().unwrap();
    let home = TestHome::with_config(
        &(base_config()
            + &format!(
                "notify:\n  telegram:\n    bot_token: \"{TOKEN}\"\n    chat_ids: [11, 22]\n    api_url: {}\n    commands_per_minute: 4\n",
                tg.server.url()
            )),
    );
    let mut daemon = home.spawn_daemon();
    home.wait_started(1);
    home.drop_task("done.yaml", "title: Say hello\nagent: command\ncommand: echo hello\n");
    home.drop_task(
        "held.yaml",
        format!(
            "title: Held task\nagent: command\ncommand: 'while [ ! -f \"{}/go\" ]; do sleep 0.05; done'\n",
            release.path().display()
        ),
    );
    wait_until(LONG, "both chats told of the finished task", || {
        tg.sent_containing(11, "succeeded: Say hello").is_some()
            && tg.sent_containing(22, "succeeded: Say hello").is_some()
    });
    let told = tg.sent_containing(11, "succeeded: Say hello").unwrap();
    assert!(told.contains('$') || told.contains(" s"), "{told}");
    wait_until(LONG, "the held task to run", || {
        home.events_of("task_started").len() == 2
    });
    let held = home
        .events_of("task_started")
        .into_iter()
        .find(|e| e["title"] == "Held task")
        .unwrap()["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = home.results()[0]["id"].as_str().unwrap().to_string();
    // What `/status` reads is published by the daemon within a second.
    wait_until(LONG, "the daemon to publish its running task", || {
        let s = home.cli_json(&["status"]);
        s["running"].to_string().contains(&held) && s["finished"]["total"] == 1
    });

    tg.say(99, &format!("/cancel {held}")); // not an allowed chat: ignored
    tg.say(11, "/status");
    tg.say(11, &format!("/progress {}", &held[..20]));
    tg.say(11, &format!("/retry {done}"));
    tg.say(11, &format!("/cancel {held}"));
    tg.say(11, "/status"); // the fifth in a minute: over the rate of 4
    wait_until(LONG, "the answers", || {
        tg.sent_containing(11, "cancel requested").is_some() && tg.sent_containing(11, "slow down").is_some()
    });
    let status = tg.sent_containing(11, "running").unwrap();
    assert!(status.contains(&held), "{status}");
    assert!(
        tg.sent_containing(11, &format!("{held} running · attempt 1")).is_some(),
        "{:?}",
        tg.sent()
    );
    let retried = tg.sent_containing(11, "will run again as").unwrap();
    assert!(tg.sent().iter().all(|(c, _)| *c != 99), "no answer to a stranger");
    wait_until(LONG, "the cancel and the retry", || home.results().len() == 3);
    let cancelled = home.results().into_iter().find(|r| r["id"] == held.as_str()).unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    let again = home
        .results()
        .into_iter()
        .find(|r| r["parent_task_id"] == done.as_str())
        .unwrap();
    assert!(retried.contains(again["id"].as_str().unwrap()), "{retried}");
    assert_eq!(again["status"], "succeeded");
    wait_until(LONG, "the cancel told", || {
        tg.sent_containing(22, "cancelled: Held task").is_some()
    });

    sigterm(daemon.id());
    daemon.wait().unwrap();
    // Commands are taken once: a restart does not run them again.
    let offset: i64 = std::fs::read_to_string(home.path.join("notify/telegram.offset"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(offset, 106);
    assert!(!all_text(&home).contains(TOKEN), "the token is in no record or log");
    assert!(!stdout(&home.cli(&["config"])).contains(TOKEN));
}

#[test]
fn bad_notify_sections_are_errors_that_say_what_to_fix() {
    for (yaml, part) in [
        ("notify:\n  webhook:\n    url: ftp://x\n", "notify.webhook.url"),
        (
            "notify:\n  webhook:\n    url: http://127.0.0.1:9/h\n    events: [task_finished]\n",
            "task_finished",
        ),
        ("notify:\n  telegram:\n    bot_token: x\n", "chat_ids"),
        ("notify:\n  slack: {}\n", "slack"),
    ] {
        let home = TestHome::with_config(&(base_config() + yaml));
        let out = home.cli(&["config"]);
        assert_eq!(out.status.code(), Some(2), "{yaml}");
        assert!(stderr(&out).contains(part), "{yaml}: {}", stderr(&out));
    }
}

#[test]
fn a_message_that_is_not_valid_json_text_does_not_make_the_bot_deaf() {
    let tg = FakeTelegram::start();
    let home = TestHome::with_config(
        &(base_config()
            + &format!(
                "notify:\n  telegram:\n    bot_token: \"{TOKEN}\"\n    chat_ids: [11]\n    api_url: {}\n",
                tg.server.url()
            )),
    );
    let mut daemon = home.spawn_daemon();
    home.wait_started(1);
    tg.say_bad_text(11);
    tg.say(11, "/status");
    wait_until(LONG, "the /status after the broken message answered", || {
        tg.sent_containing(11, "running").is_some() || tg.sent_containing(11, "queued").is_some()
    });
    sigterm(daemon.id());
    daemon.wait().unwrap();
}

#[test]
fn a_send_that_hangs_does_not_hold_the_daemons_stop() {
    let server = FakeHttp::start(|_, gate| {
        // Never answers while the test runs (the gate opens when it ends).
        gate.wait(Duration::from_secs(300));
        (200, json!({}))
    });
    let home = TestHome::with_config(
        &(base_config()
            + &format!(
                "notify:\n  timeout: 5m\n  webhook:\n    url: {}/hook\n    events: [task_succeeded]\n",
                server.url()
            )),
    );
    let mut daemon = home.spawn_daemon();
    home.wait_started(1);
    home.drop_task("ok.yaml", "agent: command\ncommand: echo fine\n");
    wait_until(LONG, "the webhook's request", || !server.requests().is_empty());
    let asked = std::time::Instant::now();
    sigterm(daemon.id());
    wait_until(LONG, "the daemon to stop", || daemon.try_wait().unwrap().is_some());
    let took = asked.elapsed();
    // shutdown_grace (1 s) and the notifier's 3 s, not notify.timeout's 5 minutes.
    assert!(took < Duration::from_secs(30), "the stop took {took:?}");
    assert_eq!(outbox_len(&home), 1, "the unsent notification waits for the next start");
}
