//! Watching the inbox. Watcher events are only hints that something changed;
//! the intake decides what a file is after settling it, and a periodic rescan
//! (in the daemon) catches whatever the watcher missed: files present at start,
//! events dropped under load, network shares that send none.
//!
//! We use `notify`'s raw events rather than `notify-debouncer-full`: the
//! intake keeps its own per-file settle deadline (it needs one anyway for files
//! found by rescan), and a debouncer adds its tick (a quarter of the timeout)
//! on top of the debounce, which would put pickup latency well above
//! "debounce + 5 ms".

use crate::config::WatchMode;
use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher as _};
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// What the watcher tells the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// Something happened to this inbox entry (by file name).
    Changed(String),
    /// A writer created or wrote to this file and may still hold it open.
    Written(String),
    /// A writer closed this file after writing to it (Linux's inotify says so;
    /// other platforms' watchers do not).
    Closed(String),
    /// Events may have been lost: list the folder.
    Rescan,
    /// The config file changed (or appeared, or went).
    Config,
}

/// Keeps the OS watcher alive; dropping it stops watching.
pub struct InboxWatcher {
    _inner: Box<dyn notify::Watcher + Send>,
    pub mode: WatchMode,
}

impl InboxWatcher {
    /// Does this watcher report a writer closing a file ([`Hint::Closed`])?
    /// Linux's native watcher (inotify's close-write) does; polling and the
    /// other platforms' watchers do not.
    pub fn reports_close(&self) -> bool {
        cfg!(target_os = "linux") && self.mode == WatchMode::Native
    }
}

/// Starts watching `inbox` (not its subfolders). A native watcher that cannot
/// start (inotify limits, unsupported filesystem) falls back to polling.
pub fn start(
    inbox: &Path,
    mode: WatchMode,
    poll_every: Duration,
    tx: UnboundedSender<Hint>,
) -> notify::Result<InboxWatcher> {
    let handler = move |res: notify::Result<notify::Event>| match res {
        Ok(event) => {
            if event.need_rescan() {
                let _ = tx.send(Hint::Rescan);
            }
            // Reads say nothing new. Names leaving the inbox (removed, or renamed
            // away: above all our own claims) need no hint either: a queued file that
            // is gone fails its claim harmlessly and the next rescan forgets it, and
            // skipping them spares the loop a wake-up and a stat for every task.
            let hint: fn(String) -> Hint = match event.kind {
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => Hint::Closed,
                EventKind::Access(_) | EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                    return;
                }
                EventKind::Create(CreateKind::File) | EventKind::Modify(ModifyKind::Data(_)) => Hint::Written,
                _ => Hint::Changed,
            };
            for p in &event.paths {
                if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
                    let _ = tx.send(hint(name.to_string()));
                }
            }
        }
        Err(_) => {
            let _ = tx.send(Hint::Rescan);
        }
    };
    if mode == WatchMode::Native {
        match notify::recommended_watcher(handler.clone()) {
            Ok(mut w) => match w.watch(inbox, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    return Ok(InboxWatcher {
                        _inner: Box::new(w),
                        mode,
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "native watcher failed; polling the inbox instead")
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "native watcher unavailable; polling the inbox instead")
            }
        }
    }
    let config = notify::Config::default().with_poll_interval(poll_every);
    let mut w = notify::PollWatcher::new(handler, config)?;
    w.watch(inbox, RecursiveMode::NonRecursive)?;
    Ok(InboxWatcher {
        _inner: Box::new(w),
        mode: WatchMode::Poll,
    })
}

/// Watches the config file `path` through its folder (an editor saves by
/// writing another file and renaming it over the old one), if the OS's
/// watcher can: [`Hint::Config`] for any event that names it. `None` where it
/// cannot; the daemon compares the file at every rescan anyway.
pub fn watch_config(path: &Path, tx: UnboundedSender<Hint>) -> Option<Box<dyn notify::Watcher + Send>> {
    let name = path.file_name()?.to_os_string();
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let handler = move |res: notify::Result<notify::Event>| {
        let ours = match &res {
            Ok(event) => {
                !matches!(event.kind, EventKind::Access(_)) && event.paths.iter().any(|p| p.file_name() == Some(&name))
            }
            Err(_) => true,
        };
        if ours {
            let _ = tx.send(Hint::Config);
        }
    };
    let mut w = notify::recommended_watcher(handler).ok()?;
    w.watch(folder, RecursiveMode::NonRecursive).ok()?;
    Some(Box::new(w))
}
