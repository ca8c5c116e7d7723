//! `orchestrator dashboard` over HTTP, as a client (or an attacker) sends it:
//! where it refuses to listen, which requests it refuses (foreign hosts and
//! origins, forms without the token, anything with `--read-only`, clients
//! without the access token), and what its forms change in the home (each
//! through the same checks as the CLI). The page in a real browser is
//! `dashboard_browser`.

use crate::common::web::{Dashboard, enc, request};
use crate::common::*;
use std::time::Duration;

fn command_home() -> TestHome {
    TestHome::with_config(&config_with("default_agent: command", ""))
}

/// `dashboard` with `args` (and `env`, a variable and its value or none):
/// it must refuse to start, with exit 2 and a message that says `says`.
fn refuses_to_start(home: &TestHome, args: &[&str], env: (&str, Option<&str>), says: &str) {
    let mut c = home.cmd();
    c.arg("dashboard").args(args);
    match env {
        (name, Some(value)) => c.env(name, value),
        (name, None) => c.env_remove(name),
    };
    let child = c
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_output(child, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
}

#[test]
fn a_listen_address_beyond_this_machine_needs_a_token() {
    let home = command_home();
    refuses_to_start(
        &home,
        &["--listen", "0.0.0.0:0"],
        ("ORCH_TEST_NONE", None),
        "dashboard.token_env",
    );
    // A token_env that names an unset variable is refused too, on any address.
    let unset = [
        "--listen",
        "127.0.0.1:0",
        "--set",
        "dashboard.token_env=ORCH_TEST_UNSET_TOKEN",
    ];
    refuses_to_start(&home, &unset, ("ORCH_TEST_UNSET_TOKEN", None), "ORCH_TEST_UNSET_TOKEN");
    // A token that could be guessed is refused.
    let short = [
        "--listen",
        "127.0.0.1:0",
        "--set",
        "dashboard.token_env=ORCH_TEST_SHORT_TOKEN",
    ];
    refuses_to_start(
        &home,
        &short,
        ("ORCH_TEST_SHORT_TOKEN", Some("short")),
        "shorter than 16",
    );
}

#[test]
fn foreign_hosts_origins_and_forms_without_the_token_are_refused() {
    let home = command_home();
    let d = Dashboard::start(&home, &[]);
    let ok = d.get("/");
    assert_eq!(ok.status, 200);
    let csp = ok.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(ok.header("x-frame-options"), Some("DENY"));
    // DNS rebinding: the page under another name.
    let auth = ("Authorization", d.bearer());
    let auth = (auth.0, auth.1.as_str());
    let r = request(&d.addr, "GET", "/", &[("Host", "evil.example:80"), auth], b"");
    assert!((400..500).contains(&r.status), "{r:?}");
    let port = d.addr.rsplit(':').next().unwrap();
    let r = request(
        &d.addr,
        "GET",
        "/",
        &[("Host", &format!("localhost:{port}")), auth],
        b"",
    );
    assert_eq!(r.status, 200);

    let csrf = d.csrf();
    let body = format!("csrf={csrf}&prompt=echo+hi");
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    // Another site's form: its Origin is refused even with a token.
    let r = request(
        &d.addr,
        "POST",
        "/new",
        &[form, auth, ("Origin", "http://evil.example")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 403, "{r:?}");
    // Same origin but no token, a wrong token, or no form at all.
    for body in ["prompt=echo+hi", "csrf=0000&prompt=echo+hi"] {
        let r = request(&d.addr, "POST", "/new", &[form, auth], body.as_bytes());
        assert_eq!(r.status, 403, "{body}: {r:?}");
    }
    let r = request(&d.addr, "POST", "/new", &[auth], b"");
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(inbox_files(&home), 0, "nothing refused may reach the inbox");
    // Without the access token, nothing at all: another user or process of
    // this machine cannot read the form token, or post.
    let r = request(&d.addr, "GET", "/", &[], b"");
    assert_eq!((r.status, r.header("location")), (303, Some("/login")), "{r:?}");
    assert!(!r.body.contains(&csrf));
    let r = request(&d.addr, "POST", "/new", &[form], body.as_bytes());
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(inbox_files(&home), 0);
    // The printed link logs a browser in (a cookie, not the token).
    let login = &d.link[d.link.find("/login").unwrap()..];
    let r = request(&d.addr, "GET", login, &[], b"");
    assert_eq!(r.status, 303, "{r:?}");
    let cookie = r.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
    assert!(!cookie.contains(d.token.as_deref().unwrap()));
    assert_eq!(request(&d.addr, "GET", "/", &[("Cookie", &cookie)], b"").status, 200);
    // With both tokens and no Origin (a script or an old browser): accepted.
    let r = request(&d.addr, "POST", "/new", &[form, auth], body.as_bytes());
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(inbox_files(&home), 1);
}

#[test]
fn read_only_answers_every_post_with_405_and_offers_no_action() {
    let home = command_home();
    home.drop_task("t.txt", "echo hello\n");
    assert!(home.run_once().status.success());
    let id = home.result_of("t.txt")["id"].as_str().unwrap().to_string();
    let d = Dashboard::start(&home, &["--read-only"]);
    let page = d.get(&format!("/tasks/{id}")).body;
    assert!(page.contains("hello") && !page.contains("method=\"post\""), "{page}");
    // Each attempt names the agent it ran on (a task with an agent list may change).
    assert!(
        page.contains("<th>Agent</th>") && page.contains("<td>command</td>"),
        "{page}"
    );
    let board = d.get("/").body;
    assert!(!board.contains("method=\"post\""), "{board}");
    for path in [
        "/new",
        &format!("/tasks/{id}/retry"),
        &format!("/tasks/{id}/cancel"),
        "/upload",
    ] {
        let r = d.post(path, &[("prompt", "echo x")]);
        assert_eq!(r.status, 405, "{path}: {r:?}");
    }
    assert_eq!(inbox_files(&home), 0);
}

#[test]
fn with_a_token_every_client_presents_it_and_it_is_never_shown() {
    let home = command_home();
    let token = "tok-3f9a1c77e2b4";
    let d = Dashboard::start_with(
        &home,
        &["--set", "dashboard.token_env=ORCH_TEST_DASH_TOKEN"],
        &[("ORCH_TEST_DASH_TOKEN", token)],
    );
    let r = d.get("/");
    assert_eq!((r.status, r.header("location")), (303, Some("/login")), "{r:?}");
    assert_eq!(d.get("/rows?k=x").status, 303);
    assert_eq!(d.get("/events").status, 401);
    let bearer = format!("Bearer {token}");
    let r = request(&d.addr, "GET", "/", &[("Authorization", &bearer)], b"");
    assert_eq!(r.status, 200);
    let r = request(&d.addr, "GET", "/", &[("Authorization", "Bearer nope")], b"");
    assert_eq!(r.status, 303);
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let r = request(&d.addr, "POST", "/login", &[form], b"token=wrong");
    assert_eq!(r.status, 403);
    let r = request(
        &d.addr,
        "POST",
        "/login",
        &[form],
        format!("token={}", enc(token)).as_bytes(),
    );
    assert_eq!(r.status, 303, "{r:?}");
    let cookie = r.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
    assert!(!cookie.contains(token), "the cookie is not the token: {cookie}");
    let page = request(&d.addr, "GET", "/", &[("Cookie", &cookie)], b"");
    assert_eq!(page.status, 200);
    assert!(!page.body.contains(token));
    drop(d);
    for f in walk(&home.path) {
        let text = std::fs::read(&f).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&text).contains(token),
            "{} holds the token",
            f.display()
        );
    }
}

