//! Starting a `mosh-server` — stock mosh 1.4's from Debian or ours — as the
//! `mosh` wrapper does, and reading its `MOSH CONNECT` line.
//!
//! `mosh-server new` forks: the parent prints the port and key, reports the
//! detached child's pid on stderr and exits, while the child serves the
//! session. [`MoshServer`] records that pid and makes sure the child is gone
//! when it is dropped.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use mosh_proto::Base64Key;

use crate::{UTF8_LOCALE, our_program, process, stock};

/// The name of the detached server process (both implementations).
const SERVER_NAME: &str = "mosh-server";

/// Seconds without a new client state after which a server shuts down by
/// itself (`MOSH_SERVER_NETWORK_TMOUT`); clients send a state at least every
/// 3 s, so only an abandoned server reaches it.
const ORPHAN_TIMEOUT_SECS: &str = "60";

/// How long a server is given to exit after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// Whose `mosh-server` to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    /// mosh 1.4 from Debian.
    Stock,
    /// This project's.
    Ours,
}

impl Implementation {
    /// The program's path.
    pub fn program(self) -> io::Result<PathBuf> {
        match self {
            Implementation::Stock => stock::server_program(),
            Implementation::Ours => our_program("mosh-server"),
        }
    }
}

/// A running `mosh-server`, killed on drop if still running.
#[derive(Debug)]
pub struct MoshServer {
    port: u16,
    key: Base64Key,
    pid: u32,
}

impl MoshServer {
    /// Runs `mosh-server new -p 0 -- COMMAND...` in a UTF-8 locale, so the
    /// server listens on a UDP port the OS picks, on every IPv4 address,
    /// and runs `command` (the login shell if empty) once a client sends its
    /// first state. Should the test die without dropping the server, the
    /// server ends itself a minute after its client goes quiet.
    pub fn start(implementation: Implementation, command: &[&str]) -> io::Result<Self> {
        Self::start_with(
            implementation,
            &["-p", "0"],
            command,
            &[("MOSH_SERVER_NETWORK_TMOUT", ORPHAN_TIMEOUT_SECS)],
        )
    }

    /// Runs `mosh-server new OPTIONS... -- COMMAND...` in a UTF-8 locale
    /// with `env` added.
    pub fn start_with(
        implementation: Implementation,
        options: &[&str],
        command: &[&str],
        env: &[(&str, &str)],
    ) -> io::Result<Self> {
        let output = Command::new(implementation.program()?)
            .arg("new")
            .args(options)
            .arg("--")
            .args(command)
            .env("LANG", UTF8_LOCALE)
            .env("LC_ALL", UTF8_LOCALE)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let failure = |what: &str| {
            io::Error::other(format!(
                "{implementation:?} mosh-server {what} (exit {}); stdout: {stdout:?}; stderr: {stderr:?}",
                output.status
            ))
        };
        let pid = stderr
            .lines()
            .find_map(|line| {
                line.strip_prefix("[mosh-server detached, pid = ")?
                    .strip_suffix(']')?
                    .parse()
                    .ok()
            })
            .ok_or_else(|| failure("did not report a detached pid"))?;
        let connect = stdout
            .lines()
            .find_map(|line| line.strip_prefix("MOSH CONNECT "))
            .and_then(|rest| rest.split_once(' '));
        let parsed = connect.and_then(|(port, key)| {
            Some((port.parse().ok()?, Base64Key::parse(key.trim_end()).ok()?))
        });
        match parsed {
            Some((port, key)) if output.status.success() => Ok(Self { port, key, pid }),
            _ => {
                process::terminate(pid, SERVER_NAME, TERM_GRACE);
                Err(failure("did not print a usable MOSH CONNECT line"))
            }
        }
    }

    /// Where the server listens: 127.0.0.1 and its port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The session key from the `MOSH CONNECT` line.
    pub fn key(&self) -> &Base64Key {
        &self.key
    }

    /// The pid of the detached server process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the server process is still running.
    pub fn is_running(&self) -> bool {
        process::is_running(self.pid, SERVER_NAME)
    }

    /// Waits up to `timeout` for the server to exit on its own; returns
    /// whether it did.
    pub fn wait_for_exit(&self, timeout: Duration) -> bool {
        process::wait_for_exit(self.pid, SERVER_NAME, timeout)
    }
}

impl Drop for MoshServer {
    fn drop(&mut self) {
        process::terminate(self.pid, SERVER_NAME, TERM_GRACE);
    }
}
