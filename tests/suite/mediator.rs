//! The mediator against fake model servers on 127.0.0.1 (OpenAI-compatible
//! and Ollama): a good proposal is used; every way an answer can be bad,
//! slow or missing leaves the parser's plan, and the task still runs.

use crate::common::fake_http::{FakeHttp, Gate, Request};
use crate::common::*;
use serde_json::{Value, json};
use std::time::Duration;

/// The note a request carries (the user message).
fn note(r: &Request) -> String {
    r.json()["messages"][1]["content"].as_str().unwrap_or("").to_string()
}

/// The proposal for a note: chosen by a word in it. `SLOW`: no answer until
/// the server is dropped (held on its gate, past any mediator timeout).
fn proposal(note: &str, outside: &str, gate: &Gate) -> Result<Value, (u16, Value)> {
    let good = json!({
        "title": "Fix the login bug",
        "prompt": "Fix the login bug: users with a plus sign in their email cannot log in.",
        "role": "fix",
        "workdir": null,
        "steps": ["Find where emails are parsed", "Fix it and add a test"],
        "success_criteria": ["an email with + logs in", "the tests pass"],
    });
    if note.contains("GOOD") {
        return Ok(good);
    }
    if note.starts_with("Reply {") {
        // doctor's probe
        return Ok(json!({"ok": true}));
    }
    if note.contains("OUTSIDE") {
        let mut p = good;
        p["workdir"] = json!(outside);
        return Ok(p);
    }
    if note.contains("TOOLS") {
        let mut p = good;
        p["allowed_tools"] = json!(["Bash"]);
        return Ok(p);
    }
    if note.contains("JUNK") {
        return Ok(json!({
            "title": "Weather report for Tuesday",
            "prompt": "https://spam.example buy cheap watches today",
            "role": null, "workdir": null, "steps": [], "success_criteria": [],
        }));
    }
    if note.contains("SCHEMA") {
        return Ok(json!({"title": "no prompt here"}));
    }
    if note.contains("ROLE") {
        let mut p = good;
        p["role"] = json!("root-admin");
        return Ok(p);
    }
    if note.contains("SERVER") {
        return Err((500, json!({"error": {"message": "model crashed"}})));
    }
    if note.contains("SLOW") {
        gate.wait(Duration::from_secs(300));
        return Ok(good);
    }
    Ok(Value::String("not json at all".into()))
}

/// An OpenAI-compatible server answering `proposal`.
fn openai_server(outside: String) -> FakeHttp {
    FakeHttp::start(move |r, gate| {
        let props = r.json()["response_format"]["json_schema"]["schema"]["properties"].clone();
        if props.get("summary").is_some() {
            let content = json!({"summary": "The agent looked at the login and reported back."}).to_string();
            return (
                200,
                json!({"choices": [{"message": {"role": "assistant", "content": content}}]}),
            );
        }
        if props.get("digest").is_some() {
            let content = json!({"digest": "CONDENSED: the first try failed."}).to_string();
            return (
                200,
                json!({"choices": [{"message": {"role": "assistant", "content": content}}]}),
            );
        }
        let content = match proposal(&note(r), &outside, gate) {
            Ok(Value::String(s)) => s,
            Ok(v) => v.to_string(),
            Err(e) => return e,
        };
        (
            200,
            json!({"choices": [{"message": {"role": "assistant", "content": content}}]}),
        )
    })
}

fn config(kind: &str, url: &str) -> String {
    base_config() + &format!("mediator:\n  kind: {kind}\n  url: {url}\n  model: tiny\n  timeout: 1s\n")
}

/// Points the home's mediator at a port nothing listens on.
fn point_at_nothing(home: &TestHome) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        home.path.join("orchestrator.yaml"),
        config("openai", &format!("http://127.0.0.1:{closed}/v1")),
    )
    .unwrap();
}

/// `doctor`'s mediator check.
fn mediator_check(home: &TestHome) -> Value {
    let doctor = home.cli_json(&["doctor"]);
    doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "mediator")
        .cloned()
        .unwrap()
}

fn plan_of(home: &TestHome, file: &str) -> Value {
    let r = home.result_of(file);
    let dir = home.task_dir(r["id"].as_str().unwrap());
    serde_json::from_slice(&std::fs::read(dir.join("plan.json")).unwrap()).unwrap()
}

