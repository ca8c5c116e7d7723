//! Running the daemon as a service: what is installed on each OS, rendered as
//! plain data so it can be shown (`service install --dry-run`) and tested
//! exactly, apart from the commands that install it.
//!
//! - Linux: a systemd unit, a user unit (`--user`) or a system unit with
//!   `User=`. `Restart=on-failure`; `KillMode=mixed` (SIGTERM to the daemon,
//!   which gives its agents `shutdown_grace` and stops their trees, and SIGKILL
//!   for anything left only when the stop timeout, set above the grace, runs
//!   out).
//! - macOS: a launchd property list (a LaunchAgent with `--user`, else a
//!   LaunchDaemon), kept alive when it exits with an error.
//! - Windows: a service of the Service Control Manager, started automatically
//!   and restarted on failure ([`scm`] registers and runs it).

#[cfg(windows)]
pub mod scm;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a service runs and as whom.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The orchestrator binary.
    pub exe: PathBuf,
    /// The home the daemon runs on.
    pub home: PathBuf,
    /// A user service (systemd `--user`, a LaunchAgent) rather than a system one.
    pub user_service: bool,
    /// The account a system service runs as (systemd `User=`).
    pub run_as: Option<String>,
    /// The daemon's `shutdown_grace`: the service manager waits longer than this.
    pub shutdown_grace: Duration,
    /// `--config FILE` and `--set KEY=VALUE` given to `service install`: the
    /// service's daemon runs with the same config that `install` checked.
    pub config_args: Vec<String>,
}

/// The first argument of the Windows service process
/// (`orchestrator.exe __service NAME --home HOME ...`).
pub const SERVICE_ARG: &str = "__service";

impl Spec {
    /// The service's name: one per home, so several homes can each have one.
    pub fn name(&self) -> String {
        let base = self
            .home
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let base: String = base
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .take(32)
            .collect();
        let hash = self
            .home
            .as_os_str()
            .as_encoded_bytes()
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
            });
        format!("orchestrator-{base}-{:08x}", hash as u32)
    }

    /// How long the service manager waits for a stop before killing what is
    /// left: the daemon's grace for its agents, plus time to write their state.
    pub fn stop_timeout(&self) -> Duration {
        self.shutdown_grace + Duration::from_secs(30)
    }

    /// The daemon's arguments: the home, the config given to `install`, `run`.
    fn run_args(&self) -> Vec<String> {
        let mut v = vec!["--home".to_string(), self.home.display().to_string()];
        v.extend(self.config_args.iter().cloned());
        v.push("run".into());
        v
    }
}

/// Quotes a word for a systemd `ExecStart=` line.
/// `%` (a specifier) and `$` (a variable) are doubled, to mean themselves.
/// (Control characters never get here: `service install` refuses them.)
fn systemd_word(w: &str) -> String {
    if w.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:=@".contains(c)) {
        w.to_string()
    } else {
        let escaped = w
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('%', "%%")
            .replace('$', "$$");
        format!("\"{escaped}\"")
    }
}

