//! `mosh-server`: the standalone server, started over ssh by `mosh`. Prints
//! `MOSH CONNECT <port> <key>`, detaches, and serves one session; or, as
//! `mosh-server attach` (or `new --reattach`), has `mosh-daemon` give one of
//! the caller's running sessions a new key and prints that the same way.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::process::ExitCode;

use std::time::Duration;

use mosh_daemon::control::{self, AttachSession, NewSession, Request, Response, Started};
use mosh_daemon::pty::{ChildCommand, motd};
use mosh_daemon::request::{self, LocaleSetting, SshConnection};
use mosh_daemon::server::args::{
    self, AttachOptions, BindAddress, Invocation, PortRange, ServerOptions,
};
use mosh_daemon::server::{bind, locale};
use mosh_daemon::session::{self, SessionConfig, SessionEnd, timeout_from_env};
use mosh_daemon::worker::is_locale_variable;
use mosh_proto::Base64Key;
use mosh_stdio::{BrokenPipe, on_broken_pipe, stderr, stderrln, stdout, stdoutln};
use zeroize::Zeroizing;

/// How long to wait for the daemon to start a session.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(20);

/// How to get a daemon, for `attach` without one.
const ENABLE_DAEMON: &str =
    "install mosh-daemon and start it with: systemctl enable --now mosh-daemon";

/// Set to run the session in the foreground (tests, debugging).
const FOREGROUND_VARIABLE: &str = "MOSH_SERVER_FOREGROUND";