#[test]
fn a_good_proposal_structures_a_loose_note_and_the_task_runs_with_it() {
    let server = openai_server(String::new());
    let home = TestHome::with_config(&config("openai", &format!("{}/v1", server.url())));
    home.drop_task(
        "note.txt",
        "GOOD: login broken for emails with a plus sign. First find where, then fix it; the tests must pass",
    );
    home.drop_task("structured.yaml", "prompt: GOOD but structured\n");
    assert!(home.run_once().status.success());

    let plan = plan_of(&home, "note.txt");
    assert_eq!(plan["parsed_by"], "mediator", "{plan}");
    assert_eq!(plan["mediation"]["used"], true);
    assert_eq!(plan["title"], "Fix the login bug");
    assert_eq!(plan["role"], "fix");
    assert_eq!(plan["steps"].as_array().unwrap().len(), 2);
    let prompt = plan["prompt"].as_str().unwrap();
    assert!(
        prompt.contains("Fix the login bug: users"),
        "the model's prompt, after the role's prefix: {prompt}"
    );
    assert!(
        prompt.contains("login broken for emails with a plus sign. First find where"),
        "the note is kept: {prompt}"
    );
    let result = home.result_of("note.txt");
    assert_eq!(result["status"], "succeeded", "{result}");
    // The parser read a criterion itself ("the tests must pass"): the model's are not needed.
    assert_eq!(result["validation"]["success_criteria"][0], "the tests must pass");
    assert_eq!(result["mediation"]["used"], true);
    let events = home.events_of("task_mediated");
    assert_eq!(events.len(), 1, "a structured file is not mediated with when: loose");
    assert_eq!(events[0]["model"], "tiny");

    // The summary opens with the model's words.
    let id = result["id"].as_str().unwrap();
    let summary = std::fs::read_to_string(home.path.join("summaries").join(format!("{id}.md"))).unwrap();
    assert!(
        summary.starts_with("# Fix the login bug\n\n> The agent looked at the login and reported back.\n"),
        "{summary}"
    );

    let req = &server.requests()[0];
    assert_eq!(req.path, "/v1/chat/completions");
    let body = req.json();
    assert_eq!(body["model"], "tiny");
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(plan_of(&home, "structured.yaml")["parsed_by"], "parser");
}

#[test]
fn with_the_mediator_on_a_follow_ups_context_is_condensed() {
    let server = openai_server(String::new());
    let home = TestHome::with_config(&config("openai", &format!("{}/v1", server.url())));
    let next = run_with_context_from(&home, "agent: command\ncommand: 'echo tried; exit 3'\n");
    let stdin = next["output"].as_str().unwrap();
    assert!(stdin.contains("CONDENSED: the first try failed."), "{stdin}");
    let plan = plan_of(&home, "next.yaml");
    assert_eq!(plan["context"]["condensed"], true);
}

#[test]
fn ollama_native_gets_the_schema_as_format() {
    let server = FakeHttp::start(|r, gate| {
        let p = proposal(&note(r), "", gate).unwrap();
        (
            200,
            json!({"message": {"role": "assistant", "content": p.to_string()}, "done": true}),
        )
    });
    let home = TestHome::with_config(&config("ollama", &server.url()));
    home.drop_task("note.md", "GOOD: fix the login");
    assert!(home.run_once().status.success());
    assert_eq!(plan_of(&home, "note.md")["parsed_by"], "mediator");
    let req = &server.requests()[0];
    assert_eq!(req.path, "/api/chat");
    assert_eq!(req.json()["format"]["required"][0], "title");
    assert_eq!(req.json()["stream"], false);
}

