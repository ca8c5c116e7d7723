#!/usr/bin/env python3
"""A chain of N tasks, each waiting for the one before (`after:`), against the
same N tasks with no dependencies, both run one at a time (max_concurrent: 1)
by `run --once`. Run: python3 bench/bench_chain.py [BINARY]  (N=10000, R=3)

Prints, per shape, the median wall time of R runs, its time per task, and the
daemon's peak RSS (VmHWM, from wait4's rusage); then the chain's overhead per
link: (chain - independent) / N. The runs alternate, so both shapes see the
same machine. Homes go to $TMPDIR (put it on a fresh ext4, see
docs/benchmarks.md). Linux only.
"""
import os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "release", "orchestrator")
N = int(os.environ.get("N", "10000"))
R = int(os.environ.get("R", "3"))
ENV = dict(os.environ, ORCHESTRATOR_LOG="warn")
ENV.pop("ORCHESTRATOR_HOME", None)


def home(chain):
    h = tempfile.mkdtemp(prefix="orch-chain-")
    os.makedirs(os.path.join(h, "inbox"))
    with open(os.path.join(h, "orchestrator.yaml"), "w") as f:
        f.write("default_agent: command\nmax_concurrent: 1\ndebounce_ms: 100\n")
    for i in range(N):
        after = f"after: [link-{i - 1:05}.yaml]\n" if chain and i > 0 else ""
        with open(os.path.join(h, "inbox", f"link-{i:05}.yaml"), "w") as f:
            f.write(f"command: 'true'\n{after}")
    return h


def run(chain):
    h = home(chain)
    try:
        start = time.monotonic()
        p = subprocess.Popen([BIN, "--home", h, "run", "--once"], env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.monotonic() - start
        res = os.path.join(h, "results")
        done = len([d for d in os.listdir(res) if os.path.isfile(os.path.join(res, d, "result.json"))])
        if status != 0 or done != N:
            sys.exit(f"run --once failed: status {status}, {done} of {N} results in {h}")
        return wall, usage.ru_maxrss
    finally:
        shutil.rmtree(h, ignore_errors=True)


def main():
    runs = {"independent": [], "chain": []}
    for _ in range(R):
        for shape in runs:
            runs[shape].append(run(shape == "chain"))
    med = {}
    for shape, rs in runs.items():
        wall = statistics.median(w for w, _ in rs)
        rss = max(m for _, m in rs)
        med[shape] = wall
        print(f"{shape:>11}: {N} tasks in {wall:.2f} s (median of {R}: {[round(w, 2) for w, _ in rs]}), "
              f"{wall / N * 1000:.2f} ms a task, peak RSS {rss / 1024:.1f} MB")
    per_link = (med["chain"] - med["independent"]) / N * 1000
    print(f"chain overhead per link: {per_link:.3f} ms ({med['chain'] / med['independent']:.2f}x the independent run)")


if __name__ == "__main__":
    main()
