#!/usr/bin/env python3
"""The burst against its floor: the daemon, the layout's least work
(examples/layout_floor.rs) and `xargs -P2`, in one run.

Run: python3 bench/floor.py ORCHESTRATOR_BINARY FLOOR_BINARY  [R=6 rounds, N=1000 tasks]

Build the floor with `cargo build --release --example layout_floor`
(target/release/examples/layout_floor). Each round prepares a home per
program, lets the files settle, then runs them in alternating order, each
right after its own `xargs -P2` baseline. Prints each one's median wall-time
ratio to xargs and its median CPU time. What the daemon takes above the
floor is its own work (parsing, checks, records, events, the runtime); the
floor above xargs is what the home's files cost. Homes are left in
$TMPDIR/orch-floor (see bench.py on ext4's recently-freed inodes).
"""
import os, statistics, subprocess, sys, tempfile, time

import ab  # the homes and the xargs baseline are made as ab.py makes them

R = ab.R
ab.BASE = os.path.join(tempfile.gettempdir(), "orch-floor")
xargs, prep = ab.xargs, ab.prep


def timed(argv):
    env = dict(os.environ, ORCHESTRATOR_LOG="warn")
    t = time.perf_counter()
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    assert status == 0, f"{argv[0]} failed"
    return wall, usage.ru_utime + usage.ru_stime


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    runs = {
        "daemon": lambda home: [sys.argv[1], "--home", home, "run", "--once"],
        "floor": lambda home: [sys.argv[2], home],
    }
    res = {k: [] for k in runs}
    for r in range(R):
        order = list(runs) if r % 2 == 0 else list(runs)[::-1]
        homes = {k: prep() for k in order}
        time.sleep(2)
        for k in order:
            subprocess.run(["sync", "-f", homes[k]], check=True)
            base = xargs()
            wall, cpu = timed(runs[k](homes[k]))
            res[k].append((wall / base, wall, cpu))
            time.sleep(0.5)
    for k in runs:
        ratios = sorted(x[0] for x in res[k])
        print(f"{k}: ratio to xargs -P2 median {statistics.median(ratios):.2f} ({', '.join(f'{x:.2f}' for x in ratios)}); "
              f"wall median {statistics.median(x[1] for x in res[k]):.3f} s; CPU median {statistics.median(x[2] for x in res[k]):.3f} s")


if __name__ == "__main__":
    main()
