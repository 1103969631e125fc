//! Server side of mosh-daemon: the standalone `mosh-server`, the `mosh-daemon`
//! system service and `moshctl`. Built up by the server and daemon issues.
