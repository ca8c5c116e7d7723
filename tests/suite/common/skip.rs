//! Skipping a test whose tool is missing (a real CLI, the model, Wine, a
//! tmpfs mount), visibly.
//!
//! libtest swallows what a passing test prints, so an `eprintln!` SKIPPED
//! line never shows in a plain `cargo test`, and a skipped test reads `ok`.
//! Here the line is written straight to the process's stderr (past libtest's
//! capture, which only takes the print macros), and every skip is said again
//! after libtest's own summary, when the test process exits. Under CI
//! (`CI` set) a skip is a failure: there everything must run.

use std::io::Write;
use std::sync::Mutex;

static SKIPPED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Skips the calling test: fails it under CI, else says SKIPPED and why.
/// The caller returns right after.
pub fn skip(test: &str, why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {why}; under CI it must run, not be skipped");
    }
    let line = format!("SKIPPED {test}: {why}");
    let _ = writeln!(std::io::stderr().lock(), "{line}");
    let mut all = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    if all.is_empty() {
        at_exit();
    }
    all.push(line);
}

#[cfg(unix)]
fn at_exit() {
    extern "C" fn say_skipped() {
        let all = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "\n{} tests SKIPPED (their tools are missing; under CI they fail):",
            all.len()
        );
        for line in all.iter() {
            let _ = writeln!(err, "  {line}");
        }
    }
    // SAFETY: registers a plain function with no preconditions, once.
    unsafe { libc::atexit(say_skipped) };
}

#[cfg(not(unix))]
fn at_exit() {}
