//! Everything the daemon writes about tasks, and the only place the CLI reads.
//!
//! All files are written whole ([`atomic`]); `result.json` is written once and
//! last, so its presence means the task finished. Everything else about a task
//! can be rebuilt from its folder, and the index from the result files.

pub mod atomic;
pub mod commit;
pub mod commit_log;
pub mod daemons;
pub mod index;
pub mod keep;
pub mod layout;
pub mod lock;
pub mod read;
pub mod record;
pub mod summary;

pub use layout::{Home, TaskDir};
