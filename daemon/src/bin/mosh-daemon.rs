//! `mosh-daemon`: the system service that owns mosh sessions and their
//! ports. Runs in the foreground (systemd `Type=notify`). The command line
//! is [`mosh_daemon::cli::DaemonArgs`].
//!
//! Sessions run in `mosh-daemon-worker`, found next to this program.

use std::os::fd::AsFd;
use std::os::linux::fs::MetadataExt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mosh_daemon::cli::DaemonArgs;
use mosh_daemon::config::{DEFAULT_PATH, EX_CONFIG};
use mosh_daemon::service::{self, Options, ServiceError};
use mosh_stdio::{Stderr, stderrln};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

/// The session worker's program name, installed next to the daemon.
const WORKER: &str = "mosh-daemon-worker";

/// sysexits.h `EX_USAGE`.
const EX_USAGE: u8 = 64;

/// Freed memory is wiped: the keys the daemon passes on (a worker's setup,
/// an attach's `MOSH CONNECT`) leave no copies behind in the heap.
#[global_allocator]
static ALLOCATOR: mosh_daemon::wiping_alloc::WipingAllocator =
    mosh_daemon::wiping_alloc::WipingAllocator;

fn main() -> ExitCode {
    let args = match DaemonArgs::try_parse() {
        Ok(args) => args,
        Err(error) if error.use_stderr() => {
            let _ = error.print();
            return ExitCode::from(EX_USAGE);
        }
        Err(help) => {
            let _ = help.print();
            return ExitCode::SUCCESS;
        }
    };
    let options = Options {
        config_optional: args.config.is_none(),
        config_path: args.config.unwrap_or_else(|| PathBuf::from(DEFAULT_PATH)),
        runtime_dir: args.runtime_dir,
        worker_program: match std::env::current_exe() {
            Ok(path) => path.with_file_name(WORKER),
            Err(error) => {
                stderrln!("mosh-daemon: cannot find my own program: {error}");
                return ExitCode::FAILURE;
            }
        },
    };
    let verbose = args.verbose;
    init_logging(verbose);
    if !options.worker_program.is_file() {
        tracing::error!("{} is missing", options.worker_program.display());
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("starting the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(service::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ ServiceError::Config(_)) => {
            tracing::error!("{error}");
            ExitCode::from(EX_CONFIG)
        }
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to the journal when stderr is connected to it (as systemd says in
/// `JOURNAL_STREAM`), else to stderr.
fn init_logging(verbose: bool) {
    let default = if verbose { "debug" } else { "info" };
    let filter =
        EnvFilter::try_from_env("MOSH_DAEMON_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    if stderr_is_journal()
        && let Ok(journald) = tracing_journald::layer()
    {
        tracing_subscriber::registry()
            .with(filter)
            .with(journald)
            .init();
        return;
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| Stderr)
        .with_ansi(Stderr.is_terminal())
        .init();
}

/// Whether `JOURNAL_STREAM` names stderr's device and inode.
fn stderr_is_journal() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((device, inode)) = stream.split_once(':') else {
        return false;
    };
    let Ok(owned) = Stderr.as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(metadata) = std::fs::File::from(owned).metadata() else {
        return false;
    };
    device.parse() == Ok(metadata.st_dev()) && inode.parse() == Ok(metadata.st_ino())
}