fn main() -> ExitCode {
    // Until it prints MOSH CONNECT, stock mosh-server has SIGPIPE at its
    // default action: output to a closed pipe ends it (`--help | true`).
    on_broken_pipe(BrokenPipe::Die);
    let mut argv = std::env::args_os();
    let program = argv
        .next()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "mosh-server".to_owned());
    let rest: Vec<OsString> = argv.collect();
    let ssh_connection = std::env::var("SSH_CONNECTION").ok();
    let (options, warnings) = match args::parse(&rest, ssh_connection.as_deref()) {
        Ok(Invocation::Help) => {
            stdoutln!("{}", args::usage(&program));
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Version) => {
            stdout!("{}", version_block());
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Attach(options)) => return attach(&options),
        Ok(Invocation::Run { options, warnings }) => (options, warnings),
        Err(error) => {
            stderrln!("{program}: {error}");
            stderrln!("{}", args::usage(&program));
            return ExitCode::FAILURE;
        }
    };
    for warning in warnings {
        stderrln!("{program}: {warning}");
        if warning.contains("option") {
            stderrln!("{}", args::usage(&program));
        }
    }
    match serve(&options) {
        Ok(code) => code,
        Err(message) => {
            stderrln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn version_block() -> String {
    format!(
        "mosh-server (mosh-daemon {version}) [build mosh-daemon {version}]\n\
         Speaks the mosh 1.4 protocol.\n\
         License: MIT OR Apache-2.0.\n",
        version = env!("CARGO_PKG_VERSION")
    )
}

fn serve(options: &ServerOptions) -> Result<ExitCode, String> {
    if let Err(refusal) = locale::adopt_utf8_locale(&options.locale_vars) {
        stderrln!("{refusal}");
        let _ = std::process::Command::new("locale").status();
        return Ok(ExitCode::FAILURE);
    }
    let (network_timeout, network_warning) = timeout_from_env(
        "MOSH_SERVER_NETWORK_TMOUT",
        std::env::var_os("MOSH_SERVER_NETWORK_TMOUT"),
    );
    let (signal_timeout, signal_warning) = timeout_from_env(
        "MOSH_SERVER_SIGNAL_TMOUT",
        std::env::var_os("MOSH_SERVER_SIGNAL_TMOUT"),
    );
    for warning in [network_warning, signal_warning].into_iter().flatten() {
        stderrln!("{warning}");
    }
    if options.reattach {
        match ask_to_attach(&AttachSession::default()) {
            Ok((started, notes)) => {
                if let Some(command) = &options.command {
                    let command: Vec<_> = command.iter().map(|w| w.to_string_lossy()).collect();
                    stderrln!(
                        "mosh-server: --reattach: attached to detached session {} instead of \
                         running {:?}",
                        started.id,
                        command.join(" ")
                    );
                }
                print_attached(&started, &notes);
                return Ok(ExitCode::SUCCESS);
            }
            Err(DaemonFailure::Refused(message) | DaemonFailure::Unavailable(message))
                if options.verbose > 0 =>
            {
                stderrln!("mosh-server: --reattach: {message}; starting a new session");
            }
            Err(_) => {}
        }
    }
    // Said after MOSH CONNECT: stock has no such line, so it must not end
    // the program on a closed pipe as the lines stock does print may.
    let standalone_note = match through_daemon(options) {
        Ok(started) => {
            if options.verbose > 0 {
                for line in &started.notice {
                    stderrln!("{line}");
                }
            }
            print_connect_line(started.port, &started.key);
            stderr!(
                "\n{}\n[mosh-server detached, pid = {}]\n",
                version_block(),
                started.pid
            );
            return Ok(ExitCode::SUCCESS);
        }
        Err(DaemonFailure::Refused(message)) => {
            stderrln!("mosh-server: {message}");
            return Ok(ExitCode::FAILURE);
        }
        Err(DaemonFailure::Unavailable(why)) => {
            (options.verbose > 0).then(|| format!("mosh-server: {why}; running standalone"))
        }
    };
    let bound = bind::bind(&options.bind, options.ports).map_err(|e| e.to_string())?;
    for warning in &bound.warnings {
        stderrln!("{warning}");
    }
    let port = bound
        .socket
        .local_addr()
        .map_err(|e| format!("Network exception: {e}"))?
        .port();
    let key = Base64Key::random().map_err(|e| format!("Crypto exception: {e}"))?;
    let command = ChildCommand::new(options.command.clone(), options.colors);
    let config = SessionConfig {
        banner: if command.is_login_shell() {
            motd()
        } else {
            Vec::new()
        },
        command,
        verbose: options.verbose,
        network_timeout,
        signal_timeout,
        status: None,
        scrollback: options
            .scrollback
            .unwrap_or(mosh_term::history::DEFAULT_LINES),
        rekeys: None,
    };
    print_connect_line(port, &Zeroizing::new(key.printable()));
    if let Some(note) = standalone_note {
        stderrln!("{note}");
    }
    if std::env::var_os(FOREGROUND_VARIABLE).is_none() {
        detach(options.verbose)?;
    }
    bound
        .socket
        .set_nonblocking(true)
        .map_err(|e| format!("Network exception: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    let outcome = runtime.block_on(async {
        session::run(bound.socket, Box::new(key), config)
            .await
            .map_err(std::io::Error::other)
    });
    stdoutln!("[mosh-server is exiting.]");
    match outcome {
        Ok(
            SessionEnd::Clean
            | SessionEnd::StoppedUnattached
            | SessionEnd::ShutdownTimedOut
            | SessionEnd::NoClient,
        ) => Ok(ExitCode::SUCCESS),
        Err(error) => Err(format!("mosh-server: {error}")),
    }
}

/// `mosh-server attach`: asks the daemon for a new key to one of the
/// caller's sessions and prints it as `new` would.
fn attach(options: &AttachOptions) -> ExitCode {
    let request = AttachSession {
        id: options.id.clone(),
        force: options.force,
    };
    let message = match ask_to_attach(&request) {
        Ok((started, notes)) => {
            print_attached(&started, &notes);
            return ExitCode::SUCCESS;
        }
        Err(DaemonFailure::Refused(message)) => format!("mosh-server: {message}"),
        Err(DaemonFailure::Unavailable(why)) if options.verbose > 0 => {
            format!("mosh-server: attaching needs mosh-daemon ({why}); {ENABLE_DAEMON}")
        }
        Err(DaemonFailure::Unavailable(_)) => format!(
            "mosh-server: attaching needs mosh-daemon, which is not running here; \
             {ENABLE_DAEMON}"
        ),
    };
    stderrln!("{message}");
    ExitCode::FAILURE
}

/// Asks the daemon to re-key a session for the caller. A daemon that has
/// no detached session for the caller counts as a refusal.
fn ask_to_attach(request: &AttachSession) -> Result<(Started, Vec<String>), DaemonFailure> {
    let request = Request::Attach(request.clone());
    match control::call(&control::socket_path(), &request, DAEMON_TIMEOUT) {
        Ok(Response::Attached { session, notes }) => Ok((session, notes)),
        Ok(Response::NoDetached { message } | Response::Error { message }) => {
            Err(DaemonFailure::Refused(message))
        }
        Ok(other) => Err(DaemonFailure::Refused(format!(
            "unexpected answer from mosh-daemon: {other:?}"
        ))),
        Err(error) => Err(DaemonFailure::Unavailable(error.to_string())),
    }
}

/// Prints an attached session's connect line, as `new` does, after the
/// daemon's notes.
fn print_attached(started: &Started, notes: &[String]) {
    for note in notes {
        stderrln!("{note}");
    }
    print_connect_line(started.port, &started.key);
    stderr!(
        "\n{}\n[mosh-server detached, pid = {}]\n",
        version_block(),
        started.pid
    );
}

/// Prints `MOSH CONNECT <port> <key>` as mosh expects it.
///
/// From here on, as in stock mosh-server (which ignores SIGPIPE as it
/// prints this line), output to a closed pipe is lost and changes nothing:
/// the session goes on even if nobody could read the line, until a timeout
/// ends it.
fn print_connect_line(port: u16, key: &str) {
    on_broken_pipe(BrokenPipe::Ignore);
    let tty_prefix = if std::io::stdin().is_terminal() {
        "\r\n\n"
    } else {
        ""
    };
    stdout!("{tty_prefix}MOSH CONNECT {port} {key}\n");
}

/// Why the daemon did not start the session.
enum DaemonFailure {
    /// No daemon answered: serve the session ourselves.
    Unavailable(String),
    /// The daemon said no: tell the user.
    Refused(String),
}

/// Asks `mosh-daemon` for the session, if one listens.
fn through_daemon(options: &ServerOptions) -> Result<Started, DaemonFailure> {
    // Only what the daemon accepts: a locale variable or SSH_CONNECTION it
    // would refuse is left out, and a bind address that is not one of this
    // host's falls back to any interface, as stock's bind does.
    let locale = std::env::vars()
        .filter(|(name, _)| is_locale_variable(name))
        .map(|(name, value)| format!("{name}={value}"))
        .filter(|setting| LocaleSetting::parse(setting).is_ok())
        .collect();
    let bind = match &options.bind {
        BindAddress::Any => None,
        BindAddress::Preferred(address) => match request::local_address(address) {
            Ok(_) => Some(address.clone()),
            Err(error) => {
                stderrln!("mosh-server: {error}; binding to any interface");
                None
            }
        },
    };
    let request = Request::New(NewSession {
        command: options.command.as_ref().map(|argv| {
            argv.iter()
                .map(|arg| arg.to_string_lossy().into_owned())
                .collect()
        }),
        colors: options.colors.into(),
        bind,
        ports: (options.ports != PortRange::DEFAULT)
            .then_some((options.ports.low, options.ports.high)),
        locale,
        ssh_connection: std::env::var("SSH_CONNECTION")
            .ok()
            .filter(|value| SshConnection::parse(value).is_ok()),
        scrollback: options.scrollback,
    });
    match control::call(&control::socket_path(), &request, DAEMON_TIMEOUT) {
        Ok(Response::Started(started)) => Ok(started),
        Ok(Response::Error { message }) => Err(DaemonFailure::Refused(message)),
        Ok(other) => Err(DaemonFailure::Refused(format!(
            "unexpected answer from mosh-daemon: {other:?}"
        ))),
        Err(error) => Err(DaemonFailure::Unavailable(error.to_string())),
    }
}

/// Forks: the parent reports the child's pid and exits; the child leaves
/// the caller's session and, unless verbose, its terminal.
fn detach(verbose: u32) -> Result<(), String> {
    // An ssh hangup may reach the child before it leaves the caller's
    // session; it must not kill it. The session installs its own handler
    // later, once nothing from the old session can reach it.
    // SAFETY: installing SIG_IGN runs no code in signal context.
    unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGHUP,
            nix::sys::signal::SigHandler::SigIgn,
        )
    }
    .map_err(|e| format!("ignoring SIGHUP: {e}"))?;
    // SAFETY: no other thread exists yet (the runtime starts after this), so
    // the child may run arbitrary code after fork.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
        nix::unistd::ForkResult::Parent { child } => {
            stderr!(
                "\n{}\n[mosh-server detached, pid = {child}]\n",
                version_block()
            );
            std::process::exit(0);
        }
        nix::unistd::ForkResult::Child => {
            let _ = nix::unistd::setsid();
            if verbose == 0 {
                redirect_stdio_to_null()?;
            }
            Ok(())
        }
    }
}

fn redirect_stdio_to_null() -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("/dev/null: {e}"))?;
    for target in [libc::STDIN_FILENO, libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        // SAFETY: dup2 on two valid descriptors has no memory effects; it
        // points a standard descriptor at /dev/null.
        if unsafe { libc::dup2(null.as_raw_fd(), target) } < 0 {
            return Err(format!("dup2: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}
