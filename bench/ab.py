#!/usr/bin/env python3
"""A/B of orchestrator builds on the 1,000-task burst, in one run.

Run: python3 bench/ab.py OLD_BINARY NEW_BINARY  [R=6 rounds, N=1000 tasks]

Each round prepares one home per build, lets the files settle, then runs the
builds in alternating order, each right after its own `xargs -P2` baseline.
Prints, per build, the median wall-time ratio to xargs and the median CPU time
(user + system, daemon and agents): on these shared 2-core machines the CPU
time is the steadier of the two (wall ratios of one build vary by ~5% between
runs). Compare two builds at a time: with three, the middle one always runs
in the same position. Homes are left in /tmp/orch-ab (see bench.py on ext4's
recently-freed inodes); delete them later.
"""
import os, statistics, subprocess, sys, tempfile, time

N = int(os.environ.get("N", "1000"))
R = int(os.environ.get("R", "6"))
BASE = os.path.join(tempfile.gettempdir(), "orch-ab")


def xargs():
    t = time.perf_counter()
    subprocess.run(f"seq {N} | xargs -P2 -I{{}} sh -c true", shell=True, check=True)
    return time.perf_counter() - t


def prep():
    os.makedirs(BASE, exist_ok=True)
    home = tempfile.mkdtemp(prefix="h-", dir=BASE)
    os.makedirs(os.path.join(home, "inbox"))
    with open(os.path.join(home, "orchestrator.yaml"), "w") as f:
        f.write("default_agent: command\nmax_concurrent: 2\n")
    for i in range(N):
        tmp = os.path.join(home, "inbox", f".t{i:05}.tmp")
        with open(tmp, "w") as f:
            f.write('command: "true"\n')
        os.rename(tmp, os.path.join(home, "inbox", f"t{i:05}.yaml"))
    return home


def run(binary, home):
    env = dict(os.environ, ORCHESTRATOR_LOG="warn")
    t = time.perf_counter()
    p = subprocess.Popen([binary, "--home", home, "run", "--once"], env=env, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    assert status == 0, f"{binary} failed"
    return wall, usage.ru_utime + usage.ru_stime


def main():
    bins = sys.argv[1:]
    if len(bins) != 2:
        sys.exit(__doc__)
    res = {b: [] for b in bins}
    for k in range(R):
        order = bins if k % 2 == 0 else bins[::-1]
        homes = {b: prep() for b in order}
        time.sleep(2)
        for b in order:
            # No run pays for the writeback of what an earlier one left in the page cache.
            subprocess.run(["sync", "-f", homes[b]], check=True)
            base = xargs()
            wall, cpu = run(b, homes[b])
            res[b].append((wall / base, wall, cpu))
            time.sleep(0.5)
    for b in bins:
        ratios = sorted(r for r, _, _ in res[b])
        print(f"{b}: ratio to xargs -P2 median {statistics.median(ratios):.2f} ({', '.join(f'{r:.2f}' for r in ratios)}); "
              f"wall median {statistics.median(w for _, w, _ in res[b]):.3f} s; "
              f"CPU median {statistics.median(c for _, _, c in res[b]):.3f} s")


if __name__ == "__main__":
    main()
