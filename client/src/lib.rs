//! Client side of mosh-daemon: `mosh-client`, a drop-in for stock mosh 1.4's
//! client, and the `mosh` launcher.
//!
//! Pure parts, driven by the caller with the time passed in:
//! * [`escape`]: the escape key (`Ctrl-^ .` quits, `Ctrl-^ Ctrl-Z` suspends).
//! * [`notify`]: the status bar ("Last contact N seconds ago.").
//! * [`predict`]: the local-echo prediction overlay.
//! * [`paint`]: writing overlay cells into a copy of a framebuffer.
//! * [`scrollback`]: writing the server's history lines into the local
//!   terminal's scrollback.
//! * [`terminfo`]: the few terminfo capabilities of `$TERM` the client uses.
//!
//! I/O:
//! * [`terminal`]: raw mode, its restoration on every exit path, window size
//!   and the init/exit sequences.
//! * [`session`]: the tokio event loop tying the terminal, the UDP sockets and
//!   the SSP transport together.
//! * [`cli`]: the command line and environment of `mosh-client`.
//! * [`cli_model`]: a clap model of it for the man page and completions.
//! * [`launcher`]: the `mosh` launcher: its command line, the ssh bootstrap
//!   and the hand-off to `mosh-client`.

pub mod cli;
pub mod cli_model;
pub mod escape;
pub mod launcher;
pub mod notify;
pub mod paint;
pub mod predict;
pub mod scrollback;
pub mod session;
pub mod terminal;
pub mod terminfo;
