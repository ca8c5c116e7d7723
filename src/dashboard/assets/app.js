// The dashboard's one script. The pages work without it (forms post, pages
// reload); with it they follow the event log live. It never puts text from
// the server into the page as markup except rows the server rendered and
// escaped, parsed with DOMParser (which runs no script), and output is added
// as text nodes.
"use strict";
(() => {
  const live = document.getElementById("live");
  const board = document.getElementById("sec-running");
  const task = document.getElementById("task");
  const drop = document.getElementById("drop");
  if (drop) dropZone(drop);
  if (!board && !task) return;

  let source;
  function connect() {
    const id = task && task.dataset.id;
    source = new EventSource(id ? "/events?task=" + encodeURIComponent(id) : "/events");
    source.onopen = () => live && live.classList.add("on");
    source.onerror = () => live && live.classList.remove("on");
    source.onmessage = (e) => {
      let events;
      try { events = JSON.parse(e.data); } catch (_) { return; }
      // A burst: only how many changed. The board is fetched whole, once.
      if (events && events.many) {
        if (board) soon();
        return;
      }
      for (const ev of Array.isArray(events) ? events : [events]) {
        if (board) boardEvent(ev);
        if (task) taskEvent(ev);
      }
    };
    source.addEventListener("resync", () => soon());
  }
  connect();

  // ---- the board ----
  const dirty = new Set();
  let timer = null;
  let linesTimer = null;
  // In a burst the page hears only that much changed (or it fell behind):
  // it fetches itself whole, at most every two seconds, so that it never
  // competes with the daemon for the CPU.
  let stale = false;
  let soonTimer = null;
  function soon() {
    stale = true;
    if (soonTimer) return;
    soonTimer = setTimeout(() => {
      soonTimer = null;
      if (!stale) return;
      stale = false;
      if (board) refreshAll(); else location.reload();
    }, 2000);
  }

  // The board as the server renders it now, in place of the one shown.
  async function refreshAll() {
    try {
      const res = await fetch(location.href, { credentials: "same-origin" });
      if (!res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      const fresh = doc.querySelector("main");
      const main = document.querySelector("main");
      if (fresh && main) main.replaceChildren(...Array.from(fresh.childNodes).map((n) => document.importNode(n, true)));
    } catch (_) { soon(); }
  }
  const params = new URLSearchParams(location.search);
  const want = {
    status: params.get("status") || "",
    agent: params.get("agent") || "",
    role: params.get("role") || "",
    q: (params.get("q") || "").toLowerCase(),
    page: Number(params.get("page") || 0),
  };

  function boardEvent(ev) {
    if (stale) return;
    // The rejected files are listed whole: fetched with the board.
    if (ev.event === "task_rejected") { soon(); return; }
    if (ev.task_id) dirty.add(ev.task_id);
    if (ev.file && (ev.event === "task_queued" || ev.event === "task_started" || ev.event === "task_rejected")) {
      dirty.add("q:" + ev.file);
    }
    if (dirty.size && !timer) timer = setTimeout(flush, 100);
  }

  function passes(tr) {
    const d = tr.dataset;
    return (!want.status || d.status === want.status) &&
      (!want.agent || d.agent === want.agent) &&
      (!want.role || d.role === want.role) &&
      (!want.q || (d.text || "").includes(want.q)) &&
      !(d.section === "finished" && want.page > 0);
  }

  async function flush() {
    timer = null;
    if (dirty.size > 40) {
      // More changed than rows are worth asking for: the whole board, soon.
      dirty.clear();
      soon();
    } else {
      const query = Array.from(dirty).map((k) => "k=" + encodeURIComponent(k)).join("&");
      dirty.clear();
      try {
        const res = await fetch("/rows?" + query, { credentials: "same-origin" });
        if (res.ok) place(await res.text());
      } catch (_) { /* the next event tries again */ }
      // The daemon writes the index (and its counts) a moment after a task
      // ends: the lines above the tables are asked for again once it has.
      clearTimeout(linesTimer);
      linesTimer = setTimeout(async () => {
        try {
          const res = await fetch("/rows", { credentials: "same-origin" });
          if (res.ok) place(await res.text());
        } catch (_) { /* shown at the next change */ }
      }, 2000);
    }
    if (dirty.size && !timer) timer = setTimeout(flush, 100);
  }

  function place(html) {
    const doc = new DOMParser().parseFromString(html, "text/html");
    for (const key of ["daemons", "finished-counts"]) {
      const fresh = doc.getElementById(key);
      const shown = document.getElementById(key);
      if (fresh && shown) shown.replaceWith(document.importNode(fresh, true));
    }
    for (const tr of Array.from(doc.querySelectorAll("tr[data-key]"))) {
      const key = tr.dataset.key;
      for (const old of document.querySelectorAll("tr[data-key]")) {
        if (old.dataset.key === key) old.remove();
      }
      if (tr.dataset.section === "gone" || !passes(tr)) continue;
      const body = document.getElementById("sec-" + tr.dataset.section);
      if (!body) continue;
      const row = document.importNode(tr, true);
      if (tr.dataset.section === "queued") body.appendChild(row);
      else body.insertBefore(row, body.firstChild);
    }
    for (const body of document.querySelectorAll("tbody[id^=sec-]")) {
      const name = body.id.slice(4);
      const count = document.querySelector('[data-count="' + name + '"]');
      if (count) count.textContent = String(body.rows.length);
      const empty = body.closest("section") && body.closest("section").querySelector("p.empty");
      if (empty) empty.hidden = body.rows.length > 0;
    }
  }

  // ---- a task's page ----
  const output = document.getElementById("output");
  const id = task && task.dataset.id;
  const file = task && task.dataset.file;
  // One loop follows the output; an event only brings its next look forward.
  let followTimer = null;
  let polling = false;

  function taskEvent(ev) {
    // A queued file's page: once a daemon takes the file, it is a task.
    if (file && ev.file === file && ev.event !== "task_queued") {
      setTimeout(() => location.reload(), 300);
      return;
    }
    if (!id || ev.task_id !== id) return;
    if (/^task_(succeeded|failed|cancelled|interrupted)$/.test(ev.event)) {
      setTimeout(() => location.reload(), 300);
    } else {
      lookSoon(0);
    }
  }

  function lookSoon(ms) {
    if (!output || output.dataset.done === "true" || polling) return;
    clearTimeout(followTimer);
    followTimer = setTimeout(follow, ms);
  }

  async function follow() {
    followTimer = null;
    if (polling || !output || output.dataset.done === "true") return;
    polling = true;
    try {
      const attempt = output.dataset.attempt;
      const res = await fetch("/tasks/" + encodeURIComponent(id) + "/output?attempt=" + attempt +
        "&from=" + output.dataset.next, { credentials: "same-origin" });
      if (res.ok) {
        const o = await res.json();
        if (o.text) output.appendChild(document.createTextNode(o.text));
        output.dataset.next = String(o.next);
        if (o.latest && o.latest > Number(attempt)) {
          output.dataset.attempt = String(o.latest);
          output.dataset.next = "0";
          output.appendChild(document.createTextNode("── attempt " + o.latest + " ──\n"));
        } else if (o.done) {
          output.dataset.done = "true";
        }
      }
    } catch (_) { /* the next look tries again */ }
    polling = false;
    lookSoon(1000);
  }
  if (task && task.dataset.status === "running") lookSoon(0);

  // ---- dropping files on the new-task page ----
  function dropZone(zone) {
    const form = document.getElementById("upload");
    const input = form && form.querySelector('input[type="file"]');
    if (!input) return;
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      if (!e.dataTransfer || !e.dataTransfer.files.length) return;
      input.files = e.dataTransfer.files;
      form.submit();
    });
  }
})();
