//! Test harness: a temporary orchestrator home driven through the built binary,
//! as a user would drive it (drop files, run the CLI, read the files).
#![allow(dead_code, clippy::unwrap_used)]

mod skip;
pub use skip::skip;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_orchestrator");

/// The fake agent CLI (the `fake-agent` package of this workspace), built on
/// first use beside the orchestrator binary: it is a package of its own so
/// that installing orchestrator never installs it.
pub fn fake_agent() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let bin = Path::new(BIN);
        let profile_dir = bin.parent().expect("the binary's folder");
        let target_dir = profile_dir.parent().expect("the target folder");
        let mut build = Command::new(env!("CARGO"));
        build
            .args(["build", "--quiet", "-p", "fake-agent", "--target-dir"])
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let out = build.output().expect("cargo runs");
        assert!(
            out.status.success(),
            "building fake-agent failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        profile_dir
            .join(format!("fake-agent{}", std::env::consts::EXE_SUFFIX))
            .display()
            .to_string()
    })
}

pub struct TestHome {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

/// Config used by every test unless it writes its own: fast settle, fast retries,
/// the fake Claude CLI.
pub fn base_config() -> String {
    config_with("", "")
}

/// The base config plus top-level lines `top` and lines for `agents.claude` (`claude`, indented by 4).
/// A top-level key in `top` that the base also sets (`kill_grace: 10s`) replaces the base's line.
pub fn config_with(top: &str, claude: &str) -> String {
    let base = "debounce_ms: 50\nrescan_interval: 1s\nrecovery_interval: 1s\nkill_grace: 500ms\nshutdown_grace: 1s\nprogress_interval: 50ms\n";
    let overridden = |line: &str| {
        let key = line.split(':').next().unwrap_or("");
        top.lines().any(|t| t.split(':').next() == Some(key))
    };
    let base: String = base
        .lines()
        .filter(|l| !overridden(l))
        .map(|l| format!("{l}\n"))
        .collect();
    format!(
        "{base}retry:\n  max_attempts: 3\n  backoff_initial: 50ms\n  backoff_max: 200ms\n{top}\nagents:\n  claude:\n    command: {}\n{claude}\n",
        fake_agent()
    )
}

impl TestHome {
    pub fn new() -> Self {
        Self::with_config(&base_config())
    }

    pub fn with_config(yaml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(path.join("orchestrator.yaml"), yaml).unwrap();
        for d in ["inbox", "results", "logs"] {
            std::fs::create_dir_all(path.join(d)).unwrap();
        }
        Self { _dir: dir, path }
    }

    pub fn inbox(&self) -> PathBuf {
        self.path.join("inbox")
    }

    /// Waits (generously) until `n` daemons have started on this home (their
    /// `daemon_started` events): registered in `run/`, about to watch the inbox.
    /// A file dropped from then on is seen, by the watcher or the first rescan.
    pub fn wait_started(&self, n: usize) {
        wait_until(Duration::from_secs(30), "the daemons to start", || {
            self.events_of("daemon_started").len() >= n
        });
    }

    /// `tail-events -f --json -n N` on this home, its lines arriving as they are printed.
    pub fn follow_events(&self, n: usize) -> Follower {
        let mut child = self
            .cmd()
            .args(["tail-events", "-f", "--json", "-n", &n.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Follower { child, lines, reader }
    }

    /// Writes a task whose file was last modified `age` ago: the queue orders
    /// by modification time, and a file that old has settled at once.
    pub fn drop_task_aged(&self, name: &str, content: impl AsRef<[u8]>, age: Duration) {
        let tmp = self.inbox().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        let f = std::fs::File::options().write(true).open(&tmp).unwrap();
        f.set_modified(std::time::SystemTime::now() - age).unwrap();
        drop(f);
        std::fs::rename(&tmp, self.inbox().join(name)).unwrap();
    }

    /// Writes a task the way careful writers do: a temporary name, then a rename.
    pub fn drop_task(&self, name: &str, content: impl AsRef<[u8]>) {
        let tmp = self.inbox().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, self.inbox().join(name)).unwrap();
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--home")
            .arg(&self.path)
            .env_remove("ORCHESTRATOR_HOME")
            .env("NO_COLOR", "1")
            .env("ORCHESTRATOR_LOG", "warn");
        c
    }

    /// `orchestrator run --once`, bounded by `limit`.
    pub fn run_once_within(&self, limit: Duration) -> Output {
        let mut c = self.cmd();
        c.args(["run", "--once"]).stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = c.spawn().unwrap();
        wait_output(child, limit)
    }

    pub fn run_once(&self) -> Output {
        self.run_once_within(Duration::from_secs(60))
    }

    /// A daemon in the background.
    pub fn spawn_daemon(&self) -> Child {
        let mut c = self.cmd();
        c.arg("run").stdout(Stdio::null()).stderr(Stdio::piped());
        c.spawn().unwrap()
    }

    pub fn results(&self) -> Vec<Value> {
        let mut v: Vec<Value> = std::fs::read_dir(self.path.join("results"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| std::fs::read(e.path().join("result.json")).ok())
            .map(|b| serde_json::from_slice(&b).expect("result.json parses"))
            .collect();
        v.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        v
    }

    /// The result of the task that came from inbox file `name`.
    pub fn result_of(&self, name: &str) -> Value {
        let all = self.results();
        all.iter()
            .find(|r| r["source_file"] == name)
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "no result for {name}; have {:?}",
                    all.iter().map(|r| r["source_file"].clone()).collect::<Vec<_>>()
                )
            })
    }

