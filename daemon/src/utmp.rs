//! The session terminal's utmp and wtmp records, as stock mosh keeps them:
//! through libutempter's setgid helper (so a session running as its user
//! needs no privilege of its own), with the host field `mosh [PID]` while
//! no client is attached and `ADDRESS via mosh [PID]` while one is, PID
//! being the server's. `who`, `w` and `last` show them.
//!
//! The helper takes the terminal's master side as its standard input,
//! checks that the caller owns the terminal, and records the caller's pid.
//! Where no helper is installed, sessions simply have no records.
//!
//! The helper waits for a lock on the utmp file, which every session on
//! the host shares, so a session never waits for it: changes run one
//! helper at a time in the background, polled from the session's loop,
//! and a change asked for while another runs replaces any not yet begun.
//! A helper still running is looked at less and less often (a quarter of
//! the time it has run, up to a second), so sessions queued behind a held
//! lock barely wake. Only the last removal, when the record is dropped, is
//! waited for.

use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where distributions install libutempter's helper.
const HELPERS: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu/utempter/utempter",
    "/usr/lib/aarch64-linux-gnu/utempter/utempter",
    "/usr/libexec/utempter/utempter",
    "/usr/lib/utempter/utempter",
];

/// How soon a helper just started is first looked at.
const POLL_FIRST: Duration = Duration::from_millis(10);
/// The longest wait between looks at a running helper.
const POLL_MOST: Duration = Duration::from_secs(1);

/// What a record says: `Some(client)` (`None` for no client), or no
/// record at all.
type Entry = Option<Option<IpAddr>>;

/// The record of one terminal, removed when dropped.
#[derive(Debug)]
pub struct UtmpRecord {
    master: OwnedFd,
    helper: Option<&'static Path>,
    /// What the record should say; no record before the first change.
    wanted: Entry,
    /// What the record says once the running helper (if any) is done.
    written: Entry,
    /// The helper run in progress, and when it started.
    running: Option<(Child, Instant)>,
}

impl UtmpRecord {
    /// A terminal, with no record yet.
    pub fn new(master: OwnedFd) -> Self {
        let helper = HELPERS.iter().map(Path::new).find(|path| path.is_file());
        Self {
            master,
            helper,
            wanted: None,
            written: None,
            running: None,
        }
    }

    /// Asks for the terminal to be recorded with `client` attached, or
    /// detached (`None`), and moves the records towards that without
    /// waiting; nothing runs when they already say so.
    pub fn set_client(&mut self, client: Option<IpAddr>) {
        self.wanted = Some(client);
        self.advance();
    }

    /// While a change is under way, how soon the session should call
    /// [`UtmpRecord::set_client`] again to carry it on.
    pub fn poll_after(&self) -> Option<Duration> {
        match &self.running {
            Some((_, started)) => Some((started.elapsed() / 4).clamp(POLL_FIRST, POLL_MOST)),
            None => (self.wanted != self.written).then_some(POLL_FIRST),
        }
    }

    /// Reaps a finished helper and starts the next step: a removal before
    /// a changed record is added again, as stock does, so `last` shows
    /// each attachment.
    fn advance(&mut self) {
        if let Some((child, _)) = &mut self.running {
            match child.try_wait() {
                Ok(None) => return,
                Ok(Some(_)) | Err(_) => self.running = None,
            }
        }
        if self.wanted == self.written {
            return;
        }
        match (self.written, self.wanted) {
            (Some(_), _) => {
                self.running = self.start(&["del"]);
                self.written = None;
            }
            (None, Some(client)) => {
                let pid = std::process::id();
                let host = match client {
                    Some(ip) => format!("{ip} via mosh [{pid}]"),
                    None => format!("mosh [{pid}]"),
                };
                self.running = self.start(&["add", &host]);
                self.written = Some(client);
            }
            (None, None) => {}
        }
    }

    /// Starts the helper with `args`, the terminal as its standard input,
    /// and says when; a helper that cannot start leaves the records as they
    /// are.
    fn start(&self, args: &[&str]) -> Option<(Child, Instant)> {
        let helper = self.helper?;
        let master = self.master.try_clone().ok()?;
        Command::new(helper)
            .args(args)
            .stdin(Stdio::from(master))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
            .map(|child| (child, Instant::now()))
    }
}

impl Drop for UtmpRecord {
    fn drop(&mut self) {
        if let Some((mut child, _)) = self.running.take() {
            let _ = child.wait();
        }
        if self.written.is_some()
            && let Some((mut child, _)) = self.start(&["del"])
        {
            let _ = child.wait();
        }
    }
}
