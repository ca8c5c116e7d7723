//! The bad input catalogue: one test per kind of bad file or bad
//! home. Each ends with a clear reason (and what to do), the daemon alive
//! (a good task dropped beside the bad one still runs), and nothing lost (a
//! rejected file is kept byte for byte in `inbox/rejected/`).

use crate::common::*;
use std::time::Duration;

/// Drops `bytes` as `name` next to a good task, runs the daemon once, and checks
/// the rejection: reason, message, hint, event, the file kept as it was.
fn rejects(name: &str, bytes: &[u8], reason: &str) -> TestHome {
    let home = TestHome::new();
    home.drop_task(name, bytes);
    home.drop_task("good.md", "@fake success\nstill runs\n");
    let out = home.run_once_within(Duration::from_secs(60));
    assert_eq!(
        out.status.code(),
        Some(1),
        "a rejection makes --once exit 1: {}",
        stderr(&out)
    );
    let err = home.rejected(name);
    assert_eq!(err["reason"], reason, "{name}: {err}");
    assert_eq!(err["file"], name);
    assert!(err["error"].as_str().unwrap().len() > 5, "{err}");
    assert!(err["hint"].as_str().unwrap().len() > 5, "a hint for {name}: {err}");
    let kept = std::fs::read(home.inbox().join("rejected").join(name)).unwrap();
    assert!(kept == bytes, "{name} is kept as it was dropped");
    assert!(
        home.events_of("task_rejected")
            .iter()
            .any(|e| e["file"] == name && e["reason"] == reason)
    );
    assert_eq!(home.result_of("good.md")["status"], "succeeded", "the daemon went on");
    home
}

/// Runs `name` and returns its result, which must be a success.
fn accepts(name: &str, bytes: &[u8]) -> serde_json::Value {
    let home = TestHome::new();
    home.drop_task(name, bytes);
    let out = home.run_once_within(Duration::from_secs(60));
    assert!(out.status.success(), "{}", stderr(&out));
    let r = home.result_of(name);
    assert_eq!(r["status"], "succeeded");
    assert!(!home.inbox().join("rejected").join(name).exists());
    r
}

macro_rules! rejected {
    ($($test:ident: $name:expr, $bytes:expr => $reason:expr;)*) => {
        $(
            #[test]
            fn $test() {
                rejects($name, AsRef::<[u8]>::as_ref(&$bytes), $reason);
            }
        )*
    };
}

rejected! {
    broken_yaml_front_matter: "broken.md", "---\ntitle: [unclosed\n---\nhi\n" => "invalid_fields";
    broken_yaml_file: "broken.yaml", "prompt: [\n  nope: {\n" => "invalid_fields";
    broken_json: "broken.json", "{\"prompt\": \"x\"," => "invalid_fields";
    yaml_alias_bomb: "bomb.yaml",
        "prompt: hi\nallowed_tools:\n  - &a [x,x,x,x,x,x,x,x,x,x]\n  - &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n  - &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n  - &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n  - [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
        => "invalid_fields";
    deep_nesting: "deep.md", format!("---\ntitle: {}{}\n---\nhi\n", "[".repeat(5000), "]".repeat(5000)) => "invalid_fields";
    unknown_field: "typo.md", "---\ntitel: typo\n---\nhi\n" => "unknown_field";
    wrong_type: "type.yaml", "prompt: x\nmax_turns: many\n" => "invalid_fields";
    negative_number: "neg.yaml", "prompt: x\nmax_turns: -3\n" => "invalid_value";
    huge_number: "huge.md", "---\nmax_turns: 99999999999999999999999\n---\nhi\n" => "invalid_fields";
    negative_budget: "budget.md", "---\nbudget_usd: -5\n---\nhi\n" => "invalid_value";
    duration_that_does_not_parse: "dur.md", "---\ntimeout: whenever\n---\nhi\n" => "invalid_fields";
    zero_timeout: "zero.md", "---\ntimeout: 0s\n---\nhi\n" => "invalid_value";
    empty_prompt: "empty.txt", "   \n\n" => "empty_prompt";
    front_matter_without_prompt: "nobody.md", "---\ntitle: nothing to do\n---\n" => "empty_prompt";
    not_utf8: "latin1.txt", b"caf\xe9 au lait".to_vec() => "not_utf8";
    nul_bytes: "nul.txt", b"hello\0world".to_vec() => "nul_byte";
    oversized_file: "big.txt", vec![b'a'; 1024 * 1024 + 10] => "too_large";
    unsupported_extension: "doc.pdf", "%PDF-1.4" => "unsupported_extension";
    workdir_missing: "missing.md", "---\nworkdir: no/such/dir\n---\nhi\n" => "workdir_missing";
    workdir_escape_by_dotdot: "dotdot.md", "---\nworkdir: ../../../../../../../../etc\n---\nhi\n" => "workdir_outside_roots";
}

