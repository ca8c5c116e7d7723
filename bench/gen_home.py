#!/usr/bin/env python3
"""Generate an orchestrator home with N finished tasks (default 100,000).

usage: python3 bench/gen_home.py DIR [N]

Each task gets results/<id>/result.json (schema 1) and summaries/<id>.md, as
the daemon writes them; the index is then built by `orchestrator reindex`.
Statuses, agents, durations and costs vary so `stats` has something to chew.
"""
import json, os, random, sys, time

def ulid_like(i, base_ms):
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    ms = base_ms + i * 10
    t = ""
    for _ in range(10):
        t = alphabet[ms % 32] + t
        ms //= 32
    r = "".join(random.choice(alphabet) for _ in range(16))
    return t + r

def main():
    home = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    random.seed(7)
    for d in ("inbox", "results", "summaries", "logs"):
        os.makedirs(os.path.join(home, d), exist_ok=True)
    base = int(time.time() * 1000) - n * 10
    statuses = ["succeeded"] * 8 + ["failed", "cancelled"]
    for i in range(n):
        tid = f"{ulid_like(i, base)}-task-{i}"
        status = random.choice(statuses)
        agent = "claude" if i % 3 else "command"
        dur = random.randint(1_000, 600_000)
        ts = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime((base + i * 10) / 1000))
        err = None if status == "succeeded" else {"kind": random.choice(["overloaded", "timeout", "auth", "cancelled"]), "message": "m", "suggestion": "s"}
        rec = {"schema_version": 1, "id": tid, "title": f"Generated task {i}", "source_file": f"task-{i}.md", "status": status,
               "agent": agent, "workdir": "/tmp", "queued_at": ts, "started_at": ts, "finished_at": ts, "duration_ms": dur,
               "attempts": [{"n": 1, "started_at": ts, "finished_at": ts, "duration_ms": dur, "exit_code": 0, "error": err}],
               "output": "done", "session_id": None, "cost_usd": round(random.random() / 10, 4) if agent == "claude" else None,
               "turns": 3, "tool_calls": 5, "files_changed": [], "permission_denials": [], "validation": {"warnings": []},
               "error": err, "parent_task_id": None, "turn_of": None, "worker": "gen:1"}
        d = os.path.join(home, "results", tid)
        os.mkdir(d)
        with open(os.path.join(d, "result.json"), "w") as f:
            json.dump(rec, f)
    print(f"generated {n} finished tasks in {home}")

if __name__ == "__main__":
    main()
