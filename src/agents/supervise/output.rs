//! An agent's output: stdout read a line at a time into its reader (with
//! the live limits it enforces), stderr kept as a tail for classifying
//! errors, both copied to capped files and always read to the end, so a
//! chatty agent never stalls on a full pipe.

use super::super::{AgentReport, OutputReader};
use super::ProgressFn;
use std::io::Write;
use std::path::PathBuf;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, watch};

/// Longest stdout line that is parsed; longer ones are skipped.
pub const MAX_LINE: usize = 8 * 1024 * 1024;
/// Kept of stderr for classifying errors.
const STDERR_TAIL: usize = 16 * 1024;

/// Splits a byte stream into lines, holding at most `max` bytes of one line.
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max: usize,
    skipping: bool,
}

/// A piece of output as the splitter sees it.
#[derive(Debug, PartialEq)]
pub enum Piece<'a> {
    Line(&'a [u8]),
    /// A line longer than the limit ended; its bytes were dropped.
    Oversized,
}

impl LineSplitter {
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            max,
            skipping: false,
        }
    }

    pub fn push(&mut self, mut chunk: &[u8], mut f: impl FnMut(Piece)) {
        while !chunk.is_empty() {
            match memchr(b'\n', chunk) {
                Some(i) => {
                    if self.skipping {
                        self.skipping = false;
                        f(Piece::Oversized);
                    } else if self.buf.is_empty() {
                        f(Piece::Line(&chunk[..i]));
                    } else {
                        self.buf.extend_from_slice(&chunk[..i]);
                        f(Piece::Line(&self.buf));
                        self.buf.clear();
                    }
                    chunk = &chunk[i + 1..];
                }
                None => {
                    if !self.skipping {
                        self.buf.extend_from_slice(chunk);
                        if self.buf.len() > self.max {
                            self.buf = Vec::new();
                            self.skipping = true;
                        }
                    }
                    chunk = &[];
                }
            }
        }
    }

    /// The incomplete last line, if any (`None` when it was oversized).
    pub fn finish(self) -> Option<Vec<u8>> {
        (!self.skipping && !self.buf.is_empty()).then_some(self.buf)
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// Copies up to `cap` bytes into a file; counts the rest.
///
/// The file is created at the first byte: an agent that writes nothing to a
/// stream leaves no empty file behind (most write nothing to stderr). Each
/// file a task creates costs inode allocation on the critical path; on ext4
/// that is one of the largest costs of a short task.
struct CappedFile {
    path: PathBuf,
    file: Option<std::fs::File>,
    failed: bool,
    written: u64,
    total: u64,
    cap: u64,
}

impl CappedFile {
    fn new(path: PathBuf, cap: u64) -> Self {
        Self {
            path,
            file: None,
            failed: false,
            written: 0,
            total: 0,
            cap,
        }
    }

    fn file(&mut self) -> Option<&mut std::fs::File> {
        if self.file.is_none() && !self.failed {
            match std::fs::File::create(&self.path) {
                Ok(f) => self.file = Some(f),
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot write agent output");
                    self.failed = true;
                }
            }
        }
        self.file.as_mut()
    }

    fn write(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let room = self.cap.saturating_sub(self.written) as usize;
        if room == 0 || bytes.is_empty() {
            return;
        }
        let part = &bytes[..bytes.len().min(room)];
        if let Some(f) = self.file()
            && f.write_all(part).is_err()
        {
            self.file = None;
            self.failed = true;
        }
        self.written += part.len() as u64;
        let cap = self.cap;
        if self.written >= cap
            && let Some(f) = self.file()
        {
            let _ = write!(f, "\n[orchestrator: output cut at {cap} bytes (max_output_bytes)]\n");
        }
    }
}

pub(super) async fn read_stdout(
    pipe: Option<impl AsyncRead + Unpin>,
    (path, cap): (PathBuf, u64),
    mut reader: Box<dyn OutputReader>,
    on_progress: ProgressFn,
    stop: mpsc::Sender<String>,
    mut give_up: watch::Receiver<bool>,
    alive: &Alive,
) -> (u64, AgentReport) {
    let mut file = CappedFile::new(path, cap);
    let mut split = LineSplitter::new(MAX_LINE);
    pump(pipe, 64 * 1024, &mut give_up, alive, |chunk| {
        file.write(chunk);
        let mut changed = false;
        split.push(chunk, |piece| match piece {
            Piece::Line(line) => {
                let out = reader.on_line(line);
                changed |= out.progress;
                if let Some(reason) = out.stop {
                    let _ = stop.try_send(reason);
                }
            }
            Piece::Oversized => reader.on_oversized_line(),
        });
        if changed {
            on_progress(reader.report());
        }
    })
    .await;
    if let Some(tail) = split.finish() {
        reader.on_partial_tail(&tail);
    }
    (file.total, reader.into_report())
}

