//! The Windows build run for real, under Wine: `windows/wine-smoke`
//! cross-builds orchestrator.exe and drives it as a user would (tasks run by
//! `cmd /C`, results, the CLI, a closed pipe, the commit log's flush). It
//! prints SKIPPED where Wine or mingw-w64 is missing, and fails under CI.

#[test]
fn the_windows_build_runs_tasks_under_wine() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new("bash")
        .arg(format!("{root}/windows/wine-smoke"))
        .current_dir(root)
        .output()
        .expect("bash runs");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    if let Some(line) = text.lines().find(|l| l.starts_with("SKIPPED wine-smoke: ")) {
        crate::common::skip("the Wine smoke test", &line["SKIPPED wine-smoke: ".len()..]);
        return;
    }
    assert!(out.status.success(), "the Wine smoke test failed:\n{text}");
}
