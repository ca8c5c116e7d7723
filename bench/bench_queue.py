#!/usr/bin/env python3
"""The queue at scale. Run: python3 bench/bench_queue.py [--quick] [BINARY]

For 20,000 and 100,000 files waiting in the inbox (one slot, busy with a task
that sleeps, so every other file stays queued), measures:
  1. the daemon's resident memory once all are queued (the highest of samples
     over 10 s, rescans included), against the same daemon idle on an empty
     home in the same run;
  2. the CPU the daemon uses meanwhile (its inbox rescans);
  3. `status` and `status --json` wall time (median of 7), against `ls` of the
     inbox (a readdir, the least any listing can do).
Needs a release build (built here unless BINARY is given), Linux (/proc).
"""
import os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
BIN = ARGS[0] if ARGS else os.path.join(ROOT, "target", "release", "orchestrator")
QUICK = "--quick" in sys.argv
SIZES = [int(s) for s in os.environ["SIZES"].split(",")] if os.environ.get("SIZES") else [2_000, 10_000] if QUICK else [20_000, 100_000]


def env():
    e = dict(os.environ, NO_COLOR="1", ORCHESTRATOR_LOG="warn")
    e.pop("ORCHESTRATOR_HOME", None)
    return e


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def home_with(work, n):
    home = os.path.join(work, f"h{n}")
    inbox = os.path.join(home, "inbox")
    os.makedirs(inbox)
    with open(os.path.join(home, "orchestrator.yaml"), "w") as f:
        f.write("default_agent: command\nmax_concurrent: 1\ndebounce_ms: 100\n")
    for i in range(n):
        with open(os.path.join(inbox, f"task-{i:06}.yaml"), "w") as f:
            f.write(f"title: waiting task {i}\npriority: {i % 3}\ncommand: sleep 600\n")
    return home


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def queued_lines(home):
    try:
        with open(os.path.join(home, "logs", "events.ndjson"), "rb") as f:
            return f.read().count(b'"event":"task_queued"')
    except FileNotFoundError:
        return 0


def timed(cmd, runs=7):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env())
        times.append(time.perf_counter() - t)
        assert r.returncode == 0, (cmd, r.stderr.decode())
    return statistics.median(times) * 1000


def main():
    if not ARGS:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="orch-bench-queue-")
    try:
        idle_home = os.path.join(work, "idle")
        os.makedirs(os.path.join(idle_home, "inbox"))
        d = subprocess.Popen([BIN, "--home", idle_home, "run"], env=env(), stderr=subprocess.DEVNULL)
        time.sleep(2)
        idle = rss_kb(d.pid)
        d.terminate()
        d.wait()
        print(f"daemon idle: {idle / 1024:.1f} MiB")
        for n in SIZES:
            home = home_with(work, n)
            d = subprocess.Popen([BIN, "--home", home, "run"], env=env(), stderr=subprocess.DEVNULL)
            try:
                t = time.perf_counter()
                while queued_lines(home) < n:
                    assert time.perf_counter() - t < 600, "not all queued within 10 minutes"
                    time.sleep(0.5)
                took = time.perf_counter() - t
                # The highest of samples over 10 s: the daemon rescans the
                # inbox every 2 s meanwhile.
                rss = 0
                cpu0 = cpu_s(d.pid)
                for _ in range(20):
                    time.sleep(0.5)
                    rss = max(rss, rss_kb(d.pid))
                busy = (cpu_s(d.pid) - cpu0) / 10
                st = timed([BIN, "--home", home, "status"])
                sj = timed([BIN, "--home", home, "status", "--json"])
                ls = timed(["ls", "-f", os.path.join(home, "inbox")])
                print(f"{n:,} queued (all queued {took:.1f} s after start): daemon RSS {rss / 1024:.1f} MiB "
                      f"({(rss - idle) * 1024 / n:.0f} bytes a file over idle), {busy * 100:.0f}% of a core while waiting; "
                      f"status {st:.0f} ms, status --json {sj:.0f} ms, ls -f {ls:.0f} ms")
            finally:
                d.terminate()
                d.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