#[test]
fn workdir_escape_by_absolute_path_is_a_security_violation() {
    let outside = tempfile::tempdir().unwrap();
    let home = rejects(
        "abs.md",
        format!("---\nworkdir: {}\n---\nhi\n", outside.path().display()).as_bytes(),
        "workdir_outside_roots",
    );
    assert_eq!(home.events_of("security_violation")[0]["file"], "abs.md");
}

#[cfg(unix)]
#[test]
fn workdir_escape_through_a_symlink_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let home = TestHome::new();
    std::os::unix::fs::symlink(outside.path(), home.path.join("innocent")).unwrap();
    home.drop_task("link.md", "---\nworkdir: innocent\n---\nhi\n");
    assert_eq!(home.run_once().status.code(), Some(1));
    assert_eq!(home.rejected("link.md")["reason"], "workdir_outside_roots");
    assert_eq!(home.events_of("security_violation").len(), 1);
}

#[test]
fn a_byte_order_mark_is_accepted() {
    let r = accepts(
        "bom.md",
        "\u{feff}---\ntitle: With BOM\n---\n@fake success\nhi\n".as_bytes(),
    );
    assert_eq!(r["title"], "With BOM");
}

#[test]
fn crlf_line_ends_are_accepted() {
    let r = accepts(
        "crlf.md",
        b"---\r\ntitle: Windows file\r\nmax_turns: 3\r\n---\r\n@fake success\r\nhi\r\n",
    );
    assert_eq!(r["title"], "Windows file");
}

#[test]
fn a_file_name_with_spaces_runs_and_keeps_its_name() {
    let r = accepts("fix the login page.md", b"@fake success\nhi\n");
    assert!(
        r["id"].as_str().unwrap().ends_with("-fix-the-login-page"),
        "{}",
        r["id"]
    );
}

#[test]
fn a_unicode_file_name_runs() {
    let r = accepts("résumé 日本語.md", b"@fake success\nhi\n");
    assert_eq!(r["source_file"], "résumé 日本語.md");
}

#[cfg(unix)]
#[test]
fn a_file_name_with_a_newline_runs_and_every_line_stays_whole() {
    let home = TestHome::new();
    home.drop_task("two\nlines.md", "@fake success\nhi\n");
    assert!(home.run_once().status.success());
    assert_eq!(home.result_of("two\nlines.md")["status"], "succeeded");
    let log = std::fs::read_to_string(home.path.join("logs/events.ndjson")).unwrap();
    assert!(
        log.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
    );
}

#[test]
fn a_file_name_with_dotdot_stays_inside_results() {
    let r = accepts("a..b.md", b"@fake success\nhi\n");
    let id = r["id"].as_str().unwrap();
    assert!(!id.contains('/') && !id.contains(".."), "{id}");
}

#[cfg(unix)]
mod odd_entries {
    use super::*;

