//! `orchestrator reindex`: rebuild results/index.json from the result files.

use super::{Cli, exit};
use crate::store::index;

pub fn run(cli: &Cli) -> anyhow::Result<u8> {
    let home = cli.home()?;
    std::fs::create_dir_all(home.results())?;
    let index = index::rebuild(&home)?;
    index::write_full(&home, &index)?;
    println!("results/index.json rebuilt: {} tasks", index.tasks.len());
    Ok(exit::OK)
}
