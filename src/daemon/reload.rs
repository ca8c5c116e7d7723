//! Live config: `orchestrator.yaml` read again while the daemon runs.
//!
//! The file is watched (its folder, so that an editor's save-by-rename is
//! seen), compared with what was read at every rescan (for homes on shares,
//! where no event comes), and read again on SIGHUP. A new config is loaded the
//! way the daemon loaded its first (the file, then `ORCHESTRATOR_*`, then the
//! command line's flags), checked whole, and only then put in force; a bad
//! edit is reported (`config_reloaded` with `ok: false`, and the log) and the
//! config in force stays.
//!
//! What takes effect when: new tasks (claimed after the reload) run with the
//! new config; running tasks keep the one they started with. `max_concurrent`
//! acts at once: raised, queued tasks start; lowered, no task starts until
//! enough running ones have finished. The intake's rules (roots, default
//! workdir, roles, limits) apply to files judged from then on, and the claim
//! checks every file again with the rules in force. `watch` and `events` are
//! read only at start: a change to them is reported as needing a restart.

use super::handlers::Daemon;
use crate::config::{Config, ConfigError, Loaded};
use crate::events::Event;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Keys read only when the daemon starts.
pub const RESTART_KEYS: &[&str] = &["watch", "events"];

/// Where the config comes from, to read it again the same way.
pub struct ConfigSource {
    home_config: PathBuf,
    /// `--config FILE`, if given.
    file: Option<PathBuf>,
    /// `--set KEY=VALUE` and the verb's own flags.
    flags: Vec<(String, String)>,
    /// The file's size and modification time when it was last read.
    stamp: Option<Stamp>,
    /// The last reload was refused: the next good one is said even when it
    /// changes nothing (a bad edit undone), so the operator knows it is fixed.
    pub refused: bool,
}

type Stamp = (u64, Option<SystemTime>);

fn stamp_of(path: &Path) -> Option<Stamp> {
    std::fs::metadata(path).ok().map(|m| (m.len(), m.modified().ok()))
}

impl ConfigSource {
    pub fn new(home_config: PathBuf, file: Option<PathBuf>, flags: Vec<(String, String)>) -> Self {
        // No stamp yet: the config in force was read before this daemon
        // could look at the file's stamp, and an edit saved in between would
        // otherwise pass for what was read. The first look (the first rescan)
        // reads the file again; the same config changes nothing.
        Self {
            home_config,
            file,
            flags,
            stamp: None,
            refused: false,
        }
    }

    /// The file that is (or would be) read.
    pub fn path(&self) -> PathBuf {
        self.file.clone().unwrap_or_else(|| self.home_config.clone())
    }

    /// Has the file changed (or appeared, or gone) since it was last read?
    pub fn changed(&self) -> bool {
        stamp_of(&self.path()) != self.stamp
    }

    /// Reads the config again.
    pub fn load(&mut self) -> Result<Loaded, ConfigError> {
        self.stamp = stamp_of(&self.path());
        crate::config::load(&self.home_config, self.file.as_deref(), std::env::vars(), &self.flags)
    }
}

/// The keys whose values differ, dotted to two levels (`retry.max_attempts`,
/// `agents.claude`): names only, since values may be secrets.
pub fn changed_keys(old: &Config, new: &Config) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return Vec::new();
    };
    let mut changed = Vec::new();
    for (key, va) in &a {
        let vb = &b[key];
        if va == vb {
            continue;
        }
        match (va, vb) {
            (serde_json::Value::Object(ma), serde_json::Value::Object(mb)) => {
                let mut names: Vec<&String> = ma.keys().chain(mb.keys()).collect();
                names.sort();
                names.dedup();
                changed.extend(
                    names
                        .into_iter()
                        .filter(|k| ma.get(*k) != mb.get(*k))
                        .map(|k| format!("{key}.{k}")),
                );
            }
            _ => changed.push(key.clone()),
        }
    }
    changed.sort();
    changed
}

/// Permits the agent slots owe after `max_concurrent` was lowered while more
/// tasks ran than the new value: taken (and forgotten) as running tasks give
/// theirs back, before a new task gets one (the semaphore serves waiters in
/// order).
#[derive(Default)]
pub struct SlotDebt {
    owed: Arc<AtomicUsize>,
    collector: Option<JoinHandle<()>>,
}

impl Drop for SlotDebt {
    fn drop(&mut self) {
        if let Some(c) = &self.collector {
            c.abort();
        }
    }
}

/// Takes up to `n` from `owed`; how many were taken.
fn pay(owed: &AtomicUsize, n: usize) -> usize {
    let before = owed
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |o| Some(o - o.min(n)))
        .unwrap_or(0);
    before.min(n)
}

#[cfg(test)]
impl SlotDebt {
    /// Permits still owed.
    pub fn owed(&self) -> usize {
        self.owed.load(Ordering::Acquire)
    }
}

/// Resizes `slots` from `from` to `to` permits in all, whatever the running
/// tasks hold: a raise pays back what is still owed first; a lowering takes
/// the free permits at once and owes the rest.
pub fn resize_slots(slots: &Arc<Semaphore>, debt: &mut SlotDebt, from: usize, to: usize) {
    if to >= from {
        let raise = to - from;
        slots.add_permits(raise - pay(&debt.owed, raise));
        return;
    }
    let lower = from - to;
    let rest = lower - slots.forget_permits(lower);
    if rest == 0 {
        return;
    }
    debt.owed.fetch_add(rest, Ordering::AcqRel);
    if debt.collector.as_ref().is_none_or(|c| c.is_finished()) {
        let (sem, owed) = (slots.clone(), debt.owed.clone());
        debt.collector = Some(tokio::spawn(async move {
            while owed.load(Ordering::Acquire) > 0 {
                let Ok(permit) = sem.clone().acquire_owned().await else {
                    return;
                };
                if pay(&owed, 1) == 1 {
                    permit.forget();
                }
            }
        }));
    }
}