    fn odd(make: impl FnOnce(&TestHome), name: &str, reason: &str) {
        let home = TestHome::new();
        make(&home);
        home.drop_task("good.md", "@fake success\nhi\n");
        let out = home.run_once_within(Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert_eq!(home.rejected(name)["reason"], reason);
        assert_eq!(home.result_of("good.md")["status"], "succeeded");
    }

    #[test]
    fn a_directory_dropped_in_the_inbox() {
        odd(
            |h| std::fs::create_dir(h.inbox().join("folder")).unwrap(),
            "folder",
            "directory",
        );
    }

    #[test]
    fn a_symlink_dropped_in_the_inbox_is_not_followed() {
        odd(
            |h| std::os::unix::fs::symlink("/etc/passwd", h.inbox().join("link.txt")).unwrap(),
            "link.txt",
            "symlink",
        );
    }

    #[test]
    fn a_fifo_dropped_in_the_inbox_is_not_opened() {
        odd(
            |h| {
                let p = h.inbox().join("pipe.txt");
                assert!(std::process::Command::new("mkfifo").arg(&p).status().unwrap().success());
            },
            "pipe.txt",
            "not_a_file",
        );
    }
}

#[cfg(unix)]
#[test]
fn a_file_deleted_before_it_settled_is_forgotten_quietly() {
    // A debounce no loaded machine outruns: the file is gone long before it settles.
    let home = TestHome::with_config(&config_with("debounce_ms: 1000", ""));
    let mut daemon = home.spawn_daemon();
    home.wait_started(1);
    home.drop_task("gone.md", "@fake success\nhi\n");
    std::fs::remove_file(home.inbox().join("gone.md")).unwrap();
    home.drop_task("good.md", "@fake success\nhi\n");
    wait_until(Duration::from_secs(20), "the good task", || {
        !home.events_of("task_succeeded").is_empty()
    });
    sigterm(daemon.id());
    assert!(
        daemon.wait().unwrap().success(),
        "the daemon was alive and stopped cleanly"
    );
    // Stopped: nothing more can happen.
    assert_eq!(home.results().len(), 1, "only the good task ran");
    assert!(
        home.events_of("task_rejected").is_empty(),
        "a vanished file is no error"
    );
}

#[cfg(unix)]
#[test]
fn a_file_replaced_while_settling_runs_once_with_its_last_content() {
    // Both writes land within one debounce, however loaded the machine.
    let home = TestHome::with_config(&config_with("debounce_ms: 1000", ""));
    let mut daemon = home.spawn_daemon();
    home.wait_started(1);
    home.drop_task("job.md", "@fake success answer=first\nhi\n");
    home.drop_task("job.md", "@fake success answer=second\nhi\n");
    wait_until(Duration::from_secs(20), "the task", || {
        !home.events_of("task_succeeded").is_empty()
    });
    sigterm(daemon.id());
    let _ = daemon.wait();
    let results = home.results();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["output"], "second");
}

/// A sparse 1 GiB task file: refused from its size alone, and the daemon's peak
/// memory stays small (it never reads the file).
#[cfg(target_os = "linux")]
#[test]
fn a_1_gib_file_is_refused_without_being_read() {
    let home = TestHome::new();
    let tmp = home.inbox().join(".huge.txt.tmp");
    let f = std::fs::File::create(&tmp).unwrap();
    f.set_len(1 << 30).unwrap();
    drop(f);
    std::fs::rename(&tmp, home.inbox().join("huge.txt")).unwrap();
    home.drop_task("good.md", "@fake success\nhi\n");
    let (code, max_rss_kib) = run_once_peak_rss(&home);
    assert_eq!(code, 1);
    assert_eq!(home.rejected("huge.txt")["reason"], "too_large");
    assert_eq!(home.result_of("good.md")["status"], "succeeded");
    eprintln!("daemon peak RSS with a 1 GiB task file: {max_rss_kib} KiB");
    assert!(max_rss_kib < 64 * 1024, "peak RSS {max_rss_kib} KiB");
}

#[test]
fn a_world_writable_inbox_is_refused_with_the_fix() {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let home = TestHome::new();
        std::fs::set_permissions(home.inbox(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let out = home.run_once();
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains("chmod o-w"), "{}", stderr(&out));
    }
}

/// Homes whose results/ cannot be written: read-only, or full. They need a
/// filesystem the test controls: a tmpfs mounted over results/ (as root, as in
/// CI), or for read-only, permissions (as any other user).
#[cfg(target_os = "linux")]
mod unwritable {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    struct Mount(PathBuf);

