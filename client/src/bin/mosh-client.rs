//! `mosh-client`: the mosh 1.4 client. `MOSH_KEY=KEY mosh-client [-v]
//! [-# 'ARGS'] IP PORT` connects to a running `mosh-server` and shows its
//! screen in this terminal.

use std::process::ExitCode;

use mosh_client::cli::{self, CliError, Command};
use mosh_client::session::{self, Outcome, SessionConfig};
use mosh_client::terminal::{self, RawTerminal, ScreenSwitch};
use mosh_client::terminfo::Terminfo;
use mosh_stdio::{BrokenPipe, on_broken_pipe, stderr, stderrln, stdout, stdoutln};

fn main() -> ExitCode {
    // Stock mosh-client has SIGPIPE at its default action until its
    // session handles the signal (see `session::run`): output to a closed
    // pipe before that ends it (`--help | true`, or the terminal set-up).
    on_broken_pipe(BrokenPipe::Die);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = cli::parse(&args, |name| std::env::var(name).ok());
    // SAFETY: single-threaded start-up: no other thread reads or writes the
    // environment yet. The key must not linger in the environment.
    unsafe { std::env::remove_var("MOSH_KEY") };
    match parsed {
        Ok(Command::Help) => {
            stdout!("{}\n{}", cli::version_text(), cli::USAGE);
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            stdout!("{}", cli::version_text());
            ExitCode::SUCCESS
        }
        Ok(Command::Colors) => {
            stdoutln!(
                "{}",
                cli::colors(&std::env::var("TERM").unwrap_or_default())
            );
            ExitCode::SUCCESS
        }
        Ok(Command::Run(config)) => run(*config),
        Err(CliError::Usage) => {
            stderr!("{}", cli::USAGE);
            ExitCode::FAILURE
        }
        Err(error) => {
            stderrln!("mosh-client: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: SessionConfig) -> ExitCode {
    if let Some(charset) = cli::non_utf8_locale() {
        stderrln!(
            "mosh-client needs a UTF-8 native locale to run.\n\n\
             Unfortunately, the client's environment specifies the character set \"{charset}\".\n"
        );
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            stderrln!("mosh-client: {error}");
            return ExitCode::FAILURE;
        }
    };
    terminal::install_panic_hook();
    let server = config.server;
    let screen = if std::env::var_os("MOSH_NO_TERM_INIT").is_some() {
        ScreenSwitch::none()
    } else {
        let term = std::env::var("TERM").unwrap_or_default();
        ScreenSwitch::for_terminal(Terminfo::load(&term).as_ref())
    };
    let raw = match RawTerminal::enter(screen) {
        Ok(raw) => raw,
        Err(error) => {
            stderrln!("mosh-client: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(session::run(config, &raw));
    drop(raw);
    stdoutln!("[mosh is exiting.]");
    match outcome {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::NeverConnected) => {
            let port = server.port();
            stderrln!(
                "\nmosh did not make a successful connection to {}:{port}.\n\
                 Please verify that UDP port {port} is not firewalled and can reach the server.\n\n\
                 (By default, mosh uses a UDP port between 60000 and 61000. The -p option\n\
                 selects a specific UDP port number.)",
                server.ip()
            );
            ExitCode::FAILURE
        }
        Ok(Outcome::Unclean) => {
            stderrln!(
                "\nmosh did not shut down cleanly. Please note that the\n\
                 mosh-server process may still be running on the server."
            );
            ExitCode::FAILURE
        }
        Err(error) => {
            stderrln!("mosh-client: {error}");
            ExitCode::FAILURE
        }
    }
}