impl Daemon {
    /// Reads the config again and, if it is good, puts it in force.
    /// `trigger`: `file` or `sighup`. A file that changed back to what is in
    /// force says nothing, unless the last reload was refused (then the fix
    /// is confirmed).
    pub fn reload(&mut self, trigger: &str) {
        let file = Some(self.config_source.path()).filter(|p| p.exists());
        let loaded = match self.config_source.load() {
            Ok(l) => l,
            Err(e) => {
                self.config_source.refused = true;
                tracing::error!(error = %e, "the config was not reloaded; the one in force stays");
                self.shared.events.emit(
                    None,
                    Event::ConfigReloaded {
                        ok: false,
                        trigger: trigger.into(),
                        file,
                        changed: Vec::new(),
                        restart_needed: Vec::new(),
                        error: Some(format!("{e}; the config in force stays")),
                    },
                );
                return;
            }
        };
        let old = self.shared.config();
        let new = Arc::new(loaded.config);
        let changed = changed_keys(&old, &new);
        let fixed = std::mem::take(&mut self.config_source.refused);
        if changed.is_empty() && trigger == "file" && !fixed {
            return;
        }
        if fixed {
            tracing::info!("the config is good again ({} keys changed)", changed.len());
        }
        let restart_needed: Vec<String> = changed
            .iter()
            .filter(|k| {
                RESTART_KEYS
                    .iter()
                    .any(|r| k.as_str() == *r || k.starts_with(&format!("{r}.")))
            })
            .cloned()
            .collect();
        // Secrets of the new config join those known: a task started before
        // may still print an old one.
        let redactor = Arc::new(self.shared.redactor().merged(&new.redactor()));
        self.shared.events.set_redactor(redactor.clone());
        *self.shared.redactor.write().unwrap_or_else(|e| e.into_inner()) = redactor;
        resize_slots(
            &self.shared.slots,
            &mut self.slot_debt,
            old.max_concurrent,
            new.max_concurrent,
        );
        self.rules = super::rules(&new, &self.shared.home, self.shared.owner_only);
        // Tasks parsed under the old config are parsed again at their claim.
        self.judged.clear();
        self.intake.set_debounce(new.debounce());
        self.notifier.configure(new.clone());
        if changed.iter().any(|k| k == "schedules" || k.starts_with("schedules.")) {
            self.scheduler = super::schedules::Scheduler::reload(&new, &self.shared.home, &self.shared.events);
        }
        *self.shared.config.write().unwrap_or_else(|e| e.into_inner()) = new;
        tracing::info!(trigger, changed = ?changed, "config reloaded");
        self.shared.events.emit(
            None,
            Event::ConfigReloaded {
                ok: true,
                trigger: trigger.into(),
                file,
                changed,
                restart_needed,
                error: None,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_name_what_changed_two_levels_deep() {
        let old = Config::default();
        let mut new = Config {
            max_concurrent: 5,
            ..Config::default()
        };
        new.retry.max_attempts = 7;
        new.agents.insert("claude".into(), Default::default());
        assert_eq!(
            changed_keys(&old, &new),
            ["agents.claude", "max_concurrent", "retry.max_attempts"]
        );
        assert!(changed_keys(&old, &old).is_empty());
    }

    #[tokio::test]
    async fn slots_grow_at_once_and_shrink_as_running_tasks_give_theirs_back() {
        let slots = Arc::new(Semaphore::new(2));
        let mut debt = SlotDebt::default();
        // Two tasks run and hold both permits.
        let a = slots.clone().acquire_owned().await.unwrap();
        let b = slots.clone().acquire_owned().await.unwrap();
        resize_slots(&slots, &mut debt, 2, 1);
        assert_eq!(debt.owed(), 1);
        drop(a);
        // The freed permit pays the debt: still none free.
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while debt.owed() > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        assert_eq!(slots.available_permits(), 0);
        drop(b);
        assert_eq!(slots.available_permits(), 1, "one slot now");
        // Raised to 3: two more at once.
        resize_slots(&slots, &mut debt, 1, 3);
        assert_eq!(slots.available_permits(), 3);
        // Lowered with permits free: taken at once, nothing owed.
        resize_slots(&slots, &mut debt, 3, 1);
        assert_eq!((slots.available_permits(), debt.owed()), (1, 0));
    }

    #[tokio::test]
    async fn a_raise_pays_back_what_a_lowering_still_owed() {
        let slots = Arc::new(Semaphore::new(2));
        let mut debt = SlotDebt::default();
        let _a = slots.clone().acquire_owned().await.unwrap();
        let _b = slots.clone().acquire_owned().await.unwrap();
        resize_slots(&slots, &mut debt, 2, 1);
        resize_slots(&slots, &mut debt, 1, 4);
        assert_eq!(debt.owed(), 0, "the raise of 3 paid the 1 owed");
        assert_eq!(slots.available_permits(), 2, "4 in all, 2 held");
    }
}