/// The systemd unit.
pub fn systemd_unit(s: &Spec) -> String {
    let exec: Vec<String> = std::iter::once(s.exe.display().to_string())
        .chain(s.run_args())
        .map(|w| systemd_word(&w))
        .collect();
    let mut unit = format!(
        "[Unit]\n\
         Description=orchestrator: runs AI coding agents on the tasks dropped in {home}/inbox\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={exec}\n\
         ExecReload=/bin/kill -HUP $MAINPID\n\
         WorkingDirectory={wd}\n\
         Environment=NO_COLOR=1\n\
         Restart=on-failure\n\
         RestartSec=5\n\
         KillMode=mixed\n\
         KillSignal=SIGTERM\n\
         TimeoutStopSec={stop}\n",
        home = s.home.display(),
        exec = exec.join(" "),
        wd = systemd_word(&s.home.display().to_string()),
        stop = s.stop_timeout().as_secs(),
    );
    if let Some(user) = s.run_as.as_ref().filter(|_| !s.user_service) {
        unit.push_str(&format!("User={user}\n"));
    }
    let target = if s.user_service {
        "default.target"
    } else {
        "multi-user.target"
    };
    unit.push_str(&format!("\n[Install]\nWantedBy={target}\n"));
    unit
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The launchd property list.
pub fn launchd_plist(s: &Spec) -> String {
    let args: String = std::iter::once(s.exe.display().to_string())
        .chain(s.run_args())
        .map(|a| format!("    <string>{}</string>\n", xml(&a)))
        .collect();
    let log = |name: &str| xml(&s.home.join("logs").join(name).display().to_string());
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <plist version=\"1.0\">\n\
         <dict>\n\
         \x20 <key>Label</key>\n\
         \x20 <string>{label}</string>\n\
         \x20 <key>ProgramArguments</key>\n\
         \x20 <array>\n{args}\x20 </array>\n\
         \x20 <key>WorkingDirectory</key>\n\
         \x20 <string>{wd}</string>\n\
         \x20 <key>RunAtLoad</key>\n\
         \x20 <true/>\n\
         \x20 <key>KeepAlive</key>\n\
         \x20 <dict>\n\
         \x20   <key>SuccessfulExit</key>\n\
         \x20   <false/>\n\
         \x20 </dict>\n\
         \x20 <key>ExitTimeOut</key>\n\
         \x20 <integer>{stop}</integer>\n\
         \x20 <key>StandardOutPath</key>\n\
         \x20 <string>{out}</string>\n\
         \x20 <key>StandardErrorPath</key>\n\
         \x20 <string>{err}</string>\n\
         </dict>\n\
         </plist>\n",
        label = xml(&format!("dev.{}", s.name())),
        wd = xml(&s.home.display().to_string()),
        stop = s.stop_timeout().as_secs(),
        out = log("service.out"),
        err = log("service.err"),
    )
}

/// What the Windows Service Control Manager is given.
#[derive(Debug, Clone, PartialEq)]
pub struct ScmParams {
    pub name: String,
    pub display_name: String,
    pub description: String,
    /// The binary and its arguments, as the service's command line
    /// ([`scm_command_line`]).
    pub executable: PathBuf,
    pub arguments: Vec<String>,
    /// Started with Windows.
    pub start_automatically: bool,
    /// Restarted after a failure, after each of these delays (SCM recovery actions).
    pub restart_after: Vec<Duration>,
    /// How long a stop may take (reported to the SCM as checkpoints).
    pub stop_timeout: Duration,
}

/// The Windows service's parameters.
pub fn scm_params(s: &Spec) -> ScmParams {
    // The service process adds `run` itself (its daemon runs on a thread).
    let mut arguments = vec![SERVICE_ARG.to_string(), s.name()];
    arguments.extend(s.run_args().into_iter().filter(|a| a != "run"));
    ScmParams {
        name: s.name(),
        display_name: format!("orchestrator ({})", s.home.display()),
        description: format!(
            "Runs AI coding agents on the tasks dropped in {}",
            Path::new(&s.home).join("inbox").display()
        ),
        executable: s.exe.clone(),
        arguments,
        start_automatically: true,
        restart_after: vec![
            Duration::from_secs(5),
            Duration::from_secs(30),
            Duration::from_secs(120),
        ],
        stop_timeout: s.stop_timeout(),
    }
}

