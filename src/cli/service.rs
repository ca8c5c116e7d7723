//! `orchestrator service install|uninstall|start|stop|status`: the daemon as
//! a service of the OS's service manager (see `crate::service` for what is
//! installed). `--dry-run` prints exactly what would be written and run.
//!
//! Linux: the unit goes to `~/.config/systemd/user/` (`--user`) or
//! `/etc/systemd/system/`, then `systemctl [--user] daemon-reload` and
//! `enable --now`. macOS: the plist goes to `~/Library/LaunchAgents/`
//! (`--user`) or `/Library/LaunchDaemons/`, then `launchctl bootstrap`.
//! Windows: a service of the Service Control Manager (as an administrator;
//! there are no per-user services, so `--user` is refused).
//! `--config` and `--set` given to `install` are checked and become the
//! service's own arguments.
//! `ORCHESTRATOR_UNIT_DIR` and `ORCHESTRATOR_SYSTEMCTL` / `ORCHESTRATOR_LAUNCHCTL`
//! change where and with what (for tests, and for unusual systems).

use super::common::UsageError;
use super::{Cli, exit};
use crate::service::Spec;
use std::path::PathBuf;
use std::process::Command;

#[derive(Debug, clap::Args)]
#[command(
    long_about = "Run the daemon as a service of the OS: a systemd unit on Linux, a launchd agent or daemon on macOS, a Windows service (Service Control Manager, run as an administrator). One service per home; `--config` and `--set` given to `install` are the service's too.",
    after_help = "Examples:\n  orchestrator --home ~/agents service install --user        # Linux, macOS: a service of this user\n  orchestrator --home /srv/agents service install --dry-run  # what would be written and run\n  orchestrator --home C:\\agents service install             # Windows, as an administrator\n  orchestrator service status --user"
)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Write the service definition, enable it and start it.
    Install(Opts),
    /// Stop the service and remove its definition.
    Uninstall(Opts),
    /// Start the installed service.
    Start(Opts),
    /// Stop it: a graceful shutdown (running tasks run again at the next start).
    Stop(Opts),
    /// Is it installed, is it running, and on which home.
    Status(Opts),
}

#[derive(Debug, clap::Args)]
pub struct Opts {
    /// A service of this user (systemd --user, a LaunchAgent) instead of a
    /// system one. Not on Windows, whose services are the system's.
    #[arg(long)]
    pub user: bool,
    /// Print what would be written and run; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl Action {
    fn opts(&self) -> &Opts {
        match self {
            Action::Install(o) | Action::Uninstall(o) | Action::Start(o) | Action::Stop(o) | Action::Status(o) => o,
        }
    }
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let home = cli.home()?;
    // Refused before anything else reads them: a secret never reaches a command line.
    let config_args = config_args(cli)?;
    // Install refuses a config the daemon would refuse. The other actions work
    // whatever the config says: a broken one must not keep a service from
    // being stopped, removed or looked at (nor its daemon from saying why it
    // did not start).
    let config = match cli.load_config(&home, &[]) {
        Ok(loaded) => loaded.config,
        Err(e) if matches!(args.action, Action::Install(_)) => return Err(UsageError(e.to_string()).into()),
        Err(_) => crate::config::Config::default(),
    };
    let opts = args.action.opts();
    if cfg!(windows) && opts.user {
        return Err(UsageError(
            "--user: Windows has no services of one user; leave it out and run this as an administrator".into(),
        )
        .into());
    }
    let home_path = crate::task::workdir::canonical(home.root()).unwrap_or_else(|_| home.root().to_path_buf());
    let spec = Spec {
        exe: std::env::current_exe()?,
        home: home_path,
        user_service: opts.user,
        run_as: std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .ok()
            .filter(|u| !u.is_empty() && u != "root"),
        shutdown_grace: config.shutdown_grace.0,
        config_args,
    };
    Manager::of_this_os(&spec).act(&args.action, &spec)
}

/// `--config FILE` (made absolute: the service starts elsewhere) and each
/// `--set KEY=VALUE`, as the service's daemon is to be started with them.
fn config_args(cli: &Cli) -> anyhow::Result<Vec<String>> {
    let mut v = Vec::new();
    if let Some(file) = &cli.config {
        let file = crate::task::workdir::canonical(file).unwrap_or(std::path::absolute(file)?);
        v.extend(["--config".to_string(), file.display().to_string()]);
    }
    for (k, value) in &cli.set {
        // A service's arguments are readable by every local user (`ps`, the
        // unit file, the registry): a secret belongs in the config file.
        let leaf = k.rsplit('.').next().unwrap_or(k);
        if crate::redact::is_secret_name(leaf) || ["secret", "token", "password", "api_key"].contains(&leaf) {
            return Err(UsageError(format!(
                "--set {k}=...: a service's arguments can be read by every user of this machine; put `{k}` in the config file (readable by its owner only) instead"
            ))
            .into());
        }
        if value.chars().any(char::is_control) {
            return Err(UsageError(format!(
                "--set {k}: a value with a control character cannot go on a service's command line"
            ))
            .into());
        }
        v.extend(["--set".to_string(), format!("{k}={value}")]);
    }
    Ok(v)
}

