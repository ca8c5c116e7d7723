#!/usr/bin/env python3
"""The dashboard's numbers: the board's first page on a home of 100,000
finished tasks, the time from an event to the row on an open page, the
dashboard's memory, and a 1,000-task burst with a page open against the same
burst without one (same run).

usage: python3 bench/bench_dashboard.py [BINARY]   (default target/release/orchestrator)
       R=5 rounds of the burst A/B, N=1000 tasks a burst, ONLY=board,live,burst
       (the burst's homes go to $TMPDIR: a freshly made ext4, as in bench/ab.py)

Needs Debian's chromium and chromedriver (tests/install-browser) for the two
measures taken in a page. The 100,000-task home is made once in
/tmp/orch-dash-100k (bench/gen_home.py, then `reindex`) and kept.
"""
import json, os, socket, statistics, subprocess, sys, tempfile, time, urllib.request

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release/orchestrator")
R = int(os.environ.get("R", "5"))
N = int(os.environ.get("N", "1000"))
BIG = "/tmp/orch-dash-100k"
HERE = os.path.dirname(os.path.abspath(__file__))
ENV = dict(os.environ, ORCHESTRATOR_LOG="warn", NO_COLOR="1")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Dashboard:
    def __init__(self, home):
        self.p = subprocess.Popen([BIN, "--home", home, "dashboard", "--listen", "127.0.0.1:0"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=ENV, text=True)
        line = self.p.stdout.readline()
        # "dashboard: http://ADDR/login?token=TOKEN (home ...)"
        self.link = line.split(" ")[1]
        self.addr = self.link.split("http://")[1].split("/")[0]
        self.token = self.link.split("token=")[1]

    def get(self, path):
        t = time.perf_counter()
        req = urllib.request.Request(f"http://{self.addr}{path}", headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=60) as r:
            body = r.read()
        return time.perf_counter() - t, body

    def stop(self):
        self.p.terminate()
        self.p.wait()


class Chrome:
    """Chromium through chromedriver's WebDriver JSON, loopback only."""

    def __init__(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        self.driver = subprocess.Popen(["/usr/bin/chromedriver", f"--port={port}"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(self.base + "/status", timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)
        self.profile = tempfile.mkdtemp(prefix="chrome-")
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--proxy-server=http://127.0.0.1:9", f"--user-data-dir={self.profile}"]}}}}
        self.session = self.call("POST", "/session", caps)["value"]["sessionId"]

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read() or b"null")

    def goto(self, url):
        self.call("POST", f"/session/{self.session}/url", {"url": url})

    def js(self, script):
        return self.call("POST", f"/session/{self.session}/execute/sync", {"script": script, "args": []})["value"]

    def quit(self):
        try:
            self.call("DELETE", f"/session/{self.session}")
        finally:
            self.driver.terminate()
            self.driver.wait()


def big_home():
    if not os.path.exists(os.path.join(BIG, "results", "index.json")):
        subprocess.run([sys.executable, os.path.join(HERE, "gen_home.py"), BIG, "100000"], check=True)
        subprocess.run([BIN, "--home", BIG, "reindex"], check=True, env=ENV, stdout=subprocess.DEVNULL)
    return BIG


def board_on_100k():
    home = big_home()
    d = Dashboard(home)
    time.sleep(1)
    idle = rss_kib(d.p.pid)
    firsts = [d.get("/")[0] for _ in range(15)]
    search = [d.get("/?q=task-99990")[0] for _ in range(5)]
    page10 = [d.get("/?page=10")[0] for _ in range(5)]
    stats = [d.get("/stats")[0] for _ in range(3)]
    after = rss_kib(d.p.pid)
    d.stop()
    print(f"100,000-task home: board first page median {statistics.median(firsts)*1000:.0f} ms "
          f"(max {max(firsts)*1000:.0f} ms); page 11 median {statistics.median(page10)*1000:.0f} ms; "
          f"text search median {statistics.median(search)*1000:.0f} ms; /stats median {statistics.median(stats)*1000:.0f} ms")
    print(f"dashboard RSS: idle {idle/1024:.1f} MiB, after those pages {after/1024:.1f} MiB")


def command_home(n, prefix):
    home = tempfile.mkdtemp(prefix=prefix)
    os.makedirs(os.path.join(home, "inbox"))
    with open(os.path.join(home, "orchestrator.yaml"), "w") as f:
        f.write("default_agent: command\nmax_concurrent: 2\n")
    for i in range(n):
        tmp = os.path.join(home, "inbox", f".t{i:05}.tmp")
        with open(tmp, "w") as f:
            f.write('command: "true"\n')
        os.rename(tmp, os.path.join(home, "inbox", f"t{i:05}.yaml"))
    return home


def event_to_page(chrome):
    """From the daemon's event (its `ts`) to the row in an open board."""
    home = command_home(0, "orch-dash-live-")
    daemon = subprocess.Popen([BIN, "--home", home, "run"], env=ENV, stderr=subprocess.DEVNULL)
    d = Dashboard(home)
    time.sleep(1.5)
    chrome.goto(d.link)
    chrome.goto(f"http://{d.addr}/")
    for _ in range(100):
        if chrome.js("return document.getElementById('live').classList.contains('on');"):
            break
        time.sleep(0.1)
    chrome.js("""window.__seen = {}; new MutationObserver(() => {
        for (const tr of document.querySelectorAll('tr[data-key]')) {
          const k = tr.dataset.key + '/' + tr.dataset.section;
          if (!(k in window.__seen)) window.__seen[k] = Date.now();
        }}).observe(document.body, {subtree: true, childList: true}); return true;""")
    lat = []
    for i in range(12):
        name = f"live{i:02}.yaml"
        with open(os.path.join(home, "inbox", "." + name), "w") as f:
            f.write(f'command: "sleep 0.3"\ntitle: live {i}\n')
        os.rename(os.path.join(home, "inbox", "." + name), os.path.join(home, "inbox", name))
        time.sleep(1.5)
    seen = chrome.js("return window.__seen;")
    with open(os.path.join(home, "logs", "events.ndjson")) as f:
        events = [json.loads(l) for l in f if l.strip()]
    for e in events:
        if e["event"] not in ("task_started", "task_succeeded"):
            continue
        section = "running" if e["event"] == "task_started" else "finished"
        at = seen.get(f"{e['task_id']}/{section}")
        if at is None:
            continue
        ts = time.mktime(time.strptime(e["ts"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        ts += float("0." + e["ts"][20:23])
        lat.append(at / 1000 - ts)
    d.stop()
    daemon.terminate()
    daemon.wait()
    lat.sort()
    print(f"event to row on an open board: median {statistics.median(lat)*1000:.0f} ms, "
          f"max {max(lat)*1000:.0f} ms over {len(lat)} events (task_started, task_succeeded)")


def burst(chrome):
    """run --once on N files, alone and with the board open in a browser."""
    res = {"alone": [], "page open": []}
    for k in range(R):
        order = ["alone", "page open"] if k % 2 == 0 else ["page open", "alone"]
        for mode in order:
            home = command_home(N, "orch-dash-burst-")
            time.sleep(1)
            subprocess.run(["sync", "-f", home], check=True)
            d = None
            if mode == "page open":
                os.makedirs(os.path.join(home, "logs"), exist_ok=True)
                open(os.path.join(home, "logs", "events.ndjson"), "a").close()
                d = Dashboard(home)
                chrome.goto(d.link)
                chrome.goto(f"http://{d.addr}/")
                time.sleep(1)
            t = time.perf_counter()
            p = subprocess.Popen([BIN, "--home", home, "run", "--once"], env=ENV, stderr=subprocess.DEVNULL)
            _, status, _ = os.wait4(p.pid, 0)
            wall = time.perf_counter() - t
            assert status == 0
            if d:
                time.sleep(1)
                d.stop()
            res[mode].append(wall)
            subprocess.run(["rm", "-rf", home])
    a, b = statistics.median(res["alone"]), statistics.median(res["page open"])
    print(f"{N}-task burst: alone median {a:.2f} s, with the board open in Chromium median {b:.2f} s "
          f"(ratio {b/a:.2f}; rounds alone {', '.join(f'{x:.2f}' for x in res['alone'])}; "
          f"page open {', '.join(f'{x:.2f}' for x in res['page open'])})")


def main():
    only = os.environ.get("ONLY", "board,live,burst").split(",")
    if "board" in only:
        board_on_100k()
    if "live" not in only and "burst" not in only:
        return
    chrome = Chrome()
    try:
        if "live" in only:
            event_to_page(chrome)
        if "burst" in only:
            burst(chrome)
    finally:
        chrome.quit()


if __name__ == "__main__":
    main()
