#!/usr/bin/env python3
"""Benchmarks for the daemon. Run: python3 bench/bench.py [--quick]

Measures, each against a baseline taken in the same run (these machines are
noisy: quote ratios, not absolutes):
  1. burst: 1,000 no-op `command` tasks with 2 slots, vs `xargs -P2` running
     the same command;
  2. pickup latency: file renamed into inbox -> agent process started, over 100
     drops (p50/p95), against the configured debounce;
  3. daemon RSS: idle, with 1,000 queued files, and peak while an agent prints
     1 GiB of stream-json (memory stays bounded);
  4. index cost: the same burst on a home whose index already has 100,000 rows.
Needs: a release build (built here), Linux (/proc for RSS), python3.

Temporary homes are deleted only at the end: ext4's inode allocator skips
inodes freed in the last 60 s (300 s while their table block is dirty), so
creating files soon after deleting many is slower (a burst right after a
cleanup ran 2-3x slower). Runs of this script soon after each other affect each
other the same way; the tmpfs burst shows the orchestrator's own overhead.
"""
import json, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "orchestrator")
QUICK = "--quick" in sys.argv
N_BURST = 200 if QUICK else 1000
N_PICKUP = 20 if QUICK else 100


def build():
    subprocess.run(["cargo", "build", "--release", "--quiet", "--workspace"], cwd=ROOT, check=True)


HOMES = []
BURST_SYNCS = []


def make_home(config="", base=None):
    home = tempfile.mkdtemp(prefix="orch-bench-", dir=base)
    HOMES.append(home)
    os.makedirs(os.path.join(home, "inbox"))
    with open(os.path.join(home, "orchestrator.yaml"), "w") as f:
        f.write("default_agent: command\n" + config)
    return home


def drop(home, name, text):
    tmp = os.path.join(home, "inbox", "." + name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(home, "inbox", name))


def env():
    e = dict(os.environ)
    e["ORCHESTRATOR_LOG"] = "warn"
    e.pop("ORCHESTRATOR_HOME", None)
    return e


def burst(n, home=None, base=None):
    home = home or make_home("max_concurrent: 2\n", base)
    for i in range(n):
        drop(home, f"t{i:05}.yaml", "command: \"true\"\n")
    # The files are written first, and have settled (debounce) and been written
    # back before the daemon starts: this measures dispatch, not the settle wait.
    # `sync -f` (syncfs) first, so that no run pays for the writeback of what
    # an earlier one left in the page cache (result files are not flushed one
    # by one: see the commit log in docs/reliability.md).
    subprocess.run(["sync", "-f", home], check=True)
    time.sleep(2)
    t = time.perf_counter()
    r = subprocess.run([BIN, "--home", home, "run", "--once"], env=env(), capture_output=True)
    wall = time.perf_counter() - t
    # Until everything the burst wrote is on disk, for the record.
    t = time.perf_counter()
    subprocess.run(["sync", "-f", home], check=True)
    BURST_SYNCS.append(time.perf_counter() - t)
    assert r.returncode == 0, r.stderr.decode()
    results = os.path.join(home, "results")
    done = len([d for d in os.listdir(results) if not d.startswith(".") and os.path.isdir(os.path.join(results, d))])
    assert done == n, (done, n)
    return wall, home


def xargs_baseline(n):
    t = time.perf_counter()
    subprocess.run(f"seq {n} | xargs -P2 -I{{}} sh -c true", shell=True, check=True)
    return time.perf_counter() - t


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def count_events(home, kind):
    try:
        with open(os.path.join(home, "logs", "events.ndjson")) as f:
            return sum(1 for line in f if f'"event":"{kind}"' in line)
    except FileNotFoundError:
        return 0


def wait(cond, limit=60):
    end = time.time() + limit
    while not cond():
        if time.time() > end:
            raise TimeoutError
        time.sleep(0.005)


def pickup(n, debounce_ms=200):
    home = make_home(f"debounce_ms: {debounce_ms}\n")
    d = subprocess.Popen([BIN, "--home", home, "run"], env=env(), stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    lat = []
    try:
        for i in range(n):
            t0 = time.time_ns()
            drop(home, f"p{i:04}.yaml", "command: date +%s%N\n")
            wait(lambda: count_events(home, "task_succeeded") > i)
            rid = [x for x in os.listdir(os.path.join(home, "results")) if x.endswith(f"-p{i:04}")][0]
            with open(os.path.join(home, "results", rid, "result.json")) as f:
                started_ns = int(json.load(f)["output"].strip())
            lat.append((started_ns - t0) / 1e6)
            time.sleep(0.05)
    finally:
        d.terminate()
        d.wait()
    lat.sort()
    return statistics.median(lat), lat[int(len(lat) * 0.95) - 1], debounce_ms


def rss():
    home = make_home()
    d = subprocess.Popen([BIN, "--home", home, "run"], env=env(), stderr=subprocess.DEVNULL)
    time.sleep(3)
    idle = rss_kb(d.pid)
    d.terminate()
    d.wait()
    home = make_home("max_concurrent: 1\n")
    for i in range(1000):
        drop(home, f"q{i:04}.yaml", "command: sleep 600\n")
    d = subprocess.Popen([BIN, "--home", home, "run"], env=env(), stderr=subprocess.DEVNULL)
    wait(lambda: count_events(home, "task_queued") >= 1000)
    time.sleep(2)
    queued = rss_kb(d.pid)
    d.terminate()
    d.wait()
    return idle, queued


def flood_peak_rss(mb=1024, distinct=False):
    """Peak RSS (VmHWM) of the daemon, not its agent, while the fake Claude CLI
    prints `mb` MiB of stream-json: 1 KB lines of one message, or (distinct)
    ~200-byte lines each a message of its own (millions of message ids)."""
    fake = os.path.join(ROOT, "target", "release", "fake-agent")
    home = make_home(f"agents:\n  claude:\n    command: {fake}\n")
    extra = " distinct=1" if distinct else ""
    drop(home, "flood.md", f"---\nagent: claude\n---\n@fake huge_output mb={mb}{extra}\n")
    t = time.perf_counter()
    p = subprocess.Popen([BIN, "--home", home, "run", "--once"], env=env(), stderr=subprocess.DEVNULL)
    peak = 0
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.05)
    assert p.returncode == 0, p.returncode
    return peak, time.perf_counter() - t


