use super::*;

fn limits() -> Limits {
    Limits {
        max_bytes: 1024 * 1024,
        max_prompt_chars: 32_000,
        default_agent: AgentKind::Claude,
        roles: Default::default(),
    }
}

fn ok(name: &str, text: &str) -> TaskSpec {
    parse(name, text.as_bytes(), &limits()).unwrap_or_else(|r| panic!("{name}: {r:?}"))
}
fn rejected(name: &str, text: &[u8]) -> Rejection {
    parse(name, text, &limits()).expect_err("should be rejected")
}

#[test]
fn markdown_with_front_matter() {
    let t = ok(
        "a.md",
        "---\ntitle: Add rate limiting\nagent: claude\nworkdir: ~/code/api\nallowed_tools: [Read, Edit, \"Bash(cargo test:*)\"]\nmax_turns: 20\ntimeout: 30m\nretries: 2\npriority: high\nbudget_usd: 2.0\nmode: apply\n---\nAdd rate limiting to /login.\n",
    );
    assert_eq!(t.title, "Add rate limiting");
    assert_eq!(t.prompt, "Add rate limiting to /login.");
    assert_eq!(t.workdir.as_deref(), Some("~/code/api"));
    assert_eq!(t.allowed_tools.as_ref().unwrap()[2], "Bash(cargo test:*)");
    assert_eq!((t.max_turns, t.retries, t.priority), (Some(20), Some(2), 100));
    assert_eq!(t.timeout, Some(std::time::Duration::from_secs(1800)));
    assert_eq!(t.budget_usd, Some(2.0));
}

#[test]
fn markdown_without_front_matter_and_default_title() {
    let t = ok("b.markdown", "# Fix the flaky test\n\nIt fails on Tuesdays.\n");
    assert_eq!(t.title, "Fix the flaky test");
    assert_eq!(t.agent, AgentKind::Claude);
    assert_eq!(t.priority, 0);
}