/// Task files waiting in the inbox (not its folders).
fn inbox_files(home: &TestHome) -> usize {
    std::fs::read_dir(home.inbox())
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_file())
        .count()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn forms_queue_retry_and_cancel_through_the_same_checks_as_the_cli() {
    let home = command_home();
    let d = Dashboard::start(&home, &[]);
    // A bad task is refused with the parser's reason; nothing is written.
    let r = d.post("/new", &[("prompt", "echo x"), ("agent", "nosuchagent")]);
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.body.contains("nosuchagent"), "{}", r.body);
    let r = d.post("/new", &[("title", "only a title")]);
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(inbox_files(&home), 0);

    let mut daemon = home.spawn_daemon();
    home.wait_started(1);
    let r = d.post("/new", &[("prompt", "echo from-the-form"), ("title", "Form task")]);
    assert_eq!(r.status, 303, "{r:?}");
    let at = r.header("location").unwrap().to_string();
    wait_until(Duration::from_secs(60), "the form's task to succeed", || {
        home.results()
            .iter()
            .any(|r| r["title"] == "Form task" && r["status"] == "succeeded")
    });
    let first = home.results().into_iter().find(|r| r["title"] == "Form task").unwrap();
    let id = first["id"].as_str().unwrap().to_string();
    // The redirect named the queued file; it now finds the task.
    let page = d.get(&at).body;
    assert!(page.contains("from-the-form") && page.contains(&id), "{page}");

    // Retry makes a new task that points back.
    let r = d.post(&format!("/tasks/{id}/retry"), &[]);
    assert_eq!(r.status, 303, "{r:?}");
    wait_until(Duration::from_secs(60), "the retry to finish", || {
        home.results().iter().any(|r| r["parent_task_id"] == id.as_str())
    });

    // Cancel stops a running task's process tree.
    home.drop_task("slow.txt", "sleep 60 & echo $! > sleeper.pid; wait\n");
    wait_until(Duration::from_secs(60), "the slow task to start", || {
        home.path.join("sleeper.pid").exists() && !home.events_of("task_started").is_empty()
    });
    let slow = home
        .events_of("task_started")
        .into_iter()
        .find(|e| e["file"] == "slow.txt")
        .unwrap();
    let slow_id = slow["task_id"].as_str().unwrap().to_string();
    let row = d.get(&format!("/rows?k={slow_id}")).body;
    assert!(row.contains("data-section=\"running\""), "{row}");
    let r = d.post(&format!("/tasks/{slow_id}/cancel"), &[]);
    assert_eq!(r.status, 303, "{r:?}");
    wait_until(Duration::from_secs(30), "the cancel", || {
        home.results()
            .iter()
            .any(|r| r["id"] == slow_id.as_str() && r["status"] == "cancelled")
    });
    let sleeper: u32 = std::fs::read_to_string(home.path.join("sleeper.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_until(Duration::from_secs(10), "the agent's child to be gone", || {
        !alive(sleeper)
    });
    let row = d.get(&format!("/rows?k={slow_id}")).body;
    assert!(
        row.contains("data-section=\"finished\"") && row.contains("cancelled"),
        "{row}"
    );

    // Ids from a request never name a path outside results/.
    for bad in ["..%2F..%2Fetc", "%2Fetc%2Fpasswd", "..", "nosuch"] {
        let r = d.get(&format!("/tasks/{bad}"));
        assert_eq!(r.status, 404, "{bad}: {r:?}");
    }
    let r = d.get("/rows?k=..%2Fx&k=q%3A..%2F..%2Fetc%2Fpasswd");
    assert_eq!(r.body.matches("data-section=\"gone\"").count(), 2, "{}", r.body);
    sigterm(daemon.id());
    let _ = daemon.wait();
}

