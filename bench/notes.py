#!/usr/bin/env python3
"""How well loose notes are read: the hand-labelled notes of
tests/data/notes/labels.json planned by `orchestrator plan --json`, by the
parser alone and with the mediator on a real local model (SmolLM2-135M of
model-test/, served by model-test/server.mjs), with the share of labels right
for each, the labels the model made worse, and the time a note takes.

usage: python3 bench/notes.py [BINARY]     (default target/release/orchestrator)
       MODEL=path/to.gguf to try another GGUF model (default model-test/model.gguf)
"""
import json, os, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/orchestrator"))
MODEL = os.path.abspath(os.environ.get("MODEL", os.path.join(ROOT, "model-test/model.gguf")))
READ_ONLY = {"Read", "Glob", "Grep", "LS"}
ENV = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
ENV.update(ORCHESTRATOR_LOG="warn", NO_COLOR="1")


def labels_of(plan, home):
    tools = plan["allowed_tools"]
    wd = os.path.relpath(plan["workdir"], home)
    return {
        "read_only": bool(tools) and all(t in READ_ONLY for t in tools),
        "workdir": None if wd == "." else wd,
        "steps": len(plan.get("steps") or []),
        "criteria": len(plan.get("success_criteria") or []),
    }


def run(home, notes, extra):
    got, times, used = [], [], 0
    for n, l in enumerate(notes):
        path = os.path.join(home, "notes", f"note-{n:02}.txt")
        with open(path, "w") as f:
            f.write(l["note"])
        t = time.perf_counter()
        out = subprocess.run([BIN, "--home", home, *extra, "plan", "--json", path], capture_output=True, env=ENV)
        times.append(time.perf_counter() - t)
        plan = json.loads(out.stdout)["plan"]
        used += bool((plan.get("mediation") or {}).get("used"))
        got.append(labels_of(plan, home))
    return got, times, used


def score(notes, got):
    right = total = 0
    for l, g in zip(notes, got):
        for k in ("read_only", "workdir", "steps", "criteria"):
            total += 1
            right += l[k] == g[k]
    return right, total


def main():
    data = json.load(open(os.path.join(ROOT, "tests/data/notes/labels.json")))
    notes = data["notes"]
    home = tempfile.mkdtemp(prefix="orch-notes-")
    for f in data["folders"] + ["notes"]:
        os.makedirs(os.path.join(home, f), exist_ok=True)
    with open(os.path.join(home, "orchestrator.yaml"), "w") as f:
        f.write("default_agent: claude\n")
    parser, ptimes, _ = run(home, notes, [])
    right, total = score(notes, parser)
    print(f"parser alone: {right} of {total} labels right ({100 * right / total:.1f}%); "
          f"plan of a note: median {statistics.median(ptimes) * 1000:.0f} ms (the whole `plan` process)")

    port_file = os.path.join(home, "port")
    server = subprocess.Popen(["node", os.path.join(ROOT, "model-test/server.mjs"), MODEL, port_file],
                              cwd=os.path.join(ROOT, "model-test"), stdout=subprocess.DEVNULL,
                              env=dict(os.environ, NODE_LLAMA_CPP_SKIP_DOWNLOAD="true"))
    try:
        for _ in range(1800):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            time.sleep(0.1)
        port = open(port_file).read().strip()
        extra = ["--set", "mediator.kind=openai", "--set", f"mediator.url=http://127.0.0.1:{port}/v1",
                 "--set", "mediator.model=local", "--set", "mediator.timeout=120s"]
        mediated, mtimes, used = run(home, notes, extra)
    finally:
        server.terminate()
        server.wait()
    right_m, _ = score(notes, mediated)
    worse = []
    for n, (l, p, m) in enumerate(zip(notes, parser, mediated)):
        for k in ("read_only", "workdir", "steps", "criteria"):
            if p[k] == l[k] and m[k] != l[k]:
                worse.append(f"note {n} {k}: parser {p[k]}, with the model {m[k]}")
    print(f"with {os.path.basename(MODEL)}: {right_m} of {total} labels right ({100 * right_m / total:.1f}%); "
          f"proposals used {used} of {len(notes)}; a note: median {statistics.median(mtimes):.1f} s, "
          f"max {max(mtimes):.1f} s")
    print(f"labels the model made worse than the parser's: {len(worse)}")
    for w in worse:
        print("  " + w)


if __name__ == "__main__":
    main()
