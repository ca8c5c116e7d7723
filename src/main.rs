fn main() -> std::process::ExitCode {
    // The agent watchdog (see agents/watchdog.rs) is this binary in another role.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == orchestrator::agents::watchdog::ARG)
    {
        orchestrator::agents::watchdog::run();
    }
    // The Windows service process: handed to the Service Control Manager.
    #[cfg(windows)]
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == orchestrator::service::SERVICE_ARG)
    {
        orchestrator::service::scm::dispatch(std::env::args_os().collect(), |args, report| {
            orchestrator::cli::run_reporting(args, |e| report(e))
        });
    }
    orchestrator::cli::main()
}
