use super::*;
use crate::config::AgentKind;
use std::time::Duration;

fn rules(home: &Path) -> Rules {
    Rules {
        limits: Limits {
            max_bytes: 1 << 20,
            max_prompt_chars: 1000,
            default_agent: AgentKind::Claude,
            roles: Default::default(),
        },
        home: home.to_path_buf(),
        default_workdir: home.to_path_buf(),
        allowed_roots: vec![home.to_path_buf()],
        owner_only: None,
        writer_of: WriterOf::none(),
        fallbacks_of: FallbacksOf::listed(),
    }
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    (dir, inbox)
}

fn set_mtime(path: &Path, ago: Duration) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - ago).unwrap();
}

#[test]
fn a_changed_file_waits_for_a_quiet_debounce() {
    let (dir, inbox) = setup();
    let debounce = Duration::from_millis(100);
    let mut intake = Intake::new(inbox.clone(), debounce, true);
    let mut queue = Queue::default();
    let t0 = Instant::now();
    std::fs::write(inbox.join("a.md"), "half").unwrap();
    intake.note("a.md", t0, &mut queue);
    assert!(intake.settle(t0 + debounce / 2, &rules(dir.path())).is_empty());
    std::fs::write(inbox.join("a.md"), "half and the rest").unwrap();
    // Due by the clock, but the size changed since it was noted: it starts over.
    assert!(intake.settle(t0 + debounce, &rules(dir.path())).is_empty());
    assert_eq!(intake.settling(), 1);
    let v = intake.settle(t0 + debounce * 3, &rules(dir.path()));
    assert!(
        matches!(&v[..], [Verdict::Accept(a)] if a.spec.title == "half and the rest"),
        "{v:?}"
    );
}

#[test]
fn files_found_by_rescan_get_credit_for_their_age_unless_polling() {
    let (dir, inbox) = setup();
    let debounce = Duration::from_secs(5);
    std::fs::write(inbox.join("old.txt"), "old").unwrap();
    set_mtime(&inbox.join("old.txt"), Duration::from_secs(60));
    std::fs::write(inbox.join("new.txt"), "new").unwrap();
    let now = Instant::now();

    let mut trusting = Intake::new(inbox.clone(), debounce, true);
    trusting.rescan(now, &mut Queue::default()).unwrap();
    let ready = trusting.settle(now, &rules(dir.path()));
    assert_eq!(ready.len(), 1, "only the old file is ready at once");
    assert!(matches!(&ready[0], Verdict::Accept(a) if &*a.queued.name == "old.txt"));

    let mut polling = Intake::new(inbox, debounce, false);
    polling.rescan(now, &mut Queue::default()).unwrap();
    assert!(
        polling.settle(now, &rules(dir.path())).is_empty(),
        "a share's mtime is not trusted"
    );
    assert_eq!(polling.settle(now + debounce, &rules(dir.path())).len(), 2);
}
