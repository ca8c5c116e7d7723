//! `verify:` and `verify_rounds:`: the command that says whether the agent's
//! work is done, and how many rounds it gets.

use super::invalid;
use crate::task::{Rejection, Verify};

/// Rounds when `verify_rounds` is not given (the first included).
const DEFAULT_ROUNDS: u32 = 3;
/// The most rounds a task may ask for.
const MAX_ROUNDS: i64 = 20;

/// The task's verify loop, checked.
pub fn read(command: Option<String>, rounds: Option<i64>) -> Result<Option<Verify>, Rejection> {
    let Some(command) = command else {
        if rounds.is_some() {
            return Err(invalid(
                "verify_rounds",
                "is set without `verify`".into(),
                "add `verify: COMMAND` (e.g. `cargo test --quiet`), or remove verify_rounds",
            ));
        }
        return Ok(None);
    };
    let command = command.trim().to_string();
    if command.is_empty() || command.contains('\0') {
        return Err(invalid(
            "verify",
            "is empty".into(),
            "give the shell command that passes when the work is done, e.g. `cargo test --quiet`",
        ));
    }
    let rounds = match rounds {
        None => DEFAULT_ROUNDS,
        Some(n @ 1..=MAX_ROUNDS) => n as u32,
        Some(n) => {
            return Err(invalid(
                "verify_rounds",
                format!("{n} is not between 1 and {MAX_ROUNDS}"),
                "count every round, the first included: 1 checks once and never asks again",
            ));
        }
    };
    Ok(Some(Verify { command, rounds }))
}
