//! The session terminal's utmp and wtmp records, as stock mosh keeps them:
//! through libutempter's setgid helper (so a session running as its user
//! needs no privilege of its own), with the host field `mosh [PID]` while
//! no client is attached and `ADDRESS via mosh [PID]` while one is, PID
//! being the server's. `who`, `w` and `last` show them.
//!
//! The helper takes the terminal's master side as its standard input,
//! checks that the caller owns the terminal, and records the caller's pid.
//! Where no helper is installed, sessions simply have no records.

use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};

/// Where distributions install libutempter's helper.
const HELPERS: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu/utempter/utempter",
    "/usr/lib/aarch64-linux-gnu/utempter/utempter",
    "/usr/libexec/utempter/utempter",
    "/usr/lib/utempter/utempter",
];

/// The record of one terminal, removed when dropped.
#[derive(Debug)]
pub struct UtmpRecord {
    master: OwnedFd,
    helper: Option<&'static Path>,
    /// What the record says: `None` before the first, else the client.
    recorded: Option<Option<IpAddr>>,
}

impl UtmpRecord {
    /// A terminal, with no record yet.
    pub fn new(master: OwnedFd) -> Self {
        let helper = HELPERS.iter().map(Path::new).find(|path| path.is_file());
        Self {
            master,
            helper,
            recorded: None,
        }
    }

    /// Records the terminal with `client` attached, or detached (`None`);
    /// nothing happens when the record already says so.
    pub fn set_client(&mut self, client: Option<IpAddr>) {
        if self.recorded == Some(client) {
            return;
        }
        let pid = std::process::id();
        let host = match client {
            Some(ip) => format!("{ip} via mosh [{pid}]"),
            None => format!("mosh [{pid}]"),
        };
        if self.recorded.is_some() {
            self.run(&["del"]);
        }
        self.run(&["add", &host]);
        self.recorded = Some(client);
    }

    /// Runs the helper with `args`, the terminal as its standard input;
    /// a failure leaves the records as they are.
    fn run(&self, args: &[&str]) {
        let Some(helper) = self.helper else { return };
        let Ok(master) = self.master.try_clone() else {
            return;
        };
        let _ = Command::new(helper)
            .args(args)
            .stdin(Stdio::from(master))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for UtmpRecord {
    fn drop(&mut self) {
        if self.recorded.is_some() {
            self.run(&["del"]);
        }
    }
}
