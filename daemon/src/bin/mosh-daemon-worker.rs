//! `mosh-daemon-worker`: one session's process, started by `mosh-daemon`
//! with its sockets and setup pipe as descriptors 3 to 5 (see
//! `mosh_daemon::worker`). A program of its own, not a mode of the daemon,
//! so that each session maps only the code a session needs.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    match mosh_daemon::worker::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "mosh-daemon-worker: {error}");
            ExitCode::FAILURE
        }
    }
}
