//! Server side of mosh-daemon: the standalone `mosh-server`, the `mosh-daemon`
//! system service and `moshctl`.

pub mod server;