/// When the agent last wrote anything, on stdout or stderr: what
/// `stall_timeout` measures. Any output is life, a tool's result or a
/// partial message as much as a finished line.
#[derive(Debug)]
pub(super) struct Alive {
    start: tokio::time::Instant,
    /// Milliseconds after `start`.
    last: std::sync::atomic::AtomicU64,
}

impl Alive {
    pub(super) fn new() -> Self {
        Self {
            start: tokio::time::Instant::now(),
            last: std::sync::atomic::AtomicU64::new(0),
        }
    }
    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last.store(ms, std::sync::atomic::Ordering::Relaxed);
    }
    /// When it last wrote (its start, before it wrote anything).
    pub(super) fn last(&self) -> tokio::time::Instant {
        self.start + std::time::Duration::from_millis(self.last.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// Reads `pipe` to its end (or until `give_up`), handing each chunk to `each`.
async fn pump(
    pipe: Option<impl AsyncRead + Unpin>,
    size: usize,
    give_up: &mut watch::Receiver<bool>,
    alive: &Alive,
    mut each: impl FnMut(&[u8]),
) {
    let Some(mut pipe) = pipe else { return };
    let mut buf = vec![0u8; FIRST_READ.min(size)];
    loop {
        let n = tokio::select! {
            r = pipe.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = give_up.changed() => break,
        };
        alive.touch();
        each(&buf[..n]);
        if n == buf.len() && n < size {
            buf.resize(size, 0);
        }
    }
}

/// The first read's buffer, grown to the pump's size once a read fills it.
/// Most commands print little or nothing, and a block this small is cheap:
/// glibc first tidies its freed small blocks for every request of 1 KiB or
/// more (a 64 KiB buffer for each agent cost the daemon 2% of a burst).
const FIRST_READ: usize = 1000;

pub(super) async fn read_stderr(
    pipe: Option<impl AsyncRead + Unpin>,
    path: PathBuf,
    cap: u64,
    mut give_up: watch::Receiver<bool>,
    alive: &Alive,
) -> (u64, String) {
    let mut file = CappedFile::new(path, cap);
    let mut tail: Vec<u8> = Vec::new();
    pump(pipe, 16 * 1024, &mut give_up, alive, |chunk| {
        file.write(chunk);
        tail.extend_from_slice(chunk);
        if tail.len() > 2 * STDERR_TAIL {
            tail.drain(..tail.len() - STDERR_TAIL);
        }
    })
    .await;
    let text = String::from_utf8_lossy(&tail).into_owned();
    (file.total, crate::agents::tail_str(&text, STDERR_TAIL).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(chunks: &[&[u8]], max: usize) -> (Vec<String>, Option<Vec<u8>>) {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, |p| {
                out.push(match p {
                    Piece::Line(l) => String::from_utf8_lossy(l).into_owned(),
                    Piece::Oversized => "<oversized>".into(),
                })
            });
        }
        (out, s.finish())
    }

    #[tokio::test]
    async fn the_first_read_is_small_and_a_full_one_grows_the_buffer() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let (_keep, mut give_up) = watch::channel(false);
        let alive = Alive::new();
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        pump(Some(&data[..]), 64 * 1024, &mut give_up, &alive, |c| {
            chunks.push(c.to_vec())
        })
        .await;
        let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
        assert_eq!(sizes, [FIRST_READ, 5000 - FIRST_READ]);
        assert_eq!(chunks.concat(), data);
        // A pump smaller than the first read never reads more than its size.
        let mut small: Vec<usize> = Vec::new();
        pump(Some(&data[..]), 512, &mut give_up, &alive, |c| small.push(c.len())).await;
        assert!(small.iter().all(|&n| n <= 512) && small.iter().sum::<usize>() == 5000);
    }

    #[test]
    fn lines_across_chunks() {
        let (lines, tail) = split_all(&[b"ab", b"c\nde", b"f\n\ngh"], 100);
        assert_eq!(lines, vec!["abc", "def", ""]);
        assert_eq!(tail.as_deref(), Some(&b"gh"[..]));
    }

    #[test]
    fn oversized_lines_are_skipped_with_bounded_memory() {
        let big = vec![b'x'; 50];
        let (lines, tail) = split_all(&[b"ok\n", &big, &big, b"\nnext\n", &big], 10);
        assert_eq!(lines, vec!["ok", "<oversized>", "next"]);
        assert_eq!(tail, None);
    }
}
