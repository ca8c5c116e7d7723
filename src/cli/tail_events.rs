//! `orchestrator tail-events`: the event log, from the end.
//!
//! The last lines are found by reading backwards from the end in blocks, so the
//! cost does not depend on the log's size. The log is opened shared (it never
//! blocks the daemon's appends or rotation, Windows included). `-f` follows it
//! across rotation: when `events.ndjson` is renamed away, the rest of the old
//! file is read through the open handle, then every log rotated after it (the
//! log may rotate several times between two polls), then the new one, so no
//! line is missed.

use super::common::{UsageError, since};
use super::{Cli, exit};
use crate::events::open_shared;
use serde_json::Value;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  orchestrator tail-events -n 50\n  orchestrator tail-events -f --event task_failed\n  orchestrator tail-events --task 01m80jw --since 1h --json"
)]
pub struct Args {
    /// How many (matching) lines to show from the end.
    #[arg(short = 'n', long = "lines", default_value_t = 20)]
    pub lines: usize,
    /// Keep printing new events as they come (across rotation).
    #[arg(short, long)]
    pub follow: bool,
    /// Only events of this task: an id, a unique prefix of one, or the name
    /// its file had in the inbox (a queued file is followed into its task).
    #[arg(long)]
    pub task: Option<String>,
    /// Only events of this type, e.g. task_failed.
    #[arg(long)]
    pub event: Option<String>,
    /// Only events newer than this, e.g. 30m, 2h.
    #[arg(long)]
    pub since: Option<String>,
    /// Raw NDJSON lines.
    #[arg(long)]
    pub json: bool,
}

struct Filter {
    task: Option<TaskSel>,
    event: Option<String>,
    since: Option<String>,
}

/// Which task's events `--task` keeps.
enum TaskSel {
    /// A task that has a folder.
    Id(String),
    /// What named no task (one removed by `clean`, say): ids starting with it.
    Prefix(String),
    /// A file still queued: its events by name, and once it starts (while
    /// following) those of the task it became. An older task of the same
    /// name in the log is not it.
    File {
        name: String,
        id: std::cell::RefCell<Option<String>>,
        following: std::cell::Cell<bool>,
    },
}

impl TaskSel {
    fn matches(&self, v: &Value) -> bool {
        let task_id = v["task_id"].as_str();
        match self {
            TaskSel::Id(id) => task_id == Some(id.as_str()),
            TaskSel::Prefix(p) => task_id.is_some_and(|t| t.starts_with(p.as_str())),
            TaskSel::File { name, id, following } => {
                if v["file"].as_str() == Some(name) {
                    // The newest start of a file of this name is its task.
                    if following.get() && v["event"] == "task_started" {
                        *id.borrow_mut() = task_id.map(String::from);
                    }
                    return true;
                }
                id.borrow().as_deref().is_some_and(|known| task_id == Some(known))
            }
        }
    }

    /// From here on the log is read as it grows.
    fn follow(&self) {
        if let TaskSel::File { following, .. } = self {
            following.set(true);
        }
    }
}

