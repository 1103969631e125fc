//! `mosh`: starts a mosh session to `[user@]host` over ssh and hands the
//! terminal to `mosh-client`.

use std::ffi::OsString;
use std::process::ExitCode;

use mosh_client::launcher::{self, args};
use mosh_stdio::{BrokenPipe, on_broken_pipe, stderr, stderrln, stdout, stdoutln};

fn main() -> ExitCode {
    // Stock mosh, a Perl script, leaves SIGPIPE at its default action:
    // output to a closed pipe ends it.
    on_broken_pipe(BrokenPipe::Die);
    let mut argv = std::env::args_os();
    let program = argv
        .next()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "mosh".to_owned());
    let rest: Vec<OsString> = argv.collect();
    let cmdline = rest
        .iter()
        .map(|arg| arg.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    match args::parse(&rest) {
        Ok(args::Invocation::Help) => {
            stdout!("{}", args::usage(&program));
            ExitCode::SUCCESS
        }
        Ok(args::Invocation::Version) => {
            stdoutln!(
                "mosh (mosh-daemon {}) [speaks the mosh 1.4 protocol]",
                env!("CARGO_PKG_VERSION")
            );
            ExitCode::SUCCESS
        }
        Ok(args::Invocation::FakeProxy { host, port, family }) => {
            match launcher::proxy::run(&host, &port, family) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    stderrln!("{program}: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Ok(args::Invocation::Launch(options)) => {
            let self_program = std::env::current_exe()
                .map(|path| path.to_string_lossy().into_owned())
                .unwrap_or_else(|_| program.clone());
            let error = launcher::launch(&options, &self_program, &cmdline);
            stderrln!("{program}: {error}");
            ExitCode::FAILURE
        }
        Err(error) => {
            stderrln!("{program}: {error}");
            stderr!("{}", args::usage(&program));
            ExitCode::FAILURE
        }
    }
}