    impl Drop for Mount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    /// A tmpfs on `dir`, mode 0755 (its default, 1777, is writable by every user,
    /// which the daemon refuses for its own folders).
    fn mount_tmpfs(dir: &Path, opts: &str) -> Option<Mount> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("{opts},mode=0755"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Mount(dir.to_path_buf()))
    }

    #[test]
    fn a_read_only_results_folder_keeps_the_file_in_the_inbox_and_says_why() {
        let home = TestHome::new();
        let results = home.path.join("results");
        let mount = if is_root() {
            let Some(m) = mount_tmpfs(&results, "size=1m,ro") else {
                skip("a tmpfs test", "cannot mount a tmpfs here");
                return;
            };
            Some(m)
        } else {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&results, std::fs::Permissions::from_mode(0o555)).unwrap();
            None
        };
        home.drop_task("job.md", "@fake success\nhi\n");
        let out = home.run_once();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("1 not claimed"), "{}", stderr(&out));
        let failed = home.events_of("claim_failed");
        assert_eq!(failed[0]["file"], "job.md");
        assert!(failed[0]["hint"].as_str().unwrap().contains("results"), "{}", failed[0]);
        assert_eq!(
            std::fs::read_to_string(home.inbox().join("job.md")).unwrap(),
            "@fake success\nhi\n",
            "the file stays in the inbox, whole"
        );
        // Writable again: the same file runs.
        drop(mount);
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&results, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        assert!(home.run_once().status.success());
        assert_eq!(home.result_of("job.md")["status"], "succeeded");
    }

    #[test]
    fn a_full_disk_while_writing_the_result_loses_nothing_and_says_why() {
        if !is_root() {
            skip("a full-disk test", "filling a disk needs a tmpfs mount (root)");
            return;
        }
        // inbox/ and results/ on a small disk of their own (a claim is a rename:
        // they must share it), logs/ elsewhere so the reason can be read.
        let disk = tempfile::tempdir().unwrap();
        let Some(_mount) = mount_tmpfs(disk.path(), "size=256k") else {
            skip("a tmpfs test", "cannot mount a tmpfs here");
            return;
        };
        let home = TestHome::new();
        let results = home.path.join("results");
        for d in ["inbox", "results"] {
            std::fs::remove_dir(home.path.join(d)).unwrap();
            std::fs::create_dir(disk.path().join(d)).unwrap();
            std::os::unix::fs::symlink(disk.path().join(d), home.path.join(d)).unwrap();
        }
        let flag = home.path.join("space-freed");
        home.drop_task(
            "fill.yaml",
            format!(
                "agent: command\ncommand: test -e {} || head -c 1000000 /dev/zero; echo done\n",
                flag.display()
            ),
        );
        let out = home.run_once();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let why = home.events_of("task_interrupted");
        assert_eq!(why[0]["reason"], "result_not_written", "{why:?}");
        assert!(why[0]["error"].as_str().unwrap().contains("No space"), "{}", why[0]);
        assert!(home.results().is_empty(), "no partial result.json");
        // The operator frees space; the next start runs the task again and finishes it once.
        let dir = std::fs::read_dir(&results)
            .unwrap()
            .flatten()
            .find(|e| e.path().is_dir())
            .unwrap()
            .path();
        std::fs::remove_file(dir.join("attempt-1.out")).unwrap();
        std::fs::write(&flag, "").unwrap();
        let out = home.run_once();
        assert!(out.status.success(), "{}", stderr(&out));
        let results = home.results();
        assert_eq!(results.len(), 1);
        assert_eq!(results[0]["status"], "succeeded");
        assert_eq!(results[0]["output"], "done");
    }

    /// A full disk under results/ and logs/: failed claims leave no task
    /// folders behind, and the event log keeps only whole lines.
    #[test]
    fn a_full_disk_leaves_no_empty_task_folders_and_no_torn_event_lines() {
        if !is_root() {
            skip("a full-disk test", "filling a disk needs a tmpfs mount (root)");
            return;
        }
        let disk = tempfile::tempdir().unwrap();
        let Some(_mount) = mount_tmpfs(disk.path(), "size=64k") else {
            skip("a tmpfs test", "cannot mount a tmpfs here");
            return;
        };
        let home = TestHome::new();
        for d in ["inbox", "results", "logs"] {
            std::fs::remove_dir(home.path.join(d)).unwrap();
            std::fs::create_dir(disk.path().join(d)).unwrap();
            std::os::unix::fs::symlink(disk.path().join(d), home.path.join(d)).unwrap();
        }
        for i in 0..3 {
            home.drop_task(&format!("t{i}.yaml"), "agent: command\ncommand: \"true\"\n");
        }
        // Fill what is left of the disk.
        let filler = disk.path().join("filler");
        let _ = std::fs::write(&filler, vec![0u8; 1 << 20]);
        let out = home.run_once();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let left: Vec<_> = std::fs::read_dir(home.path.join("results"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir() && !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "failed claims left folders: {left:?}");
        std::fs::remove_file(&filler).unwrap();
        let text = std::fs::read_to_string(home.path.join("logs/events.ndjson")).unwrap_or_default();
        for line in text.lines().filter(|l| !l.is_empty()) {
            serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("torn line {line:?}: {e}"));
        }
    }
}

