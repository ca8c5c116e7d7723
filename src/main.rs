fn main() -> std::process::ExitCode {
    // The agent watchdog (see agents/watchdog.rs) is this binary in another role.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == orchestrator::agents::watchdog::ARG)
    {
        orchestrator::agents::watchdog::run();
    }
    orchestrator::cli::main()
}
