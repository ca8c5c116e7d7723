use super::*;

#[test]
fn a_review_that_changes_nothing() {
    let i = read("review src/auth for sql injection, don't change anything");
    assert_eq!(i.read_only, Some("review"));
    assert_eq!(
        i.title.as_deref(),
        Some("review src/auth for sql injection, don't change anything")
    );
    assert!(
        i.decisions
            .iter()
            .any(|d| d.field == "read_only" && d.because == "\"don't change\"")
    );
}

#[test]
fn a_place_steps_and_criteria() {
    let note = "in services/billing: add retries to the webhook sender\n\n1. add a backoff helper\n2. use it in send()\n3. write a test\n\nMake sure cargo test passes.\n";
    let i = read(note);
    assert_eq!(i.workdir.as_deref(), Some("services/billing"));
    assert_eq!(i.title.as_deref(), Some("add retries to the webhook sender"));
    assert_eq!(i.steps.len(), 3);
    assert_eq!(i.success_criteria, ["Make sure cargo test passes"]);
    assert_eq!(i.read_only, None);
}

#[test]
fn questions_read_and_fixes_write() {
    assert_eq!(
        read("Why does the login test fail on Windows?").read_only,
        Some("analyze")
    );
    assert_eq!(
        read("explain how the cache invalidation works").read_only,
        Some("analyze")
    );
    assert_eq!(read("review the parser and fix what you find").read_only, None);
    assert_eq!(read("fix the flaky login test").read_only, None);
    assert_eq!(read("Can you fix the login bug?").read_only, None);
}

#[test]
fn a_heading_is_the_title_and_long_sentences_are_cut_at_a_word() {
    assert_eq!(
        read("# Bump serde\nand check the build").title.as_deref(),
        Some("Bump serde")
    );
    let long = "Refactor the configuration loader so that every layer is merged before one strict deserialisation happens at the end";
    let t = read(long).title.unwrap();
    assert!(t.chars().count() <= 80 && t.ends_with('…') && !t.ends_with(" …"), "{t}");
}

#[test]
fn files_urls_and_climbing_out_are_not_places() {
    assert_eq!(read("look at the bug in src/auth/login.rs").workdir, None);
    assert_eq!(read("in ../other: do things").workdir, None);
    assert_eq!(read("fetch it in https://example.com/x").workdir, None);
    assert_eq!(
        read("write docs under docs/guide").workdir.as_deref(),
        Some("docs/guide")
    );
}

#[test]
fn a_list_of_files_is_not_steps() {
    let i = read("clean these up:\n- src/a.rs\n- src/b.rs\n- src/c.rs\n");
    assert!(i.steps.is_empty());
}

#[test]
fn odd_notes_read_without_trouble() {
    for note in [
        "",
        "   \n\t ",
        "- a\n- b",
        "src/auth",
        "日本語のメモです。コードを見てください",
        &"x".repeat(10 << 20),
    ] {
        let _ = read(note);
    }
}