impl Filter {
    fn matches(&self, line: &[u8]) -> bool {
        if self.task.is_none() && self.event.is_none() && self.since.is_none() {
            return true;
        }
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            return false;
        };
        self.task.as_ref().is_none_or(|t| t.matches(&v))
            && self
                .event
                .as_ref()
                .is_none_or(|e| v["event"].as_str() == Some(e.as_str()))
            && self
                .since
                .as_ref()
                .is_none_or(|s| v["ts"].as_str().is_some_and(|ts| ts >= s.as_str()))
    }
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let home = cli.home()?;
    // The task as every verb takes it; what names none is an error, unless
    // the log still has events of an id starting with it (a task `clean` removed).
    let mut unresolved = None;
    let task = match &args.task {
        None => None,
        Some(q) => Some(match super::common::resolve(&home, q) {
            Ok(super::common::Found::Task { id, .. }) => TaskSel::Id(id),
            Ok(super::common::Found::Queued { file }) => TaskSel::File {
                name: file,
                id: Default::default(),
                following: Default::default(),
            },
            Err(e) if args.follow => return Err(e.into()),
            Err(e) => {
                unresolved = Some(e);
                TaskSel::Prefix(q.to_ascii_lowercase())
            }
        }),
    };
    let filter = Filter {
        task,
        event: args.event.clone(),
        since: args
            .since
            .as_deref()
            .map(since)
            .transpose()?
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
    };
    let path = home.events_log();
    let mut out = std::io::stdout().lock();
    let (mut file, mut pos) = match open_shared(&path) {
        Ok(mut f) => {
            let end = f.seek(SeekFrom::End(0))?;
            let mut lines = last_lines(&mut f, end, args.lines, &filter)?;
            // Too few since the last rotation: the rotated logs go on, newest first.
            for old in crate::events::rotated_logs(&home.logs())
                .unwrap_or_default()
                .iter()
                .rev()
            {
                if lines.len() >= args.lines {
                    break;
                }
                let Ok(mut g) = File::open(old) else { continue };
                let g_end = g.seek(SeekFrom::End(0))?;
                let mut earlier = last_lines(&mut g, g_end, args.lines - lines.len(), &filter)?;
                earlier.append(&mut lines);
                lines = earlier;
            }
            if let Some(e) = unresolved.filter(|_| lines.is_empty()) {
                return Err(e.into());
            }
            for line in lines {
                print_line(&mut out, &line, args.json)?;
            }
            (Some(f), end)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && args.follow => (None, 0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(UsageError(format!(
                "no event log at {} yet (has a daemon run here?)",
                path.display()
            ))
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    if !args.follow {
        return Ok(exit::OK);
    }
    if let Some(t) = &filter.task {
        t.follow();
    }
    let logs = home.logs();
    let mut known = rotated_names(&logs);
    let mut pending = Pending::default();
    let mut each = |line: &[u8]| {
        if filter.matches(line) {
            let _ = print_line(&mut out, line, args.json);
        }
    };
    loop {
        if let Some(f) = file.as_mut() {
            pos += drain(f, pos, &mut pending, &mut each)?;
        }
        if rotated(file.as_ref(), &path, pos) {
            // Nobody appends to a rotated log, so a last drain through our handle
            // reads what was added between the drain above and the rotation.
            let ours = match file.as_mut() {
                Some(f) => {
                    drain(f, pos, &mut pending, &mut each)?;
                    first_line(f)
                }
                None => None,
            };
            // Every log rotated since we last looked is read whole, oldest first,
            // except ours (recognised by its first line, which works without file
            // ids on every OS). Then the live log is opened; if the listing
            // changed meanwhile, the log rotated in between (it may be one that
            // was never opened: a busy log rotates several times a second), so
            // that one is read whole too and the live log opened again, until
            // the listing holds still around the open.
            let mut now = rotated_names(&logs);
            let read_whole = |names: &[String], known: &[String], each: &mut dyn FnMut(&[u8])| {
                for name in names.iter().filter(|n| !known.contains(*n)) {
                    if let Ok(mut f) = open_shared(&logs.join(name)) {
                        if ours.is_some() && first_line(&mut f) == ours {
                            continue;
                        }
                        let mut rest = Pending::default();
                        drain(&mut f, 0, &mut rest, each)?;
                    }
                }
                Ok::<(), std::io::Error>(())
            };
            read_whole(&now, &known, &mut each)?;
            for _ in 0..100 {
                file = open_shared(&path).ok();
                let again = rotated_names(&logs);
                if again == now {
                    break;
                }
                read_whole(&again, &now, &mut each)?;
                now = again;
            }
            known = now;
            pos = 0;
            pending = Pending::default();
            continue;
        }
        std::io::stdout().flush()?;
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn rotated_names(logs: &Path) -> Vec<String> {
    crate::events::rotated_logs(logs)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(String::from))
        .collect()
}

/// Reads new bytes from `pos`, calling `each` for every complete line; returns
/// bytes consumed. A line longer than [`MAX_LINE`] is not held: it is passed on
/// as [`cut_note`] when it ends, and what follows it is read as usual.
fn drain(f: &mut File, pos: u64, pending: &mut Pending, each: &mut dyn FnMut(&[u8])) -> std::io::Result<u64> {
    f.seek(SeekFrom::Start(pos))?;
    let mut total = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        let mut chunk = &buf[..n];
        while let Some(i) = chunk.iter().position(|&b| b == b'\n') {
            if pending.cut > 0 {
                each(cut_note(pending.cut + i as u64).as_bytes());
                pending.cut = 0;
            } else {
                pending.bytes.extend_from_slice(&chunk[..i]);
                each(&pending.bytes);
            }
            pending.bytes.clear();
            chunk = &chunk[i + 1..];
        }
        if pending.cut > 0 {
            pending.cut += chunk.len() as u64;
        } else {
            pending.bytes.extend_from_slice(chunk);
            if pending.bytes.len() > MAX_LINE {
                pending.cut = pending.bytes.len() as u64;
                pending.bytes = Vec::new();
            }
        }
    }
    Ok(total)
}

/// The unfinished last line while following: its bytes, or how long it is
/// once it passed [`MAX_LINE`] (and is no longer held).
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    cut: u64,
}

/// The daemon's events are a few KiB at most; a longer line was not written by
/// it (or was torn and glued to garbage). Such a line is not shown, only said.
const MAX_LINE: usize = 1 << 20;

/// A scan backwards stops after this many bytes without the lines asked for:
/// a giant (or sparse) line must not make `tail-events` read gigabytes.
const MAX_SCAN: u64 = 256 << 20;

/// What is shown in place of a line too long to show.
fn cut_note(len: u64) -> String {
    format!(
        "{{\"event\":\"line_not_shown\",\"bytes\":{len},\"why\":\"longer than {MAX_LINE} bytes: not an event the daemon wrote\"}}"
    )
}

/// The first line of a log (`None` if it has none yet).
fn first_line(f: &mut File) -> Option<Vec<u8>> {
    f.seek(SeekFrom::Start(0)).ok()?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut filled = 0;
    while filled < buf.len() {
        match f.read(&mut buf[filled..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
        if let Some(i) = buf[..filled].iter().position(|&b| b == b'\n') {
            buf.truncate(i);
            return Some(buf);
        }
    }
    None
}

/// Has `events.ndjson` been replaced (rotated) since we opened `file`?
/// (The dashboard's follower asks the same.)
pub(crate) fn rotated(file: Option<&File>, path: &Path, pos: u64) -> bool {
    let Ok(on_disk) = std::fs::metadata(path) else {
        return false;
    };
    let Some(f) = file else { return true };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = f.metadata() {
            return m.ino() != on_disk.ino() || m.dev() != on_disk.dev();
        }
    }
    let _ = f;
    // Without a file id: a log shorter than what we read is a new one.
    on_disk.len() < pos
}

/// The last `n` lines (that pass `filter`) before `end`, read backwards in
/// blocks. A line longer than [`MAX_LINE`] is not kept (its bytes are counted
/// as they go by, so the work stays linear) and comes back as [`cut_note`];
/// after [`MAX_SCAN`] bytes the scan stops with what it found.
fn last_lines(f: &mut File, end: u64, n: usize, filter: &Filter) -> std::io::Result<Vec<Vec<u8>>> {
    const BLOCK: u64 = 64 * 1024;
    let mut found: Vec<Vec<u8>> = Vec::new();
    // The part of a line that continues into the blocks already read (nearest
    // the end), or, once it is too long, only its length.
    let mut carry: Vec<u8> = Vec::new();
    let mut carry_cut: u64 = 0;
    let mut at = end;
    let keep = |line: Vec<u8>, found: &mut Vec<Vec<u8>>| {
        if !line.is_empty() && filter.matches(&line) {
            found.push(line);
        }
    };
    while at > 0 && found.len() < n {
        if end - at > MAX_SCAN {
            eprintln!(
                "tail-events: stopped after reading {MAX_SCAN} bytes back from the end without finding {n} lines"
            );
            break;
        }
        let start = at.saturating_sub(BLOCK);
        let mut block = vec![0u8; (at - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut block)?;
        let mut tail_end = block.len();
        // Lines wholly inside the block, last first; the first piece may start earlier.
        while let Some(i) = block[..tail_end].iter().rposition(|&b| b == b'\n') {
            let piece = &block[i + 1..tail_end];
            let line = if carry_cut > 0 {
                let len = carry_cut + piece.len() as u64;
                carry_cut = 0;
                cut_note(len).into_bytes()
            } else {
                let mut l = piece.to_vec();
                l.extend_from_slice(&carry);
                l
            };
            carry.clear();
            if line.len() > MAX_LINE {
                keep(cut_note(line.len() as u64).into_bytes(), &mut found);
            } else {
                keep(line, &mut found);
            }
            tail_end = i;
            if found.len() == n {
                break;
            }
        }
        if found.len() == n {
            break;
        }
        // What is left of the block begins a line that started earlier.
        let head = &block[..tail_end];
        if carry_cut > 0 {
            carry_cut += head.len() as u64;
        } else if head.len() + carry.len() > MAX_LINE {
            carry_cut = (head.len() + carry.len()) as u64;
            carry = Vec::new();
        } else {
            let mut c = head.to_vec();
            c.extend_from_slice(&carry);
            carry = c;
        }
        at = start;
    }
    if found.len() < n && at == 0 {
        if carry_cut > 0 {
            keep(cut_note(carry_cut).into_bytes(), &mut found);
        } else if !carry.is_empty() {
            keep(carry, &mut found);
        }
    }
    found.reverse();
    Ok(found)
}

fn print_line(out: &mut impl Write, line: &[u8], json: bool) -> std::io::Result<()> {
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(line) else {
        if json {
            // `--json` promises JSON lines: a torn or foreign line is said, not passed on.
            eprintln!(
                "tail-events: skipped a line that is not a JSON object ({} bytes)",
                line.len()
            );
            return Ok(());
        }
        const SHOWN: usize = 1024;
        let text = String::from_utf8_lossy(&line[..line.len().min(SHOWN)]);
        let more = if line.len() > SHOWN {
            format!(" ... ({} bytes, not an event)", line.len())
        } else {
            " (not an event)".to_string()
        };
        return writeln!(out, "{}{more}", super::common::escape_controls(&text));
    };
    if json {
        out.write_all(line)?;
        return out.write_all(b"\n");
    }
    let ts = m
        .get("ts")
        .and_then(Value::as_str)
        .unwrap_or("")
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_string();
    let event = m.get("event").and_then(Value::as_str).unwrap_or("?");
    let task = m.get("task_id").and_then(Value::as_str).unwrap_or("");
    let mut rest = String::new();
    for (k, v) in &m {
        if matches!(k.as_str(), "ts" | "event" | "task_id") || v.is_null() {
            continue;
        }
        let v = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        rest.push_str(&format!(" {k}={v}"));
    }
    let event = super::common::paint(
        &format!("{event:<18}"),
        if event.contains("fail") || event.contains("violation") {
            "31"
        } else {
            "36"
        },
    );
    writeln!(out, "{ts}  {event} {task}{}", super::common::for_stdout(&rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_across_blocks_and_with_filters() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.ndjson");
        let mut text = String::new();
        for i in 0..5000 {
            text.push_str(&format!(
                "{{\"ts\":\"2026-01-01T00:00:00.000Z\",\"event\":\"{}\",\"n\":{i},\"pad\":\"{}\"}}\n",
                if i % 100 == 0 { "rare" } else { "common" },
                "x".repeat(i % 70)
            ));
        }
        std::fs::write(&p, &text).unwrap();
        let mut f = File::open(&p).unwrap();
        let end = text.len() as u64;
        let none = Filter {
            task: None,
            event: None,
            since: None,
        };
        let got = last_lines(&mut f, end, 3, &none).unwrap();
        let ns: Vec<u64> = got
            .iter()
            .map(|l| serde_json::from_slice::<Value>(l).unwrap()["n"].as_u64().unwrap())
            .collect();
        assert_eq!(ns, [4997, 4998, 4999]);
        let rare = Filter {
            task: None,
            event: Some("rare".into()),
            since: None,
        };
        let got = last_lines(&mut f, end, 60, &rare).unwrap();
        assert_eq!(got.len(), 50, "all 50 rare events, found back to the first block");
        assert_eq!(serde_json::from_slice::<Value>(&got[0]).unwrap()["n"], 0);
        let all = last_lines(&mut f, end, 10_000, &none).unwrap();
        assert_eq!(all.len(), 5000);
    }

    fn event(n: u64) -> String {
        format!("{{\"ts\":\"2026-01-01T00:00:00.000Z\",\"event\":\"e\",\"n\":{n}}}\n")
    }

    #[test]
    fn a_giant_line_is_counted_not_kept_and_the_lines_around_it_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.ndjson");
        let mut text = event(1) + &event(2);
        text.push_str(&"g".repeat(16 << 20));
        text.push('\n');
        text.push_str(&event(3));
        text.push_str(&event(4));
        std::fs::write(&p, &text).unwrap();
        let mut f = File::open(&p).unwrap();
        let none = Filter {
            task: None,
            event: None,
            since: None,
        };
        let got = last_lines(&mut f, text.len() as u64, 5, &none).unwrap();
        let shown: Vec<Value> = got.iter().map(|l| serde_json::from_slice(l).unwrap()).collect();
        assert_eq!(shown.len(), 5);
        assert_eq!(shown[2]["event"], "line_not_shown");
        assert_eq!(shown[2]["bytes"], 16 << 20);
        let ns: Vec<u64> = shown.iter().filter_map(|v| v["n"].as_u64()).collect();
        assert_eq!(ns, [1, 2, 3, 4]);

        // Following: the same line arriving in pieces is not held, and the next
        // event after it is not lost.
        let mut pending = Pending::default();
        let mut seen = Vec::new();
        let mut f = File::open(&p).unwrap();
        drain(&mut f, 0, &mut pending, &mut |l| {
            seen.push(String::from_utf8_lossy(l).into_owned())
        })
        .unwrap();
        assert_eq!(seen.len(), 5);
        assert!(
            seen[2].contains("line_not_shown") && seen[3].contains("\"n\":3"),
            "{:?}",
            &seen[2..]
        );
        assert!(pending.bytes.capacity() <= 2 * MAX_LINE);
    }

    #[test]
    fn json_mode_passes_only_json_objects_and_text_mode_escapes_garbage() {
        let mut out = Vec::new();
        print_line(&mut out, b"\x1b]0;pwned\x07 torn {\"ts\"", true).unwrap();
        assert!(out.is_empty(), "not JSON: not printed with --json");
        print_line(&mut out, b"\x1b]0;pwned\x07 torn", false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains('\u{1b}') && text.contains("(not an event)"), "{text:?}");
    }
}
