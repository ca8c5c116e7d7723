//! `orchestrator service` on Linux: the unit written to a unit folder of the
//! test's own, and the `systemctl` commands run through a stand-in that
//! records them (no systemd runs here).

use crate::common::*;

struct Fake {
    _dir: tempfile::TempDir,
    units: std::path::PathBuf,
    systemctl: std::path::PathBuf,
    calls: std::path::PathBuf,
}

/// A unit folder and a `systemctl` that records its arguments (and fails `is-active`
/// until `enable --now` was called, like the real one).
fn fake() -> Fake {
    let dir = tempfile::tempdir().unwrap();
    let units = dir.path().join("units");
    let calls = dir.path().join("calls");
    let systemctl = dir.path().join("systemctl");
    std::fs::write(
        &systemctl,
        format!(
            "#!/bin/sh\necho \"$*\" >> {calls}\ncase \"$*\" in *is-active*) grep -q 'enable --now' {calls} && ! grep -q disable {calls} && echo active && exit 0; echo inactive; exit 3;; esac\n",
            calls = calls.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&systemctl, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    Fake {
        _dir: dir,
        units,
        systemctl,
        calls,
    }
}

fn service(home: &TestHome, f: &Fake, args: &[&str]) -> std::process::Output {
    let mut c = home.cmd();
    c.arg("service")
        .args(args)
        .env("ORCHESTRATOR_UNIT_DIR", &f.units)
        .env("ORCHESTRATOR_SYSTEMCTL", &f.systemctl);
    c.output().unwrap()
}

#[test]
fn install_status_and_uninstall_a_user_unit() {
    let home = TestHome::new();
    let f = fake();
    let dry = service(&home, &f, &["install", "--user", "--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    let text = stdout(&dry);
    assert!(text.contains("ExecStart=") && text.contains("KillMode=mixed"), "{text}");
    assert!(
        text.contains("would run: ") && text.contains("--user enable --now orchestrator-"),
        "{text}"
    );
    assert!(!f.units.exists() && !f.calls.exists(), "a dry run changes nothing");

    let out = service(&home, &f, &["install", "--user"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let unit = std::fs::read_dir(&f.units).unwrap().flatten().next().unwrap().path();
    let written = std::fs::read_to_string(&unit).unwrap();
    assert!(
        written.contains(&format!("--home {} run", home.path.display())),
        "{written}"
    );
    assert!(
        written.contains("Restart=on-failure") && written.contains("WantedBy=default.target"),
        "{written}"
    );
    // shutdown_grace is 1s in the test config: the stop timeout is above it.
    assert!(written.contains("TimeoutStopSec=31"), "{written}");
    let calls = std::fs::read_to_string(&f.calls).unwrap();
    let name = unit.file_name().unwrap().to_string_lossy().to_string();
    assert_eq!(calls, format!("--user daemon-reload\n--user enable --now {name}\n"));

    let status = service(&home, &f, &["status", "--user"]);
    assert_eq!(status.status.code(), Some(0), "{}", stdout(&status));
    let mut doctor = home.cmd();
    doctor.args(["doctor", "--json"]).env("ORCHESTRATOR_UNIT_DIR", &f.units);
    let v: serde_json::Value = serde_json::from_slice(&doctor.output().unwrap().stdout).unwrap();
    let line = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "service")
        .cloned()
        .unwrap();
    assert!(
        line["detail"].as_str().unwrap().contains(&name),
        "doctor reports the service: {line}"
    );
    assert!(stdout(&status).contains("running:   yes"), "{}", stdout(&status));

    let out = service(&home, &f, &["uninstall", "--user"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!unit.exists());
    assert!(
        std::fs::read_to_string(&f.calls)
            .unwrap()
            .contains(&format!("--user disable --now {name}"))
    );
    let status = service(&home, &f, &["status", "--user"]);
    assert_eq!(status.status.code(), Some(1));
    assert!(stdout(&status).contains("installed: no"));
}

#[test]
fn a_service_manager_that_is_not_running_is_said_with_what_to_do() {
    let home = TestHome::new();
    let f = fake();
    let mut c = home.cmd();
    c.args(["service", "install", "--user"])
        .env("ORCHESTRATOR_UNIT_DIR", &f.units)
        .env("ORCHESTRATOR_SYSTEMCTL", "/nonexistent/systemctl");
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is in place") && stderr(&out).contains("run`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_broken_config_stops_an_install_but_not_a_status_or_an_uninstall() {
    let home = TestHome::new();
    let f = fake();
    let good = std::fs::read_to_string(home.path.join("orchestrator.yaml")).unwrap();
    std::fs::write(home.path.join("orchestrator.yaml"), "max_concurent: 2\n").unwrap();
    let out = service(&home, &f, &["install", "--user"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("max_concurent"), "{}", stderr(&out));
    assert!(!f.units.exists(), "nothing installed");

    std::fs::write(home.path.join("orchestrator.yaml"), good).unwrap();
    assert!(service(&home, &f, &["install", "--user"]).status.success());
    std::fs::write(home.path.join("orchestrator.yaml"), "max_concurent: 2\n").unwrap();
    let status = service(&home, &f, &["status", "--user"]);
    assert!(
        stdout(&status).contains(&format!("installed: {}", f.units.display())),
        "{}{}",
        stdout(&status),
        stderr(&status)
    );
    let out = service(&home, &f, &["uninstall", "--user"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&f.units).unwrap().count(), 0, "the unit is gone");
}

#[test]
fn the_config_given_to_install_is_the_units_and_no_secret_goes_on_its_command_line() {
    let home = TestHome::new();
    let f = fake();
    let config = home.path.join("orchestrator.yaml");
    let mut c = home.cmd();
    c.args(["--config"])
        .arg(&config)
        .args(["--set", "max_concurrent=3", "service", "install", "--user", "--dry-run"]);
    let out = c
        .env("ORCHESTRATOR_UNIT_DIR", &f.units)
        .env("ORCHESTRATOR_SYSTEMCTL", &f.systemctl)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let unit = stdout(&out);
    let exec = unit.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
    assert!(
        exec.contains(&format!("--config {}", config.display())) && exec.ends_with("--set max_concurrent=3 run"),
        "{exec}"
    );
    let mut c = home.cmd();
    c.args([
        "--set",
        "notify.telegram.bot_token=123:ABC",
        "service",
        "install",
        "--user",
        "--dry-run",
    ]);
    let out = c
        .env("ORCHESTRATOR_UNIT_DIR", &f.units)
        .env("ORCHESTRATOR_SYSTEMCTL", &f.systemctl)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("put `notify.telegram.bot_token` in the config file"),
        "{}",
        stderr(&out)
    );
    assert!(!stdout(&out).contains("123:ABC"));
}
