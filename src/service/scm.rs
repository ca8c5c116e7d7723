//! The Windows service, through the Service Control Manager.
//!
//! Installed as an own-process service started with Windows, restarted after
//! a failure (5 s, 30 s, 2 min), running `orchestrator.exe __service NAME
//! --home HOME`. That process hands itself to the SCM's dispatcher, which
//! calls [`service_main`]: it reports Running, runs the daemon (the same code
//! as `orchestrator run`), and on stop, shutdown or preshutdown asks the
//! daemon for a graceful shutdown (running tasks are interrupted and run again
//! at the next start), reporting StopPending with checkpoints until it is
//! done. Logs go to the home's `logs/` as for every daemon.

use super::ScmParams;
use std::ffi::OsString;
use std::time::Duration;
use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept, ServiceErrorControl,
    ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod, ServiceInfo, ServiceStartType, ServiceState,
    ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

/// The argument that makes this binary the service process.
pub use super::SERVICE_ARG as ARG;

fn err(what: &str, e: windows_service::Error) -> String {
    match std::error::Error::source(&e) {
        Some(cause) => format!("{what}: {e}: {cause}"),
        None => format!("{what}: {e}"),
    }
}

fn manager(access: ServiceManagerAccess) -> Result<ServiceManager, String> {
    ServiceManager::local_computer(None::<&str>, access).map_err(|e| {
        err(
            "cannot open the Service Control Manager (run this as an administrator)",
            e,
        )
    })
}

/// Registers the service, sets its recovery actions, and starts it.
pub fn install(p: &ScmParams) -> Result<(), String> {
    let m = manager(ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE)?;
    let arguments: Vec<OsString> = p.arguments.iter().map(OsString::from).collect();
    let info = ServiceInfo {
        name: p.name.clone().into(),
        display_name: p.display_name.clone().into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: if p.start_automatically {
            ServiceStartType::AutoStart
        } else {
            ServiceStartType::OnDemand
        },
        error_control: ServiceErrorControl::Normal,
        executable_path: p.executable.clone(),
        launch_arguments: arguments,
        dependencies: Vec::new(),
        account_name: None,
        account_password: None,
    };
    let service = m
        .create_service(
            &info,
            ServiceAccess::CHANGE_CONFIG | ServiceAccess::START | ServiceAccess::QUERY_STATUS,
        )
        .map_err(|e| err("cannot register the service", e))?;
    // Best effort: a description and recovery actions make it nicer, not work.
    let _ = service.set_description(&p.description);
    let _ = service.update_failure_actions(ServiceFailureActions {
        reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(24 * 3600)),
        reboot_msg: None,
        command: None,
        actions: Some(
            p.restart_after
                .iter()
                .map(|d| ServiceAction {
                    action_type: ServiceActionType::Restart,
                    delay: *d,
                })
                .collect(),
        ),
    });
    let _ = service.set_failure_actions_on_non_crash_failures(true);
    start_service(&service).map_err(|e| err("registered, but it did not start", e))?;
    until_started(&service)
}