    pub fn task_dir(&self, id: &str) -> PathBuf {
        self.path.join("results").join(id)
    }

    pub fn events(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.path.join("logs/events.ndjson")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("event line parses"))
            .collect()
    }

    pub fn events_of(&self, kind: &str) -> Vec<Value> {
        self.events().into_iter().filter(|e| e["event"] == kind).collect()
    }

    pub fn index(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.path.join("results/index.json")).unwrap()).unwrap()
    }

    pub fn rejected(&self, name: &str) -> Value {
        let p = self.inbox().join("rejected").join(format!("{name}.error.json"));
        assert!(
            self.inbox().join("rejected").join(name).exists(),
            "{name} moved to rejected/"
        );
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }
}

/// A running `tail-events -f` ([`TestHome::follow_events`]).
pub struct Follower {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    reader: std::thread::JoinHandle<()>,
}

impl Follower {
    /// The next event it prints, if one comes within `limit`.
    pub fn next(&self, limit: Duration) -> Option<Value> {
        let line = self.lines.recv_timeout(limit).ok()?;
        Some(serde_json::from_str(&line).expect("tail-events prints whole JSON lines"))
    }

    /// Events until `done` says enough, or `limit` passed.
    pub fn until(&self, limit: Duration, mut done: impl FnMut(&[Value]) -> bool) -> Vec<Value> {
        let end = Instant::now() + limit;
        let mut seen = Vec::new();
        while !done(&seen) && Instant::now() < end {
            if let Some(v) = self.next(Duration::from_millis(200)) {
                seen.push(v);
            }
        }
        seen
    }

    /// Stops it; returns what it printed that was not read yet.
    pub fn stop(mut self) -> Vec<Value> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Its pipe is closed: the reader ends at the last whole line.
        let _ = self.reader.join();
        self.lines
            .try_iter()
            .map(|l| serde_json::from_str(&l).expect("tail-events prints whole JSON lines"))
            .collect()
    }
}

