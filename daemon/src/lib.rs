//! Server side of mosh-daemon: the standalone `mosh-server`, the
//! `mosh-daemon` system service and `moshctl`.
//!
//! * [`server`]: `mosh-server`'s command line, port binding and locale.
//! * [`session`]: one session: UDP socket, SSP transport, PTY and emulator.
//! * [`datagrams`]: batched receiving on the session's UDP socket.
//! * [`pty`]: starting the session's command on a pseudo-terminal.
//! * [`cli`]: the clap definitions of `moshctl` and `mosh-daemon`.
//! * [`config`]: the daemon's configuration file.
//! * [`control`]: the JSON-lines control protocol.
//! * [`request`]: a control request checked field by field.
//! * [`service`]: the daemon: control socket, registry, port pool.
//! * [`worker`]: the per-session process the daemon starts.
//! * [`firewall`]: the firewall rules that open the sessions' ports.
//! * [`utmp`]: the session terminal's utmp and wtmp records.
//! * [`wiping_alloc`]: the allocator that wipes freed memory in key holders.
//! * [`alarm`]: the session loop's timerfd alarm.
//! * [`read_registered`]: descriptors watched for reading only, and the
//!   worker's registration stream.

pub mod alarm;
pub mod cli;
pub mod config;
pub mod control;
pub mod datagrams;
pub mod firewall;
pub mod pty;
pub mod read_registered;
pub mod request;
pub mod server;
pub mod service;
pub mod session;
pub mod utmp;
pub mod wiping_alloc;
pub mod worker;

/// What the unit tests of several modules share.
#[cfg(test)]
mod test_support {
    /// A single-threaded runtime, as a session's.
    pub fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// The events every epoll instance of this process asks about `fd`.
    pub fn epoll_interest(fd: i32) -> Vec<u32> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
            let is_epoll = std::fs::read_link(entry.path())
                .is_ok_and(|target| target.to_string_lossy().contains("eventpoll"));
            if !is_epoll {
                continue;
            }
            let info_path = format!("/proc/self/fdinfo/{}", entry.file_name().to_string_lossy());
            let Ok(info) = std::fs::read_to_string(info_path) else {
                continue;
            };
            for line in info.lines() {
                let mut words = line.split_whitespace();
                if words.next() == Some("tfd:")
                    && words.next() == Some(&fd.to_string())
                    && words.next() == Some("events:")
                {
                    found.push(u32::from_str_radix(words.next().unwrap(), 16).unwrap());
                }
            }
        }
        found
    }
}
