//! `orchestrator reindex`: rebuild results/index.json from the result files.

use super::{Cli, exit};
use crate::store::{atomic, index};

pub fn run(cli: &Cli) -> anyhow::Result<u8> {
    let home = cli.home()?;
    std::fs::create_dir_all(home.results())?;
    let index = index::rebuild(&home)?;
    let mut bytes = serde_json::to_vec(&index)?;
    bytes.push(b'\n');
    atomic::write_atomic(&home.index_file(), &bytes)?;
    println!("results/index.json rebuilt: {} tasks", index.tasks.len());
    Ok(exit::OK)
}
