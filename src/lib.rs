//! orchestrator: drop task files into `inbox/`, get crash-safe results.
//!
//! Data flows one way through the modules, top to bottom:
//!
//! ```text
//! watch   -> intake  -> queue -> claim -> plan -> agents -> outcome -> store/events
//! (hints)    (settle,   (order,  (atomic   (pure)  (spawn,    (classify,  (atomic files,
//!             parse,     slots,   rename)           stream,    retry)      index, log)
//!             reject)    pauses)                    limits)
//! ```
//!
//! `daemon` wires them together; `cli` is the user's side and only reads the
//! store. See docs/design.md for the why.

// A daemon that runs for months does not panic on bad input: errors are values.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod agents;
pub mod changes;
pub mod claim;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod duration;
pub mod events;
pub mod git;
pub mod ids;
pub mod intake;
pub mod isolate;
pub mod memory;
pub mod plan;
pub mod queue;
pub mod redact;
pub mod service;
pub mod store;
pub mod task;
pub mod tools;
pub mod validate;
pub mod vocab;
pub mod watch;
pub mod yaml;