/// The command line the SCM keeps for the service, quoted as Windows
/// programs split it (the rules `windows-service` follows when it registers
/// one): what `service install --dry-run` shows.
pub fn scm_command_line(p: &ScmParams) -> String {
    std::iter::once(p.executable.display().to_string())
        .chain(p.arguments.iter().cloned())
        .map(|a| windows_quote(&a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One argument quoted for a Windows command line: as it is when it has no
/// space, tab, newline or quote; else in quotes, with the backslashes before
/// a quote (or the end) doubled and quotes escaped.
fn windows_quote(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '\n', '\u{b}', '"']) {
        return arg.to_string();
    }
    let mut out = String::from('"');
    let mut slashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => slashes += 1,
            '"' => {
                out.extend(std::iter::repeat_n('\\', slashes * 2 + 1));
                out.push('"');
                slashes = 0;
            }
            _ => {
                out.extend(std::iter::repeat_n('\\', slashes));
                out.push(c);
                slashes = 0;
            }
        }
    }
    out.extend(std::iter::repeat_n('\\', slashes * 2));
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(user: bool) -> Spec {
        Spec {
            exe: PathBuf::from("/usr/local/bin/orchestrator"),
            home: PathBuf::from("/srv/agents home"),
            user_service: user,
            run_as: Some("builder".into()),
            shutdown_grace: Duration::from_secs(10),
            config_args: Vec::new(),
        }
    }

    #[test]
    fn the_systemd_units_exactly() {
        let name = spec(false).name();
        assert!(name.starts_with("orchestrator-agents-home-") && name.len() == "orchestrator-agents-home-".len() + 8);
        assert_eq!(
            systemd_unit(&spec(false)),
            "[Unit]\n\
             Description=orchestrator: runs AI coding agents on the tasks dropped in /srv/agents home/inbox\n\
             After=network-online.target\n\
             Wants=network-online.target\n\
             \n\
             [Service]\n\
             Type=simple\n\
             ExecStart=/usr/local/bin/orchestrator --home \"/srv/agents home\" run\n\
             ExecReload=/bin/kill -HUP $MAINPID\n\
             WorkingDirectory=\"/srv/agents home\"\n\
             Environment=NO_COLOR=1\n\
             Restart=on-failure\n\
             RestartSec=5\n\
             KillMode=mixed\n\
             KillSignal=SIGTERM\n\
             TimeoutStopSec=40\n\
             User=builder\n\
             \n\
             [Install]\n\
             WantedBy=multi-user.target\n"
        );
        let user = systemd_unit(&spec(true));
        assert!(!user.contains("User="), "a user unit runs as its user");
        assert!(user.ends_with("WantedBy=default.target\n"));
    }

    #[test]
    fn the_launchd_plist_and_the_scm_parameters_exactly() {
        let plist = launchd_plist(&spec(true));
        assert!(plist.contains("<string>/usr/local/bin/orchestrator</string>\n    <string>--home</string>\n    <string>/srv/agents home</string>\n    <string>run</string>\n"), "{plist}");
        assert!(plist.contains("<key>SuccessfulExit</key>\n    <false/>"), "{plist}");
        assert!(plist.contains("<integer>40</integer>"), "{plist}");
        assert!(
            plist.contains("<string>/srv/agents home/logs/service.err</string>"),
            "{plist}"
        );
        let p = scm_params(&spec(false));
        assert_eq!(p.arguments, [SERVICE_ARG, &p.name, "--home", "/srv/agents home"]);
        assert!(p.start_automatically);
        assert_eq!(p.restart_after.len(), 3);
        assert_eq!(p.stop_timeout, Duration::from_secs(40));
        assert_eq!(p.name, spec(false).name());
    }

    #[test]
    fn the_config_given_to_install_is_the_services_too() {
        let s = Spec {
            config_args: vec![
                "--config".into(),
                "/etc/orch.yaml".into(),
                "--set".into(),
                "max_concurrent=3".into(),
            ],
            ..spec(false)
        };
        assert!(systemd_unit(&s).contains(
            "ExecStart=/usr/local/bin/orchestrator --home \"/srv/agents home\" --config /etc/orch.yaml --set max_concurrent=3 run\n"
        ));
        let p = scm_params(&s);
        assert_eq!(
            &p.arguments[2..],
            [
                "--home",
                "/srv/agents home",
                "--config",
                "/etc/orch.yaml",
                "--set",
                "max_concurrent=3"
            ]
        );
    }

    #[test]
    fn systemd_specifiers_and_variables_in_a_value_mean_themselves() {
        assert_eq!(systemd_word("url=https://h/a%20b$X"), "\"url=https://h/a%%20b$$X\"");
    }

    #[test]
    fn the_windows_command_line_is_quoted_as_windows_splits_it() {
        let p = ScmParams {
            executable: PathBuf::from(r"C:\Program Files\orchestrator\orchestrator.exe"),
            arguments: vec![
                SERVICE_ARG.into(),
                "orchestrator-x-1".into(),
                "--home".into(),
                r"C:\agent home\".into(),
                "--set".into(),
                r#"a="b c""#.into(),
                String::new(),
            ],
            ..scm_params(&spec(false))
        };
        assert_eq!(
            scm_command_line(&p),
            r#""C:\Program Files\orchestrator\orchestrator.exe" __service orchestrator-x-1 --home "C:\agent home\\" --set "a=\"b c\"" """#
        );
    }
}
