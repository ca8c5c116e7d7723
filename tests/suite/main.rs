//! The integration tests, one binary (one link instead of twenty): each
//! module drives the built binary, the real agent CLIs or the bridges the way
//! a user or a recording does. Run one module with
//! `cargo test --test suite <module>::`.

mod common;

mod agents;
#[cfg(unix)]
mod attacker;
mod bad_input;
#[cfg(unix)]
mod changes;
mod cli;
mod cline;
#[cfg(unix)]
mod context;
#[cfg(unix)]
mod crash;
#[cfg(unix)]
mod dashboard;
#[cfg(unix)]
mod dashboard_browser;
mod fakes_match_recordings;
mod fallback;
#[cfg(unix)]
mod guarded;
#[cfg(unix)]
mod intent;
#[cfg(unix)]
mod live_config;
#[cfg(unix)]
mod mediator;
#[cfg(unix)]
mod newcomer;
#[cfg(unix)]
mod notify;
mod pipeline;
mod properties;
mod real_claude;
mod real_cline;
mod real_codex;
mod real_gemini;
#[cfg(unix)]
mod real_model;
mod real_opencode;
mod recordings;
#[cfg(unix)]
mod retention;
mod roles;
#[cfg(unix)]
mod rotation;
#[cfg(unix)]
mod schedules;
#[cfg(target_os = "linux")]
mod service;
#[cfg(unix)]
mod spend;
mod steps;
mod stream_fixtures;
#[cfg(unix)]
mod torture;
#[cfg(target_os = "linux")]
mod windows_wine;
#[cfg(unix)]
mod workflows;