/// The OS's service manager: where the definition goes, and the tool that loads it.
struct Manager {
    kind: Kind,
    dir: PathBuf,
    tool: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Systemd,
    Launchd,
    Scm,
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .map(PathBuf::from)
        .unwrap_or_default()
}

impl Manager {
    fn of_this_os(spec: &Spec) -> Self {
        let over = std::env::var_os("ORCHESTRATOR_UNIT_DIR").map(PathBuf::from);
        if cfg!(windows) {
            Manager {
                kind: Kind::Scm,
                dir: PathBuf::new(),
                tool: String::new(),
            }
        } else if cfg!(target_os = "macos") {
            let dir = if spec.user_service {
                home_dir().join("Library/LaunchAgents")
            } else {
                PathBuf::from("/Library/LaunchDaemons")
            };
            Manager {
                kind: Kind::Launchd,
                dir: over.unwrap_or(dir),
                tool: std::env::var("ORCHESTRATOR_LAUNCHCTL").unwrap_or_else(|_| "launchctl".into()),
            }
        } else {
            let dir = if spec.user_service {
                std::env::var_os("XDG_CONFIG_HOME")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| home_dir().join(".config"))
                    .join("systemd/user")
            } else {
                PathBuf::from("/etc/systemd/system")
            };
            Manager {
                kind: Kind::Systemd,
                dir: over.unwrap_or(dir),
                tool: std::env::var("ORCHESTRATOR_SYSTEMCTL").unwrap_or_else(|_| "systemctl".into()),
            }
        }
    }

    fn file(&self, spec: &Spec) -> PathBuf {
        match self.kind {
            Kind::Launchd => self.dir.join(format!("dev.{}.plist", spec.name())),
            _ => self.dir.join(format!("{}.service", spec.name())),
        }
    }

    /// The manager's commands for `action`, as argument lists for `self.tool`.
    fn commands(&self, action: &Action, spec: &Spec) -> Vec<Vec<String>> {
        let name = format!("{}.service", spec.name());
        let own = |args: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = Vec::new();
            if self.kind == Kind::Systemd && spec.user_service {
                v.push("--user".into());
            }
            v.extend(args.iter().map(|a| a.to_string()));
            v
        };
        match self.kind {
            Kind::Systemd => match action {
                Action::Install(_) => vec![own(&["daemon-reload"]), own(&["enable", "--now", &name])],
                Action::Uninstall(_) => vec![own(&["disable", "--now", &name]), own(&["daemon-reload"])],
                Action::Start(_) => vec![own(&["start", &name])],
                Action::Stop(_) => vec![own(&["stop", &name])],
                Action::Status(_) => vec![own(&["is-active", &name])],
            },
            Kind::Launchd => {
                let domain = if spec.user_service {
                    format!("gui/{}", current_uid())
                } else {
                    "system".into()
                };
                let target = format!("{domain}/dev.{}", spec.name());
                let plist = self.file(spec).display().to_string();
                match action {
                    Action::Install(_) => vec![vec!["bootstrap".into(), domain, plist]],
                    Action::Uninstall(_) => vec![vec!["bootout".into(), target]],
                    Action::Start(_) => vec![vec!["kickstart".into(), target]],
                    Action::Stop(_) => vec![vec!["kill".into(), "SIGTERM".into(), target]],
                    Action::Status(_) => vec![vec!["print".into(), target]],
                }
            }
            Kind::Scm => Vec::new(),
        }
    }

    fn act(&self, action: &Action, spec: &Spec) -> anyhow::Result<u8> {
        if self.kind == Kind::Scm {
            return scm(action, spec);
        }
        let file = self.file(spec);
        let content = match self.kind {
            Kind::Launchd => crate::service::launchd_plist(spec),
            _ => crate::service::systemd_unit(spec),
        };
        let commands = self.commands(action, spec);
        let dry = action.opts().dry_run;
        match action {
            Action::Install(_) => {
                if dry {
                    println!("would write {}:\n{content}", file.display());
                } else {
                    std::fs::create_dir_all(&self.dir)?;
                    crate::store::atomic::write_atomic(&file, content.as_bytes())?;
                    println!("wrote {}", file.display());
                }
            }
            Action::Uninstall(_) if dry => println!("would remove {}", file.display()),
            Action::Status(_) => {
                let installed = file.exists();
                println!("service:   {}", spec.name());
                println!("home:      {}", spec.home.display());
                println!(
                    "installed: {}",
                    if installed {
                        file.display().to_string()
                    } else {
                        "no".into()
                    }
                );
                if !installed {
                    return Ok(exit::FAILED);
                }
            }
            _ => {}
        }
        for args in &commands {
            if dry {
                println!("would run: {} {}", self.tool, args.join(" "));
                continue;
            }
            let out = Command::new(&self.tool).args(args).output();
            let ok = out.as_ref().is_ok_and(|o| o.status.success());
            let said = out
                .as_ref()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            if matches!(action, Action::Status(_)) {
                println!("running:   {}", if ok { "yes" } else { "no" });
                if !said.is_empty() && self.kind == Kind::Systemd {
                    println!("state:     {said}");
                }
                return Ok(if ok { exit::OK } else { exit::FAILED });
            }
            if !ok {
                let why = match &out {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                };
                eprintln!(
                    "error: `{} {}` failed: {why}\n{} is in place; once the service manager runs, try again (or run the daemon with `orchestrator --home {} run`)",
                    self.tool,
                    args.join(" "),
                    file.display(),
                    spec.home.display()
                );
                return Ok(exit::FAILED);
            }
        }
        if let Action::Uninstall(_) = action
            && !dry
        {
            match std::fs::remove_file(&file) {
                Ok(()) => println!("removed {}", file.display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => println!("{} was not installed", file.display()),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(exit::OK)
    }
}

/// Whether this home's service is installed, said for `doctor`: its
/// definition file (user first), or on Windows the SCM's record and state.
pub(super) fn installed(home: &std::path::Path, shutdown_grace: std::time::Duration) -> Option<String> {
    [true, false].into_iter().find_map(|user| {
        let spec = Spec {
            exe: PathBuf::new(),
            home: home.to_path_buf(),
            user_service: user,
            run_as: None,
            shutdown_grace,
            config_args: Vec::new(),
        };
        let m = Manager::of_this_os(&spec);
        if m.kind == Kind::Scm {
            return scm_installed(&spec);
        }
        Some(m.file(&spec))
            .filter(|f| f.exists())
            .map(|f| f.display().to_string())
    })
}

/// The Windows service of this home, if the SCM has it: its name and state.
fn scm_installed(spec: &Spec) -> Option<String> {
    #[cfg(windows)]
    {
        let name = spec.name();
        crate::service::scm::state(&name).map(|(state, why)| match why {
            Some(why) => format!("Windows service {name}, {state}: {why}"),
            None => format!("Windows service {name}, {state}"),
        })
    }
    #[cfg(not(windows))]
    {
        let _ = spec;
        None
    }
}

fn current_uid() -> u32 {
    #[cfg(unix)]
    {
        // SAFETY: getuid has no preconditions.
        unsafe { libc::getuid() }
    }
    #[cfg(not(unix))]
    {
        0
    }
}

/// Windows: the Service Control Manager (see `crate::service::scm`).
fn scm(action: &Action, spec: &Spec) -> anyhow::Result<u8> {
    let p = crate::service::scm_params(spec);
    if action.opts().dry_run {
        println!("would {} the Windows service {}", verb(action), p.name);
        if let Action::Install(_) = action {
            let restarts: Vec<String> = p.restart_after.iter().map(|d| format!("{}s", d.as_secs())).collect();
            println!("  display name: {}", p.display_name);
            println!("  command line: {}", crate::service::scm_command_line(&p));
            println!(
                "  started:      with Windows (automatic), restarted after a failure ({})",
                restarts.join(", ")
            );
            println!("  stop timeout: {}s", p.stop_timeout.as_secs());
        }
        return Ok(exit::OK);
    }
    #[cfg(windows)]
    {
        use crate::service::scm;
        let done = match action {
            Action::Install(_) => scm::install(&p).map(|()| format!("installed and started {}", p.name)),
            Action::Uninstall(_) => scm::uninstall(&p.name, p.stop_timeout).map(|()| format!("removed {}", p.name)),
            Action::Start(_) => scm::start(&p.name).map(|started| {
                if started {
                    format!("started {}", p.name)
                } else {
                    format!("{} was running already", p.name)
                }
            }),
            Action::Stop(_) => scm::stop(&p.name, p.stop_timeout).map(|()| format!("stopped {}", p.name)),
            Action::Status(_) => {
                println!("service:   {}", p.name);
                println!("home:      {}", spec.home.display());
                return Ok(match scm::state(&p.name) {
                    Some((state, why)) => {
                        println!("installed: yes\nstate:     {state}");
                        if let Some(why) = why {
                            println!("stopped:   {why}");
                        }
                        if state == "running" { exit::OK } else { exit::FAILED }
                    }
                    None => {
                        println!("installed: no");
                        exit::FAILED
                    }
                });
            }
        };
        match done {
            Ok(text) => {
                println!("{text}");
                Ok(exit::OK)
            }
            Err(why) => {
                eprintln!("error: {why}");
                Ok(exit::FAILED)
            }
        }
    }
    #[cfg(not(windows))]
    {
        let _ = p;
        unreachable!("the Service Control Manager is Windows'")
    }
}

fn verb(action: &Action) -> &'static str {
    match action {
        Action::Install(_) => "register",
        Action::Uninstall(_) => "remove",
        Action::Start(_) => "start",
        Action::Stop(_) => "stop",
        Action::Status(_) => "query",
    }
}
