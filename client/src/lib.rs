//! Client side of mosh-daemon: the `mosh` launcher (and `mosh-client`).
//!
//! * [`launcher`]: `mosh`'s command line, the ssh bootstrap and the hand-off
//!   to `mosh-client`.

pub mod launcher;
