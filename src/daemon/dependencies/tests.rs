use super::*;

fn home() -> (tempfile::TempDir, Home) {
    let tmp = tempfile::tempdir().unwrap();
    let home = Home::new(tmp.path()).unwrap();
    std::fs::create_dir_all(home.inbox()).unwrap();
    std::fs::create_dir_all(home.results()).unwrap();
    (tmp, home)
}

fn after(refs: &[&str]) -> crate::task::Dependencies {
    crate::task::Dependencies {
        after: refs.iter().map(|r| r.to_string()).collect(),
        ..Default::default()
    }
}

impl Dependencies {
    fn admit_now(&mut self, home: &Home, name: &Arc<str>, deps: &crate::task::Dependencies) -> Admission {
        self.admit(home, name, deps, SystemTime::now())
    }
}

#[test]
fn a_start_time_holds_a_file_until_it_comes_and_after_its_tasks() {
    let (_t, home) = home();
    let mut d = Dependencies::default();
    let now = SystemTime::now();
    let later = crate::task::Dependencies {
        delay: Some(std::time::Duration::from_secs(60)),
        ..Default::default()
    };
    let a = drop_file(&home, "a.md");
    assert!(matches!(d.admit(&home, &a, &later, now), Admission::Wait));
    // Arrived long enough ago: its delay is over.
    let b = drop_file(&home, "b.md");
    assert!(matches!(
        d.admit(&home, &b, &later, now - std::time::Duration::from_secs(61)),
        Admission::Ready
    ));
    assert_eq!(d.next_start(), Some(now + std::time::Duration::from_secs(60)));
    assert!(d.due(now).is_empty());
    assert_eq!(d.due(now + std::time::Duration::from_secs(60)), [Decided::Ready(a)]);
    // Both a task and a time: whichever comes last releases it.
    let c = drop_file(&home, "c.md");
    let both = crate::task::Dependencies {
        after: vec!["b.md".into()],
        ..later
    };
    assert!(matches!(d.admit(&home, &c, &both, now), Admission::Wait));
    d.claimed("b.md", "01m8p5qnm7weqgpkcvt4a8av6n-b");
    assert!(d.ended("01m8p5qnm7weqgpkcvt4a8av6n-b", Status::Succeeded).is_empty());
    assert_eq!(d.due(now + std::time::Duration::from_secs(61)), [Decided::Ready(c)]);
    assert!(d.timers.is_empty() && d.starts.is_empty());
}

fn drop_file(home: &Home, name: &str) -> Arc<str> {
    std::fs::write(home.inbox().join(name), "x").unwrap();
    name.into()
}

#[test]
fn a_chain_wakes_one_link_at_a_time_and_a_failure_dooms_the_rest() {
    let (_t, home) = home();
    let mut d = Dependencies::default();
    let a = drop_file(&home, "a.md");
    let b = drop_file(&home, "b.md");
    let c = drop_file(&home, "c.md");
    assert!(matches!(d.admit_now(&home, &a, &after(&[])), Admission::Ready));
    assert!(matches!(d.admit_now(&home, &b, &after(&["a.md"])), Admission::Wait));
    assert!(matches!(d.admit_now(&home, &c, &after(&["b.md"])), Admission::Wait));
    assert_eq!(d.waiting_for("c.md"), ["b.md"]);
    d.claimed("a.md", "01m8p5qnm7weqgpkcvt4a8av6n-a");
    assert_eq!(d.waiting_for("b.md"), ["01m8p5qnm7weqgpkcvt4a8av6n-a"]);
    // Its result is committed at once: someone waits for it.
    assert!(d.awaited.lock().unwrap().contains("01m8p5qnm7weqgpkcvt4a8av6n-a"));
    assert_eq!(
        d.ended("01m8p5qnm7weqgpkcvt4a8av6n-a", Status::Succeeded),
        [Decided::Ready(b.clone())]
    );
    d.claimed("b.md", "01m8p5qnm7weqgpkcvt4a8av7n-b");
    let decided = d.ended("01m8p5qnm7weqgpkcvt4a8av7n-b", Status::Failed);
    let [Decided::Doomed(name, e)] = &decided[..] else {
        panic!("{decided:?}")
    };
    assert_eq!((&**name, e.kind), ("c.md", ErrorKind::DependencyFailed));
    assert!(
        e.message
            .contains("b.md (task 01m8p5qnm7weqgpkcvt4a8av7n-b), which failed"),
        "{}",
        e.message
    );
    assert_eq!(d.len(), 0);
    assert!(d.waiters.is_empty() && d.awaited.lock().unwrap().is_empty());
}

#[test]
fn after_any_starts_whatever_the_end_and_a_diamond_waits_for_both() {
    let (_t, home) = home();
    let mut d = Dependencies::default();
    for n in ["a.md", "b.md", "c.md"] {
        drop_file(&home, n);
    }
    let join = drop_file(&home, "join.md");
    let deps = crate::task::Dependencies {
        after: vec!["b.md".into()],
        after_any: vec!["c.md".into()],
        ..Default::default()
    };
    assert!(matches!(d.admit_now(&home, &join, &deps), Admission::Wait));
    d.claimed("c.md", "01m8p5qnm7weqgpkcvt4a8av6n-c");
    assert!(d.ended("01m8p5qnm7weqgpkcvt4a8av6n-c", Status::Failed).is_empty());
    d.claimed("b.md", "01m8p5qnm7weqgpkcvt4a8av7n-b");
    assert_eq!(
        d.ended("01m8p5qnm7weqgpkcvt4a8av7n-b", Status::Succeeded),
        [Decided::Ready(join)]
    );
}

