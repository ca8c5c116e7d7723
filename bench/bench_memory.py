#!/usr/bin/env python3
"""The daemon's memory. Run: python3 bench/bench_memory.py [BINARY ...]  (N=100000 files)

For each binary (default: target/release/orchestrator):
  1. idle, 3 starts: VmRSS, its anonymous and file-backed parts, and how much of
     the binary itself is mapped (from /proc/PID/smaps);
  2. while N waiting files are taken in (one slot, busy with a task that sleeps,
     so every other file stays queued): the peak (VmHWM) and what stays (VmRSS)
     once all are queued.
Homes go to $TMPDIR (put it on a fresh ext4, see docs/benchmarks.md). Linux only.
"""
import os, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINS = sys.argv[1:] or [os.path.join(ROOT, "target", "release", "orchestrator")]
N = int(os.environ.get("N", "100000"))
ENV = dict(os.environ, ORCHESTRATOR_LOG="warn")
ENV.pop("ORCHESTRATOR_HOME", None)


def status(pid):
    return {l.split(":")[0]: int(l.split()[1]) for l in open(f"/proc/{pid}/status")
            if l.startswith(("VmRSS", "VmHWM", "RssAnon", "RssFile"))}


def binary_pages(pid, exe):
    kb, cur = 0, None
    for line in open(f"/proc/{pid}/smaps"):
        parts = line.split()
        if parts and "-" in parts[0] and len(parts) >= 5:
            cur = parts[5] if len(parts) > 5 else None
        elif line.startswith("Rss:") and cur == exe:
            kb += int(parts[1])
    return kb


def home(n):
    h = tempfile.mkdtemp(prefix="orch-mem-")
    os.makedirs(os.path.join(h, "inbox"))
    with open(os.path.join(h, "orchestrator.yaml"), "w") as f:
        f.write("default_agent: command\nmax_concurrent: 1\ndebounce_ms: 100\n")
    for i in range(n):
        with open(os.path.join(h, "inbox", f"task-{i:06}.yaml"), "w") as f:
            f.write(f"title: waiting task {i}\npriority: {i % 3}\ncommand: sleep 600\n")
    return h


def queued(h):
    try:
        with open(os.path.join(h, "logs", "events.ndjson"), "rb") as f:
            return f.read().count(b'"event":"task_queued"')
    except FileNotFoundError:
        return 0


def run(binary, n):
    h = home(n)
    p = subprocess.Popen([binary, "--home", h, "run"], env=ENV, stderr=subprocess.DEVNULL)
    try:
        until = time.time() + 300
        while queued(h) < max(n - 1, 0) and time.time() < until:
            time.sleep(0.5)
        time.sleep(3)
        return status(p.pid), binary_pages(p.pid, os.path.realpath(binary))
    finally:
        p.terminate()
        p.wait()
        subprocess.run(["pkill", "-f", "sleep 600"], check=False)
        subprocess.run(["rm", "-rf", h], check=False)


def main():
    for b in BINS:
        idle = [run(b, 0) for _ in range(3)]
        print(f"{b}: idle VmRSS {[s['VmRSS'] for s, _ in idle]} kB, anonymous {[s['RssAnon'] for s, _ in idle]}, "
              f"file-backed {[s['RssFile'] for s, _ in idle]}, of it the binary {[k for _, k in idle]} "
              f"(binary {os.path.getsize(b) // 1024} KiB)")
        s, _ = run(b, N)
        print(f"{b}: {N} files taken in: peak (VmHWM) {s['VmHWM']} kB, then VmRSS {s['VmRSS']} kB "
              f"(anonymous {s['RssAnon']}, file-backed {s['RssFile']})")


if __name__ == "__main__":
    main()
