//! The stock mosh 1.4 programs from Debian (`apt-get install mosh`), and
//! the stock client run in a tmux pane.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use mosh_proto::Base64Key;

use crate::tmux::TmuxSession;
use crate::{UTF8_LOCALE, require_program};

/// The stock `mosh-client` program.
pub fn client_program() -> io::Result<PathBuf> {
    require_program("mosh-client").map_err(|e| io::Error::new(e.kind(), format!("stock {e}")))
}

/// The stock `mosh-server` program.
pub fn server_program() -> io::Result<PathBuf> {
    require_program("mosh-server").map_err(|e| io::Error::new(e.kind(), format!("stock {e}")))
}

/// Starts the stock `mosh-client` in a `width` × `height` tmux pane,
/// talking to `server` with `key`, in a UTF-8 locale.
pub fn client_in_tmux(
    server: SocketAddr,
    key: &Base64Key,
    width: u16,
    height: u16,
) -> io::Result<TmuxSession> {
    let program = client_program()?;
    let program = program
        .to_str()
        .ok_or_else(|| io::Error::other("mosh-client's path is not UTF-8"))?;
    let (ip, port) = (server.ip().to_string(), server.port().to_string());
    let printable_key = key.printable();
    TmuxSession::start(
        width,
        height,
        &[program, &ip, &port],
        &[
            ("MOSH_KEY", &printable_key),
            ("LANG", UTF8_LOCALE),
            ("LC_ALL", UTF8_LOCALE),
        ],
    )
}
