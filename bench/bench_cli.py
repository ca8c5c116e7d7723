#!/usr/bin/env python3
"""CLI benchmarks. Run: python3 bench/bench_cli.py [--quick]

  1. `tail-events -n 100` on a 1 GB event log, against `tail -n 100` on the same file;
  2. `status`, `list`, `stats` wall time on a home with 100,000 finished tasks
     (made by bench/gen_home.py, indexed by `orchestrator reindex`).
Each command runs 7 times; the median is reported.
"""
import os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "orchestrator")
QUICK = "--quick" in sys.argv
LOG_BYTES = (100 if QUICK else 1024) * 1024 * 1024
TASKS = 10_000 if QUICK else 100_000


def timed(cmd, runs=7, **kw):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
        times.append(time.perf_counter() - t)
        assert r.returncode == 0, (cmd, r.stderr.decode())
    return statistics.median(times) * 1000


def env():
    e = dict(os.environ, NO_COLOR="1", ORCHESTRATOR_LOG="warn")
    e.pop("ORCHESTRATOR_HOME", None)
    return e


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet", "--workspace"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="orch-bench-cli-")
    try:
        home = os.path.join(work, "home")
        os.makedirs(os.path.join(home, "logs"))
        log = os.path.join(home, "logs", "events.ndjson")
        line = ('{"ts":"2026-11-22T03:00:00.000Z","event":"agent_progress","task_id":"01m80jwwhh41r5mqhpefn41v1h-hello",'
                '"attempt":1,"turns":2,"tool_calls":1,"cost_usd":0.0123,"last_event":"tool: Read(README.md)"}\n').encode()
        chunk = line * (4 * 1024 * 1024 // len(line))
        with open(log, "wb") as f:
            while f.tell() < LOG_BYTES:
                f.write(chunk)
        size = os.path.getsize(log)
        ours = timed([BIN, "--home", home, "tail-events", "-n", "100", "--json"], env=env())
        base = timed(["tail", "-n", "100", log])
        print(f"tail-events -n 100 on a {size / 2**30:.2f} GiB log: {ours:.1f} ms; tail -n 100: {base:.1f} ms; ratio {ours / base:.2f}x")
        ours_h = timed([BIN, "--home", home, "tail-events", "-n", "100"], env=env())
        print(f"  (human-readable output: {ours_h:.1f} ms)")
        os.remove(log)

        big = os.path.join(work, "big")
        t = time.perf_counter()
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_home.py"), big, str(TASKS)], check=True, stdout=subprocess.DEVNULL)
        gen = time.perf_counter() - t
        reindex = timed([BIN, "--home", big, "reindex"], runs=1, env=env())
        print(f"home with {TASKS:,} finished tasks: generated in {gen:.0f} s, `reindex` {reindex:.0f} ms")
        for verb in (["status"], ["status", "--json"], ["list"], ["list", "--status", "failed", "--limit", "50"], ["stats"], ["stats", "--json"]):
            ms = timed([BIN, "--home", big] + verb, env=env())
            print(f"  {' '.join(verb):<32} {ms:7.1f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
