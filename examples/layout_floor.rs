//! The least work a home's layout asks of each task, and nothing else: the
//! floor under the 1,000-task burst (`bench/floor.py` runs it beside the
//! daemon and `xargs -P2`).
//!
//! Two threads take the inbox's files in name order. For each: the task's
//! folder, a locked `owner.lock` with the original name, the claim's rename,
//! the task read back, `plan.json`, two event appends under the log's lock
//! (with the stat that notices a rotation), `sh -c true` with its output on
//! pipes in its own process group, the summary and `result.json` (each
//! written beside the task and renamed into place), and the result appended
//! to a commit log that a third thread flushes every 5 ms. No parsing, no
//! runtime, no checks, no index: what is left of the daemon's time above
//! this is its own.
//!
//! `cargo run --release --example layout_floor -- HOME`

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Home {
    root: PathBuf,
    names: Vec<String>,
    next: AtomicUsize,
    events: Mutex<File>,
    events_lock: File,
    commits: Mutex<File>,
}

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(std::env::args().nth(1).expect("usage: layout_floor HOME"));
    for d in ["results", "summaries", "logs"] {
        fs::create_dir_all(root.join(d))?;
    }
    let mut names = Vec::new();
    for e in fs::read_dir(root.join("inbox"))? {
        names.push(e?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    let append = |p: &Path| OpenOptions::new().create(true).append(true).open(p);
    let home = Arc::new(Home {
        names,
        next: AtomicUsize::new(0),
        events: Mutex::new(append(&root.join("logs/events.ndjson"))?),
        events_lock: OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join("logs/.events.lock"))?,
        commits: Mutex::new(append(&root.join("results/.commits"))?),
        root,
    });
    let done = Arc::new(AtomicBool::new(false));
    let flusher = {
        let (home, done) = (home.clone(), done.clone());
        std::thread::spawn(move || -> std::io::Result<()> {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
                let log = home.commits.lock().expect("not poisoned").try_clone()?;
                log.sync_data()?;
            }
            Ok(())
        })
    };
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let home = home.clone();
            std::thread::spawn(move || work(&home))
        })
        .collect();
    for w in workers {
        w.join().expect("worker")?;
    }
    done.store(true, Ordering::Relaxed);
    flusher.join().expect("flusher")
}

fn work(home: &Home) -> std::io::Result<()> {
    let root = &home.root;
    loop {
        let i = home.next.fetch_add(1, Ordering::Relaxed);
        let Some(name) = home.names.get(i) else { return Ok(()) };
        let id = format!("01floor{i:019}");
        let dir = root.join("results").join(&id);
        fs::create_dir(&dir)?;
        let owner = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(dir.join("owner.lock"))?;
        owner.try_lock().map_err(std::io::Error::other)?;
        (&owner).write_all(format!("{{\"source_file\":{name:?}}}\n").as_bytes())?;
        fs::rename(root.join("inbox").join(name), dir.join("task.yaml"))?;
        let mut task = String::new();
        File::open(dir.join("task.yaml"))?.read_to_string(&mut task)?;
        fs::write(
            dir.join("plan.json"),
            format!("{{\"id\":{id:?},\"task\":{task:?}}}\n").repeat(8),
        )?;
        event(
            home,
            &format!("{{\"event\":\"task_started\",\"task_id\":{id:?}}}\n").repeat(2),
        )?;
        let mut command = Command::new("sh");
        command
            .args(["-c", "true"])
            .current_dir(root)
            .env("PWD", root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn()?;
        let mut out = Vec::new();
        if let Some(mut o) = child.stdout.take() {
            o.read_to_end(&mut out)?;
        }
        if let Some(mut e) = child.stderr.take() {
            e.read_to_end(&mut out)?;
        }
        child.wait()?;
        let staged = dir.join(".summary.tmp");
        fs::write(&staged, format!("# {name}\n\n- **Task:** `{id}`\n").repeat(6))?;
        fs::rename(&staged, root.join("summaries").join(format!("{id}.md")))?;
        let result = format!("{{\"id\":{id:?},\"status\":\"succeeded\"}}\n").repeat(18);
        let staged = dir.join(".result.tmp");
        fs::write(&staged, &result)?;
        home.commits
            .lock()
            .expect("not poisoned")
            .write_all(result.as_bytes())?;
        fs::rename(&staged, dir.join("result.json"))?;
        event(
            home,
            &format!("{{\"event\":\"task_succeeded\",\"task_id\":{id:?}}}\n").repeat(2),
        )?;
        drop(owner);
    }
}

/// One append to the event log, as the daemon makes it: under the log's
/// lock, after a stat of its path.
fn event(home: &Home, lines: &str) -> std::io::Result<()> {
    let log = home.events.lock().expect("not poisoned");
    home.events_lock.lock()?;
    fs::metadata(home.root.join("logs/events.ndjson"))?;
    let written = (&*log).write_all(lines.as_bytes());
    home.events_lock.unlock()?;
    written
}