/// Waits (up to a minute) until a service just started is Running, and says
/// why when it stopped instead: its daemon refused to start.
fn until_started(service: &windows_service::service::Service) -> Result<(), String> {
    let until = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = service.query_status().map_err(|e| err("cannot query the service", e))?;
        match s.current_state {
            ServiceState::Running => return Ok(()),
            ServiceState::Stopped => return Err(stopped_because(&s.exit_code)),
            _ if std::time::Instant::now() > until => {
                return Err(
                    "the service has not reported Running within a minute; see `orchestrator service status`".into(),
                );
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// What a stopped service's exit code says.
pub fn stopped_because(code: &ServiceExitCode) -> String {
    match code {
        ServiceExitCode::Win32(0) => "it stopped".into(),
        ServiceExitCode::ServiceSpecific(2) => "its daemon did not start (exit code 2: the config or the home is wrong); the reason is in the Windows event log (Application, source orchestrator), and `orchestrator doctor` or `orchestrator run` on the same home shows it too".into(),
        ServiceExitCode::ServiceSpecific(n) => format!("its daemon stopped with exit code {n}; the reason is in the Windows event log (Application, source orchestrator)"),
        ServiceExitCode::Win32(n) => format!("it stopped with Windows error {n}"),
    }
}

/// Starts `service`, again while the SCM says its database is locked (another
/// service is being started: at boot, or while Wine sets up a new prefix).
fn start_service(service: &windows_service::service::Service) -> windows_service::Result<()> {
    const ERROR_SERVICE_DATABASE_LOCKED: i32 = 1055;
    let mut tries = 0;
    loop {
        match service.start::<&str>(&[]) {
            Err(windows_service::Error::Winapi(e))
                if e.raw_os_error() == Some(ERROR_SERVICE_DATABASE_LOCKED) && tries < 60 =>
            {
                tries += 1;
                std::thread::sleep(Duration::from_millis(250));
            }
            other => return other,
        }
    }
}

fn open(name: &str, access: ServiceAccess) -> Result<windows_service::service::Service, String> {
    manager(ServiceManagerAccess::CONNECT)?
        .open_service(name, access)
        .map_err(|e| err(&format!("no service {name}"), e))
}

/// Starts the installed service and waits until it runs; `Ok(false)` when
/// it was running already (a success, as for `systemctl start`).
pub fn start(name: &str) -> Result<bool, String> {
    let service = open(name, ServiceAccess::START | ServiceAccess::QUERY_STATUS)?;
    let s = service.query_status().map_err(|e| err("cannot query the service", e))?;
    if matches!(s.current_state, ServiceState::Running | ServiceState::StartPending) {
        return until_started(&service).map(|()| false);
    }
    start_service(&service).map_err(|e| err("cannot start the service", e))?;
    until_started(&service).map(|()| true)
}

/// Asks it to stop and waits (up to `timeout`) until it has.
pub fn stop(name: &str, timeout: Duration) -> Result<(), String> {
    let service = open(name, ServiceAccess::STOP | ServiceAccess::QUERY_STATUS)?;
    let status = service.query_status().map_err(|e| err("cannot query the service", e))?;
    if status.current_state != ServiceState::Stopped {
        service.stop().map_err(|e| err("cannot stop the service", e))?;
    }
    let until = std::time::Instant::now() + timeout;
    loop {
        let s = service.query_status().map_err(|e| err("cannot query the service", e))?;
        if s.current_state == ServiceState::Stopped {
            return Ok(());
        }
        if std::time::Instant::now() > until {
            return Err(format!("the service did not stop within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Stops it if it runs, and removes it.
pub fn uninstall(name: &str, timeout: Duration) -> Result<(), String> {
    stop(name, timeout)?;
    open(name, ServiceAccess::DELETE)?
        .delete()
        .map_err(|e| err("cannot remove the service", e))
}

/// Its state and, when stopped, why; `None` when it is not installed.
pub fn state(name: &str) -> Option<(String, Option<String>)> {
    let s = open(name, ServiceAccess::QUERY_STATUS).ok()?.query_status().ok()?;
    let why = (s.current_state == ServiceState::Stopped && s.exit_code != ServiceExitCode::Win32(0))
        .then(|| stopped_because(&s.exit_code));
    Some((format!("{:?}", s.current_state).to_lowercase(), why))
}

define_windows_service!(ffi_service_main, service_main);

/// How the service runs the daemon: the CLI's entry (`orchestrator ... run`),
/// handing the error that ends it to the second argument. Given by `main`, so
/// that this module does not reach up into the CLI that installs it.
pub type RunCli = fn(Vec<OsString>, &mut dyn FnMut(&str)) -> u8;

/// The service process (`orchestrator.exe __service NAME --home HOME`): hands
/// itself to the SCM, which calls [`service_main`]. Never returns.
pub fn dispatch(args: Vec<OsString>, run: RunCli) -> ! {
    let _ = RUN.set(run);
    let name = args
        .get(2)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The SCM's own start-up arguments reach service_main; ours are here.
    *LAUNCH.lock().unwrap_or_else(|e| e.into_inner()) = args;
    let code = match service_dispatcher::start(&name, ffi_service_main) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!(
                "error: not started by the Service Control Manager ({e}); use `orchestrator run` to run the daemon by hand"
            );
            2
        }
    };
    std::process::exit(code)
}

static LAUNCH: std::sync::Mutex<Vec<OsString>> = std::sync::Mutex::new(Vec::new());
static RUN: std::sync::OnceLock<RunCli> = std::sync::OnceLock::new();

fn service_main(_scm_arguments: Vec<OsString>) {
    let args = LAUNCH.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let name = args
        .get(2)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let handler = |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown | ServiceControl::Preshutdown => {
            STOPPING.store(true, std::sync::atomic::Ordering::Relaxed);
            crate::daemon::request_shutdown();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let Ok(status) = service_control_handler::register(&name, handler) else {
        return;
    };
    let report = |state, checkpoint, wait: Duration, exit_code| {
        let _ = status.set_service_status(ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: if state == ServiceState::Running {
                ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN | ServiceControlAccept::PRESHUTDOWN
            } else {
                ServiceControlAccept::empty()
            },
            exit_code,
            checkpoint,
            wait_hint: wait,
            process_id: None,
        });
    };
    let fine = ServiceExitCode::Win32(0);
    report(ServiceState::StartPending, 1, Duration::from_secs(30), fine);
    // The daemon, as `orchestrator --home HOME run`, on a thread; this one tells
    // the SCM how it goes: Running once it watches its inbox, StopPending with
    // checkpoints while it stops, and the exit code it ended with.
    let mut cli_args: Vec<OsString> = vec!["orchestrator".into()];
    cli_args.extend(args.iter().skip(3).cloned());
    cli_args.push("run".into());
    let run = RUN.get().copied();
    let daemon = std::thread::spawn(move || {
        let Some(run) = run else { return 1 };
        run(cli_args, &mut |error| {
            let text = format!("orchestrator: the service's daemon stopped: {error}");
            eprintln!("{text}");
            event_log::error(&text);
        })
    });
    let (mut checkpoint, mut running) = (1, false);
    let code = loop {
        if daemon.is_finished() {
            break daemon.join().map(u32::from).unwrap_or(1);
        }
        std::thread::sleep(Duration::from_millis(250));
        if STOPPING.load(std::sync::atomic::Ordering::Relaxed) {
            checkpoint += 1;
            report(ServiceState::StopPending, checkpoint, Duration::from_secs(5), fine);
        } else if !running && crate::daemon::has_started() {
            running = true;
            report(ServiceState::Running, 0, Duration::ZERO, fine);
        }
    };
    // A non-zero code is the daemon's own exit code (2: the config or the home
    // is wrong), which `service status` shows; the reason is in the event log.
    let exit = if code == 0 {
        fine
    } else {
        ServiceExitCode::ServiceSpecific(code)
    };
    report(ServiceState::Stopped, 0, Duration::ZERO, exit);
}

/// The Windows event log (Application, source "orchestrator"), for what a
/// service cannot print: why its daemon did not start or stopped. No message
/// file is registered, so the Event Viewer shows the text after a note that
/// the event's description is missing.
mod event_log {
    use windows_sys::Win32::System::EventLog::{
        DeregisterEventSource, EVENTLOG_ERROR_TYPE, RegisterEventSourceW, ReportEventW,
    };

    pub fn error(text: &str) {
        let source: Vec<u16> = "orchestrator".encode_utf16().chain(Some(0)).collect();
        let message: Vec<u16> = text.encode_utf16().chain(Some(0)).collect();
        // SAFETY: both strings are NUL-terminated and outlive the calls; the
        // handle is checked, used once and closed.
        unsafe {
            let log = RegisterEventSourceW(std::ptr::null(), source.as_ptr());
            if log.is_null() {
                return;
            }
            let strings = [message.as_ptr()];
            ReportEventW(
                log,
                EVENTLOG_ERROR_TYPE,
                0,
                1,
                std::ptr::null_mut(),
                1,
                0,
                strings.as_ptr(),
                std::ptr::null(),
            );
            DeregisterEventSource(log);
        }
    }
}

/// Set once a stop was asked for, to report StopPending while the daemon stops.
static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
