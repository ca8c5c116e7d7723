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

/// A settling file is kept in 24 bytes (100,000 are held while a big inbox is
/// taken in), and its times survive the packing.
#[test]
fn a_settling_file_is_small_and_keeps_its_times() {
    assert_eq!((size_of::<Stamp>(), size_of::<Settling>()), (16, 24));
    let epoch = Instant::now();
    let stamp = Stamp {
        len: 7,
        mtime: NO_MTIME,
    };
    assert_eq!(stamp.mtime(), None);
    let debounce = Duration::from_millis(200);
    for (at, open) in [
        (epoch + Duration::from_nanos(1_500), false),
        (epoch + Duration::from_secs(86_400 * 400), true),
        (epoch.checked_sub(Duration::from_millis(150)).unwrap_or(epoch), false),
    ] {
        let s = Settling::new(stamp, at, open, epoch);
        assert_eq!(s.open_for_writing(), open);
        let back = s.changed_at(epoch);
        assert_eq!(back, at);
        let due = s.due_at(debounce, epoch);
        assert_eq!(due, back + if open { OPEN_WRITER_LIMIT } else { debounce });
    }
    let mut s = Settling::new(stamp, epoch, true, epoch);
    s.set(epoch + Duration::from_secs(3), false, epoch);
    assert_eq!(
        (s.open_for_writing(), s.changed_at(epoch)),
        (false, epoch + Duration::from_secs(3))
    );
    let now = SystemTime::now();
    let st = Stamp {
        len: 1,
        mtime: crate::queue::nanos(now),
    };
    assert_eq!(st.mtime(), Some(now));
}

/// A rescan forgets what left the inbox, queued or still settling, and keeps
/// the rest; a rescan that finds every known file again changes nothing.
#[test]
fn a_rescan_forgets_files_that_left_the_inbox() {
    let (_dir, inbox, mut intake, mut queue, t0) = three_queued(true);
    let debounce = Duration::from_millis(100);
    std::fs::write(inbox.join("d.md"), "d").unwrap();
    std::fs::write(inbox.join("e.md"), "e").unwrap();
    intake.rescan(t0 + debounce * 3, &mut queue).unwrap();
    assert_eq!((queue.len(), intake.settling()), (3, 2), "all still there");
    // One queued file and one settling file leave; one new file comes.
    std::fs::remove_file(inbox.join("b.md")).unwrap();
    std::fs::remove_file(inbox.join("e.md")).unwrap();
    std::fs::write(inbox.join("f.md"), "f").unwrap();
    intake.rescan(t0 + debounce * 4, &mut queue).unwrap();
    let mut names: Vec<&str> = queue.names().collect();
    names.sort();
    assert_eq!(names, ["a.md", "c.md"]);
    assert!(intake.is_settling("d.md") && intake.is_settling("f.md") && !intake.is_settling("e.md"));
    assert_eq!(intake.settling(), 2);
}

/// Polling (a share without events): a rescan notices a queued file that
/// changed (it settles again) and one that left, while the rest stay queued.
#[test]
fn a_polling_rescan_sees_changed_and_vanished_queued_files() {
    let (_dir, inbox, mut intake, mut queue, t0) = three_queued(false);
    let debounce = Duration::from_millis(100);
    std::fs::write(inbox.join("a.md"), "a, rewritten longer").unwrap();
    std::fs::remove_file(inbox.join("b.md")).unwrap();
    intake.rescan(t0 + debounce * 3, &mut queue).unwrap();
    assert_eq!(queue.names().collect::<Vec<_>>(), ["c.md"]);
    assert!(intake.is_settling("a.md") && !intake.is_settling("b.md"));
}

/// An intake (`native` events or polling) whose inbox holds `a.md`, `b.md`
/// and `c.md`, all three queued; and the time they were found.
fn three_queued(native: bool) -> (tempfile::TempDir, PathBuf, Intake, Queue, Instant) {
    let (dir, inbox) = setup();
    let debounce = Duration::from_millis(100);
    let mut intake = Intake::new(inbox.clone(), debounce, native);
    let mut queue = Queue::default();
    for name in ["a.md", "b.md", "c.md"] {
        std::fs::write(inbox.join(name), name).unwrap();
    }
    let t0 = Instant::now();
    intake.rescan(t0, &mut queue).unwrap();
    assert_eq!(intake.settling(), 3);
    for v in intake.settle(t0 + debounce * 2, &rules(dir.path())) {
        let Verdict::Accept(a) = v else { panic!("{v:?}") };
        queue.push(a.queued);
    }
    assert_eq!((queue.len(), intake.settling()), (3, 0));
    (dir, inbox, intake, queue, t0)
}
