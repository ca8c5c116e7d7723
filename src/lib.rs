//! orchestrator: drop task files into `inbox/`, get crash-safe results.
//!
//! Data flows one way through the modules, top to bottom:
//!
//! ```text
//! watch   -> intake  -> queue -> claim -> plan -> agents            -> store/events
//! (hints)    (settle,   (order,  (atomic   (pure)  (spawn, stream,     (atomic files,
//!             parse,     slots,   rename)           limits; classify,   index, log)
//!             reject)    pauses)                    retry, backoff)
//! ```
//!
//! `daemon` wires them together; `cli` is the user's side and only reads the
//! store. See docs/design.md for the why.
//!
//! The library's API is what the binary and the integration tests use:
//! `cli`, `service`, `config`, `task` (the parser) and `agents` (the bridges,
//! tested against recordings of the real CLIs). Everything else is
//! `pub(crate)`, so that code nothing uses is reported as dead.

// A daemon that runs for months does not panic on bad input: errors are values.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod agents;
pub(crate) mod changes;
pub(crate) mod claim;
pub mod cli;
pub mod config;
pub(crate) mod context;
pub(crate) mod daemon;
pub(crate) mod dashboard;
pub(crate) mod deps;
pub(crate) mod duration;
pub(crate) mod events;
pub(crate) mod followups;
pub(crate) mod git;
pub(crate) mod ids;
pub(crate) mod intake;
pub(crate) mod isolate;
pub(crate) mod mediator;
pub(crate) mod memory;
pub(crate) mod notify;
pub(crate) mod plan;
pub(crate) mod queue;
pub(crate) mod redact;
pub(crate) mod retention;
pub(crate) mod schedule;
pub mod service;
pub(crate) mod spend;
pub(crate) mod store;
pub(crate) mod suggest;
pub mod task;
pub(crate) mod tools;
pub(crate) mod validate;
pub(crate) mod vocab;
pub(crate) mod watch;
pub(crate) mod yaml;
