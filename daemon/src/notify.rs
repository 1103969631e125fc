//! systemd's readiness protocol: `KEY=VALUE` datagrams to the socket named
//! by `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace), and the
//! watchdog interval from `WATCHDOG_USEC`.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Sends notifications to the service manager, when there is one.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// A notifier for `$NOTIFY_SOCKET`; without it, sending does nothing.
    pub fn from_env() -> io::Result<Self> {
        let Some(name) = std::env::var_os("NOTIFY_SOCKET").filter(|n| !n.is_empty()) else {
            return Ok(Self { target: None });
        };
        let name = name.into_encoded_bytes();
        let address = match name.strip_prefix(b"@") {
            Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name)?,
            None => SocketAddr::from_pathname(OsStr::from_bytes(&name))?,
        };
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            target: Some((socket, address)),
        })
    }

    /// Sends `state` (lines of `KEY=VALUE`). Never blocks: a manager that
    /// does not read its socket misses notifications rather than stalling
    /// the daemon.
    pub fn notify(&self, state: &str) -> io::Result<()> {
        match &self.target {
            Some((socket, address)) => socket.send_to_addr(state.as_bytes(), address).map(drop),
            None => Ok(()),
        }
    }
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, when set (and
/// meant for this process, per `$WATCHDOG_PID`).
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var("WATCHDOG_PID").ok().filter(|p| !p.is_empty())
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}