/// A workdir swapped for a symlink to a folder outside the allowed roots while
/// the task waits out a retry backoff: the next attempt does not run there.
#[cfg(unix)]
#[test]
fn a_workdir_swapped_for_a_symlink_during_a_backoff_stops_the_task() {
    let home = TestHome::with_config(
        &config_with("", "")
            .replace("backoff_initial: 50ms", "backoff_initial: 3s")
            .replace("backoff_max: 200ms", "backoff_max: 3s"),
    );
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path.join("proj")).unwrap();
    home.drop_task(
        "t.md",
        "---\nworkdir: proj\nretries: 1\n---\n@fake overloaded fail_times=1\nwork\n",
    );
    let mut daemon = home.spawn_daemon();
    wait_until(Duration::from_secs(30), "the retry backoff", || {
        !home.events_of("retry_scheduled").is_empty()
    });
    std::fs::rename(home.path.join("proj"), home.path.join("proj-old")).unwrap();
    std::os::unix::fs::symlink(outside.path(), home.path.join("proj")).unwrap();
    wait_until(Duration::from_secs(30), "the task to end", || {
        !home.results().is_empty()
    });
    sigterm(daemon.id());
    let _ = daemon.wait();
    let r = home.result_of("t.md");
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["kind"], "security_violation", "{r}");
    assert_eq!(
        r["attempts"].as_array().unwrap().len(),
        1,
        "the second attempt never ran: {r}"
    );
    let v = home.events_of("security_violation");
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["reason"], "workdir_moved");
}

/// An agent works in the home by default, so it can reach its own task folder:
/// a result.json it forges is set aside and the real one written; a task folder
/// it removes is made again. Both are security violations.
#[cfg(unix)]
#[test]
fn an_agent_cannot_forge_or_remove_its_own_record() {
    let home = TestHome::new();
    home.drop_task(
        "forge.yaml",
        "agent: command\ncommand: 'echo {\\\"status\\\":\\\"succeeded\\\"} > results/$ORCHESTRATOR_TASK_ID/result.json; exit 3'\n",
    );
    home.drop_task(
        "vanish.yaml",
        "agent: command\ncommand: 'rm -rf results/$ORCHESTRATOR_TASK_ID; echo gone'\n",
    );
    home.run_once();
    let forged = home.result_of("forge.yaml");
    assert_eq!(forged["status"], "failed", "the daemon's own record: {forged}");
    assert_eq!(forged["error"]["kind"], "command_failed", "{forged}");
    let dir = home.task_dir(forged["id"].as_str().unwrap());
    assert!(
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("result.json.forged-")),
        "the forgery is kept aside"
    );
    let vanished = home.result_of("vanish.yaml");
    assert_eq!(vanished["status"], "succeeded", "{vanished}");
    let reasons: Vec<String> = home
        .events_of("security_violation")
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        reasons.contains(&"result_forged".to_string()) && reasons.contains(&"task_folder_removed".to_string()),
        "{reasons:?}"
    );
    // Both tasks are in the listing, finished.
    let list = home.cli_json(&["list"]);
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
}

