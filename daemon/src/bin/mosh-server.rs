//! `mosh-server`: the standalone server, started over ssh by `mosh`. Prints
//! `MOSH CONNECT <port> <key>`, detaches, and serves one session.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use mosh_daemon::pty::{ChildCommand, home_directory};
use mosh_daemon::server::args::{self, Invocation, ServerOptions};
use mosh_daemon::server::{bind, locale};
use mosh_daemon::session::{self, SessionConfig, SessionEnd, timeout_from_env};
use mosh_proto::Base64Key;

/// Set to run the session in the foreground (tests, debugging).
const FOREGROUND_VARIABLE: &str = "MOSH_SERVER_FOREGROUND";

fn main() -> ExitCode {
    let mut argv = std::env::args_os();
    let program = argv
        .next()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "mosh-server".to_owned());
    let rest: Vec<OsString> = argv.collect();
    let ssh_connection = std::env::var("SSH_CONNECTION").ok();
    let (options, warnings) = match args::parse(&rest, ssh_connection.as_deref()) {
        Ok(Invocation::Help) => {
            println!("{}", args::usage(&program));
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Version) => {
            print!("{}", version_block());
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Run { options, warnings }) => (options, warnings),
        Err(error) => {
            eprintln!("{program}: {error}");
            eprintln!("{}", args::usage(&program));
            return ExitCode::FAILURE;
        }
    };
    for warning in warnings {
        eprintln!("{program}: {warning}");
        if warning.contains("option") {
            eprintln!("{}", args::usage(&program));
        }
    }
    match serve(&options) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("{message}");
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
        eprintln!("{refusal}");
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
        eprintln!("{warning}");
    }
    let bound = bind::bind(&options.bind, options.ports).map_err(|e| e.to_string())?;
    for warning in &bound.warnings {
        eprintln!("{warning}");
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
        key: key.clone(),
        command,
        verbose: options.verbose,
        network_timeout,
        signal_timeout,
    };
    let mut stdout = std::io::stdout().lock();
    if std::io::stdin().is_terminal() {
        let _ = write!(stdout, "\r\n\n");
    }
    writeln!(stdout, "MOSH CONNECT {port} {}", key.printable())
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("writing the connect line: {e}"))?;
    drop(stdout);
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
        let socket = tokio::net::UdpSocket::from_std(bound.socket)?;
        session::run(socket, config)
            .await
            .map_err(std::io::Error::other)
    });
    println!("[mosh-server is exiting.]");
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
            eprint!(
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

/// The message of the day, as a login would show it, unless `~/.hushlogin`
/// exists: `/run/motd.dynamic` (or `/var/run/motd.dynamic`), then
/// `/etc/motd`. Line ends become CR LF, as the terminal would show them.
fn motd() -> Vec<u8> {
    if home_directory().is_some_and(|home| home.join(".hushlogin").exists()) {
        return Vec::new();
    }
    let dynamic = std::fs::read("/run/motd.dynamic")
        .or_else(|_| std::fs::read("/var/run/motd.dynamic"))
        .unwrap_or_default();
    let fixed = std::fs::read("/etc/motd").unwrap_or_default();
    let mut text = Vec::with_capacity(dynamic.len() + fixed.len());
    for byte in dynamic.into_iter().chain(fixed) {
        if byte == b'\n' {
            text.push(b'\r');
        }
        text.push(byte);
    }
    text
}
