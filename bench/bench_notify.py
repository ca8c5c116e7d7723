#!/usr/bin/env python3
"""The 1,000-task burst with and without `notify.webhook` on every finished task.

Run: python3 bench/bench_notify.py [BINARY]   (default: target/release/orchestrator)

A local HTTP server on 127.0.0.1 takes the posts. Each round runs the burst
without notifications, then with a webhook, on fresh homes; the medians of 3
rounds are printed, with how many posts the server got (what `run --once` had
not sent when it ended waits in the home's outbox for the next daemon).
"""
import http.server, os, statistics, sys, threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

if len(sys.argv) > 1:
    bench.BIN = sys.argv[1]
else:
    bench.build()

posts = []


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        posts.append(1)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}/hook"
plain, hooked = [], []
for _ in range(3):
    plain.append(bench.burst(1000, bench.make_home("max_concurrent: 2\n"))[0])
    home = bench.make_home(f"max_concurrent: 2\nnotify:\n  webhook:\n    url: {url}\n")
    hooked.append(bench.burst(1000, home)[0])
p, h = statistics.median(plain), statistics.median(hooked)
print(f"burst without notify: median {p:.3f} s; with a webhook on every finished task: median {h:.3f} s ({h / p:.2f}x)")
print(f"posts received by the end: {len(posts)} of {3 * 1000}")
for home in bench.HOMES:
    import shutil
    shutil.rmtree(home, ignore_errors=True)
