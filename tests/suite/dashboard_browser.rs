//! The dashboard in a real browser (Debian's Chromium under chromedriver):
//! a task crosses an open board without a reload, the page's buttons cancel,
//! reply and apply, a dropped file runs, hostile text stays text, and another
//! site or another host name gets nothing. The screenshots in
//! docs/dashboard.md come from here (`DASHBOARD_SCREENSHOTS=1`).

use crate::common::web::{Browser, Dashboard};
use crate::common::*;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);

fn browser(test: &str) -> Option<Browser> {
    let b = Browser::start();
    if b.is_none() {
        skip(
            test,
            "chromium and chromedriver are not installed (apt install chromium chromium-driver)",
        );
    }
    b
}

/// Where a screenshot goes: docs/dashboard/ when asked for, else the target folder.
fn shot(name: &str) -> PathBuf {
    let dir = if std::env::var_os("DASHBOARD_SCREENSHOTS").is_some() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard")
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-screenshots")
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A daemon and a dashboard on `home`, and the board open in `b` (logged in,
/// its live stream connected, a mark set that a reload would wipe).
fn live_board(b: &Browser, home: &TestHome) -> (std::process::Child, Dashboard) {
    let daemon = home.spawn_daemon();
    home.wait_started(1);
    let d = Dashboard::start(home, &[]);
    b.goto(&d.link);
    b.goto(&d.url("/"));
    b.wait_for(
        LIMIT,
        "the live stream to connect",
        "return document.getElementById('live').classList.contains('on');",
    );
    b.js("window.__stayed = 1; return true;", json!([]));
    (daemon, d)
}

fn row(section: &str, file_or_id: &str) -> String {
    format!(
        "return Array.from(document.querySelectorAll('#sec-{section} tr')).some(tr => tr.textContent.includes({}));",
        json!(file_or_id)
    )
}

#[test]
fn a_task_crosses_an_open_board_and_cancel_stops_its_process_tree() {
    let Some(b) = browser("a_task_crosses_an_open_board_and_cancel_stops_its_process_tree") else {
        return;
    };
    let home = TestHome::with_config(&config_with("default_agent: command", ""));
    let (mut daemon, _dashboard) = live_board(&b, &home);
    home.drop_task("walk.txt", "sleep 3; echo walked\n");
    b.wait_for(LIMIT, "the task in Running", &row("running", "sleep 3"));
    b.wait_for(
        LIMIT,
        "the task in Finished, succeeded",
        "return Array.from(document.querySelectorAll('#sec-finished tr')).some(tr => tr.textContent.includes('sleep 3') && tr.dataset.status === 'succeeded');",
    );
    assert_eq!(
        b.js("return window.__stayed;", json!([])),
        json!(1),
        "the board reloaded"
    );
    assert_eq!(b.js(&row("running", "sleep 3"), json!([])), json!(false));
    // The lines above the tables follow too.
    b.wait_for(
        LIMIT,
        "the finished counts",
        "return document.getElementById('finished-counts').textContent.startsWith('1 in all: 1 succeeded');",
    );

    // Cancel from the board: the agent's whole tree goes.
    home.drop_task("slow.txt", "sleep 120 & echo $! > sleeper.pid; wait\n");
    b.wait_for(LIMIT, "the slow task in Running", &row("running", "sleep 120"));
    wait_until(LIMIT, "the sleeper's pid", || home.path.join("sleeper.pid").exists());
    b.screenshot(&shot("board.png"));
    b.click("#sec-running tr form.danger button");
    b.wait_for(LIMIT, "the task page", "return !!document.getElementById('task');");
    wait_until(LIMIT, "the task to be cancelled", || {
        home.results()
            .iter()
            .any(|r| r["source_file"] == "slow.txt" && r["status"] == "cancelled")
    });
    let sleeper: u32 = std::fs::read_to_string(home.path.join("sleeper.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_until(Duration::from_secs(15), "the agent's child to be gone", || {
        !alive(sleeper)
    });
    b.wait_for(
        LIMIT,
        "the page to show it cancelled",
        "return document.querySelector('#task').dataset.status === 'cancelled';",
    );
    sigterm(daemon.id());
    let _ = daemon.wait();
}

#[test]
fn a_burst_reaches_an_open_board_whole() {
    let Some(b) = browser("a_burst_reaches_an_open_board_whole") else {
        return;
    };
    let home = TestHome::with_config(&config_with("default_agent: command\nmax_concurrent: 4", ""));
    let (mut daemon, _dashboard) = live_board(&b, &home);
    // More at once than the page asks rows for: it fetches the board whole.
    for i in 0..80 {
        home.drop_task(&format!("b{i:02}.txt"), format!("echo burst {i}\n"));
    }
    b.wait_for(
        LIMIT,
        "a full first page of finished tasks and nothing left running or queued",
        "return document.querySelectorAll('#sec-finished tr[data-status=succeeded]').length === 50 \
         && document.querySelectorAll('#sec-running tr, #sec-queued tr').length === 0;",
    );
    wait_until(LIMIT, "all 80 results", || home.results().len() == 80);
    assert_eq!(
        b.js("return window.__stayed;", json!([])),
        json!(1),
        "the board reloaded"
    );
    sigterm(daemon.id());
    let _ = daemon.wait();
}

#[test]
fn reply_and_apply_from_a_task_page() {
    let Some(b) = browser("reply_and_apply_from_a_task_page") else {
        return;
    };
    let home = TestHome::new();
    let repo = home.path.join("repo");
    std::fs::create_dir_all(repo.join("app")).unwrap();
    std::fs::write(repo.join("app/a.txt"), "one\ntwo\nthree\n").unwrap();
    git_sh(&repo, "git init -q && git add -A && git commit -qm init");
    home.drop_task(
        "g.md",
        "---\nworkdir: repo/app\nmode: guarded\n---\n@fake success write=a.txt\nChange a.txt\n",
    );
    assert!(home.run_once().status.success());
    let res = home.result_of("g.md");
    let id = res["id"].as_str().unwrap().to_string();
    let before = std::fs::read_to_string(repo.join("app/a.txt")).unwrap();
    let d = Dashboard::start(&home, &[]);
    b.goto(&d.link);
    b.goto(&d.url(&format!("/tasks/{id}")));
    b.wait_for(
        LIMIT,
        "the diff",
        "return document.querySelectorAll('pre.diff .add').length > 0;",
    );
    assert_eq!(
        b.js("return document.querySelector('.verdict').textContent;", json!([])),
        json!("apply: the diff applies cleanly to the workdir")
    );
    b.screenshot(&shot("task.png"));
    b.click("form[action$='/apply'] button");
    b.wait_for(
        LIMIT,
        "the notice",
        "return (document.querySelector('.notice')||{}).textContent === 'Applied to the workdir.';",
    );
    let after = std::fs::read_to_string(repo.join("app/a.txt")).unwrap();
    assert_ne!(before, after, "apply changed the workdir");
    assert!(home.task_dir(&id).join("applied.json").exists());

    // Reply: a follow-up in the same session, queued in the inbox.
    b.type_into("form.reply textarea", "@fake success\nNow explain the change");
    b.click("form.reply button");
    b.wait_for(
        LIMIT,
        "the notice",
        "return /Queued the follow-up/.test((document.querySelector('.notice')||{}).textContent);",
    );
    let queued: Vec<_> = std::fs::read_dir(home.inbox())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(queued.len(), 1, "{queued:?}");
    let task: serde_json::Value = serde_json::from_slice(&std::fs::read(&queued[0]).unwrap()).unwrap();
    assert_eq!(task["parent_task_id"], id.as_str());
    assert_eq!(task["session"], res["session_id"]);
    assert!(task["prompt"].as_str().unwrap().contains("Now explain the change"));
}

#[test]
fn a_form_and_a_dropped_file_land_in_the_inbox_and_run() {
    let Some(b) = browser("a_form_and_a_dropped_file_land_in_the_inbox_and_run") else {
        return;
    };
    let home = TestHome::with_config(&config_with("default_agent: command", ""));
    let mut daemon = home.spawn_daemon();
    home.wait_started(1);
    let d = Dashboard::start(&home, &[]);
    b.goto(&d.link);
    b.goto(&d.url("/new"));
    b.type_into("textarea[name=prompt]", "echo typed-in-the-form");
    b.type_into("input[name=title]", "From the form");
    b.click("form.new button");
    wait_until(LIMIT, "the form's task to succeed", || {
        home.results()
            .iter()
            .any(|r| r["title"] == "From the form" && r["status"] == "succeeded")
    });
    b.wait_for(
        LIMIT,
        "its page to show it",
        "return document.body.textContent.includes('typed-in-the-form');",
    );

    let file = home.path.join("dropped-task.txt");
    std::fs::write(&file, "echo dropped-through-the-page\n").unwrap();
    b.goto(&d.url("/new"));
    b.type_into("input[type=file]", &file.display().to_string());
    b.click("form.upload button");
    b.wait_for(
        LIMIT,
        "the upload's answer",
        "return document.body.textContent.includes('queued as');",
    );
    wait_until(LIMIT, "the dropped file to run", || {
        home.results().iter().any(|r| {
            r["source_file"] == "dropped-task.txt" && r["output"].as_str().unwrap_or("").contains("dropped-through")
        })
    });
    sigterm(daemon.id());
    let _ = daemon.wait();
}

#[test]
fn hostile_text_is_shown_as_text_and_runs_nothing() {
    let Some(b) = browser("hostile_text_is_shown_as_text_and_runs_nothing") else {
        return;
    };
    let home = TestHome::with_config(&config_with("default_agent: command", ""));
    let repo = home.path.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("page.html"), "<p>old</p>\n").unwrap();
    git_sh(&repo, "git init -q && git add -A && git commit -qm init");
    let title = "<script>window.__xss=1</script><img src=x onerror=window.__xss=2>";
    let name = "x<img src=y onerror=window.__xss=3>.md";
    // The command prints markup, a javascript: link and terminal escapes, and
    // writes markup into a file of a guarded run (the diff).
    let command = r#"printf '<img src=z onerror=window.__xss=4> [go](javascript:window.__xss=5) \033[31mred\033[0m\n'; printf '<script>window.__xss=6</script>\n' > page.html"#;
    home.drop_task(
        name,
        format!("---\ntitle: \"{title}\"\nworkdir: repo\nmode: guarded\ncommand: \"{}\"\n---\n<a href=\"javascript:window.__xss=7\">prompt link</a>\n", command.replace('\\', "\\\\").replace('"', "\\\"")),
    );
    assert!(home.run_once().status.success());
    let res = home.result_of(name);
    assert_eq!(res["status"], "succeeded", "{res}");
    let id = res["id"].as_str().unwrap().to_string();
    let d = Dashboard::start(&home, &[]);
    b.goto(&d.link);
    let clean = "return window.__xss === undefined && document.scripts.length === 1 \
                 && document.querySelectorAll('main img, main script, a[href^=\"javascript:\"]').length === 0;";
    for path in ["/".to_string(), format!("/tasks/{id}"), "/stats".to_string()] {
        b.goto(&d.url(&path));
        b.wait_for(LIMIT, "the page", "return document.readyState === 'complete';");
        assert_eq!(
            b.js(clean, json!([])),
            json!(true),
            "{path} ran or made markup of hostile text"
        );
    }
    // On the task page every piece is there, as text.
    b.goto(&d.url(&format!("/tasks/{id}")));
    let text = b
        .js("return document.querySelector('main').textContent;", json!([]))
        .as_str()
        .unwrap()
        .to_string();
    for piece in [
        "<script>window.__xss=1</script>",
        "onerror=window.__xss=4",
        "javascript:window.__xss=5",
        "\\u{1b}[31mred",
        "<script>window.__xss=6</script>",
        "javascript:window.__xss=7",
    ] {
        assert!(text.contains(piece), "{piece:?} not shown as text in:\n{text}");
    }
    b.screenshot(&shot("diff.png"));
}

#[test]
fn another_site_and_another_host_name_get_nothing() {
    let Some(b) = browser("another_site_and_another_host_name_get_nothing") else {
        return;
    };
    let home = TestHome::with_config(&config_with("default_agent: command", ""));
    let d = Dashboard::start(&home, &[]);
    // The person is logged in (the cookie is sent to the same site, which an
    // attacker's page on another port of this host is).
    b.goto(&d.link);
    // An attacker's page on another origin (another port) posts a form to the dashboard.
    let evil = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let evil_addr = evil.local_addr().unwrap();
    let target = d.url("/new");
    std::thread::spawn(move || {
        for s in evil.incoming().flatten().take(4) {
            use std::io::{Read, Write};
            let mut s = s;
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let page = format!(
                "<!doctype html><form id=f method=post action=\"{target}\"><input name=prompt value=\"echo pwned\">\
                 <input name=csrf value=guess></form><script>document.getElementById('f').submit()</script>"
            );
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    b.goto(&format!("http://{evil_addr}/"));
    b.wait_for(
        LIMIT,
        "the refusal",
        "return location.pathname === '/new' && document.body.textContent.includes('refused');",
    );
    assert_eq!(
        std::fs::read_dir(home.inbox()).unwrap().count(),
        0,
        "the other site's form queued a task"
    );

    // The dashboard under another host name (DNS rebinding): refused.
    let port = d.addr.rsplit(':').next().unwrap();
    b.goto(&format!("http://rebind.localhost:{port}/"));
    b.wait_for(
        LIMIT,
        "the refusal",
        "return document.body.textContent.includes('does not answer to that host name');",
    );
}
