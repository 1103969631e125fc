//! `mosh-daemon-worker`: one session's process, started by `mosh-daemon`
//! with its sockets and setup pipe as descriptors 3 to 5, or by the service
//! manager as `mosh-daemon-worker --handoff PATH ID`, receiving them from
//! the daemon over the root-only socket PATH (see `mosh_daemon::worker`). A program of its own, not a mode of the daemon,
//! so that each session maps only the code a session needs.

use std::path::Path;
use std::process::ExitCode;

use mosh_stdio::stderrln;

/// sysexits.h `EX_USAGE`.
const EX_USAGE: u8 = 64;

/// Freed memory is wiped: the session key and every key that replaces it
/// leave no copies behind in the heap.
#[global_allocator]
static ALLOCATOR: mosh_daemon::wiping_alloc::WipingAllocator =
    mosh_daemon::wiping_alloc::WipingAllocator;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.as_slice() {
        [] => mosh_daemon::worker::run(),
        [flag, path, id] if flag == "--handoff" => {
            mosh_daemon::worker::run_from_handoff(Path::new(path), id)
        }
        _ => {
            stderrln!(
                "mosh-daemon-worker: started by mosh-daemon only\n\
                 Usage: mosh-daemon-worker [--handoff PATH ID]"
            );
            return ExitCode::from(EX_USAGE);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            stderrln!("mosh-daemon-worker: {error}");
            ExitCode::FAILURE
        }
    }
}