#[test]
fn dropped_files_are_checked_and_never_replace_one_in_the_inbox() {
    let home = command_home();
    let d = Dashboard::start(&home, &[]);
    let csrf = d.csrf();
    let upload = |files: &[(&str, &str)]| {
        let boundary = "XyZb0undary";
        let mut body = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n");
        for (name, text) in files {
            body.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: text/plain\r\n\r\n{text}\r\n"
            ));
        }
        body.push_str(&format!("--{boundary}--\r\n"));
        let ct = format!("multipart/form-data; boundary={boundary}");
        let auth = d.bearer();
        request(
            &d.addr,
            "POST",
            "/upload",
            &[("Content-Type", &ct), ("Authorization", &auth)],
            body.as_bytes(),
        )
    };
    let r = upload(&[("a.txt", "echo one\n")]);
    assert_eq!(r.status, 200, "{r:?}");
    let r = upload(&[("a.txt", "echo two\n")]);
    assert_eq!(r.status, 200, "{r:?}");
    let mut names: Vec<String> = std::fs::read_dir(home.inbox())
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(
        std::fs::read_to_string(home.inbox().join("a.txt")).unwrap(),
        "echo one\n"
    );
    // A file the parser refuses, and names that are not plain, are not written.
    let r = upload(&[("bad.yaml", "agent: [unclosed\n"), (".hidden.md", "x"), ("b.exe", "x")]);
    assert_eq!(r.status, 422, "{r:?}");
    assert_eq!(r.body.matches("not queued").count(), 3, "{}", r.body);
    assert_eq!(inbox_files(&home), 2);
    // Both run.
    assert!(home.run_once().status.success());
    assert_eq!(home.results().len(), 2);
}