/// Every inbox file ends in one visible state: a name that is not UTF-8 and a
/// 254-byte name (twice) are rejected with their error.json; when rejected/
/// cannot take a file it stays with one claim_failed event, and `--once` exits 1.
#[cfg(target_os = "linux")]
#[test]
fn files_with_unusable_names_or_nowhere_to_go_are_never_silently_stuck() {
    use std::os::unix::ffi::OsStrExt;
    let home = TestHome::new();
    let latin1 = std::ffi::OsStr::from_bytes(b"caf\xe9.md");
    std::fs::write(home.inbox().join(latin1), "hello\n").unwrap();
    let long = format!("{}.md", "n".repeat(251));
    std::fs::write(home.inbox().join(&long), "---\nbogus_field: 1\n---\nhi\n").unwrap();
    let out = home.run_once();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a rejection is not a success: {}",
        stderr(&out)
    );
    let rejected: Vec<String> = std::fs::read_dir(home.inbox().join("rejected"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        rejected.iter().any(|n| n.starts_with("caf") && n.ends_with(".md")),
        "{rejected:?}"
    );
    assert_eq!(
        rejected.iter().filter(|n| n.ends_with(".error.json")).count(),
        2,
        "{rejected:?}"
    );
    let reasons: Vec<String> = home
        .events_of("task_rejected")
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .collect();
    assert!(
        reasons.contains(&"name_not_utf8".to_string()) && reasons.contains(&"unknown_field".to_string()),
        "{reasons:?}"
    );
    // A second file of the same long name gets a name of its own.
    std::fs::write(home.inbox().join(&long), "---\nbogus_field: 2\n---\nhi\n").unwrap();
    home.run_once();
    let count = std::fs::read_dir(home.inbox().join("rejected")).unwrap().count();
    assert_eq!(count, 6, "three files, three error.json");

    // rejected/ that cannot take files (here a plain file where the folder was).
    let blocked = TestHome::new();
    let mut daemon = blocked.spawn_daemon();
    blocked.drop_task("probe.yaml", "agent: command\ncommand: \"true\"\n");
    wait_until(Duration::from_secs(30), "the daemon to run", || {
        !blocked.results().is_empty()
    });
    std::fs::remove_dir_all(blocked.inbox().join("rejected")).unwrap();
    std::fs::write(blocked.inbox().join("rejected"), "not a folder").unwrap();
    blocked.drop_task("bad.md", "---\nbogus_field: 1\n---\nhi\n");
    wait_until(Duration::from_secs(30), "claim_failed", || {
        !blocked.events_of("claim_failed").is_empty()
    });
    // Rescans (1 s apart in the test config) judge it again; it is said once.
    // The condition is time itself: two rescans have passed.
    let two_rescans = std::time::Instant::now() + Duration::from_millis(2500);
    wait_until(Duration::from_secs(30), "two more rescans", || {
        std::time::Instant::now() > two_rescans
    });
    sigterm(daemon.id());
    let _ = daemon.wait();
    assert!(blocked.inbox().join("bad.md").exists(), "the file stays where it was");
    let failed = blocked.events_of("claim_failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0]["hint"].as_str().unwrap().contains("inbox/rejected"));
}

/// A hard link in the inbox shares its content with a file elsewhere (maybe one
/// its maker cannot read); a daemon running as root takes tasks only from the
/// home's owner.
#[cfg(unix)]
#[test]
fn hard_links_and_foreign_files_are_not_tasks() {
    let home = TestHome::new();
    let elsewhere = home.path.join("private.md");
    std::fs::write(&elsewhere, "secret notes\n").unwrap();
    std::fs::hard_link(&elsewhere, home.inbox().join("linked.md")).unwrap();
    let running_as_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if running_as_root {
        std::fs::write(home.inbox().join(".foreign.md.tmp"), "hello\n").unwrap();
        std::os::unix::fs::chown(home.inbox().join(".foreign.md.tmp"), Some(12345), None).unwrap();
        std::fs::rename(home.inbox().join(".foreign.md.tmp"), home.inbox().join("foreign.md")).unwrap();
    }
    home.run_once();
    assert_eq!(home.rejected("linked.md")["reason"], "hard_link");
    assert_eq!(
        std::fs::read_to_string(&elsewhere).unwrap(),
        "secret notes\n",
        "the other name is untouched"
    );
    if running_as_root {
        assert_eq!(home.rejected("foreign.md")["reason"], "foreign_owner");
    } else {
        skip("the foreign-owner half", "not running as root");
    }
    assert!(home.results().is_empty(), "neither ran");
}

/// A home under a folder everyone can write (without the sticky bit) can be
/// renamed away and replaced by anyone: refused, and `doctor` says so. An inbox
/// replaced while the daemon runs stops it.
#[cfg(unix)]
#[test]
fn a_home_others_can_replace_is_refused_and_a_replaced_inbox_stops_the_daemon() {
    use std::os::unix::fs::PermissionsExt;
    let outer = tempfile::tempdir().unwrap();
    let open = outer.path().join("shared");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = open.join("home");
    std::fs::create_dir_all(path.join("inbox")).unwrap();
    std::fs::write(path.join("orchestrator.yaml"), base_config()).unwrap();
    let run = std::process::Command::new(BIN)
        .args(["--home", path.to_str().unwrap(), "run", "--once"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("writable by every user") && stderr(&run).contains("chmod o-w"),
        "{}",
        stderr(&run)
    );
    let doctor = std::process::Command::new(BIN)
        .args(["--home", path.to_str().unwrap(), "doctor"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(doctor.status.code(), Some(1));
    assert!(
        stdout(&doctor).contains(&open.display().to_string()),
        "{}",
        stdout(&doctor)
    );

    // A safe home whose inbox is swapped while the daemon runs.
    let home = TestHome::new();
    let mut daemon = home.spawn_daemon();
    home.drop_task("probe.yaml", "agent: command\ncommand: \"true\"\n");
    wait_until(Duration::from_secs(30), "the daemon to run", || {
        !home.results().is_empty()
    });
    std::fs::rename(home.inbox(), home.path.join("inbox-old")).unwrap();
    std::fs::create_dir(home.inbox()).unwrap();
    home.drop_task("planted.yaml", "agent: command\ncommand: \"true\"\n");
    wait_until(
        Duration::from_secs(30),
        "the daemon to stop on a replaced inbox",
        || daemon.try_wait().unwrap().is_some(),
    );
    let v = home.events_of("security_violation");
    assert_eq!(v.last().unwrap()["reason"], "inbox_replaced", "{v:?}");
    assert!(home.inbox().join("planted.yaml").exists(), "nothing was taken from it");
}

/// The claimed file is checked as it was in the inbox before it is read: a
/// queued file that got a second name while it waited (a hard link to it from
/// elsewhere, which changes neither its size nor its time) is no task.
#[cfg(unix)]
#[test]
fn a_queued_file_that_became_a_hard_link_is_not_run() {
    let home = TestHome::with_config(&config_with("max_concurrent: 1", ""));
    let mut daemon = home.spawn_daemon();
    home.drop_task("busy.yaml", "agent: command\ncommand: sleep 60\n");
    wait_until(Duration::from_secs(20), "the busy task to start", || {
        !home.events_of("task_started").is_empty()
    });
    home.drop_task("linked.yaml", "agent: command\ncommand: echo ran\n");
    wait_until(Duration::from_secs(20), "the file to be queued", || {
        home.events_of("task_queued").iter().any(|e| e["file"] == "linked.yaml")
    });
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::hard_link(home.inbox().join("linked.yaml"), elsewhere.path().join("other-name")).unwrap();
    assert!(home.cli(&["cancel", "busy.yaml"]).status.success());
    wait_until(Duration::from_secs(30), "both to end", || home.results().len() == 2);
    sigterm(daemon.id());
    let _ = daemon.wait();
    let r = home.result_of("linked.yaml");
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["kind"], "invalid_task");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("hard link"),
        "{}",
        r["error"]
    );
    assert!(r["output"].is_null() || r["output"] != "ran", "never run");
}
