//! What someone who can write into the home (or answer for a model) tries:
//! forged index rows and records, names that collide, secrets echoed back,
//! terminal escapes, FIFOs and endless files where the daemon reads.

use crate::common::fake_http::FakeHttp;
use crate::common::*;
use serde_json::{Value, json};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// Writes rows keyed `ids` into the index beside what is there: each a
/// whole, valid row (a copy of a real one) that finished in 2020, so that
/// only its key tells it apart.
fn forge_index_rows(home: &TestHome, ids: &[&str]) {
    let path = home.path.join("results/index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut row = index["tasks"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .expect("a real row to copy")
        .clone();
    row["finished_at"] = json!("2020-01-01T00:00:00.000Z");
    for id in ids {
        index["tasks"][*id] = row.clone();
    }
    std::fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn index_rows_that_name_paths_never_get_anything_removed() {
    let home = TestHome::new();
    home.drop_task("t.yaml", "agent: command\ncommand: echo hi\n");
    assert!(home.run_once().status.success());
    // A folder beside results/ and one anywhere else, each with a result.json.
    let beside = home.path.join("victim");
    let outside = tempfile::tempdir().unwrap();
    for d in [&beside, &outside.path().to_path_buf()] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("result.json"), "{}").unwrap();
        std::fs::write(d.join("precious.txt"), "keep me").unwrap();
    }
    let abs = outside.path().to_str().unwrap().to_string();
    forge_index_rows(&home, &["../victim", abs.as_str()]);
    // A well-formed id that is a link to a folder elsewhere.
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        outside.path(),
        home.path.join("results/01jd3k8q7x9v2m4n6p8r0t2w4y-link"),
    )
    .unwrap();
    forge_index_rows(&home, &["01jd3k8q7x9v2m4n6p8r0t2w4y-link"]);

    let out = home.cli(&["clean", "--older-than", "0s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(beside.join("precious.txt").exists(), "results/../victim was removed");
    assert!(
        outside.path().join("precious.txt").exists(),
        "an absolute path was removed"
    );
    // The daemon's retention reads the same rows. A real old task beside them
    // is removed: its `retention_applied` says a pass ran over them all.
    home.drop_task("old.yaml", "agent: command\ncommand: echo old\n");
    assert!(home.run_once().status.success());
    let old = home.result_of("old.yaml")["id"].as_str().unwrap().to_string();
    let path = home.task_dir(&old).join("result.json");
    let mut r: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    r["finished_at"] = "2020-01-01T00:00:00.000Z".into();
    std::fs::write(&path, r.to_string()).unwrap();
    assert!(home.cli(&["reindex"]).status.success());
    std::fs::write(
        home.path.join("orchestrator.yaml"),
        base_config() + "retention:\n  max_age: 1s\n  every: 1s\n",
    )
    .unwrap();
    forge_index_rows(&home, &["../victim", abs.as_str()]);
    let mut daemon = home.spawn_daemon();
    wait_until(LONG, "a retention pass", || {
        !home.events_of("retention_applied").is_empty()
    });
    assert_eq!(home.events_of("retention_applied")[0]["tasks"], 1);
    assert!(!home.task_dir(&old).exists(), "the real old task went");
    sigterm(daemon.id());
    assert!(daemon.wait().unwrap().success());
    assert!(
        beside.join("precious.txt").exists(),
        "retention removed results/../victim"
    );
    assert!(
        outside.path().join("precious.txt").exists(),
        "retention removed an absolute path"
    );
}

#[cfg(unix)]
#[test]
fn a_forged_old_result_in_a_running_tasks_folder_does_not_get_it_removed() {
    let home = TestHome::new();
    // A real result to forge from: whole and valid, so only its place is wrong.
    home.drop_task("real.yaml", "agent: command\ncommand: echo real\n");
    assert!(home.run_once().status.success());
    let mut forged = home.result_of("real.yaml");
    let real_id = forged["id"].as_str().unwrap().to_string();
    let release = home.path.join("release");
    let mut daemon = home.spawn_daemon();
    home.wait_started(1);
    home.drop_task(
        "running.yaml",
        format!(
            "agent: command\ncommand: 'while [ ! -f \"{}\" ]; do sleep 0.05; done; echo done'\n",
            release.display()
        ),
    );
    let started = || {
        home.events_of("task_started")
            .into_iter()
            .find(|e| e["file"] == "running.yaml")
    };
    wait_until(LONG, "the task to start", || started().is_some());
    let id = started().unwrap()["task_id"].as_str().unwrap().to_string();
    let dir = home.task_dir(&id);
    forged["id"] = json!(id);
    forged["source_file"] = json!("running.yaml");
    forged["finished_at"] = json!("2020-01-01T00:00:00.000Z");
    std::fs::write(dir.join("result.json"), forged.to_string()).unwrap();
    let out = home.cli(&["clean", "--older-than", "0s", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let removed: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Only the real old task goes (`clean` has no minimum age); the folder
    // whose forged result looks as old stays, held by its daemon.
    assert_eq!(removed["tasks"], json!([real_id]), "{removed}");
    assert!(dir.join("plan.json").exists(), "the running task's folder was removed");
    std::fs::write(&release, "").unwrap();
    sigterm(daemon.id());
    let _ = daemon.wait();
}

#[test]
fn cancelling_a_file_named_like_an_earlier_cancelled_one_keeps_both() {
    let home = TestHome::new();
    home.drop_task("same.md", "first version");
    let out = home.cli(&["cancel", "same.md"]);
    assert!(out.status.success(), "{}", stderr(&out));
    home.drop_task("same.md", "second version");
    let out = home.cli(&["cancel", "same.md", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let moved: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kept = moved["moved_to"].as_str().unwrap();
    assert_ne!(kept, "inbox/cancelled/same.md", "the second copy has a name of its own");
    let cancelled = home.inbox().join("cancelled");
    let mut texts: Vec<String> = std::fs::read_dir(&cancelled)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    texts.sort();
    assert_eq!(texts, ["first version", "second version"]);
    assert_eq!(std::fs::read_to_string(home.path.join(kept)).unwrap(), "second version");
}

#[test]
fn a_rejected_file_named_like_an_earlier_one_keeps_both() {
    let home = TestHome::new();
    home.drop_task("bad.yaml", "nonsense_key: 1\nprompt: one\n");
    home.run_once();
    home.drop_task("bad.yaml", "nonsense_key: 2\nprompt: two\n");
    home.run_once();
    let kept: Vec<String> = std::fs::read_dir(home.inbox().join("rejected"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".error.json"))
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
}

#[cfg(unix)]
#[test]
fn a_key_the_mediators_server_echoes_is_redacted_everywhere() {
    const KEY: &str = "mediator-key-0123456789abcdef";
    let server = FakeHttp::start(|r, _| {
        // A server that quotes the credentials it was sent.
        let auth = r.header("authorization").unwrap_or("").to_string();
        (
            401,
            json!({"error": {"message": format!("invalid credentials: {auth}")}}),
        )
    });
    let home = TestHome::with_config(
        &(base_config()
            + &format!(
                "mediator:\n  kind: openai\n  url: {}/v1\n  model: tiny\n  timeout: 2s\n  api_key_env: MY_MEDIATOR_CREDENTIAL\n",
                server.url()
            )),
    );
    home.drop_task("note.txt", "please look at the login code");
    let mut c = home.cmd();
    c.args(["run", "--once"])
        .env("MY_MEDIATOR_CREDENTIAL", KEY)
        .env("ORCHESTRATOR_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let out = wait_output(c.spawn().unwrap(), LONG);
    assert!(
        server.requests()[0].header("authorization").unwrap_or("").contains(KEY),
        "the key was sent"
    );
    let r = home.result_of("note.txt");
    assert_eq!(r["mediation"]["used"], false, "{r}");
    assert!(r["mediation"]["detail"].as_str().unwrap().contains("REDACTED"), "{r}");
    // Nowhere in the home, nor on the daemon's stderr.
    let mut leaks = Vec::new();
    for path in walk(&home.path) {
        if std::fs::read(&path).is_ok_and(|b| String::from_utf8_lossy(&b).contains(KEY)) {
            leaks.push(path);
        }
    }
    assert!(leaks.is_empty(), "the key is in {leaks:?}");
    assert!(!stderr(&out).contains(KEY), "{}", stderr(&out));
}

#[cfg(unix)]
#[test]
fn context_from_an_answer_with_a_secret_is_redacted() {
    let home = TestHome::new();
    let next = run_with_context_from(
        &home,
        "agent: command\ncommand: echo 'the token is ghp_abcdefghijklmnopqrstuvwxyz0123456789'\n",
    );
    let dir = home.task_dir(next["id"].as_str().unwrap());
    let plan = std::fs::read_to_string(dir.join("plan.json")).unwrap();
    assert!(plan.contains("the token is"), "the answer is in the context: {plan}");
    assert!(!plan.contains("ghp_abcdefghijklmnopqrstuvwxyz0123456789"), "{plan}");
}

#[test]
fn titles_with_terminal_escapes_are_shown_escaped_by_list_and_status() {
    let home = TestHome::new();
    let evil = "title: \"evil \\e]0;pwned\\a\\e[2J title\"\nagent: command\ncommand: echo hi\n";
    home.drop_task("evil.yaml", evil);
    let text = stdout(&home.cli(&["status"]));
    assert!(!text.contains('\u{1b}'), "status printed a raw escape: {text:?}");
    assert!(text.contains("\\u{1b}]0;pwned"), "{text:?}");
    home.run_once();
    for verb in ["list", "status"] {
        let text = stdout(&home.cli(&[verb]));
        assert!(!text.contains('\u{1b}'), "{verb} printed a raw escape: {text:?}");
    }
    let text = stdout(&home.cli(&["list"]));
    assert!(text.contains("\\u{1b}]0;pwned"), "{text:?}");
}

/// Every file below `dir`, links not followed.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let t = e.file_type().unwrap();
        if t.is_dir() {
            out.extend(walk(&e.path()));
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    out
}

/// The `config_reloaded` events so far.
#[cfg(unix)]
fn reloads(home: &TestHome) -> Vec<Value> {
    home.events_of("config_reloaded")
}

#[cfg(unix)]
#[test]
fn a_fifo_a_device_a_huge_file_or_another_file_as_the_config_is_refused_without_a_hang() {
    let home = TestHome::new();
    let config = home.path.join("orchestrator.yaml");
    let good = std::fs::read_to_string(&config).unwrap();
    let mut daemon = home.spawn_daemon();
    home.wait_started(1);
    let secret_file = home.path.join("not-a-config.txt");
    std::fs::write(&secret_file, "root:$6$salt$SECRET-HASH-VALUE:19000:0:99999:7:::\n").unwrap();
    type Swap<'a> = (&'a str, Box<dyn Fn() + 'a>);
    let swaps: [Swap; 4] = [
        (
            "not a regular file",
            Box::new(|| nix::unistd::mkfifo(&config, nix::sys::stat::Mode::S_IRWXU).unwrap()),
        ),
        (
            "not a regular file",
            Box::new(|| std::os::unix::fs::symlink("/dev/zero", &config).unwrap()),
        ),
        (
            "larger than",
            Box::new(|| std::fs::File::create(&config).unwrap().set_len(200 << 20).unwrap()),
        ),
        (
            "is this file a config?",
            Box::new(|| std::os::unix::fs::symlink(&secret_file, &config).unwrap()),
        ),
    ];
    for (i, (why, swap)) in swaps.iter().enumerate() {
        std::fs::remove_file(&config).unwrap();
        swap();
        wait_until(LONG, "the refused reload", || reloads(&home).len() > i);
        let e = &reloads(&home)[i];
        assert_eq!(e["ok"], false, "{e}");
        assert!(e["error"].as_str().unwrap().contains(why), "{why}: {e}");
        assert!(!e.to_string().contains("SECRET-HASH-VALUE"), "{e}");
    }
    // The config in force still runs tasks, and SIGTERM still stops the daemon.
    home.drop_task("still.yaml", "agent: command\ncommand: echo still\n");
    wait_until(LONG, "a task on the old config", || home.results().len() == 1);
    std::fs::remove_file(&config).unwrap();
    std::fs::write(&config, good).unwrap();
    sigterm(daemon.id());
    wait_until(Duration::from_secs(15), "the daemon to stop on SIGTERM", || {
        daemon.try_wait().unwrap().is_some()
    });
    let log = std::fs::read_to_string(home.path.join("logs/orchestrator.log")).unwrap_or_default();
    assert!(!log.contains("SECRET-HASH-VALUE"), "{log}");
}

#[cfg(unix)]
#[test]
fn a_fifo_in_the_notification_outbox_is_set_aside_and_the_rest_is_sent() {
    let server = FakeHttp::start(|_, _| (200, json!({})));
    let home = TestHome::with_config(
        &(base_config()
            + &format!(
                "notify:\n  webhook:\n    url: {}/hook\n    events: [task_succeeded]\n",
                server.url()
            )),
    );
    let outbox = home.path.join("notify/outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    nix::unistd::mkfifo(
        &outbox.join("0000000000001-1-000000.json"),
        nix::sys::stat::Mode::S_IRWXU,
    )
    .unwrap();
    std::os::unix::fs::symlink("/dev/zero", outbox.join("0000000000002-1-000000.json")).unwrap();
    let mut daemon = home.spawn_daemon();
    home.wait_started(1);
    home.drop_task("ok.yaml", "agent: command\ncommand: echo fine\n");
    wait_until(LONG, "the task's notification", || !server.requests().is_empty());
    let failed = std::fs::read_dir(home.path.join("notify/failed")).unwrap().count();
    assert_eq!(failed, 2, "the FIFO and the link were set aside");
    sigterm(daemon.id());
    wait_until(Duration::from_secs(15), "the daemon to stop on SIGTERM", || {
        daemon.try_wait().unwrap().is_some()
    });
}

#[cfg(unix)]
#[test]
fn context_from_does_not_follow_a_link_to_another_homes_task() {
    let other = TestHome::new();
    other.drop_task("theirs.yaml", "agent: command\ncommand: echo OTHER-HOMES-ANSWER\n");
    other.run_once();
    let id = other.result_of("theirs.yaml")["id"].as_str().unwrap().to_string();
    let home = TestHome::new();
    std::os::unix::fs::symlink(other.task_dir(&id), home.task_dir(&id)).unwrap();
    home.drop_task(
        "mine.yaml",
        format!("agent: command\ncommand: cat\ncontext_from: [{id}]\nprompt: go on\n"),
    );
    home.run_once();
    let r = home.result_of("mine.yaml");
    assert!(!r["output"].as_str().unwrap().contains("OTHER-HOMES-ANSWER"), "{r}");
    let plan = std::fs::read_to_string(home.task_dir(r["id"].as_str().unwrap()).join("plan.json")).unwrap();
    assert!(!plan.contains("OTHER-HOMES-ANSWER"), "{plan}");
}
