//! Client side of mosh-daemon: `mosh-client` and the `mosh` launcher. Built up
//! by the client issue.