#[test]
fn text_yaml_and_json_forms() {
    assert_eq!(ok("c.txt", "just do it\n").prompt, "just do it");
    let y = ok(
        "d.yaml",
        "prompt: hello\npriority: 7\nagent: command\ncommand: echo hi\n",
    );
    assert_eq!((y.priority, y.command.as_deref()), (7, Some("echo hi")));
    let j = ok("e.json", r#"{"prompt":"hi","priority":"low","timeout":90}"#);
    assert_eq!(
        (j.priority, j.timeout),
        (-100, Some(std::time::Duration::from_secs(90)))
    );
    let cmd = ok("f.yml", "agent: command\ncommand: make test\n");
    assert_eq!(cmd.title, "make test");
}

#[test]
fn bom_and_crlf_are_accepted() {
    let t = ok("g.md", "\u{feff}---\r\ntitle: T\r\n---\r\nline one\r\nline two\r\n");
    assert_eq!(t.title, "T");
    assert_eq!(t.prompt, "line one\nline two");
}

#[test]
fn rejections_say_why_and_how() {
    let cases: Vec<(&str, &[u8], &str)> = vec![
        ("a.md", b"---\ntitel: x\n---\nhi", "unknown_field"),
        ("a.md", b"---\nmax_turns: -1\n---\nhi", "invalid_value"),
        ("a.md", b"---\nmax_turns: lots\n---\nhi", "invalid_fields"),
        ("a.md", b"---\ntimeout: soon\n---\nhi", "invalid_fields"),
        ("a.md", b"---\nagent: gpt\n---\nhi", "invalid_value"),
        ("a.md", b"---\ntitle: x\n", "front_matter_unclosed"),
        ("a.md", b"---\n: : [\n---\nhi", "invalid_fields"),
        ("a.md", b"---\ntitle: x\n---\n   \n", "empty_prompt"),
        ("a.txt", b"", "empty_prompt"),
        ("a.txt", b"\xff\xfe bad", "not_utf8"),
        ("a.txt", b"a\0b", "nul_byte"),
        ("a.pdf", b"hi", "unsupported_extension"),
        ("a.json", b"{\"prompt\": \"x\", \"extra\": 1}", "unknown_field"),
        ("a.json", b"{\"prompt\": ", "invalid_fields"),
        ("a.yaml", b"prompt: x\npriority: urgent\n", "invalid_value"),
        ("a.yaml", b"prompt: x\nbudget_usd: -2\n", "invalid_value"),
        ("a.yaml", b"prompt: x\nretries: 1000\n", "invalid_value"),
        ("a.yaml", b"prompt: x\ncommand: ls\n", "invalid_value"),
        ("a.yaml", b"prompt: x\nsteps: [a, '']\n", "invalid_value"),
        ("a.yaml", b"prompt: x\nsteps: [a]\nstart_step: 3\n", "invalid_value"),
        (
            "a.yaml",
            b"agent: command\nsteps: [ls]\nsession: abc\n",
            "invalid_value",
        ),
        ("a.yaml", b"prompt: x\nsession: 'a b'\n", "invalid_value"),
        (
            "a.yaml",
            b"prompt: x\nmode: guarded\nisolation: none\n",
            "invalid_value",
        ),
        ("a.yaml", b"prompt: x\nisolation: sandbox\n", "invalid_value"),
        ("a.yaml", b"prompt: x\nparent_task_id: nope\n", "invalid_value"),
    ];
    for (name, text, reason) in cases {
        let r = rejected(name, text);
        assert_eq!(r.reason, reason, "{name} {:?}: {r:?}", String::from_utf8_lossy(text));
        assert!(!r.hint.is_empty());
    }
}

#[test]
fn a_misspelt_field_gets_the_field_it_meant() {
    let r = rejected("a.yaml", b"agent: command\ncomand: echo hi\n");
    assert!(r.hint.starts_with("did you mean `command`?"), "{r:?}");
    let r = rejected("a.md", b"---\nmax_turn: 3\n---\nhi");
    assert!(r.hint.starts_with("did you mean `max_turns`?"), "{r:?}");
    let r = rejected("a.md", b"---\ncolour: red\n---\nhi");
    assert!(r.hint.starts_with("remove or correct the field"), "{r:?}");
}

#[test]
fn oversized_files_and_prompts() {
    let small = Limits {
        max_bytes: 10,
        ..limits()
    };
    assert_eq!(
        parse("a.txt", b"0123456789abc", &small).unwrap_err().reason,
        "too_large"
    );
    let short = Limits {
        max_prompt_chars: 5,
        ..limits()
    };
    let t = parse("a.txt", "héllo wörld".as_bytes(), &short).unwrap();
    assert_eq!(t.prompt, "héllo");
    assert!(t.prompt_truncated);
}

#[test]
fn ignored_names() {
    for n in [
        ".hidden.md",
        "~lock.md",
        "a.md.tmp",
        "a.part",
        "a.partial",
        "a.md.swp",
        "a.crdownload",
        "a.md~",
        "x.error.json",
    ] {
        assert!(is_ignored_name(n), "{n}");
    }
    assert!(!is_ignored_name("task.md"));
}

#[test]
fn cline_steps_are_refused_with_the_reason() {
    let r = rejected("c.md", b"---\nagent: cline\nsteps: [look, fix]\n---\nthe bug\n");
    assert_eq!(r.reason, "unsupported_field");
    assert!(
        r.error.contains("continues a session only in its interactive chat"),
        "{r:?}"
    );
    ok("one.md", "---\nagent: cline\nsteps: [look]\n---\nthe bug\n");
}

#[test]
fn a_session_that_could_be_read_as_a_flag_is_refused() {
    let r = rejected(
        "s.md",
        b"---\nsession: \"--dangerously-skip-permissions\"\n---\ngo on\n",
    );
    assert_eq!(r.reason, "invalid_value", "{r:?}");
    ok(
        "u.md",
        "---\nsession: 438cf665-4e80-47c7-8eb6-22db27c519dd\n---\ngo on\n",
    );
}

#[test]
fn a_nul_written_as_an_escape_is_refused() {
    for text in [
        &b"{\"agent\": \"command\", \"command\": \"echo a\\u0000b\"}"[..],
        &b"{\"prompt\": \"hi\\u0000there\"}"[..],
    ] {
        assert_eq!(rejected("n.json", text).reason, "nul_byte");
    }
}

#[test]
fn an_agent_list_is_the_order_to_fall_through() {
    let t = ok("a.md", "---\nagent: [claude, codex, cline]\n---\nhi\n");
    assert_eq!(
        (t.agent, t.fallback),
        (AgentKind::Claude, vec![AgentKind::Codex, AgentKind::Cline])
    );
    let t = ok("b.json", r#"{"agent": ["codex"], "prompt": "hi"}"#);
    assert_eq!((t.agent, t.fallback), (AgentKind::Codex, vec![]));
    let t = ok("c.md", "---\nagent: codex\n---\nhi\n");
    assert!(t.fallback.is_empty());
    for (text, kind, words) in [
        ("---\nagent: []\n---\nhi\n", "invalid_value", "empty"),
        (
            "---\nagent: [claude, gpt]\n---\nhi\n",
            "invalid_value",
            "`gpt` is not an agent",
        ),
        (
            "---\nagent: [codex, claude, codex]\n---\nhi\n",
            "duplicate_agent",
            "named twice",
        ),
        ("---\nagent: [claude, command]\n---\nhi\n", "invalid_value", "command"),
    ] {
        let r = rejected("x.md", text.as_bytes());
        assert_eq!(r.reason, kind, "{text}: {r:?}");
        assert!(r.error.contains(words), "{text}: {r:?}");
        assert!(r.hint.contains("[claude, codex]") || kind == "invalid_value", "{r:?}");
    }
}

#[test]
fn budget_tokens_is_a_positive_count() {
    assert_eq!(
        ok("a.md", "---\nbudget_tokens: 2000000\n---\nhi\n").budget_tokens,
        Some(2_000_000)
    );
    for bad in ["0", "-5", "1.5", "lots"] {
        let r = rejected("a.md", format!("---\nbudget_tokens: {bad}\n---\nhi\n").as_bytes());
        assert!(
            r.reason == "invalid_value" || r.reason == "invalid_fields",
            "{bad}: {r:?}"
        );
    }
}

#[test]
fn stall_timeout_is_a_duration_in_range() {
    let t = ok("a.md", "---\nstall_timeout: 10m\n---\nhi\n");
    assert_eq!(t.stall_timeout, Some(std::time::Duration::from_secs(600)));
    for bad in ["0s", "8d"] {
        let r = rejected("a.md", format!("---\nstall_timeout: {bad}\n---\nhi\n").as_bytes());
        assert_eq!(r.reason, "invalid_value", "{bad}: {r:?}");
        assert!(r.error.contains("stall_timeout"), "{r:?}");
    }
}

#[test]
fn after_names_ids_or_inbox_files_and_never_the_task_itself() {
    let t = ok(
        "fix.md",
        "---\nafter: [review.md, \" review.md\", 01m8p5qnm7weqgpkcvt4a8av6n-x]\nafter_any: [review.md, notes.txt]\ncontext: false\n---\nFix what the review found.\n",
    );
    assert_eq!(t.deps.after, ["review.md", "01m8p5qnm7weqgpkcvt4a8av6n-x"]);
    assert_eq!(t.deps.after_any, ["notes.txt"], "after already waits for review.md");
    assert!(t.deps.no_context);
    assert!(!ok("a.md", "---\nafter: [b.md]\n---\nx\n").deps.no_context);
    let me = rejected("fix.md", b"---\nafter: [fix.md]\n---\nx\n");
    assert_eq!(me.reason, "dependency_cycle");
    let id = "01m8p5qnm7weqgpkcvt4a8av6n-fix";
    assert_eq!(
        rejected(
            &format!("{id}.md"),
            format!("---\nafter_any: [{id}]\n---\nx\n").as_bytes()
        )
        .reason,
        "dependency_cycle"
    );
    for bad in ["../x.md", "review", "a/b.md", "run.sh"] {
        let r = rejected("fix.md", format!("---\nafter: [\"{bad}\"]\n---\nx\n").as_bytes());
        assert_eq!(r.reason, "invalid_value", "{bad}");
        assert!(
            r.error.contains("neither a task id nor the name of a task file"),
            "{}",
            r.error
        );
    }
}

#[test]
fn a_start_time_has_its_zone_and_a_delay_is_at_most_a_year() {
    let t = ok(
        "a.md",
        "---\nnot_before: 2026-12-08T03:00:00+01:00\ndelay: 2h\n---\nx\n",
    );
    assert_eq!(t.deps.not_before.unwrap().to_string(), "2026-12-08T02:00:00Z");
    assert_eq!(t.deps.delay, Some(std::time::Duration::from_secs(7200)));
    let r = rejected("a.md", b"---\nnot_before: tomorrow at 2\n---\nx\n");
    assert!(r.error.contains("not_before") && r.hint.contains("RFC 3339"), "{r:?}");
    let r = rejected("a.md", b"---\nnot_before: 2026-12-08T02:00:00\n---\nx\n");
    assert_eq!(r.reason, "invalid_value", "a time without its zone is refused: {r:?}");
    assert_eq!(rejected("a.md", b"---\ndelay: 400d\n---\nx\n").reason, "invalid_value");
}

#[test]
fn verify_has_a_command_and_one_to_twenty_rounds() {
    let t = ok("a.md", "---\nverify: cargo test --quiet\n---\nx\n");
    assert_eq!(
        t.verify,
        Some(crate::task::Verify {
            command: "cargo test --quiet".into(),
            rounds: 3
        })
    );
    assert_eq!(
        ok("a.md", "---\nverify: make check\nverify_rounds: 1\n---\nx\n")
            .verify
            .unwrap()
            .rounds,
        1
    );
    for bad in [
        "verify: make\nverify_rounds: 0",
        "verify: make\nverify_rounds: 21",
        "verify: ' '",
        "verify_rounds: 2",
    ] {
        let r = rejected("a.md", format!("---\n{bad}\n---\nx\n").as_bytes());
        assert_eq!(r.reason, "invalid_value", "{bad}: {r:?}");
    }
}
