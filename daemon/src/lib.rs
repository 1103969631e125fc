//! Server side of mosh-daemon: the standalone `mosh-server` (and later the
//! `mosh-daemon` system service and `moshctl`).
//!
//! * [`server`]: `mosh-server`'s command line, port binding and locale.
//! * [`session`]: one session: UDP socket, SSP transport, PTY and emulator.
//! * [`pty`]: starting the session's command on a pseudo-terminal.

pub mod pty;
pub mod server;
pub mod session;