/// Waits for `child` (at most `limit`, then kills it and fails), reading its
/// piped stdout and stderr meanwhile: a child that prints more than a pipe
/// holds (64 KiB) would otherwise wait for a reader forever.
pub fn wait_output(mut child: Child, limit: Duration) -> Output {
    fn drain(pipe: Option<impl std::io::Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            bytes
        })
    }
    let (out, err) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "timed out after {limit:?}; stderr: {}",
                String::from_utf8_lossy(&err.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Polls `cond` until it holds or `limit` passes.
pub fn wait_until(limit: Duration, what: &str, cond: impl FnMut() -> bool) {
    wait_until_or(limit, cond, || format!("timed out waiting for {what}"));
}

/// [`wait_until`], failing with what `why` says at the deadline (what is still
/// there, say).
pub fn wait_until_or(limit: Duration, mut cond: impl FnMut() -> bool, why: impl FnOnce() -> String) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() >= limit {
            panic!("{}", why());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Reads `bytes` through `reader` with the supervisor's line splitter, in
/// chunks of `chunk` bytes, as the daemon reads an agent's stdout.
pub fn read_stream(
    mut reader: Box<dyn orchestrator::agents::OutputReader>,
    bytes: &[u8],
    chunk: usize,
) -> orchestrator::agents::AgentReport {
    use orchestrator::agents::supervise::{LineSplitter, Piece};
    let mut split = LineSplitter::new(1 << 20);
    for part in bytes.chunks(chunk) {
        split.push(part, |p| match p {
            Piece::Line(l) => {
                let out = reader.on_line(l);
                assert!(out.stop.is_none(), "a recorded run without limits is never stopped");
            }
            Piece::Oversized => reader.on_oversized_line(),
        });
    }
    if let Some(tail) = split.finish() {
        reader.on_partial_tail(&tail);
    }
    reader.into_report()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Is a process with this pid alive (and not a zombie)?
#[cfg(unix)]
/// Whether `pid` is a live process (a zombie is not: it has ended). Linux
/// reads its state; other Unixes ask the kernel (a zombie child of ours counts
/// as alive there until it is reaped, so the tests reap what they start).
#[cfg(unix)]
pub fn alive(pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => {
                let state = stat
                    .rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().next())
                    .unwrap_or("");
                state != "Z" && state != "X"
            }
            Err(_) => false,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let Ok(pid) = i32::try_from(pid) else { return false };
        // SAFETY: signal 0 only checks that the process exists.
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
}

#[cfg(unix)]
pub fn kill9(pid: u32) {
    unsafe {
        libc_kill(pid as i32, 9);
    }
}

#[cfg(unix)]
pub fn sigterm(pid: u32) {
    unsafe {
        libc_kill(pid as i32, 15);
    }
}

#[cfg(unix)]
unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

pub fn read_pids(path: &Path) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

impl TestHome {
    /// Runs a CLI verb to completion.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut c = self.cmd();
        c.args(args).stdin(Stdio::null());
        wait_output(
            c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap(),
            Duration::from_secs(60),
        )
    }

    /// Runs a verb with `--json` and parses its stdout.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.cli(&a);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}\nstdout: {}\nstderr: {}", stdout(&out), stderr(&out)))
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `run --once` on `home` and returns its exit code and peak resident
/// memory in KiB (Linux: `wait4`'s rusage of the daemon).
#[cfg(target_os = "linux")]
#[allow(dead_code)]
pub fn run_once_peak_rss(home: &TestHome) -> (i32, i64) {
    let mut c = home.cmd();
    c.args(["run", "--once"]).stdout(Stdio::null()).stderr(Stdio::null());
    // Reaped by wait4 below, which also reports its peak memory.
    #[allow(clippy::zombie_processes)]
    let child = c.spawn().unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: our own unreaped child; valid out-pointers.
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(r, child.id() as i32);
    (libc::WEXITSTATUS(status), usage.ru_maxrss)
}

/// Runs a shell script in `dir` with a git identity set; its stdout.
#[cfg(unix)]
#[allow(dead_code)]
pub fn git_sh(dir: &Path, script: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
pub mod fake_http;
pub mod mock_api;
pub mod mock_gemini;
pub mod mock_responses;
pub mod real;
pub mod web;

/// Live processes (not zombies) whose environment holds `KEY=VALUE` (Linux:
/// `/proc/<pid>/environ`), with their command lines.
#[cfg(target_os = "linux")]
pub fn processes_with_env(entry: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || !alive(pid) {
            continue;
        }
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|kv| kv == entry.as_bytes()) {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            found.push((pid, cmd));
        }
    }
    found
}

/// Runs the command task `first` (a `.yaml` body), then a `cat` task with
/// `context_from: [its id]`, each by `run --once`; the second's result (its
/// output is the stdin it was given: the digest, then the prompt).
pub fn run_with_context_from(home: &TestHome, first: &str) -> Value {
    home.drop_task("first.yaml", first);
    home.run_once();
    let id = home.result_of("first.yaml")["id"].as_str().unwrap().to_string();
    home.drop_task(
        "next.yaml",
        format!("agent: command\ncommand: cat\ncontext_from: [{id}]\nprompt: go on\n"),
    );
    home.run_once();
    home.result_of("next.yaml")
}

/// Every verb a person types.
pub const VERBS: &[&str] = &[
    "run",
    "submit",
    "status",
    "list",
    "show",
    "results",
    "logs",
    "cancel",
    "retry",
    "resume",
    "reply",
    "apply",
    "tail-events",
    "stats",
    "doctor",
    "clean",
    "create-sample",
    "plan",
    "reindex",
    "config",
    "schedule",
    "completions",
];