#[test]
fn every_bad_answer_falls_back_to_the_parser_and_the_task_still_runs() {
    let outside = tempfile::tempdir().unwrap();
    let server = openai_server(outside.path().display().to_string());
    let url = format!("{}/v1", server.url());
    let home = TestHome::with_config(&config("openai", &url));
    let check = |file: &str, text: &str, reason: &str| {
        let plan = plan_of(&home, file);
        assert_eq!(plan["parsed_by"], "parser", "{file}");
        assert_eq!(plan["mediation"]["used"], false, "{file}");
        assert_eq!(plan["mediation"]["reason"], reason, "{file}: {plan}");
        assert_eq!(plan["prompt"], text, "{file}: the note as written");
        assert!(
            plan["allowed_tools"].as_array().unwrap().iter().all(|t| t != "Bash"),
            "{file}"
        );
        assert_ne!(plan["workdir"].as_str(), Some(outside.path().to_str().unwrap()));
        assert_eq!(
            home.result_of(file)["status"],
            "succeeded",
            "{file}: it ran all the same"
        );
    };
    // Answers that come, and are wrong as a whole.
    let wrong = [
        ("json.txt", "JSONLESS note", "invalid_json"),
        ("schema.txt", "SCHEMA note", "schema_violation"),
        ("tools.txt", "TOOLS note", "forbidden_field"),
        ("junk.txt", "JUNK note about the login page", "nothing_adopted"),
    ];
    // Answers with one bad field: that field is dropped with its reason, the
    // rest of the proposal stands.
    let one_bad = [
        ("outside.txt", "OUTSIDE note: fix the login bug", "workdir"),
        ("role.txt", "ROLE note: fix the login bug", "role"),
        (
            "widen.txt",
            "GOOD note: review the login bug, don't change anything",
            "role",
        ),
    ];
    for (file, text, _) in wrong.iter().chain(&one_bad) {
        home.drop_task(file, text);
    }
    assert!(
        home.run_once().status.success(),
        "every task ran with the parser's plan"
    );
    for (file, text, reason) in wrong {
        check(file, text, reason);
    }
    for (file, text, field) in one_bad {
        let plan = plan_of(&home, file);
        assert_eq!(plan["mediation"]["used"], true, "{file}: {plan}");
        let dropped = plan["mediation"]["dropped"].as_array().unwrap();
        assert!(
            dropped
                .iter()
                .any(|d| d["field"] == field && !d["reason"].as_str().unwrap().is_empty()),
            "{file}: {dropped:?}"
        );
        assert_eq!(plan["title"], "Fix the login bug", "{file}: the good fields stand");
        assert!(
            plan["prompt"].as_str().unwrap().contains(text),
            "{file}: the note is kept"
        );
        assert_ne!(
            plan["workdir"].as_str(),
            Some(outside.path().to_str().unwrap()),
            "{file}"
        );
        assert_ne!(plan["role"], "root-admin");
        assert_eq!(home.result_of(file)["status"], "succeeded", "{file}");
    }
    // The parser read "don't change anything": the model's `fix` would have
    // granted edits, so it was dropped and the tools stayed read-only.
    let widen = plan_of(&home, "widen.txt");
    assert_eq!(widen["allowed_tools"], json!(["Read", "Glob", "Grep", "LS"]), "{widen}");
    assert_eq!(widen["role"], "review", "{widen}");
    let stats = home.cli_json(&["stats"]);
    assert_eq!(stats["mediation"]["mediated"], 3, "{stats}");
    assert_eq!(stats["mediation"]["nothing_adopted"], 1, "{stats}");

    // No answer: a server error, then a minute of rest (one task at a time).
    std::fs::write(
        home.path.join("orchestrator.yaml"),
        config("openai", &url) + "max_concurrent: 1\n",
    )
    .unwrap();
    home.drop_task_aged("server.txt", "SERVER note", Duration::from_secs(20));
    home.drop_task_aged("after.txt", "GOOD note", Duration::from_secs(10));
    assert!(home.run_once().status.success());
    check("server.txt", "SERVER note", "http_error");
    check("after.txt", "GOOD note", "unavailable");
    // A model slower than the timeout (a new daemon: the rest starts over).
    home.drop_task("slow.txt", "SLOW note");
    assert!(home.run_once().status.success());
    check("slow.txt", "SLOW note", "timeout");
    // A server that is not there.
    point_at_nothing(&home);
    home.drop_task("away.txt", "GOOD note");
    assert!(home.run_once().status.success());
    check("away.txt", "GOOD note", "unreachable");
}

#[test]
fn plan_shows_the_mediated_plan_and_doctor_checks_the_model() {
    let server = openai_server(String::new());
    let home = TestHome::with_config(&config("openai", &format!("{}/v1", server.url())));
    let file = home.path.join("idea.txt");
    std::fs::write(&file, "GOOD: the login. First look, then fix it so that the tests pass").unwrap();
    let out = home.cli(&["plan", file.to_str().unwrap()]);
    let text = stdout(&out);
    assert!(text.contains("planned:   by the mediator (tiny"), "{text}");
    assert!(text.contains("step 1:    Find where emails are parsed"), "{text}");
    assert!(text.contains("criterion: the tests pass"), "{text}");
    // What the model proposed and was not kept is said, with why.
    std::fs::write(&file, "GOOD: the login").unwrap();
    let text = stdout(&home.cli(&["plan", file.to_str().unwrap()]));
    assert!(
        text.contains("dropped:   the model's steps: the note names no stages"),
        "{text}"
    );
    let json = home.cli_json(&["plan", file.to_str().unwrap()]);
    assert_eq!(json["plan"]["parsed_by"], "mediator");

    let check = mediator_check(&home);
    assert_eq!(check["ok"], true, "{check}");
    drop(server);
    point_at_nothing(&home);
    let check = mediator_check(&home);
    assert_eq!(check["ok"], false);
    assert_eq!(check["level"], "warn", "tasks still run without it");
    assert!(check["fix"].as_str().unwrap().contains("fall back"), "{check}");
}

