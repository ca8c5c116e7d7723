//! Tool names and what a list of them allows: the ceiling rule (`Bash` allows
//! `Bash(cargo test:*)`) and whether an agent with them can change files. A
//! leaf: the parser, the plan and the daemon all ask it.

/// Tools that let an agent change files; a task with none of them is read-only.
const WRITE_TOOLS: [&str; 5] = ["Edit", "MultiEdit", "Write", "NotebookEdit", "Bash"];

/// Can an agent with `tools` change files?
pub fn can_write(tools: &[String]) -> bool {
    tools
        .iter()
        .any(|t| WRITE_TOOLS.iter().any(|w| tool_allowed(t, &[w.to_string()])))
}

/// Is `tool` within `ceiling`? `Bash` in the ceiling allows `Bash(cargo test:*)`.
pub fn tool_allowed(tool: &str, ceiling: &[String]) -> bool {
    let base = tool.split_once('(').map_or(tool, |(b, _)| b);
    ceiling.iter().any(|c| c == tool || c == base)
}
