//! Test harness shared by the end-to-end tests: finding and running stock
//! mosh, tmux sessions, the UDP impairment proxy, and small protocol helpers.
//!
//! * [`container`]: a Debian system booted with `systemd-nspawn`, for
//!   tests that need systemd as PID 1.
//! * [`daemon`]: a foreground `mosh-daemon` in a private directory, and
//!   throw-away users to run `mosh-server new` and `moshctl` as.
//! * [`impair`]: a UDP relay that delays, drops, duplicates, blacks out
//!   and roams, for tests and benchmarks over loopback.
//! * [`netns`]: two network namespaces joined by veth, for firewall tests.
//! * [`loadgen`]: many real client sessions from one thread (typing
//!   and checking the echo, quiet, vanishing, roaming), for load tests
//!   and benchmarks.
//! * [`measure`]: CPU time and memory of a process, for benchmarks.
//! * [`stock`]: the stock mosh 1.4 binaries from Debian.
//! * [`ours`]: our `mosh-client` in tmux, and styled-capture helpers.
//! * [`server`]: a running `mosh-server`, stock or ours.
//! * [`sshd`]: a real OpenSSH server on loopback.
//! * [`user`]: local users created for a test and deleted after it.
//! * [`tmux`]: a detached tmux session on a private socket, for programs
//!   that need a terminal.
//! * [`peer`]: a UDP socket driven by a `mosh_proto::Transport`.
//! * [`process`]: detached processes, awaited and ended by pid.
//! * [`states`]: small `mosh_proto::State` implementations for tests.
//! * [`stdio`]: programs run with their standard output or error closed,
//!   a closed pipe or full, and whether they panicked.

pub mod container;
pub mod daemon;
pub mod impair;
pub mod loadgen;
pub mod measure;
pub mod netns;
pub mod ours;
pub mod peer;
pub mod process;
pub mod server;
pub mod sshd;
pub mod states;
pub mod stdio;
pub mod stock;
pub mod tmux;
pub mod user;

use std::io;
use std::path::PathBuf;

/// A UTF-8 locale every Debian system has; stock mosh refuses to run without
/// a UTF-8 locale.
pub const UTF8_LOCALE: &str = "C.UTF-8";

/// Finds `name` on `PATH`, as a shell would.
///
/// The error says how to get the missing program, so a test that needs it
/// fails with an actionable message instead of being skipped.
pub fn require_program(name: &str) -> io::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{name} not found on PATH ({}): run ./tests/run, which installs it",
                    path.to_string_lossy()
                ),
            )
        })
}

/// One of this project's programs, built into the same target directory as
/// the running test (`./tests/run` builds them all before testing).
pub fn our_program(name: &str) -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or_else(|| io::Error::other(format!("unexpected test path {}", exe.display())))?;
    let program = profile_dir.join(name);
    if program.is_file() {
        Ok(program)
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{} is not built: run `cargo build --workspace --bins` (./tests/run does)",
                program.display()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_path_or_named_with_the_fix() {
        assert!(require_program("sh").unwrap().is_file());
        let missing = require_program("mosh-e2e-no-such-program").unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        let message = missing.to_string();
        assert!(
            message.starts_with("mosh-e2e-no-such-program not found on PATH")
                && message.ends_with("run ./tests/run, which installs it"),
            "{message}"
        );
    }
}