#[test]
fn a_cycle_is_rejected_whole_and_an_unknown_name_at_once() {
    let (_t, home) = home();
    let mut d = Dependencies::default();
    let a = drop_file(&home, "a.md");
    let b = drop_file(&home, "b.md");
    let c = drop_file(&home, "c.md");
    assert!(matches!(d.admit_now(&home, &a, &after(&["b.md"])), Admission::Wait));
    assert!(matches!(d.admit_now(&home, &b, &after(&["c.md"])), Admission::Wait));
    let Admission::Reject(r, files) = d.admit_now(&home, &c, &after(&["a.md"])) else {
        panic!("no cycle found")
    };
    assert_eq!(r.reason, "dependency_cycle");
    assert!(r.error.contains("c.md -> a.md -> b.md -> c.md"), "{}", r.error);
    assert_eq!(files, [c.clone(), a, b]);
    assert_eq!(d.len(), 0);
    let Admission::Reject(r, files) = d.admit_now(&home, &c, &after(&["nope.md"])) else {
        panic!("unknown accepted")
    };
    assert_eq!((r.reason, files), ("unknown_dependency", vec![c]));
}

#[test]
fn a_task_that_ended_before_its_dependent_came_decides_at_once() {
    let (_t, home) = home();
    let id = "01m8p5qnm7weqgpkcvt4a8av6n-a";
    let dir = crate::store::TaskDir::new(home.task_dir(id));
    std::fs::create_dir_all(&dir.dir).unwrap();
    std::fs::write(dir.result(), r#"{"status":"cancelled"}"#).unwrap();
    let mut d = Dependencies::default();
    let b = drop_file(&home, "b.md");
    assert!(matches!(d.admit_now(&home, &b, &after(&[id])), Admission::Doomed(_)));
    let any = crate::task::Dependencies {
        after_any: vec![id.into()],
        ..Default::default()
    };
    assert!(matches!(d.admit_now(&home, &b, &any), Admission::Ready));
}

#[test]
fn a_look_finds_what_other_daemons_claimed_and_finished() {
    let (_t, home) = home();
    let mut d = Dependencies::default();
    drop_file(&home, "a.md");
    let b = drop_file(&home, "b.md");
    assert!(matches!(d.admit_now(&home, &b, &after(&["a.md"])), Admission::Wait));
    let nobody = |_: &Target| false;
    assert!(d.look(&home, nobody).is_empty(), "a.md is still in the inbox");
    // An older task of the same name (yesterday's a.md) is not the one meant.
    let old = "01m8p5qnm7weqgpkcvt4a8av6n-a";
    let old_dir = crate::store::TaskDir::new(home.task_dir(old));
    std::fs::create_dir_all(&old_dir.dir).unwrap();
    std::fs::write(old_dir.lock_file(), r#"{"source_file":"a.md"}"#).unwrap();
    std::fs::write(old_dir.dir.join("task.md"), "x").unwrap();
    std::fs::write(old_dir.result(), r#"{"status":"succeeded"}"#).unwrap();
    // Another daemon claims a.md (a losing claimer's folder, never
    // renamed into, is no task)...
    let lost = crate::store::TaskDir::new(home.task_dir(&crate::ids::new_id("a")));
    std::fs::create_dir_all(&lost.dir).unwrap();
    std::fs::write(lost.lock_file(), r#"{"source_file":"a.md"}"#).unwrap();
    let id = crate::ids::new_id("a");
    let dir = crate::store::TaskDir::new(home.task_dir(&id));
    std::fs::create_dir_all(&dir.dir).unwrap();
    std::fs::write(dir.lock_file(), r#"{"source_file":"a.md"}"#).unwrap();
    std::fs::rename(home.inbox().join("a.md"), dir.dir.join("task.md")).unwrap();
    assert!(d.look(&home, nobody).is_empty());
    assert_eq!(d.waiting_for("b.md"), [id.as_str()]);
    // ... and finishes it.
    std::fs::write(dir.result(), r#"{"status":"succeeded"}"#).unwrap();
    assert_eq!(d.look(&home, nobody), [Decided::Ready(b.clone())]);
    // A file that leaves the inbox without becoming a task dooms its
    // dependents, though an old task of its name exists.
    let e = drop_file(&home, "e.md");
    drop_file(&home, "gone.md");
    let old_gone = crate::store::TaskDir::new(home.task_dir("01m8p5qnm7weqgpkcvt4a8av6n-gone"));
    std::fs::create_dir_all(&old_gone.dir).unwrap();
    std::fs::write(old_gone.lock_file(), r#"{"source_file":"gone.md"}"#).unwrap();
    std::fs::write(old_gone.dir.join("task.md"), "x").unwrap();
    std::fs::write(old_gone.result(), r#"{"status":"succeeded"}"#).unwrap();
    assert!(matches!(d.admit_now(&home, &e, &after(&["gone.md"])), Admission::Wait));
    std::fs::remove_file(home.inbox().join("gone.md")).unwrap();
    let decided = d.look(&home, nobody);
    assert!(
        matches!(&decided[..], [Decided::Doomed(n, _)] if **n == *"e.md"),
        "{decided:?}"
    );
}