#[test]
fn a_bad_mediator_section_says_what_to_fix() {
    for (yaml, part) in [
        ("mediator:\n  url: localhost:11434\n  model: m\n", "mediator.url"),
        ("mediator:\n  url: http://127.0.0.1:1/v1\n", "mediator.model"),
        (
            "mediator:\n  url: http://127.0.0.1:1/v1\n  model: m\n  kind: gpt\n",
            // The key and what it may be; the value is not quoted back.
            "`mediator.kind`: unknown variant, expected `openai` or `ollama`",
        ),
        (
            "mediator:\n  url: http://127.0.0.1:1/v1\n  model: m\n  temperature: 1\n",
            "temperature",
        ),
    ] {
        let home = TestHome::with_config(&(base_config() + yaml));
        let out = home.cli(&["config"]);
        assert_eq!(out.status.code(), Some(2), "{yaml}");
        assert!(stderr(&out).contains(part), "{yaml}: {}", stderr(&out));
    }
}

#[test]
fn a_server_without_json_schemas_gets_json_mode_and_the_key_from_its_variable() {
    let server = FakeHttp::start(|r, gate| {
        if r.json()["response_format"]["type"] == "json_schema" {
            return (
                400,
                json!({"error": {"message": "response_format json_schema is not supported"}}),
            );
        }
        let content = proposal(&note(r), "", gate).unwrap().to_string();
        (
            200,
            json!({"choices": [{"message": {"role": "assistant", "content": content}}]}),
        )
    });
    let home = TestHome::with_config(
        &(config("openai", &format!("{}/v1", server.url())) + "  api_key_env: ORCH_TEST_MEDIATOR_KEY\n"),
    );
    home.drop_task("note.txt", "GOOD: fix the login");
    let out = home
        .cmd()
        .args(["run", "--once"])
        .env("ORCH_TEST_MEDIATOR_KEY", "sk-test-mediator-key-0123456789")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(plan_of(&home, "note.txt")["parsed_by"], "mediator");
    let reqs = server.requests();
    assert_eq!(reqs[0].json()["response_format"]["type"], "json_schema");
    assert_eq!(reqs[1].json()["response_format"]["type"], "json_object");
    assert_eq!(
        reqs[1].header("authorization"),
        Some("Bearer sk-test-mediator-key-0123456789")
    );
}

#[test]
fn a_model_adds_only_what_the_note_speaks_of() {
    let server = openai_server(String::new());
    let home = TestHome::with_config(&config("openai", &format!("{}/v1", server.url())));
    // A note without stages or a condition, whose parser's plan may edit: the
    // model's `fix` role is of the same kind and stays; its steps and criteria
    // are its own invention and go.
    home.drop_task("plain.txt", "GOOD: the login page breaks on plus signs in emails");
    // A note that only reads: a role that may change files is not taken.
    home.drop_task("read.txt", "GOOD: why does the login break on plus signs? just report");
    assert!(home.run_once().status.success());
    let plain = plan_of(&home, "plain.txt");
    assert_eq!(plain["mediation"]["used"], true, "{plain}");
    assert_eq!(plain["role"], "fix");
    assert!(plain["steps"].as_array().is_none_or(Vec::is_empty), "{plain}");
    let dropped: Vec<&str> = plain["mediation"]["dropped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert!(
        dropped.contains(&"steps") && dropped.contains(&"success_criteria"),
        "{dropped:?}"
    );
    assert!(
        home.result_of("plain.txt")["validation"]["success_criteria"]
            .as_array()
            .is_none_or(Vec::is_empty)
    );
    let read = plan_of(&home, "read.txt");
    assert_eq!(read["allowed_tools"], json!(["Read", "Glob", "Grep", "LS"]), "{read}");
    assert!(
        read["mediation"]["dropped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["field"] == "role"),
        "{read}"
    );
}