def big_index_home(rows):
    home = make_home("max_concurrent: 2\n")
    os.makedirs(os.path.join(home, "results"))
    row = {"status": "succeeded", "title": "x" * 40, "finished_at": "2026-01-01T00:00:00.000Z", "result": "", "agent": "command",
           "duration_ms": 10, "cost_usd": None, "attempts": 1, "error_kind": None, "started_at": "2026-01-01T00:00:00.000Z"}
    tasks = {f"01jd3k8q7x9v2m4n6p8r{i:06d}-old": dict(row, result=f"results/01jd3k8q7x9v2m4n6p8r{i:06d}-old/result.json") for i in range(rows)}
    with open(os.path.join(home, "results", "index.json"), "w") as f:
        json.dump({"schema_version": 1, "tasks": tasks}, f)
    return home


def main():
    build()
    time.sleep(5)  # let the filesystem settle after the build's file churn
    print(f"# orchestrator benchmarks ({'quick' if QUICK else 'full'}), {os.cpu_count()} cores")
    runs = []
    for _ in range(3):
        base = xargs_baseline(N_BURST)
        wall, _ = burst(N_BURST)
        runs.append((wall / base, wall, base))
        time.sleep(2)
    ratio, wall, base = sorted(runs)[1]
    print(f"burst: {N_BURST} no-op tasks, 2 slots, median of 3: {wall:.2f} s ({N_BURST / wall:.0f} tasks/s); "
          f"xargs -P2: {base:.2f} s; ratio {ratio:.2f}x (all ratios: {', '.join(f'{r[0]:.2f}' for r in runs)}); "
          f"then `sync -f` of its home: median {statistics.median(BURST_SYNCS):.2f} s")
    # The same on tmpfs: the orchestrator's own overhead, without the disk
    # filesystem's cost of creating ~9 files per task (xargs creates none).
    if os.path.isdir("/dev/shm"):
        runs = []
        for _ in range(3):
            base = xargs_baseline(N_BURST)
            wall, _ = burst(N_BURST, base="/dev/shm")
            runs.append((wall / base, wall, base))
        ratio, wall, base = sorted(runs)[1]
        print(f"burst on tmpfs (/dev/shm), median of 3: {wall:.2f} s ({N_BURST / wall:.0f} tasks/s); "
              f"xargs -P2: {base:.2f} s; ratio {ratio:.2f}x (all ratios: {', '.join(f'{r[0]:.2f}' for r in runs)})")
    big = big_index_home(100_000)
    time.sleep(2)
    wall_big, _ = burst(N_BURST, big)
    print(f"index: same burst on a home with a 100,000-row index: {wall_big:.2f} s ({wall_big / wall:.2f}x the empty-index burst)")
    p50, p95, deb = pickup(N_PICKUP)
    print(f"pickup: rename into inbox -> agent started, {N_PICKUP} drops: p50 {p50:.1f} ms, p95 {p95:.1f} ms "
          f"(debounce {deb} ms: p50 is debounce + {p50 - deb:.1f} ms)")
    idle, queued = rss()
    print(f"rss: idle {idle / 1024:.1f} MiB; with 1,000 queued files {queued / 1024:.1f} MiB")
    peak, secs = flood_peak_rss(64 if QUICK else 1024)
    print(f"rss: peak while an agent prints {64 if QUICK else 1024} MiB of stream-json: {peak / 1024:.1f} MiB "
          f"(read and parsed in {secs:.1f} s)")
    mb = 64 if QUICK else 256
    peak, secs = flood_peak_rss(mb, distinct=True)
    print(f"rss: peak while an agent prints {mb} MiB of small messages (~{mb * 1024 * 1024 // 200:,} message ids): "
          f"{peak / 1024:.1f} MiB (read and parsed in {secs:.1f} s)")


if __name__ == "__main__":
    try:
        main()
    finally:
        for h in HOMES:
            shutil.rmtree(h, ignore_errors=True)