#[test]
fn sigterm_stops_it_with_a_page_following_the_event_log() {
    let home = command_home();
    let d = Dashboard::start(&home, &[]);
    // An open event stream (a page), which never ends by itself.
    let mut stream = std::net::TcpStream::connect(&d.addr).unwrap();
    std::io::Write::write_all(
        &mut stream,
        format!(
            "GET /events HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n\r\n",
            d.addr,
            d.bearer()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut head = [0u8; 12];
    std::io::Read::read_exact(&mut stream, &mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let started = std::time::Instant::now();
    sigterm(d.pid());
    wait_until(Duration::from_secs(30), "the dashboard to exit", || !alive(d.pid()));
    // Its two seconds of grace, and not the whole deadline.
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
}

#[test]
fn open_hands_the_login_link_to_the_desktop_s_opener() {
    let home = command_home();
    let bin = home.path.join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let opened = home.path.join("opened.txt");
    let opener = bin.join("xdg-open");
    std::fs::write(
        &opener,
        format!("#!/bin/sh\nprintf '%s' \"$1\" > '{}'\n", opened.display()),
    )
    .unwrap();
    std::fs::set_permissions(&opener, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let d = Dashboard::start_with(&home, &["--open"], &[("PATH", &path)]);
    wait_until(Duration::from_secs(30), "the opener to be run", || opened.exists());
    wait_until(Duration::from_secs(10), "the link to be written", || {
        std::fs::read_to_string(&opened).is_ok_and(|l| !l.is_empty())
    });
    assert_eq!(std::fs::read_to_string(&opened).unwrap(), d.link);
}

#[test]
fn the_board_filters_queued_files_by_role_too() {
    let home = command_home();
    home.drop_task("r.yaml", "role: review\nagent: claude\nprompt: look at the parser\n");
    home.drop_task("plain.yaml", "command: echo plain\n");
    let d = Dashboard::start(&home, &[]);
    let review = d.get("/?role=review").body;
    assert!(
        review.contains(">r.yaml<") && !review.contains(">plain.yaml<"),
        "{review}"
    );
    let fix = d.get("/?role=fix").body;
    assert!(!fix.contains(">r.yaml<") && !fix.contains(">plain.yaml<"), "{fix}");
    let any = d.get("/").body;
    assert!(any.contains(">r.yaml<") && any.contains(">plain.yaml<"), "{any}");
}
